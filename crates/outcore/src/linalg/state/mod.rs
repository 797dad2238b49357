//! A factorization that grows by rows and merges exactly: the TSQR identity kept between runs.
//!
//! ```text
//!  state       n rows seen, their column means mu, and F (k x n) with F^T F = (A - 1 mu^T)^T (A - 1 mu^T)
//!  update(B)   one TSQR pass over the new rows B, centered: their mu_B and F_B = S_B V_B^T
//!  merge       F = R of [F_1; F_2; sqrt(n_1) (mu_1 - mu); sqrt(n_2) (mu_2 - mu)],  mu the pooled mean
//!  svd         centered: the SVD of F;  not centered: of [F; sqrt(n) mu^T] (the Gram of A itself)
//! ```
//!
//! Merging is the step TSQR's reduction tree takes at each node (`tsqr::kernels::stack_qr`),
//! so a state built from any split of the rows, merged in any order, has the Gram of the
//! one-pass fit to rounding, and the same rows in the same batches give the same bits. Only
//! the `k x n` factor and the `n` means are kept: appending rows never reads the old ones.

mod file;

use faer::{Mat, MatRef};

use crate::error::{Error, Result};
use crate::linalg::dense::{flip_signs, pooled_mean, qr_in_place, r_factor, thin_svd, view};
use crate::linalg::input::Input;
use crate::linalg::result::{Centered, ColumnMoments, SvdResult, check_can_center};
use crate::linalg::tsqr::{SvdOptions, SvdPlan};
use crate::output::{Destination, Factor};
use crate::run::{Engine, RunControl, RunStats};
use outcore_storage::Knob;

/// What an exact SVD or PCA of rows seen so far needs, in `O(n^2)` memory whatever the rows:
/// their count, their column means, and a `k x n` factor (`k <= n`) whose Gram is that of the
/// rows centered on those means. Grows with [`update`](Self::update) (a pass over the new rows
/// only), combines with [`merge`](Self::merge), gives the SVD with [`svd`](Self::svd), and is
/// kept between processes with [`save`](Self::save) and [`load`](Self::load).
///
/// ```
/// use outcore::{Engine, FactorState};
///
/// # fn main() -> outcore::Result<()> {
/// let engine = Engine::new(64 << 20)?;
/// let a = outcore::faer::Mat::<f64>::from_fn(300, 4, |i, j| ((i * 7 + j * 3) % 11) as f64);
/// let mut state = FactorState::new(4);
/// state.update(&engine, a.as_ref().subrows(0, 120))?;
/// state.update(&engine, a.as_ref().subrows(120, 180))?; // the first 120 rows are not read again
/// let pca = state.svd(true)?;
/// let once = outcore::svd(&engine, &a, &outcore::SvdOptions::new().center(true))?;
/// assert!((pca.s[0] - once.s[0]).abs() < 1e-10 * once.s[0]);
/// assert_eq!(state.rows(), 300);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FactorState {
    rows: u64,
    mean: Vec<f64>,
    factor: Mat<f64>,
}

impl FactorState {
    /// A state of `cols` columns that has seen no rows.
    pub fn new(cols: usize) -> Self {
        Self { rows: 0, mean: vec![0.0; cols], factor: Mat::zeros(0, cols) }
    }

    /// Columns of the rows it takes.
    pub fn cols(&self) -> usize {
        self.mean.len()
    }

    /// Rows seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Column means of the rows seen so far.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Column variances of the rows seen so far (`ddof = 0`, numpy's `var`).
    pub fn variance(&self) -> Vec<f64> {
        let rows = self.rows.max(1) as f64;
        (0..self.cols()).map(|j| self.factor.col(j).iter().map(|x| x * x).sum::<f64>() / rows).collect()
    }

    /// Adds `rows` (any [`Input`]: a chunked matrix, a store, a matrix in RAM) with one
    /// streamed pass over them under `engine`'s memory limit (a TSQR of the rows centered on
    /// their own means), then [`merge`](Self::merge)s it in. The rows seen before are not read.
    pub fn update<'a>(&mut self, engine: &Engine, rows: impl Into<Input<'a>>) -> Result<()> {
        self.update_with(engine, rows, &RunControl::default()).map(drop)
    }

    /// [`update`](Self::update), its pass cancelled and watched through `control`; returns
    /// what the pass observed. On any error the state is left as it was.
    pub fn update_with<'a>(
        &mut self,
        engine: &Engine,
        rows: impl Into<Input<'a>>,
        control: &RunControl,
    ) -> Result<RunStats> {
        let rows = rows.into();
        let (m, n) = rows.shape();
        if n != self.cols() {
            return Err(Error::invalid(
                Knob::Input,
                format!(
                    "the new rows have {n} columns and the state {}: a state takes rows of its own columns",
                    self.cols()
                ),
            ));
        }
        let stats;
        let batch = if m == 1 {
            // One row has nothing to center: its mean is itself, u s v^T.
            let r = SvdPlan::new(engine, rows, &SvdOptions::new())?.run_with(engine, Destination::Memory, control)?;
            let (u, v) = r.dense_vectors()?;
            let scale = u[(0, 0)] * r.s[0];
            stats = r.stats;
            Self { rows: 1, mean: v.col(0).iter().map(|x| scale * x).collect(), factor: Mat::zeros(0, n) }
        } else {
            let options = SvdOptions::new().center(true);
            let r = SvdPlan::new(engine, rows, &options)?.run_with(engine, Destination::Memory, control)?;
            let mean = r.centered.as_ref().map(|c| c.mean.clone()).ok_or_else(|| missing("the means"))?;
            let v = r.v_matrix().ok_or_else(|| missing("V"))?;
            let factor = Mat::from_fn(r.s.len(), n, |i, j| r.s[i] * v[(j, i)]);
            stats = r.stats;
            Self { rows: m as u64, mean, factor }
        };
        self.merge(&batch)?;
        Ok(stats)
    }

    /// Adds the rows `other` has seen, exactly as if they had been added here: the states'
    /// factors are stacked with one row per state for its mean's distance from the pooled
    /// mean, and the stack's R is the new factor.
    pub fn merge(&mut self, other: &FactorState) -> Result<()> {
        if other.cols() != self.cols() {
            return Err(Error::invalid(
                Knob::Input,
                format!(
                    "the state merged in has {} columns and this one {}: states merge over the same columns only",
                    other.cols(),
                    self.cols()
                ),
            ));
        }
        if other.rows == 0 {
            return Ok(());
        }
        if self.rows == 0 {
            *self = other.clone();
            return Ok(());
        }
        let n = self.cols();
        let parts = [&*self, other];
        let counts = parts.map(|p| p.rows as f64);
        let mean = pooled_mean(counts.iter().copied().zip(parts.map(|p| p.mean.as_slice())), n);
        let height = parts.iter().map(|p| p.factor.nrows() + 1).sum();
        let mut stack = Mat::<f64>::zeros(height, n);
        let mut row = 0;
        for (p, c) in parts.iter().zip(counts) {
            let k = p.factor.nrows();
            stack.as_mut().subrows_mut(row, k).copy_from(&p.factor);
            (0..n).for_each(|j| stack[(row + k, j)] = c.sqrt() * (p.mean[j] - mean[j]));
            row += k + 1;
        }
        qr_in_place(stack.as_mut());
        let r = r_factor(stack.as_ref(), height.min(n));
        self.factor = view(&r.data, r.rows, r.cols).to_owned();
        self.mean = mean;
        self.rows += other.rows;
        Ok(())
    }

    /// The SVD of the rows seen: with `center`, of the rows centered on their means (a PCA:
    /// [`SvdResult::centered`] holds the means and the total variance), else of the rows as
    /// they are. V only (U would need the rows again: project them on V), signs as TSQR's
    /// (the entry of largest magnitude in each column of V positive);
    /// [`SvdResult::columns`] holds the column means and variances.
    pub fn svd(&self, center: bool) -> Result<SvdResult> {
        let n = self.cols();
        if self.rows == 0 {
            return Err(Error::invalid(Knob::Input, "the state has seen no rows: update it with some first"));
        }
        let stacked;
        let a: MatRef<'_, f64> = if center {
            check_can_center(usize::try_from(self.rows).unwrap_or(usize::MAX))?;
            self.factor.as_ref()
        } else {
            let k = self.factor.nrows();
            let root = (self.rows as f64).sqrt();
            stacked = Mat::from_fn(k + 1, n, |i, j| if i < k { self.factor[(i, j)] } else { root * self.mean[j] });
            stacked.as_ref()
        };
        let (s, vectors) = thin_svd(a, true)?;
        let (mut u, mut v) = vectors.ok_or_else(|| missing("the vectors"))?;
        flip_signs(u.as_mut(), v.as_mut());
        let centered = center.then(|| Centered {
            mean: self.mean.clone(),
            scale: None,
            total_variance: self.factor.norm_l2().powi(2) / (self.rows as f64 - 1.0),
        });
        let columns = Some(ColumnMoments { mean: self.mean.clone(), variance: self.variance() });
        Ok(SvdResult { s, u: None, v: Some(Factor::Dense(v)), centered, columns, stats: RunStats::default() })
    }
}

fn missing(what: &str) -> Error {
    Error::Bug(format!("a centered TSQR returned no {what}"))
}
