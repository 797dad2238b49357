//! The `large-svd` binary end to end: JSON output, results on disk, bad input, memory.

use outcore_testkit as common;

use std::path::Path;
use std::process::{Command, Output};

use outcore::storage::{ChunkStore, ZarrStore};
use outcore::{ChunkedMatrix, Distribution};
use serde_json::Value;

fn large_svd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_large-svd")).args(args).output().expect("run large-svd")
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// `args` fail with exit code `code` and a message holding every one of `words`.
fn fails_with_code(code: i32, args: &[&str], words: &[&str]) {
    let out = large_svd(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?} should fail with exit code {code}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for w in words {
        assert!(stderr.contains(w), "{args:?}: {stderr:?} lacks {w:?}");
    }
}

/// A run that fails: exit code 1.
fn fails_with(args: &[&str], words: &[&str]) {
    fails_with_code(1, args, words);
}

/// A flag's value refused when the arguments are parsed, before anything runs: a usage error,
/// exit code 2, naming the flag.
fn refused(args: &[&str], words: &[&str]) {
    fails_with_code(2, args, words);
}

#[test]
fn tsqr_json_has_the_promised_fields_and_correct_values() {
    let out = large_svd(&["tsqr", "--rows", "5003", "--cols", "17", "--chunk-rows", "1000", "--seed", "9", "--json"]);
    let v = json(&out);
    assert_eq!(v["command"], "tsqr");
    assert_eq!(v["shape"], serde_json::json!([5003, 17]));
    assert_eq!(v["chunks"], serde_json::json!([1000, 17]));
    for key in ["wall_seconds", "peak_rss_bytes"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    for key in ["limit", "peak_managed", "spilled_bytes", "spill_count"] {
        assert!(v["memory"][key].is_u64(), "memory.{key}: {v}");
    }
    let s: Vec<f64> = v["singular_values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let dense = ChunkedMatrix::generated(Distribution::Uniform, 9, 5003, 17, 1000, 17).unwrap().to_dense().unwrap();
    let reference = common::reference_singular_values(&dense);
    for (x, y) in s.iter().zip(&reference) {
        assert!((x - y).abs() <= common::tol(5003, 17, dense.norm_l2()), "{x} vs {y}");
    }
}

#[test]
fn tsqr_without_output_computes_values_only_within_the_auto_limit() {
    // U of this input (38 MiB) would have nowhere to go; it is not computed, so the automatic
    // limit, sized for the values' working sets, holds (computing U into memory exceeded the
    // pause threshold).
    let v = json(&large_svd(&["tsqr", "--rows", "100000", "--cols", "50", "--chunk-rows", "7000", "--json"]));
    assert_eq!(v["values_only"], true);
    let limit = v["memory"]["limit"].as_u64().expect("a limit");
    assert!((64 << 20..=128 << 20).contains(&limit), "{v}");
    assert!(v["peak_rss_bytes"].as_u64().is_some_and(|p| p < limit), "{v}");
}

#[test]
fn output_directory_holds_u_s_v_readable_as_zarr_and_is_never_partial() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("result");
    let t = target.to_str().unwrap();
    let args = ["tsqr", "--rows", "2500", "--cols", "6", "--chunk-rows", "700", "--seed", "4", "--output", t, "--json"];
    let v = json(&large_svd(&args));
    let read = |name: &str| {
        ChunkedMatrix::from_store(std::sync::Arc::new(ZarrStore::open(target.join(name)).unwrap())).to_dense().unwrap()
    };
    let (u, vv) = (read("u.zarr"), read("v.zarr"));
    assert_eq!(u.shape(), (2500, 6));
    assert_eq!(
        ZarrStore::open(target.join("u.zarr")).unwrap().grid().chunk_shape(),
        (700, 6),
        "U is chunked like the input"
    );
    let s: Vec<f64> = v["singular_values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let a = ChunkedMatrix::generated(Distribution::Uniform, 4, 2500, 6, 700, 6).unwrap().to_dense().unwrap();
    assert!(common::reconstruction_error(&a, &u, &s, &vv) <= common::tol(2500, 6, a.norm_l2()));
    assert!(target.join("s.zarr/zarr.json").exists() && target.join("summary.json").exists());

    // An existing result is refused (and kept) unless --overwrite.
    fails_with(&args, &["already exists", "--overwrite"]);
    assert!(target.join("u.zarr").exists());
    let mut again = args.to_vec();
    again.push("--overwrite");
    json(&large_svd(&again));
    // A failing run leaves nothing under the final name and no partial directory.
    let failed = dir.path().join("failed");
    fails_with(
        &["tsqr", "--rows", "100", "--cols", "5", "--memory-limit", "64KiB", "--output", failed.to_str().unwrap()],
        &["too small"],
    );
    assert!(!failed.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn wide_input_from_a_npy_file_writes_v_as_the_large_factor() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("wide.npy");
    let grid = outcore::storage::ChunkGrid::new(5, 3001, 5, 3001).unwrap();
    let a = ChunkedMatrix::generated(Distribution::Normal, 2, 5, 3001, 5, 3001).unwrap();
    outcore::storage::write_matrix(
        &outcore::storage::NpyStore::create(&npy, grid).unwrap(),
        &common::row_major(&a.to_dense().unwrap()),
    )
    .unwrap();
    let out = dir.path().join("out");
    json(&large_svd(&["tsqr", "--input", npy.to_str().unwrap(), "--output", out.to_str().unwrap(), "--json"]));
    assert_eq!(ZarrStore::open(out.join("v.zarr")).unwrap().grid().shape(), (3001, 5));
    assert_eq!(ZarrStore::open(out.join("u.zarr")).unwrap().grid().shape(), (5, 5));
}

#[test]
fn bad_input_gets_a_clear_error_and_a_nonzero_exit_code() {
    fails_with(&["tsqr", "--input", "/nonexistent/x.zarr"], &["does not exist"]);
    fails_with(&["tsqr", "--input", "/nonexistent/x.npy"], &["does not exist"]);
    refused(&["tsqr", "--rows", "0"], &["--rows", "at least 1"]);
    refused(&["tsqr", "--workers", "0", "--rows", "100", "--cols", "3"], &["--workers", "0 workers"]);
    refused(&["tsqr", "--scheduler", "processes", "--rows", "100", "--cols", "3"], &["serial, threads"]);
    refused(&["tsqr", "--memory-limit", "lots", "--rows", "100", "--cols", "3"], &["--memory-limit", "256MiB"]);
    refused(&["tsqr", "--accounting", "mine", "--rows", "100", "--cols", "3"], &["--accounting", "own, process"]);
    refused(&["tsqr", "--thresholds", "target=2", "--rows", "100", "--cols", "3"], &["--thresholds", "target = 2"]);
    fails_with(
        &["tsqr", "--memory-limit", "64KiB", "--rows", "10000", "--cols", "50"],
        &["too small", "--memory-limit"],
    );
    refused(&["tsqr", "--distribution", "cauchy", "--rows", "100", "--cols", "3"], &["uniform, normal"]);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../outcore-storage/tests/fixtures/zarr/v3_i32.zarr");
    fails_with(&["tsqr", "--input", fixture.to_str().unwrap()], &["int32", "float64"]);
    let group = Path::new(env!("CARGO_MANIFEST_DIR")).join("../outcore-storage/tests/fixtures/zarr/v3_group.zarr");
    fails_with(&["tsqr", "--input", group.to_str().unwrap()], &["Zarr group"]);
    // Usage errors are clap's: exit code 2.
    assert_eq!(large_svd(&["tsqr", "--input", "x", "--rows", "5"]).status.code(), Some(2));
}

#[test]
fn visualize_writes_graphviz_dot() {
    let dir = tempfile::tempdir().unwrap();
    let (dot, out) = (dir.path().join("g.dot"), dir.path().join("out"));
    json(&large_svd(&[
        "tsqr",
        "--rows",
        "3000",
        "--cols",
        "4",
        "--chunk-rows",
        "100",
        "--output",
        out.to_str().unwrap(),
        "--json",
        "--visualize",
        dot.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&dot).unwrap();
    assert!(
        text.starts_with("digraph outcore {")
            && text.contains("panel QR (30 tasks)")
            && text.contains("U assembly")
            && text.contains("more"),
        "{text}"
    );
    let bad = dir.path().join("g.xyz");
    refused(&["tsqr", "--rows", "300", "--cols", "4", "--visualize", bad.to_str().unwrap()], &[".dot, .svg"]);
}

#[test]
fn generate_writes_a_zarr_array_readable_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.zarr");
    let args =
        ["generate", "--rows", "1234", "--cols", "7", "--chunk-rows", "100", "--distribution", "normal", "--seed", "3"];
    let mut with_output = args.to_vec();
    with_output.extend(["--output", path.to_str().unwrap(), "--json"]);
    json(&large_svd(&with_output));
    let stored = ChunkedMatrix::open(&path).unwrap().to_dense().unwrap();
    let expected = ChunkedMatrix::generated(Distribution::Normal, 3, 1234, 7, 100, 7).unwrap().to_dense().unwrap();
    assert_eq!(common::row_major(&stored), common::row_major(&expected));
    fails_with(&with_output, &["already exists"]);
}

#[test]
fn rsvd_json_reports_the_estimate_and_passes_and_writes_u_s_v() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let args = [
        "rsvd",
        "--rows",
        "300",
        "--cols",
        "250",
        "--chunk",
        "64",
        "-k",
        "3",
        "--power-iters",
        "3",
        "--json",
        "--output",
        out.to_str().unwrap(),
    ];
    let v = json(&large_svd(&args));
    assert_eq!(v["command"], "rsvd");
    assert_eq!(v["passes_over_input"], 8);
    let s: Vec<f64> = v["singular_values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let a = ChunkedMatrix::generated(Distribution::Uniform, 0, 300, 250, 64, 64).unwrap().to_dense().unwrap();
    let exact = common::reference_singular_values(&a);
    assert!((s[0] - exact[0]).abs() / exact[0] < 1e-10, "the dominant value converges: {} vs {}", s[0], exact[0]);
    let read = |name: &str| {
        ChunkedMatrix::from_store(std::sync::Arc::new(ZarrStore::open(out.join(name)).unwrap())).to_dense().unwrap()
    };
    let (u, vv) = (read("u.zarr"), read("v.zarr"));
    assert_eq!((u.shape(), vv.shape()), ((300, 3), (250, 3)));
    let true_frobenius = common::reconstruction_error(&a, &u, &s, &vv);
    let estimate = v["error_estimate"]["frobenius"].as_f64().unwrap();
    assert!(estimate > true_frobenius / 4.0 && estimate < true_frobenius * 4.0, "{estimate} vs {true_frobenius}");
    assert!(v["error_estimate"]["spectral_bound"].as_f64().unwrap() >= estimate / 10.0);
    fails_with(&args, &["already exists"]);
}

#[test]
fn rsvd_bad_parameters_exit_with_clear_errors() {
    fails_with(&["rsvd", "--rows", "100", "--cols", "100", "--chunk", "30", "-k", "0"], &["k = 0"]);
    fails_with(
        &["rsvd", "--rows", "100", "--cols", "60", "--chunk", "30", "-k", "55"],
        &["invalid --oversamples", "exceeds min(rows, cols) = 60", "lower --oversamples to at most 5"],
    );
    fails_with(
        &["rsvd", "--rows", "100", "--cols", "60", "--chunk", "30", "-k", "61", "--oversamples", "0"],
        &["invalid -k", "lower -k to at most 60"],
    );
    refused(&["rsvd", "--rows", "100", "--cols", "100", "--chunk", "30", "--method", "lanczos"], &["subspace, krylov"]);
    refused(&["rsvd", "--rows", "100", "--cols", "100", "--chunk", "0"], &["--chunk", "at least 1"]);
}

#[test]
fn means_compares_schedulers_with_identical_results() {
    let v = json(&large_svd(&["means", "--tasks", "20", "--n", "2000", "--repeat", "2", "--json", "--seed", "3"]));
    let results = v["results"].as_array().unwrap();
    let names: Vec<&str> = results.iter().map(|r| r["scheduler"].as_str().unwrap()).collect();
    assert_eq!(names[..4], ["serial", "mt_1", "mt_2", "mt_4"]);
    // Built with MPI (and mpirun found), the lesson's processes and distributed rows follow;
    // otherwise a note says how to get them.
    let jobs = ["processes_1", "processes_2", "processes_4", "distributed_1", "distributed_2", "distributed_4"];
    let notes = v["notes"].as_array().unwrap();
    assert!(
        names[4..] == jobs
            || (names.len() == 4
                && notes.iter().any(|n| n.as_str().unwrap().contains("processes and distributed rows"))),
        "{names:?} {notes:?}"
    );
    // The mean of 40,000 standard normals (the workload's unit test checks it bit for bit
    // against the direct computation): within 10 standard deviations of 0.
    let mean = v["mean_of_means"].as_f64().unwrap();
    assert!(mean.abs() < 10.0 / 200.0, "{mean}");
    assert!(v["overhead_seconds_per_task"].as_f64().unwrap() > 0.0);
    assert!(results.iter().all(|r| r["median_seconds"].as_f64().unwrap() > 0.0 && r["dask_median_seconds"].is_f64()));
    let one = json(&large_svd(&[
        "means",
        "--tasks",
        "5",
        "--n",
        "10",
        "--repeat",
        "1",
        "--scheduler",
        "threads",
        "--workers",
        "2",
        "--json",
    ]));
    assert_eq!(one["results"].as_array().unwrap().len(), 1);
    assert_eq!(one["results"][0]["scheduler"], "mt_2");
    refused(&["means", "--tasks", "0"], &["--tasks"]);
}

#[test]
fn memory_timeline_and_plot_are_written_and_peaks_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, svg) = (dir.path().join("t.csv"), dir.path().join("m.svg"));
    let tsqr = ["tsqr", "--rows", "200000", "--cols", "40", "--chunk-rows", "5000", "--memory-limit", "256MiB"];
    // `means` runs several schedulers on one memory budget and one sampler.
    let means = ["means", "--repeat", "2"];
    for command in [&tsqr[..], &means[..]] {
        let files = ["--json", "--memory-timeline", csv.to_str().unwrap(), "--memory-plot", svg.to_str().unwrap()];
        let v = json(&large_svd(&[command, &files[..]].concat()));
        let peaks = &v["memory"]["peaks"];
        for key in ["process", "managed", "unmanaged", "unmanaged_recent", "spilled"] {
            assert!(peaks[key].is_u64(), "{command:?}: peaks.{key}: {v}");
        }
        assert!(peaks["process"].as_u64().unwrap() >= peaks["managed"].as_u64().unwrap());
        let text = std::fs::read_to_string(&csv).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert!(rows.len() >= 2, "{command:?}: {text}");
        for row in rows {
            let v: Vec<u64> = row.split(',').skip(1).map(|x| x.parse().unwrap()).collect();
            assert_eq!(v[0], v[1] + v[2] + v[4] + v[5], "process = host + managed + unmanaged old + recent: {row}");
        }
        let svg_text = std::fs::read_to_string(&svg).unwrap();
        assert!(svg_text.contains("<svg") && svg_text.contains("unmanaged recent") && svg_text.contains("pause (80%"));
        std::fs::remove_file(&csv).unwrap();
        std::fs::remove_file(&svg).unwrap();
    }
    // A wrong extension is refused before any work.
    refused(&["tsqr", "--rows", "1000", "--cols", "5", "--memory-plot", "x.png"], &[".svg"]);
    refused(&["tsqr", "--rows", "1000", "--cols", "5", "--memory-timeline", "x.xlsx"], &[".csv"]);
}

#[test]
fn an_output_over_the_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("data.zarr");
    let i = input.to_str().unwrap();
    json(&large_svd(&["generate", "--rows", "2000", "--cols", "7", "--chunk-rows", "300", "--json", "--output", i]));
    let before = std::fs::read_dir(&input).unwrap().count();
    let d = dir.path().to_str().unwrap();
    let inside = input.join("svd");
    for out in [i, d, inside.to_str().unwrap()] {
        for command in ["tsqr", "rsvd", "generate"] {
            let mut args = vec![command, "--input", i, "--output", out, "--overwrite"];
            if command == "rsvd" {
                args.extend(["-k", "2", "--oversamples", "2"]);
            }
            fails_with(&args, &["would overwrite the input", "--output"]);
        }
    }
    assert_eq!(std::fs::read_dir(&input).unwrap().count(), before, "the input changed");
    json(&large_svd(&["tsqr", "--input", i, "--json", "--values-only"]));
}

#[test]
fn unwritable_side_files_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let base = ["tsqr", "--rows", "20000", "--cols", "5", "--output", o];
    for (flag, file) in
        [("--memory-plot", "/nonexistent-outcore/m.svg"), ("--memory-timeline", "/nonexistent-outcore/t.csv")]
    {
        let args: Vec<&str> = base.iter().copied().chain([flag, file]).collect();
        fails_with(&args, &[flag, "cannot be written"]);
        assert!(!out.exists(), "{flag}: output written although the command failed up front");
    }
    let plot = dir.path().join("plot.svg");
    let args: Vec<&str> = base.iter().copied().chain(["--json", "--memory-plot", plot.to_str().unwrap()]).collect();
    json(&large_svd(&args));
    assert!(out.join("u.zarr").is_dir() && plot.is_file());
}

#[test]
fn float32_input_gives_float32_u_s_v() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../outcore-storage/tests/fixtures/zarr/v3_f32.zarr");
    let reference = json(&large_svd(&["tsqr", "--input", fixture.to_str().unwrap(), "--json", "--values-only"]));
    let dir = tempfile::tempdir().unwrap();
    for command in ["tsqr", "rsvd"] {
        let out = dir.path().join(command);
        let mut args = vec![command, "--input", fixture.to_str().unwrap(), "--json", "--output", out.to_str().unwrap()];
        if command == "rsvd" {
            args.extend(["-k", "2", "--oversamples", "2"]);
        }
        let v = json(&large_svd(&args));
        assert_eq!(v["dtype"], "f32", "{v}");
        for name in ["u.zarr", "s.zarr", "v.zarr"] {
            let meta = std::fs::read_to_string(out.join(name).join("zarr.json")).unwrap();
            assert!(meta.contains("\"float32\""), "{command} {name}: {meta}");
        }
        // Computed in f64 either way (the JSON values are f64; the stores round them).
        let (first, exact) =
            (v["singular_values"][0].as_f64().unwrap(), reference["singular_values"][0].as_f64().unwrap());
        assert!((first - exact).abs() <= 1e-12 * exact, "{command}: {first} vs {exact}");
    }
}

/// Started by a launcher as one of several tasks, a build without MPI refuses rather than
/// compute alone in each task.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_build_without_mpi_refuses_a_launchers_tasks() {
    for (variable, value) in [("OMPI_COMM_WORLD_SIZE", "4"), ("PMI_SIZE", "4"), ("SLURM_STEP_NUM_TASKS", "4")] {
        let out = Command::new(env!("CARGO_BIN_EXE_large-svd"))
            .args(["tsqr", "--rows", "1000", "--cols", "5", "--values-only"])
            .env(variable, value)
            .env("PMI_RANK", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{variable}: {stderr}");
        assert!(stderr.contains(&format!("{variable}={value}")) && stderr.contains("--features mpi"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// `--io buffered` and `--io direct` read a zarr-python default (zstd) store to the same
/// singular values; direct says so in `input`, or is refused by name where the file system
/// has no O_DIRECT; the default is buffered. `--io` needs `--input` and one of its two modes,
/// and a .npy file (always read buffered) refuses `--io direct`.
#[test]
fn io_modes_read_the_same_values_and_bad_modes_are_refused() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../outcore-storage/tests/fixtures/zarr/v3_f64.zarr");
    let input = fixture.to_str().unwrap();
    let buffered = json(&large_svd(&["tsqr", "--input", input, "--io", "buffered", "--json"]));
    assert!(!buffered["input"].as_str().unwrap().contains("direct"), "{}", buffered["input"]);
    let direct = large_svd(&["tsqr", "--input", input, "--io", "direct", "--json"]);
    if direct.status.success() {
        let direct = json(&direct);
        assert!(direct["input"].as_str().unwrap().contains("direct I/O"), "{}", direct["input"]);
        assert_eq!(direct["singular_values"], buffered["singular_values"]);
    } else {
        let stderr = String::from_utf8_lossy(&direct.stderr);
        assert!(direct.status.code() == Some(1) && stderr.contains("refuses direct I/O"), "{stderr}");
        eprintln!("NOTE: this file system refuses O_DIRECT; direct reads not compared here");
    }
    let auto = json(&large_svd(&["tsqr", "--input", input, "--json"]));
    assert_eq!(auto["singular_values"], buffered["singular_values"]);
    let npy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../outcore-storage/tests/fixtures/npy/f8.npy");
    fails_with(&["tsqr", "--input", npy.to_str().unwrap(), "--io", "direct"], &["page cache", "read it buffered"]);
    for bad in [&["tsqr", "--io", "direct"][..], &["tsqr", "--input", input, "--io", "sideways"][..]] {
        let out = large_svd(bad);
        assert!(!out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("panicked"), "{bad:?}");
    }
}

/// The values of a JSON array of numbers.
fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
}

#[test]
fn qr_reports_r_and_writes_q_and_r_readable_as_zarr() {
    let (m, n) = (3_001, 9);
    let dense = ChunkedMatrix::generated(Distribution::Normal, 4, m, n, 400, n).unwrap().to_dense().unwrap();
    let shape = ["--rows", "3001", "--cols", "9", "--chunk-rows", "400", "--distribution", "normal", "--seed", "4"];
    let v = json(&large_svd(&[&["qr", "--json"], &shape[..]].concat()));
    assert_eq!((v["command"].as_str(), v["mode"].as_str()), (Some("qr"), Some("r")), "{v}");
    assert!(v.get("singular_values").is_none(), "a QR has no singular values: {v}");
    let diagonal = numbers(&v["r_diagonal"]);
    let reference = dense.qr().thin_R().to_owned();
    for (i, d) in diagonal.iter().enumerate() {
        assert!(*d >= 0.0 && (d - reference[(i, i)].abs()).abs() <= common::tol(m, n, dense.norm_l2()), "{i}: {d}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("qr");
    let v = json(&large_svd(&[&["qr", "--json", "--output", out.to_str().unwrap()], &shape[..]].concat()));
    assert_eq!(v["mode"], "reduced");
    let q = ChunkedMatrix::open(out.join("q.zarr")).unwrap().to_dense().unwrap();
    let r = ChunkedMatrix::open(out.join("r.zarr")).unwrap().to_dense().unwrap();
    assert_eq!((q.shape(), r.shape()), ((m, n), (n, n)));
    assert!((&q * &r - &dense).norm_l2() <= common::tol(m, n, dense.norm_l2()));
    assert!(out.join("summary.json").is_file() && !out.join("s.zarr").exists());
    // Q applied without being formed: Q^T B in the same pass, Q C in Q's place.
    let (b_path, c_path) = (dir.path().join("b.zarr"), dir.path().join("c.zarr"));
    for (path, rows, cols) in [(&b_path, "3001", "2"), (&c_path, "9", "3")] {
        let args = ["generate", "--rows", rows, "--cols", cols, "--seed", "5", "--json", "--output"];
        json(&large_svd(&[&args[..], &[path.to_str().unwrap()]].concat()));
    }
    let (b, c) = (
        ChunkedMatrix::open(&b_path).unwrap().to_dense().unwrap(),
        ChunkedMatrix::open(&c_path).unwrap().to_dense().unwrap(),
    );
    let applied = dir.path().join("applied");
    let flags = ["qr", "--json", "--rhs", b_path.to_str().unwrap(), "--q-times", c_path.to_str().unwrap(), "--output"];
    let v = json(&large_svd(&[&flags[..], &[applied.to_str().unwrap()], &shape[..]].concat()));
    let qt_b = ChunkedMatrix::open(applied.join("qtb.zarr")).unwrap().to_dense().unwrap();
    assert!((&qt_b - q.transpose() * &b).norm_l2() <= common::tol(m, n, b.norm_l2()), "{v}");
    assert_eq!(numbers(&v["qt_b"][0]).len(), 2);
    let qc = ChunkedMatrix::open(applied.join("qc.zarr")).unwrap().to_dense().unwrap();
    assert!((&qc - &q * &c).norm_l2() <= common::tol(m, n, c.norm_l2()));
    assert!(!applied.join("q.zarr").exists());
    fails_with(&[&["qr", "--q-times", c_path.to_str().unwrap()], &shape[..]].concat(), &["--q-times", "--output"]);
    // A wide matrix: A = L Q through the QR of its transpose; L lower triangular, Q^T written.
    let wide = ["--rows", "7", "--cols", "1203", "--chunk-rows", "7", "--chunk-cols", "100", "--seed", "3"];
    let lq = dir.path().join("lq");
    let v = json(&large_svd(&[&["qr", "--json", "--output", lq.to_str().unwrap()], &wide[..]].concat()));
    assert_eq!((v["factorization"].as_str(), v["mode"].as_str()), (Some("lq"), Some("reduced")), "{v}");
    let a = ChunkedMatrix::generated(Distribution::Uniform, 3, 7, 1203, 7, 100).unwrap().to_dense().unwrap();
    let l = ChunkedMatrix::open(lq.join("l.zarr")).unwrap().to_dense().unwrap();
    let qt = ChunkedMatrix::open(lq.join("qt.zarr")).unwrap().to_dense().unwrap();
    assert_eq!((l.shape(), qt.shape()), ((7, 7), (1203, 7)));
    assert!((0..7).all(|i| l[(i, i)] >= 0.0 && (i + 1..7).all(|j| l[(i, j)] == 0.0)), "L is lower triangular");
    assert!((&l * qt.transpose() - &a).norm_l2() <= common::tol(1203, 7, a.norm_l2()));
}

#[test]
fn lstsq_solves_from_zarr_stores_and_reports_the_regression() {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, b_path) = (dir.path().join("a.zarr"), dir.path().join("b.zarr"));
    let generate = |path: &Path, cols: &str, seed: &str| {
        let args = ["generate", "--rows", "5000", "--cols", cols, "--chunk-rows", "700", "--seed", seed, "--json"];
        json(&large_svd(&[&args[..], &["--distribution", "normal", "--output", path.to_str().unwrap()]].concat()));
    };
    generate(&a_path, "6", "1");
    generate(&b_path, "2", "2");
    let (a, b) = (a_path.to_str().unwrap(), b_path.to_str().unwrap());
    let v = json(&large_svd(&["lstsq", "--input", a, "--rhs", b, "--fit-intercept", "--json"]));
    let dense_a = ChunkedMatrix::open(&a_path).unwrap().to_dense().unwrap();
    let dense_b = ChunkedMatrix::open(&b_path).unwrap().to_dense().unwrap();
    // The reference: [1 | A] solved by faer's QR (the data is well conditioned).
    let x1 = faer::Mat::from_fn(5000, 7, |i, j| if j == 0 { 1.0 } else { dense_a[(i, j - 1)] });
    let mut beta = dense_b.clone();
    faer::linalg::solvers::SolveLstsq::solve_lstsq_in_place(&x1.qr(), beta.as_mut());
    let x: Vec<Vec<f64>> = v["x"].as_array().unwrap().iter().map(numbers).collect();
    let intercept = numbers(&v["intercept"]);
    for j in 0..2 {
        assert!((intercept[j] - beta[(0, j)]).abs() <= 1e-10, "intercept {j}: {} vs {}", intercept[j], beta[(0, j)]);
        for i in 0..6 {
            assert!((x[i][j] - beta[(i + 1, j)]).abs() <= 1e-10, "x[{i}][{j}]");
        }
    }
    assert_eq!((v["rank"].as_u64(), v["df_resid"].as_f64()), (Some(6), Some(4993.0)), "{v}");
    assert_eq!(numbers(&v["stderr"][0]).len(), 2);
    assert!(numbers(&v["r2"]).iter().all(|r| (-0.01..0.01).contains(r)), "independent data: R^2 near 0: {v}");
    assert!(v["residuals"].as_array().is_some_and(Vec::is_empty), "numpy gives residuals of plain fits only");
    // Weighted, from a 1-D .npy: weights 0 and 1 give the fit of the rows weighted 1; the
    // rows weighted 0 still count in df_resid (statsmodels' WLS).
    let w: Vec<f64> = (0..5000).map(|i| f64::from(u8::from(i % 3 != 0))).collect();
    let w_path = dir.path().join("w.npy");
    let header = format!("{:<117}\n", "{'descr': '<f8', 'fortran_order': False, 'shape': (5000,), }");
    let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(
        &w_path,
        [&b"\x93NUMPY\x01\x00"[..], &(header.len() as u16).to_le_bytes()[..], header.as_bytes(), &bytes].concat(),
    )
    .unwrap();
    let v = json(&large_svd(&["lstsq", "--input", a, "--rhs", b, "--weights", w_path.to_str().unwrap(), "--json"]));
    let kept: Vec<usize> = (0..5000).filter(|i| i % 3 != 0).collect();
    let a_kept = faer::Mat::from_fn(kept.len(), 6, |i, j| dense_a[(kept[i], j)]);
    let mut beta = faer::Mat::from_fn(kept.len(), 2, |i, j| dense_b[(kept[i], j)]);
    faer::linalg::solvers::SolveLstsq::solve_lstsq_in_place(&a_kept.qr(), beta.as_mut());
    let x: Vec<Vec<f64>> = v["x"].as_array().unwrap().iter().map(numbers).collect();
    assert!((0..6).all(|i| (0..2).all(|j| (x[i][j] - beta[(i, j)]).abs() <= 1e-10)), "{v}");
    assert_eq!(v["df_resid"].as_f64(), Some(4994.0));
    assert!(v["weights"].as_str().is_some_and(|w| w.contains("w.npy")), "{v}");
    // Written: x.zarr and s.zarr.
    let out = dir.path().join("fit");
    json(&large_svd(&["lstsq", "--input", a, "--rhs", b, "--json", "--output", out.to_str().unwrap()]));
    let x = ChunkedMatrix::open(out.join("x.zarr")).unwrap().to_dense().unwrap();
    assert_eq!(x.shape(), (6, 2));
    assert!(out.join("s.zarr").exists());
}

#[test]
fn qr_and_lstsq_refuse_bad_requests_naming_the_flag() {
    refused(&["qr", "--mode", "complete"], &["--mode", "reduced, r"]);
    refused(&["lstsq", "--alpha", "-1"], &["--alpha"]);
    refused(&["lstsq", "--rcond", "nan"], &["--rcond"]);
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.zarr");
    let b = dir.path().join("b.zarr");
    json(&large_svd(&["generate", "--rows", "300", "--cols", "4", "--json", "--output", a.to_str().unwrap()]));
    json(&large_svd(&["generate", "--rows", "299", "--cols", "1", "--json", "--output", b.to_str().unwrap()]));
    fails_with(&["lstsq", "--input", a.to_str().unwrap()], &["--rhs"]);
    fails_with(&["lstsq", "--input", a.to_str().unwrap(), "--rhs", b.to_str().unwrap()], &["--rhs", "299 rows"]);
    fails_with(
        &["lstsq", "--input", a.to_str().unwrap(), "--rhs", a.to_str().unwrap(), "--weights", b.to_str().unwrap()],
        &["--weights", "299 x 1"],
    );
    fails_with(&["qr", "--rows", "3", "--cols", "10", "--rhs", b.to_str().unwrap()], &["3 x 10", "L Q", "--rhs"]);
    // An output over the right-hand sides is refused, and they are kept.
    fails_with(
        &["lstsq", "--input", a.to_str().unwrap(), "--rhs", b.to_str().unwrap(), "--output", b.to_str().unwrap()],
        &["--output"],
    );
    assert!(ChunkedMatrix::open(&b).is_ok());
}

#[test]
#[cfg(unix)]
fn an_output_path_zarr_cannot_name_is_refused_before_any_work() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join(std::ffi::OsStr::from_bytes(b"out-\xff"));
    // The refusal comes from the output's creation, before the plan runs (it used to come
    // after the whole SVD, as an internal error).
    let out = Command::new(env!("CARGO_BIN_EXE_large-svd"))
        .args(["tsqr", "--rows", "2000000", "--cols", "100", "--output"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid --output") && stderr.contains("not valid UTF-8"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing may be created");
}

#[test]
fn grow_adds_rows_to_a_saved_state_and_refuses_what_would_lose_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("fit.state");
    let state = state.to_str().unwrap();
    let part = |seed: &str, rows: &str| {
        ["--rows", rows, "--cols", "13", "--chunk-rows", "700", "--seed", seed].map(String::from)
    };
    let grow = |extra: &[&str], seed: &str, rows: &str| {
        let mut args = vec!["grow", "--state", state, "--json"];
        args.extend_from_slice(extra);
        let part = part(seed, rows);
        args.extend(part.iter().map(String::as_str));
        large_svd(&args)
    };
    let first = json(&grow(&["--new"], "1", "3001"));
    assert_eq!((first["rows_seen"].as_u64(), first["rows_added"].as_u64()), (Some(3001), Some(3001)));
    let v = json(&grow(&[], "2", "2002"));
    assert_eq!(
        (v["command"].as_str(), v["rows_seen"].as_u64(), v["rows_added"].as_u64()),
        (Some("grow"), Some(5003), Some(2002))
    );
    // The PCA of both parts stacked, as if read at once.
    let a = ChunkedMatrix::generated(Distribution::Uniform, 1, 3001, 13, 700, 13).unwrap().to_dense().unwrap();
    let b = ChunkedMatrix::generated(Distribution::Uniform, 2, 2002, 13, 700, 13).unwrap().to_dense().unwrap();
    let both = outcore::faer::Mat::from_fn(5003, 13, |i, j| if i < 3001 { a[(i, j)] } else { b[(i - 3001, j)] });
    let mean: Vec<f64> = (0..13).map(|j| both.col(j).iter().sum::<f64>() / 5003.0).collect();
    let centered = outcore::faer::Mat::from_fn(5003, 13, |i, j| both[(i, j)] - mean[j]);
    let reference = common::reference_singular_values(&centered);
    let s = numbers(&v["singular_values"]);
    for (x, y) in s.iter().zip(&reference) {
        assert!((x - y).abs() <= common::tol(5003, 13, both.norm_l2()), "{x} vs {y}");
    }
    let total: f64 = reference.iter().map(|x| x * x).sum();
    for (r, y) in numbers(&v["explained_variance_ratio"]).iter().zip(&reference) {
        assert!((r - y * y / total).abs() <= 1e-12, "{r} vs {}", y * y / total);
    }

    // What would lose the state is refused, and the file is left as it was.
    let saved = std::fs::read(state).unwrap();
    let stderr = |out: Output| (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned());
    let (code, text) = stderr(grow(&["--new"], "3", "10"));
    assert!(code == Some(1) && text.contains("exists; add --overwrite"), "{text}");
    let mut wide = vec!["grow", "--state", state, "--rows", "10", "--cols", "7"];
    let (code, text) = stderr(large_svd(&wide));
    assert!(code == Some(1) && text.contains("holds a fit of 13 columns and the matrix has 7"), "{text}");
    let missing = dir.path().join("none.state");
    wide[2] = missing.to_str().unwrap();
    let (code, text) = stderr(large_svd(&wide));
    assert!(code == Some(1) && text.contains("does not exist; add --new"), "{text}");
    assert_eq!(std::fs::read(state).unwrap(), saved);
    let damaged = dir.path().join("damaged.state");
    let mut bytes = saved.clone();
    bytes[50] ^= 1;
    std::fs::write(&damaged, &bytes).unwrap();
    let out = large_svd(&["grow", "--state", damaged.to_str().unwrap(), "--rows", "10", "--cols", "13", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "state_file", "{v}");
    assert!(v["message"].as_str().unwrap().contains("checksum does not match"), "{v}");
    assert_eq!(std::fs::read(&damaged).unwrap(), bytes);
    // --overwrite starts over.
    let v = json(&grow(&["--new", "--overwrite"], "3", "10"));
    assert_eq!(v["rows_seen"].as_u64(), Some(10));
}
