//! FactorState against the one-pass fit: any split of the rows into batches, merged in any
//! order, gives the one-pass SVD (centered and not) to rounding; replaying a split gives the
//! same bits; a saved state reads back whole, and a damaged one is refused.

use outcore_testkit as common;

use common::*;
use faer::Mat;
use outcore::{Error, FactorState, Scheduler, SvdOptions, SvdResult};
use proptest::prelude::*;

/// Columns far from zero (offsets up to 1e4), at different scales.
fn offset(m: usize, n: usize, seed: u64) -> Mat<f64> {
    let g = gaussian(m, n, seed);
    Mat::from_fn(m, n, |i, j| 1e4 * ((j * 7 % 5) as f64 - 2.0) + (1.0 + j as f64) * g[(i, j)])
}

/// Row boundaries of batches of the sizes `cuts` gives (each at least 1 row), covering `m`.
fn batches(m: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts.iter().cycle() {
        if start == m {
            break;
        }
        let h = (*c).clamp(1, m - start);
        out.push((start, h));
        start += h;
    }
    out
}

/// The state of each batch, read as a chunked matrix of `chunk` rows (or borrowed from RAM).
fn states(a: &Mat<f64>, parts: &[(usize, usize)], chunk: usize) -> Vec<FactorState> {
    let engine = engine(64 << 20, Scheduler::Threads { workers: 2 });
    let n = a.ncols();
    parts
        .iter()
        .enumerate()
        .map(|(i, &(r0, h))| {
            let mut s = FactorState::new(n);
            let rows = a.as_ref().subrows(r0, h).to_owned();
            if i % 2 == 0 {
                s.update(&engine, rows.as_ref()).unwrap();
            } else {
                s.update(&engine, matrix(&row_major(&rows), h, n, chunk, n.max(1))).unwrap();
            }
            s
        })
        .collect()
}

/// Checks the state's SVD against the one-pass TSQR of all the rows: values, V up to sign (for
/// values apart), means, variances and the total variance.
fn check(state: &FactorState, a: &Mat<f64>, center: bool) {
    let (m, n) = a.shape();
    let engine = engine(64 << 20, Scheduler::Serial);
    let once: SvdResult = outcore::svd(&engine, a, &SvdOptions::new().center(center)).unwrap();
    let got = state.svd(center).unwrap();
    let norm = a.norm_l2();
    assert_eq!(state.rows(), m as u64);
    // Either may have values the other lacks (a state stacks a row per batch): zeros.
    let longer = if got.s.len() > once.s.len() { &got.s[once.s.len()..] } else { &once.s[got.s.len()..] };
    assert!(longer.iter().all(|x| x.abs() <= tol(m, n, norm)), "{longer:?}");
    for (i, (x, y)) in got.s.iter().zip(&once.s).enumerate() {
        assert!((x - y).abs() <= tol(m, n, norm), "sigma_{i}: {x} vs {y} (center {center})");
    }
    let (v, w) = (got.v_matrix().unwrap(), once.v_matrix().unwrap());
    let s = &once.s;
    for j in 0..got.s.len().min(s.len()) {
        // Past min(m, n) values, V's complement belongs to the value 0.
        let others = (0..s.len()).filter(|&i| i != j).map(|i| s[i]).chain((s.len() < n).then_some(0.0));
        let gap = others.map(|x| (x - s[j]).abs()).fold(f64::INFINITY, f64::min);
        // A vector is defined (up to sign) where its value is apart from the others, and from
        // zero: a null space of more than one dimension has no preferred basis.
        if gap < 1e-3 * s[0] || s[j] < 1e-8 * s[0] {
            continue;
        }
        let dot: f64 = (0..n).map(|i| v[(i, j)] * w[(i, j)]).sum();
        let diff = (0..n).map(|i| (v[(i, j)] - dot.signum() * w[(i, j)]).powi(2)).sum::<f64>().sqrt();
        assert!(diff <= tol(m, n, norm) / gap * 10.0, "v_{j} off by {diff} (gap {gap})");
    }
    let columns = got.columns.as_ref().unwrap();
    for j in 0..n {
        let mean = (0..m).map(|i| a[(i, j)]).sum::<f64>() / m as f64;
        let var = (0..m).map(|i| (a[(i, j)] - mean).powi(2)).sum::<f64>() / m as f64;
        let scale = mean.abs().max(var.sqrt());
        assert!((columns.mean[j] - mean).abs() <= tol(m, 1, scale), "mean {j}");
        assert!((columns.variance[j] - var).abs() <= tol(m, 1, scale * var.sqrt() + var), "variance {j}");
    }
    if center {
        let (c, o) = (got.centered.as_ref().unwrap(), once.centered.as_ref().unwrap());
        assert!((c.total_variance - o.total_variance).abs() <= tol(m, n, norm) * norm / (m as f64 - 1.0));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_split_merged_in_any_order_is_the_one_pass_fit(
        m in 2usize..120,
        n in 1usize..14,
        cuts in proptest::collection::vec(1usize..40, 1..6),
        chunk in 1usize..30,
        seed in any::<u64>(),
        tree in any::<bool>(),
    ) {
        let a = offset(m, n, seed);
        let parts = batches(m, &cuts);
        let mut pieces = states(&a, &parts, chunk);
        // Merged in order, one batch after another, or as a tree of pairs from the right.
        let state = if tree {
            while pieces.len() > 1 {
                let last = pieces.pop().unwrap();
                let mut before = pieces.pop().unwrap();
                before.merge(&last).unwrap();
                pieces.insert(0, before);
            }
            pieces.pop().unwrap()
        } else {
            let mut state = FactorState::new(n);
            pieces.iter().for_each(|p| state.merge(p).unwrap());
            state
        };
        check(&state, &a, true);
        check(&state, &a, false);
    }
}

#[test]
fn a_split_replayed_gives_the_same_bits_and_rows_are_never_read_again() {
    let a = offset(1003, 9, 4);
    let parts = batches(1003, &[250, 1, 300, 17]);
    let engine = engine(64 << 20, Scheduler::Threads { workers: 2 });
    let grow = || {
        let mut state = FactorState::new(9);
        for &(r0, h) in &parts {
            state.update(&engine, a.as_ref().subrows(r0, h)).unwrap();
        }
        state
    };
    let (first, second) = (grow(), grow());
    assert_eq!(first, second);
    check(&first, &a, true);
}

#[test]
fn a_saved_state_reads_back_whole_and_a_damaged_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(64 << 20, Scheduler::Serial);
    let a = offset(200, 6, 9);
    let mut state = FactorState::new(6);
    state.update(&engine, &a).unwrap();
    let path = dir.path().join("fit.state");
    state.save(&path).unwrap();
    assert_eq!(FactorState::load(&path).unwrap(), state);
    // Saved again over itself after an update: replaced whole, no partial file left.
    state.update(&engine, a.as_ref().subrows(0, 50)).unwrap();
    state.save(&path).unwrap();
    assert_eq!(FactorState::load(&path).unwrap().rows(), 250);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let bytes = std::fs::read(&path).unwrap();
    let refused = |bytes: &[u8], why: &str| {
        let damaged = dir.path().join("damaged.state");
        std::fs::write(&damaged, bytes).unwrap();
        match FactorState::load(&damaged) {
            Err(Error::StateFile { reason, .. }) => assert!(reason.contains(why), "{reason}"),
            other => panic!("{why}: {other:?}"),
        }
    };
    let mut flipped = bytes.clone();
    flipped[100] ^= 1;
    refused(&flipped, "checksum");
    refused(&bytes[..bytes.len() - 9], "cut short");
    refused(&bytes[..20], "fewer than");
    let mut version = bytes.clone();
    version[8] = 2;
    refused(&version, "version 2");
    refused(b"PAR1 not a state at all, but long enough to have a header", "does not start");
    let mut huge = bytes.clone();
    huge[28..36].copy_from_slice(&u64::MAX.to_le_bytes());
    refused(&huge, "does not match");
    assert!(matches!(FactorState::load(dir.path().join("none")), Err(Error::Storage(_))));
}

#[test]
fn states_of_other_columns_and_empty_states_are_refused_clearly() {
    let engine = engine(64 << 20, Scheduler::Serial);
    let mut state = FactorState::new(3);
    let err = state.svd(true).unwrap_err().to_string();
    assert!(err.contains("seen no rows"), "{err}");
    let err = state.update(&engine, &gaussian(10, 4, 1)).unwrap_err().to_string();
    assert!(err.contains("4 columns and the state 3"), "{err}");
    let err = state.merge(&FactorState::new(5)).unwrap_err().to_string();
    assert!(err.contains("5 columns and this one 3"), "{err}");
    // One row: its own mean, nothing to center yet.
    state.update(&engine, &gaussian(1, 3, 2)).unwrap();
    assert!(state.svd(true).unwrap_err().to_string().contains("at least 2 rows"));
    assert_eq!(state.svd(false).unwrap().s.len(), 1);
    assert_eq!(state.rows(), 1);
}
