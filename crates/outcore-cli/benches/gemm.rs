//! The machine's dense GEMM rate with faer, the physical anchor, and TSQR's rate as a fraction
//! of it (issue 17's "kernels near GEMM speed").
//!
//! `cargo bench --bench gemm [-- --reps 5] [--rows 2000000]`
//!
//! Rates are effective GFLOP/s: the flops of the textbook algorithm over the wall time, median
//! of the repetitions. GEMM `C = A B` of n x n counts 2n^3; the Gram matrix `A^T A` of a panel
//! 2mn^2; a Householder QR of m x n counts 2mn^2 - 2n^3/3, and TSQR is given the flops of one
//! Householder QR of the whole matrix (its extra work in the reduction tree is not counted, as
//! LAPACK-equivalent rates do). Kernels on one core use `Par::Seq`, as outcore's tasks do; the
//! machine's rate uses all its cores.

use std::time::Instant;

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::matmul::matmul;
use faer::linalg::qr::no_pivoting::factor::{qr_in_place, qr_in_place_scratch, recommended_block_size};
use faer::{Accum, Mat, Par};
use outcore::{ChunkedMatrix, Distribution, Engine, SvdOptions};

// Only its argument helpers: this bench measures in-process, not children.
#[allow(dead_code)]
use outcore_testkit::child;

/// Median seconds of `reps` runs of `f` (after one warm-up run).
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn random(m: usize, n: usize, seed: u64) -> Mat<f64> {
    // A cheap deterministic fill (values in [0, 1)): the rates do not depend on the values.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Mat::from_fn(m, n, |_, _| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn gflops(flops: f64, seconds: f64) -> f64 {
    flops / seconds / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps = child::reps(&args, 5);
    let rows: usize = child::flag_value(&args, "--rows").and_then(|r| r.parse().ok()).unwrap_or(2_000_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (n, cols) = (2000, 100);

    let (a, b) = (random(n, n, 1), random(n, n, 2));
    let mut c = Mat::<f64>::zeros(n, n);
    let square = 2.0 * (n as f64).powi(3);
    let gemm_all = gflops(square, time(reps, || matmul(c.as_mut(), Accum::Replace, &a, &b, 1.0, Par::rayon(0))));
    let gemm_one = gflops(square, time(reps, || matmul(c.as_mut(), Accum::Replace, &a, &b, 1.0, Par::Seq)));

    // TSQR's panels at a 64 MiB limit: 5242 x 100.
    let panel_rows = 5242;
    let panel = random(panel_rows, cols, 3);
    let mut gram = Mat::<f64>::zeros(cols, cols);
    let gram_flops = 2.0 * panel_rows as f64 * (cols * cols) as f64;
    let gram_one = gflops(
        gram_flops,
        time(reps, || matmul(gram.as_mut(), Accum::Replace, panel.transpose(), &panel, 1.0, Par::Seq)),
    );
    let qr_flops = |m: usize| 2.0 * m as f64 * (cols * cols) as f64 - 2.0 * (cols as f64).powi(3) / 3.0;
    // The block size outcore's kernel uses: faer's recommendation, capped at 24 for narrow panels.
    let bs = recommended_block_size::<f64>(panel_rows, cols).min(24);
    let mut mem = MemBuffer::new(qr_in_place_scratch::<f64>(panel_rows, cols, bs, Par::Seq, Default::default()));
    let mut coeffs = Mat::<f64>::zeros(bs, cols);
    let mut work = panel.clone();
    let qr_one = gflops(
        qr_flops(panel_rows),
        time(reps, || {
            work.copy_from(&panel);
            qr_in_place(work.as_mut(), coeffs.as_mut(), Par::Seq, MemStack::new(&mut mem), Default::default());
        }),
    );

    // TSQR values of a rows x 100 matrix: in RAM (the caller's matrix), and generated chunk by
    // chunk at 64 MiB as `large-svd tsqr` does.
    let engine = Engine::builder().memory_limit(256 << 20).build().expect("engine");
    let big = random(rows, cols, 4);
    let in_ram = gflops(
        qr_flops(rows),
        time(reps, || {
            outcore::svd(&engine, big.as_ref(), &SvdOptions::new().vectors(false)).expect("TSQR in RAM");
        }),
    );
    drop(big);
    let engine = Engine::builder().memory_limit(64 << 20).build().expect("engine");
    let generated = ChunkedMatrix::generated(Distribution::Uniform, 0, rows, cols, 10_000, cols).expect("matrix");
    let streamed = gflops(
        qr_flops(rows),
        time(reps, || {
            outcore::svd(&engine, &generated, &SvdOptions::new().vectors(false)).expect("TSQR generated");
        }),
    );

    println!("{cores} cores, medians of {reps}; effective GFLOP/s, and as a fraction of GEMM on all cores");
    println!("| kernel | GFLOP/s | of GEMM ({cores} cores) | of GEMM (1 core) |");
    println!("|---|---|---|---|");
    let row = |name: &str, rate: f64| {
        println!("| {name} | {rate:.1} | {:.0}% | {:.0}% |", 100.0 * rate / gemm_all, 100.0 * rate / gemm_one);
    };
    row(&format!("GEMM {n} x {n} x {n}, all cores"), gemm_all);
    row(&format!("GEMM {n} x {n} x {n}, 1 core"), gemm_one);
    row(&format!("Gram A^T A of a {panel_rows} x {cols} panel, 1 core"), gram_one);
    row(&format!("Householder QR of a {panel_rows} x {cols} panel, 1 core"), qr_one);
    row(&format!("TSQR values of {rows} x {cols} in RAM, {cores} workers"), in_ram);
    row(&format!("TSQR values of {rows} x {cols} generated, 64 MiB, {cores} workers"), streamed);
}
