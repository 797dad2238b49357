//! Chunked matrices: a chunk store seen as a matrix, possibly transposed.
//!
//! A [`ChunkedMatrix`] is a view: the chunks stay in their [`ChunkStore`] (Zarr, `.npy`,
//! memory, or [`GeneratedStore`], which computes them on demand). Algorithms read it through a
//! [`MatrixReader`], which registers every chunk with the buffer manager as a clean block and
//! copies row ranges into column-major faer matrices.

mod generate;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use faer::reborrow::ReborrowMut;
use faer::{MatMut, MatRef};
use outcore_storage::{
    BlockId, BufferManager, ChunkExtent, ChunkGrid, ChunkIndex, ChunkStore, NpyStore, Reservation, ZarrStore,
};

pub use generate::{Distribution, GeneratedStore, TILE, fill_row, tile_rng};

/// Values per block when generating a window directly (256 KiB: stays in L2).
const GENERATED_BLOCK_VALUES: usize = 32 * 1024;

use crate::{Error, Result};

/// A matrix stored as chunks, possibly viewed transposed.
#[derive(Clone, Debug)]
pub struct ChunkedMatrix {
    store: Arc<dyn ChunkStore>,
    /// Set for generated matrices: windows are generated directly, without a chunk buffer.
    generator: Option<GeneratedStore>,
    transposed: bool,
}

impl ChunkedMatrix {
    /// The matrix held by `store`.
    pub fn from_store(store: Arc<dyn ChunkStore>) -> Self {
        Self { store, generator: None, transposed: false }
    }

    /// A seeded random `rows x cols` matrix in `chunk_rows x chunk_cols` chunks, generated on
    /// demand (see [`GeneratedStore`]).
    pub fn generated(
        distribution: Distribution,
        seed: u64,
        rows: usize,
        cols: usize,
        chunk_rows: usize,
        chunk_cols: usize,
    ) -> Result<Self> {
        let grid = ChunkGrid::new(rows, cols, chunk_rows, chunk_cols)?;
        let generator = GeneratedStore::new(grid, distribution, seed);
        Ok(Self { store: Arc::new(generator.clone()), generator: Some(generator), transposed: false })
    }

    /// Opens a Zarr array directory, or a `.npy` file (read in row panels of about 8 MiB).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let is_npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
        let store: Arc<dyn ChunkStore> =
            if is_npy { Arc::new(NpyStore::open(path)?) } else { Arc::new(ZarrStore::open(path)?) };
        Ok(Self::from_store(store))
    }

    /// The transpose of this matrix (a view; nothing is copied).
    pub fn t(&self) -> Self {
        Self { transposed: !self.transposed, ..self.clone() }
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
    pub fn check_not_empty(&self) -> Result<()> {
        let (rows, cols) = self.shape();
        if rows == 0 || cols == 0 {
            return Err(Error::invalid(
                "matrix",
                format!("{} is empty ({rows} x {cols}); there is nothing to factor", self.describe()),
            ));
        }
        Ok(())
    }

    /// Bytes a [`MatrixReader`] read of `rows` x `cols` needs: streaming (`cache = false`), the
    /// largest chunk it touches (the chunk buffer, reused); caching, every chunk it touches
    /// (loaded into the buffer manager). Plus the store's decode scratch.
    pub fn read_bytes(&self, rows: Range<usize>, cols: Range<usize>, cache: bool) -> u64 {
        let grid = self.grid();
        let (cr, cc) = grid.chunk_shape();
        let chunk_rows = rows.start / cr..rows.end.div_ceil(cr);
        let chunk_cols = cols.start / cc..cols.end.div_ceil(cc);
        let sizes = chunk_rows
            .flat_map(|r| chunk_cols.clone().map(move |c| ChunkIndex::new(r, c)))
            .filter_map(|i| grid.extent(i).ok())
            .map(|e| e.bytes());
        match (&self.generator, cache) {
            (Some(_), false) => GENERATED_BLOCK_VALUES as u64 * 8,
            (_, true) => sizes.sum::<u64>() + self.store.read_scratch_bytes(),
            (None, false) => sizes.max().unwrap_or(0) + self.store.read_scratch_bytes(),
        }
    }

    /// Generates rows `rows` x columns `cols` (of the view) into `dst`, a block of physical
    /// rows at a time through `buf`.
    fn generate_window(
        &self,
        generator: &GeneratedStore,
        rows: Range<usize>,
        cols: Range<usize>,
        mut dst: MatMut<'_, f64>,
        buf: &mut Vec<f64>,
    ) {
        let (prows, pcols) = if self.transposed { (cols, rows) } else { (rows, cols) };
        let width = pcols.len().max(1);
        let block = (GENERATED_BLOCK_VALUES / width).max(1);
        let mut r = prows.start;
        while r < prows.end {
            let n = block.min(prows.end - r);
            buf.resize(n * width, 0.0);
            for (i, row) in buf.chunks_exact_mut(width).enumerate() {
                fill_row(generator.distribution(), generator.seed(), r + i, pcols.start, &mut row[..pcols.len()]);
            }
            let view = MatRef::from_row_major_slice(&buf[..n * pcols.len()], n, pcols.len());
            let offset = r - prows.start;
            if self.transposed {
                dst.rb_mut().submatrix_mut(0, offset, pcols.len(), n).copy_from(view.transpose());
            } else {
                dst.rb_mut().submatrix_mut(offset, 0, n, pcols.len()).copy_from(view);
            }
            r += n;
        }
    }

    fn physical(&self, index: ChunkIndex) -> ChunkIndex {
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
            self.copy_chunk(&chunk, e, out.as_mut().submatrix_mut(e.row0, e.col0, e.rows, e.cols));
        }
        Ok(out)
    }

    /// The values of a physical chunk (row-major) as the logical chunk with extent `e`.
    fn chunk_view<'a>(&self, chunk: &'a [f64], e: ChunkExtent) -> MatRef<'a, f64> {
        if self.transposed {
            MatRef::from_row_major_slice(chunk, e.cols, e.rows).transpose()
        } else {
            MatRef::from_row_major_slice(chunk, e.rows, e.cols)
        }
    }

    fn copy_chunk(&self, chunk: &[f64], e: ChunkExtent, dst: MatMut<'_, f64>) {
        let mut dst = dst;
        dst.copy_from(self.chunk_view(chunk, e));
    }
}

/// Reads a [`ChunkedMatrix`] through the buffer manager during one run.
///
/// Streaming (`cache = false`), chunks are read straight from the store into a buffer the
/// caller reuses, one at a time: a pass over a matrix larger than memory holds one chunk and
/// pushes out nothing. Caching (`cache = true`, for matrices read several times that fit), every
/// chunk is registered with the buffer manager as a clean block and stays in RAM until the LRU
/// needs the room. Registrations are removed when the reader drops.
#[derive(Debug)]
pub struct MatrixReader {
    matrix: ChunkedMatrix,
    manager: BufferManager,
    blocks: Vec<BlockId>,
    cache: bool,
    check_finite: bool,
}

impl MatrixReader {
    /// A reader of `matrix`; when caching, its chunks are registered with `manager`.
    pub fn new(matrix: &ChunkedMatrix, manager: &BufferManager, cache: bool, check_finite: bool) -> Result<Self> {
        let store_grid = matrix.store.grid();
        let blocks = if cache {
            store_grid
                .indices()
                .map(|index| manager.register(matrix.store.clone(), index))
                .collect::<outcore_storage::StorageResult<_>>()?
        } else {
            Vec::new()
        };
        Ok(Self { matrix: matrix.clone(), manager: manager.clone(), blocks, cache, check_finite })
    }

    /// The matrix being read.
    pub fn matrix(&self) -> &ChunkedMatrix {
        &self.matrix
    }

    /// Bytes a read of `rows` x `cols` takes from its budget (see [`ChunkedMatrix::read_bytes`]).
    pub fn read_bytes(&self, rows: Range<usize>, cols: Range<usize>) -> u64 {
        self.matrix.read_bytes(rows, cols, self.cache)
    }

    /// Copies rows `rows` and columns `cols` of the matrix into `dst` (column-major is best).
    /// Streaming, each chunk is read into `chunk` (a buffer the caller reuses); caching, chunks
    /// are loaded into the buffer manager with memory from `budget`.
    pub fn read(
        &self,
        rows: Range<usize>,
        cols: Range<usize>,
        dst: MatMut<'_, f64>,
        budget: &mut Reservation,
        chunk: &mut Vec<f64>,
    ) -> Result<()> {
        let mut dst = dst;
        if let (Some(generator), false) = (&self.matrix.generator, self.cache) {
            // Generated values are finite by construction; nothing to check.
            self.matrix.generate_window(generator, rows, cols, dst, chunk);
            return Ok(());
        }
        let grid = self.matrix.grid();
        let (cr, cc) = grid.chunk_shape();
        let store_cols = self.matrix.store.grid().grid_shape().1;
        for chunk_row in rows.start / cr..rows.end.div_ceil(cr) {
            for chunk_col in cols.start / cc..cols.end.div_ceil(cc) {
                let index = ChunkIndex::new(chunk_row, chunk_col);
                let e = grid.extent(index)?;
                let physical = self.matrix.physical(index);
                let pinned;
                let values: &[f64] = if self.cache {
                    pinned = self.manager.pin_with(self.blocks[physical.row * store_cols + physical.col], budget)?;
                    pinned.data()
                } else {
                    self.matrix.store.read_chunk_into(physical, chunk)?;
                    chunk
                };
                let view = self.matrix.chunk_view(values, e);
                // Intersection of the chunk with the requested window.
                let r0 = rows.start.max(e.row0);
                let r1 = rows.end.min(e.row0 + e.rows);
                let c0 = cols.start.max(e.col0);
                let c1 = cols.end.min(e.col0 + e.cols);
                let src = view.submatrix(r0 - e.row0, c0 - e.col0, r1 - r0, c1 - c0);
                if self.check_finite {
                    check_finite(&self.matrix, index, src, r0, c0)?;
                }
                dst.rb_mut().submatrix_mut(r0 - rows.start, c0 - cols.start, r1 - r0, c1 - c0).copy_from(src);
            }
        }
        Ok(())
    }

    /// Length of the `chunk` buffer [`read`](Self::read) needs: the largest chunk when
    /// streaming from a store; a small block for generated matrices; none when caching.
    pub fn chunk_len(&self) -> usize {
        match (&self.matrix.generator, self.cache) {
            (_, true) => 0,
            (Some(_), false) => GENERATED_BLOCK_VALUES,
            (None, false) => {
                let (cr, cc) = self.matrix.grid().chunk_shape();
                let (rows, cols) = self.matrix.shape();
                cr.min(rows) * cc.min(cols)
            }
        }
    }
}

fn check_finite(
    matrix: &ChunkedMatrix,
    index: ChunkIndex,
    src: MatRef<'_, f64>,
    row0: usize,
    col0: usize,
) -> Result<()> {
    for j in 0..src.ncols() {
        for i in 0..src.nrows() {
            if !src[(i, j)].is_finite() {
                return Err(Error::NonFinite { what: matrix.describe(), index, row: row0 + i, col: col0 + j });
            }
        }
    }
    Ok(())
}

impl Drop for MatrixReader {
    fn drop(&mut self) {
        for &id in &self.blocks {
            // Removal of a registered block fails only if it is already gone.
            let _ = self.manager.remove(id);
        }
    }
}
