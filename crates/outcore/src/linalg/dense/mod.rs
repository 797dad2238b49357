//! Dense kernels on small and panel-sized matrices, all sequential (`Par::Seq`) so results do
//! not depend on thread counts. Kernels never do I/O. Householder QR and applying its Q
//! (`qr`), CholeskyQR2 for R alone at GEMM speed (`cholesky`), the thin SVD and its signs
//! (`svd`), least squares through the SVD (`solve`), centering for PCA and weighting for
//! least squares (`center`).

mod center;
mod cholesky;
mod qr;
mod solve;
mod svd;

use faer::MatRef;

pub(crate) use center::{center_columns, center_rows, column_scales, pooled_mean, weigh_rows};
pub(crate) use cholesky::{CholeskyQr, cholesky_qr2_bytes, cholesky_qr2_r};
pub(crate) use qr::{apply_q, apply_q_into, qr_in_place, qr_scratch_bytes, r_factor, solve_r_if_conditioned};
pub(crate) use solve::{Regression, fit};
pub(crate) use svd::{flip_signs, svd_scratch_bytes, thin_svd};

use crate::task::Block;

/// A row-major block as a faer view (no copy).
pub(crate) fn view(data: &[f64], rows: usize, cols: usize) -> MatRef<'_, f64> {
    MatRef::from_row_major_slice(data, rows, cols)
}

/// Copies a matrix into a row-major [`Block`].
pub(crate) fn to_block(m: MatRef<'_, f64>) -> Block {
    let (rows, cols) = m.shape();
    let mut data = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        data.extend((0..cols).map(|j| m[(i, j)]));
    }
    Block { data, rows, cols }
}

#[cfg(test)]
mod tests {
    use faer::Mat;

    pub(super) fn sample(m: usize, n: usize) -> Mat<f64> {
        Mat::from_fn(m, n, |i, j| ((i * 7 + j * 13) % 11) as f64 - 5.0 + (i as f64 * 0.1).sin())
    }
}
