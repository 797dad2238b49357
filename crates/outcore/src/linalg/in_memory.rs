//! SVDs of matrices the caller already holds in RAM: one call, the matrix borrowed, never
//! copied whole. Chunking is chosen here for the engine's limit; reads copy windows straight
//! from the caller's matrix into each task's panel.

use faer::MatRef;

use super::SvdResult;
use super::rsvd::{RsvdOptions, RsvdPlan, RsvdResult};
use super::tsqr::{TsqrOptions, TsqrPlan, speed_panel_rows};
use crate::Result;
use crate::control::RunControl;
use crate::engine::Engine;
use crate::matrix::ChunkedMatrix;
use crate::output::Destination;

/// Bytes of one chunk of a borrowed matrix for the randomized SVD: a task's unit of work.
const CHUNK_BYTES: usize = 4 << 20;

/// Columns per chunk of a borrowed matrix for the randomized SVD.
const CHUNK_COLS: usize = 1024;

/// The chunk shape TSQR reads a matrix held in memory in (an `m x n` one, any layout): each
/// chunk one panel of about 4 MiB spanning the short side. For stores of one's own over memory.
pub fn tsqr_chunk_shape(m: usize, n: usize) -> (usize, usize) {
    let panel = speed_panel_rows(m.min(n)).clamp(1, m.max(n).max(1));
    if m >= n { (panel, n.max(1)) } else { (m.max(1), panel) }
}

/// The chunk shape the randomized SVD reads a matrix held in memory in: about 4 MiB, at most
/// 1024 columns wide.
pub fn rsvd_chunk_shape(m: usize, n: usize) -> (usize, usize) {
    let chunk_cols = n.clamp(1, CHUNK_COLS);
    let chunk_rows = (CHUNK_BYTES / (size_of::<f64>() * chunk_cols)).max(CHUNK_COLS).clamp(1, m.max(1));
    (chunk_rows, chunk_cols)
}

/// The exact SVD of a matrix in RAM by TSQR (tall, or wide through its transpose), under the
/// engine's memory limit. `a` is borrowed for the call and never copied whole; U and V come
/// back as faer matrices ([`Factor::Dense`](crate::Factor::Dense); see [`SvdResult::u_matrix`]).
///
/// ```
/// use outcore::{Engine, TsqrOptions};
///
/// # fn main() -> outcore::Result<()> {
/// let a = faer::Mat::<f64>::from_fn(10_000, 20, |i, j| ((i * 7 + j * 13) % 17) as f64);
/// let engine = Engine::new(64 << 20)?;
/// let svd = outcore::svd(&engine, a.as_ref(), &TsqrOptions::new())?;
/// let (u, v) = (svd.u_matrix().unwrap(), svd.v_matrix().unwrap());
/// assert_eq!((u.shape(), v.shape(), svd.s.len()), ((10_000, 20), (20, 20), 20));
/// # Ok(())
/// # }
/// ```
pub fn svd(engine: &Engine, a: MatRef<'_, f64>, options: &TsqrOptions) -> Result<SvdResult> {
    svd_with(engine, a, options, Destination::Memory, &RunControl::default())
}

/// [`svd`] with the large factor (U of a tall matrix, V of a wide one) sent to `factor`, for
/// example [`Destination::Into`] your own matrix, and with a cancel token and event sink.
pub fn svd_with(
    engine: &Engine,
    a: MatRef<'_, f64>,
    options: &TsqrOptions,
    factor: Destination<'_>,
    control: &RunControl,
) -> Result<SvdResult> {
    let (m, n) = a.shape();
    let (chunk_rows, chunk_cols) = tsqr_chunk_shape(m, n);
    let (matrix, lease) = ChunkedMatrix::borrowed(a, chunk_rows, chunk_cols)?;
    let result = TsqrPlan::new(&matrix, options, engine).and_then(|plan| plan.run_with(engine, factor, control));
    drop(lease);
    result
}

/// The top-k SVD of a matrix in RAM by the randomized method, with its error estimate; U and
/// V come back as faer matrices. `a` is borrowed for the call and never copied whole.
pub fn randomized_svd(engine: &Engine, a: MatRef<'_, f64>, options: &RsvdOptions) -> Result<RsvdResult> {
    randomized_svd_with(engine, a, options, Destination::Memory, Destination::Memory, &RunControl::default())
}

/// [`randomized_svd`] with U and V sent to destinations of your choice, a cancel token and an
/// event sink.
pub fn randomized_svd_with(
    engine: &Engine,
    a: MatRef<'_, f64>,
    options: &RsvdOptions,
    u: Destination<'_>,
    v: Destination<'_>,
    control: &RunControl,
) -> Result<RsvdResult> {
    let (m, n) = a.shape();
    let (chunk_rows, chunk_cols) = rsvd_chunk_shape(m, n);
    let (matrix, lease) = ChunkedMatrix::borrowed(a, chunk_rows, chunk_cols)?;
    let result = RsvdPlan::new(&matrix, options, engine).and_then(|plan| plan.run_with(engine, u, v, control));
    drop(lease);
    result
}
