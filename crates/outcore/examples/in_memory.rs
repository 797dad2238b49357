//! The SVD of a matrix you already hold: a 200,000 x 50 row-major `Vec<f64>`, borrowed (never
//! copied whole) under a 256 MiB engine, checked against faer's dense SVD.
//!
//! `cargo run --release --example in_memory`

use outcore::faer::{Mat, MatRef};
use outcore::{Engine, SvdOptions};

fn main() -> outcore::Result<()> {
    let (m, n) = (200_000, 50);
    let data: Vec<f64> = (0..m * n).map(|i| ((i * 7919) % 1000) as f64 / 1000.0).collect();
    let a = MatRef::from_row_major_slice(&data, m, n);

    let engine = Engine::new(256 << 20)?;
    let svd = outcore::svd(&engine, a, &SvdOptions::new())?;

    let (u, v) = (svd.u_matrix().expect("U in RAM"), svd.v_matrix().expect("V in RAM"));
    println!("sigma_1..3 = {:.6?}, U {:?}, V {:?}", &svd.s[..3], u.shape(), v.shape());
    println!(
        "peak RSS before the dense check: {} (A and U are 76 MiB each)",
        outcore::storage::format_size(outcore::storage::RssSource::Process.sample().peak)
    );
    check(a, &svd.s, u, v);
    println!("matches faer's dense SVD; {}", engine.memory_pool());
    Ok(())
}

/// Singular values against faer's, and `||A - U S V^T||` against `||A||`, to
/// `eps * sqrt(max(m, n))` scale.
fn check(a: MatRef<'_, f64>, s: &[f64], u: &Mat<f64>, v: &Mat<f64>) {
    let reference = a.singular_values().expect("faer's SVD");
    let tol = 64.0 * f64::EPSILON * (a.nrows().max(a.ncols()) as f64).sqrt() * reference[0];
    for (x, y) in s.iter().zip(&reference) {
        assert!((x - y).abs() <= tol, "{x} vs {y}");
    }
    let d = Mat::from_fn(s.len(), s.len(), |i, j| if i == j { s[i] } else { 0.0 });
    let residual = (a - u * d * v.transpose()).norm_l2();
    assert!(residual <= tol, "||A - U S V^T|| = {residual:e}");
}
