//! The seed lesson's workloads, side by side with dense in-memory faer, in one run.
//!
//! `cargo bench --bench seed [-- FILTER] [--reps N]`
//!
//! Every scenario runs in a child process (the `large-svd` binary, or this bench re-executed
//! as a dense reference), scenarios alternate within each repetition, and the table gives the
//! median wall time and the median peak RSS measured from outside by `wait4`. Ratios compare
//! medians from the same run: absolute times drift on shared machines.

use std::time::Instant;

#[path = "../tests/common/child.rs"]
mod child;

use outcore::{ChunkedMatrix, Distribution};
use serde_json::{Value, json};

const ROWS: usize = 2_000_000;
const COLS: usize = 100;
const CHUNK_ROWS: usize = 10_000;

struct Scenario {
    name: &'static str,
    args: Vec<String>,
    /// Floating-point operations, for GFLOP/s.
    flops: f64,
    /// Uses a temporary output directory (passed as --output).
    output: bool,
}

struct Sample {
    wall: f64,
    peak_rss: u64,
    json: Value,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(3usize);
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err()).collect();
    let (m, n) = (ROWS as f64, COLS as f64);
    let qr_flops = 2.0 * m * n * n - 2.0 * n * n * n / 3.0;
    let tsqr = |name: &'static str, extra: &[&str], flops: f64, output: bool| Scenario {
        name,
        args: ["tsqr", "--rows", "2000000", "--cols", "100", "--chunk-rows", "10000", "--json"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect(),
        flops,
        output,
    };
    let dense = |name: &'static str, mode: &str, flops: f64| Scenario {
        name,
        args: vec!["--child".into(), mode.into()],
        flops,
        output: false,
    };
    let scenarios = vec![
        tsqr(
            "tsqr values, threads 2",
            &["--values-only", "--memory-limit", "64MiB", "--workers", "2"],
            qr_flops,
            false,
        ),
        tsqr(
            "tsqr values, serial",
            &["--values-only", "--memory-limit", "64MiB", "--scheduler", "serial"],
            qr_flops,
            false,
        ),
        dense("dense faer values (in RAM)", "dense-values", qr_flops),
        tsqr("tsqr U to Zarr, threads 2", &["--workers", "2"], 3.0 * qr_flops, true),
        tsqr("tsqr U to Zarr, serial", &["--scheduler", "serial"], 3.0 * qr_flops, true),
        dense("dense faer U in RAM", "dense-vectors", 3.0 * qr_flops),
    ];
    let scenarios: Vec<Scenario> = scenarios
        .into_iter()
        .filter(|s| filter.is_empty() || filter.iter().any(|f| s.name.contains(f.as_str())))
        .collect();
    let exe = std::env::current_exe().expect("bench executable");
    let large_svd = env!("CARGO_BIN_EXE_large-svd");
    let mut samples: Vec<Vec<Sample>> = scenarios.iter().map(|_| Vec::new()).collect();
    eprintln!("machine: {}", machine());
    for rep in 0..reps {
        for (i, s) in scenarios.iter().enumerate() {
            let dir = tempfile::tempdir().expect("temporary directory");
            let mut args = s.args.clone();
            if s.output {
                args.extend(["--output".into(), dir.path().join("out").to_string_lossy().into_owned()]);
            }
            let program = if s.args[0] == "--child" { exe.to_str().unwrap_or_default() } else { large_svd };
            let sample = run(program, &args);
            eprintln!("rep {rep} {:32} {:7.2} s  {:7.1} MiB", s.name, sample.wall, sample.peak_rss as f64 / 1048576.0);
            samples[i].push(sample);
        }
    }
    println!(
        "\n| workload (2,000,000 x 100, chunks 10000) | median wall s | GFLOP/s | median peak RSS MiB | time vs dense | RSS vs dense |"
    );
    println!("|---|---|---|---|---|---|");
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut rows = Vec::new();
    for (s, runs) in scenarios.iter().zip(&samples) {
        let wall = median(&mut runs.iter().map(|r| r.wall).collect());
        let rss = median(&mut runs.iter().map(|r| r.peak_rss as f64).collect());
        rows.push((s, wall, rss, runs.last().map(|r| r.json.clone()).unwrap_or(Value::Null)));
    }
    for (s, wall, rss, _) in &rows {
        let reference = if s.name.contains("U") { "dense faer U in RAM" } else { "dense faer values (in RAM)" };
        let base = rows.iter().find(|r| r.0.name == reference);
        let (tr, rr) = base.map_or((String::from("-"), String::from("-")), |b| {
            (format!("{:.2}x", wall / b.1), format!("{:.3}x", rss / b.2))
        });
        println!(
            "| {} | {:.2} | {:.1} | {:.1} | {} | {} |",
            s.name,
            wall,
            s.flops / wall / 1e9,
            rss / 1048576.0,
            tr,
            rr
        );
    }
    for (s, _, _, json) in &rows {
        if let Some(phases) = json.get("phases") {
            println!("{}: {}", s.name, phases);
        }
    }
}

/// Runs a child, timing it from outside and reading its peak RSS with `wait4`.
fn run(program: &str, args: &[String]) -> Sample {
    let m = child::run_measured(program, args);
    if m.code != Some(0) {
        panic!("{program} {args:?} failed: {}", String::from_utf8_lossy(&m.stderr));
    }
    Sample { wall: m.wall, peak_rss: m.own_peak_rss(), json: serde_json::from_slice(&m.stdout).unwrap_or(Value::Null) }
}

/// Dense in-memory reference: the whole matrix in a faer `Mat`, faer's parallel QR, then the
/// SVD of R (and U = Q U_R for vectors).
fn child(args: &[String]) {
    let mode = args.first().map(String::as_str).unwrap_or("dense-values");
    let start = Instant::now();
    let generator =
        ChunkedMatrix::generated(Distribution::Uniform, 0, ROWS, COLS, CHUNK_ROWS, COLS).expect("generator");
    let a = generator.to_dense().expect("generate");
    let generated = start.elapsed().as_secs_f64();
    faer::set_global_parallelism(faer::Par::rayon(2));
    let t = Instant::now();
    let qr = a.qr();
    let r = qr.thin_R().to_owned();
    let mut phases = json!({ "generate_s": generated });
    let s = if mode == "dense-vectors" {
        let svd = r.thin_svd().expect("svd of R");
        let q = qr.compute_thin_Q();
        let u = &q * svd.U();
        std::hint::black_box(&u);
        svd.S().column_vector().iter().copied().collect::<Vec<f64>>()
    } else {
        r.singular_values().expect("singular values of R")
    };
    phases["factor_s"] = json!(t.elapsed().as_secs_f64());
    println!("{}", json!({ "singular_values": &s[..5.min(s.len())], "phases": phases }));
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0) >> 20)
        })
        .unwrap_or(0);
    format!("{cpu}, {cores} cores, {mem} GiB RAM")
}
