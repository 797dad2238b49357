//! Least squares on a small matrix: the minimum-norm solution through the SVD, as LAPACK's
//! `gelsd` gives it.

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
    /// `||r1 x - r2||^2` per column of `r2`.
    pub(crate) residuals: Vec<f64>,
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
    let mut residual = r2.to_owned();
    matmul(residual.as_mut(), Accum::Add, r1, x.as_ref(), -1.0, Par::Seq);
    let residuals = (0..p).map(|j| residual.col(j).squared_norm_l2()).collect();
    Ok(Solution { x, s, rank, residuals })
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
        assert!(sol.residuals.iter().all(|&r| r <= 1e-24));
        // Two equal columns: rank 1, and the minimum-norm solution splits the weight evenly.
        let r1 = Mat::from_fn(2, 2, |i, _| if i == 0 { 1.0 } else { 0.0 });
        let r2 = Mat::from_fn(2, 1, |i, _| if i == 0 { 2.0 } else { 3.0 });
        let sol = min_norm_solve(r1.as_ref(), r2.as_ref(), 1e-12).unwrap();
        assert_eq!(sol.rank, 1);
        assert!((sol.x[(0, 0)] - 1.0).abs() <= 1e-14 && (sol.x[(1, 0)] - 1.0).abs() <= 1e-14, "{:?}", sol.x);
        assert!((sol.residuals[0] - 9.0).abs() <= 1e-12);
        // Zero: rank 0, x zero.
        let zero = Mat::<f64>::zeros(2, 2);
        let sol = min_norm_solve(zero.as_ref(), r2.as_ref(), 1e-12).unwrap();
        assert_eq!((sol.rank, sol.x.norm_l2()), (0, 0.0));
    }
}
