//! QR against dense faer references: shapes that do not divide the chunks, square and one row
//! more than columns, rank-deficient and ill-conditioned; Q orthonormal, `A = Q R`, R upper
//! triangular with a non-negative diagonal and equal to faer's R with its signs fixed; Q applied
//! without being formed (`Q^T B`, `Q C`); serial and threads bitwise identical; bad requests
//! refused.

use outcore_testkit as common;

use common::*;
use faer::Mat;
use outcore::{
    ChunkedMatrix, Destination, Distribution, Error, MemoryError, QrMode, QrOptions, QrPlan, RunControl, Scheduler,
};
use proptest::prelude::*;

/// faer's R with each row's sign chosen so that the diagonal is non-negative.
fn reference_r(a: &Mat<f64>) -> Mat<f64> {
    let mut r = a.qr().thin_R().to_owned();
    for i in 0..r.nrows() {
        if r[(i, i)] < 0.0 {
            r.as_mut().row_mut(i).iter_mut().for_each(|x| *x = -*x);
        }
    }
    r
}

/// The 2-norm condition number of `a` (infinite when rank-deficient).
fn condition(a: &Mat<f64>) -> f64 {
    let s = a.singular_values().unwrap();
    s[0] / s[s.len() - 1]
}

/// Checks a QR of `a`: R's shape, triangle and diagonal; with Q, `||A - Q R||` and `||Q^T Q - I||`
/// at TSQR's rounding; R against faer's, within the perturbation bound of R
/// (`eps sqrt(m) ||A|| cond(A)`) where A has full rank.
fn check_qr(a: &Mat<f64>, qr: &outcore::QrResult, mode: QrMode) {
    let (m, n) = a.shape();
    let r = &qr.r;
    let norm = a.norm_l2();
    assert_eq!(r.shape(), (n, n));
    for i in 0..n {
        assert!(r[(i, i)] >= 0.0, "{m}x{n}: r[{i},{i}] = {}", r[(i, i)]);
        assert!((0..i).all(|j| r[(i, j)] == 0.0), "{m}x{n}: R is not upper triangular in row {i}");
    }
    match mode {
        QrMode::Reduced => {
            let q = qr.q.as_ref().expect("mode Reduced computes Q").to_dense().unwrap();
            assert_eq!(q.shape(), (m, n));
            let residual = (&q * r - a).norm_l2();
            assert!(residual <= tol(m, n, norm), "{m}x{n}: ||A - QR|| = {residual} (norm {norm})");
            let orthogonality = (q.transpose() * &q - Mat::<f64>::identity(n, n)).norm_l2();
            assert!(orthogonality <= tol(m, n, 1.0), "{m}x{n}: ||Q^T Q - I|| = {orthogonality}");
        }
        _ => assert!(qr.q.is_none(), "mode R computes no Q"),
    }
    // R^T R = A^T A holds to rounding whatever the rank (R is A's Cholesky factor up to signs).
    let gram = (r.transpose() * r - a.transpose() * a).norm_l2();
    assert!(gram <= tol(m, n, norm * norm), "{m}x{n}: ||R^T R - A^T A|| = {gram}");
    let cond = condition(a);
    if cond < 1e8 {
        let err = (r - reference_r(a)).norm_l2();
        assert!(err <= tol(m, n, norm) * cond, "{m}x{n}: ||R - R_faer|| = {err} (cond {cond:.1e})");
    }
}

fn run_qr(a: &Mat<f64>, cr: usize, options: &QrOptions, scheduler: Scheduler) -> outcore::QrResult {
    let (m, n) = a.shape();
    outcore::qr(&engine(256 << 20, scheduler), matrix(&row_major(a), m, n, cr, n), options).unwrap()
}

fn bits(m: &Mat<f64>) -> Vec<u64> {
    row_major(m).iter().map(|x| x.to_bits()).collect()
}

/// A tall matrix of normal entries; with `dependent` its last column repeats its first (rank
/// `n - 1`) when `n >= 2`.
fn tall(m: usize, n: usize, seed: u64, dependent: bool) -> Mat<f64> {
    let mut a = ChunkedMatrix::generated(Distribution::Normal, seed, m, n, m, n).unwrap().to_dense().unwrap();
    if dependent && n >= 2 {
        for i in 0..m {
            a[(i, n - 1)] = a[(i, 0)];
        }
    }
    a
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn qr_matches_the_dense_qr_under_every_scheduler(
        (m, n) in prop_oneof![(0usize..300, 1usize..12).prop_map(|(d, n)| (n + d, n)), (1usize..12).prop_map(|n| (n, n)), (1usize..12).prop_map(|n| (n + 1, n))],
        chunk in 1usize..40,
        fan_in in 2usize..5,
        seed in any::<u64>(),
        dependent in any::<bool>(),
        values_only in any::<bool>(),
    ) {
        let a = tall(m, n, seed, dependent);
        let mode = if values_only { QrMode::R } else { QrMode::Reduced };
        let options = QrOptions::new().mode(mode).fan_in(fan_in);
        let cr = chunk.min(m);
        let serial = run_qr(&a, cr, &options, Scheduler::Serial);
        check_qr(&a, &serial, mode);
        let threads = run_qr(&a, cr, &options, Scheduler::Threads { workers: 3 });
        prop_assert_eq!(bits(&serial.r), bits(&threads.r));
        if let (Some(q1), Some(q2)) = (&serial.q, &threads.q) {
            prop_assert_eq!(bits(&q1.to_dense().unwrap()), bits(&q2.to_dense().unwrap()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Q applied without being formed: `Q^T B` from one pass over `[A | B]` and `Q C` written in
    /// Q's place, against Q from a plain run; rank-deficient A included (Q is the same
    /// Householder Q whatever it is applied to).
    #[test]
    fn q_is_applied_to_tall_and_small_matrices_without_being_formed(
        (m, n) in prop_oneof![(0usize..250, 1usize..9).prop_map(|(d, n)| (n + d, n)), (1usize..9).prop_map(|n| (n, n))],
        p in 1usize..4,
        chunks in (1usize..40, 1usize..40),
        seed in any::<u64>(),
        dependent in any::<bool>(),
        values_only in any::<bool>(),
    ) {
        let a = tall(m, n, seed, dependent);
        let b = tall(m, p, seed ^ 5, false);
        let c = tall(n, p, seed ^ 9, false);
        let engine = engine(256 << 20, Scheduler::Serial);
        let (a_chunked, b_chunked) = (matrix(&row_major(&a), m, n, chunks.0.min(m), n), matrix(&row_major(&b), m, p, chunks.1.min(m), p));
        let plain = outcore::qr(&engine, &a_chunked, &QrOptions::new().fan_in(3)).unwrap();
        let q = plain.q_matrix().unwrap();
        let mode = if values_only { QrMode::R } else { QrMode::Reduced };
        let options = QrOptions::new().mode(mode).fan_in(3);
        let with_qt = QrPlan::with_qt(&engine, &a_chunked, &b_chunked, &options).unwrap().run(&engine).unwrap();
        let qt_b = with_qt.qt_b.as_ref().unwrap();
        prop_assert_eq!(qt_b.shape(), (n, p));
        if dependent && n >= 2 {
            // Q's last column spans nothing of A; what is fixed is Q^T B on A's column space:
            // R^T (Q^T B) = A^T B.
            let err = (with_qt.r.transpose() * qt_b - a.transpose() * &b).norm_l2();
            prop_assert!(err <= tol(m, n, a.norm_l2() * b.norm_l2()), "R^T Q^T B vs A^T B: {}", err);
        } else {
            let err = (qt_b - q.transpose() * &b).norm_l2();
            let cond = condition(&a);
            prop_assert!(err <= tol(m, n, b.norm_l2()) * cond, "Q^T B: {} (cond {:.1e})", err, cond);
        }
        check_qr(&a, &with_qt, mode);
        if let Some(q_ab) = with_qt.q_matrix() {
            // The Q written beside Q^T B is A's, and consistent with it.
            let err = (q_ab.transpose() * &b - qt_b).norm_l2();
            prop_assert!(err <= tol(m, n, b.norm_l2()), "Q^T B against its own Q: {}", err);
        }
        let threads = engine_run_threads(&a_chunked, &b_chunked, &options);
        prop_assert_eq!(bits(qt_b), bits(&threads));
        // Q C in Q's place.
        let times = outcore::qr(&engine, &a_chunked, &QrOptions::new().fan_in(3).q_times(c.clone())).unwrap();
        let qc = times.q_matrix().unwrap();
        prop_assert_eq!(qc.shape(), (m, p));
        let err = (qc - q * &c).norm_l2();
        prop_assert!(err <= tol(m, n, c.norm_l2()), "Q C: {}", err);
        prop_assert_eq!(bits(&times.r), bits(&plain.r));
    }
}

fn engine_run_threads(a: &ChunkedMatrix, b: &ChunkedMatrix, options: &QrOptions) -> Mat<f64> {
    let engine = engine(256 << 20, Scheduler::Threads { workers: 3 });
    QrPlan::with_qt(&engine, a, b, options).unwrap().run(&engine).unwrap().qt_b.unwrap()
}

#[test]
fn an_ill_conditioned_matrix_keeps_q_orthonormal_and_reproduces_a() {
    // Column 3 is column 2 plus `gap` times noise: cond(A) near 1 / gap, up to 1e15. Householder
    // QR is backward stable whatever the condition: Q stays orthonormal and A = Q R to rounding.
    for gap in [1e-12, 1e-15] {
        let mut a = tall(3_001, 6, 11, false);
        for i in 0..a.nrows() {
            a[(i, 3)] = a[(i, 2)] + gap * a[(i, 3)];
        }
        assert!(condition(&a) > 1e-2 / gap, "cond {:.1e}", condition(&a));
        for chunk in [250, 3_001] {
            check_qr(&a, &run_qr(&a, chunk, &QrOptions::new(), Scheduler::Serial), QrMode::Reduced);
        }
    }
}

#[test]
fn a_zero_matrix_has_r_zero_and_an_orthonormal_q() {
    let a = Mat::<f64>::zeros(57, 4);
    let qr = run_qr(&a, 10, &QrOptions::new(), Scheduler::Serial);
    assert!(qr.r.norm_l2() == 0.0);
    check_qr(&a, &qr, QrMode::Reduced);
}

#[test]
fn q_goes_to_a_zarr_array_or_the_callers_matrix() {
    let a = tall(1_234, 9, 3, false);
    let chunked = matrix(&row_major(&a), 1_234, 9, 100, 9);
    let engine = engine(64 << 20, Scheduler::Threads { workers: 2 });
    let in_memory = outcore::qr(&engine, &chunked, &QrOptions::new()).unwrap();
    let plan = QrPlan::new(&engine, &chunked, &QrOptions::new()).unwrap();
    assert_eq!(plan.q_grid().unwrap().shape(), (1_234, 9));
    let dir = tempfile::tempdir().unwrap();
    let stored = plan.run_with(&engine, Destination::Zarr(dir.path().join("q.zarr")), &RunControl::default()).unwrap();
    let q = stored.q.as_ref().unwrap().to_dense().unwrap();
    assert_eq!(bits(&q), bits(in_memory.q_matrix().unwrap()));
    assert_eq!(bits(&stored.r), bits(&in_memory.r));
    let mut into = Mat::<f64>::zeros(1_234, 9);
    plan.run_with(&engine, Destination::Into(into.as_mut()), &RunControl::default()).unwrap();
    assert_eq!(bits(&into), bits(in_memory.q_matrix().unwrap()));
}

#[test]
fn bad_requests_are_refused_with_what_to_change() {
    let engine = engine(64 << 20, Scheduler::Serial);
    let wide = matrix(&[1.0; 30], 3, 10, 3, 10);
    let e = outcore::qr(&engine, &wide, &QrOptions::new()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("3 x 10"), "{e}");
    let a = tall(200, 5, 1, false);
    let chunked = matrix(&row_major(&a), 200, 5, 50, 5);
    let r_only = QrPlan::new(&engine, &chunked, &QrOptions::new().mode(QrMode::R)).unwrap();
    assert!(r_only.q_grid().is_none());
    let mut q = Mat::<f64>::zeros(200, 5);
    let e = r_only.run_with(&engine, Destination::Into(q.as_mut()), &RunControl::default()).unwrap_err();
    assert!(e.to_string().contains("`mode`"), "{e}");
    let e = outcore::qr(&engine, &chunked, &QrOptions::new().fan_in(1)).unwrap_err();
    assert!(e.to_string().contains("`fan_in`"), "{e}");
    let mut nan = row_major(&a);
    nan[77] = f64::NAN;
    let e = outcore::qr(&engine, matrix(&nan, 200, 5, 50, 5), &QrOptions::new()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { row: 15, col: 2, .. }), "{e}");
    let e = outcore::qr(&engine, &chunked, &QrOptions::new().q_times(Mat::zeros(4, 2))).unwrap_err();
    assert!(e.to_string().contains("`q_times`") && e.to_string().contains("4 x 2"), "{e}");
    let e = outcore::qr(&engine, &chunked, &QrOptions::new().mode(QrMode::R).q_times(Mat::zeros(5, 2))).unwrap_err();
    assert!(e.to_string().contains("`mode`"), "{e}");
    let short = matrix(&[1.0; 199], 199, 1, 50, 1);
    let e = QrPlan::with_qt(&engine, &chunked, &short, &QrOptions::new()).unwrap_err();
    assert!(e.to_string().contains("199 rows"), "{e}");
    let tiny = outcore::Engine::new(1 << 20).unwrap();
    let big = ChunkedMatrix::generated(Distribution::Normal, 0, 100_000, 200, 10_000, 200).unwrap();
    let e = outcore::qr(&tiny, &big, &QrOptions::new()).unwrap_err();
    assert!(matches!(e, Error::Memory(MemoryError::LimitTooSmall { .. })), "{e}");
}

#[test]
fn a_compressed_store_read_twice_is_decoded_twice_without_copies() {
    use outcore::storage::{ChunkGrid, Compression, ZarrOptions, ZarrStore, write_matrix};
    use outcore::{Event, RunControl};
    use std::sync::{Arc, Mutex};
    // 5.6 MB: more than half the target of a 16 MiB limit, so the plan streams it (no cache).
    let (m, n) = (100_003, 7);
    let a = tall(m, n, 21, false);
    let dir = tempfile::tempdir().unwrap();
    let grid = ChunkGrid::new(m, n, 4_000, n).unwrap();
    let options = ZarrOptions { compression: Compression::Zstd { level: 0 }, ..ZarrOptions::default() };
    let store = ZarrStore::create(dir.path().join("a.zarr"), grid, &options).unwrap();
    write_matrix(&store, &row_major(&a)).unwrap();
    let spill = tempfile::tempdir().unwrap();
    let engine = outcore::Engine::builder().memory_limit(16 << 20).spill_dir(spill.path()).workers(2).build().unwrap();
    // Watch the spill parent during the run: no decoded copies for two passes.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (watch, parent) = (seen.clone(), spill.path().to_path_buf());
    let control = RunControl::new().events(move |e: &Event| {
        if let Event::TaskFinished { .. } = e {
            let names = std::fs::read_dir(&parent).unwrap().map(|d| d.unwrap().file_name().into_string().unwrap());
            watch.lock().unwrap().extend(names);
        }
    });
    let compressed = ChunkedMatrix::from_store(Arc::new(store));
    let plan = QrPlan::new(&engine, &compressed, &QrOptions::new()).unwrap();
    let qr = plan.run_with(&engine, Destination::Memory, &control).unwrap();
    assert!(!seen.lock().unwrap().iter().any(|name| name.contains("-decoded-")), "decoded copies for two passes");
    check_qr(&a, &qr, QrMode::Reduced);
    let plain = outcore::qr(&engine, matrix(&row_major(&a), m, n, 4_000, n), &QrOptions::new()).unwrap();
    assert_eq!(bits(qr.q_matrix().unwrap()), bits(plain.q_matrix().unwrap()), "the same panels, however stored");
}
