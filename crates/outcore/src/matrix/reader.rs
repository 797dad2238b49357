//! Reading a [`ChunkedMatrix`] during a run: windows copied into column-major faer matrices,
//! chunk by chunk (streamed through a reused buffer, or cached in the buffer manager), each
//! chunk checked once for NaN and infinity.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use faer::reborrow::ReborrowMut;
use faer::{MatMut, MatRef};
use outcore_storage::{BlockId, BufferManager, ChunkIndex, CsrRows, Reservation};

use super::{ChunkedMatrix, ROW_BLOCK_VALUES};
use crate::error::{Error, Result};
use crate::task::check_cancelled;

/// Reads a [`ChunkedMatrix`] through the buffer manager during one run.
///
///
/// Streaming (`cache = false`), chunks are read straight from the store into a buffer the
/// caller reuses, one at a time: a pass over a matrix larger than memory holds one chunk and
/// pushes out nothing. Caching (`cache = true`, for matrices read several times that fit), every
/// chunk is registered with the buffer manager as a clean block and stays in RAM until the LRU
/// needs the room. Registrations are removed when the reader drops.
#[derive(Debug)]
pub(crate) struct MatrixReader {
    matrix: ChunkedMatrix,
    manager: BufferManager,
    blocks: Vec<BlockId>,
    cache: bool,
    check_finite: bool,
    /// Per chunk of the view (row-major over its grid): its values were found finite in this
    /// run, so later passes need not look again.
    checked: Vec<AtomicBool>,
}

impl MatrixReader {
    /// A reader of `matrix`; when caching, its chunks are registered with `manager`.
    pub(crate) fn new(
        matrix: &ChunkedMatrix,
        manager: &BufferManager,
        cache: bool,
        check_finite: bool,
    ) -> Result<Self> {
        let store_grid = matrix.store.grid();
        let blocks = if cache {
            store_grid
                .indices()
                .map(|index| manager.register(matrix.store.clone(), index))
                .collect::<outcore_storage::StorageResult<_>>()?
        } else {
            Vec::new()
        };
        let chunks = if check_finite { store_grid.indices().count() } else { 0 };
        let checked = (0..chunks).map(|_| AtomicBool::new(false)).collect();
        Ok(Self { matrix: matrix.clone(), manager: manager.clone(), blocks, cache, check_finite, checked })
    }

    /// The flag saying chunk `index` (of the view) was checked, if checking is on.
    fn checked(&self, index: ChunkIndex) -> Option<&AtomicBool> {
        let cols = self.matrix.grid().grid_shape().1;
        self.checked.get(index.row * cols + index.col)
    }

    /// Whether chunk `index` must be checked for NaN and infinities as it is read: the first
    /// time in the run, unless the source cannot hold them.
    fn must_check(&self, index: ChunkIndex) -> bool {
        self.check_finite
            && self.matrix.windows.as_ref().is_none_or(|w| !w.always_finite())
            && self.checked(index).is_none_or(|c| !c.load(Ordering::Acquire))
    }

    /// Records that chunk `index` was read whole and found finite.
    fn passed(&self, index: ChunkIndex) {
        if let Some(c) = self.checked(index) {
            c.store(true, Ordering::Release);
        }
    }

    /// Copies rows `rows` and columns `cols` of the matrix into `dst` (column-major is best),
    /// through [`for_each_block`](Self::for_each_block); a generated matrix is generated
    /// straight into `dst`.
    pub(crate) fn read(
        &self,
        rows: Range<usize>,
        cols: Range<usize>,
        dst: MatMut<'_, f64>,
        budget: &mut Reservation,
        buf: &mut Vec<f64>,
    ) -> Result<()> {
        let mut dst = dst;
        if let (Some(windows), false) = (&self.matrix.windows, self.cache) {
            // Straight into the destination: no chunk buffer, no transposition copy.
            if self.matrix.transposed {
                windows.fill(cols.start, rows.start, dst.rb_mut().transpose_mut())?;
            } else {
                windows.fill(rows.start, cols.start, dst.rb_mut())?;
            }
            if self.check_finite && !windows.always_finite() {
                let (cr, cc) = self.matrix.grid().chunk_shape();
                let index = ChunkIndex::new(rows.start / cr, cols.start / cc);
                check_finite(&self.matrix, index, dst.as_ref(), rows.start, cols.start)?;
            }
            return Ok(());
        }
        let grid = self.matrix.grid();
        let (cr, cc) = grid.chunk_shape();
        for chunk_row in rows.start / cr..rows.end.div_ceil(cr) {
            for chunk_col in cols.start / cc..cols.end.div_ceil(cc) {
                let index = ChunkIndex::new(chunk_row, chunk_col);
                let e = grid.extent(index)?;
                self.for_each_block(index, budget, buf, |r0, c0, block| {
                    // Intersection of the block (at e.row0 + r0, e.col0 + c0) with the window.
                    let (br, bc) = (e.row0 + r0, e.col0 + c0);
                    let (i0, i1) = (rows.start.max(br), rows.end.min(br + block.nrows()));
                    let (j0, j1) = (cols.start.max(bc), cols.end.min(bc + block.ncols()));
                    if i0 < i1 && j0 < j1 {
                        let src = block.submatrix(i0 - br, j0 - bc, i1 - i0, j1 - j0);
                        dst.rb_mut().submatrix_mut(i0 - rows.start, j0 - cols.start, i1 - i0, j1 - j0).copy_from(src);
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// Calls `f(row0, col0, block)` on consecutive pieces of chunk `index` (of the view), each
    /// at `(row0, col0)` within the chunk. Streaming from a store that streams rows, pieces are
    /// row blocks of the stored chunk (column blocks of a transposed view) read into `buf`, and
    /// the chunk's checksum is verified after the last one: an error then means the values
    /// already seen were corrupt, and the caller's task fails. Otherwise the piece is the whole
    /// chunk, read into `buf` (streaming) or pinned with memory from `budget` (caching).
    pub(crate) fn for_each_block(
        &self,
        index: ChunkIndex,
        budget: &mut Reservation,
        buf: &mut Vec<f64>,
        mut f: impl FnMut(usize, usize, MatRef<'_, f64>) -> Result<()>,
    ) -> Result<()> {
        check_cancelled()?;
        let e = self.matrix.grid().extent(index)?;
        let physical = self.matrix.physical(index);
        let check = self.must_check(index);
        if let Some(windows) = &self.matrix.windows {
            // Memory the caller holds: the chunk is used where it lies, not copied.
            let pe = self.matrix.store.grid().extent(physical)?;
            let lent = windows.lend_window(pe.row0, pe.col0, pe.rows, pe.cols, &mut |window| {
                let view = if self.matrix.transposed { window.transpose() } else { window };
                if check {
                    check_finite(&self.matrix, index, view, e.row0, e.col0)?;
                    self.passed(index);
                }
                f(0, 0, view)
            });
            if let Some(done) = lent {
                return done;
            }
        }
        if !self.cache
            && let Some(mut rows) = self.matrix.store.chunk_rows(physical)?
        {
            let (prows, pcols) = if self.matrix.transposed { (e.cols, e.rows) } else { (e.rows, e.cols) };
            let step = (ROW_BLOCK_VALUES / pcols.max(1)).clamp(1, prows.max(1));
            let mut r = 0;
            while r < prows {
                check_cancelled()?;
                let n = step.min(prows - r);
                rows.next_rows(n, buf)?;
                let block = MatRef::from_row_major_slice(&buf[..n * pcols], n, pcols);
                let (r0, c0, block) = if self.matrix.transposed { (0, r, block.transpose()) } else { (r, 0, block) };
                if check {
                    check_finite(&self.matrix, index, block, e.row0 + r0, e.col0 + c0)?;
                }
                f(r0, c0, block)?;
                r += n;
            }
            rows.finish()?;
            if check {
                self.passed(index);
            }
            return Ok(());
        }
        let pinned;
        let values: &[f64] = if self.cache {
            let store_cols = self.matrix.store.grid().grid_shape().1;
            pinned = self.manager.pin_with(self.blocks[physical.row * store_cols + physical.col], budget)?;
            pinned.data()
        } else {
            self.matrix.store.read_chunk_into(physical, buf)?;
            buf
        };
        let view = self.matrix.chunk_view(values, index, e)?;
        if check {
            check_finite(&self.matrix, index, view, e.row0, e.col0)?;
            self.passed(index);
        }
        f(0, 0, view)
    }

    /// For a sparse matrix, chunk `index`'s nonzeros where they lie (rows of its physical chunk:
    /// with `true`, the chunk of the view is their transpose); `None` for a dense matrix.
    pub(crate) fn sparse_chunk(&self, index: ChunkIndex) -> Result<Option<(CsrRows<'_>, bool)>> {
        check_cancelled()?;
        let Some(sparse) = &self.matrix.sparse else { return Ok(None) };
        Ok(Some((sparse.chunk(self.matrix.physical(index))?, self.matrix.transposed)))
    }

    /// Length of the buffer [`read`](Self::read) and [`for_each_block`](Self::for_each_block)
    /// need (see [`ChunkedMatrix::buffer_len`]).
    pub(crate) fn buffer_len(&self) -> usize {
        self.matrix.buffer_len(self.cache)
    }
}

/// Refuses NaN and infinities in `src` (a piece of chunk `index` at `(row0, col0)`), naming the
/// first. Scanned in memory order, rows or columns as contiguous slices, never across a stride
/// (docs/decisions.md).
fn check_finite(
    matrix: &ChunkedMatrix,
    index: ChunkIndex,
    src: MatRef<'_, f64>,
    row0: usize,
    col0: usize,
) -> Result<()> {
    let clean = if src.col_stride() == 1 {
        (0..src.nrows()).all(|i| src.row(i).try_as_row_major().is_some_and(|r| all_finite(r.as_slice())))
    } else {
        (0..src.ncols()).all(|j| src.col(j).try_as_col_major().is_some_and(|c| all_finite(c.as_slice())))
    };
    if clean {
        return Ok(());
    }
    // Found (or neither rows nor columns are contiguous): the first, value by value.
    for j in 0..src.ncols() {
        for i in 0..src.nrows() {
            if !src[(i, j)].is_finite() {
                return Err(Error::NonFinite { what: matrix.describe(), index, row: row0 + i, col: col0 + j });
            }
        }
    }
    Ok(())
}

/// Whether every value is finite, in one pass that vectorizes: `x * 0.0` is NaN exactly when
/// `x` is NaN or infinite, and eight lanes add those up.
fn all_finite(values: &[f64]) -> bool {
    let mut lanes = [0.0f64; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += x * 0.0;
        }
    }
    lanes.iter().chain(chunks.remainder()).all(|x| x.is_finite())
}

impl Drop for MatrixReader {
    fn drop(&mut self) {
        for &id in &self.blocks {
            // Removal of a registered block fails only if it is already gone.
            let _ = self.manager.remove(id);
        }
    }
}
