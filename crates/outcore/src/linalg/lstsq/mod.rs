//! Least squares out of core: `min ||A X - B||` for every column of B in one pass over
//! `[A | B]`, by TSQR with a root that solves.
//!
//! ```text
//!  [A | B] = Q [R_1 | R_2]  (TSQR: panels of A and B read side by side, R reduced up the tree)
//!  ||A X - B|| = ||R_1 X - R_2||           (Q has orthonormal columns; it is never formed)
//!  R_1 = U S V^T,  X = V_r S_r^-1 U_r^T R_2  over the singular values above rcond * s_max
//! ```
//!
//! The singular values come from the SVD of `R_1`, never from `R_1^T R_1` (which would square
//! the condition number); a rank-deficient A gets the minimum-norm solution, as LAPACK's
//! `gelsd` (numpy's `lstsq`) gives it, and a wide A (fewer rows than columns) too. The plan and
//! the run are those of the SVD's TSQR ([`SvdPlan`]): memory, ranks, cancellation and events
//! as there.

mod options;

use faer::Mat;

pub use options::LstsqOptions;

use crate::error::{Error, Result};
use crate::linalg::input::Input;
use crate::linalg::tsqr::{Outcome, Root, SvdOptions, SvdPlan};
use crate::output::Destination;
use crate::run::{Engine, RunControl, RunStats};
use crate::task::Key;
use outcore_storage::Knob;

/// The least-squares solution of `A X = B` (numpy's `lstsq`): A (`m x n`, any shape) and B
/// (`m x p`, its rows those of A) are any [`Input`]s, read side by side in one pass under the
/// engine's memory limit.
///
/// ```
/// use outcore::{Engine, LstsqOptions};
///
/// # fn main() -> outcore::Result<()> {
/// let a = faer::Mat::<f64>::from_fn(10_000, 3, |i, j| ((i * (j + 2)) % 7) as f64 + (j == 0) as u8 as f64);
/// let x = faer::Mat::<f64>::from_fn(3, 1, |i, _| i as f64 - 1.0);
/// let b = &a * &x;
/// let engine = Engine::new(64 << 20)?;
/// let fit = outcore::lstsq(&engine, &a, &b, &LstsqOptions::new())?;
/// assert!((&fit.x - &x).norm_l2() <= 1e-10);
/// assert_eq!(fit.rank, 3);
/// # Ok(())
/// # }
/// ```
pub fn lstsq<'a>(
    engine: &Engine,
    a: impl Into<Input<'a>>,
    b: impl Into<Input<'a>>,
    options: &LstsqOptions,
) -> Result<LstsqResult> {
    LstsqPlan::new(engine, a, b, options)?.run(engine)
}

/// A least-squares solution and what describes it, as numpy's `lstsq` returns them.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LstsqResult {
    /// The solution `X` (`n x p`): the minimum-norm minimizer of `||A X - B||` column by column.
    pub x: Mat<f64>,
    /// `||A x_j - b_j||^2` for each column, when A has full column rank and more rows than
    /// columns (numpy returns these only then; empty otherwise).
    pub residuals: Vec<f64>,
    /// The numerical rank of A: singular values above the cutoff.
    pub rank: usize,
    /// The singular values of A, descending (`min(m, n)` of them).
    pub s: Vec<f64>,
    /// What the run observed.
    pub stats: RunStats,
}

/// A planned least-squares solve: the panels of `[A | B]`, the reduction tree and memory of
/// its TSQR, ready to run ([`run`](Self::run), [`run_with`](Self::run_with)).
#[derive(Debug)]
pub struct LstsqPlan<'a> {
    tsqr: SvdPlan<'a>,
}

impl<'a> LstsqPlan<'a> {
    /// Plans the solve of `A X = B` on `engine`: refuses an empty A, a B of other rows or of no
    /// columns, a negative or NaN `rcond`, and a memory limit below what one worker needs.
    pub fn new(
        engine: &Engine,
        a: impl Into<Input<'a>>,
        b: impl Into<Input<'a>>,
        options: &LstsqOptions,
    ) -> Result<Self> {
        let LstsqOptions { rcond, fan_in, panel_rows, check_finite } = options.clone();
        let (a, b) = (a.into(), b.into());
        if let Some(r) = rcond.filter(|r| !(r.is_finite() && *r >= 0.0)) {
            return Err(Error::invalid(
                Knob::Rcond,
                format!(
                    "{r} is not a cutoff: give a finite value of 0 or more (singular values at most rcond times the largest count as zero)"
                ),
            ));
        }
        let (m, n) = shape(&a);
        let rcond = rcond.unwrap_or(f64::EPSILON * m.max(n) as f64);
        let tsqr_options =
            SvdOptions { vectors: false, fan_in, panel_rows, check_finite, center: false, standardize: false };
        let tsqr = SvdPlan::with_root(engine, a, Some(b), &tsqr_options, Root::Lstsq { rcond })?;
        Ok(Self { tsqr })
    }

    /// Runs the plan.
    pub fn run(&self, engine: &Engine) -> Result<LstsqResult> {
        self.run_with(engine, &RunControl::default())
    }

    /// Runs the plan; `control` carries a cancel token and an event sink.
    pub fn run_with(&self, engine: &Engine, control: &RunControl) -> Result<LstsqResult> {
        let no_factor = || Error::Bug("a least-squares plan asked to write a factor".into());
        let Outcome { results, keys, stats, .. } =
            self.tsqr.execute(engine, Destination::Memory, control, "X", no_factor)?;
        let slot = |slot| Key { slot, ..keys.root };
        let x = results.matrix(keys.root)?;
        let s = results.values(slot(1))?;
        let rank = results.values(slot(3))?.first().copied().unwrap_or(0.0) as usize;
        let (m, n) = self.tsqr.shape();
        let residuals = if rank == n && m > n { results.values(slot(2))? } else { Vec::new() };
        Ok(LstsqResult { x, residuals, rank, s, stats })
    }

    /// A's shape `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        self.tsqr.shape()
    }

    /// The memory limit needed to run `workers` tasks at once.
    pub fn memory_needed(&self, workers: usize) -> u64 {
        self.tsqr.memory_needed(workers)
    }

    /// How many tasks the memory limit lets run at once (at most the worker count).
    pub fn concurrent_tasks(&self) -> usize {
        self.tsqr.concurrent_tasks()
    }

    /// A human summary of the plan.
    pub fn summary(&self) -> String {
        self.tsqr.summary()
    }

    /// The task graph this plan runs, in Graphviz DOT (one cluster per stage).
    pub fn to_dot(&self, title: &str) -> Result<String> {
        self.tsqr.to_dot(title)
    }
}

/// The shape of an input before it is lent.
fn shape(input: &Input<'_>) -> (usize, usize) {
    match input {
        Input::Chunked(a) => a.shape(),
        Input::Dense(a) => a.shape(),
    }
}
