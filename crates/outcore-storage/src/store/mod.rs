//! Chunk stores: where chunks live when they are not in RAM.
//!
//! A [`ChunkStore`] is a 2-D grid of f64 chunks ([`ChunkGrid`]) that can read and write one
//! chunk at a time. Chunks are row-major (C order, as in Zarr and numpy) and edge chunks are
//! trimmed to the matrix: a chunk of a 7 x 5 matrix in 3 x 2 chunks at grid position (2, 2) holds
//! exactly one value.
//!
//! Backends: [`ZarrStore`] (Zarr v3 written by outcore, v2 and v3 written by Python's zarr;
//! feature `zarr`, on by default), [`NpyStore`] (a `.npy` file),
//! [`CsrStore`] (a sparse matrix in RAM), [`MemoryStore`] (tests, small data) and [`TranscodedStore`] (raw copies of a compressed
//! store's chunks, for plans that read it more than once).

mod csr;
mod memory;
mod npy;
mod transcode;
#[cfg(feature = "zarr")]
mod zarr;

use std::fmt;

pub use csr::{Csr, CsrArrays, CsrParts, CsrRows, CsrStore, SparseIndex};
pub use memory::MemoryStore;
#[cfg(feature = "zarr")]
pub(crate) use memory::SliceRows;
pub use npy::NpyStore;
pub use transcode::TranscodedStore;
#[cfg(feature = "zarr")]
pub use zarr::{Compression, ZarrOptions, ZarrStore};

use crate::error::StorageResult;
use crate::grid::{ChunkGrid, ChunkIndex};

/// How an opened array's chunk files are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Through the page cache, with the kernel's read-ahead, and the next chunk down the column
    /// announced before it is read (`posix_fadvise(WILLNEED)`). The default: a store that fits
    /// in RAM is read from it again, and on a store larger than RAM two runs of
    /// `benches/perf.py` disagreed on which mode is faster (docs/perf).
    #[default]
    Buffered,
    /// Direct I/O (`O_DIRECT`, Linux): chunk files go from the disk into page-aligned buffers
    /// without the page cache, one synchronous request per chunk and no read-ahead. Keeps a
    /// store larger than RAM from evicting everything else cached. Uncompressed float64
    /// arrays then go through zarrs' codec path instead of outcore's raw reader. Refused where
    /// the file system does not allow it.
    Direct,
}

/// The element type a store keeps on disk. Values are f64 in memory whatever it is: float32
/// is widened on read and rounded on write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dtype {
    /// float64.
    #[default]
    F64,
    /// float32.
    F32,
}

impl Dtype {
    /// Bytes of one value.
    pub const fn size(self) -> usize {
        match self {
            Self::F64 => 8,
            Self::F32 => 4,
        }
    }
}

/// A 2-D grid of f64 chunks that can be read and written one chunk at a time.
///
/// Implementations are shared between worker threads, so every method takes `&self`. A store
/// of one's own needs [`grid`](Self::grid) and [`read_chunk_into`](Self::read_chunk_into); the
/// rest have defaults (read-only, no streaming, no scratch). See the `custom_store` example.
pub trait ChunkStore: Send + Sync + fmt::Debug {
    /// Shape of the matrix and of its chunks.
    fn grid(&self) -> ChunkGrid;

    /// Reads chunk `index`: `rows * cols` values of its (trimmed) extent, row-major.
    fn read_chunk(&self, index: ChunkIndex) -> StorageResult<Vec<f64>> {
        let mut out = Vec::new();
        self.read_chunk_into(index, &mut out)?;
        Ok(out)
    }

    /// Reads chunk `index` into `out` (resized to the chunk), reusing its allocation, so a
    /// reader streaming through chunks does not allocate each time.
    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()>;

    /// Writes chunk `index` from `rows * cols` row-major values of its (trimmed) extent. A
    /// store that cannot be written (the default) refuses with [`StorageError::ReadOnly`].
    ///
    /// [`StorageError::ReadOnly`]: crate::StorageError::ReadOnly
    fn write_chunk(&self, index: ChunkIndex, data: &[f64]) -> StorageResult<()> {
        let _ = (index, data);
        Err(crate::error::StorageError::ReadOnly { store: self.describe() })
    }

    /// A short description for messages, e.g. `Zarr array /data/x.zarr` (by default the
    /// store's type name).
    fn describe(&self) -> String {
        format!("a store of type {}", std::any::type_name::<Self>())
    }

    /// The file or directory holding the data, for stores on disk: lets a run refuse an output
    /// that would overwrite its own input.
    fn location(&self) -> Option<&std::path::Path> {
        None
    }

    /// The element type kept on disk (results computed from a float32 input are written as
    /// float32 too).
    fn dtype(&self) -> Dtype {
        Dtype::F64
    }

    /// Transient bytes, beyond the chunk's own values, that reading the largest chunk may
    /// allocate (encoded bytes, decode buffers). Memory plans reserve this too.
    fn read_scratch_bytes(&self) -> u64 {
        0
    }

    /// Transient bytes, beyond the values passed in, that writing the largest chunk may allocate
    /// (padding, encoded bytes). Memory plans reserve this too.
    fn write_scratch_bytes(&self) -> u64 {
        0
    }

    /// True when reading a chunk decodes it (a compression codec): a raw copy reads faster on
    /// later passes ([`TranscodedStore`]).
    fn decodes(&self) -> bool {
        false
    }

    /// True when [`chunk_rows`](Self::chunk_rows) streams chunks in row blocks, so a reader
    /// needs memory for a block rather than a chunk.
    fn streams_rows(&self) -> bool {
        false
    }

    /// A reader of chunk `index` in consecutive row blocks, or `None` when the backend can only
    /// read whole chunks (compressed formats).
    fn chunk_rows(&self, _index: ChunkIndex) -> StorageResult<Option<Box<dyn ChunkRows + '_>>> {
        Ok(None)
    }
}

/// One chunk read as consecutive row blocks, so a chunk larger than the reader wants to hold
/// can be processed a block at a time. Integrity (a checksum) is verified by
/// [`finish`](Self::finish), after the last row: callers must not let anything computed from
/// the rows become visible before it succeeds.
pub trait ChunkRows: Send {
    /// Reads the next `rows` rows of the chunk (row-major, all its columns) into `out`.
    fn next_rows(&mut self, rows: usize, out: &mut Vec<f64>) -> StorageResult<()>;

    /// Checks the chunk's integrity once every row was read.
    fn finish(self: Box<Self>) -> StorageResult<()>;
}

/// Reads a whole store into one row-major vector (for tests and small matrices).
pub fn read_matrix(store: &dyn ChunkStore) -> StorageResult<Vec<f64>> {
    let grid = store.grid();
    let (rows, cols) = grid.shape();
    let mut out = vec![0.0; rows * cols];
    for index in grid.indices() {
        let e = grid.extent(index)?;
        let chunk = store.read_chunk(index)?;
        for (r, src) in chunk.chunks_exact(e.cols.max(1)).enumerate().take(e.rows) {
            let start = (e.row0 + r) * cols + e.col0;
            out[start..start + e.cols].copy_from_slice(src);
        }
    }
    Ok(out)
}

/// Writes a row-major `rows x cols` matrix into every chunk of `store`.
pub fn write_matrix(store: &dyn ChunkStore, data: &[f64]) -> StorageResult<()> {
    let grid = store.grid();
    let (rows, cols) = grid.shape();
    if data.len() != rows * cols {
        return Err(crate::StorageError::InvalidArgument {
            what: "matrix data",
            reason: format!("{} holds {rows} x {cols} = {} values, got {}", store.describe(), rows * cols, data.len()),
        });
    }
    for index in grid.indices() {
        store.write_chunk(index, &extract_chunk(&grid, index, data)?)?;
    }
    Ok(())
}

/// Copies chunk `index` out of a row-major `rows x cols` matrix.
pub fn extract_chunk(grid: &ChunkGrid, index: ChunkIndex, data: &[f64]) -> StorageResult<Vec<f64>> {
    let e = grid.extent(index)?;
    let cols = grid.cols();
    let mut chunk = Vec::with_capacity(e.len());
    for r in e.row0..e.row0 + e.rows {
        chunk.extend_from_slice(&data[r * cols + e.col0..r * cols + e.col0 + e.cols]);
    }
    Ok(chunk)
}
