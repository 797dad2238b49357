//! Dense kernels on small and panel-sized matrices, all sequential (`Par::Seq`) so results do
//! not depend on thread counts. Kernels never do I/O.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{LltRegularization, cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::householder::{
    apply_block_householder_sequence_on_the_left_in_place_scratch,
    apply_block_householder_sequence_on_the_left_in_place_with_conj,
};
use faer::linalg::matmul::matmul;
use faer::linalg::qr::no_pivoting::factor::{self, qr_in_place_scratch, recommended_block_size};
use faer::linalg::svd::{ComputeSvdVectors, svd, svd_scratch};
use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Conj, Mat, MatMut, MatRef, Par};

use crate::error::{Error, Result};
use crate::task::Block;

/// A row-major block as a faer view (no copy).
pub fn view(data: &[f64], rows: usize, cols: usize) -> MatRef<'_, f64> {
    MatRef::from_row_major_slice(data, rows, cols)
}

/// Copies a matrix into a row-major [`Block`].
pub fn output(m: MatRef<'_, f64>) -> Block {
    let (rows, cols) = m.shape();
    let mut data = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        data.extend((0..cols).map(|j| m[(i, j)]));
    }
    Block { data, rows, cols }
}

/// Householder block size for an `m x n` QR: faer's recommendation, capped at 24 for narrow
/// matrices, where it measured fastest (10000 x 100, sequential, AVX-512: 35.3 GFLOP/s at 24
/// against 33.0 at faer's 48 and 28.5 at 16).
fn block_size(m: usize, n: usize) -> usize {
    let recommended = recommended_block_size::<f64>(m, n);
    if n <= 128 { recommended.min(24) } else { recommended }
}

/// The largest condition number CholeskyQR2 takes on (it is accurate to about 1e8, where the
/// Gram matrix's condition reaches 1/eps): beyond it Householder QR is used. Estimated before
/// the panel is touched as `sqrt(trace(G) / lambda_min(G))`, `lambda_min` by inverse iteration
/// with the Cholesky factor (from above by at most sqrt(n) in the trace). After, the computed
/// `Q1^T Q1` must be within 1/2 of the identity.
pub const CHOLESKY_QR_MAX_CONDITION: f64 = 1e7;

/// What [`cholesky_qr2_r`] did.
#[derive(Debug)]
pub enum CholeskyQr {
    /// The `n x n` R of `a` (positive diagonal); `a` now holds a Q.
    R(Mat<f64>),
    /// `a` is too ill-conditioned (or not taller than wide): untouched, for Householder.
    Declined,
    /// A late check failed after `a` was overwritten: the caller reads it again.
    Failed,
}

/// Bytes [`cholesky_qr2_r`] allocates for an `n`-column panel: three `n x n` matrices at once,
/// and the Cholesky scratch.
pub fn cholesky_qr2_bytes(n: usize) -> u64 {
    let scratch = cholesky_in_place_scratch::<f64>(n, Par::Seq, Default::default()).size_bytes();
    (3 * n * n * size_of::<f64>() + scratch) as u64
}

/// The R of `a` (`m x n`) by CholeskyQR2, when `a` is well conditioned: the Gram matrix
/// `A^T A` and its Cholesky factor `R1`, `Q1 = A R1^-1` in place, then the same again on `Q1`,
/// `R = R2 R1`. Its flops are GEMM-like, where Householder's panel sweeps are memory-bound
/// (measured on a 5242 x 100 panel, one core: the Gram at 64 GFLOP/s, Householder QR at 10.8).
/// The guard ([`CHOLESKY_QR_MAX_CONDITION`]): a failed Cholesky or a failed check leaves the
/// QR to Householder, exact for every input.
pub fn cholesky_qr2_r(mut a: MatMut<'_, f64>) -> CholeskyQr {
    let (m, n) = a.shape();
    if m < n || n == 0 {
        return CholeskyQr::Declined;
    }
    let mut g = Mat::<f64>::zeros(n, n);
    matmul(g.as_mut(), Accum::Replace, a.rb().transpose(), a.rb(), 1.0, Par::Seq);
    let Some(l1) = cholesky_lower(&g) else { return CholeskyQr::Declined };
    let trace: f64 = (0..n).map(|i| g[(i, i)]).sum();
    let condition = (trace * inverse_iteration(l1.as_ref())).sqrt();
    // NaN (an overflowed estimate) declines too.
    if condition.is_nan() || condition > CHOLESKY_QR_MAX_CONDITION {
        return CholeskyQr::Declined;
    }
    // Q1^T = L1^-1 A^T, in place; then the Gram of Q1, in g.
    solve_lower_triangular_in_place(l1.as_ref(), a.rb_mut().transpose_mut(), Par::Seq);
    matmul(g.as_mut(), Accum::Replace, a.rb().transpose(), a.rb(), 1.0, Par::Seq);
    let gap = (0..n).flat_map(|j| (0..n).map(move |i| (i, j))).map(|(i, j)| (g[(i, j)] - f64::from(i == j)).abs());
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

/// Bytes of scratch and coefficients a QR of an `m x n` matrix allocates beside the matrix.
pub fn qr_scratch_bytes(m: usize, n: usize) -> u64 {
    let bs = block_size(m, n);
    let k = m.min(n);
    let stack = qr_in_place_scratch::<f64>(m, n, bs, Par::Seq, Default::default()).size_bytes();
    (stack + bs * k * size_of::<f64>()) as u64
}

/// Householder QR of `a` in place (sequential, blocked): afterwards R is on and above the
/// diagonal and the reflectors below it. Returns the block coefficients (`bs x min(m, n)`).
pub fn qr_in_place(a: MatMut<'_, f64>) -> Mat<f64> {
    let (m, n) = a.shape();
    let bs = block_size(m, n);
    let mut coeffs = Mat::<f64>::zeros(bs, m.min(n));
    let mut mem = MemBuffer::new(qr_in_place_scratch::<f64>(m, n, bs, Par::Seq, Default::default()));
    factor::qr_in_place(a, coeffs.as_mut(), Par::Seq, MemStack::new(&mut mem), Default::default());
    coeffs
}

/// The `k x n` upper-trapezoidal R of a factored matrix, row-major.
pub fn r_factor(factors: MatRef<'_, f64>, k: usize) -> Block {
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
pub fn apply_q_into(
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
pub fn apply_q(factors: MatRef<'_, f64>, coeffs: MatRef<'_, f64>, w: MatRef<'_, f64>) -> Result<Mat<f64>> {
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
pub fn solve_r_if_conditioned(r: MatRef<'_, f64>, w: MatRef<'_, f64>, max_condition: f64) -> Option<Mat<f64>> {
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

/// Bytes of scratch a thin SVD of an `m x n` matrix allocates (vectors included).
pub fn svd_scratch_bytes(m: usize, n: usize, vectors: bool) -> u64 {
    let v = if vectors { ComputeSvdVectors::Thin } else { ComputeSvdVectors::No };
    let k = m.min(n);
    let stack = svd_scratch::<f64>(m, n, v, v, Par::Seq, Default::default()).size_bytes();
    let outputs = if vectors { (m * k + n * k) * size_of::<f64>() } else { 0 };
    (stack + outputs + k * size_of::<f64>()) as u64
}

/// Left and right singular vectors `(U, V)`.
pub type Vectors = (Mat<f64>, Mat<f64>);

/// Thin SVD: singular values (descending) and, if asked, U (`m x k`) and V (`n x k`).
pub fn thin_svd(a: MatRef<'_, f64>, vectors: bool) -> Result<(Vec<f64>, Option<Vectors>)> {
    let (m, n) = a.shape();
    let k = m.min(n);
    let mode = if vectors { ComputeSvdVectors::Thin } else { ComputeSvdVectors::No };
    let mut s = faer::diag::Diag::<f64>::zeros(k);
    let mut mem = MemBuffer::new(svd_scratch::<f64>(m, n, mode, mode, Par::Seq, Default::default()));
    let stack = MemStack::new(&mut mem);
    let mut uv = vectors.then(|| (Mat::<f64>::zeros(m, k), Mat::<f64>::zeros(n, k)));
    let (u, v) = match &mut uv {
        Some((u, v)) => (Some(u.as_mut()), Some(v.as_mut())),
        None => (None, None),
    };
    svd(a, s.as_mut(), u, v, Par::Seq, stack, Default::default())
        .map_err(|_| Error::NoConvergence { rows: m, cols: n })?;
    let values = s.column_vector().iter().copied().collect();
    Ok((values, uv))
}

/// Subtracts each column's mean from it; returns the means as a `1 x n` block.
pub fn center_columns(mut a: MatMut<'_, f64>) -> Block {
    let (h, n) = a.shape();
    let mut means = Vec::with_capacity(n);
    for j in 0..n {
        let col = a.rb_mut().col_mut(j);
        let mean = col.rb().iter().sum::<f64>() / h as f64;
        col.iter_mut().for_each(|x| *x -= mean);
        means.push(mean);
    }
    Block { data: means, rows: 1, cols: n }
}

/// Subtracts each row's mean from it and, when `standardize`, divides it by its standard
/// deviation (`ddof = 1`; 1 for a constant row, see [`deviation`]); returns `[means; scales]`
/// as a `2 x h` block.
pub fn center_rows(mut a: MatMut<'_, f64>, standardize: bool) -> Block {
    let (h, n) = a.shape();
    let mut means = vec![0.0; h];
    for j in 0..n {
        means.iter_mut().zip(a.rb().col(j).iter()).for_each(|(m, x)| *m += x);
    }
    means.iter_mut().for_each(|m| *m /= n as f64);
    let mut squares = vec![0.0; h];
    for j in 0..n {
        let col = a.rb_mut().col_mut(j);
        for ((x, m), q) in col.iter_mut().zip(&means).zip(&mut squares) {
            *x -= m;
            *q += *x * *x;
        }
    }
    let scales: Vec<f64> = if standardize {
        squares.iter().zip(&means).map(|(q, m)| deviation(*q, *m, n as f64)).collect()
    } else {
        vec![1.0; h]
    };
    if standardize {
        for j in 0..n {
            a.rb_mut().col_mut(j).iter_mut().zip(&scales).for_each(|(x, s)| *x /= s);
        }
    }
    Block { data: [means, scales].concat(), rows: 2, cols: h }
}

/// Divides each column of a centred matrix's R (whose column norms are the centred columns')
/// by its standard deviation over `samples` rows (`ddof = 1`; 1 for a constant column, see
/// [`deviation`]); `means` are the columns' means. Returns the scales.
pub fn column_scales(mut r: MatMut<'_, f64>, means: &[f64], samples: f64) -> Vec<f64> {
    (0..r.ncols())
        .map(|j| {
            let col = r.rb_mut().col_mut(j);
            let scale = deviation(col.rb().iter().map(|x| x * x).sum(), means[j], samples);
            col.iter_mut().for_each(|x| *x /= scale);
            scale
        })
        .collect()
}

/// The standard deviation (`ddof = 1`) from a sum of squared deviations over `samples` values
/// of mean `mean`; 1 for a constant column: one whose variance is within the rounding that
/// centring leaves (`m eps var + (m eps mean)^2`, scikit-learn's `_is_constant_feature`), so
/// a column of 0.1s is not scaled up into unit-variance noise.
pub(crate) fn deviation(squares: f64, mean: f64, samples: f64) -> f64 {
    let variance = squares / samples;
    let bound = samples * f64::EPSILON * variance + (samples * mean * f64::EPSILON).powi(2);
    if variance <= bound { 1.0 } else { (squares / (samples - 1.0)).sqrt() }
}

/// Makes singular vector signs deterministic (`svd_flip` with the decision on V): in each
/// column of `v` the entry of largest magnitude (the first, on ties) is made positive, and the
/// matching column of `u` is flipped with it.
pub fn flip_signs(mut u: MatMut<'_, f64>, mut v: MatMut<'_, f64>) {
    for j in 0..v.ncols() {
        let mut best = 0;
        for i in 1..v.nrows() {
            if v[(i, j)].abs() > v[(best, j)].abs() {
                best = i;
            }
        }
        if v.nrows() > 0 && v[(best, j)] < 0.0 {
            v.as_mut().col_mut(j).iter_mut().for_each(|x| *x = -*x);
            u.as_mut().col_mut(j).iter_mut().for_each(|x| *x = -*x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(m: usize, n: usize) -> Mat<f64> {
        Mat::from_fn(m, n, |i, j| ((i * 7 + j * 13) % 11) as f64 - 5.0 + (i as f64 * 0.1).sin())
    }

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
    fn svd_reconstructs_and_signs_are_fixed() {
        let a = sample(7, 4);
        let (s, uv) = thin_svd(a.as_ref(), true).unwrap();
        let (mut u, mut v) = uv.unwrap();
        flip_signs(u.as_mut(), v.as_mut());
        let recon = &u * faer::Mat::from_fn(4, 4, |i, j| if i == j { s[i] } else { 0.0 }) * v.transpose();
        assert!((&recon - &a).norm_l2() < 1e-12 * a.norm_l2());
        for j in 0..4 {
            let col: Vec<f64> = v.col(j).iter().copied().collect();
            let max = col.iter().copied().fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            assert!(max > 0.0);
        }
        let (values, none) = thin_svd(a.as_ref(), false).unwrap();
        assert!(none.is_none());
        for (x, y) in values.iter().zip(&s) {
            assert!((x - y).abs() < 1e-12 * s[0]);
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
