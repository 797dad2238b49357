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
//! panel by Householder and reads the matrix twice. The plan and the run are those of the
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
/// let a = faer::Mat::<f64>::from_fn(10_000, 20, |i, j| ((i * 7 + j * 13) % 17) as f64 + (i == j) as u8 as f64);
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
    /// `Q` (`m x n`, orthonormal columns) where its destination put it, in
    /// [`QrMode::Reduced`].
    pub q: Option<Factor>,
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
    /// Plans the QR of `a` (any [`Input`]) on `engine`: refuses an empty or wide matrix, and a
    /// memory limit below what one worker needs, saying which limit would work.
    pub fn new(engine: &Engine, a: impl Into<Input<'a>>, options: &QrOptions) -> Result<Self> {
        let QrOptions { mode, fan_in, panel_rows, check_finite } = options.clone();
        let tsqr_options = SvdOptions {
            vectors: mode == QrMode::Reduced,
            fan_in,
            panel_rows,
            check_finite,
            center: false,
            standardize: false,
        };
        let tsqr = SvdPlan::with_root(engine, a.into(), Beside::default(), &tsqr_options, Root::Qr)?;
        let (m, n) = tsqr.shape();
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
        Ok(QrResult { r: results.matrix(keys.root)?, q: large, stats })
    }

    /// What is computed.
    pub fn mode(&self) -> QrMode {
        self.mode
    }

    /// Grid of Q, chunked like the input along its rows; `None` in [`QrMode::R`].
    pub fn q_grid(&self) -> Option<outcore_storage::ChunkGrid> {
        self.tsqr.factor_grid()
    }

    /// The TSQR plan this QR runs: its shape, panels, reduction tree, memory and graph (its
    /// root keeps R where the SVD's takes R's SVD).
    pub fn tsqr(&self) -> &SvdPlan<'a> {
        &self.tsqr
    }
}
