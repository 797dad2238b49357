//! Linear algebra out of core: TSQR SVD ([`tsqr`]) and randomized SVD ([`rsvd`]) on top of
//! dense kernels (`dense`, sequential faer) and a block QR tree (`blockqr`), all reducing in
//! one reduction tree (`tree`).

pub(crate) mod blockqr;
pub(crate) mod budget;
pub(crate) mod dense;
pub(crate) mod in_memory;
pub mod rsvd;
pub(crate) mod tree;
pub mod tsqr;

use std::sync::Arc;

use faer::Mat;
use outcore_storage::ChunkStore;

use crate::matrix::ChunkedMatrix;
use crate::schedule::RunStats;
use crate::{Error, Result};

/// Refuses to centre a matrix of fewer than 2 rows (nothing to take a variance over).
pub(crate) fn check_can_centre(rows: usize) -> Result<()> {
    if rows < 2 {
        return Err(Error::invalid(
            "center",
            "centring needs at least 2 rows (samples): a column of 1 has no variance",
        ));
    }
    Ok(())
}

/// A matrix of singular vectors: small ones in RAM, large ones where their
/// [`Destination`](crate::Destination) said.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Factor {
    /// Held in RAM.
    Dense(Mat<f64>),
    /// Written to a chunk store (for example a Zarr array), chunk by chunk.
    Stored(Arc<dyn ChunkStore>),
    /// Written into the matrix the caller passed as its destination.
    Written {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
}

impl Factor {
    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Self::Dense(m) => m.shape(),
            Self::Stored(s) => s.grid().shape(),
            Self::Written { rows, cols } => (*rows, *cols),
        }
    }

    /// The factor in RAM (reads a stored one whole: for tests and small results).
    pub fn to_dense(&self) -> Result<Mat<f64>> {
        match self {
            Self::Dense(m) => Ok(m.clone()),
            Self::Stored(s) => ChunkedMatrix::from_store(s.clone()).to_dense(),
            Self::Written { .. } => {
                Err(Error::invalid("destination", "the factor was written into the matrix you passed; read it there"))
            }
        }
    }
}

/// A singular value decomposition `A = U diag(s) V^T`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SvdResult {
    /// Singular values, descending.
    pub s: Vec<f64>,
    /// Left singular vectors as columns (`m x k`), when computed.
    pub u: Option<Factor>,
    /// Right singular vectors as columns (`n x k`; V, not V^T), when computed.
    pub v: Option<Factor>,
    /// The column means (and scales) the matrix was centred (and standardized) by, when the
    /// options asked for it ([`TsqrOptions::center`](crate::TsqrOptions::center),
    /// [`RsvdOptions::center`](crate::RsvdOptions::center)).
    pub centred: Option<Centred>,
    /// What the run observed.
    pub stats: RunStats,
}

/// How a matrix was centred before its SVD, as a PCA needs: `A - 1 mean^T`, divided column by
/// column by `scale` when standardized. Computed in the same pass as the factorization; the
/// centred matrix is never formed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Centred {
    /// Column means of the matrix (one per column).
    pub mean: Vec<f64>,
    /// Column standard deviations (`ddof = 1`, where scikit-learn's `StandardScaler` divides by
    /// the `ddof = 0` deviation: the components are the same, the variances differ by
    /// `m / (m - 1)`) the centred columns were divided by, when standardized. A constant
    /// column (variance within centring's rounding) is left unscaled: its scale is 1, as in
    /// `StandardScaler`.
    pub scale: Option<Vec<f64>>,
    /// Total variance of the centred (and scaled) matrix: the sum of its column variances
    /// (`ddof = 1`), the denominator of PCA's explained variance ratio.
    pub total_variance: f64,
}

impl SvdResult {
    /// U, when it is held in RAM ([`Factor::Dense`]).
    pub fn u_matrix(&self) -> Option<&Mat<f64>> {
        match &self.u {
            Some(Factor::Dense(m)) => Some(m),
            _ => None,
        }
    }

    /// V (not V^T), when it is held in RAM ([`Factor::Dense`]).
    pub fn v_matrix(&self) -> Option<&Mat<f64>> {
        match &self.v {
            Some(Factor::Dense(m)) => Some(m),
            _ => None,
        }
    }

    /// U and V in RAM, or an error if they were not computed.
    pub fn dense_vectors(&self) -> Result<(Mat<f64>, Mat<f64>)> {
        match (&self.u, &self.v) {
            (Some(u), Some(v)) => Ok((u.to_dense()?, v.to_dense()?)),
            _ => Err(Error::invalid("result", "singular vectors were not computed (values only)")),
        }
    }
}
