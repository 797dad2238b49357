//! Test support shared by outcore's tests and benches: dense references and tolerances
//! scaled as `eps * sqrt(max(m, n)) * norm`, and ([`child`]) child processes measured from
//! outside. Not published.

pub mod child;

use std::sync::Arc;

use faer::Mat;
use outcore::storage::{ChunkGrid, ChunkStore, MemoryStore};
use outcore::{ChunkedMatrix, Distribution, Engine, Scheduler};

/// An `m x n` matrix of standard normal values, seeded.
pub fn gaussian(m: usize, n: usize, seed: u64) -> Mat<f64> {
    ChunkedMatrix::generated(Distribution::Normal, seed, m, n, m.max(1), n.max(1))
        .and_then(|a| a.to_dense())
        .expect("a generated matrix")
}

/// `Q1 diag(sigma) Q2^T` with random orthonormal `Q1` (`m x r`) and `Q2` (`n x r`), `r` the
/// length of `sigma`: a matrix of known singular values.
pub fn with_spectrum(m: usize, n: usize, sigma: &[f64], seed: u64) -> Mat<f64> {
    let r = sigma.len();
    let q1 = gaussian(m, r, seed).qr().compute_thin_Q();
    let q2 = gaussian(n, r, seed ^ 77).qr().compute_thin_Q();
    let d = Mat::from_fn(r, r, |i, j| if i == j { sigma[i] } else { 0.0 });
    &q1 * d * q2.transpose()
}

/// An engine of `limit` bytes of its own memory (the default accounting: what else lives in
/// the test process does not count), Dask's default thresholds.
pub fn engine(limit: u64, scheduler: Scheduler) -> Engine {
    Engine::builder().memory_limit(limit).scheduler(scheduler).build().unwrap()
}

/// A matrix from row-major values, chunked as asked.
pub fn matrix(data: &[f64], rows: usize, cols: usize, cr: usize, cc: usize) -> ChunkedMatrix {
    let grid = ChunkGrid::new(rows, cols, cr, cc).unwrap();
    let store: Arc<dyn ChunkStore> = Arc::new(MemoryStore::from_row_major(grid, data).unwrap());
    ChunkedMatrix::from_store(store)
}

/// The values of `m`, row by row.
pub fn row_major(m: &Mat<f64>) -> Vec<f64> {
    let (r, c) = m.shape();
    (0..r * c).map(|i| m[(i / c, i % c)]).collect()
}

/// eps * sqrt(max(m, n)) * scale, times a safety factor for the algorithm's constant.
pub fn tol(m: usize, n: usize, scale: f64) -> f64 {
    64.0 * f64::EPSILON * (m.max(n) as f64).sqrt() * scale.max(f64::MIN_POSITIVE)
}

/// Dense reference singular values (faer, in RAM).
pub fn reference_singular_values(a: &Mat<f64>) -> Vec<f64> {
    a.singular_values().unwrap()
}

/// Frobenius norm of U diag(s) V^T - A.
pub fn reconstruction_error(a: &Mat<f64>, u: &Mat<f64>, s: &[f64], v: &Mat<f64>) -> f64 {
    let k = s.len();
    let us = Mat::from_fn(u.nrows(), k, |i, j| u[(i, j)] * s[j]);
    (&us * v.transpose() - a).norm_l2()
}

/// ||Q^T Q - I|| for the columns of `q` that carry a nonzero singular value.
pub fn orthogonality_error(q: &Mat<f64>, s: &[f64]) -> f64 {
    let smax = s.first().copied().unwrap_or(0.0);
    let r = s.iter().filter(|&&x| x > 1e-10 * smax).count();
    let q = q.as_ref().subcols(0, r);
    (q.transpose() * q - Mat::<f64>::identity(r, r)).norm_l2()
}
