//! Sparse input (CSR, and CSC as the transpose of a CSR matrix) against dense references of the
//! same matrix: the randomized SVD and its centered form multiplying by the nonzeros, TSQR
//! reading dense row blocks, on shapes that do not divide the chunks, with empty rows, empty
//! columns and a column of zeros; serial and threads bitwise identical.

use outcore_testkit as common;

use common::*;
use faer::Mat;
use outcore::storage::CsrStore;
use outcore::{ChunkedMatrix, RandomizedSvdOptions, Scheduler, SvdOptions, randomized_svd};
use proptest::prelude::*;

/// A random `m x n` sparse matrix of about `density` nonzeros (values far from zero in some
/// columns), row `m / 2` and column `n / 3` left empty; as a CSR store in `chunk_rows` and dense.
fn sparse(m: usize, n: usize, density: f64, seed: u64, chunks: (usize, usize)) -> (CsrStore, Mat<f64>) {
    let g = gaussian(m, n, seed);
    let keep = gaussian(m, n, seed ^ 5);
    // P(|z| > t) = density for a standard normal z, roughly: t from a few fixed points.
    let threshold = if density >= 0.5 {
        0.67
    } else if density >= 0.1 {
        1.64
    } else {
        2.58
    };
    let mut dense = Mat::<f64>::zeros(m, n);
    let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::new(), Vec::new());
    for i in 0..m {
        for j in 0..n {
            if i != m / 2 && j != n / 3 && keep[(i, j)].abs() > threshold {
                let v = g[(i, j)] + if j % 4 == 1 { 50.0 } else { 0.0 };
                dense[(i, j)] = v;
                indices.push(j as i64);
                data.push(v);
            }
        }
        indptr.push(indices.len() as i64);
    }
    (CsrStore::from_vecs(m, n, chunks, indptr, indices, data).unwrap(), dense)
}

/// The transpose of `a`'s CSR store: `a` as CSC.
fn csc(a: &Mat<f64>, chunks: (usize, usize)) -> ChunkedMatrix {
    let t = a.transpose().to_owned();
    let (m, n) = t.shape();
    let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::new(), Vec::new());
    for i in 0..m {
        for j in (0..n).filter(|&j| t[(i, j)] != 0.0) {
            indices.push(j as i64);
            data.push(t[(i, j)]);
        }
        indptr.push(indices.len() as i64);
    }
    ChunkedMatrix::from_csr(CsrStore::from_vecs(m, n, chunks, indptr, indices, data).unwrap()).t()
}

fn centered(a: &Mat<f64>) -> (Mat<f64>, Vec<f64>) {
    let (m, n) = a.shape();
    let mean: Vec<f64> = (0..n).map(|j| (0..m).map(|i| a[(i, j)]).sum::<f64>() / m as f64).collect();
    (Mat::from_fn(m, n, |i, j| a[(i, j)] - mean[j]), mean)
}

/// Checks singular values against the dense reference and the vectors' reconstruction.
fn check(reference: &Mat<f64>, result: &outcore::SvdResult, k: usize) {
    let (m, n) = reference.shape();
    let t = tol(m, n, reference.norm_l2());
    let want = reference_singular_values(reference);
    for (i, (x, y)) in result.s.iter().zip(&want).take(k).enumerate() {
        assert!((x - y).abs() <= t, "{m}x{n} sigma_{i}: {x} vs {y} (tol {t})");
    }
    if let (Some(u), Some(v)) = (&result.u, &result.v) {
        let (u, v) = (u.to_dense().unwrap(), v.to_dense().unwrap());
        let kept = result.s.len();
        let best = want.iter().skip(kept).map(|s| s * s).sum::<f64>().sqrt();
        let err = reconstruction_error(reference, &u, &result.s, &v);
        assert!(err <= best + t, "||A - U S V^T|| = {err}, best {best} (tol {t})");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Where the Krylov space spans the whole range, the randomized SVD is exact: the sparse
    /// products must give the dense matrix's values and vectors, centered or not, CSR or CSC.
    #[test]
    fn randomized_svd_of_sparse_input_matches_the_dense_matrix(
        (m, n) in prop_oneof![(4usize..120, 3usize..30), (3usize..30, 4usize..120)],
        density in prop_oneof![Just(0.01), Just(0.2), Just(0.6)],
        chunks in (1usize..50, 1usize..50),
        center in any::<bool>(),
        as_csc in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (store, a) = sparse(m, n, density, seed, chunks);
        let input = if as_csc { csc(&a, chunks) } else { ChunkedMatrix::from_csr(store) };
        let k = m.min(n).min(4);
        let options = RandomizedSvdOptions::new(k).oversamples((m.min(n) - k).min(3)).power_iters(30).center(center).column_moments(true).seed(seed);
        let run = |scheduler| randomized_svd(&engine(64 << 20, scheduler), &input, &options).unwrap();
        let serial = run(Scheduler::Serial);
        let threads = run(Scheduler::Threads { workers: 2 });
        prop_assert_eq!(&serial.svd.s, &threads.svd.s);
        let (c, mean) = centered(&a);
        check(if center { &c } else { &a }, &serial.svd, k);
        let columns = serial.svd.columns.as_ref().expect("column moments asked for");
        for j in 0..n {
            let var = (0..m).map(|i| c[(i, j)] * c[(i, j)]).sum::<f64>() / m as f64;
            prop_assert!((columns.mean[j] - mean[j]).abs() <= 1e-12 * (1.0 + mean[j].abs()), "mean {}", j);
            prop_assert!((columns.variance[j] - var).abs() <= 1e-10 * (1.0 + var), "variance {}: {} vs {}", j, columns.variance[j], var);
        }
    }

    /// TSQR reads a sparse matrix one dense row block at a time: the exact SVD, centered too.
    #[test]
    fn tsqr_of_sparse_input_matches_the_dense_matrix(
        m in 3usize..200,
        n in 1usize..12,
        density in prop_oneof![Just(0.01), Just(0.2), Just(0.6)],
        chunks in (1usize..60, 1usize..12),
        center in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (m, n) = (m + n, n);
        let (store, a) = sparse(m, n, density, seed, chunks);
        let options = SvdOptions::new().center(center);
        let result = outcore::svd(&engine(64 << 20, Scheduler::Threads { workers: 2 }), ChunkedMatrix::from_csr(store), &options).unwrap();
        let (c, _) = centered(&a);
        check(if center { &c } else { &a }, &result, n);
    }
}

#[test]
fn a_sparse_matrix_is_never_cached_dense() {
    // 2000 x 1500 at 1%: dense, 24 MB, which this limit would cache for the passes (up to 60%
    // of it, halved); its nonzeros take about 0.36 MB and are read where they lie.
    let (m, n) = (2_000, 1_500);
    let (store, a) = sparse(m, n, 0.01, 7, (500, 400));
    let options = RandomizedSvdOptions::new(5).power_iters(2).seed(1);
    let run = |input| {
        let engine = engine(128 << 20, Scheduler::Threads { workers: 2 });
        let result = randomized_svd(&engine, input, &options).unwrap();
        (result, engine.memory_pool().report().peak_managed)
    };
    let (result, peak) = run(ChunkedMatrix::from_csr(store));
    // The same matrix stored dense is cached, and the same sketch gives the same values.
    let (dense, dense_peak) = run(matrix(&row_major(&a), m, n, 500, n));
    assert!(
        peak + 24_000_000 <= dense_peak,
        "the pool held {peak} bytes at its peak, {dense_peak} for the dense matrix"
    );
    for (x, y) in result.svd.s.iter().zip(&dense.svd.s) {
        assert!((x - y).abs() <= tol(m, n, a.norm_l2()), "{x} vs {y}");
    }
}

#[test]
fn the_tsqr_plan_says_a_sparse_input_is_made_dense_panel_by_panel() {
    let (store, _) = sparse(300, 5, 0.2, 3, (64, 5));
    let engine = engine(64 << 20, Scheduler::Serial);
    let plan = outcore::SvdPlan::new(&engine, ChunkedMatrix::from_csr(store), &SvdOptions::new()).unwrap();
    assert!(plan.summary().contains("the input is sparse; each panel is made dense"), "{}", plan.summary());
}
