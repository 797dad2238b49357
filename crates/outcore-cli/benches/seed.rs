//! The seed lesson's workloads, side by side with dense in-memory faer, in one run: TSQR of
//! 2,000,000 x 100 (values, and U written to Zarr), the randomized SVD of 10000 x 10000 (k = 5,
//! at Dask's default q = 0 and at outcore's default), and the means workload. Every outcore run
//! has the same 128 MiB memory limit.
//!
//! `cargo bench --bench seed [-- FILTER] [--reps N] [--baseline PATH]`
//!
//! Every scenario runs in a child process (the `large-svd` binary, or this bench re-executed
//! as a dense reference), scenarios alternate within each repetition, and the table gives the
//! median wall time and the median peak RSS measured from outside by `wait4`. Ratios compare
//! medians from the same run: absolute times drift on shared machines.
//!
//! `--baseline PATH` runs every `large-svd` scenario with that binary too (another build, e.g.
//! of the previous commit), right beside this build's run, in alternating order, and adds a
//! table of the two medians and their ratios: a change's cost, within one run's noise.

use std::time::Instant;

use outcore_testkit::child;

use outcore::{ChunkedMatrix, Distribution};
use serde_json::{Value, json};

const ROWS: usize = 2_000_000;
const COLS: usize = 100;
const CHUNK_ROWS: usize = 10_000;
const DENSE_VALUES: &str = "dense faer TSQR values (in RAM)";
const DENSE_U: &str = "dense faer TSQR U (in RAM)";
const WRITE: &str = "write 2,000,000 x 100 to Zarr (generate)";
const DENSE_RSVD_0: &str = "dense faer rsvd q=0 (in RAM)";
const DENSE_RSVD_4: &str = "dense faer rsvd subspace q=4 (in RAM)";

struct Scenario {
    name: &'static str,
    args: Vec<String>,
    /// Floating-point operations, for GFLOP/s.
    flops: f64,
    /// Uses a temporary output directory (passed as --output).
    output: bool,
    /// The dense in-RAM scenario this one is compared with.
    reference: Option<&'static str>,
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
    let reps = child::reps(&args, 3);
    let baseline = child::flag_value(&args, "--baseline");
    let filter: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err() && Some(*a) != baseline.as_ref())
        .collect();
    let (m, n) = (ROWS as f64, COLS as f64);
    let qr_flops = 2.0 * m * n * n - 2.0 * n * n * n / 3.0;
    // Every outcore run: the same memory limit, a JSON report.
    let outcore = |name, command: &str, extra: &[&str], flops, output, reference| Scenario {
        name,
        args: [command, "--memory-limit", "128MiB", "--json"].iter().chain(extra).map(|s| s.to_string()).collect(),
        flops,
        output,
        reference,
    };
    let shape = [ROWS, COLS, CHUNK_ROWS].map(|v| v.to_string());
    let seed = ["--rows", &shape[0], "--cols", &shape[1], "--chunk-rows", &shape[2]];
    let tsqr = |name, extra: &[&str], flops, output: bool| {
        let reference = Some(if output { DENSE_U } else { DENSE_VALUES });
        outcore(name, "tsqr", &[&seed[..], extra].concat(), flops, output, reference)
    };
    // No GFLOP/s for the randomized SVD: block Krylov's products grow in width per pass.
    let rsvd = |name, extra: &[&str], reference| outcore(name, "rsvd", extra, 0.0, false, Some(reference));
    let dense = |name: &'static str, mode: &str, flops: f64| Scenario {
        name,
        args: vec!["--child".into(), mode.into()],
        flops,
        output: false,
        reference: None,
    };
    let scenarios = vec![
        tsqr("tsqr values, threads 2", &["--values-only", "--workers", "2"], qr_flops, false),
        tsqr("tsqr values, serial", &["--values-only", "--scheduler", "serial"], qr_flops, false),
        dense(DENSE_VALUES, "dense-values", qr_flops),
        // outcore's U: the QR, then U_panel = A_panel (R^-1 W), 2 m n^2; dense: the QR, forming
        // the thin Q (about the QR's flops again), then Q U_R, 2 m n^2.
        tsqr("tsqr U to Zarr, threads 2", &["--workers", "2"], 2.0 * qr_flops, true),
        tsqr("tsqr U to Zarr, serial", &["--scheduler", "serial"], 2.0 * qr_flops, true),
        dense(DENSE_U, "dense-vectors", 3.0 * qr_flops),
        outcore(WRITE, "generate", &seed, 0.0, true, None),
        rsvd("rsvd 10000^2 q=0, threads 2", &["--power-iters", "0", "--workers", "2"], DENSE_RSVD_0),
        dense(DENSE_RSVD_0, "dense-rsvd-0", 0.0),
        rsvd("rsvd 10000^2 Krylov q=4, threads 2", &["--workers", "2"], DENSE_RSVD_4),
        dense(DENSE_RSVD_4, "dense-rsvd-4", 0.0),
        outcore("means, serial and mt_1/2/4 (medians below)", "means", &[], 0.0, false, None),
    ];
    let scenarios: Vec<Scenario> = scenarios
        .into_iter()
        .filter(|s| filter.is_empty() || filter.iter().any(|f| s.name.contains(f.as_str())))
        .collect();
    let exe = std::env::current_exe().expect("bench executable");
    let large_svd = env!("CARGO_BIN_EXE_large-svd");
    let mut samples: Vec<Vec<Sample>> = scenarios.iter().map(|_| Vec::new()).collect();
    let mut baseline_samples: Vec<Vec<Sample>> = scenarios.iter().map(|_| Vec::new()).collect();
    eprintln!("machine: {}", machine());
    for rep in 0..reps {
        for (i, s) in scenarios.iter().enumerate() {
            let dense = s.args[0] == "--child";
            let mut programs = vec![(if dense { exe.to_str().unwrap_or_default() } else { large_svd }, false)];
            if let Some(path) = baseline.as_deref().filter(|_| !dense) {
                // Alternate which goes first, so neither always meets a warm or a cold cache.
                programs.insert(rep % 2, (path, true));
            }
            for (program, is_baseline) in programs {
                let dir = tempfile::tempdir().expect("temporary directory");
                let mut args = s.args.clone();
                if s.output {
                    args.extend(["--output".into(), dir.path().join("out").to_string_lossy().into_owned()]);
                }
                let sample = run(program, &args);
                let name = if is_baseline { format!("{} (baseline)", s.name) } else { s.name.to_string() };
                eprintln!("rep {rep} {name:32} {:7.2} s  {:7.1} MiB", sample.wall, sample.peak_rss as f64 / 1048576.0);
                if is_baseline { &mut baseline_samples[i] } else { &mut samples[i] }.push(sample);
            }
        }
    }
    println!(
        "\n| workload (TSQR 2,000,000 x 100 chunks 10000; rsvd 10000^2 chunks 2000, k 5) | median wall s | GFLOP/s | median peak RSS MiB | time vs dense | RSS vs dense |"
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
        let base = s.reference.and_then(|reference| rows.iter().find(|r| r.0.name == reference));
        let (tr, rr) = base.map_or((String::from("-"), String::from("-")), |b| {
            (format!("{:.2}x", wall / b.1), format!("{:.3}x", rss / b.2))
        });
        println!(
            "| {} | {:.2} | {} | {:.1} | {} | {} |",
            s.name,
            wall,
            if s.flops > 0.0 { format!("{:.1}", s.flops / wall / 1e9) } else { String::from("-") },
            rss / 1048576.0,
            tr,
            rr
        );
    }
    if let Some(path) = &baseline {
        println!(
            "\n| workload | this build median s | baseline median s | time ratio | this build peak RSS MiB | baseline MiB | RSS ratio |"
        );
        println!("|---|---|---|---|---|---|---|");
        for ((s, wall, rss, _), base) in rows.iter().zip(&baseline_samples).filter(|(_, b)| !b.is_empty()) {
            let base_wall = median(&mut base.iter().map(|r| r.wall).collect());
            let base_rss = median(&mut base.iter().map(|r| r.peak_rss as f64).collect());
            println!(
                "| {} | {wall:.2} | {base_wall:.2} | {:.3}x | {:.1} | {:.1} | {:.3}x |",
                s.name,
                wall / base_wall,
                rss / 1048576.0,
                base_rss / 1048576.0,
                rss / base_rss
            );
        }
        println!("baseline: {path}");
    }
    let wall_of = |name: &str| rows.iter().find(|r| r.0.name == name).map(|r| r.1);
    if let (Some(values), Some(u), Some(write)) =
        (wall_of("tsqr values, threads 2"), wall_of("tsqr U to Zarr, threads 2"), wall_of(WRITE))
    {
        println!(
            "\nU to Zarr takes {:.2}x (values + writing a matrix of U's size: {values:.2} + {write:.2} s); target <= 2x",
            u / (values + write)
        );
    }
    for (s, _, _, json) in &rows {
        if let Some(sv) = json.get("singular_values").and_then(Value::as_array) {
            let head: Vec<String> =
                sv.iter().take(3).map(|v| format!("{:.6}", v.as_f64().unwrap_or(f64::NAN))).collect();
            println!("{}: s[..3] = {}", s.name, head.join(", "));
        }
        if let Some(phases) = json.get("phases") {
            println!("{}: {}", s.name, phases);
        }
        if let Some(results) = json.get("results") {
            for r in results.as_array().into_iter().flatten() {
                println!(
                    "means {}: median {:.1} ms",
                    r["scheduler"].as_str().unwrap_or("?"),
                    r["median_seconds"].as_f64().unwrap_or(0.0) * 1e3
                );
            }
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

/// Dense in-memory references: the whole matrix in a faer `Mat`; for TSQR faer's parallel QR,
/// then the SVD of R (and U = Q U_R for vectors); for the randomized SVD the same algorithm
/// with the matrix in RAM (faer's parallel products and QR), as Dask runs it.
fn child(args: &[String]) {
    let mode = args.first().map(String::as_str).unwrap_or("dense-values");
    if let Some(q) = mode.strip_prefix("dense-rsvd-") {
        dense_rsvd(q.parse().unwrap_or(0));
        return;
    }
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

fn dense_rsvd(q: usize) {
    let start = Instant::now();
    let a = ChunkedMatrix::generated(Distribution::Uniform, 0, 10_000, 10_000, 2000, 2000)
        .expect("matrix")
        .to_dense()
        .expect("dense");
    let omega = ChunkedMatrix::generated(Distribution::Normal, 1, 10_000, 15, 10_000, 15)
        .expect("sketch")
        .to_dense()
        .expect("dense");
    let generated = start.elapsed().as_secs_f64();
    faer::set_global_parallelism(faer::Par::rayon(2));
    let t = Instant::now();
    let orth = |m: &faer::Mat<f64>| m.qr().compute_thin_Q();
    let mut q_basis = orth(&(&a * &omega));
    for _ in 0..q {
        let z = orth(&(a.transpose() * &q_basis));
        q_basis = orth(&(&a * &z));
    }
    let b = q_basis.transpose() * &a;
    let s = b.singular_values().expect("svd of B");
    println!(
        "{}",
        json!({ "singular_values": &s[..5], "phases": { "generate_s": generated, "factor_s": t.elapsed().as_secs_f64() } })
    );
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
