//! QR out of core: `A = Q R` of a tall matrix by TSQR, the tree the SVD reduces in, with R's
//! diagonal made non-negative so the factorization does not depend on the kernels' signs.
//!
//! ```text
//!  A = [A_0; ...; A_P] ─ panel QR ─ R_i ─ R reduction (fan-in f) ─ R ─ signs: R = D R
//!                                                                   │
//!  Q (mode Reduced): W = D carried down the tree (Q back-propagation), then each panel's
//!  rows of Q D written where the destination says (U assembly of the SVD, with W for U_R)
//! ```
//!
//! [`QrMode::R`] reads the matrix once and keeps only the n x n factors of the tree, so it
//! may take CholeskyQR2 for panels (see docs/decisions.md); [`QrMode::Reduced`] factors every
//! panel by Householder and reads the matrix twice.
//!
//! Q is implicit, kept as the tree's Householder factors during the run, so it is applied
//! without being formed: `Q C` for a small `C` (`n x p`) is written in Q's place with
//! `W = D C` carried down the tree ([`QrOptions::q_times`]), and `Q^T B` for a tall B read
//! beside A is `D R_2` in the R of `[A | B] = Q [R_1 R_2; 0 R_3]`: one pass
//! ([`QrPlan::with_qt`]). The plan and the run are those of the
//! SVD's TSQR ([`SvdPlan`]) with a different root: everything said there of memory, ranks,
//! cancellation and events holds here.

mod options;

use faer::Mat;
use outcore_storage::{Knob, Message};

pub use options::{QrMode, QrOptions};

use crate::error::{Error, Result};
use crate::linalg::input::Input;
use crate::linalg::tsqr::{Beside, Outcome, Root, SvdOptions, SvdPlan};
use crate::output::{Destination, Factor};
use crate::run::{Engine, RunControl, RunStats};

/// The QR factorization of `a` (tall: at least as many rows as columns) under the engine's
/// memory limit, with Q (in [`QrMode::Reduced`]) and R in RAM. Use [`QrPlan`] to see the plan
/// first, send Q to a Zarr array or your own matrix, or cancel and watch the run.
///
/// ```
/// use outcore::{Engine, QrOptions};
///
/// # fn main() -> outcore::Result<()> {
/// let a = outcore::faer::Mat::<f64>::from_fn(10_000, 20, |i, j| ((i * 7 + j * 13) % 17) as f64 + (i == j) as u8 as f64);
/// let engine = Engine::new(64 << 20)?;
/// let qr = outcore::qr(&engine, &a, &QrOptions::new())?;
/// let q = qr.q_matrix().unwrap();
/// assert_eq!((q.shape(), qr.r.shape()), ((10_000, 20), (20, 20)));
/// assert!((q * &qr.r - &a).norm_l2() <= 1e-10 * a.norm_l2());
/// assert!((0..20).all(|i| qr.r[(i, i)] >= 0.0));
/// # Ok(())
/// # }
/// ```
pub fn qr<'a>(engine: &Engine, a: impl Into<Input<'a>>, options: &QrOptions) -> Result<QrResult> {
    QrPlan::new(engine, a, options)?.run(engine)
}

/// A QR factorization `A = Q R`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QrResult {
    /// `R` (`n x n`, upper triangular, its diagonal non-negative).
    pub r: Mat<f64>,
    /// `Q` (`m x n`, orthonormal columns), or `Q C` with [`QrOptions::q_times`], where its
    /// destination put it, in [`QrMode::Reduced`].
    pub q: Option<Factor>,
    /// `Q^T B` (`n x p`), for a plan made with [`QrPlan::with_qt`].
    pub qt_b: Option<Mat<f64>>,
    /// What the run observed.
    pub stats: RunStats,
}

impl QrResult {
    /// Q, when it is held in RAM ([`Factor::Dense`]).
    pub fn q_matrix(&self) -> Option<&Mat<f64>> {
        match &self.q {
            Some(Factor::Dense(m)) => Some(m),
            _ => None,
        }
    }
}

/// A planned QR: the panels, reduction tree and memory of its TSQR, ready to run
/// ([`run`](Self::run), [`run_with`](Self::run_with)). Made with [`QrPlan::new`].
#[derive(Debug)]
pub struct QrPlan<'a> {
    tsqr: SvdPlan<'a>,
    mode: QrMode,
}

impl<'a> QrPlan<'a> {
    /// Plans the QR of `a` (any [`Input`]) on `engine`: refuses an empty or wide matrix, a
    /// `q_times` without Q or of other rows than `a`'s columns, and a memory limit below what
    /// one worker needs, saying which limit would work.
    pub fn new(engine: &Engine, a: impl Into<Input<'a>>, options: &QrOptions) -> Result<Self> {
        Self::plan(engine, a.into(), None, options)
    }

    /// Plans the QR of `a` and `Q^T B` in the same pass (scipy's `qr_multiply(a, b.T,
    /// mode="right")`, transposed): `b` (any [`Input`], `a`'s rows) is read beside `a`, and
    /// `[A | B]` is reduced by the tree. Refuses what [`new`](Self::new) refuses, and a `b` of
    /// other rows or no columns.
    ///
    /// ```
    /// use outcore::{Engine, QrMode, QrOptions, QrPlan};
    ///
    /// # fn main() -> outcore::Result<()> {
    /// let a = outcore::faer::Mat::<f64>::from_fn(5_000, 4, |i, j| ((i * (j + 3)) % 11) as f64 + (i == j) as u8 as f64);
    /// let b = outcore::faer::Mat::<f64>::from_fn(5_000, 2, |i, j| (i % 7) as f64 - j as f64);
    /// let engine = Engine::new(64 << 20)?;
    /// let options = QrOptions::new().mode(QrMode::Reduced);
    /// let qr = QrPlan::with_qt(&engine, &a, &b, &options)?.run(&engine)?;
    /// let q = qr.q_matrix().unwrap();
    /// let qt_b = qr.qt_b.as_ref().unwrap();
    /// assert!((qt_b - q.transpose() * &b).norm_l2() <= 1e-9 * b.norm_l2());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_qt(
        engine: &Engine,
        a: impl Into<Input<'a>>,
        b: impl Into<Input<'a>>,
        options: &QrOptions,
    ) -> Result<Self> {
        Self::plan(engine, a.into(), Some(b.into()), options)
    }

    fn plan(engine: &Engine, a: Input<'a>, b: Option<Input<'a>>, options: &QrOptions) -> Result<Self> {
        let QrOptions { mode, fan_in, panel_rows, check_finite, q_times } = options.clone();
        if q_times.is_some() && mode == QrMode::R {
            let reason = Message::new()
                .text("Q C is written in Q's place, and mode R forms no Q: set ")
                .knob(Knob::Mode)
                .text(" to Reduced, or leave q_times out");
            return Err(Error::invalid(Knob::QTimes, reason));
        }
        let tsqr_options = SvdOptions {
            vectors: mode == QrMode::Reduced,
            fan_in,
            panel_rows,
            check_finite,
            center: false,
            standardize: false,
        };
        let shape = q_times.as_ref().map(Mat::shape);
        let beside = Beside { rhs: b, weights: None, q_times };
        let tsqr = SvdPlan::with_root(engine, a, beside, &tsqr_options, Root::Qr)?;
        let (m, n) = tsqr.shape();
        if let Some((rows, cols)) = shape.filter(|&(rows, cols)| rows != n || cols == 0) {
            let reason = format!(
                "C is {rows} x {cols}, and Q C needs a row of C per column of the matrix ({n}) and at least one column"
            );
            return Err(Error::invalid(Knob::QTimes, reason));
        }
        if m < n {
            let reason = format!(
                "the QR takes a tall matrix (at least as many rows as columns); this one is {m} x {n}: factor its transpose for A = R^T Q^T (an LQ)"
            );
            return Err(Error::invalid(Knob::Input, reason));
        }
        Ok(Self { tsqr, mode })
    }

    /// Runs the plan, with Q (if computed) and R in RAM.
    pub fn run(&self, engine: &Engine) -> Result<QrResult> {
        self.run_with(engine, Destination::Memory, &RunControl::default())
    }

    /// Runs the plan: Q goes to `q` (in [`QrMode::R`] only [`Destination::Memory`] is taken,
    /// and nothing is written), R is returned in RAM; `control` carries a cancel token and an
    /// event sink.
    pub fn run_with(&self, engine: &Engine, q: Destination<'_>, control: &RunControl) -> Result<QrResult> {
        let no_q = || {
            let reason = Message::new()
                .text("mode R computes no Q, so there is nothing to write: leave the destination in memory, or set ")
                .knob(Knob::Mode)
                .text(" to Reduced");
            Error::invalid(Knob::Destination, reason)
        };
        let Outcome { results, keys, large, stats } = self.tsqr.execute(engine, q, control, "Q", no_q)?;
        let qt_b = keys.qt_b.map(|key| results.matrix(key)).transpose()?;
        Ok(QrResult { r: results.matrix(keys.root)?, q: large, qt_b, stats })
    }

    /// What is computed.
    pub fn mode(&self) -> QrMode {
        self.mode
    }

    /// Grid of Q (or `Q C`), chunked like the input along its rows; `None` in [`QrMode::R`].
    pub fn q_grid(&self) -> Option<outcore_storage::ChunkGrid> {
        self.tsqr.factor_grid()
    }

    /// The TSQR plan this QR runs: its shape, panels, reduction tree, memory and graph (its
    /// root keeps R where the SVD's takes R's SVD).
    pub fn tsqr(&self) -> &SvdPlan<'a> {
        &self.tsqr
    }
}
