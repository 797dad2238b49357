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
//! `gelsd` (numpy's `lstsq`) gives it, and a wide A (fewer rows than columns) too.
//!
//! A regression needs nothing more from the data: an intercept centers the columns of
//! `[A | B]` as the PCA does (each panel on its own means, merged exactly up the tree, still
//! one pass), row weights scale each row by `sqrt(w_i)` as it is read (centered first on the
//! weighted means, whose weights' sums ride up the tree beside them), ridge stacks
//! `sqrt(alpha) I` below `R_1`, and the sums of squares and standard
//! errors come from R (`||B - A X||^2 = ||R_1 X - R_2||^2`, `A^T A = R_1^T R_1`). The plan and
//! the run are those of the SVD's TSQR ([`SvdPlan`]): memory, ranks, cancellation and events
//! as there.

mod options;

use faer::Mat;

pub use options::LstsqOptions;

use crate::error::{Error, Result};
use crate::linalg::dense::Regression;
use crate::linalg::input::Input;
use crate::linalg::tsqr::{Beside, Outcome, Root, SvdOptions, SvdPlan};
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
/// let a = outcore::faer::Mat::<f64>::from_fn(10_000, 3, |i, j| ((i * (j + 2)) % 7) as f64 + (j == 0) as u8 as f64);
/// let x = outcore::faer::Mat::<f64>::from_fn(3, 1, |i, _| i as f64 - 1.0);
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

/// A least-squares solution and what describes it: numpy's `lstsq` results (`x`,
/// `residuals`, `rank`, `s`), and a regression's (intercepts, sums of squares, R^2, standard
/// errors), each per column of B.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LstsqResult {
    /// The solution `X` (`n x p`): the minimum-norm minimizer of `||A X - B||` (plus
    /// `alpha ||X||^2`) column by column.
    pub x: Mat<f64>,
    /// `||A x_j - b_j||^2` for each column, when A has full column rank and more rows than
    /// columns, without ridge or intercept (numpy returns these only then; empty otherwise).
    pub residuals: Vec<f64>,
    /// The numerical rank of A (centered, with an intercept): singular values above the cutoff.
    pub rank: usize,
    /// The singular values of A (centered, with an intercept), descending.
    pub s: Vec<f64>,
    /// The intercepts `c` (`B ~ A X + 1 c^T`), when fitted.
    pub intercept: Option<Vec<f64>>,
    /// Residual sums of squares `||B - A X - 1 c^T||^2`, whatever the rank.
    pub rss: Vec<f64>,
    /// Coefficients of determination: `1 - rss / tss`, with `tss` B's sum of squares about its
    /// means with an intercept and about 0 without (statsmodels' uncentered R^2); for a
    /// constant column of B, 1 if fitted exactly and 0 otherwise (scikit-learn's `r2_score`).
    pub r2: Vec<f64>,
    /// Standard errors of X (`n x p`) by ordinary least squares, `sigma^2 (A^T A)^-1` with
    /// `sigma^2 = rss / df_resid` (statsmodels' `bse`): without ridge, with full column rank and
    /// `df_resid > 0` only.
    pub stderr: Option<Mat<f64>>,
    /// Standard errors of the intercepts, likewise, when fitted.
    pub intercept_stderr: Option<Vec<f64>>,
    /// `(A^T A)^-1` (`n x n`; of the centered A with an intercept, weighted with weights),
    /// from the SVD of `R_1` (never by inverting `R_1^T R_1`): the coefficients of column j of
    /// B have covariance `scale[j] * cov_unscaled` (statsmodels' `normalized_cov_params` and
    /// `cov_params()`). Computed when `stderr` is.
    pub cov_unscaled: Option<Mat<f64>>,
    /// `sigma_j^2 = rss_j / df_resid` per column of B (statsmodels' `scale`), when `stderr`
    /// is computed.
    pub scale: Option<Vec<f64>>,
    /// Residual degrees of freedom: rows, less the rank, less 1 with an intercept.
    pub df_resid: f64,
    /// What the run observed.
    pub stats: RunStats,
}

/// A planned least-squares solve: the panels of `[A | B]`, the reduction tree and memory of
/// its TSQR, ready to run ([`run`](Self::run), [`run_with`](Self::run_with)).
#[derive(Debug)]
pub struct LstsqPlan<'a> {
    tsqr: SvdPlan<'a>,
    fit_intercept: bool,
    alpha: f64,
}

impl<'a> LstsqPlan<'a> {
    /// Plans the solve of `A X = B` on `engine`: refuses an empty A, a B of other rows or of no
    /// columns, a non-finite `rcond`, a negative or non-finite `alpha`, an intercept over one
    /// row, and a memory limit below what one worker needs.
    pub fn new(
        engine: &Engine,
        a: impl Into<Input<'a>>,
        b: impl Into<Input<'a>>,
        options: &LstsqOptions,
    ) -> Result<Self> {
        Self::plan(engine, a.into(), Beside { rhs: Some(b.into()), ..Beside::default() }, options)
    }

    /// Plans weighted least squares: row `i` of `[A | B]` counts `w_i` times, minimizing
    /// `sum_i w_i ||a_i X - b_i||^2` (plus the ridge penalty; the intercept and R^2 on the
    /// weighted means), as statsmodels' `WLS` and scikit-learn's `sample_weight` do. `w` is
    /// `m x 1`, read beside A and B in the same pass; a weight must be finite and at least 0
    /// (the run stops at the first that is not, naming its row). Zero-weight rows count in
    /// the residual degrees of freedom, as statsmodels counts them. Refuses `w` of another
    /// shape, and what [`new`](Self::new) refuses.
    ///
    /// ```
    /// use outcore::{Engine, LstsqOptions, LstsqPlan};
    ///
    /// # fn main() -> outcore::Result<()> {
    /// // Weights 0 drop the last two rows: the fit is the line through the first three.
    /// let a = outcore::faer::mat![[1.0], [2.0], [3.0], [4.0], [5.0]];
    /// let b = outcore::faer::mat![[2.0], [4.0], [6.0], [0.0], [-9.0]];
    /// let w = outcore::faer::mat![[1.0], [1.0], [1.0], [0.0], [0.0]];
    /// let engine = Engine::new(64 << 20)?;
    /// let fit = LstsqPlan::weighted(&engine, &a, &b, &w, &LstsqOptions::new())?.run(&engine)?;
    /// assert!((fit.x[(0, 0)] - 2.0).abs() <= 1e-12);
    /// # Ok(())
    /// # }
    /// ```
    pub fn weighted(
        engine: &Engine,
        a: impl Into<Input<'a>>,
        b: impl Into<Input<'a>>,
        w: impl Into<Input<'a>>,
        options: &LstsqOptions,
    ) -> Result<Self> {
        Self::plan(engine, a.into(), Beside { rhs: Some(b.into()), weights: Some(w.into()), q_times: None }, options)
    }

    fn plan(engine: &Engine, a: Input<'a>, beside: Beside<'a>, options: &LstsqOptions) -> Result<Self> {
        let LstsqOptions { rcond, fan_in, panel_rows, check_finite, fit_intercept, alpha } = options.clone();
        if let Some(r) = rcond.filter(|r| !r.is_finite()) {
            let reason = format!(
                "{r} is not a cutoff: give a finite ratio (singular values at most rcond times the largest count as zero)"
            );
            return Err(Error::invalid(Knob::Rcond, reason));
        }
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(Error::invalid(
                Knob::Alpha,
                format!("{alpha} is not a penalty: give a finite value of 0 (ordinary least squares) or more"),
            ));
        }
        let (m, n) = shape(&a);
        // LAPACK's `gelsd` (numpy's `lstsq`) takes a cutoff outside (0, 1) for machine epsilon.
        let rcond = match rcond {
            None => f64::EPSILON * m.max(n) as f64,
            Some(r) if r > 0.0 && r < 1.0 => r,
            Some(_) => f64::EPSILON,
        };
        let tsqr_options =
            SvdOptions { vectors: false, fan_in, panel_rows, check_finite, center: fit_intercept, standardize: false };
        let how = Regression { rcond, alpha };
        let tsqr = SvdPlan::with_root(engine, a, beside, &tsqr_options, Root::Lstsq(how))?;
        Ok(Self { tsqr, fit_intercept, alpha })
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
        // The root's outputs, in the order `TsqrExecutor::solve` makes them; an empty block
        // is a figure not computed.
        let slot = |slot| Key { slot, ..keys.root };
        let given = |slot| -> Result<Option<Vec<f64>>> {
            let values = results.values(Key { slot, ..keys.root })?;
            Ok((!values.is_empty()).then_some(values))
        };
        let x = results.matrix(keys.root)?;
        let s = results.values(slot(1))?;
        let rss = results.values(slot(2))?;
        let rank = results.values(slot(3))?.first().copied().unwrap_or(0.0) as usize;
        let tss = results.values(slot(4))?;
        let intercept = given(5)?;
        let stderr = given(6)?.map(|_| results.matrix(slot(6))).transpose()?;
        let intercept_stderr = given(7)?;
        let cov_unscaled = given(8)?.map(|_| results.matrix(slot(8))).transpose()?;
        let scale = given(9)?;
        let (m, n) = self.tsqr.shape();
        let plain = !self.fit_intercept && self.alpha == 0.0;
        let residuals = if plain && rank == n && m > n { rss.clone() } else { Vec::new() };
        let r2 = rss
            .iter()
            .zip(&tss)
            .map(|(r, t)| match *t > 0.0 {
                true => 1.0 - r / t,
                false => f64::from(u8::from(*r == 0.0)),
            })
            .collect();
        let df_resid = m as f64 - rank as f64 - f64::from(u8::from(self.fit_intercept));
        Ok(LstsqResult {
            x,
            residuals,
            rank,
            s,
            intercept,
            rss,
            r2,
            stderr,
            intercept_stderr,
            cov_unscaled,
            scale,
            df_resid,
            stats,
        })
    }

    /// The TSQR plan this solve runs, of `[A | B]`: its shape (A's), panels, reduction tree,
    /// memory and graph (its root solves where the SVD's takes R's SVD).
    pub fn tsqr(&self) -> &SvdPlan<'a> {
        &self.tsqr
    }
}

/// The shape of an input before it is lent.
fn shape(input: &Input<'_>) -> (usize, usize) {
    match input {
        Input::Chunked(a) => a.shape(),
        Input::Dense(a) => a.shape(),
    }
}
