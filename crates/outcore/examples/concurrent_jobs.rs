//! Two jobs at once on one 40 MiB budget: each TSQR with vectors of a 300,000 x 50 matrix fits
//! alone, the two together do not, so their tasks take turns for memory (a task waits while the
//! other job's tasks hold it) instead of failing. Both finish, bitwise as they do alone, and
//! match faer's dense SVD.
//!
//! `cargo run --release --example concurrent_jobs`

use outcore::faer::Mat;
use outcore::{ChunkedMatrix, Distribution, Engine, SvdOptions, SvdResult};

fn main() -> outcore::Result<()> {
    let engine = Engine::builder().memory_limit(40 << 20).workers(2).build()?;
    let matrices = [1, 2].map(|seed| ChunkedMatrix::generated(Distribution::Uniform, seed, 300_000, 50, 10_000, 50));
    let [a, b] = matrices;
    let (a, b) = (a?, b?);
    let alone = [outcore::svd(&engine, &a, &SvdOptions::new())?, outcore::svd(&engine, &b, &SvdOptions::new())?];

    // The same engine (one pool, one budget) from two threads at once.
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| outcore::svd(&engine, &a, &SvdOptions::new()));
        let second = s.spawn(|| outcore::svd(&engine, &b, &SvdOptions::new()));
        (first.join().expect("job A"), second.join().expect("job B"))
    });
    let together = [first?, second?];
    for (job, (x, y)) in ["A", "B"].iter().zip(alone.iter().zip(&together)) {
        assert!(x.s.iter().zip(&y.s).all(|(p, q)| p.to_bits() == q.to_bits()), "job {job} changed");
        println!(
            "job {job}: sigma_1 = {:.6}, {} tasks, waited for memory {} times",
            y.s[0], y.stats.tasks, y.stats.waits_for_memory
        );
    }
    println!(
        "peak RSS before the dense checks: {} (U of each job is 114 MiB, in RAM)",
        outcore::storage::format_size(outcore::storage::RssSource::Process.sample().peak)
    );
    check(&a.to_dense()?, &together[0])?;
    check(&b.to_dense()?, &together[1])?;
    println!("both finished, bitwise as alone, matching faer's dense SVD; {}", engine.memory_pool());
    Ok(())
}

fn check(a: &Mat<f64>, svd: &SvdResult) -> outcore::Result<()> {
    let reference = a.singular_values().expect("faer's SVD");
    let tol = 64.0 * f64::EPSILON * (a.nrows() as f64).sqrt() * reference[0];
    assert!(svd.s.iter().zip(&reference).all(|(x, y)| (x - y).abs() <= tol));
    let (u, v) = svd.dense_vectors()?;
    let n = a.ncols();
    let d = Mat::from_fn(n, n, |i, j| if i == j { svd.s[i] } else { 0.0 });
    assert!((a - &u * d * v.transpose()).norm_l2() <= tol);
    Ok(())
}
