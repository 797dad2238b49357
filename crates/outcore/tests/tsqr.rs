//! TSQR SVD against dense faer references: shapes that do not divide the chunks, tall, wide,
//! square, rank-deficient, zero, one row or column; serial and threads bitwise identical.

use outcore_testkit as common;

use common::*;
use faer::Mat;
use outcore::{ChunkedMatrix, Distribution, Error, MemoryError, Scheduler, SvdOptions, SvdPlan};
use proptest::prelude::*;

fn check_svd(a: &Mat<f64>, m: ChunkedMatrix, options: &SvdOptions, scheduler: Scheduler) -> outcore::SvdResult {
    let engine = engine(256 << 20, scheduler);
    let svd = outcore::svd(&engine, &m, options).unwrap();
    let (rows, cols) = a.shape();
    let norm = a.norm_l2();
    let reference = reference_singular_values(a);
    assert_eq!(svd.s.len(), rows.min(cols));
    for (i, (x, y)) in svd.s.iter().zip(&reference).enumerate() {
        assert!((x - y).abs() <= tol(rows, cols, norm), "{rows}x{cols} sigma_{i}: {x} vs {y}");
    }
    if options.vectors {
        let (u, v) = svd.dense_vectors().unwrap();
        assert_eq!(u.shape(), (rows, rows.min(cols)));
        assert_eq!(v.shape(), (cols, rows.min(cols)));
        let err = reconstruction_error(a, &u, &svd.s, &v);
        assert!(err <= tol(rows, cols, norm), "{rows}x{cols}: ||A - U S V^T|| = {err}, norm {norm}");
        assert!(orthogonality_error(&u, &svd.s) <= tol(rows, cols, 1.0), "U not orthonormal");
        assert!(orthogonality_error(&v, &svd.s) <= tol(rows, cols, 1.0), "V not orthonormal");
    }
    svd
}

fn shape_and_chunks() -> impl Strategy<Value = (usize, usize, usize, usize, u64)> {
    prop_oneof![
        // tall
        (1usize..=400, 1usize..=12).prop_map(|(m, n)| (m + n, n)),
        // wide
        (1usize..=12, 1usize..=400).prop_map(|(m, n)| (m, m + n)),
        // square-ish
        (1usize..=40, 0usize..=3).prop_map(|(m, d)| (m, m + d)),
    ]
    .prop_flat_map(|(m, n)| (Just(m), Just(n), 1..=m.max(2), 1..=n.max(2), any::<u64>()))
}

#[test]
fn ill_conditioned_panels_keep_u_orthonormal() {
    // Column 3 is column 2 plus 1e-9 times noise: every panel's R is far too ill-conditioned
    // for the U = A R^-1 W shortcut, so U comes from the recomputed Householder Q; with
    // `closeness` 1 the panels are well conditioned and take the shortcut. Both must be
    // orthonormal to working precision.
    for closeness in [1e-9, 1.0] {
        let g = ChunkedMatrix::generated(Distribution::Normal, 5, 2_503, 7, 300, 7).unwrap();
        let mut dense = g.to_dense().unwrap();
        for i in 0..dense.nrows() {
            dense[(i, 3)] = dense[(i, 2)] + closeness * dense[(i, 3)];
        }
        let a = matrix(&row_major(&dense), 2_503, 7, 300, 7);
        check_svd(&dense, a, &SvdOptions::default(), Scheduler::Serial);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn matches_dense_svd((m, n, cr, cc, seed) in shape_and_chunks(), fan_in in 2usize..5) {
        let a = ChunkedMatrix::generated(Distribution::Normal, seed, m, n, cr, cc).unwrap();
        let dense = a.to_dense().unwrap();
        let options = SvdOptions::new().fan_in(fan_in).panel_rows(cr.max(1));
        let serial = check_svd(&dense, a.clone(), &options, Scheduler::Serial);
        let threads = outcore::svd(&engine(256 << 20, Scheduler::Threads { workers: 3 }), &a, &options).unwrap();
        prop_assert_eq!(&serial.s, &threads.s);
        let (u1, v1) = serial.dense_vectors().unwrap();
        let (u2, v2) = threads.dense_vectors().unwrap();
        prop_assert_eq!(row_major(&u1), row_major(&u2));
        prop_assert_eq!(row_major(&v1), row_major(&v2));
    }

    #[test]
    fn rank_deficient_products_are_factored((m, n, r, seed) in (2usize..200, 2usize..10, 1usize..4, any::<u64>())) {
        let left = ChunkedMatrix::generated(Distribution::Normal, seed, m, r, m, r).unwrap().to_dense().unwrap();
        let right = ChunkedMatrix::generated(Distribution::Normal, seed ^ 1, r, n, r, n).unwrap().to_dense().unwrap();
        let dense = &left * &right;
        let a = matrix(&row_major(&dense), m, n, 7, 3);
        let svd = check_svd(&dense, a, &SvdOptions::default(), Scheduler::Threads { workers: 2 });
        let tail = svd.s.iter().skip(r).fold(0.0f64, |acc, &x| acc.max(x));
        prop_assert!(tail <= tol(m, n, dense.norm_l2()), "rank {} tail {}", r, tail);
    }
}

#[test]
fn awkward_sizes_around_the_chunk_size() {
    let c = 16;
    for m in [1, c - 1, c, c + 1, 127, 257] {
        for n in [1, 3, c - 1, c, c + 1] {
            let a = ChunkedMatrix::generated(Distribution::Uniform, (m * 1000 + n) as u64, m, n, c, 5).unwrap();
            let dense = a.to_dense().unwrap();
            check_svd(&dense, a, &SvdOptions::new().fan_in(3), Scheduler::Serial);
        }
    }
}

#[test]
fn zero_and_identity_matrices() {
    let zero = Mat::<f64>::zeros(53, 7);
    let svd = check_svd(&zero, matrix(&row_major(&zero), 53, 7, 10, 7), &SvdOptions::default(), Scheduler::Serial);
    assert!(svd.s.iter().all(|&x| x == 0.0));
    let id = Mat::<f64>::identity(9, 9);
    let svd = check_svd(&id, matrix(&row_major(&id), 9, 9, 4, 4), &SvdOptions::default(), Scheduler::Serial);
    assert!(svd.s.iter().all(|&x| (x - 1.0).abs() < 1e-14));
}

#[test]
fn values_only_matches_values_of_the_full_svd() {
    let a = ChunkedMatrix::generated(Distribution::Uniform, 3, 3000, 40, 500, 40).unwrap();
    let dense = a.to_dense().unwrap();
    let values = SvdOptions::new().vectors(false);
    let only = check_svd(&dense, a.clone(), &values, Scheduler::Serial);
    assert!(only.u.is_none() && only.v.is_none());
    let full = check_svd(&dense, a, &SvdOptions::default(), Scheduler::Serial);
    for (x, y) in only.s.iter().zip(&full.s) {
        assert!((x - y).abs() <= tol(3000, 40, dense.norm_l2()));
    }
}

#[test]
fn signs_follow_the_svd_flip_rule() {
    for (m, n) in [(300, 8), (8, 300)] {
        let a = ChunkedMatrix::generated(Distribution::Normal, 11, m, n, 64, 64).unwrap();
        let svd = outcore::svd(&engine(64 << 20, Scheduler::Serial), &a, &SvdOptions::default()).unwrap();
        let (u, v) = svd.dense_vectors().unwrap();
        // The rule looks at the small factor: V for tall input, U for wide input.
        let small = if m >= n { &v } else { &u };
        for j in 0..small.ncols() {
            let col: Vec<f64> = small.col(j).iter().copied().collect();
            let max = col.iter().copied().fold(0.0f64, |best, x| if x.abs() > best.abs() { x } else { best });
            assert!(max > 0.0, "{m}x{n} column {j}");
        }
    }
}

#[test]
fn plan_refuses_a_too_small_limit_with_the_limit_that_works() {
    let a = ChunkedMatrix::generated(Distribution::Uniform, 1, 100_000, 100, 10_000, 100).unwrap();
    let small = engine(256 << 10, Scheduler::Serial);
    let err = SvdPlan::new(&small, &a, &SvdOptions::default()).unwrap_err();
    let Error::Memory(MemoryError::LimitTooSmall { needed, .. }) = err else { panic!("{err}") };
    assert!(err.to_string().contains("raise `memory_limit` to"), "{err}");
    // The limit it names is enough.
    let enough = engine(needed, Scheduler::Serial);
    let plan = SvdPlan::new(&enough, &a, &SvdOptions::default()).unwrap();
    assert!(plan.memory_needed(1) <= needed);
    // Rather than refusing, a limit that fits a smaller panel shrinks panels.
    let medium = engine(4 << 20, Scheduler::Serial);
    let plan = SvdPlan::new(&medium, &a, &SvdOptions::new().vectors(false)).unwrap();
    assert!(plan.panels()[0].len() < 10_000, "{}", plan.summary());
    let svd = plan.run(&medium).unwrap();
    assert_eq!(svd.s.len(), 100);
}

#[test]
fn empty_matrices_are_refused() {
    let a = matrix(&[], 0, 5, 1, 1);
    let err = outcore::svd(&engine(1 << 20, Scheduler::Serial), &a, &SvdOptions::default()).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn a_corrupted_chunk_fails_the_run_with_its_index_and_file() {
    use outcore::storage::{ChunkGrid, StorageError, ZarrOptions, ZarrStore, write_matrix};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let a = ChunkedMatrix::generated(Distribution::Normal, 8, 900, 12, 100, 12).unwrap();
    let store = ZarrStore::create(&path, ChunkGrid::new(900, 12, 100, 12).unwrap(), &ZarrOptions::default()).unwrap();
    write_matrix(&store, &row_major(&a.to_dense().unwrap())).unwrap();
    let file = path.join("c/4/0");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1000] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();
    for scheduler in [Scheduler::Serial, Scheduler::Threads { workers: 2 }] {
        let err =
            outcore::svd(&engine(64 << 20, scheduler), ChunkedMatrix::open(&path).unwrap(), &SvdOptions::default())
                .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Storage(StorageError::CorruptedChunk { .. })), "{text}");
        assert!(text.contains("(4, 0)") && text.contains("c/4/0"), "{text}");
    }
}

/// NaN and infinities are found wherever they sit: any row or column of a chunk (the lane
/// remainder of the vectorized scan included), through a transposed view, in a multi-pass
/// plan (each chunk checked on its first read), and named by their place in the matrix.
#[test]
fn non_finite_values_are_found_and_named_wherever_they_are() {
    let (rows, cols) = (53, 19);
    let engine = engine(64 << 20, Scheduler::Threads { workers: 2 });
    // Chunks 11 x 13: a row of a chunk is 8 lanes and a remainder of 5 (or 6 at the edge).
    for (r, c, bad) in [(0, 0, f64::NAN), (52, 18, f64::INFINITY), (17, 9, f64::NEG_INFINITY), (40, 5, f64::NAN)] {
        let mut data: Vec<f64> = (0..rows * cols).map(|i| (i as f64 * 0.37).sin()).collect();
        data[r * cols + c] = bad;
        let a = matrix(&data, rows, cols, 11, 13);
        let err = outcore::svd(&engine, &a, &SvdOptions::new()).unwrap_err();
        assert!(matches!(err, Error::NonFinite { row, col, .. } if (row, col) == (r, c)), "{err}");
        // The transpose: a wide matrix read through a transposed view.
        let err = outcore::svd(&engine, a.t(), &SvdOptions::new()).unwrap_err();
        assert!(matches!(err, Error::NonFinite { row, col, .. } if (row, col) == (c, r)), "{err}");
        let err = outcore::randomized_svd(&engine, &a, &outcore::RandomizedSvdOptions::new(3)).unwrap_err();
        assert!(matches!(err, Error::NonFinite { row, col, .. } if (row, col) == (r, c)), "{err}");
    }
}

/// `U diag(s) V^T` with orthonormal U (m x n) and V, `s` spread from 1 to `10^-decades`.
fn with_condition(m: usize, n: usize, decades: f64, seed: u64) -> (Mat<f64>, Vec<f64>) {
    let q = |rows: usize, seed: u64| {
        let g = ChunkedMatrix::generated(Distribution::Normal, seed, rows, n, rows, n).unwrap().to_dense().unwrap();
        g.qr().compute_thin_Q()
    };
    let (u, v) = (q(m, seed), q(n, seed ^ 0x5eed));
    let s: Vec<f64> = (0..n).map(|i| 10f64.powf(-decades * i as f64 / (n - 1).max(1) as f64)).collect();
    let us = Mat::from_fn(m, n, |i, j| u[(i, j)] * s[j]);
    (&us * v.transpose(), s)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Values only, panels may take CholeskyQR2: exact to working precision at every condition
    /// number, its guard handing ill-conditioned panels (to 1e15) to Householder QR.
    #[test]
    fn values_are_exact_at_any_condition_number(
        (m, n) in (40usize..3000, 2usize..40),
        decades in prop::sample::select(vec![0.0, 3.0, 6.0, 7.0, 7.5, 8.0, 8.5, 9.0, 12.0, 15.0]),
        panel in 7usize..400,
        seed in any::<u64>(),
    ) {
        let m = m.max(n);
        let (dense, s) = with_condition(m, n, decades, seed);
        let a = matrix(&row_major(&dense), m, n, panel.min(m), n);
        let options = SvdOptions::new().vectors(false).panel_rows(panel.min(m));
        let svd = outcore::svd(&engine(64 << 20, Scheduler::Threads { workers: 2 }), &a, &options).unwrap();
        let worst = svd.s.iter().zip(&s).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        prop_assert!(worst <= tol(m, n, 1.0), "cond 1e{}: error {:e} > {:e}", decades, worst, tol(m, n, 1.0));
    }
}
