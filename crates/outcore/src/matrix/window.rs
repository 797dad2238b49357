//! Sources whose windows are copied (or lent) straight into a destination, without a chunk
//! buffer: a generator, or a matrix the caller holds in RAM.

use faer::{MatMut, MatRef};

use crate::error::Result;

/// A matrix any window of which can be copied straight into a destination, without a chunk
/// buffer: a generator, or a matrix the caller holds in RAM.
pub(crate) trait WindowSource: Send + Sync + std::fmt::Debug {
    /// Copies the window at `(row0, col0)` of `dst`'s shape into `dst` (store coordinates).
    fn fill(&self, row0: usize, col0: usize, dst: MatMut<'_, f64>) -> Result<()>;

    /// True when no value can be NaN or infinite (reads then skip that check).
    fn always_finite(&self) -> bool;

    /// True when keeping chunks in the buffer manager saves work on later passes.
    fn worth_caching(&self) -> bool;

    /// Calls `f` on the window at `(row0, col0)` of `rows x cols` where it lies, without a copy
    /// (store coordinates), if this source can lend it: `None` if not.
    fn lend_window(
        &self,
        row0: usize,
        col0: usize,
        rows: usize,
        cols: usize,
        f: &mut dyn FnMut(MatRef<'_, f64>) -> Result<()>,
    ) -> Option<Result<()>> {
        let _ = (row0, col0, rows, cols, f);
        None
    }
}
