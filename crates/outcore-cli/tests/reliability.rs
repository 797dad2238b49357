//! The `large-svd` binary under faults, interruption, a full disk and bad input: every run
//! either succeeds with the right answer or exits non-zero with a typed, clear error; no partial
//! result ever appears under the output's name; spill files never outlive the process.

use outcore_testkit as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use outcore::storage::{ChunkGrid, ChunkStore, NpyStore, ZarrOptions, ZarrStore, write_matrix};
use outcore::{ChunkedMatrix, Distribution};
use serde_json::Value;

fn large_svd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_large-svd"));
    cmd.args(args).env_remove("OUTCORE_INJECT_FAULTS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run large-svd")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A Zarr array of generated values (so tests read from disk).
fn zarr_input(dir: &Path, rows: usize, cols: usize, chunk_rows: usize) -> (PathBuf, Vec<f64>) {
    let path = dir.join("input.zarr");
    let data = common::row_major(
        &ChunkedMatrix::generated(Distribution::Normal, 17, rows, cols, rows, cols).unwrap().to_dense().unwrap(),
    );
    let store =
        ZarrStore::create(&path, ChunkGrid::new(rows, cols, chunk_rows, cols).unwrap(), &ZarrOptions::default())
            .unwrap();
    write_matrix(&store, &data).unwrap();
    (path, data)
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// After a failed run: nothing under the output's name, no partial directory beside it, and
/// the spill directory's parent empty.
fn assert_nothing_left(out: &Path, spill: &Path) {
    assert!(!out.exists(), "{} appeared after a failed run", out.display());
    let parent = out.parent().unwrap();
    assert!(
        entries(parent).iter().all(|e| !e.contains("partial")),
        "partial output left in {}: {:?}",
        parent.display(),
        entries(parent)
    );
    assert!(entries(spill).is_empty(), "spill files left: {:?}", entries(spill));
}

fn singular_values(out: &Output) -> Vec<f64> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["singular_values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn cli_fault_sweep_never_leaves_partial_output_or_spill_files() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = zarr_input(dir.path(), 3000, 40, 250);
    let out = dir.path().join("out");
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let (i, o, sp) = (input.to_str().unwrap(), out.to_str().unwrap(), spill.to_str().unwrap());
    // Managed memory only, and a limit small enough that intermediates spill.
    let args = [
        "tsqr",
        "--input",
        i,
        "--output",
        o,
        "--spill-dir",
        sp,
        "--memory-limit",
        "700KiB",
        "--thresholds",
        "spill=off,pause=off,terminate=off",
        "--scheduler",
        "serial",
        "--json",
    ];
    let clean = large_svd(&args, &[]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    let expected = singular_values(&clean);
    let report: Value = serde_json::from_slice(&clean.stdout).unwrap();
    let (spills, reloads) =
        (report["memory"]["spill_count"].as_u64().unwrap(), report["memory"]["reload_count"].as_u64().unwrap());
    assert!(spills > 0 && reloads > 0, "the run must spill and reload: {spills} / {reloads}");
    std::fs::remove_dir_all(&out).unwrap();

    // Input reads and output writes: each injected fault fails the run; the first N past the
    // last call succeeds.
    for target in ["input:read", "output:write"] {
        let mut n = 1;
        loop {
            let plan = format!("{target}={n}");
            let run = large_svd(&args, &[("OUTCORE_INJECT_FAULTS", &plan)]);
            if run.status.success() {
                assert_eq!(singular_values(&run), expected, "{plan}");
                std::fs::remove_dir_all(&out).unwrap();
                break;
            }
            assert_eq!(run.status.code(), Some(1), "{plan}: {}", stderr(&run));
            assert!(stderr(&run).contains("injected fault"), "{plan}: {}", stderr(&run));
            assert_nothing_left(&out, &spill);
            n += 1;
            assert!(n < 500, "{target}: faults never stop");
        }
        assert!(n > 1, "{target}: no call was ever made");
    }
    // A failed spill fails the run; a failed reload is recomputed from lineage.
    for n in 1..=spills {
        let plan = format!("spill:write={n}");
        let run = large_svd(&args, &[("OUTCORE_INJECT_FAULTS", &plan)]);
        assert_eq!(run.status.code(), Some(1), "{plan}: {}", stderr(&run));
        assert_nothing_left(&out, &spill);
    }
    for n in 1..=reloads {
        let plan = format!("spill:read={n}");
        let run = large_svd(&args, &[("OUTCORE_INJECT_FAULTS", &plan)]);
        assert!(run.status.success(), "{plan}: {}", stderr(&run));
        assert_eq!(singular_values(&run), expected, "{plan}");
        assert!(entries(&spill).is_empty());
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// Starts a TSQR with U to `out` that spills to `spill`, and waits until it is spilling (so
/// there is something to clean up).
fn spilling_run(out: &Path, spill: &Path) -> std::process::Child {
    spilling_run_with(out, spill, &[])
}

/// [`spilling_run`] with `extra` arguments, its stdout piped.
fn spilling_run_with(out: &Path, spill: &Path, extra: &[&str]) -> std::process::Child {
    let args = [
        "tsqr",
        "--rows",
        "600000",
        "--cols",
        "60",
        "--chunk-rows",
        "3000",
        "--output",
        out.to_str().unwrap(),
        "--spill-dir",
        spill.to_str().unwrap(),
        "--memory-limit",
        "6MiB",
        "--thresholds",
        "spill=off,pause=off,terminate=off",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_large-svd"))
        .args(args)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its own spill directory (named by its process id; others' may be there) holds a file.
    let own = format!("outcore-spill-{}@", child.id());
    let start = std::time::Instant::now();
    while entries(spill).iter().filter(|d| d.starts_with(&own)).all(|d| entries(&spill.join(d)).is_empty()) {
        if start.elapsed().as_secs() >= 60 || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the run never spilled, or ended before it could be interrupted");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

fn signal(child: &std::process::Child, signal: libc::c_int) {
    // SAFETY: kill only sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

#[test]
fn sigint_sigterm_and_sighup_stop_cleanly_with_128_plus_the_signal() {
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143), (libc::SIGHUP, 129)] {
        let dir = tempfile::tempdir().unwrap();
        let (out, spill) = (dir.path().join("out"), dir.path().join("spill"));
        std::fs::create_dir(&spill).unwrap();
        let child = spilling_run(&out, &spill);
        let sent = std::time::Instant::now();
        signal(&child, sig);
        let output = child.wait_with_output().unwrap();
        let took = sent.elapsed();
        assert_eq!(output.status.code(), Some(code), "signal {sig}: {}", stderr(&output));
        assert!(stderr(&output).contains("interrupted"), "{}", stderr(&output));
        assert!(took.as_secs() < 10, "signal {sig}: took {took:?} to stop");
        assert_nothing_left(&out, &spill);
    }
}

/// `--json`'s error object on stdout: the only line there, with the exit code the process had.
fn json_error(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON object on stdout, got {stdout:?}; stderr {}", stderr(out));
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["error"], true, "{v}");
    assert_eq!(v["exit_code"].as_i64(), out.status.code().map(i64::from), "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(!message.is_empty() && stderr(out).contains(message), "the message is stderr's: {v}; {}", stderr(out));
    v
}

#[test]
fn json_errors_are_one_object_on_stdout_for_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (nan, mut data) = zarr_input(dir.path(), 300, 4, 100);
    data[5] = f64::NAN;
    write_matrix(&ZarrStore::open(&nan).unwrap(), &data).unwrap();
    let missing = dir.path().join("missing.zarr");
    let cases: [(&str, Vec<&str>, i32); 5] = [
        ("usage", vec!["tsqr", "--no-such-flag"], 2),
        ("invalid_argument", vec!["rsvd", "--rows", "100", "--cols", "60", "-k", "0"], 1),
        ("storage", vec!["tsqr", "--input", missing.to_str().unwrap()], 1),
        ("memory", vec!["tsqr", "--rows", "100000", "--cols", "500", "--memory-limit", "2MiB"], 1),
        ("non_finite", vec!["tsqr", "--input", nan.to_str().unwrap()], 1),
    ];
    for (kind, mut args, code) in cases {
        args.push("--json");
        let out = large_svd(&args, &[]);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert_eq!(json_error(&out)["kind"], kind, "{args:?}");
    }
    // Interrupted: the object carries 128 + the signal.
    let (out, spill) = (dir.path().join("out"), dir.path().join("spill"));
    std::fs::create_dir(&spill).unwrap();
    let child = spilling_run_with(&out, &spill, &["--json"]);
    signal(&child, libc::SIGTERM);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    assert_eq!(json_error(&output)["kind"], "interrupted");
    assert_nothing_left(&out, &spill);
}

#[test]
fn killed_runs_leave_leftovers_that_the_next_run_removes() {
    let dir = tempfile::tempdir().unwrap();
    let (out, spill) = (dir.path().join("out"), dir.path().join("spill"));
    std::fs::create_dir(&spill).unwrap();
    // Killed outright: nothing runs its cleanup.
    let mut child = spilling_run(&out, &spill);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!entries(&spill).is_empty() && entries(dir.path()).iter().any(|e| e.contains("partial")));
    // Two signals at once (the second quits without cleaning up, if it comes after the first
    // was handled; signals sent together may also arrive as one): exit 143 either way.
    let child = spilling_run(&dir.path().join("out2"), &spill);
    signal(&child, libc::SIGTERM);
    signal(&child, libc::SIGTERM);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    // The next run in the same directories finds the leftovers of the dead runs and removes
    // them, with a notice.
    let args = ["tsqr", "--rows", "3000", "--cols", "5", "--output", out.to_str().unwrap()];
    let mut args = args.to_vec();
    args.extend(["--spill-dir", spill.to_str().unwrap(), "--json"]);
    let next = large_svd(&args, &[]);
    assert!(next.status.success(), "{}", stderr(&next));
    assert!(stderr(&next).contains("left by killed runs"), "{}", stderr(&next));
    assert!(entries(&spill).is_empty(), "spill directories of killed runs remain: {:?}", entries(&spill));
    let partial = entries(dir.path()).into_iter().filter(|e| e.contains(".out.partial")).collect::<Vec<_>>();
    assert!(partial.is_empty(), "partial outputs of killed runs remain: {partial:?}");
    assert!(out.join("u.zarr").is_dir());
}

/// Mounts a 1 MiB tmpfs at `dir`, if this process may.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: PathBuf) -> Option<Self> {
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then_some(Self(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_clearly_and_leaves_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let small = dir.path().join("small");
    let generated = ["tsqr", "--rows", "20000", "--cols", "60", "--chunk-rows", "2000"];
    match SmallDisk::mount(small.clone()) {
        Some(_disk) => {
            // A real full disk: U (9.2 MiB) does not fit in 1 MiB.
            let out = small.join("out");
            let mut args = generated.to_vec();
            args.extend(["--output", out.to_str().unwrap(), "--spill-dir", spill.to_str().unwrap()]);
            let run = large_svd(&args, &[]);
            assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
            assert!(
                stderr(&run).contains("No space left on device") && stderr(&run).contains("disk is full"),
                "{}",
                stderr(&run)
            );
            assert_nothing_left(&out, &spill);
            assert!(entries(&small).is_empty(), "the small disk still holds {:?}", entries(&small));
            // Spill files on the full disk (U computed, to a directory on a roomy disk).
            let roomy = dir.path().join("out");
            let mut args = generated.to_vec();
            args.extend([
                "--output",
                roomy.to_str().unwrap(),
                "--spill-dir",
                small.to_str().unwrap(),
                "--memory-limit",
                "2MiB",
                "--thresholds",
                "spill=off,pause=off,terminate=off",
            ]);
            let run = large_svd(&args, &[]);
            assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
            assert!(stderr(&run).contains("disk is full"), "{}", stderr(&run));
            assert!(entries(&small).is_empty(), "spill files left on the small disk: {:?}", entries(&small));
            assert!(!roomy.exists(), "partial output at {}", roomy.display());
        }
        None => {
            eprintln!("cannot mount a tmpfs here: simulating a full disk with injected faults");
            let out = dir.path().join("out");
            let mut args = generated.to_vec();
            args.extend(["--output", out.to_str().unwrap(), "--spill-dir", spill.to_str().unwrap()]);
            let run = large_svd(&args, &[("OUTCORE_INJECT_FAULTS", "output:write=2,disk-full")]);
            assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
            assert!(stderr(&run).contains("disk is full"), "{}", stderr(&run));
            assert_nothing_left(&out, &spill);
        }
    }
}

#[test]
fn unwritable_output_and_unreadable_input_get_clear_errors() {
    let run = large_svd(&["tsqr", "--rows", "100", "--cols", "5", "--output", "/sys/outcore-test-output"], &[]);
    assert_eq!(run.status.code(), Some(1));
    let text = stderr(&run);
    assert!(
        text.contains("/sys/outcore-test-output") && (text.contains("permission") || text.contains("not permitted")),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let not_zarr = dir.path().join("plain");
    std::fs::create_dir(&not_zarr).unwrap();
    let run = large_svd(&["tsqr", "--input", not_zarr.to_str().unwrap()], &[]);
    assert!(run.status.code() == Some(1) && stderr(&run).contains("no zarr.json"), "{}", stderr(&run));
    // An output path whose parent is a file, or missing: named as such, not as a missing input.
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "keep").unwrap();
    for (parent, problem) in [(&file, "is not a directory"), (&dir.path().join("missing"), "does not exist")] {
        let out = parent.join("out");
        let run = large_svd(&["tsqr", "--rows", "100", "--cols", "5", "--output", out.to_str().unwrap()], &[]);
        let text = stderr(&run);
        assert!(run.status.code() == Some(1) && text.contains("invalid --output") && text.contains(problem), "{text}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
}

#[test]
fn empty_arrays_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.zarr");
    ZarrStore::create(&path, ChunkGrid::new(0, 5, 10, 5).unwrap(), &ZarrOptions::default()).unwrap();
    for cmd in ["tsqr", "rsvd"] {
        let run = large_svd(&[cmd, "--input", path.to_str().unwrap()], &[]);
        assert_eq!(run.status.code(), Some(1), "{cmd}: {}", stderr(&run));
        assert!(stderr(&run).contains("empty (0 x 5)"), "{cmd}: {}", stderr(&run));
    }
}

#[test]
fn nan_in_a_chunk_is_named_with_its_chunk_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut data) = zarr_input(dir.path(), 1000, 8, 100);
    data[731 * 8 + 5] = f64::NAN;
    let store: Arc<dyn ChunkStore> = Arc::new(ZarrStore::open(&path).unwrap());
    write_matrix(store.as_ref(), &data).unwrap();
    let p = path.to_str().unwrap();
    for cmd in ["tsqr", "rsvd"] {
        let mut args = vec![cmd, "--input", p];
        if cmd == "rsvd" {
            args.extend(["-k", "2", "--oversamples", "2"]);
        }
        let run = large_svd(&args, &[]);
        assert_eq!(run.status.code(), Some(1), "{cmd}: {}", stderr(&run));
        let text = stderr(&run);
        assert!(
            text.contains("chunk (7, 0)") && text.contains("row 731, column 5") && text.contains("--no-check-finite"),
            "{cmd}: {text}"
        );
    }
    // The check can be skipped; the NaN then propagates instead of being reported.
    let run = large_svd(&["tsqr", "--input", p, "--no-check-finite", "--json"], &[]);
    assert!(!stderr(&run).contains("non-finite"), "{}", stderr(&run));
}

#[test]
fn a_truncated_chunk_is_named_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = zarr_input(dir.path(), 1000, 8, 100);
    let file = path.join("c/3/0");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 3]).unwrap();
    let run = large_svd(&["tsqr", "--input", path.to_str().unwrap()], &[]);
    assert_eq!(run.status.code(), Some(1));
    let text = stderr(&run);
    assert!(text.contains("chunk (3, 0)") && text.contains("c/3/0") && text.contains("corrupted"), "{text}");
}

/// Bytes `pid` has read so far (`rchar` of /proc/PID/io).
fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

/// A randomized SVD of `input` (42 passes over it, at a limit that does not hold it), its
/// output under `dir`.
fn long_run(input: &Path, dir: &Path) -> std::process::Child {
    let out = dir.join("out");
    let args = ["rsvd", "--input", input.to_str().unwrap(), "-k", "5", "--method", "subspace", "--power-iters", "20"];
    Command::new(env!("CARGO_BIN_EXE_large-svd"))
        .args(args)
        .args(["--output", out.to_str().unwrap(), "--workers", "1", "--memory-limit", "160MiB"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `child` has read `bytes`, then runs `cut`; the run must then fail with a clear
/// error (exit 1, no signal), naming the input, leaving no output.
fn cut_while_read(mut child: std::process::Child, bytes: u64, dir: &Path, cut: impl FnOnce(), words: &[&str]) {
    let start = std::time::Instant::now();
    while bytes_read(child.id()) < bytes {
        if start.elapsed().as_secs() >= 120 || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the run ended, or never read {bytes} bytes: {}", stderr(&child.wait_with_output().unwrap()));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cut();
    let output = child.wait_with_output().unwrap();
    let text = stderr(&output);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(output.status.signal(), None, "killed by a signal: {text}");
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(words.iter().any(|w| text.contains(w)), "{text} names none of {words:?}");
    assert!(!dir.join("out").exists(), "a partial output appeared");
}

#[test]
fn an_input_rewritten_during_a_run_ends_it_with_a_clear_error_not_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, cols) = (200_000, 40);
    let data = common::row_major(
        &ChunkedMatrix::generated(Distribution::Uniform, 5, rows, cols, 10_000, cols).unwrap().to_dense().unwrap(),
    );
    // numpy.save over the .npy input truncates it, then writes.
    let npy = dir.path().join("x.npy");
    write_matrix(&NpyStore::create(&npy, ChunkGrid::new(rows, cols, 10_000, cols).unwrap()).unwrap(), &data).unwrap();
    let size = std::fs::metadata(&npy).unwrap().len();
    let child = long_run(&npy, dir.path());
    let cut = || std::fs::OpenOptions::new().write(true).open(&npy).unwrap().set_len(4096).unwrap();
    cut_while_read(child, 3 * size, dir.path(), cut, &["x.npy changed while this run read it"]);

    // `cp` over the chunk files of a Zarr input: each truncated, then rewritten. Cut early: a
    // store read many times is decoded in its first pass only.
    let zarr = dir.path().join("x.zarr");
    let grid = ChunkGrid::new(rows, cols, 10_000, cols).unwrap();
    write_matrix(&ZarrStore::create(&zarr, grid, &ZarrOptions::default()).unwrap(), &data).unwrap();
    let child = long_run(&zarr, dir.path());
    let chunks: Vec<PathBuf> = (0..rows / 10_000).map(|i| zarr.join(format!("c/{i}/0"))).collect();
    let cut = || {
        for chunk in &chunks {
            std::fs::write(chunk, b"not a chunk").unwrap();
        }
    };
    cut_while_read(child, 1 << 20, dir.path(), cut, &["changed while this run read it", "is corrupted"]);
}
