//! New arrays: a Zarr v3 matrix of outcore's chunking and codecs, and 1-D vectors (singular
//! values beside their vectors).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::array::ArrayBuilder;
use zarrs::array::data_type;
use zarrs::filesystem::FilesystemStore;

use super::meta::RawLayout;
use super::options::{Compression, ZarrOptions, codecs};
use super::{ZarrStore, narrow};
use crate::error::{StorageError, StorageResult};
use crate::grid::ChunkGrid;
use crate::store::Dtype;

/// Creates the directory of a new array at `path` (which must not exist) and its store.
fn new_array_dir(path: &Path) -> StorageResult<(PathBuf, Arc<FilesystemStore>)> {
    let path = path.to_path_buf();
    if path.exists() {
        return Err(StorageError::AlreadyExists { path });
    }
    std::fs::create_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
    let store =
        FilesystemStore::new(&path).map_err(|e| StorageError::Zarr { path: path.clone(), message: e.to_string() })?;
    Ok((path, Arc::new(store)))
}

impl ZarrStore {
    /// Creates a new Zarr v3 array of `options.dtype` (float64 by default) at `path` (which
    /// must not exist) with `grid`'s shape and chunking.
    pub fn create(path: impl AsRef<Path>, grid: ChunkGrid, options: &ZarrOptions) -> StorageResult<Self> {
        let (path, store) = new_array_dir(path.as_ref())?;
        let zarr_err = |message: String| StorageError::Zarr { path: path.clone(), message };
        let (rows, cols) = grid.shape();
        let (cr, cc) = grid.chunk_shape();
        let codecs = codecs(options, &path)?;
        let (shape, chunks) = (vec![rows as u64, cols as u64], vec![cr as u64, cc as u64]);
        let mut builder = match options.dtype {
            Dtype::F64 => ArrayBuilder::new(shape, chunks, data_type::float64(), 0.0f64),
            Dtype::F32 => ArrayBuilder::new(shape, chunks, data_type::float32(), 0.0f32),
        };
        let array = builder
            .bytes_to_bytes_codecs(codecs)
            .dimension_names(["row", "col"].into())
            .attributes(options.attributes.clone())
            .build(store, "/")
            .map_err(|e| zarr_err(e.to_string()))?;
        array.store_metadata().map_err(|e| zarr_err(e.to_string()))?;
        let raw =
            (options.compression == Compression::None && options.dtype == Dtype::F64 && cfg!(target_endian = "little"))
                .then_some(RawLayout { crc: options.checksum });
        Ok(Self {
            path,
            array,
            grid,
            chunk_shape: (cr, cc),
            element: options.dtype,
            raw,
            sharded: false,
            direct: false,
            zstd: false,
        })
    }

    /// Writes `values` as a new 1-D Zarr v3 array of `options.dtype` at `path` (which must not
    /// exist), in one chunk, with the codecs `options` gives a matrix (the crc32c checksum by
    /// default): singular values beside their vectors.
    pub fn write_vector(path: impl AsRef<Path>, values: &[f64], options: &ZarrOptions) -> StorageResult<()> {
        let (path, store) = new_array_dir(path.as_ref())?;
        let zarr_err = |message: String| StorageError::Zarr { path: path.clone(), message };
        let n = values.len() as u64;
        let mut builder = match options.dtype {
            Dtype::F64 => ArrayBuilder::new(vec![n], vec![n.max(1)], data_type::float64(), 0.0f64),
            Dtype::F32 => ArrayBuilder::new(vec![n], vec![n.max(1)], data_type::float32(), 0.0f32),
        };
        let array = builder
            .bytes_to_bytes_codecs(codecs(options, &path)?)
            .attributes(options.attributes.clone())
            .build(store, "/")
            .map_err(|e| zarr_err(e.to_string()))?;
        array.store_metadata().map_err(|e| zarr_err(e.to_string()))?;
        if !values.is_empty() {
            let stored = match options.dtype {
                Dtype::F64 => array.store_chunk(&[0], values),
                Dtype::F32 => array.store_chunk(&[0], narrow(values)),
            };
            stored.map_err(|e| zarr_err(e.to_string()))?;
        }
        Ok(())
    }
}
