//! Accuracy of the randomized SVD on the Dask lesson's matrix (uniform [0, 1) 10000 x 10000,
//! seed 0, chunks 2000 x 2000, k = 5), against its exact singular values.
//!
//! `cargo bench --bench rsvd_accuracy [-- --reps N] [--zarr]`
//!
//! The exact values come from a dense faer SVD of the whole matrix, computed once and kept in
//! `benches/data/lesson_uniform_10000_seed0.json` (delete the file to recompute: minutes, 3 GiB).
//! Each configuration runs `large-svd rsvd` in a child; the table gives the relative error of
//! sigma_1 and of sigma_2..sigma_5 (largest), median wall time, passes over A and median peak
//! RSS (from `wait4`). `--zarr` also runs each from a Zarr store on disk.

use std::path::PathBuf;

use outcore::{ChunkedMatrix, Distribution};
use serde_json::{Value, json};

use outcore_testkit::child;

const N: usize = 10_000;

fn exact() -> Vec<f64> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/data/lesson_uniform_10000_seed0.json");
    if !path.exists() {
        // In a child, so this process stays small: children inherit its peak RSS (see child.rs).
        let exe = std::env::current_exe().expect("bench executable");
        let m = child::run_measured(exe.to_str().unwrap_or_default(), &["--reference".to_string()]);
        assert_eq!(m.code, Some(0), "reference: {}", String::from_utf8_lossy(&m.stderr));
    }
    let text = std::fs::read_to_string(&path).expect("reference file");
    let v: Value = serde_json::from_str(&text).expect("reference JSON");
    v["singular_values"].as_array().expect("values").iter().filter_map(Value::as_f64).collect()
}

/// Computes the exact singular values with a dense faer SVD and writes the reference file.
fn write_reference() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/data/lesson_uniform_10000_seed0.json");
    eprintln!("computing the exact singular values with a dense faer SVD (once; minutes) ...");
    let start = std::time::Instant::now();
    let a = ChunkedMatrix::generated(Distribution::Uniform, 0, N, N, 2000, 2000)
        .expect("matrix")
        .to_dense()
        .expect("dense");
    faer::set_global_parallelism(faer::Par::rayon(0));
    let s = a.singular_values().expect("dense SVD");
    let seconds = start.elapsed().as_secs_f64();
    let top: Vec<f64> = s[..20].to_vec();
    let record = json!({
        "matrix": "outcore generated uniform [0,1) 10000 x 10000, seed 0 (large-svd rsvd defaults)",
        "method": "faer 0.24 dense singular_values of the whole matrix in RAM",
        "command": "cargo bench --bench rsvd_accuracy (computes this file when it is missing)",
        "seconds": seconds,
        "singular_values": top,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&record).expect("json")).expect("write reference");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--reference") {
        write_reference();
        return;
    }
    let reps = child::reps(&args, 3);
    let with_zarr = args.iter().any(|a| a == "--zarr");
    let exact = exact();
    let large_svd = env!("CARGO_BIN_EXE_large-svd");
    let dir = tempfile::tempdir().expect("temporary directory");
    let zarr = dir.path().join("lesson.zarr");
    let mut inputs: Vec<(&str, Vec<String>)> = vec![("generated", vec![])];
    if with_zarr {
        let m = child::run_measured(
            large_svd,
            &[
                "generate",
                "--rows",
                "10000",
                "--cols",
                "10000",
                "--chunk-rows",
                "2000",
                "--chunk-cols",
                "2000",
                "--output",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([zarr.to_string_lossy().into_owned()])
            .collect::<Vec<_>>(),
        );
        assert_eq!(m.code, Some(0), "{}", String::from_utf8_lossy(&m.stderr));
        inputs.push(("Zarr on disk", vec!["--input".into(), zarr.to_string_lossy().into_owned()]));
    }
    let configs: Vec<(&str, usize)> = vec![
        ("subspace", 0),
        ("subspace", 1),
        ("subspace", 2),
        ("subspace", 4),
        ("krylov", 1),
        ("krylov", 2),
        ("krylov", 4),
    ];
    println!("exact: sigma_1 = {:.4}, sigma_2..5 = {:.4?}", exact[0], &exact[1..5]);
    println!(
        "\n| input | method | q | passes | rel. error sigma_1 | max rel. error sigma_2..5 | error estimate (Frobenius / sigma_1) | median wall s | median peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (input, input_args) in &inputs {
        for (method, q) in &configs {
            let mut walls = Vec::new();
            let mut rss = Vec::new();
            let mut last = Value::Null;
            for _ in 0..reps {
                let mut a: Vec<String> =
                    ["rsvd", "--json", "--memory-limit", "128MiB", "--method", method, "--power-iters", &q.to_string()]
                        .iter()
                        .map(|s| s.to_string())
                        .collect();
                a.extend(input_args.iter().cloned());
                let m = child::run_measured(large_svd, &a);
                assert_eq!(m.code, Some(0), "{a:?}: {}", String::from_utf8_lossy(&m.stderr));
                walls.push(m.wall);
                rss.push(m.own_peak_rss() as f64 / 1048576.0);
                last = serde_json::from_slice(&m.stdout).expect("json");
            }
            walls.sort_by(f64::total_cmp);
            rss.sort_by(f64::total_cmp);
            let s: Vec<f64> =
                last["singular_values"].as_array().expect("values").iter().filter_map(Value::as_f64).collect();
            let rel = |i: usize| (s[i] - exact[i]).abs() / exact[i];
            let tail = (1..5).map(rel).fold(0.0f64, f64::max);
            let estimate = last["error_estimate"]["frobenius"].as_f64().unwrap_or(f64::NAN) / s[0];
            println!(
                "| {input} | {method} | {q} | {} | {:.2e} | {:.1}% | {:.3} | {:.2} | {:.1} |",
                last["passes_over_input"],
                rel(0),
                100.0 * tail,
                estimate,
                walls[walls.len() / 2],
                rss[rss.len() / 2]
            );
        }
    }
}
