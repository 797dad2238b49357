//! PCA's transform, streamed: the scores `(A - 1 mean^T) diag(scale)^-1 C^T` of a matrix read
//! chunk by chunk, chunk rows shared among threads; one chunk (centered in place) per thread
//! is held at a time, beside the scores.

use std::sync::Mutex;

use outcore::faer::linalg::matmul::matmul;
use outcore::faer::{Accum, MatMut, MatRef, Par};
use outcore::storage::{ChunkIndex, ChunkStore};
use outcore::{CancelToken, Error, Knob};

/// What to project onto: `components` (k x n) after subtracting `mean` and dividing by `scale`.
pub(crate) struct Projection<'a> {
    pub(crate) mean: &'a [f64],
    pub(crate) scale: Option<&'a [f64]>,
    pub(crate) components: MatRef<'a, f64>,
}

/// The `m x k` scores, row-major, computed on `workers` threads.
pub(crate) fn project(
    store: &dyn ChunkStore,
    p: &Projection<'_>,
    workers: usize,
    token: &CancelToken,
) -> outcore::Result<Vec<f64>> {
    let grid = store.grid();
    let (m, n) = grid.shape();
    let k = p.components.nrows();
    if p.components.ncols() != n || p.mean.len() != n || p.scale.is_some_and(|s| s.len() != n) {
        return Err(Error::invalid(
            Knob::Program("X"),
            format!("the matrix has {n} columns; the fitted model has {}", p.components.ncols()),
        ));
    }
    let (cr, _) = grid.chunk_shape();
    let (gr, gc) = grid.grid_shape();
    let mut scores = vec![0.0; m * k];
    let blocks = Mutex::new(scores.chunks_mut(cr * k.max(1)).enumerate());
    let failure = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, gr.max(1)) {
            scope.spawn(|| {
                let mut chunk = Vec::new();
                loop {
                    let next = blocks.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some((i, out)) = next else { return };
                    let step = (|| {
                        for j in 0..gc {
                            if token.is_cancelled() {
                                return Err(Error::Interrupted);
                            }
                            let index = ChunkIndex::new(i, j);
                            let e = grid.extent(index)?;
                            store.read_chunk_into(index, &mut chunk)?;
                            // The same typed error a run's reader gives, naming the value.
                            if let Some(at) = chunk.iter().position(|x| !x.is_finite()) {
                                let (row, col) = (e.row0 + at / e.cols, e.col0 + at % e.cols);
                                return Err(Error::NonFinite { what: store.describe(), index, row, col });
                            }
                            for row in chunk.chunks_exact_mut(e.cols) {
                                for (c, x) in row.iter_mut().enumerate() {
                                    let col = e.col0 + c;
                                    *x = (*x - p.mean[col]) / p.scale.map_or(1.0, |s| s[col]);
                                }
                            }
                            let a = MatRef::from_row_major_slice(&chunk, e.rows, e.cols);
                            let rhs = p.components.subcols(e.col0, e.cols).transpose();
                            let dst = MatMut::from_row_major_slice_mut(out, e.rows, k);
                            matmul(dst, Accum::Add, a, rhs, 1.0, Par::Seq);
                        }
                        Ok(())
                    })();
                    if let Err(err) = step {
                        failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(err);
                        token.cancel();
                        return;
                    }
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(err) => Err(err),
        None => Ok(scores),
    }
}
