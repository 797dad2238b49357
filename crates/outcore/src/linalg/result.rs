//! What an SVD returns: the singular values, the factors where their destinations put them,
//! the centering a PCA asked for, and what the run observed.

use faer::Mat;

use outcore_storage::Knob;

use crate::error::{Error, Result};
use crate::output::Factor;
use crate::run::RunStats;

/// Refuses to center a matrix of fewer than 2 rows (nothing to take a variance over).
pub(crate) fn check_can_center(rows: usize) -> Result<()> {
    if rows < 2 {
        return Err(Error::invalid(
            Knob::Center,
            "centering needs at least 2 rows (samples): a column of 1 has no variance",
        ));
    }
    Ok(())
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
    /// The column means (and scales) the matrix was centered (and standardized) by, when the
    /// options asked for it ([`SvdOptions::center`](crate::SvdOptions::center),
    /// [`RandomizedSvdOptions::center`](crate::RandomizedSvdOptions::center)).
    pub centered: Option<Centered>,
    /// The input's column means and variances, when the options asked for them
    /// ([`RandomizedSvdOptions::column_moments`](crate::RandomizedSvdOptions::column_moments)).
    pub columns: Option<ColumnMoments>,
    /// What the run observed.
    pub stats: RunStats,
}

/// How a matrix was centered before its SVD, as a PCA needs: `A - 1 mean^T`, divided column by
/// column by `scale` when standardized. Computed in the same pass as the factorization; the
/// centered matrix is never formed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Centered {
    /// Column means of the matrix (one per column).
    pub mean: Vec<f64>,
    /// Column standard deviations (`ddof = 1`, where scikit-learn's `StandardScaler` divides by
    /// the `ddof = 0` deviation: the components are the same, the variances differ by
    /// `m / (m - 1)`) the centered columns were divided by, when standardized. A constant
    /// column (variance within centering's rounding) is left unscaled: its scale is 1, as in
    /// `StandardScaler`.
    pub scale: Option<Vec<f64>>,
    /// Total variance of the centered (and scaled) matrix: the sum of its column variances
    /// (`ddof = 1`), the denominator of PCA's explained variance ratio.
    pub total_variance: f64,
}

/// The input's column means and variances, gathered in the same pass as the factorization.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ColumnMoments {
    /// Column means (one per column).
    pub mean: Vec<f64>,
    /// Column variances (`ddof = 0`, numpy's `var`: the sum of squared deviations over the
    /// row count), merged across chunks by Chan, Golub and LeVeque's update, exact for columns
    /// far from zero.
    pub variance: Vec<f64>,
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
            _ => Err(Error::invalid(Knob::Vectors, "singular vectors were not computed (values only)")),
        }
    }
}
