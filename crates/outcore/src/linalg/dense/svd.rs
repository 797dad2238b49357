//! The thin SVD of a small matrix, and the signs that make its vectors deterministic.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::svd::{ComputeSvdVectors, svd, svd_scratch};
use faer::{Mat, MatMut, MatRef, Par};

use crate::error::{Error, Result};

/// Bytes of scratch a thin SVD of an `m x n` matrix allocates (vectors included).
pub(crate) fn svd_scratch_bytes(m: usize, n: usize, vectors: bool) -> u64 {
    let v = if vectors { ComputeSvdVectors::Thin } else { ComputeSvdVectors::No };
    let k = m.min(n);
    let stack = svd_scratch::<f64>(m, n, v, v, Par::Seq, Default::default()).size_bytes();
    let outputs = if vectors { (m * k + n * k) * size_of::<f64>() } else { 0 };
    (stack + outputs + k * size_of::<f64>()) as u64
}

/// Left and right singular vectors `(U, V)`.
pub(crate) type Vectors = (Mat<f64>, Mat<f64>);

/// Thin SVD: singular values (descending) and, if asked, U (`m x k`) and V (`n x k`).
pub(crate) fn thin_svd(a: MatRef<'_, f64>, vectors: bool) -> Result<(Vec<f64>, Option<Vectors>)> {
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

/// Makes singular vector signs deterministic (`svd_flip` with the decision on V): in each
/// column of `v` the entry of largest magnitude (the first, on ties) is made positive, and the
/// matching column of `u` is flipped with it.
pub(crate) fn flip_signs(mut u: MatMut<'_, f64>, mut v: MatMut<'_, f64>) {
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
    use super::super::tests::sample;
    use super::*;

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
}
