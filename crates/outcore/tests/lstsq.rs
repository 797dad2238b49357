//! Least squares against a dense reference (the minimum-norm solution from faer's SVD of A, as
//! numpy's `lstsq` computes it): tall, square and wide A, rank-deficient and ill-conditioned,
//! several right-hand sides chunked unlike A or held in RAM; tolerances from the perturbation
//! theory of least squares; regressions (intercept, ridge, row weights) against their textbook
//! formulas; serial and threads bitwise identical; bad input refused.

use outcore_testkit as common;

use common::*;
use faer::Mat;
use faer::linalg::solvers::DenseSolveCore;
use outcore::{ChunkedMatrix, Distribution, Error, LstsqOptions, LstsqPlan, Scheduler};
use proptest::prelude::*;

/// The minimum-norm least-squares solution by faer's SVD of A, with numpy's cutoff rule;
/// returns it with A's singular values and rank.
fn reference(a: &Mat<f64>, b: &Mat<f64>, rcond: f64) -> (Mat<f64>, Vec<f64>, usize) {
    let svd = a.thin_svd().unwrap();
    let s: Vec<f64> = svd.S().column_vector().iter().copied().collect();
    let cutoff = rcond * s.first().copied().unwrap_or(0.0);
    let rank = s.iter().take_while(|&&x| x > cutoff).count();
    let (u, v) = (svd.U().subcols(0, rank), svd.V().subcols(0, rank));
    let mut y = u.transpose() * b;
    for (i, sigma) in s.iter().take(rank).enumerate() {
        y.as_mut().row_mut(i).iter_mut().for_each(|x| *x /= sigma);
    }
    (v * y, s, rank)
}

fn normal(m: usize, n: usize, seed: u64) -> Mat<f64> {
    ChunkedMatrix::generated(Distribution::Normal, seed, m, n, m.max(1), n.max(1)).unwrap().to_dense().unwrap()
}

fn bits(m: &Mat<f64>) -> Vec<u64> {
    row_major(m).iter().map(|x| x.to_bits()).collect()
}

/// Checks a solution against the reference: X within `eps sqrt(m) (kappa ||X|| + kappa^2
/// ||R|| / ||A||)` per column (the least-squares perturbation bound, kappa the condition of the
/// kept singular values), the singular values within `eps sqrt(m) ||A||`, the rank, and the
/// residuals as numpy reports them.
fn check(a: &Mat<f64>, b: &Mat<f64>, fit: &outcore::LstsqResult, rcond: f64) {
    let (m, n) = a.shape();
    let (x_ref, s_ref, rank) = reference(a, b, rcond);
    assert_eq!(fit.rank, rank, "{m}x{n}: rank");
    assert_eq!(fit.s.len(), m.min(n));
    let norm = s_ref.first().copied().unwrap_or(0.0);
    for (i, (x, y)) in fit.s.iter().zip(&s_ref).enumerate() {
        assert!((x - y).abs() <= tol(m, n, norm), "{m}x{n} sigma_{i}: {x} vs {y}");
    }
    assert_eq!(fit.x.shape(), (n, b.ncols()));
    let kappa = if rank == 0 { 1.0 } else { norm / s_ref[rank - 1] };
    for j in 0..b.ncols() {
        let residual = (a * fit.x.col(j) - b.col(j)).norm_l2();
        let bound = tol(m, n, 1.0)
            * (kappa * x_ref.col(j).norm_l2() + kappa * kappa * residual / norm.max(f64::MIN_POSITIVE))
            + tol(m, n, b.col(j).norm_l2() / norm.max(f64::MIN_POSITIVE));
        let err = (fit.x.col(j) - x_ref.col(j)).norm_l2();
        assert!(err <= bound, "{m}x{n} rank {rank} column {j}: ||x - x_ref|| = {err} > {bound} (kappa {kappa:.1e})");
    }
    if rank == n && m > n {
        assert_eq!(fit.residuals.len(), b.ncols());
        for (j, r) in fit.residuals.iter().enumerate() {
            let exact = (a * x_ref.col(j) - b.col(j)).squared_norm_l2();
            let scale = b.col(j).norm_l2() + norm * x_ref.col(j).norm_l2();
            assert!((r - exact).abs() <= tol(m, n, scale * scale), "{m}x{n} residual {j}: {r} vs {exact}");
        }
    } else {
        assert!(fit.residuals.is_empty(), "numpy gives no residuals when rank < n or m <= n");
    }
}

fn solve(
    a: &Mat<f64>,
    b: &Mat<f64>,
    cr: (usize, usize),
    options: &LstsqOptions,
    scheduler: Scheduler,
) -> outcore::LstsqResult {
    solve_with(a, b, None, cr, options, scheduler)
}

/// [`solve`], weighted by `w` (one per row, chunked as B is) when given.
fn solve_with(
    a: &Mat<f64>,
    b: &Mat<f64>,
    w: Option<&[f64]>,
    cr: (usize, usize),
    options: &LstsqOptions,
    scheduler: Scheduler,
) -> outcore::LstsqResult {
    let ((m, n), p) = (a.shape(), b.ncols());
    let engine = engine(256 << 20, scheduler);
    let (a, b) = (matrix(&row_major(a), m, n, cr.0, n), matrix(&row_major(b), m, p, cr.1, p));
    match w {
        Some(w) => LstsqPlan::weighted(&engine, &a, &b, matrix(w, m, 1, cr.1, 1), options).unwrap().run(&engine),
        None => outcore::lstsq(&engine, &a, &b, options),
    }
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn lstsq_matches_the_minimum_norm_solution(
        (m, n) in prop_oneof![(0usize..300, 1usize..10).prop_map(|(d, n)| (n + d, n)), (1usize..10).prop_map(|n| (n, n)), (1usize..8, 1usize..12).prop_map(|(m, d)| (m, m + d))],
        p in 1usize..4,
        chunks in (1usize..40, 1usize..40),
        fan_in in 2usize..5,
        seed in any::<u64>(),
        dependent in any::<bool>(),
    ) {
        let mut a = normal(m, n, seed);
        if dependent && n >= 2 {
            for i in 0..m {
                a[(i, n - 1)] = 2.0 * a[(i, 0)];
            }
        }
        let b = normal(m, p, seed ^ 1);
        let options = LstsqOptions::new().fan_in(fan_in);
        let cr = (chunks.0.min(m), chunks.1.min(m));
        let serial = solve(&a, &b, cr, &options, Scheduler::Serial);
        check(&a, &b, &serial, f64::EPSILON * m.max(n) as f64);
        let threads = solve(&a, &b, cr, &options, Scheduler::Threads { workers: 3 });
        prop_assert_eq!(bits(&serial.x), bits(&threads.x));
        prop_assert_eq!(&serial.s, &threads.s);
    }
}

/// The dense reference of a regression by its textbook formulas, on `[1 | A]` with an intercept
/// (statsmodels' `add_constant`), rows weighted by `w` (statsmodels' `WLS`): coefficients from
/// the normal equations `(X^T W X + alpha D) beta = X^T W B` (D the identity without the
/// intercept's entry), and with `alpha = 0` the standard errors
/// `sqrt(sigma^2 diag((X^T W X)^-1))`, `sigma^2` the weighted rss over the residual degrees of
/// freedom. Returns (X, intercepts, standard errors of X, of the intercepts, rss, the slopes'
/// block of `(X^T W X)^-1`).
#[allow(clippy::type_complexity)]
fn regression_reference(
    a: &Mat<f64>,
    b: &Mat<f64>,
    w: &[f64],
    intercept: bool,
    alpha: f64,
) -> (Mat<f64>, Vec<f64>, Mat<f64>, Vec<f64>, Vec<f64>, Mat<f64>) {
    let (m, n) = a.shape();
    let c = usize::from(intercept);
    let x = Mat::from_fn(m, n + c, |i, j| if j < c { 1.0 } else { a[(i, j - c)] });
    let wx = Mat::from_fn(m, n + c, |i, j| w[i] * x[(i, j)]);
    let mut gram = wx.transpose() * &x;
    for j in c..n + c {
        gram[(j, j)] += alpha;
    }
    let inverse = gram.as_ref().partial_piv_lu().inverse();
    let beta = &inverse * wx.transpose() * b;
    let residual = &x * &beta - b;
    let rss: Vec<f64> =
        (0..b.ncols()).map(|j| residual.col(j).iter().zip(w).map(|(r, w)| w * r * r).sum::<f64>()).collect();
    let df = (m - n - c) as f64;
    let se = Mat::from_fn(n + c, b.ncols(), |i, j| (rss[j] / df * inverse[(i, i)]).sqrt());
    let coef = Mat::from_fn(n, b.ncols(), |i, j| beta[(i + c, j)]);
    let intercepts = (0..b.ncols()).map(|j| if intercept { beta[(0, j)] } else { 0.0 }).collect();
    let se_x = Mat::from_fn(n, b.ncols(), |i, j| se[(i + c, j)]);
    let se_c = (0..b.ncols()).map(|j| se[(0, j)]).collect();
    let slopes = inverse.as_ref().submatrix(c, c, n, n).to_owned();
    (coef, intercepts, se_x, se_c, rss, slopes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn regressions_match_the_textbook_formulas(
        (m, n) in (1usize..6, 3usize..300).prop_map(|(n, d)| (n + d, n)),
        p in 1usize..3,
        chunk in 1usize..50,
        seed in any::<u64>(),
        intercept in any::<bool>(),
        alpha in prop_oneof![Just(0.0), Just(0.5), Just(20.0)],
        weighted in any::<bool>(),
    ) {
        // Columns far from zero: an intercept must center them exactly.
        let a = Mat::from_fn(m, n, |i, j| 100.0 * (j as f64 + 1.0) + normal(m, n, seed)[(i, j)]);
        let truth = Mat::from_fn(n, p, |i, j| 1.0 + i as f64 - 0.5 * j as f64);
        let b = &a * &truth + normal(m, p, seed ^ 7) + Mat::from_fn(m, p, |_, j| 3.0 * j as f64);
        let options = LstsqOptions::new().fit_intercept(intercept).alpha(alpha);
        let cr = (chunk.min(m), chunk.min(m));
        // Weights from 0 (a row left out, where enough rows remain) to 3.75, uneven across panels.
        let weight = |i: usize| match (i as u64 ^ seed) % 11 == 5 && m > 3 * (n + 1) {
            true => 0.0,
            false => 0.25 + 0.5 * ((i as u64 ^ seed) % 8) as f64,
        };
        let w: Vec<f64> = match weighted {
            true => (0..m).map(weight).collect(),
            false => vec![1.0; m],
        };
        let fit = solve_with(&a, &b, weighted.then_some(&w[..]), cr, &options, Scheduler::Serial);
        let (x, c, se_x, se_c, rss, cov) = regression_reference(&a, &b, &w, intercept, alpha);
        // The normal equations square the condition: compare at eps * cond(X)^2 scale.
        let cond = {
            let k = usize::from(intercept);
            let xs = Mat::from_fn(m, n + k, |i, j| w[i].sqrt() * if j < k { 1.0 } else { a[(i, j - k)] });
            let s = xs.singular_values().unwrap();
            s[0] / s[s.len() - 1]
        };
        let scale = tol(m, n, 1.0) * cond * cond;
        for (j, (&got, &want)) in fit.rss.iter().zip(&rss).enumerate() {
            let err = (fit.x.col(j) - x.col(j)).norm_l2();
            prop_assert!(err <= scale * (1.0 + x.col(j).norm_l2()), "x column {}: {} (cond {:.1e})", j, err, cond);
            prop_assert!((got - want).abs() <= scale * b.col(j).squared_norm_l2(), "rss {}: {} vs {}", j, got, want);
            let mean = if intercept { b.col(j).iter().zip(&w).map(|(v, w)| w * v).sum::<f64>() / w.iter().sum::<f64>() } else { 0.0 };
            let tss = b.col(j).iter().zip(&w).map(|(v, w)| w * (v - mean).powi(2)).sum::<f64>();
            prop_assert!((fit.r2[j] - (1.0 - want / tss)).abs() <= scale * b.col(j).squared_norm_l2() / tss, "r2 {}", j);
        }
        prop_assert_eq!(fit.intercept.is_some(), intercept);
        if let Some(fitted) = &fit.intercept {
            for j in 0..p {
                prop_assert!((fitted[j] - c[j]).abs() <= scale * (1.0 + a.norm_l2() * x.col(j).norm_l2()), "intercept {}: {} vs {}", j, fitted[j], c[j]);
            }
        }
        prop_assert_eq!(fit.stderr.is_some(), alpha == 0.0);
        prop_assert_eq!(fit.intercept_stderr.is_some(), alpha == 0.0 && intercept);
        if let Some(se) = &fit.stderr {
            prop_assert!((se - &se_x).norm_l2() <= scale * se_x.norm_l2(), "stderr {:?} vs {:?}", se, se_x);
        }
        prop_assert_eq!(fit.cov_unscaled.is_some(), alpha == 0.0);
        if let (Some(unscaled), Some(sigma2)) = (&fit.cov_unscaled, &fit.scale) {
            prop_assert!((unscaled - &cov).norm_l2() <= scale * cov.norm_l2(), "(A^T A)^-1 {:?} vs {:?}", unscaled, cov);
            let df = (m - n - usize::from(intercept)) as f64;
            for j in 0..p {
                prop_assert!((sigma2[j] - rss[j] / df).abs() <= scale * rss[j] / df, "scale {}", j);
            }
        }
        if let Some(se) = &fit.intercept_stderr {
            for j in 0..p {
                prop_assert!((se[j] - se_c[j]).abs() <= scale * se_c[j], "intercept stderr {}: {} vs {}", j, se[j], se_c[j]);
            }
        }
        prop_assert_eq!(fit.df_resid, (m - n - usize::from(intercept)) as f64);
        prop_assert!(fit.residuals.is_empty() == (intercept || alpha > 0.0));
    }
}

#[test]
fn a_consistent_ill_conditioned_system_is_solved_to_its_condition() {
    // Columns 2 and 3 nearly equal: cond(A) near 1 / gap; B = A X exactly, so the residual term
    // vanishes and the error is eps kappa ||X||. At 1e15 the smallest singular value falls
    // under numpy's default rcond (eps max(m, n)): rank 4, numpy's minimum-norm answer.
    for (gap, rank) in [(1e-9, 5), (1e-15, 4)] {
        let mut a = normal(2_003, 5, 7);
        for i in 0..a.nrows() {
            a[(i, 3)] = a[(i, 2)] + gap * a[(i, 3)];
        }
        let x = Mat::from_fn(5, 2, |i, j| 1.0 + i as f64 - j as f64);
        let b = &a * &x;
        for chunks in [(100, 64), (2_003, 2_003)] {
            let fit = solve(&a, &b, chunks, &LstsqOptions::new(), Scheduler::Serial);
            assert_eq!(fit.rank, rank, "gap {gap:e}");
            check(&a, &b, &fit, f64::EPSILON * 2_003.0);
        }
    }
}

#[test]
fn rcond_decides_the_rank_as_numpy_does() {
    // Singular values 1, 1e-3, 1e-6, 1e-9 (orthonormal columns scaled).
    let q = normal(400, 4, 3).qr().compute_thin_Q();
    let a = Mat::from_fn(400, 4, |i, j| q[(i, j)] * 10f64.powi(-3 * j as i32));
    let b = normal(400, 1, 4);
    for (rcond, rank) in [(1e-10, 4), (1e-7, 3), (1e-4, 2), (1e-1, 1)] {
        let fit = solve(&a, &b, (64, 64), &LstsqOptions::new().rcond(rcond), Scheduler::Serial);
        assert_eq!(fit.rank, rank, "rcond {rcond}");
        check(&a, &b, &fit, rcond);
    }
    // As LAPACK's gelsd (numpy's lstsq): outside (0, 1), machine epsilon.
    for rcond in [0.0, -1.0, 1.0, 2.0] {
        let fit = solve(&a, &b, (64, 64), &LstsqOptions::new().rcond(rcond), Scheduler::Serial);
        assert_eq!(fit.rank, 4, "rcond {rcond}");
    }
}

#[test]
fn b_may_be_chunked_unlike_a_or_held_in_ram() {
    let (a, b) = (normal(1_111, 6, 1), normal(1_111, 3, 2));
    let engine = engine(64 << 20, Scheduler::Threads { workers: 2 });
    let chunked = matrix(&row_major(&a), 1_111, 6, 100, 6);
    // The fan-in is fixed: by default it follows the memory a panel's reads take, which
    // depends on B's chunks.
    let options = LstsqOptions::new().fan_in(4);
    let by_chunks = outcore::lstsq(&engine, &chunked, matrix(&row_major(&b), 1_111, 3, 77, 1), &options).unwrap();
    let from_ram = outcore::lstsq(&engine, &chunked, &b, &options).unwrap();
    check(&a, &b, &by_chunks, f64::EPSILON * 1_111.0);
    assert_eq!(bits(&by_chunks.x), bits(&from_ram.x), "the same panels of B, however B is chunked");
    let both_in_ram = outcore::lstsq(&engine, &a, &b, &LstsqOptions::new()).unwrap();
    check(&a, &b, &both_in_ram, f64::EPSILON * 1_111.0);
}

#[test]
fn bad_input_is_refused_with_what_to_change() {
    let engine = engine(64 << 20, Scheduler::Serial);
    let a = matrix(&row_major(&normal(100, 3, 1)), 100, 3, 30, 3);
    let short = matrix(&row_major(&normal(99, 1, 2)), 99, 1, 30, 1);
    let e = outcore::lstsq(&engine, &a, &short, &LstsqOptions::new()).unwrap_err();
    assert!(e.to_string().contains("`b`") && e.to_string().contains("99 rows"), "{e}");
    let none = Mat::<f64>::zeros(100, 0);
    let e = outcore::lstsq(&engine, &a, &none, &LstsqOptions::new()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let e = LstsqPlan::new(&engine, &a, &a, &LstsqOptions::new().alpha(bad)).unwrap_err();
        assert!(e.to_string().contains("`alpha`"), "{e}");
        if !bad.is_finite() {
            let e = LstsqPlan::new(&engine, &a, &a, &LstsqOptions::new().rcond(bad)).unwrap_err();
            assert!(e.to_string().contains("`rcond`"), "{e}");
        }
    }
    let one_row = matrix(&[1.0, 2.0], 1, 2, 1, 2);
    let e = outcore::lstsq(&engine, &one_row, matrix(&[1.0], 1, 1, 1, 1), &LstsqOptions::new().fit_intercept(true));
    assert!(e.unwrap_err().to_string().contains("2 rows"));
    let mut nan = row_major(&normal(100, 1, 3));
    nan[42] = f64::NAN;
    let e = outcore::lstsq(&engine, &a, matrix(&nan, 100, 1, 30, 1), &LstsqOptions::new()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { row: 42, col: 0, .. }), "{e}");
}

#[test]
fn weights_count_rows_as_repeating_them_would() {
    // Integer weights: the fit equals the one on the rows repeated; weight 0 leaves a row out.
    let (a, b) = (normal(301, 4, 11), normal(301, 2, 12));
    let w: Vec<f64> = (0..301).map(|i| (i % 4) as f64).collect();
    let repeated: Vec<usize> = (0..301).flat_map(|i| std::iter::repeat_n(i, i % 4)).collect();
    let a_rep = Mat::from_fn(repeated.len(), 4, |r, j| a[(repeated[r], j)]);
    let b_rep = Mat::from_fn(repeated.len(), 2, |r, j| b[(repeated[r], j)]);
    for intercept in [false, true] {
        let options = LstsqOptions::new().fit_intercept(intercept).fan_in(3);
        let weighted = solve_with(&a, &b, Some(&w), (37, 23), &options, Scheduler::Serial);
        let plain = solve(&a_rep, &b_rep, (37, 23), &options, Scheduler::Serial);
        let scale = tol(301, 4, 1.0) * 10.0;
        assert!(
            (&weighted.x - &plain.x).norm_l2() <= scale * plain.x.norm_l2(),
            "{intercept}: {:?} vs {:?}",
            weighted.x,
            plain.x
        );
        for j in 0..2 {
            assert!((weighted.rss[j] - plain.rss[j]).abs() <= scale * plain.rss[j], "rss {j}");
            assert!((weighted.r2[j] - plain.r2[j]).abs() <= scale, "r2 {j}");
        }
        if intercept {
            let (c, c_rep) = (weighted.intercept.as_ref().unwrap(), plain.intercept.as_ref().unwrap());
            assert!(c.iter().zip(c_rep).all(|(x, y)| (x - y).abs() <= scale * (1.0 + y.abs())), "{c:?} vs {c_rep:?}");
        }
        // Rows, not weights, are the observations statsmodels' WLS counts.
        assert_eq!(weighted.df_resid, (301 - 4 - usize::from(intercept)) as f64);
        let threads = solve_with(&a, &b, Some(&w), (37, 23), &options, Scheduler::Threads { workers: 3 });
        assert_eq!(bits(&weighted.x), bits(&threads.x), "serial and threads, weighted");
    }
}

#[test]
fn bad_weights_are_refused_naming_the_row() {
    let engine = engine(64 << 20, Scheduler::Serial);
    let (a, b) =
        (matrix(&row_major(&normal(100, 3, 1)), 100, 3, 30, 3), matrix(&row_major(&normal(100, 1, 2)), 100, 1, 30, 1));
    let solve = |w: &[f64], rows: usize, options: &LstsqOptions| {
        let w = matrix(w, rows, w.len() / rows, 30, w.len() / rows);
        LstsqPlan::weighted(&engine, &a, &b, &w, options).and_then(|p| p.run(&engine))
    };
    let e = solve(&[1.0; 99], 99, &LstsqOptions::new()).unwrap_err();
    assert!(e.to_string().contains("`weights`") && e.to_string().contains("99 x 1"), "{e}");
    let e = solve(&[1.0; 200], 100, &LstsqOptions::new()).unwrap_err();
    assert!(e.to_string().contains("100 x 2"), "{e}");
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let mut w = vec![1.0; 100];
        w[57] = bad;
        // Checked whatever check_finite says: a weight is not data to skip a scan of.
        let e = solve(&w, 100, &LstsqOptions::new().check_finite(false)).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("row 57"), "{e}");
    }
    let e = solve(&[0.0; 100], 100, &LstsqOptions::new().fit_intercept(true)).unwrap_err();
    assert!(e.to_string().contains("sum to 0"), "{e}");
    // Without an intercept, all-zero weights leave a zero problem: numpy's answer, x = 0.
    let fit = solve(&[0.0; 100], 100, &LstsqOptions::new()).unwrap();
    assert_eq!((fit.rank, fit.x.norm_l2()), (0, 0.0));
}
