//! Randomized SVD against dense faer: exactly low-rank matrices are recovered to working
//! precision, the error estimate bounds the true error on decaying spectra, results do not
//! depend on the scheduler, and bad parameters get clear errors.

use outcore_testkit as common;

use common::*;
use faer::Mat;
use outcore::{
    ChunkedMatrix, Distribution, RandomizedMethod, RandomizedSvdOptions, RandomizedSvdPlan, RandomizedSvdResult,
    Scheduler, randomized_svd,
};
use proptest::prelude::*;

fn spectral_norm(a: &Mat<f64>) -> f64 {
    a.singular_values().unwrap().first().copied().unwrap_or(0.0)
}

fn run(
    a: &Mat<f64>,
    cr: usize,
    cc: usize,
    options: &RandomizedSvdOptions,
    scheduler: Scheduler,
) -> (RandomizedSvdResult, Mat<f64>, Mat<f64>) {
    let (m, n) = a.shape();
    let matrix = matrix(&row_major(a), m, n, cr, cc);
    let result = randomized_svd(&engine(256 << 20, scheduler), &matrix, options).unwrap();
    let (u, v) = result.svd.dense_vectors().unwrap();
    (result, u, v)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn exactly_low_rank_matrices_are_recovered_to_working_precision(
        (m, n) in (20usize..160, 20usize..160),
        rank in 1usize..=5,
        (cr, cc) in (3usize..70, 3usize..70),
        q in 0usize..3,
        seed in any::<u64>(),
    ) {
        let a = &gaussian(m, rank, seed) * &gaussian(rank, n, seed ^ 9);
        let options = RandomizedSvdOptions::new(5).oversamples(5).power_iters(q).seed(seed);
        let (result, u, v) = run(&a, cr, cc, &options, Scheduler::Threads { workers: 2 });
        let norm = a.norm_l2();
        let reference = reference_singular_values(&a);
        for (i, (x, y)) in result.svd.s.iter().zip(&reference).enumerate() {
            prop_assert!((x - y).abs() <= tol(m, n, norm), "sigma_{}: {} vs {}", i, x, y);
        }
        // The sketch's own conditioning enters the basis (with q = 0 nothing refines it): a
        // saved case reached 1.1 tol (3.5e-11 at norm 102), so the reconstruction gets 4x.
        prop_assert!(reconstruction_error(&a, &u, &result.svd.s, &v) <= 4.0 * tol(m, n, norm));
        prop_assert!(orthogonality_error(&u, &result.svd.s) <= tol(m, n, 1.0));
        prop_assert!(orthogonality_error(&v, &result.svd.s) <= tol(m, n, 1.0));
        prop_assert!(result.error.spectral_bound <= 100.0 * tol(m, n, norm), "estimate {} for an exact fit", result.error.spectral_bound);
    }

    #[test]
    fn the_estimate_bounds_the_true_error_on_decaying_spectra(
        (m, n) in (60usize..200, 60usize..200),
        decay in 0.3f64..0.9,
        (cr, cc) in (7usize..80, 7usize..80),
        q in 0usize..3,
        krylov in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let sigma: Vec<f64> = (0..m.min(n)).map(|i| decay.powi(i as i32)).collect();
        let a = with_spectrum(m, n, &sigma, seed);
        let method = if krylov { RandomizedMethod::Krylov } else { RandomizedMethod::Subspace };
        let options = RandomizedSvdOptions::new(4).oversamples(4).power_iters(q).method(method).seed(seed);
        let (result, u, v) = run(&a, cr, cc, &options, Scheduler::Serial);
        let k = result.svd.s.len();
        let fit = Mat::from_fn(m, k, |i, j| u[(i, j)] * result.svd.s[j]) * v.transpose();
        let residual = &a - &fit;
        let true_spectral = spectral_norm(&residual);
        let true_frobenius = residual.norm_l2();
        let e = result.error;
        prop_assert!(true_spectral <= e.spectral_bound, "true {} above the bound {}", true_spectral, e.spectral_bound);
        // The best rank-k error is sigma_{k+1}; the result is close to it and never below; the
        // lower bound (sigma_{k+1} of the projection) is below both.
        prop_assert!(true_spectral >= sigma[k] * (1.0 - 1e-10));
        prop_assert!(e.spectral_lower_bound <= sigma[k] * (1.0 + 1e-10) && e.spectral_lower_bound > 0.0,
            "lower bound {} vs sigma_k+1 {}", e.spectral_lower_bound, sigma[k]);
        let s1 = result.svd.s[0];
        prop_assert!((e.relative_spectral_bound * s1 - e.spectral_bound).abs() <= 1e-12 * e.spectral_bound);
        prop_assert!((e.relative_frobenius * s1 - e.frobenius).abs() <= 1e-12 * e.frobenius);
        prop_assert!(result.error.frobenius <= 4.0 * true_frobenius && result.error.frobenius >= true_frobenius / 4.0,
            "Frobenius estimate {} vs true {}", result.error.frobenius, true_frobenius);
    }
}

#[test]
fn column_moments_come_with_the_first_pass_centered_or_not() {
    // Columns far from zero (moments must not cancel), shapes the chunks do not divide, a
    // single-row chunk grid and chunks of one column, k pressing against min(m, n).
    let (m, n) = (53, 29);
    let a = Mat::from_fn(m, n, |i, j| 1e6 * (j as f64 - 7.0) + gaussian(m, n, 5)[(i, j)]);
    let mean: Vec<f64> = (0..n).map(|j| a.col(j).iter().sum::<f64>() / m as f64).collect();
    let variance: Vec<f64> =
        (0..n).map(|j| a.col(j).iter().map(|x| (x - mean[j]).powi(2)).sum::<f64>() / m as f64).collect();
    for (cr, cc) in [(10, 7), (53, 29), (4, 1)] {
        for center in [false, true] {
            let options = RandomizedSvdOptions::new(n - 3).oversamples(3).power_iters(1).center(center);
            let plain = run(&a, cr, cc, &options, Scheduler::Serial).0.svd;
            assert!(plain.columns.is_none(), "moments not asked for");
            let (with, ..) = run(&a, cr, cc, &options.clone().column_moments(true), Scheduler::Threads { workers: 2 });
            let columns = with.svd.columns.expect("asked for");
            for j in 0..n {
                assert!((columns.mean[j] - mean[j]).abs() <= tol(m, 1, mean[j].abs().max(1.0)), "mean {j}");
                // A deviation's rounding is eps |mean|: the variance's, eps |mean| sigma.
                let scale = mean[j].abs() * variance[j].sqrt() + variance[j];
                assert!((columns.variance[j] - variance[j]).abs() <= tol(m, 1, scale), "variance {j}");
            }
            // Gathering them changes nothing else.
            assert_eq!(with.svd.s, plain.s, "({cr}, {cc}) center {center}");
            assert_eq!(with.svd.centered, plain.centered);
        }
    }
}

#[test]
fn serial_and_threads_give_identical_results() {
    let a = gaussian(157, 131, 3);
    for method in [RandomizedMethod::Subspace, RandomizedMethod::Krylov] {
        let options = RandomizedSvdOptions::new(6).power_iters(2).method(method);
        let (r1, u1, v1) = run(&a, 40, 33, &options, Scheduler::Serial);
        let (r2, u2, v2) = run(&a, 40, 33, &options, Scheduler::Threads { workers: 3 });
        assert_eq!(r1.svd.s, r2.svd.s);
        assert_eq!(row_major(&u1), row_major(&u2));
        assert_eq!(row_major(&v1), row_major(&v2));
        assert_eq!(r1.error, r2.error);
    }
}

#[test]
fn more_iterations_help_and_krylov_helps_more_per_pass_on_a_flat_tail() {
    // A dominant direction and a flat tail, like the Dask lesson's uniform matrix.
    let (m, n) = (400, 300);
    let mut sigma = vec![100.0, 10.0, 9.0, 8.5, 8.0];
    sigma.extend((0..295).map(|i| 6.0 - 3.0 * i as f64 / 295.0));
    let a = with_spectrum(m, n, &sigma, 5);
    let error = |q, method| {
        let options = RandomizedSvdOptions::new(5).oversamples(5).power_iters(q).method(method);
        let (r, _, _) = run(&a, 64, 64, &options, Scheduler::Serial);
        (1..5).map(|i| (r.svd.s[i] - sigma[i]).abs() / sigma[i]).fold(0.0f64, f64::max)
    };
    let (q0, q2, q2k) = (
        error(0, RandomizedMethod::Subspace),
        error(2, RandomizedMethod::Subspace),
        error(2, RandomizedMethod::Krylov),
    );
    assert!(q2 < q0, "2 iterations ({q2}) should beat none ({q0})");
    assert!(q2k < q2, "Krylov ({q2k}) should beat subspace ({q2}) at 2 iterations");
}

#[test]
fn bad_parameters_are_refused_clearly() {
    let a = ChunkedMatrix::generated(Distribution::Uniform, 0, 50, 30, 10, 10).unwrap();
    let e = engine(64 << 20, Scheduler::Serial);
    let err = |options: RandomizedSvdOptions| randomized_svd(&e, &a, &options).unwrap_err().to_string();
    assert!(err(RandomizedSvdOptions::new(0)).contains("k = 0"));
    // The setting named is the one to lower: the oversamples where k alone fits, else k.
    let text = err(RandomizedSvdOptions::new(25));
    assert!(text.starts_with("invalid `oversamples`") && text.contains("35 exceeds min(rows, cols) = 30"), "{text}");
    assert!(text.contains("lower `oversamples` to at most 5"), "{text}");
    let text = err(RandomizedSvdOptions::new(31).oversamples(0));
    assert!(text.starts_with("invalid `k`") && text.contains("lower `k` to at most 30"), "{text}");
    // A Krylov space as wide as the matrix is complete: the plan runs the iterations that fill
    // it and says so.
    let plan = RandomizedSvdPlan::new(&e, &a, &RandomizedSvdOptions::new(5).power_iters(4)).unwrap();
    assert_eq!((plan.iterations(), plan.basis_width(), plan.passes()), (1, 30, 4), "30 columns hold two blocks of 15");
    assert!(plan.krylov_space_full());
    assert!(plan.summary().contains("1 Krylov iteration(s) already span all 30 columns"), "{}", plan.summary());
    assert!(err(RandomizedSvdOptions::new(5).probes(0)).contains("probe"));
    // Sizes from flags that would wrap or run forever are refused up front.
    let text = err(RandomizedSvdOptions::new(5).oversamples(usize::MAX - 1));
    assert!(text.contains("more than can be counted") && text.contains("`oversamples`"), "{text}");
    assert!(err(RandomizedSvdOptions::new(5).power_iters(usize::MAX)).contains("more than 100"));
    assert!(err(RandomizedSvdOptions::new(5).probes(usize::MAX)).contains("more than 64"));
}

#[test]
fn krylov_iterations_pressing_against_min_m_n_reach_the_best_rank_k_error() {
    // scikit-learn's test_randomized_svd_power_iteration_normalizer shape: 100 x 500, k = 50,
    // 10 oversamples, q = 5: (q + 1)(k + p) = 360 columns, but the matrix has only 100. The
    // space is filled after one iteration with a 40-column partial block: the best possible
    // rank-50 error, below what subspace iteration reaches with all 5.
    let (m, n, k) = (100, 500, 50);
    let sigma: Vec<f64> = (0..m).map(|i| (-(i as f64) / 20.0).exp() + 0.05).collect();
    let a = with_spectrum(m, n, &sigma, 31);
    let best = sigma[k..].iter().map(|s| s * s).sum::<f64>().sqrt();
    let error = |method| {
        let options = RandomizedSvdOptions::new(k).power_iters(5).method(method);
        let (r, u, v) = run(&a, 37, 64, &options, Scheduler::Threads { workers: 2 });
        (reconstruction_error(&a, &u, &r.svd.s, &v), r.passes)
    };
    let ((krylov, passes), (subspace, _)) = (error(RandomizedMethod::Krylov), error(RandomizedMethod::Subspace));
    assert!((krylov - best).abs() <= 1e-10 * best, "Krylov {krylov} vs best {best}");
    assert!(krylov < subspace, "Krylov {krylov} vs subspace {subspace}");
    assert_eq!(passes, 4, "one iteration fills the space");
    // Shapes of the lapack-driver test: the space never silently shrinks below what was asked.
    for (m, n, k) in [(60, 55, 10), (40, 70, 7), (33, 33, 8), (25, 80, 20)] {
        let a = gaussian(m, n, (m * n + k) as u64);
        let options = RandomizedSvdOptions::new(k).oversamples(5).power_iters(4);
        let chunked = matrix(&row_major(&a), m, n, 16, 16);
        let plan = RandomizedSvdPlan::new(&engine(64 << 20, Scheduler::Serial), &chunked, &options).unwrap();
        let wanted = (4 + 1) * (k + 5);
        assert_eq!(plan.basis_width(), wanted.min(m.min(n)), "{m}x{n} k={k}");
    }
}

#[test]
fn compressed_stores_are_decoded_once_with_the_same_bits() {
    use outcore::storage::write_matrix;
    use outcore::storage::{ChunkGrid, Compression, ZarrOptions, ZarrStore};
    use outcore::{Destination, Event, RunControl};
    use std::sync::{Arc, Mutex};
    // 5.8 MB: more than half the target of a 16 MiB limit, so the plan streams it (no cache).
    let (m, n) = (1201, 601);
    let dense = gaussian(m, n, 17);
    let dir = tempfile::tempdir().unwrap();
    let grid = ChunkGrid::new(m, n, 256, 200).unwrap();
    let options = ZarrOptions { compression: Compression::Zstd { level: 0 }, ..ZarrOptions::default() };
    let store = ZarrStore::create(dir.path().join("a.zarr"), grid, &options).unwrap();
    write_matrix(&store, &row_major(&dense)).unwrap();
    let spill = tempfile::tempdir().unwrap();
    let engine = outcore::Engine::builder().memory_limit(16 << 20).spill_dir(spill.path()).workers(2).build().unwrap();
    let options = RandomizedSvdOptions::new(4).power_iters(3).seed(5);
    // Watch the spill parent during the run for the directory of decoded copies.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (watch, parent) = (seen.clone(), spill.path().to_path_buf());
    let control = RunControl::new().events(move |e: &Event| {
        if let Event::TaskFinished { .. } = e {
            let names = std::fs::read_dir(&parent).unwrap().map(|d| d.unwrap().file_name().into_string().unwrap());
            watch.lock().unwrap().extend(names);
        }
    });
    let a = ChunkedMatrix::from_store(Arc::new(store));
    let plan = RandomizedSvdPlan::new(&engine, &a, &options).unwrap();
    let zarr = plan.run_with(&engine, Destination::Memory, Destination::Memory, &control).unwrap();
    assert!(seen.lock().unwrap().iter().any(|name| name.contains("-decoded-")), "no decoded copies were made");
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0, "the decoded copies are removed");
    // The same values from a store read whole chunk by chunk (as the decoded copies are).
    #[derive(Debug)]
    struct Whole(outcore::storage::MemoryStore);
    impl outcore::storage::ChunkStore for Whole {
        fn grid(&self) -> ChunkGrid {
            self.0.grid()
        }
        fn read_chunk_into(
            &self,
            i: outcore::storage::ChunkIndex,
            out: &mut Vec<f64>,
        ) -> outcore::storage::StorageResult<()> {
            self.0.read_chunk_into(i, out)
        }
        fn write_chunk(&self, i: outcore::storage::ChunkIndex, data: &[f64]) -> outcore::storage::StorageResult<()> {
            self.0.write_chunk(i, data)
        }
        fn describe(&self) -> String {
            "whole chunks".into()
        }
    }
    let whole = Whole(outcore::storage::MemoryStore::from_row_major(grid, &row_major(&dense)).unwrap());
    let memory = randomized_svd(&engine, ChunkedMatrix::from_store(Arc::new(whole)), &options).unwrap();
    assert_eq!(zarr.svd.s, memory.svd.s);
    let (u1, v1) = zarr.svd.dense_vectors().unwrap();
    let (u2, v2) = memory.svd.dense_vectors().unwrap();
    assert_eq!((row_major(&u1), row_major(&v1)), (row_major(&u2), row_major(&v2)));
}
