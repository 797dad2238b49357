//! The one-call path for matrices in the caller's memory: borrowed in any layout, tall or
//! wide, against dense faer references; U written into the caller's own matrix; the
//! randomized SVD of an exactly low-rank matrix; and outputs that would overwrite their input
//! refused before any work.

use outcore_testkit as common;

use common::*;
use faer::Mat;
use outcore::{
    ChunkedMatrix, Destination, Distribution, Engine, Error, Factor, RandomizedSvdOptions, RunControl, SvdOptions,
    SvdPlan,
};

fn check(a: &Mat<f64>, s: &[f64], u: &Mat<f64>, v: &Mat<f64>) {
    let (m, n) = a.shape();
    let norm = a.norm_l2();
    for (x, y) in s.iter().zip(reference_singular_values(a)) {
        assert!((x - y).abs() <= tol(m, n, norm), "{m}x{n}: {x} vs {y}");
    }
    assert!(reconstruction_error(a, u, s, v) <= tol(m, n, norm), "{m}x{n}: reconstruction");
    assert!(orthogonality_error(u, s) <= tol(m, n, 1.0) && orthogonality_error(v, s) <= tol(m, n, 1.0));
}

#[test]
fn tall_wide_and_any_layout_match_dense_svd() {
    let engine = Engine::builder().memory_limit(32 << 20).workers(2).build().unwrap();
    for (m, n) in [(7_001, 13), (13, 5_003), (1, 1), (40, 40), (100_003, 3)] {
        let a = gaussian(m, n, (m * 31 + n) as u64);
        // Column-major (faer's own layout), then row-major from a slice, then a transposed view.
        let svd = outcore::svd(&engine, a.as_ref(), &SvdOptions::new()).unwrap();
        check(&a, &svd.s, svd.u_matrix().unwrap(), svd.v_matrix().unwrap());
        let data = row_major(&a);
        let rm = faer::MatRef::from_row_major_slice(&data, m, n);
        let again = outcore::svd(&engine, rm, &SvdOptions::new()).unwrap();
        assert_eq!(svd.s, again.s, "{m}x{n}: the layout changed the bits");
        let t = a.transpose().to_owned();
        let svd_t = outcore::svd(&engine, t.as_ref().transpose(), &SvdOptions::new()).unwrap();
        assert_eq!(svd.s, svd_t.s);
    }
}

#[test]
fn u_is_written_into_the_callers_matrix() {
    let engine = Engine::new(16 << 20).unwrap();
    let a = gaussian(20_011, 7, 3);
    let mut u = Mat::<f64>::zeros(20_011, 7);
    let plan = SvdPlan::new(&engine, &a, &SvdOptions::new()).unwrap();
    let svd = plan.run_with(&engine, Destination::Into(u.as_mut()), &RunControl::new()).unwrap();
    assert!(matches!(svd.u, Some(Factor::Written { rows: 20_011, cols: 7 })));
    check(&a, &svd.s, &u, svd.v_matrix().unwrap());
    // A destination of the wrong shape is refused before any work.
    let mut small = Mat::<f64>::zeros(3, 7);
    let err = plan.run_with(&engine, Destination::Into(small.as_mut()), &RunControl::new()).unwrap_err();
    assert!(err.to_string().contains("20011 x 7") && err.to_string().contains("3 x 7"), "{err}");
}

#[test]
fn non_finite_values_in_the_callers_matrix_are_found() {
    let engine = Engine::new(16 << 20).unwrap();
    let mut a = gaussian(5_000, 4, 8);
    a[(4_321, 2)] = f64::NAN;
    let err = outcore::svd(&engine, a.as_ref(), &SvdOptions::new()).unwrap_err();
    assert!(matches!(err, Error::NonFinite { row: 4_321, col: 2, .. }), "{err}");
    // Without the scan the NaN is not looked for (it reaches the SVD of R, which says so).
    let unchecked = outcore::svd(&engine, a.as_ref(), &SvdOptions::new().check_finite(false));
    assert!(!matches!(unchecked, Err(Error::NonFinite { .. })), "{unchecked:?}");
}

#[test]
fn randomized_svd_recovers_a_low_rank_matrix_in_memory() {
    let engine = Engine::new(64 << 20).unwrap();
    let (m, n, r) = (3_001, 2_003, 4);
    let a = &gaussian(m, r, 1) * &gaussian(r, n, 2);
    let result = outcore::randomized_svd(&engine, a.as_ref(), &RandomizedSvdOptions::new(r).power_iters(1)).unwrap();
    let (u, v) = result.svd.dense_vectors().unwrap();
    let norm = a.norm_l2();
    assert!(reconstruction_error(&a, &u, &result.svd.s, &v) <= tol(m, n, norm) * 10.0);
    assert!(result.error.spectral_bound <= tol(m, n, norm) * 100.0, "{:?}", result.error);
}

#[test]
fn a_small_limit_for_a_matrix_in_ram_gives_advice_this_call_can_follow() {
    // The call chunks a matrix in RAM itself: its refusal names the limit, not smaller chunks.
    let engine = Engine::new(4 << 20).unwrap();
    let a = gaussian(3_000, 2_000, 3);
    let rsvd = outcore::randomized_svd(&engine, a.as_ref(), &RandomizedSvdOptions::new(50)).unwrap_err();
    let tsqr = outcore::svd(&engine, a.as_ref(), &SvdOptions::new()).unwrap_err();
    assert!(rsvd.to_string().contains("a matrix in RAM is read in chunks"), "{rsvd}");
    for err in [rsvd, tsqr] {
        let text = err.to_string();
        assert!(matches!(err, Error::Memory(_)), "{text}");
        assert!(!text.contains("smaller chunks") && text.contains("`memory_limit`"), "{text}");
    }
    // A store's chunks are the caller's choice: there, smaller chunks are the advice.
    let stored = ChunkedMatrix::generated(Distribution::Uniform, 0, 3_000, 2_000, 3_000, 2_000).unwrap();
    let text = outcore::randomized_svd(&engine, &stored, &RandomizedSvdOptions::new(50)).unwrap_err().to_string();
    assert!(text.contains("smaller chunks need less"), "{text}");
}

#[test]
fn an_output_over_its_input_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let engine = Engine::new(16 << 20).unwrap();
    let grid = outcore::storage::ChunkGrid::new(1_000, 5, 300, 5).unwrap();
    let store = std::sync::Arc::new(outcore::storage::ZarrStore::create(&path, grid, &Default::default()).unwrap());
    let generated = ChunkedMatrix::generated(Distribution::Uniform, 1, 1_000, 5, 300, 5).unwrap();
    outcore::copy_matrix(&engine, &generated, store, &RunControl::new()).unwrap();
    let a = ChunkedMatrix::open(&path).unwrap();
    let plan = SvdPlan::new(&engine, &a, &SvdOptions::new()).unwrap();
    for target in [path.clone(), path.join("u.zarr"), dir.path().to_path_buf()] {
        let err = plan.run_with(&engine, Destination::Zarr(target.clone()), &RunControl::default()).unwrap_err();
        assert!(err.to_string().contains("would overwrite the input"), "{}: {err}", target.display());
    }
    assert_eq!(a.to_dense().unwrap(), generated.to_dense().unwrap(), "the input changed");
    let svd = plan.run_with(&engine, Destination::Zarr(dir.path().join("u.zarr")), &RunControl::default()).unwrap();
    assert!(matches!(svd.u, Some(Factor::Stored(_))) && dir.path().join("u.zarr").is_dir());
    // U and V of a randomized SVD never share a path, however it is spelled.
    let rsvd = outcore::RandomizedSvdPlan::new(&engine, &a, &RandomizedSvdOptions::new(2).oversamples(1)).unwrap();
    let (u, v) = (dir.path().join("f"), dir.path().join(".").join("f").join("v"));
    let err =
        rsvd.run_with(&engine, Destination::Zarr(u.clone()), Destination::Zarr(v), &RunControl::default()).unwrap_err();
    assert!(err.to_string().contains("would overwrite each other"), "{err}");
    assert!(!u.exists());
}
