//! What a caller chooses of a randomized SVD.

use outcore_storage::Knob;

use crate::error::{Error, Result};

/// How the range of A is explored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandomizedMethod {
    /// Subspace (power) iteration, re-orthonormalized between every product.
    Subspace,
    /// Block Krylov iteration: every iterate's block is kept.
    Krylov,
}

impl std::str::FromStr for RandomizedMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "subspace" => Ok(Self::Subspace),
            "krylov" => Ok(Self::Krylov),
            _ => Err(Error::invalid(Knob::Method, format!("{s:?} is not one of subspace, krylov"))),
        }
    }
}

/// Choices for a randomized SVD. Start from [`RandomizedSvdOptions::new`] with the number of singular
/// values wanted and change what you need:
///
/// ```
/// use outcore::{RandomizedMethod, RandomizedSvdOptions};
///
/// let options = RandomizedSvdOptions::new(10).power_iters(2).method(RandomizedMethod::Subspace).seed(7);
/// assert_eq!((options.k, options.oversamples), (10, 10));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RandomizedSvdOptions {
    /// Singular values and vectors wanted.
    pub k: usize,
    /// Extra sketch columns beyond k (Dask's `n_oversamples`, default 10).
    pub oversamples: usize,
    /// Power (or Krylov) iterations; each costs two passes over A.
    pub power_iters: usize,
    /// Subspace or block Krylov iteration.
    pub method: RandomizedMethod,
    /// Seed of the sketch and the probes.
    pub seed: u64,
    /// Gaussian probes for the error estimate (failure probability 10^-probes).
    pub probes: usize,
    /// Refuse input holding NaN or infinity.
    pub check_finite: bool,
    /// Blocks per node of the QR reduction trees.
    pub fan_in: usize,
    /// Factor `A - 1 mean^T` (a PCA) without forming it: see [`center`](Self::center).
    pub center: bool,
    /// Gather the input's column means and variances in the first pass: see
    /// [`column_moments`](Self::column_moments).
    pub column_moments: bool,
}

impl Default for RandomizedSvdOptions {
    fn default() -> Self {
        Self {
            k: 5,
            oversamples: 10,
            power_iters: Self::DEFAULT_POWER_ITERS,
            method: RandomizedMethod::Krylov,
            seed: 0,
            probes: 10,
            check_finite: true,
            fan_in: 8,
            center: false,
            column_moments: false,
        }
    }
}

impl RandomizedSvdOptions {
    /// Iterations by default: block Krylov with q = 4 is ten times more accurate than Dask's
    /// default (q = 0) on the Dask lesson's matrix and still faster than it (docs/decisions.md).
    pub const DEFAULT_POWER_ITERS: usize = 4;

    /// Most power (or Krylov) iterations a plan takes: each is two passes over A.
    pub const MAX_POWER_ITERS: usize = 100;

    /// Most Gaussian probes of the error estimate: each adds a column to the first pass, and 10
    /// already put the failure probability at 1e-10.
    pub const MAX_PROBES: usize = 64;

    /// The top `k` singular values and vectors, with the defaults for everything else.
    pub fn new(k: usize) -> Self {
        Self { k, ..Self::default() }
    }

    /// Extra sketch columns beyond k (default 10).
    pub fn oversamples(mut self, p: usize) -> Self {
        self.oversamples = p;
        self
    }

    /// Power or Krylov iterations (default [`DEFAULT_POWER_ITERS`](Self::DEFAULT_POWER_ITERS)); each costs two passes.
    pub fn power_iters(mut self, q: usize) -> Self {
        self.power_iters = q;
        self
    }

    /// Subspace or block Krylov iteration (default Krylov).
    pub fn method(mut self, method: RandomizedMethod) -> Self {
        self.method = method;
        self
    }

    /// Seed of the sketch and the probes (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Gaussian probes of the error estimate (default 10: failure probability 1e-10).
    pub fn probes(mut self, probes: usize) -> Self {
        self.probes = probes;
        self
    }

    /// Refuse input holding NaN or infinity (`true`, the default) or skip the scan.
    pub fn check_finite(mut self, check: bool) -> Self {
        self.check_finite = check;
        self
    }

    /// Blocks per node of the QR reduction trees (default 8, at least 2).
    pub fn fan_in(mut self, fan_in: usize) -> Self {
        self.fan_in = fan_in;
        self
    }

    /// Factor `A - 1 mean^T`, the matrix with its column means subtracted, as a PCA does,
    /// without forming it and without another pass: the first pass also gathers each
    /// column's moments, and every product is corrected by a rank-one term,
    /// `(A - 1 mu^T) X = A X - 1 (mu^T X)` and `(A - 1 mu^T)^T Y = A^T Y - mu (1^T Y)`. The
    /// means and the total variance come back in [`SvdResult::centered`](crate::SvdResult::centered).
    pub fn center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }

    /// Gather each column's mean and variance in the first pass (no extra pass), returned in
    /// [`SvdResult::columns`](crate::SvdResult::columns): what a truncated SVD of the
    /// uncentered matrix needs to say how much of the data's variance each component explains
    /// (scikit-learn's `TruncatedSVD`). Centering gathers them anyway.
    pub fn column_moments(mut self, gather: bool) -> Self {
        self.column_moments = gather;
        self
    }

    /// Whether the first pass gathers column moments: to center, or because they were asked.
    pub(crate) fn gathers_moments(&self) -> bool {
        self.center || self.column_moments
    }
}
