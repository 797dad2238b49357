//! MPI ranks against the threads scheduler on this box, side by side, and what that projects
//! for a cluster.
//!
//! `cargo bench -p outcore-cli --features mpi --bench ranks [-- --rows 2000000,8000000] [--reps 5] [--dir DIR]`
//!
//! 1. TSQR values of `rows x 100` from a Zarr store (chunks of 10,000 rows, in the page cache):
//!    threads with 1 and 2 workers, 1 and 2 ranks of 1 worker under `mpirun`, alternating
//!    within each repetition; medians of the in-process time (`wall_seconds`, from the
//!    command's start; MPI's launch is reported apart) and ratios; all four must agree to the bit.
//! 2. The network, measured: ping-pong between 2 ranks over shared memory and over TCP
//!    (this program started again under `mpirun`), fitted to latency alpha + bytes x beta.
//! 3. The compute, measured: one rank's seconds per row, and the QR that merges R factors.
//! 4. The model: those figures projected to 64-1024 ranks for 50M x 100 and 1B x 100, with
//!    outcore's tree (its nodes run where their first child was made) simulated against
//!    Demmel et al.'s binary tree (log2 P messages on the critical path).
//! 5. `large-svd means`: the lesson's scheduler table, processes and distributed included.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use faer::Mat;
use outcore::cluster::Transport;
use serde_json::Value;

use outcore_testkit::child;

const LARGE_SVD: &str = env!("CARGO_BIN_EXE_large-svd");
const COLS: usize = 100;
const CHUNK_ROWS: usize = 10_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Under `mpirun -np 2`: rank 0 times round trips with rank 1 for each message size and prints
/// one JSON object of one-way seconds by bytes.
fn ping_pong() {
    let world = outcore::cluster::MpiWorld::join().expect("join the MPI job");
    let peer = 1 - world.rank();
    let mut rows = Vec::new();
    for bytes in [8usize, 1 << 10, 64 << 10, 8 * COLS * COLS, 1 << 20, 8 << 20] {
        let message = vec![7u8; bytes];
        let reps = if bytes <= 65536 { 2000 } else { 50 };
        let mut times = Vec::new();
        for _ in 0..reps {
            // The transport owns what it sends: rank 0's copy is made before the clock starts.
            let mine = message.clone();
            let start = Instant::now();
            if world.rank() == 0 {
                world.send(peer, mine).expect("send");
                world.receive(peer).expect("receive");
            } else {
                let got = world.receive(peer).expect("receive");
                world.send(peer, got).expect("send");
            }
            times.push(start.elapsed().as_secs_f64() / 2.0);
        }
        rows.push(serde_json::json!({ "bytes": bytes, "seconds": median(times) }));
    }
    if world.rank() == 0 {
        println!("{}", Value::Array(rows));
    }
}

fn mpirun() -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "--bind-to", "none"]);
    cmd
}

/// Latency (s) and inverse bandwidth (s per byte) of one transport, from a ping-pong.
fn alpha_beta(transport: &[&str]) -> (f64, f64, Vec<(usize, f64)>) {
    let exe = std::env::current_exe().expect("this bench's path");
    let out = mpirun().args(["-np", "2"]).args(transport).arg(exe).output().expect("mpirun");
    assert!(out.status.success(), "ping-pong failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("ping-pong json");
    let points: Vec<(usize, f64)> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|p| (p["bytes"].as_u64().unwrap_or(0) as usize, p["seconds"].as_f64().unwrap_or(0.0)))
        .collect();
    // Latency: the fastest small message; inverse bandwidth: the slope between the two largest.
    let alpha = points[0].1.min(points[1].1);
    let (big, bigger) = (points[points.len() - 2], points[points.len() - 1]);
    (alpha, ((bigger.1 - big.1) / (bigger.0 - big.0) as f64).max(0.0), points)
}

/// Median seconds of the QR that merges `children` stacked n x n R factors (the kernel's own
/// sequential Householder QR, as a tree node runs it).
fn merge_seconds(children: usize) -> f64 {
    let a = Mat::<f64>::from_fn(children * COLS, COLS, |i, j| ((i * 31 + j * 17) % 101) as f64 - 50.0);
    let times = (0..15)
        .map(|_| {
            let start = Instant::now();
            let qr = a.as_ref().qr();
            std::hint::black_box(qr.R());
            start.elapsed().as_secs_f64()
        })
        .collect();
    median(times)
}

struct Run {
    name: &'static str,
    in_process: Vec<f64>,
    whole: Vec<f64>,
    values: Option<Vec<u64>>,
    rss: u64,
}

fn tsqr_side_by_side(path: &Path, reps: usize) -> Vec<Run> {
    let p = path.to_str().expect("utf-8 path");
    let svd = ["tsqr", "--input", p, "--values-only", "--memory-limit", "64MiB", "--json"];
    let configs: [(&str, Option<usize>, usize); 4] = [
        ("threads, 1 worker", None, 1),
        ("threads, 2 workers", None, 2),
        ("1 rank x 1 worker", Some(1), 1),
        ("2 ranks x 1 worker", Some(2), 1),
    ];
    let mut runs: Vec<Run> = configs
        .iter()
        .map(|c| Run { name: c.0, in_process: Vec::new(), whole: Vec::new(), values: None, rss: 0 })
        .collect();
    for _ in 0..reps {
        for (run, &(_, ranks, workers)) in runs.iter_mut().zip(&configs) {
            let mut args: Vec<String> = svd.iter().map(|s| s.to_string()).collect();
            args.extend(["--workers".into(), workers.to_string()]);
            let measured = match ranks {
                None => child::run_measured(LARGE_SVD, &args),
                Some(np) => {
                    let mut full: Vec<String> =
                        ["--oversubscribe", "--bind-to", "none", "-np", &np.to_string(), LARGE_SVD]
                            .iter()
                            .map(|s| s.to_string())
                            .collect();
                    full.extend(args);
                    child::run_measured("mpirun", &full)
                }
            };
            assert_eq!(measured.code, Some(0), "{}: {}", run.name, String::from_utf8_lossy(&measured.stderr));
            let v: Value = serde_json::from_slice(&measured.stdout).expect("summary json");
            let values: Vec<u64> = v["singular_values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|x| x.as_f64().unwrap_or(f64::NAN).to_bits())
                .collect();
            if let Some(seen) = &run.values {
                assert_eq!(seen, &values, "{}: repetitions differ", run.name);
            }
            run.values = Some(values);
            run.in_process.push(v["wall_seconds"].as_f64().unwrap_or(f64::NAN));
            run.whole.push(measured.wall);
            // The kernel's high-water mark of the process measured from outside; of each rank,
            // its own (the ranks are mpirun's children), the largest.
            let rss = match (ranks, v["ranks"].as_array()) {
                (None, _) => measured.own_peak_rss(),
                (Some(_), Some(per_rank)) => {
                    per_rank.iter().filter_map(|x| x["peak_rss_bytes"].as_u64()).max().unwrap_or(0)
                }
                (Some(_), None) => v["peak_rss_bytes"].as_u64().unwrap_or(0),
            };
            run.rss = run.rss.max(rss);
        }
    }
    let reference = runs[0].values.clone();
    for run in &runs {
        assert_eq!(run.values, reference, "{} differs from the threads scheduler", run.name);
    }
    runs
}

/// Simulated seconds of outcore's TSQR values on `ranks` ranks of one worker: each rank
/// factors its contiguous panels one after another, every tree node runs on the rank of its
/// first child once its children are there, receiving the others' R factors one message after
/// another.
fn simulate_outcore(
    rows: usize,
    ranks: usize,
    fan_in: usize,
    panel: f64,
    net: (f64, f64),
    merge: &dyn Fn(usize) -> f64,
) -> (f64, usize) {
    let leaves = rows.div_ceil(CHUNK_ROWS);
    let owner = |b: usize| (0..ranks).rev().find(|&r| r * leaves / ranks <= b).unwrap_or(0);
    let first_of_rank = |r: usize| r * leaves / ranks;
    // Per node: (finish time, owner, messages on its critical path).
    let mut level: Vec<(f64, usize, usize)> =
        (0..leaves).map(|b| ((b - first_of_rank(owner(b)) + 1) as f64 * panel, owner(b), 0)).collect();
    let r_bytes = (8 * COLS * COLS) as f64;
    for groups in outcore::graph::reduction_tree(leaves, fan_in) {
        level = groups
            .into_iter()
            .map(|g| {
                let children = &level[g];
                let home = children[0].1;
                let mut t = 0.0f64;
                let mut msgs = 0;
                for &(finish, rank, m) in children {
                    if rank == home {
                        t = t.max(finish);
                        msgs = msgs.max(m);
                    }
                }
                // Remote children arrive one after another once sent.
                for &(finish, rank, m) in children {
                    if rank != home {
                        t = t.max(finish) + net.0 + net.1 * r_bytes;
                        msgs = msgs.max(m) + 1;
                    }
                }
                (t + merge(children.len()), home, msgs)
            })
            .collect();
    }
    (level[0].0, level[0].2)
}

fn main() {
    if outcore::cluster::launcher_tasks().is_some() {
        return ping_pong();
    }
    let args: Vec<String> = std::env::args().collect();
    let rows = child::rows(&args, "2000000,8000000");
    let reps = child::reps(&args, 5);
    let base = child::flag_value(&args, "--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-ranks"));
    std::fs::create_dir_all(&base).expect("bench directory");
    // SAFETY: set before any thread starts; mpirun refuses root without them.
    unsafe {
        std::env::set_var("OMPI_ALLOW_RUN_AS_ROOT", "1");
        std::env::set_var("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }

    println!("## TSQR values across ranks against threads (2 cores, medians of {reps}, alternating)\n");
    println!(
        "| rows x 100 | configuration | in-process s | whole job s | peak RSS per process MiB | vs 1 rank | vs threads 2 |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut per_row = f64::NAN;
    for &m in &rows {
        let dir = tempfile::tempdir_in(&base).expect("temporary directory");
        let path = dir.path().join("x.zarr");
        let generate: Vec<String> =
            ["generate", "--rows", &m.to_string(), "--cols", "100", "--chunk-rows", "10000", "--json", "--output"]
                .iter()
                .map(|s| s.to_string())
                .chain([path.to_string_lossy().into_owned()])
                .collect();
        let g = child::run_measured(LARGE_SVD, &generate);
        assert_eq!(g.code, Some(0), "{}", String::from_utf8_lossy(&g.stderr));
        // Into the page cache, for every configuration alike.
        let _ = Command::new("sh").arg("-c").arg(format!("cat {}/c/*/* > /dev/null", path.display())).status();
        let runs = tsqr_side_by_side(&path, reps);
        let med: Vec<f64> = runs.iter().map(|r| median(r.in_process.clone())).collect();
        for (i, run) in runs.iter().enumerate() {
            println!(
                "| {m} | {} | {:.2} | {:.2} | {:.0} | {} | {:.2}x |",
                run.name,
                med[i],
                median(run.whole.clone()),
                run.rss as f64 / 1048576.0,
                if i >= 2 { format!("{:.2}x", med[2] / med[i]) } else { "-".into() },
                med[1] / med[i],
            );
        }
        per_row = med[2] / m as f64;
    }

    let shared = alpha_beta(&["--mca", "pml", "ob1", "--mca", "btl", "self,vader"]);
    let tcp = alpha_beta(&["--mca", "pml", "ob1", "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo"]);
    println!("\n## The network between 2 ranks (ping-pong, one-way medians)\n");
    println!("| bytes | shared memory µs | TCP loopback µs |");
    println!("|---|---|---|");
    for (a, b) in shared.2.iter().zip(&tcp.2) {
        println!("| {} | {:.1} | {:.1} |", a.0, a.1 * 1e6, b.1 * 1e6);
    }
    println!(
        "\nfit: shared memory alpha = {:.1} µs, beta = {:.2} GB/s; TCP alpha = {:.1} µs, beta = {:.2} GB/s",
        shared.0 * 1e6,
        1e-9 / shared.1,
        tcp.0 * 1e6,
        1e-9 / tcp.1
    );
    // As a tree node runs it: one thread.
    faer::set_global_parallelism(faer::Par::Seq);
    let merges: Vec<(usize, f64)> = [2, 4, 8, 16, 32].map(|c| (c, merge_seconds(c))).to_vec();
    println!(
        "\ncompute: {:.1} ns per row (1 rank x 1 worker, from the runs above); merging c R factors of 100 x 100: {}",
        per_row * 1e9,
        merges.iter().map(|(c, s)| format!("c = {c}: {:.0} µs", s * 1e6)).collect::<Vec<_>>().join(", ")
    );
    let merge = |c: usize| {
        let (lo, hi) = (merges[0], merges[merges.len() - 1]);
        lo.1 + (hi.1 - lo.1) * (c.saturating_sub(lo.0)) as f64 / (hi.0 - lo.0) as f64
    };
    // The plan's fan-in for 10,000-row panels of 100 columns (see SvdPlan: rows / n, capped at 32).
    let fan_in = 32;
    let panel = per_row * CHUNK_ROWS as f64;
    println!("\n## Projection: TSQR values, 1 worker per rank, TCP figures (alpha-beta model)\n");
    println!(
        "| rows x 100 | ranks | local panels s | outcore tree: total s | messages on its critical path | binary tree (Demmel et al.): total s | log2 P messages | efficiency (outcore) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for m in [50_000_000usize, 1_000_000_000] {
        let one = simulate_outcore(m, 1, fan_in, panel, (tcp.0, tcp.1), &merge).0;
        for ranks in [64usize, 128, 256, 512, 1024] {
            let (ours, messages) = simulate_outcore(m, ranks, fan_in, panel, (tcp.0, tcp.1), &merge);
            let local = m.div_ceil(CHUNK_ROWS).div_ceil(ranks) as f64 * panel;
            let steps = (ranks as f64).log2().ceil();
            let binary = local + steps * (tcp.0 + tcp.1 * (8 * COLS * COLS) as f64 + merge(2));
            println!(
                "| {m} | {ranks} | {local:.3} | {ours:.3} | {messages} | {binary:.3} | {steps:.0} | {:.0}% |",
                100.0 * one / (ranks as f64 * ours)
            );
        }
    }

    println!("\n## The lesson's schedulers: `large-svd means --repeat {reps}`\n");
    let means = Command::new(LARGE_SVD).args(["means", "--repeat", &reps.to_string()]).output().expect("means");
    assert!(means.status.success(), "{}", String::from_utf8_lossy(&means.stderr));
    print!("{}", String::from_utf8_lossy(&means.stdout));
}
