//! The caller's own matrices, lent to one run without a copy: read as the input, or written
//! as a factor.
//!
//! Stores are `'static` (`Arc<dyn ChunkStore>`), a caller's `MatRef<'a>` is not. A
//! [`Lease<'a>`](Lease) bridges the two: the store holds a raw view behind a lock, and the
//! lease, which borrows what was lent for `'a` so it cannot outlive it, takes the view away
//! when it drops (at the end of the call, on error and on panic alike). Every access holds the
//! lock and finds the view still there, or fails with a typed error; so no access outlives the
//! borrow, whatever other handles to the store still exist. (Forgetting a lease with
//! `mem::forget` would skip that: nothing here does.)

use std::sync::{Arc, RwLock};

use faer::{MatMut, MatRef};
use outcore_storage::{ChunkGrid, ChunkIndex, ChunkStore, StorageError, StorageResult};

use super::window::WindowSource;
use crate::error::{Error, Result};

/// A raw view of a caller's matrix: pointer, shape and strides, as faer keeps them.
#[derive(Clone, Copy, Debug)]
struct RawView {
    ptr: *mut f64,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

// SAFETY: a `RawView` is only dereferenced while its `Lease` is alive, under the lock that the
// lease clears before the borrow it came from ends: reads of a `MatRef<f64>` (f64 is `Sync`)
// from any thread, and writes to a `MatMut<f64>` serialized by the write lock.
unsafe impl Send for RawView {}
// SAFETY: as above.
unsafe impl Sync for RawView {}

impl RawView {
    /// The pointer, shape and strides of `m`.
    fn of(m: MatRef<'_, f64>) -> Self {
        Self {
            ptr: m.as_ptr().cast_mut(),
            rows: m.nrows(),
            cols: m.ncols(),
            row_stride: m.row_stride(),
            col_stride: m.col_stride(),
        }
    }

    /// # Safety
    /// The view must still be lent (its lease alive, checked under the lock by the caller).
    unsafe fn as_ref<'v>(&self) -> MatRef<'v, f64> {
        // SAFETY: the caller holds the lock and saw the lease alive: the pointer, shape and
        // strides are those of a live `MatRef`/`MatMut`.
        unsafe { MatRef::from_raw_parts(self.ptr, self.rows, self.cols, self.row_stride, self.col_stride) }
    }

    /// # Safety
    /// As [`as_ref`](Self::as_ref), for a view lent from a `MatMut`, with the write lock held.
    unsafe fn as_mut<'v>(&self) -> MatMut<'v, f64> {
        // SAFETY: as in `as_ref`; the write lock makes this the only access.
        unsafe { MatMut::from_raw_parts_mut(self.ptr, self.rows, self.cols, self.row_stride, self.col_stride) }
    }
}

type Slot = Arc<RwLock<Option<RawView>>>;

/// Ends a loan when dropped: the store it backs fails every later access.
#[derive(Debug)]
pub(crate) struct Lease<'a> {
    slot: Slot,
    _borrow: std::marker::PhantomData<&'a mut f64>,
}

impl Lease<'_> {
    /// Lends `view`: the slot a store reads it through, and the lease that takes it away.
    fn lend(view: RawView) -> (Slot, Self) {
        let slot: Slot = Arc::new(RwLock::new(Some(view)));
        (slot.clone(), Self { slot, _borrow: std::marker::PhantomData })
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // Waits for any access in progress, then takes the view away.
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Copies chunk `index` of the lent matrix, row-major, into `out`.
fn read_chunk(slot: &Slot, grid: ChunkGrid, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
    let e = grid.extent(index)?;
    let guard = slot.read().unwrap_or_else(|p| p.into_inner());
    let view = guard.as_ref().ok_or_else(ended)?;
    // SAFETY: the lease is alive (the view is there) and we hold the lock: shared, so no
    // writer runs at the same time.
    let a = unsafe { view.as_ref() };
    out.clear();
    out.reserve(e.len());
    for i in e.row0..e.row0 + e.rows {
        out.extend((e.col0..e.col0 + e.cols).map(|j| a[(i, j)]));
    }
    Ok(())
}

fn ended() -> StorageError {
    StorageError::Bug("a borrowed matrix was used after the call it was lent to returned".into())
}

/// The caller's matrix as a read-only chunk store in `chunk_rows x chunk_cols` chunks.
#[derive(Debug)]
pub(crate) struct BorrowedStore {
    grid: ChunkGrid,
    slot: Slot,
}

impl BorrowedStore {
    /// Lends `a` until the returned lease drops.
    pub(crate) fn lend<'a>(a: MatRef<'a, f64>, chunk_rows: usize, chunk_cols: usize) -> Result<(Arc<Self>, Lease<'a>)> {
        let grid = ChunkGrid::new(a.nrows(), a.ncols(), chunk_rows, chunk_cols)?;
        let (slot, lease) = Lease::lend(RawView::of(a));
        Ok((Arc::new(Self { grid, slot }), lease))
    }
}

impl ChunkStore for BorrowedStore {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        read_chunk(&self.slot, self.grid, index, out)
    }

    fn write_chunk(&self, _index: ChunkIndex, _data: &[f64]) -> StorageResult<()> {
        Err(StorageError::ReadOnly { store: self.describe() })
    }

    fn describe(&self) -> String {
        format!("the caller's {} x {} matrix", self.grid.rows(), self.grid.cols())
    }
}

impl WindowSource for BorrowedStore {
    fn fill(&self, row0: usize, col0: usize, mut dst: MatMut<'_, f64>) -> Result<()> {
        let (rows, cols) = dst.shape();
        self.window(row0, col0, rows, cols, &mut |window| {
            dst.copy_from(window);
            Ok(())
        })
    }

    fn lend_window(
        &self,
        row0: usize,
        col0: usize,
        rows: usize,
        cols: usize,
        f: &mut dyn FnMut(MatRef<'_, f64>) -> Result<()>,
    ) -> Option<Result<()>> {
        Some(self.window(row0, col0, rows, cols, f))
    }

    fn always_finite(&self) -> bool {
        false
    }

    fn worth_caching(&self) -> bool {
        false
    }
}

impl BorrowedStore {
    /// Calls `f` on a window of the lent matrix, under the lease's lock.
    fn window(
        &self,
        row0: usize,
        col0: usize,
        rows: usize,
        cols: usize,
        f: &mut dyn FnMut(MatRef<'_, f64>) -> Result<()>,
    ) -> Result<()> {
        let guard = self.slot.read().unwrap_or_else(|p| p.into_inner());
        let view = guard.as_ref().ok_or_else(ended)?;
        // SAFETY: the lease is alive and we hold the lock (shared: no writer runs meanwhile).
        let a = unsafe { view.as_ref() };
        if row0 + rows > a.nrows() || col0 + cols > a.ncols() {
            return Err(Error::Bug(format!(
                "window at ({row0}, {col0}) of {rows} x {cols} outside {}",
                self.describe()
            )));
        }
        f(a.submatrix(row0, col0, rows, cols))
    }
}

/// The caller's matrix as a write-only chunk store: a factor written into caller memory.
#[derive(Debug)]
pub(crate) struct MatSink {
    grid: ChunkGrid,
    slot: Slot,
}

impl MatSink {
    /// Lends `dst` for writing in chunks of `chunk_rows` rows until the returned lease drops.
    pub(crate) fn lend<'a>(dst: MatMut<'a, f64>, chunk_rows: usize) -> Result<(Arc<Self>, Lease<'a>)> {
        // SAFETY: the lease borrows `dst` for 'a, so it drops before the memory can go.
        unsafe { Self::lend_unbounded(dst, chunk_rows) }
    }

    /// As [`lend`](Self::lend), with a lease not tied to `dst`'s borrow: for a matrix the
    /// caller owns beside the lease, whose heap buffer does not move when the matrix does.
    ///
    /// # Safety
    /// The memory `dst` views must stay allocated, and be touched by nothing else, until the
    /// returned lease has dropped.
    pub(crate) unsafe fn lend_unbounded<'a>(dst: MatMut<'_, f64>, chunk_rows: usize) -> Result<(Arc<Self>, Lease<'a>)> {
        let grid = ChunkGrid::new(dst.nrows(), dst.ncols(), chunk_rows.max(1), dst.ncols().max(1))?;
        // The writable pointer itself, not one read back through a shared view.
        let (slot, lease) = Lease::lend(RawView { ptr: dst.as_ptr_mut(), ..RawView::of(dst.as_ref()) });
        Ok((Arc::new(Self { grid, slot }), lease))
    }
}

impl ChunkStore for MatSink {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        read_chunk(&self.slot, self.grid, index, out)
    }

    fn write_chunk(&self, index: ChunkIndex, data: &[f64]) -> StorageResult<()> {
        let e = self.grid.check_chunk_len(index, data.len())?;
        let guard = self.slot.write().unwrap_or_else(|p| p.into_inner());
        let view = guard.as_ref().ok_or_else(ended)?;
        // SAFETY: the lease is alive and the write lock makes this the only access.
        let mut a = unsafe { view.as_mut() };
        let src = MatRef::from_row_major_slice(data, e.rows, e.cols);
        a.as_mut().submatrix_mut(e.row0, e.col0, e.rows, e.cols).copy_from(src);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("the caller's {} x {} output matrix", self.grid.rows(), self.grid.cols())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_outliving_its_lease_fails_cleanly() {
        let a = faer::Mat::<f64>::from_fn(7, 3, |i, j| (i * 3 + j) as f64);
        let (store, lease) = BorrowedStore::lend(a.as_ref(), 3, 2).unwrap();
        assert_eq!(store.read_chunk(ChunkIndex::new(2, 1)).unwrap(), vec![20.0]);
        assert_eq!(store.read_chunk(ChunkIndex::new(0, 0)).unwrap(), vec![0.0, 1.0, 3.0, 4.0, 6.0, 7.0]);
        drop(lease);
        let err = store.read_chunk(ChunkIndex::new(0, 0)).unwrap_err();
        assert!(err.to_string().contains("after the call it was lent to returned"), "{err}");
    }

    #[test]
    fn a_sink_writes_chunks_into_the_callers_matrix_of_any_layout() {
        let mut u = faer::Mat::<f64>::zeros(5, 2);
        {
            let (sink, _lease) = MatSink::lend(u.as_mut(), 2).unwrap();
            sink.write_chunk(ChunkIndex::new(0, 0), &[1.0, 2.0, 3.0, 4.0]).unwrap();
            sink.write_chunk(ChunkIndex::new(2, 0), &[9.0, 10.0]).unwrap();
            assert!(sink.write_chunk(ChunkIndex::new(1, 0), &[1.0]).is_err());
        }
        assert_eq!((u[(0, 0)], u[(0, 1)], u[(1, 1)], u[(4, 0)], u[(4, 1)]), (1.0, 2.0, 4.0, 9.0, 10.0));
        let mut t = faer::Mat::<f64>::zeros(2, 3);
        let (sink, lease) = MatSink::lend(t.as_mut().transpose_mut(), 2).unwrap();
        sink.write_chunk(ChunkIndex::new(1, 0), &[5.0, 6.0]).unwrap();
        drop(lease);
        assert!(sink.write_chunk(ChunkIndex::new(0, 0), &[0.0; 4]).is_err());
        assert_eq!((t[(0, 2)], t[(1, 2)]), (5.0, 6.0));
    }
}
