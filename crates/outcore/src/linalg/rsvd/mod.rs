//! Randomized SVD out of core (Halko, Martinsson and Tropp 2011; Dask's `svd_compressed`).
//!
//! ```text
//!  pass 1      Y = A [Ω ω]          Ω: n x (k+p) sketch, ω: n x r probes (seeded, generated)
//!              Q = orth(Y[:, :k+p])  block Householder QR tree over chunk rows
//!  q times     Z = orth(A^T Q)       subspace iteration, re-orthonormalized after every
//!              Q = orth(A Z)         product (Dask's "QR" iterator); 2 passes each
//!  last pass   B^T = A^T Q           n x (k+p), as blocks by chunk column
//!              B^T = Q_b R_b,  R_b = U_r S V_r^T     (block QR tree, then a small SVD)
//!              U = Q V_r,  V = Q_b U_r,  s = S        (first k columns)
//!  estimate    ||A - U S V^T|| from E ω = A ω - U S V^T ω  (A ω came with pass 1: no extra pass)
//! ```
//!
//! Every pass streams A chunk by chunk (`A_ij X_j`, summed per chunk row in a fixed order), so A
//! is never resident whatever its size or chunk grid, and results are identical under any
//! scheduler. With `method = Krylov` (Musco and Musco 2015) the blocks `Q_0, ..., Q_q` of all
//! iterations are kept and orthonormalized together, so the same passes over A span a
//! `(q+1)(k+p)`-dimensional Krylov space instead of a `(k+p)`-dimensional one.
//!
//! **Error estimate** (HMT section 4.3): with `r` Gaussian probes `ω_i` drawn independently of
//! everything else, `||A - U S V^T||_2 <= 10 sqrt(2/π) max_i ||(A - U S V^T) ω_i||` with
//! probability at least `1 - 10^-r`; `sqrt(mean_i ||(A - U S V^T) ω_i||^2)` estimates the
//! Frobenius norm. `A ω` is computed in the first pass alongside `A Ω`.
//!
//! **Signs**: as in TSQR, the entry of largest magnitude in each column of V is positive.

mod graph;
mod kernels;
mod layout;
mod moments;
mod ops;
mod options;
mod plan;

use graph::graph;
use kernels::RsvdExecutor;
use layout::Sketch;
pub use options::{RandomizedMethod, RandomizedSvdOptions};
pub use plan::RandomizedSvdPlan;

use crate::error::Result;
use crate::linalg::input::Input;
use crate::linalg::result::{Centered, ColumnMoments, SvdResult};
use crate::matrix::MatrixReader;
use crate::output::{Destination, Sink, check_apart, check_shareable};
use crate::run::{Engine, RunControl};
use crate::task::{Key, Results};

/// The top-k SVD of `a` by the randomized method, with its error estimate, under the engine's
/// memory limit, with U and V in RAM. `a` is any [`Input`]: a
/// [`ChunkedMatrix`](crate::ChunkedMatrix) chunked any way, or a faer matrix in RAM (borrowed
/// for the call, never copied whole). Use [`RandomizedSvdPlan`] to see the plan first, send U and V to
/// Zarr arrays or your own matrices, or cancel and watch the run.
///
/// ```
/// use outcore::{Engine, RandomizedSvdOptions};
///
/// # fn main() -> outcore::Result<()> {
/// let a = outcore::faer::Mat::<f64>::from_fn(3_000, 2_000, |i, j| ((i * 7 + j * 13) % 17) as f64);
/// let engine = Engine::new(64 << 20)?;
/// let top = outcore::randomized_svd(&engine, &a, &RandomizedSvdOptions::new(5))?;
/// assert_eq!(top.svd.s.len(), 5);
/// assert!(top.error.spectral_bound >= 0.0);
/// # Ok(())
/// # }
/// ```
pub fn randomized_svd<'a>(
    engine: &Engine,
    a: impl Into<Input<'a>>,
    options: &RandomizedSvdOptions,
) -> Result<RandomizedSvdResult> {
    RandomizedSvdPlan::new(engine, a, options)?.run(engine)
}

/// An a posteriori estimate of `||A - U diag(s) V^T||` from the residual `Y = E Ω` on
/// `probes` Gaussian vectors drawn apart from the sketch (`E` the residual, one pass over A).
///
/// The spectral bound is `sqrt(lambda_max(Y^T Y) / q)`, `q` the `failure_probability`
/// quantile of chi-squared with `probes` degrees of freedom: `Y^T Y` is at least
/// `||E||^2 g g^T` with `g = Ω^T v_1` standard normal, so the bound fails only when
/// `||g||^2 < q`. It holds for every matrix; how close it comes depends on the residual's
/// spectrum (measured in docs/benchmarks.md).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct ErrorEstimate {
    /// Upper bound on the spectral norm, holding with probability `1 - failure_probability`.
    pub spectral_bound: f64,
    /// Lower bound on the spectral norm, always: sigma_{k+1} of the matrix projected on the
    /// basis (no rank-k approximation does better than sigma_{k+1} of A, which is at least
    /// this); 0 without oversamples. The norm lies between the two bounds.
    pub spectral_lower_bound: f64,
    /// The spectral bound relative to the largest singular value found (`spectral_bound /
    /// s[0]`; 0 for a zero matrix).
    pub relative_spectral_bound: f64,
    /// Estimate of the Frobenius norm (unbiased in its square).
    pub frobenius: f64,
    /// The Frobenius estimate relative to the largest singular value found.
    pub relative_frobenius: f64,
    /// Probes used.
    pub probes: usize,
    /// Probability that the spectral bound does not hold: `10^-probes`.
    pub failure_probability: f64,
}

/// A randomized SVD with its error estimate.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RandomizedSvdResult {
    /// The top-k SVD.
    pub svd: SvdResult,
    /// The estimate of the residual's norm.
    pub error: ErrorEstimate,
    /// Passes over A.
    pub passes: usize,
}

impl RandomizedSvdPlan<'_> {
    /// Runs the plan, with U and V returned in RAM.
    pub fn run(&self, engine: &Engine) -> Result<RandomizedSvdResult> {
        self.run_with(engine, Destination::Memory, Destination::Memory, &RunControl::default())
    }

    /// Runs the plan, writing U and V (grids: [`factor_grids`](Self::factor_grids)) to their
    /// destinations; `control` carries a cancel token and an event sink.
    pub fn run_with(
        &self,
        engine: &Engine,
        u: Destination<'_>,
        v: Destination<'_>,
        control: &RunControl,
    ) -> Result<RandomizedSvdResult> {
        // Everything that can fail before the run, agreed among ranks when there are several.
        let opened = control.agree_on((|| {
            let sketch = &self.sketch;
            let (u_grid, v_grid) = sketch.factor_grids()?;
            check_apart(&u, &v)?;
            check_shareable(&u, control, "U")?;
            check_shareable(&v, control, "V")?;
            let u = Sink::open(u, u_grid, &sketch.a, "U")?;
            let v = Sink::open(v, v_grid, &sketch.a, "V")?;
            let (graph, keys) = graph(sketch, self.concurrent_tasks())?;
            let a = sketch.a.decoded_once(sketch.passes(), sketch.cache_input, engine.memory_pool())?;
            let reader = MatrixReader::new(&a, engine.memory_pool(), sketch.cache_input, sketch.options.check_finite)?;
            Ok((u, v, graph, keys, reader))
        })());
        let (u, v, graph, keys, reader) = opened?;
        let executor = RsvdExecutor::new(&self.sketch, reader, u.store.clone(), v.store.clone());
        let (results, stats) = engine.run_graph(&graph, &executor, control)?;
        drop(executor);
        let s = results.values(keys.s)?;
        let estimate = results.values(keys.estimate)?;
        let next = results.values(keys.next)?.first().copied().unwrap_or(0.0);
        let (centered, columns) = moments(&self.sketch, &results, &keys.moments)?;
        let probes = self.sketch.options.probes;
        let relative = |x: f64| if x == 0.0 { 0.0 } else { x / s.first().copied().unwrap_or(0.0) };
        let error = ErrorEstimate {
            spectral_bound: estimate[0],
            spectral_lower_bound: next,
            relative_spectral_bound: relative(estimate[0]),
            frobenius: estimate[1],
            relative_frobenius: relative(estimate[1]),
            probes,
            failure_probability: 10f64.powi(-(probes as i32)),
        };
        let (u, v) = Sink::finish_pair(u, v)?;
        let svd = SvdResult { s, u: Some(u), v: Some(v), centered, columns, stats };
        Ok(RandomizedSvdResult { svd, error, passes: self.sketch.passes() })
    }
}

/// The centering (means and total variance) and the asked column moments, from each chunk
/// column's `[count; mean; M2]`.
fn moments(sketch: &Sketch, results: &Results, keys: &[Key]) -> Result<(Option<Centered>, Option<ColumnMoments>)> {
    let options = &sketch.options;
    let (mut mean, mut m2) = (Vec::new(), Vec::new());
    for key in keys {
        let m = results.matrix(*key)?;
        mean.extend(m.row(1).iter().copied());
        m2.extend(m.row(2).iter().copied());
    }
    let rows = sketch.a.rows() as f64;
    let centered = options.center.then(|| Centered {
        mean: mean.clone(),
        scale: None,
        total_variance: m2.iter().sum::<f64>() / (rows - 1.0),
    });
    let columns =
        options.column_moments.then(|| ColumnMoments { mean, variance: m2.iter().map(|q| q / rows).collect() });
    Ok((centered, columns))
}
