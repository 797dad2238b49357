//! CholeskyQR2: the R of a panel from two Gram matrices and Choleskys, at GEMM speed, guarded
//! by a condition estimate so it is taken only where it is accurate.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{LltRegularization, cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par};

/// The largest condition number CholeskyQR2 takes on (it is accurate to about 1e8, where the
/// Gram matrix's condition reaches 1/eps): beyond it Householder QR is used. Estimated before
/// the panel is touched as `sqrt(trace(G) / lambda_min(G))`, `lambda_min` by inverse iteration
/// with the Cholesky factor (from above by at most sqrt(n) in the trace). After, the computed
/// `Q1^T Q1` must be within 1/2 of the identity.
pub(crate) const CHOLESKY_QR_MAX_CONDITION: f64 = 1e7;

/// What [`cholesky_qr2_r`] did.
#[derive(Debug)]
pub(crate) enum CholeskyQr {
    /// The `n x n` R of `a` (positive diagonal); `a` now holds a Q.
    R(Mat<f64>),
    /// `a` is too ill-conditioned (or not taller than wide): untouched, for Householder.
    Declined,
    /// A late check failed after `a` was overwritten: the caller reads it again.
    Failed,
}

/// Bytes [`cholesky_qr2_r`] allocates for an `n`-column panel: three `n x n` matrices at once,
/// and the Cholesky scratch.
pub(crate) fn cholesky_qr2_bytes(n: usize) -> u64 {
    let scratch = cholesky_in_place_scratch::<f64>(n, Par::Seq, Default::default()).size_bytes();
    (3 * n * n * size_of::<f64>() + scratch) as u64
}

/// The R of `a` (`m x n`) by CholeskyQR2, when `a` is well conditioned: the Gram matrix
/// `A^T A` and its Cholesky factor `R1`, `Q1 = A R1^-1` in place, then the same again on `Q1`,
/// `R = R2 R1`. Its flops are GEMM-like, where Householder's panel sweeps are memory-bound
/// (docs/decisions.md).
/// The guard ([`CHOLESKY_QR_MAX_CONDITION`]): a failed Cholesky or a failed check leaves the
/// QR to Householder, exact for every input.
pub(crate) fn cholesky_qr2_r(mut a: MatMut<'_, f64>) -> CholeskyQr {
    let (m, n) = a.shape();
    if m < n || n == 0 {
        return CholeskyQr::Declined;
    }
    let mut g = Mat::<f64>::zeros(n, n);
    gram_lower(g.as_mut(), a.rb());
    let Some(l1) = cholesky_lower(&g) else { return CholeskyQr::Declined };
    let trace: f64 = (0..n).map(|i| g[(i, i)]).sum();
    let condition = (trace * inverse_iteration(l1.as_ref())).sqrt();
    // NaN (an overflowed estimate) declines too.
    if condition.is_nan() || condition > CHOLESKY_QR_MAX_CONDITION {
        return CholeskyQr::Declined;
    }
    // Q1^T = L1^-1 A^T, in place; then the Gram of Q1, in g.
    solve_lower_triangular_in_place(l1.as_ref(), a.rb_mut().transpose_mut(), Par::Seq);
    gram_lower(g.as_mut(), a.rb());
    let gap = (0..n).flat_map(|j| (j..n).map(move |i| (i, j))).map(|(i, j)| (g[(i, j)] - f64::from(i == j)).abs());
    // NaN counts as a gap (f64::max would drop it).
    if gap.fold(0.0, |worst: f64, d| if d.is_nan() { f64::INFINITY } else { worst.max(d) }) > 0.5 {
        return CholeskyQr::Failed;
    }
    let Some(l2) = cholesky_lower(&g) else { return CholeskyQr::Failed };
    // R = R2 R1 = (L1 L2)^T, formed in g: at most three n x n matrices live at once.
    matmul(g.as_mut(), Accum::Replace, l1.as_ref(), l2.as_ref(), 1.0, Par::Seq);
    drop((l1, l2));
    let r = g.transpose().to_owned();
    if (0..n).all(|j| (0..n).all(|i| r[(i, j)].is_finite())) { CholeskyQr::R(r) } else { CholeskyQr::Failed }
}

/// The lower triangle (with the diagonal) of `A^T A` into `g`, the upper left alone: the Gram
/// is symmetric, and the Cholesky reads the lower half only, so half the products suffice.
fn gram_lower(g: MatMut<'_, f64>, a: MatRef<'_, f64>) {
    let full = BlockStructure::Rectangular;
    triangular::matmul(g, BlockStructure::TriangularLower, Accum::Replace, a.transpose(), full, a, full, 1.0, Par::Seq);
}

/// An estimate of `1 / lambda_min(G)` for `G = L L^T`: eight steps of inverse iteration,
/// `x <- G^-1 x / |x|`, from a fixed start (so results do not vary from run to run).
fn inverse_iteration(l: MatRef<'_, f64>) -> f64 {
    let n = l.nrows();
    let mut x = Mat::from_fn(n, 1, |i, _| 1.0 + (i as f64 * 0.618_033_988_75).fract());
    let mut growth = 0.0;
    for _ in 0..8 {
        let norm = x.norm_l2();
        if !(norm > 0.0 && norm.is_finite()) {
            return f64::INFINITY;
        }
        (0..n).for_each(|i| x[(i, 0)] /= norm);
        solve_lower_triangular_in_place(l, x.as_mut(), Par::Seq);
        solve_upper_triangular_in_place(l.transpose(), x.as_mut(), Par::Seq);
        growth = x.norm_l2();
    }
    growth
}

/// The lower Cholesky factor of `g` (symmetric positive definite), zeros above the diagonal;
/// `None` when a pivot is not positive.
fn cholesky_lower(g: &Mat<f64>) -> Option<Mat<f64>> {
    let n = g.nrows();
    let mut l = g.clone();
    let mut mem = MemBuffer::new(cholesky_in_place_scratch::<f64>(n, Par::Seq, Default::default()));
    cholesky_in_place(l.as_mut(), LltRegularization::default(), Par::Seq, MemStack::new(&mut mem), Default::default())
        .ok()?;
    for j in 1..n {
        for i in 0..j {
            l[(i, j)] = 0.0;
        }
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::super::qr::qr_in_place;
    use super::*;

    /// `U diag(s) V^T` (m x n), `s` from 1 down to `1 / cond`.
    fn conditioned(m: usize, n: usize, cond: f64) -> Mat<f64> {
        let u = Mat::from_fn(m, n, |i, j| ((i * 7 + j * 13) as f64 * 0.71).sin()).qr().compute_thin_Q();
        let v = Mat::from_fn(n, n, |i, j| ((i * 5 + j * 3) as f64 * 1.3).cos()).qr().compute_thin_Q();
        let s = |j: usize| cond.powf(-(j as f64) / (n - 1) as f64);
        &Mat::from_fn(m, n, |i, j| u[(i, j)] * s(j)) * v.transpose()
    }

    /// CholeskyQR2 gives Householder's R up to the signs of its rows on a panel it takes
    /// (condition 1e6), and declines, untouched, one near 1e8 whose first Cholesky still
    /// succeeds (the guard, not the Cholesky, refuses it), one near 1e12, and a wide one.
    #[test]
    fn cholesky_qr2_matches_householder_and_declines_what_it_cannot_do() {
        let (m, n) = (523, 17);
        let base = conditioned(m, n, 1e6);
        let mut a = base.clone();
        let CholeskyQr::R(r) = cholesky_qr2_r(a.as_mut()) else { panic!("a panel of condition 1e6") };
        let mut h = base.clone();
        qr_in_place(h.as_mut());
        for i in 0..n {
            for j in i..n {
                // Householder's rows, signed so that its diagonal is positive like Cholesky's.
                let (x, y) = (r[(i, j)], h[(i, j)] * h[(i, i)].signum());
                assert!((x - y).abs() <= 1e-13, "R[{i}, {j}]: {x} against {y}");
            }
        }
        let near = conditioned(m, n, 5e7);
        let mut gram = Mat::<f64>::zeros(n, n);
        matmul(gram.as_mut(), Accum::Replace, near.transpose(), near.as_ref(), 1.0, Par::Seq);
        assert!(cholesky_lower(&gram).is_some(), "the first Cholesky succeeds near 1e8");
        for cond in [5e7, 1e12] {
            let mut ill = conditioned(m, n, cond);
            let before = ill.clone();
            assert!(matches!(cholesky_qr2_r(ill.as_mut()), CholeskyQr::Declined), "condition {cond:e}");
            assert_eq!(ill, before, "declined panels are untouched");
        }
        let mut wide = Mat::<f64>::zeros(3, 5);
        assert!(matches!(cholesky_qr2_r(wide.as_mut()), CholeskyQr::Declined));
    }
}
