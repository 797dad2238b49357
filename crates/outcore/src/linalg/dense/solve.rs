//! Least squares on a small matrix: the minimum-norm solution through the SVD, as LAPACK's
//! `gelsd` gives it, and the regression figures a TSQR's R holds (intercept, ridge, residual
//! and total sums of squares, standard errors).

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

use super::svd::thin_svd;
use crate::error::Result;

/// The minimum-norm least-squares solution of `r1 x = r2` and what describes it.
pub(crate) struct Solution {
    /// `x` (`r1.ncols() x r2.ncols()`).
    pub(crate) x: Mat<f64>,
    /// Singular values of `r1`, descending.
    pub(crate) s: Vec<f64>,
    /// Singular values above the cutoff `rcond * s[0]`.
    pub(crate) rank: usize,
}

/// Solves `min ||r1 x - r2||` for each column of `r2`, with the smallest `||x||` where `r1` is
/// rank-deficient: `x = V_r S_r^-1 U_r^T r2` over the singular values above `rcond * s_max`
/// (numpy's `lstsq` rule: the others count as zero).
pub(crate) fn min_norm_solve(r1: MatRef<'_, f64>, r2: MatRef<'_, f64>, rcond: f64) -> Result<Solution> {
    let (s, vectors) = thin_svd(r1, true)?;
    let (n, p) = (r1.ncols(), r2.ncols());
    let cutoff = rcond * s.first().copied().unwrap_or(0.0);
    let rank = s.iter().take_while(|&&x| x > cutoff).count();
    let mut x = Mat::<f64>::zeros(n, p);
    if let Some((u, v)) = vectors.filter(|_| rank > 0) {
        // y = S_r^-1 U_r^T r2, then x = V_r y.
        let mut y = Mat::<f64>::zeros(rank, p);
        matmul(y.as_mut(), Accum::Replace, u.as_ref().subcols(0, rank).transpose(), r2, 1.0, Par::Seq);
        for (i, sigma) in s.iter().take(rank).enumerate() {
            y.as_mut().row_mut(i).iter_mut().for_each(|v| *v /= sigma);
        }
        matmul(x.as_mut(), Accum::Replace, v.as_ref().subcols(0, rank), y.as_ref(), 1.0, Par::Seq);
    }
    Ok(Solution { x, s, rank })
}

/// A regression fitted from the R of `[A | B]` (of `[A - 1 mu_A^T | B - 1 mu_B^T]` with an
/// intercept), all per column of B.
pub(crate) struct Fit {
    /// The coefficients `X` (`n x p`), minimum-norm.
    pub(crate) x: Mat<f64>,
    /// Singular values of (the centered) A.
    pub(crate) s: Vec<f64>,
    /// Singular values above the cutoff.
    pub(crate) rank: usize,
    /// Residual sums of squares `||B - A X - 1 c^T||^2`.
    pub(crate) rss: Vec<f64>,
    /// Total sums of squares: of B about its means with an intercept, of B itself without.
    pub(crate) tss: Vec<f64>,
    /// The intercepts `c = mu_B - X^T mu_A`, with an intercept.
    pub(crate) intercept: Option<Vec<f64>>,
    /// The coefficients' covariance by ordinary least squares, `sigma_j^2 (A^T A)^-1` with
    /// `sigma_j^2 = rss_j / (m - rank - intercept)`: only without ridge, with full column rank
    /// and residual degrees of freedom left.
    pub(crate) covariance: Option<Covariance>,
}

/// The coefficients' covariance and standard errors, as statsmodels gives them.
pub(crate) struct Covariance {
    /// `(A^T A)^-1` (`n x n`, of the centered A with an intercept): statsmodels'
    /// `normalized_cov_params` for the slopes.
    pub(crate) unscaled: Mat<f64>,
    /// `sigma_j^2` per column of B (statsmodels' `scale`).
    pub(crate) scale: Vec<f64>,
    /// Standard errors of X (`n x p`).
    pub(crate) x: Mat<f64>,
    /// Standard errors of the intercepts, with an intercept.
    pub(crate) intercept: Option<Vec<f64>>,
}

/// What a regression asks beyond plain least squares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Regression {
    /// Singular values of A at most `rcond` times the largest count as zero.
    pub(crate) rcond: f64,
    /// Ridge penalty `alpha ||X||^2` (0: none).
    pub(crate) alpha: f64,
}

/// Fits `B ~ A X (+ 1 c^T)` from `r = [R_1 | R_2]` (`k x (n + p)`, A's `n` columns first), the R
/// of `[A | B]` (centered on `means`, `n + p` of them, when fitting an intercept; rows scaled by
/// the square roots of their weights, when weighted) over `(rows, weight)`: the rows, and
/// their weights' sum (the rows again, unweighted). Ridge solves
/// `[R_1; sqrt(alpha) I] X = [R_2; 0]`: no extra pass.
pub(crate) fn fit(
    r: MatRef<'_, f64>,
    n: usize,
    means: Option<&[f64]>,
    (samples, weight): (f64, f64),
    how: Regression,
) -> Result<Fit> {
    let (k, cols) = r.shape();
    let p = cols - n;
    let (r1, r2) = (r.subcols(0, n), r.subcols(n, p));
    let solution = if how.alpha > 0.0 {
        let root = how.alpha.sqrt();
        let r1 = Mat::from_fn(k + n, n, |i, j| {
            if i < k {
                r1[(i, j)]
            } else if i - k == j {
                root
            } else {
                0.0
            }
        });
        let r2 = Mat::from_fn(k + n, p, |i, j| if i < k { r2[(i, j)] } else { 0.0 });
        let mut ridge = min_norm_solve(r1.as_ref(), r2.as_ref(), 0.0)?;
        let (s, _) = thin_svd(r1.as_ref().subrows(0, k), false)?;
        ridge.rank = s.iter().take_while(|&&x| x > how.rcond * s.first().copied().unwrap_or(0.0)).count();
        ridge.s = s;
        ridge
    } else {
        min_norm_solve(r1, r2, how.rcond)?
    };
    let Solution { x, s, rank } = solution;
    // The data's residual, without the penalty: ||R_1 X - R_2||^2.
    let mut residual = r2.to_owned();
    matmul(residual.as_mut(), Accum::Add, r1, x.as_ref(), -1.0, Par::Seq);
    let rss: Vec<f64> = (0..p).map(|j| residual.col(j).squared_norm_l2()).collect();
    let tss = (0..p).map(|j| r2.col(j).squared_norm_l2()).collect();
    let intercept =
        means.map(|mu| (0..p).map(|j| mu[n + j] - (0..n).map(|i| mu[i] * x[(i, j)]).sum::<f64>()).collect());
    let df = samples - rank as f64 - if means.is_some() { 1.0 } else { 0.0 };
    let covariance =
        if how.alpha == 0.0 && rank == n && df > 0.0 { Some(covariance(r1, &rss, df, means, weight)?) } else { None };
    Ok(Fit { x, s, rank, rss, tss, intercept, covariance })
}

/// The covariance from `(A^T A)^-1 = V S^-2 V^T` (`R_1 = U S V^T`, full rank, never
/// `R_1^T R_1` inverted), and the standard errors: of X, the square roots of
/// `sigma_j^2 diag((A^T A)^-1)`; of the intercepts, of `sigma_j^2 (1 / w + mu^T (A^T A)^-1 mu)`
/// (A centered on `mu`, `w` the rows' weights' sum: their count unweighted).
fn covariance(r1: MatRef<'_, f64>, rss: &[f64], df: f64, means: Option<&[f64]>, weight: f64) -> Result<Covariance> {
    let (s, vectors) = thin_svd(r1, true)?;
    let Some((_, v)) = vectors else { return Err(crate::error::Error::Bug("an SVD without vectors".into())) };
    let n = r1.ncols();
    // W = V S^-1: (A^T A)^-1 = W W^T.
    let w = Mat::from_fn(n, s.len(), |i, j| v[(i, j)] / s[j]);
    let diag: Vec<f64> = (0..n).map(|i| w.row(i).squared_norm_l2()).collect();
    let sigma2: Vec<f64> = rss.iter().map(|r| r / df).collect();
    let x = Mat::from_fn(n, rss.len(), |i, j| (sigma2[j] * diag[i]).sqrt());
    let intercept = means.map(|mu| {
        let projected: f64 = (0..s.len()).map(|j| (0..n).map(|i| w[(i, j)] * mu[i]).sum::<f64>().powi(2)).sum();
        sigma2.iter().map(|s2| (s2 * (1.0 / weight + projected)).sqrt()).collect()
    });
    let mut unscaled = Mat::<f64>::zeros(n, n);
    matmul(unscaled.as_mut(), Accum::Replace, w.as_ref(), w.transpose(), 1.0, Par::Seq);
    Ok(Covariance { unscaled, scale: sigma2, x, intercept })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_rank_system_is_solved_and_a_deficient_one_gets_the_smallest_solution() {
        // Full rank: x solves r1 x = r2 exactly (square), residual zero.
        let r1 = Mat::from_fn(3, 3, |i, j| if i <= j { (1 + i + 2 * j) as f64 } else { 0.0 });
        let x_true = Mat::from_fn(3, 2, |i, j| (i as f64) - (j as f64) * 0.5);
        let r2 = &r1 * &x_true;
        let sol = min_norm_solve(r1.as_ref(), r2.as_ref(), 1e-12).unwrap();
        assert_eq!(sol.rank, 3);
        assert!((&sol.x - &x_true).norm_l2() <= 1e-12, "{:?}", sol.x);
        // Two equal columns: rank 1, and the minimum-norm solution splits the weight evenly.
        let r1 = Mat::from_fn(2, 2, |i, _| if i == 0 { 1.0 } else { 0.0 });
        let r2 = Mat::from_fn(2, 1, |i, _| if i == 0 { 2.0 } else { 3.0 });
        let sol = min_norm_solve(r1.as_ref(), r2.as_ref(), 1e-12).unwrap();
        assert_eq!(sol.rank, 1);
        assert!((sol.x[(0, 0)] - 1.0).abs() <= 1e-14 && (sol.x[(1, 0)] - 1.0).abs() <= 1e-14, "{:?}", sol.x);
        // What is left is the second row, which no x reaches: a residual of 3^2.
        let fitted = fit(
            Mat::from_fn(2, 3, |i, j| if j < 2 { r1[(i, j)] } else { r2[(i, 0)] }).as_ref(),
            2,
            None,
            (2.0, 2.0),
            Regression { rcond: 1e-12, alpha: 0.0 },
        )
        .unwrap();
        assert!((fitted.rss[0] - 9.0).abs() <= 1e-12 && fitted.covariance.is_none());
        // Zero: rank 0, x zero.
        let zero = Mat::<f64>::zeros(2, 2);
        let sol = min_norm_solve(zero.as_ref(), r2.as_ref(), 1e-12).unwrap();
        assert_eq!((sol.rank, sol.x.norm_l2()), (0, 0.0));
    }
}
