//! Centered (and standardized) SVDs, as a PCA needs, against dense references of the
//! explicitly centered matrix: shapes that do not divide the chunks, tall and wide, columns far
//! from zero, constant columns, any fan-in; serial and threads bitwise identical.

use outcore_testkit as common;

use common::*;
use faer::Mat;
use outcore::{
    ChunkedMatrix, Distribution, Error, RandomizedMethod, RandomizedSvdOptions, Scheduler, SvdOptions, SvdResult,
    randomized_svd,
};
use proptest::prelude::*;

/// `a` with its column means subtracted (and divided by its deviations), the means and scales.
fn centered_reference(a: &Mat<f64>, standardize: bool) -> (Mat<f64>, Vec<f64>, Vec<f64>) {
    let (m, n) = a.shape();
    let mean: Vec<f64> = (0..n).map(|j| (0..m).map(|i| a[(i, j)]).sum::<f64>() / m as f64).collect();
    let scale: Vec<f64> = (0..n)
        .map(|j| {
            let var = (0..m).map(|i| (a[(i, j)] - mean[j]).powi(2)).sum::<f64>() / (m as f64 - 1.0);
            // Constant: a variance at the level of the mean's rounding.
            if standardize && var > (1e-12 * mean[j]).powi(2) { var.sqrt() } else { 1.0 }
        })
        .collect();
    (Mat::from_fn(m, n, |i, j| (a[(i, j)] - mean[j]) / scale[j]), mean, scale)
}

/// A matrix whose columns sit far from zero (offsets up to 1000) and vary at different scales;
/// column `constant` (if any) does not vary at all, and holds a value (offset + 0.1) whose
/// mean does not come out exact, so centering leaves rounding in it.
fn offset_matrix(m: usize, n: usize, seed: u64, constant: Option<usize>) -> Mat<f64> {
    let g = ChunkedMatrix::generated(Distribution::Normal, seed, m, n, m, n).unwrap().to_dense().unwrap();
    Mat::from_fn(m, n, |i, j| {
        let offset = 1000.0 * ((j * 7 % 11) as f64 - 5.0) / 5.0;
        if constant == Some(j) { offset + 0.1 } else { offset + (1.0 + j as f64) * g[(i, j)] }
    })
}

/// Checks a centered result against the dense SVD of the explicitly centered matrix: values,
/// means, scales, total variance, and the vectors it has (V spans the centered rows' space; a
/// wide matrix's U and V reconstruct it).
fn check_centered(a: &Mat<f64>, svd: &SvdResult, standardize: bool) {
    let (m, n) = a.shape();
    let (c, mean, scale) = centered_reference(a, standardize);
    // Rounding scales with the input's entries, offsets included: a mean is subtracted in
    // floating point, leaving `eps |a_ij|` in each entry, and standardizing divides that by the
    // column's scale. So the norm is that of `A` with each column divided by its scale (a
    // constant column, left unscaled, keeps its rounding at its own magnitude).
    let scale_norm = if standardize { Mat::from_fn(m, n, |i, j| a[(i, j)] / scale[j]).norm_l2() } else { a.norm_l2() };
    let t = tol(m, n, scale_norm);
    let reference = reference_singular_values(&c);
    assert_eq!(svd.s.len(), m.min(n));
    for (i, (x, y)) in svd.s.iter().zip(&reference).enumerate() {
        assert!((x - y).abs() <= t, "{m}x{n} sigma_{i}: {x} vs {y} (tol {t})");
    }
    let centered = svd.centered.as_ref().expect("a centered run reports its means");
    for (j, (x, y)) in centered.mean.iter().zip(&mean).enumerate() {
        assert!((x - y).abs() <= tol(m, 1, a.norm_max()), "mean {j}: {x} vs {y}");
    }
    assert_eq!(centered.mean.len(), n);
    match (&centered.scale, standardize) {
        (Some(got), true) => {
            for (j, (x, y)) in got.iter().zip(&scale).enumerate() {
                assert!((x - y).abs() <= 1e-10 * y, "scale {j}: {x} vs {y}");
            }
        }
        (None, false) => {}
        (got, _) => panic!("scale {got:?} for standardize = {standardize}"),
    }
    let total = c.squared_norm_l2() / (m as f64 - 1.0);
    assert!(
        (centered.total_variance - total).abs() <= 1e-12 * total.max(1.0),
        "{} vs {total}",
        centered.total_variance
    );
    let v = svd.v.as_ref().expect("V").to_dense().unwrap();
    assert!(orthogonality_error(&v, &svd.s) <= tol(m, n, 1.0), "V not orthonormal");
    // The centered rows lie in V's span: ||C - C V V^T|| is rounding.
    let residual = (&c - &c * &v * v.transpose()).norm_l2();
    assert!(residual <= t, "||C - C V V^T|| = {residual} (tol {t})");
    if let Some(u) = &svd.u {
        let u = u.to_dense().unwrap();
        let err = reconstruction_error(&c, &u, &svd.s, &v);
        assert!(err <= t, "||C - U S V^T|| = {err} (tol {t})");
    }
}

fn run(a: &Mat<f64>, cr: usize, cc: usize, options: &SvdOptions, scheduler: Scheduler) -> SvdResult {
    let (m, n) = a.shape();
    outcore::svd(&engine(256 << 20, scheduler), matrix(&row_major(a), m, n, cr, cc), options).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn centered_tsqr_matches_the_centered_matrix(
        (m, n) in prop_oneof![(2usize..300, 1usize..10).prop_map(|(m, n)| (m + n, n)), (2usize..10, 1usize..300).prop_map(|(m, n)| (m, m + n))],
        chunk in 1usize..40,
        fan_in in 2usize..5,
        seed in any::<u64>(),
        standardize in any::<bool>(),
        constant in any::<bool>(),
    ) {
        let a = offset_matrix(m, n, seed, constant.then_some(0));
        let (cr, cc) = if m >= n { (chunk.min(m), n) } else { (m, chunk.min(n)) };
        let options = SvdOptions::new().center(true).standardize(standardize).fan_in(fan_in).panel_rows(chunk);
        let serial = run(&a, cr, cc, &options, Scheduler::Serial);
        check_centered(&a, &serial, standardize);
        // A tall centered matrix has V and no U (no second pass); a wide one both.
        prop_assert_eq!(serial.u.is_some(), m < n);
        let threads = run(&a, cr, cc, &options, Scheduler::Threads { workers: 3 });
        prop_assert_eq!(&serial.s, &threads.s);
        prop_assert_eq!(&serial.centered, &threads.centered);
    }
}

#[test]
fn centered_values_only_keep_the_means() {
    let a = offset_matrix(1_001, 9, 3, None);
    let svd = run(&a, 97, 9, &SvdOptions::new().vectors(false).center(true), Scheduler::Threads { workers: 2 });
    assert!(svd.u.is_none() && svd.v.is_none());
    let (c, mean, _) = centered_reference(&a, false);
    let centered = svd.centered.unwrap();
    assert!(centered.mean.iter().zip(&mean).all(|(x, y)| (x - y).abs() <= 1e-9));
    let reference = reference_singular_values(&c);
    assert!(svd.s.iter().zip(&reference).all(|(x, y)| (x - y).abs() <= tol(1_001, 9, a.norm_l2())));
}

#[test]
fn centering_one_row_is_refused() {
    let a = matrix(&[1.0, 2.0, 3.0], 1, 3, 1, 3);
    let err = outcore::svd(&engine(64 << 20, Scheduler::Serial), &a, &SvdOptions::new().center(true)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { knob: outcore::Knob::Center, .. }), "{err}");
    assert!(err.to_string().contains("at least 2 rows"), "{err}");
}

/// `offsets + L R`: columns far from zero whose centered matrix has rank `rank`.
fn low_rank_offset(m: usize, n: usize, rank: usize, seed: u64) -> Mat<f64> {
    let l = ChunkedMatrix::generated(Distribution::Normal, seed, m, rank, m, rank).unwrap().to_dense().unwrap();
    let r = ChunkedMatrix::generated(Distribution::Normal, seed ^ 7, rank, n, rank, n).unwrap().to_dense().unwrap();
    let lr = &l * &r;
    Mat::from_fn(m, n, |i, j| 500.0 * ((j % 5) as f64 - 2.0) + lr[(i, j)])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The centered randomized SVD of a matrix whose centered rank the sketch covers is exact to
    /// rounding: values, vectors reconstructing the centered matrix, means, total variance, a
    /// tiny error estimate; k, oversampling and iterations pressing against min(m, n).
    #[test]
    fn centered_rsvd_matches_the_centered_matrix(
        (m, n) in (2usize..120, 2usize..120),
        (cr, cc) in (1usize..50, 1usize..50),
        k in 1usize..8,
        p in 0usize..6,
        q in 0usize..3,
        krylov in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let k = k.min(m.min(n));
        let p = p.min(m.min(n) - k);
        let rank = k.min(m - 1);
        let a = low_rank_offset(m, n, rank, seed);
        let method = if krylov { RandomizedMethod::Krylov } else { RandomizedMethod::Subspace };
        let options = RandomizedSvdOptions::new(k).oversamples(p).power_iters(q).method(method).seed(seed).center(true);
        let data = matrix(&row_major(&a), m, n, cr.min(m), cc.min(n));
        let serial = randomized_svd(&engine(256 << 20, Scheduler::Serial), &data, &options).unwrap();
        let (c, mean, _) = centered_reference(&a, false);
        let t = tol(m, n, a.norm_l2());
        let reference = reference_singular_values(&c);
        for (i, (x, y)) in serial.svd.s.iter().zip(&reference).enumerate() {
            prop_assert!((x - y).abs() <= t, "sigma_{}: {} vs {} (tol {})", i, x, y, t);
        }
        let (u, v) = serial.svd.dense_vectors().unwrap();
        let err = reconstruction_error(&c, &u, &serial.svd.s, &v);
        prop_assert!(err <= t, "||C - U S V^T|| = {} (tol {})", err, t);
        prop_assert!(serial.error.frobenius <= t, "estimate {:?}", serial.error);
        let centered = serial.svd.centered.clone().unwrap();
        for (x, y) in centered.mean.iter().zip(&mean) {
            prop_assert!((x - y).abs() <= tol(m, 1, a.norm_max()), "mean {} vs {}", x, y);
        }
        let total = c.squared_norm_l2() / (m as f64 - 1.0);
        prop_assert!((centered.total_variance - total).abs() <= 1e-10 * total.max(1.0), "{} vs {}", centered.total_variance, total);
        let threads = randomized_svd(&engine(256 << 20, Scheduler::Threads { workers: 3 }), &data, &options).unwrap();
        prop_assert_eq!(&serial.svd.s, &threads.svd.s);
        prop_assert_eq!(&serial.svd.centered, &threads.svd.centered);
    }
}

#[test]
fn centered_rsvd_of_a_transposed_view_matches() {
    // The transposed view streams the store's rows as the view's column blocks: moments must
    // merge those as well as row blocks.
    let a = low_rank_offset(37, 90, 3, 11);
    let t = a.transpose().to_owned();
    let data = matrix(&row_major(&t), 90, 37, 13, 9).t();
    let result =
        randomized_svd(&engine(64 << 20, Scheduler::Serial), &data, &RandomizedSvdOptions::new(3).center(true))
            .unwrap();
    let (c, mean, _) = centered_reference(&a, false);
    let centered = result.svd.centered.unwrap();
    assert!(centered.mean.iter().zip(&mean).all(|(x, y)| (x - y).abs() <= 1e-9), "{:?}", centered.mean);
    let reference = reference_singular_values(&c);
    for (x, y) in result.svd.s.iter().zip(&reference) {
        assert!((x - y).abs() <= tol(37, 90, a.norm_l2()), "{x} vs {y}");
    }
}
