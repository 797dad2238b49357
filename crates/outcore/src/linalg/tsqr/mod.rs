//! TSQR SVD: the SVD of a tall-and-skinny matrix in one pass over it (two with vectors).
//!
//! ```text
//!  A = [A_0; A_1; ...; A_P]          row panels, each read once, QR'd in place
//!        │    │          │
//!       R_0  R_1   ...  R_P          n x n each           (stage "panel QR")
//!         \   |   /  ...  /
//!          stack f, QR → R           fan-in f tree         (stage "R reduction")
//!                 │
//!           R = U_R S V^T            dense SVD of n x n    (stage "SVD of R")
//! ```
//!
//! Values only: nothing but the R factors is kept, and memory is bounded by a few panels plus
//! a tree's worth of n x n factors, whatever the number of rows.
//!
//! With vectors, `U = Q U_R` is assembled panel by panel in a second pass (Benson, Gleich and
//! Demmel's direct TSQR): each tree node keeps its small Householder factors; walking the tree
//! top-down turns `U_R` into an `n x k` block `W_i` per panel (stage "Q back-propagation"); then
//! each panel is read again and `U_i = Q_i [W_i; 0]` is written out (stage "U assembly"). Q_i is
//! never stored (that would mean writing and reading back a matrix as large as A). Where the
//! panel's R_i, kept from the first pass, is well conditioned, `U_i = A_i (R_i^-1 W_i)`: one
//! matrix product. Otherwise the panel is **re-factored**, bitwise identical to the first pass
//! (the kernel is sequential and deterministic), and its Householder Q_i applied to `W_i`.
//!
//! Wide matrices are factored through their transpose: `A^T = U' S V'^T` gives `U = V'`,
//! `V = U'`. Matrices chunked in both dimensions are regrouped into row panels spanning all
//! chunk columns.
//!
//! **Signs.** Each singular vector pair is made deterministic with Dask's `svd_flip` rule applied
//! to the `n x k` factor of the tall problem: in each column of V' (V for tall input, U for wide
//! input) the entry of largest magnitude is positive.

mod graph;
mod kernels;
mod layout;
mod ops;
mod options;
mod plan;

use outcore_storage::{ChunkIndex, Knob, Message};

pub(crate) use graph::ResultKeys;
use graph::graph_with_keys;
use kernels::TsqrExecutor;
pub(crate) use layout::Root;
use layout::{Centering, Layout};
pub use options::SvdOptions;
pub(crate) use plan::Beside;
pub use plan::SvdPlan;

use crate::error::{Error, Result};
use crate::linalg::input::Input;
use crate::linalg::result::{Centered, SvdResult};
use crate::matrix::{ChunkedMatrix, MatrixReader};
use crate::output::{Destination, Factor, Sink, check_shareable};
use crate::run::{Engine, RunControl, RunStats};
use crate::task::{Key, Results};

/// The exact SVD of `a` by TSQR (tall, or wide through its transpose), under the engine's memory
/// limit, with U and V in RAM. `a` is any [`Input`]: a [`ChunkedMatrix`](crate::ChunkedMatrix)
/// or a faer matrix in RAM (borrowed for the call, never copied whole). Use [`SvdPlan`] to see
/// the plan first, send the large factor to a Zarr array or your own matrix, or cancel and
/// watch the run.
///
/// ```
/// use outcore::{Engine, SvdOptions};
///
/// # fn main() -> outcore::Result<()> {
/// let a = outcore::faer::Mat::<f64>::from_fn(10_000, 20, |i, j| ((i * 7 + j * 13) % 17) as f64);
/// let engine = Engine::new(64 << 20)?;
/// let svd = outcore::svd(&engine, &a, &SvdOptions::new())?;
/// let (u, v) = (svd.u_matrix().unwrap(), svd.v_matrix().unwrap());
/// assert_eq!((u.shape(), v.shape(), svd.s.len()), ((10_000, 20), (20, 20), 20));
/// # Ok(())
/// # }
/// ```
pub fn svd<'a>(engine: &Engine, a: impl Into<Input<'a>>, options: &SvdOptions) -> Result<SvdResult> {
    SvdPlan::new(engine, a, options)?.run(engine)
}

impl SvdPlan<'_> {
    /// Runs the plan, with U and V returned in RAM.
    pub fn run(&self, engine: &Engine) -> Result<SvdResult> {
        self.run_with(engine, Destination::Memory, &RunControl::default())
    }

    /// Runs the plan: the large singular-vector factor (U of a tall matrix, V of a wide one;
    /// see [`factor_grid`](Self::factor_grid)) goes to `factor`, the small one is returned in
    /// RAM (values-only plans take [`Destination::Memory`] and write nothing); `control` carries
    /// a cancel token and an event sink.
    pub fn run_with(&self, engine: &Engine, factor: Destination<'_>, control: &RunControl) -> Result<SvdResult> {
        let layout = &self.layout;
        let name = if layout.transposed { "V" } else { "U" };
        let no_factor = || {
            let reason = Message::new()
                .text("the plan writes no large factor (")
                .knob(Knob::Vectors)
                .text(" is false, or a tall matrix is centered: TSQR then gives V alone): there is no factor to write");
            Error::invalid(Knob::Destination, reason)
        };
        let Outcome { results, keys, large, stats } = self.execute(engine, factor, control, name, no_factor)?;
        let s = results.values(keys.root)?;
        let (u, v) = match (keys.vectors, large) {
            (Some(v_key), Some(large)) => {
                let small = Factor::Dense(results.matrix(v_key)?);
                if layout.transposed { (Some(small), Some(large)) } else { (Some(large), Some(small)) }
            }
            (Some(v_key), None) if layout.small_v => (None, Some(Factor::Dense(results.matrix(v_key)?))),
            (None, None) => (None, None),
            _ => return Err(Error::Bug("vectors planned without a sink, or a sink without vectors".into())),
        };
        let centered = centered(layout, &results, &keys.stats, &s)?;
        Ok(SvdResult { s, u, v, centered, columns: None, stats })
    }

    /// Runs the plan's graph: the large factor (named `name` in messages) goes to `factor`, a
    /// plan that writes none refuses any destination but memory with `no_factor`.
    pub(crate) fn execute(
        &self,
        engine: &Engine,
        factor: Destination<'_>,
        control: &RunControl,
        name: &str,
        no_factor: impl FnOnce() -> Error,
    ) -> Result<Outcome> {
        let layout = &self.layout;
        // Everything that can fail before the run, agreed among ranks when there are several.
        let opened = control.agree_on((|| {
            let sink = match layout.factor_grid() {
                Some(grid) => {
                    check_shareable(&factor, control, name)?;
                    Some(Sink::open(factor, grid, &layout.tall, name)?)
                }
                None if matches!(factor, Destination::Memory) => None,
                None => return Err(no_factor()),
            };
            let (graph, keys) = graph_with_keys(layout, self.concurrent_tasks())?;
            let passes = if layout.vectors { 2 } else { 1 };
            let tall = layout.tall.decoded_once(passes, layout.cache_input, engine.memory_pool())?;
            let reader = MatrixReader::new(&tall, engine.memory_pool(), layout.cache_input, layout.check_finite)?;
            let beside = |m: &Option<ChunkedMatrix>| {
                m.as_ref().map(|m| MatrixReader::new(m, engine.memory_pool(), false, layout.check_finite)).transpose()
            };
            Ok((sink, graph, keys, reader, (beside(&layout.rhs)?, beside(&layout.weights)?)))
        })());
        let (sink, graph, keys, reader, beside) = opened?;
        let executor = TsqrExecutor::new(layout, reader, beside, sink.as_ref().map(|s| s.store.clone()));
        let (results, stats) = engine.run_graph(&graph, &executor, control).map_err(|e| in_callers_terms(layout, e))?;
        drop(executor);
        let large = sink.map(Sink::finish).transpose()?;
        Ok(Outcome { results, keys, large, stats })
    }
}

/// What a TSQR run leaves: its kept results, where they are, the large factor it wrote (U, V
/// or Q), and what the run observed.
pub(crate) struct Outcome {
    pub(crate) results: Results,
    pub(crate) keys: ResultKeys,
    pub(crate) large: Option<Factor>,
    pub(crate) stats: RunStats,
}

/// An error about the matrix factored, in terms of the matrix given: a wide matrix is
/// factored through its transpose, so a place in it, and its name, are transposed back.
fn in_callers_terms(layout: &Layout, e: Error) -> Error {
    match e {
        Error::NonFinite { index, row, col, .. } if layout.transposed => Error::NonFinite {
            what: layout.tall.t().describe(),
            index: ChunkIndex::new(index.col, index.row),
            row: col,
            col: row,
        },
        e => e,
    }
}

/// The means (and scales) from the stats blocks: the root's (columns centered) or the
/// panels' in order (rows centered). The total variance is `||s||^2 / (m - 1)`: TSQR has
/// every singular value.
fn centered(layout: &Layout, results: &Results, stats: &[Key], s: &[f64]) -> Result<Option<Centered>> {
    if layout.centering == Centering::None {
        return Ok(None);
    }
    let mut mean = Vec::new();
    let mut scale = Vec::new();
    for key in stats {
        let m = results.matrix(*key)?;
        mean.extend(m.row(0).iter().copied());
        scale.extend(m.row(1).iter().copied());
    }
    let samples = layout.shape().0 as f64;
    let total_variance = s.iter().map(|x| x * x).sum::<f64>() / (samples - 1.0);
    Ok(Some(Centered { mean, scale: layout.standardize.then_some(scale), total_variance }))
}
