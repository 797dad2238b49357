//! Householder QR of a panel in place, its R, applying its Q, and the `A R^-1` shortcut.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::householder::{
    apply_block_householder_sequence_on_the_left_in_place_scratch,
    apply_block_householder_sequence_on_the_left_in_place_with_conj,
};
use faer::linalg::matmul::matmul;
use faer::linalg::qr::no_pivoting::factor::{self, qr_in_place_scratch, recommended_block_size};
use faer::linalg::triangular_solve::solve_upper_triangular_in_place;
use faer::{Accum, Conj, Mat, MatMut, MatRef, Par};

use crate::error::{Error, Result};
use crate::task::Block;

/// Householder block size for an `m x n` QR: faer's recommendation, capped at 24 for narrow
/// matrices, where it measured fastest (docs/decisions.md).
fn block_size(m: usize, n: usize) -> usize {
    let recommended = recommended_block_size::<f64>(m, n);
    if n <= 128 { recommended.min(24) } else { recommended }
}

/// Bytes of scratch and coefficients a QR of an `m x n` matrix allocates beside the matrix.
pub(crate) fn qr_scratch_bytes(m: usize, n: usize) -> u64 {
    let bs = block_size(m, n);
    let k = m.min(n);
    let stack = qr_in_place_scratch::<f64>(m, n, bs, Par::Seq, Default::default()).size_bytes();
    (stack + bs * k * size_of::<f64>()) as u64
}

/// Householder QR of `a` in place (sequential, blocked): afterwards R is on and above the
/// diagonal and the reflectors below it. Returns the block coefficients (`bs x min(m, n)`).
pub(crate) fn qr_in_place(a: MatMut<'_, f64>) -> Mat<f64> {
    let (m, n) = a.shape();
    let bs = block_size(m, n);
    let mut coeffs = Mat::<f64>::zeros(bs, m.min(n));
    let mut mem = MemBuffer::new(qr_in_place_scratch::<f64>(m, n, bs, Par::Seq, Default::default()));
    factor::qr_in_place(a, coeffs.as_mut(), Par::Seq, MemStack::new(&mut mem), Default::default());
    coeffs
}

/// The `k x n` upper-trapezoidal R of a factored matrix, row-major.
pub(crate) fn r_factor(factors: MatRef<'_, f64>, k: usize) -> Block {
    let n = factors.ncols();
    let mut data = vec![0.0; k * n];
    for i in 0..k {
        for j in i..n {
            data[i * n + j] = factors[(i, j)];
        }
    }
    Block { data, rows: k, cols: n }
}

/// `out = Q [w; 0]` for Q given by Householder `factors` (`m x n`) and `coeffs` (`bs x k`);
/// `out` is `m x c` for `w` of `k x c`.
pub(crate) fn apply_q_into(
    factors: MatRef<'_, f64>,
    coeffs: MatRef<'_, f64>,
    w: MatRef<'_, f64>,
    mut out: MatMut<'_, f64>,
) -> Result<()> {
    let m = factors.nrows();
    let k = coeffs.ncols();
    let c = w.ncols();
    if w.nrows() != k || out.shape() != (m, c) {
        return Err(Error::Bug(format!(
            "applying {k} reflectors of length {m} to {:?} into {:?}",
            w.shape(),
            out.shape()
        )));
    }
    out.fill(0.0);
    out.as_mut().submatrix_mut(0, 0, k, c).copy_from(w);
    let bs = coeffs.nrows();
    let mut mem = MemBuffer::new(apply_block_householder_sequence_on_the_left_in_place_scratch::<f64>(m, bs, c));
    apply_block_householder_sequence_on_the_left_in_place_with_conj(
        factors.get(.., ..k),
        coeffs,
        Conj::No,
        out,
        Par::Seq,
        MemStack::new(&mut mem),
    );
    Ok(())
}

/// `Q [w; 0]` as a new matrix (see [`apply_q_into`]).
pub(crate) fn apply_q(factors: MatRef<'_, f64>, coeffs: MatRef<'_, f64>, w: MatRef<'_, f64>) -> Result<Mat<f64>> {
    let mut out = Mat::<f64>::zeros(factors.nrows(), w.ncols());
    apply_q_into(factors, coeffs, w, out.as_mut())?;
    Ok(out)
}

/// `R^-1 W` for a square upper-triangular `r`, or `None` when `r` is not square or its
/// condition bound `||R||_F ||R^-1||_F` exceeds `max_condition` (or is not finite).
///
/// With `R` a panel's R factor, `A_panel (R^-1 W)` equals `Q_panel W` at the cost of one
/// matrix product instead of a second QR and a Householder application, but its rounding
/// error grows with the bound (about `eps` times it), hence the cap.
pub(crate) fn solve_r_if_conditioned(r: MatRef<'_, f64>, w: MatRef<'_, f64>, max_condition: f64) -> Option<Mat<f64>> {
    let n = r.ncols();
    if r.nrows() != n || w.nrows() != n {
        return None;
    }
    let mut inverse = Mat::<f64>::identity(n, n);
    solve_upper_triangular_in_place(r, inverse.as_mut(), Par::Seq);
    let bound = r.norm_l2() * inverse.norm_l2();
    // A zero pivot makes the bound infinite or NaN: refused either way.
    if !bound.is_finite() || bound > max_condition {
        return None;
    }
    let mut x = Mat::<f64>::zeros(n, w.ncols());
    matmul(x.as_mut(), Accum::Replace, inverse.as_ref(), w, 1.0, Par::Seq);
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::super::view;
    use super::*;

    #[test]
    fn qr_then_apply_q_reconstructs() {
        for (m, n) in [(9, 4), (4, 9), (5, 5), (1, 3), (3, 1)] {
            let a = sample(m, n);
            let mut factors = a.clone();
            let coeffs = qr_in_place(factors.as_mut());
            let r = r_factor(factors.as_ref(), m.min(n));
            let recon = apply_q(factors.as_ref(), coeffs.as_ref(), view(&r.data, r.rows, r.cols)).unwrap();
            let err = (&recon - &a).norm_l2();
            assert!(err <= 1e-13 * a.norm_l2().max(1.0), "{m}x{n}: {err}");
        }
    }

    #[test]
    fn r_inverse_shortcut_equals_q_and_refuses_ill_conditioned_r() {
        let (m, n) = (40, 6);
        let a = sample(m, n);
        let mut factors = a.clone();
        let coeffs = qr_in_place(factors.as_mut());
        let r = r_factor(factors.as_ref(), n);
        let r = view(&r.data, n, n);
        let w = sample(n, 3);
        let x = solve_r_if_conditioned(r, w.as_ref(), 1e3).expect("a well-conditioned R");
        let exact = apply_q(factors.as_ref(), coeffs.as_ref(), w.as_ref()).unwrap();
        let err = (&a * &x - &exact).norm_l2();
        assert!(err <= 1e-13 * exact.norm_l2(), "A R^-1 W differs from Q W by {err}");
        // ||R||_F ||R^-1||_F >= sqrt(n), so a cap of 1 always refuses.
        assert!(solve_r_if_conditioned(r, w.as_ref(), 1.0).is_none());
        let singular = Mat::from_fn(n, n, |i, j| if i <= j && i + 1 < n { 1.0 } else { 0.0 });
        assert!(solve_r_if_conditioned(singular.as_ref(), w.as_ref(), f64::MAX).is_none());
        assert!(solve_r_if_conditioned(r.submatrix(0, 0, n - 1, n), w.as_ref(), f64::MAX).is_none());
    }
}
