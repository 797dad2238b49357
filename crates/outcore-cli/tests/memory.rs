//! Peak RSS of `large-svd` runs, each in a child process measured from outside (`wait4`). This
//! test binary does nothing else, so its own small high-water mark (which Linux folds into a
//! child's at exec) stays below the children's.
//!
//! Randomized: 20 runs with random shapes, chunkings, commands and memory limits.
//! Peak RSS never exceeds the limit plus [`FIXED_OVERHEAD`]; a run may instead stop with a typed
//! memory error (limit too small for the plan, or a threshold), never with a crash.

use outcore_testkit as common;

/// What outcore's memory accounting does not cover: code and data of the binary (larger for
/// the unoptimized test build) and allocator state. Documented in docs/decisions.md.
const FIXED_OVERHEAD: u64 = 16 << 20;

/// A small deterministic generator, so a failing case can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

#[test]
fn peak_rss_stays_under_the_limit_plus_a_fixed_overhead() {
    let mut rng = Lcg(20261122);
    let dir = tempfile::tempdir().unwrap();
    let mut completed = 0;
    for case in 0..20 {
        let limit_mib = rng.range(24, 96);
        let out = dir.path().join(format!("out{case}"));
        let args: Vec<String> = if rng.below(3) < 2 {
            let (rows, cols) = (rng.range(20_000, 200_000), rng.range(5, 100));
            let chunk = rng.range(500, 20_000).min(rows);
            let mut a = vec![
                "tsqr".into(),
                "--rows".into(),
                rows.to_string(),
                "--cols".into(),
                cols.to_string(),
                "--chunk-rows".into(),
                chunk.to_string(),
            ];
            if rng.below(2) == 0 {
                a.push("--values-only".into());
            } else {
                a.extend(["--output".into(), out.to_string_lossy().into_owned()]);
            }
            a
        } else {
            let (rows, cols) = (rng.range(1_000, 4_000), rng.range(1_000, 4_000));
            let chunk = rng.range(300, 1_500);
            vec![
                "rsvd".into(),
                "--rows".into(),
                rows.to_string(),
                "--cols".into(),
                cols.to_string(),
                "--chunk".into(),
                chunk.to_string(),
                "--power-iters".into(),
                rng.range(0, 2).to_string(),
            ]
        };
        let mut args = args;
        args.extend([
            "--memory-limit".into(),
            format!("{limit_mib}MiB"),
            "--workers".into(),
            rng.range(1, 3).to_string(),
            "--json".into(),
        ]);
        let m = common::child::run_measured(env!("CARGO_BIN_EXE_large-svd"), &args);
        let stderr = String::from_utf8_lossy(&m.stderr);
        let peak = m.own_peak_rss();
        eprintln!("case {case}: {args:?}: exit {:?}, peak RSS {} MiB", m.code, peak >> 20);
        assert!(!stderr.contains("panicked"), "case {case} {args:?}: {stderr}");
        assert!(
            peak <= (limit_mib << 20) + FIXED_OVERHEAD,
            "case {case} {args:?}: peak RSS {} MiB over the {limit_mib} MiB limit + {} MiB",
            peak >> 20,
            FIXED_OVERHEAD >> 20
        );
        match m.code {
            Some(0) => completed += 1,
            Some(1) => assert!(
                ["is too small", "terminate threshold", "pause threshold"].iter().any(|w| stderr.contains(w)),
                "case {case} {args:?} failed without a memory reason: {stderr}"
            ),
            other => panic!("case {case} {args:?}: exit {other:?}: {stderr}"),
        }
    }
    assert!(completed >= 10, "only {completed} of 20 runs completed: the limits tested are too small to say much");
}

/// Peak RSS of a child process measured from outside, by `wait4`, and its JSON output.
fn child_peak_rss(args: &[&str]) -> (u64, serde_json::Value) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let m = common::child::run_measured(env!("CARGO_BIN_EXE_large-svd"), &args);
    assert_eq!(m.code, Some(0), "{}", String::from_utf8_lossy(&m.stderr));
    (m.own_peak_rss(), serde_json::from_slice(&m.stdout).unwrap_or(serde_json::Value::Null))
}

#[test]
fn peak_rss_stays_far_below_a_matrix_ten_times_the_limit() {
    // 600,000 x 100 doubles = 458 MiB, under a 40 MiB memory limit.
    let (peak, v) = child_peak_rss(&[
        "tsqr",
        "--rows",
        "600000",
        "--cols",
        "100",
        "--memory-limit",
        "40MiB",
        "--values-only",
        "--json",
    ]);
    let matrix = 600_000u64 * 100 * 8;
    assert!(matrix >= 10 * (40 << 20));
    assert!(peak < 40 << 20, "peak RSS {} MiB over the 40 MiB limit", peak >> 20);
    assert!(peak * 10 < matrix, "peak RSS {} MiB is not far below the {} MiB matrix", peak >> 20, matrix >> 20);
    assert_eq!(v["singular_values"].as_array().map(Vec::len), Some(100));
}

#[test]
fn rsvd_peak_rss_stays_below_a_limit_a_tenth_of_the_matrix_size() {
    // 7500 x 7500 doubles = 429 MiB, under a 40 MiB memory limit.
    let (n, limit_mib) = (7500u64, 40u64);
    assert!(n * n * 8 >= 10 * (limit_mib << 20), "the matrix must be at least 10x the limit");
    let (n, limit) = (n.to_string(), format!("{limit_mib}MiB"));
    let args = [
        "rsvd",
        "--rows",
        &n,
        "--cols",
        &n,
        "--chunk",
        "1500",
        "--power-iters",
        "0",
        "--memory-limit",
        &limit,
        "--json",
    ];
    let (peak, v) = child_peak_rss(&args);
    assert!(peak < limit_mib << 20, "peak RSS {} MiB over the {limit_mib} MiB limit", peak >> 20);
    assert_eq!(v["singular_values"].as_array().map(Vec::len), Some(5));
}

/// A zstd-compressed store (zarr-python's default codec) with 10,000-row chunks, each read and
/// decoded whole: TSQR runs under a limit that counts that read once (it was counted twice, and a
/// 72 MiB limit was refused as needing 96 MiB) and stays under it.
#[test]
fn a_compressed_store_runs_under_a_small_limit_and_stays_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.zarr");
    let p = path.to_str().unwrap();
    let generate = ["generate", "--rows", "300000", "--cols", "100", "--chunk-rows", "10000", "--compression", "zstd"];
    child_peak_rss(&[&generate[..], &["--json", "--output", p]].concat());
    let limit_mib = 72u64;
    let limit = format!("{limit_mib}MiB");
    let (peak, v) = child_peak_rss(&["tsqr", "--input", p, "--memory-limit", &limit, "--values-only", "--json"]);
    assert!(peak < limit_mib << 20, "peak RSS {} MiB over the {limit_mib} MiB limit", peak >> 20);
    assert_eq!(v["singular_values"].as_array().map(Vec::len), Some(100));
}
