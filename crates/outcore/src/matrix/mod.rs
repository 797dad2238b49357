//! Chunked matrices: a chunk store seen as a matrix, possibly transposed.
//!
//! A [`ChunkedMatrix`] is a view: the chunks stay in their [`ChunkStore`] (Zarr, `.npy`,
//! memory, or [`GeneratedStore`], which computes them on demand). Algorithms read it through a
//! [`MatrixReader`], which registers every chunk with the buffer manager as a clean block and
//! copies row ranges into column-major faer matrices.

pub(crate) mod borrowed;
mod generate;
mod lanes;
mod random;
mod reader;
pub(crate) mod sparse;
mod window;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use faer::MatRef;
use outcore_storage::{
    BufferManager, ChunkExtent, ChunkGrid, ChunkIndex, ChunkStore, CsrStore, Knob, NpyStore, ReadMode, StorageError,
    TranscodedStore,
};

use generate::GeneratedStore;
pub use random::Distribution;
pub(crate) use random::fill_row;
pub(crate) use reader::MatrixReader;
use window::WindowSource;

use crate::error::{Error, Result};

/// Values per row block when a chunk is streamed (256 KiB: stays in L2).
const ROW_BLOCK_VALUES: usize = 32 * 1024;

/// A matrix stored as chunks, possibly viewed transposed.
#[derive(Clone, Debug)]
pub struct ChunkedMatrix {
    store: Arc<dyn ChunkStore>,
    /// For generated or borrowed matrices: windows are copied straight into the destination.
    windows: Option<Arc<dyn WindowSource>>,
    /// For sparse matrices: the nonzeros, which products read where they lie.
    sparse: Option<Arc<CsrStore>>,
    transposed: bool,
}

/// Passes over a compressed store from which its chunks are decoded once into raw local
/// copies: read twice, decoding again costs less than writing and reading back a copy
/// (docs/decisions.md, "Decode once").
const TRANSCODE_MIN_PASSES: usize = 3;

impl ChunkedMatrix {
    /// The matrix held by `store`.
    pub fn from_store(store: Arc<dyn ChunkStore>) -> Self {
        Self { store, windows: None, sparse: None, transposed: false }
    }

    /// A sparse matrix in CSR form. The randomized SVD and PCA multiply by its nonzeros where
    /// they lie (work in proportion to them, no dense copy); TSQR and the other exact
    /// algorithms read it one dense row block at a time. A CSC matrix is the CSR matrix of its
    /// transpose: `ChunkedMatrix::from_csr(csr_of_transpose).t()`.
    pub fn from_csr(store: CsrStore) -> Self {
        let store = Arc::new(store);
        Self { store: store.clone(), windows: None, sparse: Some(store), transposed: false }
    }

    /// The caller's matrix, lent until the returned lease drops.
    pub(crate) fn borrowed<'a>(
        a: MatRef<'a, f64>,
        chunk_rows: usize,
        chunk_cols: usize,
    ) -> Result<(Self, borrowed::Lease<'a>)> {
        let (store, lease) = borrowed::BorrowedStore::lend(a, chunk_rows, chunk_cols)?;
        Ok((Self { store: store.clone(), windows: Some(store), sparse: None, transposed: false }, lease))
    }

    /// A seeded random `rows x cols` matrix in `chunk_rows x chunk_cols` chunks, generated on
    /// demand and never stored. Entry (i, j) depends only on the seed, the distribution, i and
    /// j: not on the chunking, the scheduler or the order of reads.
    pub fn generated(
        distribution: Distribution,
        seed: u64,
        rows: usize,
        cols: usize,
        chunk_rows: usize,
        chunk_cols: usize,
    ) -> Result<Self> {
        let grid = ChunkGrid::new(rows, cols, chunk_rows, chunk_cols)?;
        let generator = Arc::new(GeneratedStore::new(grid, distribution, seed));
        Ok(Self { store: generator.clone(), windows: Some(generator), sparse: None, transposed: false })
    }

    /// Opens a Zarr array directory, or a `.npy` file (read in row panels of about 8 MiB).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, ReadMode::Buffered)
    }

    /// Opens a Zarr array directory read as `mode` says, or a `.npy` file (read buffered:
    /// [`ReadMode::Direct`] is refused for it).
    pub fn open_with(path: impl AsRef<Path>, mode: ReadMode) -> Result<Self> {
        let path = path.as_ref();
        let is_npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
        if is_npy && mode == ReadMode::Direct {
            return Err(Error::invalid(
                Knob::ReadMode,
                format!(
                    "{} is a .npy file, which is read through the page cache, not with direct I/O; read it buffered",
                    path.display()
                ),
            ));
        }
        if is_npy {
            return Ok(Self::from_store(Arc::new(NpyStore::open(path)?)));
        }
        #[cfg(feature = "zarr")]
        return Ok(Self::from_store(Arc::new(outcore_storage::ZarrStore::open_with(path, mode)?)));
        #[cfg(not(feature = "zarr"))]
        Err(Error::invalid(
            Knob::Input,
            format!(
                "{} is not a .npy file, and this build of outcore reads no Zarr arrays; enable its `zarr` feature",
                path.display()
            ),
        ))
    }

    /// The transpose of this matrix (a view; nothing is copied).
    pub fn t(&self) -> Self {
        Self { transposed: !self.transposed, ..self.clone() }
    }

    /// True when any window is copied straight from the source (a generated matrix or one in
    /// the caller's memory): panels need not follow the chunk grid.
    pub(crate) fn reads_windows(&self) -> bool {
        self.windows.is_some()
    }

    /// True unless keeping chunks in the buffer manager is pointless (the matrix is in RAM, or
    /// sparse: its dense chunks would take more room than its nonzeros).
    pub(crate) fn worth_caching(&self) -> bool {
        self.sparse.is_none() && self.windows.as_ref().is_none_or(|w| w.worth_caching())
    }

    /// This matrix with each chunk decoded once, for an algorithm that reads it `passes`
    /// times without caching it: a store that decodes (a compressed Zarr array) read
    /// [`TRANSCODE_MIN_PASSES`] times or more is wrapped in a [`TranscodedStore`], raw copies
    /// under the pool's spill parent where they take at most half its free space. Otherwise
    /// the matrix as it is.
    pub(crate) fn decoded_once(&self, passes: usize, cached: bool, pool: &BufferManager) -> Result<Self> {
        if passes < TRANSCODE_MIN_PASSES || cached || self.windows.is_some() || !self.store.decodes() {
            return Ok(self.clone());
        }
        match TranscodedStore::new(self.store.clone(), pool.config().spill_parent.as_deref())? {
            Some(store) => {
                Ok(Self { store: Arc::new(store), windows: None, sparse: None, transposed: self.transposed })
            }
            None => Ok(self.clone()),
        }
    }

    /// True for a sparse matrix ([`from_csr`](Self::from_csr)).
    pub fn is_sparse(&self) -> bool {
        self.sparse.is_some()
    }

    /// True when this is a transposed view of its store.
    pub fn is_transposed(&self) -> bool {
        self.transposed
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ChunkStore> {
        &self.store
    }

    /// The chunk grid as seen through the view.
    pub fn grid(&self) -> ChunkGrid {
        let grid = self.store.grid();
        if self.transposed { grid.transposed() } else { grid }
    }

    /// `(rows, cols)` as seen through the view.
    pub fn shape(&self) -> (usize, usize) {
        self.grid().shape()
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.shape().0
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.shape().1
    }

    /// What this matrix is, for messages.
    pub fn describe(&self) -> String {
        let d = self.store.describe();
        if self.transposed { format!("transpose of {d}") } else { d }
    }

    /// Refuses empty matrices, which no algorithm can factor.
    pub(crate) fn check_not_empty(&self) -> Result<()> {
        let (rows, cols) = self.shape();
        if rows == 0 || cols == 0 {
            return Err(Error::invalid(
                Knob::Input,
                format!("{} is empty ({rows} x {cols}); there is nothing to factor", self.describe()),
            ));
        }
        Ok(())
    }

    /// Bytes a [`MatrixReader`] read of `rows` x `cols` needs: streaming (`cache = false`), the
    /// largest chunk it touches (the chunk buffer, reused); caching, every chunk it touches
    /// (loaded into the buffer manager). Plus the store's decode scratch.
    pub(crate) fn read_working_set(&self, rows: Range<usize>, cols: Range<usize>, cache: bool) -> u64 {
        let grid = self.grid();
        let (cr, cc) = grid.chunk_shape();
        let chunk_rows = rows.start / cr..rows.end.div_ceil(cr);
        let chunk_cols = cols.start / cc..cols.end.div_ceil(cc);
        let sizes = chunk_rows
            .flat_map(|r| chunk_cols.clone().map(move |c| ChunkIndex::new(r, c)))
            .filter_map(|i| grid.extent(i).ok())
            .map(|e| e.bytes());
        let chunks = if cache { sizes.sum() } else { (self.buffer_len(false) * size_of::<f64>()) as u64 };
        chunks + self.store.read_scratch_bytes()
    }

    /// Values of the buffer a streaming read needs: a row block when the store streams rows,
    /// else the largest chunk; none when caching (chunks are pinned instead).
    pub(crate) fn buffer_len(&self, cache: bool) -> usize {
        if cache {
            return 0;
        }
        let grid = self.store.grid();
        let (cr, cc) = grid.chunk_shape();
        let (rows, cols) = grid.shape();
        let (cr, cc) = (cr.min(rows), cc.min(cols));
        if self.store.streams_rows() { (ROW_BLOCK_VALUES / cc.max(1)).clamp(1, cr.max(1)) * cc } else { cr * cc }
    }

    pub(super) fn physical(&self, index: ChunkIndex) -> ChunkIndex {
        if self.transposed { ChunkIndex::new(index.col, index.row) } else { index }
    }

    /// Reads the whole matrix into RAM (for tests and small matrices).
    pub fn to_dense(&self) -> Result<faer::Mat<f64>> {
        let (rows, cols) = self.shape();
        let mut out = faer::Mat::zeros(rows, cols);
        let grid = self.grid();
        for index in grid.indices() {
            let e = grid.extent(index)?;
            let chunk = self.store.read_chunk(self.physical(index))?;
            let view = self.chunk_view(&chunk, index, e)?;
            out.as_mut().submatrix_mut(e.row0, e.col0, e.rows, e.cols).copy_from(view);
        }
        Ok(out)
    }

    /// The values of chunk `index`'s physical chunk (row-major) as the logical chunk with
    /// extent `e`; a store that gave another number of values broke its contract.
    pub(super) fn chunk_view<'a>(
        &self,
        chunk: &'a [f64],
        index: ChunkIndex,
        e: ChunkExtent,
    ) -> Result<MatRef<'a, f64>> {
        let (rows, cols) = if self.transposed { (e.cols, e.rows) } else { (e.rows, e.cols) };
        if chunk.len() != rows * cols {
            let physical = self.physical(index);
            return Err(StorageError::wrong_chunk_size(self.store.as_ref(), physical, chunk.len(), (rows, cols)).into());
        }
        let view = MatRef::from_row_major_slice(chunk, rows, cols);
        Ok(if self.transposed { view.transpose() } else { view })
    }
}
