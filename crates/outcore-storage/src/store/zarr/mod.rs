//! Zarr arrays on a local directory: zarrs for metadata and every codec chain, except two
//! encodings outcore reads itself straight into the caller's buffer (`raw`: uncompressed
//! float64; `zstd`: zarr-python's default), from chunk files opened buffered or with direct
//! I/O (`file`). `meta` reads what an array is before zarrs opens it; `options` and `create`
//! make new arrays.

mod create;
mod file;
mod meta;
mod options;
mod raw;
mod zstd;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::array::data_type::{Float32DataType, Float64DataType};
use zarrs::array::{Array, ArrayError, ArraySubset};
use zarrs::filesystem::{FilesystemStore, FilesystemStoreOptions};

use file::{ChunkFile, DIRECT_ALIGN, announce, corrupted, direct_io_allowed};
use meta::{Layout, OwnCodec, RawLayout, inspect_array_metadata};
pub use options::{Compression, ZarrOptions};

use crate::error::{StorageError, StorageResult};
use crate::grid::{ChunkGrid, ChunkIndex};
use crate::store::{ChunkRows, ChunkStore, Dtype, ReadMode, SliceRows};

/// A 2-D Zarr array (v3, or v2 from Python's zarr) in a directory.
///
/// float64 and float32 arrays are read (float32 widened to f64); other data types are refused
/// with [`StorageError::UnsupportedDtype`]. Arrays outcore creates are Zarr v3, float64.
///
/// Uncompressed float64 arrays (codecs `bytes` little-endian, optionally then `crc32c`: what
/// outcore creates by default) take a direct path: chunk files are read into and written from
/// the caller's buffer with one system call and the checksum is checked in place, instead of
/// going through zarrs' codec pipeline, which copies a chunk three times. zarrs handles
/// metadata and every other codec chain.
pub struct ZarrStore {
    path: PathBuf,
    array: Array<FilesystemStore>,
    grid: ChunkGrid,
    chunk_shape: (usize, usize),
    element: Dtype,
    raw: Option<RawLayout>,
    /// Sharded arrays are read by inner chunk (the grid's chunks), never by whole shard.
    sharded: bool,
    /// Chunk files are read with direct I/O.
    direct: bool,
    /// Chunks are zstd frames decoded by outcore (see [`OwnCodec::Zstd`]).
    zstd: bool,
}

impl std::fmt::Debug for ZarrStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrStore").field("path", &self.path).field("grid", &self.grid).finish()
    }
}

/// The largest chunk (as stored, edge padding included) outcore opens: 1 TiB. Larger ones
/// cannot be read into any machine's memory, and their sizes would overflow estimates.
const MAX_CHUNK_BYTES: usize = 1 << 40;

/// `values` rounded to float32.
fn narrow(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

impl ZarrStore {
    /// Opens an existing 2-D float64 or float32 array (Zarr v3 or v2) at `path`, read
    /// through the page cache ([`ReadMode::Buffered`]).
    pub fn open(path: impl AsRef<Path>) -> StorageResult<Self> {
        Self::open_with(path, ReadMode::Buffered)
    }

    /// Opens an existing 2-D float64 or float32 array (Zarr v3 or v2) at `path`, its chunk
    /// files read as `mode` says.
    pub fn open_with(path: impl AsRef<Path>, mode: ReadMode) -> StorageResult<Self> {
        let path = path.as_ref().to_path_buf();
        let layout = inspect_array_metadata(&path)?;
        let direct = match mode {
            ReadMode::Buffered => false,
            ReadMode::Direct if direct_io_allowed(&path) => true,
            ReadMode::Direct => {
                return Err(StorageError::InvalidArgument {
                    what: "read mode",
                    reason: format!(
                        "the file system holding {} refuses direct I/O (O_DIRECT); read it buffered",
                        path.display()
                    ),
                });
            }
        };
        // Direct reads of raw chunks go through zarrs (outcore's raw reader reads buffered).
        let own_codec = layout.own_codec.filter(|f| !(direct && matches!(f, OwnCodec::Raw(_))));
        Self::open_array(&path, Layout { own_codec, ..layout }, direct)
    }

    /// Opens the array at `path`, whose metadata `inspect_array_metadata` read.
    fn open_array(path: &Path, layout: Layout, direct: bool) -> StorageResult<Self> {
        let Layout { chunk_shape, own_codec, inner } = layout;
        let path = path.to_path_buf();
        let zarr_err = |message: String| StorageError::Zarr { path: path.clone(), message };
        let mut options = FilesystemStoreOptions::default();
        options.direct_io(direct);
        let store = Arc::new(FilesystemStore::new_with_options(&path, options).map_err(|e| zarr_err(e.to_string()))?);
        let array = Array::open(store, "/").map_err(|e| {
            let message = e.to_string();
            match message.split_once("codec ").and_then(|(_, rest)| rest.strip_suffix(" is not supported")) {
                Some(codec) => StorageError::NotAnArray {
                    path: path.clone(),
                    reason: format!(
                        "its chunks are encoded with the {codec} codec, which outcore does not decode (it reads zstd, gzip, zlib, bz2, blosc, crc32c, sharding, transpose and uncompressed chunks); rewrite it with one of those, e.g. in Python `dask.array.from_zarr(IN).to_zarr(OUT)` (zarr's default, zstd)"
                    ),
                },
                None => zarr_err(message),
            }
        })?;
        let shape = array.shape().to_vec();
        if shape.len() != 2 {
            return Err(StorageError::NotTwoDimensional { path, ndim: shape.len() });
        }
        let element = if array.data_type().is::<Float64DataType>() {
            Dtype::F64
        } else if array.data_type().is::<Float32DataType>() {
            Dtype::F32
        } else {
            return Err(StorageError::UnsupportedDtype { path, dtype: array.data_type().to_string() });
        };
        let Some((cr, cc)) = chunk_shape else {
            return Err(StorageError::NotAnArray {
                path,
                reason: "its chunk grid is not a regular 2-D grid; rechunk it with zarr to regular chunks".into(),
            });
        };
        // Zarr pads edge chunks to the full chunk shape: a chunk must be readable as stored.
        let chunk_bytes = cr.checked_mul(cc).and_then(|n| n.checked_mul(size_of::<f64>()));
        if chunk_bytes.is_none_or(|b| b > MAX_CHUNK_BYTES) {
            return Err(StorageError::NotAnArray {
                path,
                reason: format!(
                    "its chunk shape {cr} x {cc} is too large for any chunk to be read; rechunk it with zarr to chunks of a few MiB"
                ),
            });
        }
        // A sharded array's unit of reading is its inner chunk: zarrs decodes only the inner
        // chunks a read asks for, so a shard is never held whole.
        let (gr, gc) = inner.unwrap_or((cr, cc));
        let grid = ChunkGrid::new(shape[0] as usize, shape[1] as usize, gr, gc)?;
        let little = cfg!(target_endian = "little");
        let raw = match own_codec {
            Some(OwnCodec::Raw(raw)) if element == Dtype::F64 && little => Some(raw),
            _ => None,
        };
        let zstd = little && own_codec == Some(OwnCodec::Zstd(element));
        Ok(Self { path, array, grid, chunk_shape: (cr, cc), element, raw, sharded: inner.is_some(), direct, zstd })
    }

    /// True when chunk files are read with direct I/O (see [`ReadMode`]).
    pub fn reads_direct(&self) -> bool {
        self.direct
    }

    /// The array's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file holding chunk `index` of the grid (its shard's, for a sharded array).
    fn chunk_file(&self, index: ChunkIndex) -> PathBuf {
        let (gr, gc) = self.grid.chunk_shape();
        let (cr, cc) = self.chunk_shape;
        let key = [(index.row * gr / cr.max(1)) as u64, (index.col * gc / cc.max(1)) as u64];
        self.path.join(self.array.chunk_key(&key).as_str())
    }

    fn map_chunk_error(&self, index: ChunkIndex, error: ArrayError) -> StorageError {
        match error {
            ArrayError::CodecError(e) => StorageError::CorruptedChunk {
                path: self.path.clone(),
                index,
                file: self.chunk_file(index),
                reason: e.to_string(),
            },
            ArrayError::StorageError(zarrs::storage::StorageError::IOError(e)) => {
                StorageError::io(self.chunk_file(index), std::io::Error::new(e.kind(), e.to_string()))
            }
            other => StorageError::Zarr { path: self.path.clone(), message: format!("chunk {index}: {other}") },
        }
    }

    fn corrupted(&self, index: ChunkIndex, reason: String) -> StorageError {
        corrupted(&self.path, index, self.chunk_file(index), reason)
    }

    /// Opens chunk `index`'s file (with `O_DIRECT` when reads are direct), or `None` when Zarr
    /// never stored it: a chunk all of the fill value, here 0.
    fn open_stored(&self, index: ChunkIndex) -> StorageResult<Option<ChunkFile<'_>>> {
        ChunkFile::open(&self.path, index, self.chunk_file(index), self.direct)
    }

    /// Asks the kernel to start reading the chunk below `index` (the next one a reader going
    /// down the rows wants, while this one is decoded and factored), unless reads are direct
    /// or the array is sharded (the next inner chunk is in the same file). A hint: failures
    /// are ignored.
    fn announce_next(&self, index: ChunkIndex) {
        if !self.direct && !self.sharded && index.row + 1 < self.grid.grid_shape().0 {
            announce(&self.chunk_file(ChunkIndex::new(index.row + 1, index.col)));
        }
    }
}

impl ChunkStore for ZarrStore {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn location(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn dtype(&self) -> Dtype {
        self.element
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let extent = self.grid.extent(index)?;
        self.announce_next(index);
        if self.raw.is_some() || self.zstd {
            let Some(chunk) = self.open_stored(index)? else {
                out.clear();
                out.resize(extent.len(), 0.0);
                return Ok(());
            };
            return match self.raw {
                Some(raw) => raw::read(chunk, raw, self.chunk_shape, extent, out),
                None => zstd::read(chunk, self.element, self.chunk_shape, extent, out),
            };
        }
        if self.sharded {
            let subset = ArraySubset::new_with_ranges(&[
                extent.row0 as u64..(extent.row0 + extent.rows) as u64,
                extent.col0 as u64..(extent.col0 + extent.cols) as u64,
            ]);
            *out = match self.element {
                Dtype::F64 => self.array.retrieve_array_subset::<Vec<f64>>(&subset),
                Dtype::F32 => self
                    .array
                    .retrieve_array_subset::<Vec<f32>>(&subset)
                    .map(|v| v.into_iter().map(f64::from).collect()),
            }
            .map_err(|e| self.map_chunk_error(index, e))?;
            if out.len() != extent.len() {
                return Err(self.corrupted(index, format!("decoded {} values, expected {}", out.len(), extent.len())));
            }
            return Ok(());
        }
        let key = [index.row as u64, index.col as u64];
        let full = match self.element {
            Dtype::F64 => self.array.retrieve_chunk::<Vec<f64>>(&key),
            Dtype::F32 => self.array.retrieve_chunk::<Vec<f32>>(&key).map(|v| v.into_iter().map(f64::from).collect()),
        }
        .map_err(|e| self.map_chunk_error(index, e))?;
        let (cr, cc) = self.chunk_shape;
        if full.len() != cr * cc {
            return Err(StorageError::CorruptedChunk {
                path: self.path.clone(),
                index,
                file: self.chunk_file(index),
                reason: format!("decoded {} values, expected {}", full.len(), cr * cc),
            });
        }
        *out = full;
        raw::trim_to_extent(out, cc, extent.rows, extent.cols);
        Ok(())
    }

    fn write_chunk(&self, index: ChunkIndex, data: &[f64]) -> StorageResult<()> {
        let extent = self.grid.check_chunk_len(index, data.len())?;
        if let Some(raw) = self.raw {
            return raw::write(&self.chunk_file(index), raw, self.chunk_shape, extent, data);
        }
        if self.sharded {
            let subset = ArraySubset::new_with_ranges(&[
                extent.row0 as u64..(extent.row0 + extent.rows) as u64,
                extent.col0 as u64..(extent.col0 + extent.cols) as u64,
            ]);
            let result = match self.element {
                Dtype::F64 => self.array.store_array_subset(&subset, data),
                Dtype::F32 => self.array.store_array_subset(&subset, narrow(data)),
            };
            return result.map_err(|e| StorageError::Zarr {
                path: self.path.clone(),
                message: format!("writing chunk {index}: {e}"),
            });
        }
        let key = [index.row as u64, index.col as u64];
        let (cr, cc) = self.chunk_shape;
        let padded;
        let full = if extent.rows == cr && extent.cols == cc {
            data
        } else {
            // Zarr stores edge chunks at full size; pad with the fill value.
            let mut values = vec![0.0f64; cr * cc];
            for (r, src) in data.chunks_exact(extent.cols).enumerate() {
                values[r * cc..r * cc + extent.cols].copy_from_slice(src);
            }
            padded = values;
            &padded
        };
        let result = match self.element {
            Dtype::F64 => self.array.store_chunk(&key, full),
            Dtype::F32 => self.array.store_chunk(&key, narrow(full)),
        };
        result.map_err(|e| match e {
            ArrayError::StorageError(zarrs::storage::StorageError::IOError(e)) => {
                StorageError::io(self.chunk_file(index), std::io::Error::new(e.kind(), e.to_string()))
            }
            other => StorageError::Zarr { path: self.path.clone(), message: format!("writing chunk {index}: {other}") },
        })
    }

    fn describe(&self) -> String {
        let direct = if self.direct { " (read with direct I/O)" } else { "" };
        format!("Zarr array {}{direct}", self.path.display())
    }

    fn streams_rows(&self) -> bool {
        self.raw.is_some()
    }

    fn decodes(&self) -> bool {
        self.raw.is_none()
    }

    fn chunk_rows(&self, index: ChunkIndex) -> StorageResult<Option<Box<dyn ChunkRows + '_>>> {
        let Some(raw) = self.raw else { return Ok(None) };
        let extent = self.grid.extent(index)?;
        let Some(chunk) = self.open_stored(index)? else {
            let values = std::borrow::Cow::Owned(vec![0.0; extent.len()]);
            return Ok(Some(Box::new(SliceRows { values, cols: extent.cols, next: 0 })));
        };
        Ok(Some(Box::new(raw::RawRows::new(chunk, raw, self.chunk_shape, extent)?)))
    }

    fn write_scratch_bytes(&self) -> u64 {
        // Raw chunks stream through a 64 KiB buffer. Through zarrs: the padded chunk, the
        // encoded bytes and the checksummed copy.
        let (cr, cc) = self.chunk_shape;
        if self.raw.is_some() { 64 << 10 } else { 3 * (cr * cc * size_of::<f64>()) as u64 }
    }

    fn read_scratch_bytes(&self) -> u64 {
        // Raw chunks are read straight into the caller's buffer. Through zarrs each codec
        // consumes its input and returns a new buffer (encoded bytes, checksum-stripped copy,
        // decompressed bytes, the values), so at most two of them, each up to a full chunk (an
        // inner chunk of a sharded array, plus its shard's index), live at once (checked
        // against a measured peak in docs/decisions.md).
        let (cr, cc) = self.grid.chunk_shape();
        let index = if self.sharded {
            (self.chunk_shape.0 / cr.max(1) + 1) as u64 * (self.chunk_shape.1 / cc.max(1) + 1) as u64 * 16
        } else {
            0
        };
        if self.raw.is_some() {
            0
        } else if self.zstd {
            // The encoded file, in the thread's aligned buffer; the decompressor
            // writes into the chunk itself.
            let encoded = cr * cc * self.element.size();
            (encoded + encoded / 128 + 3 * DIRECT_ALIGN) as u64
        } else {
            2 * (cr * cc * size_of::<f64>()) as u64 + index
        }
    }
}
