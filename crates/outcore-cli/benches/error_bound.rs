//! How tight the randomized SVD's error estimate is: its spectral bounds and Frobenius
//! estimate against the true norms of the residual `A - U diag(s) V^T`, computed densely, on
//! matrices whose residuals differ in shape (flat and of high rank, decaying, nearly rank 2,
//! uniform like the Dask lesson's). Beside outcore's bound (10 probes, failure probability
//! 1e-10), the bound it replaced, `10 sqrt(2 / pi) max_i ||E w_i||` (Halko, Martinsson and
//! Tropp, lemma 4.1, the same probes and failure probability), on 10 Gaussian probes of the
//! same residual drawn here.
//!
//! `cargo bench --bench error_bound [-- --reps N]` (default 5 seeds per matrix; medians)

use outcore::faer::Mat;
use outcore::{ChunkedMatrix, Distribution, Engine, RandomizedSvdOptions};

use outcore_testkit::{child, gaussian, with_spectrum};

const PROBES: usize = 10;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps = child::reps(&args, 5);
    let (m, n, k) = (2_000, 800, 10);
    let engine = Engine::new(256 << 20).expect("an engine");
    type Make = Box<dyn Fn(u64) -> Mat<f64>>;
    let cases: Vec<(&str, Make)> = vec![
        (
            "rank 10 + noise 1e-2 (flat residual)",
            Box::new(move |s| {
                let low = &gaussian(m, 10, s) * &gaussian(10, n, s + 1);
                low + gaussian(m, n, s + 2) * 0.01
            }),
        ),
        (
            "sigma_i = 0.9^i (decaying)",
            Box::new(move |s| {
                let sigma: Vec<f64> = (0..n).map(|i| 0.9f64.powi(i as i32)).collect();
                with_spectrum(m, n, &sigma, s)
            }),
        ),
        (
            "rank 12, tail 1e-8 (residual nearly rank 2)",
            Box::new(move |s| {
                let sigma: Vec<f64> = (0..n).map(|i| if i < 12 { 12.0 - i as f64 } else { 1e-8 }).collect();
                with_spectrum(m, n, &sigma, s)
            }),
        ),
        (
            "uniform [0, 1) (the lesson's kind)",
            Box::new(move |s| {
                ChunkedMatrix::generated(Distribution::Uniform, s, m, n, m, n)
                    .and_then(|a| a.to_dense())
                    .expect("a matrix")
            }),
        ),
    ];
    println!("{m} x {n}, k = {k}, {PROBES} probes, medians of {reps} seeds: each bound over the true value");
    println!();
    println!(
        "| matrix | upper bound / true | old upper bound / true | lower bound / true | Frobenius estimate / true | true / sigma_1 |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, make) in &cases {
        let (mut upper, mut old, mut lower, mut frob, mut rel) = (vec![], vec![], vec![], vec![], vec![]);
        for rep in 0..reps as u64 {
            let a = make(100 * rep + 1);
            let options = RandomizedSvdOptions::new(k).seed(rep);
            let result = outcore::randomized_svd(&engine, a.as_ref(), &options).expect("the randomized SVD");
            let (u, v) = result.svd.dense_vectors().expect("U and V");
            let s = &result.svd.s;
            let fit = Mat::from_fn(m, k, |i, j| u[(i, j)] * s[j]) * v.transpose();
            let residual = &a - &fit;
            let spectral = residual.singular_values().expect("the residual's SVD")[0];
            let frobenius = residual.norm_l2();
            let probes = &residual * gaussian(n, PROBES, 9_000 + rep);
            let widest = (0..PROBES).map(|c| probes.col(c).norm_l2()).fold(0.0, f64::max);
            let e = result.error;
            upper.push(e.spectral_bound / spectral);
            old.push(10.0 * (2.0 / std::f64::consts::PI).sqrt() * widest / spectral);
            lower.push(e.spectral_lower_bound / spectral);
            frob.push(e.frobenius / frobenius);
            rel.push(spectral / s[0]);
            assert!(e.spectral_lower_bound <= spectral * (1.0 + 1e-9) && spectral <= e.spectral_bound, "{name}: {e:?}");
        }
        println!(
            "| {name} | {:.2} | {:.2} | {:.3} | {:.2} | {:.1e} |",
            median(upper),
            median(old),
            median(lower),
            median(frob),
            median(rel)
        );
    }
}
