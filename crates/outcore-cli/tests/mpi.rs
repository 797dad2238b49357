//! `large-svd` under `mpirun` (built with `--features mpi`): ranks give the threads
//! scheduler's bits, refuse and fail together, and leave nothing behind. Needs Open MPI's
//! `mpirun`; `.ci/run` installs it and sets OUTCORE_REQUIRE_MPI, so CI fails rather than skips
//! without it. Elsewhere, without it, each test says loudly that it skipped.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod mpirun;

use mpirun::{launcher, mpirun, patient_launcher};

const BIN: &str = env!("CARGO_BIN_EXE_large-svd");

fn on_ranks(mpirun: &Path, ranks: usize, args: &[&str]) -> Output {
    launcher(mpirun).args(["-np", &ranks.to_string(), BIN]).args(args).output().unwrap()
}

fn alone(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: stdout {:?}", text(&out.stdout)))
}

/// The singular values' exact bits (JSON numbers print the shortest text that reads back the
/// same double).
fn value_bits(summary: &serde_json::Value) -> Vec<u64> {
    summary["singular_values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap().to_bits()).collect()
}

/// Every file of a Zarr array, by relative path, with its bytes.
fn array_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// 100,003 x 50 in chunks of 7,000 rows: 15 chunks, the last short, split unevenly by 2 and
/// 3 ranks.
fn input(dir: &Path) -> PathBuf {
    let path = dir.join("a.zarr");
    let args = ["generate", "--rows", "100003", "--cols", "50", "--chunk-rows", "7000", "--seed", "3", "--json"];
    let out = Command::new(BIN).args(args).arg("--output").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    path
}

#[test]
fn one_two_and_three_ranks_give_the_bits_of_the_threads_scheduler() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let a = input.to_str().unwrap();
    let out = |name: String| dir.path().join(name).to_str().unwrap().to_string();
    let args = |command: &[&str], output: Option<&str>| {
        let mut v: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        v.extend(["--input", a, "--json", "--memory-limit", "128MiB"].map(String::from));
        if let Some(o) = output {
            v.extend(["--output".to_string(), o.to_string()]);
        }
        v
    };
    let commands: [(&str, &[&str]); 2] = [("tsqr", &["tsqr"]), ("rsvd", &["rsvd", "-k", "7", "--power-iters", "2"])];
    let values = args(&["tsqr", "--values-only"], None);
    let threads = json(&alone(&[&refs(&values)[..], &["--workers", "2"]].concat()));
    for (name, command) in commands {
        json(&alone(&[&refs(&args(command, Some(&out(format!("{name}-threads")))))[..], &["--workers", "2"]].concat()));
    }
    for ranks in 1..=3 {
        let summary = json(&on_ranks(&mpirun, ranks, &[&refs(&values)[..], &["--workers", "1"]].concat()));
        assert_eq!(value_bits(&summary), value_bits(&threads), "{ranks} ranks: values differ from threads");
        if ranks > 1 {
            let per_rank = summary["ranks"].as_array().expect("a per-rank breakdown");
            assert_eq!(per_rank.len(), ranks);
            let tasks: u64 = per_rank.iter().map(|r| r["tasks"].as_u64().unwrap()).sum();
            assert_eq!(tasks, summary["tasks"].as_u64().unwrap());
            assert_eq!(tasks, threads["tasks"].as_u64().unwrap(), "each task runs once across the ranks");
            for r in per_rank {
                assert!(r["tasks"].as_u64().unwrap() > 0, "a rank did nothing: {r}");
                let (rss, limit) = (r["peak_rss_bytes"].as_u64().unwrap(), r["memory"]["limit"].as_u64().unwrap());
                assert!(rss <= limit, "rank {} peaked at {rss} bytes, over its limit of {limit}", r["rank"]);
            }
        }
        for (name, command) in commands {
            let (ours, theirs) = (out(format!("{name}-{ranks}")), out(format!("{name}-threads")));
            json(&on_ranks(&mpirun, ranks, &[&refs(&args(command, Some(&ours)))[..], &["--workers", "1"]].concat()));
            for array in ["u.zarr", "s.zarr", "v.zarr"] {
                let files = array_files(&Path::new(&ours).join(array));
                assert!(files.len() > 1, "{name} on {ranks} ranks: {array} has no chunks");
                assert!(
                    files == array_files(&Path::new(&theirs).join(array)),
                    "{name} on {ranks} ranks: {array} differs from the threads scheduler's"
                );
            }
        }
    }
}

#[test]
fn a_store_written_by_zarr_python_gives_the_same_bits_on_three_ranks() {
    let Some(mpirun) = mpirun() else { return };
    let Ok(python) = std::env::var("OUTCORE_PYTHON") else {
        assert!(
            std::env::var_os("OUTCORE_REQUIRE_PYTHON").is_none(),
            "OUTCORE_REQUIRE_PYTHON is set but OUTCORE_PYTHON is not"
        );
        eprintln!("SKIPPED zarr-python MPI test: set OUTCORE_PYTHON to a Python with zarr>=3 and numpy");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("py.zarr");
    // zarr-python's defaults (v3, zstd), chunks that do not divide the shape.
    let script = "import sys, numpy as np, zarr\n\
rng = np.random.default_rng(7)\n\
a = rng.standard_normal((50001, 40))\n\
z = zarr.create_array(sys.argv[1], shape=a.shape, chunks=(4000, 40), dtype='f8')\n\
z[:] = a\n";
    let made = Command::new(&python).arg("-c").arg(script).arg(&path).output().unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    let args = ["tsqr", "--input", path.to_str().unwrap(), "--values-only", "--json"];
    let threads = json(&alone(&[&args[..], &["--workers", "2"]].concat()));
    let ranks = json(&on_ranks(&mpirun, 3, &[&args[..], &["--workers", "1"]].concat()));
    assert_eq!(value_bits(&ranks), value_bits(&threads));
}

/// A process some launcher says is one of 3 tasks, in a world of 1.
#[test]
fn a_task_started_alone_refuses_to_compute() {
    let Some(_) = mpirun() else { return };
    let out = Command::new(BIN)
        .args(["tsqr", "--rows", "1000", "--cols", "5", "--values-only"])
        .env("PMI_SIZE", "3")
        .env("PMI_RANK", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("started 3 tasks (PMI_SIZE=3)") && err.contains("a world of 1 rank"), "{err}");
    assert!(out.stdout.is_empty(), "it computed anyway: {}", text(&out.stdout));
}

#[test]
fn ranks_given_different_arguments_refuse_before_any_work() {
    let Some(mpirun) = mpirun() else { return };
    let base = ["tsqr", "--rows", "20000", "--cols", "10", "--chunk-rows", "1000", "--values-only", "--json"];
    let out = launcher(&mpirun)
        .args(["-np", "1", BIN])
        .args(base)
        .args([":", "-np", "2", BIN])
        .args(base)
        .args(["--panel-rows", "3000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.matches("planned a different computation").count(), 1, "said once, by rank 0: {err}");
    assert!(err.contains("rank 1 of 3") && err.contains("give every rank the same arguments"), "{err}");
    // --json: one error object on stdout, from rank 0.
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (v["error"].as_bool(), v["kind"].as_str(), v["exit_code"].as_i64()),
        (Some(true), Some("cluster"), Some(1))
    );
}

#[test]
fn one_ranks_failure_ends_every_rank_with_one_message_and_no_output() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    for fault in ["input:read=3", "output:write=2"] {
        let target = dir.path().join("out");
        let args = ["tsqr", "--input", input.to_str().unwrap(), "--output", target.to_str().unwrap(), "--workers", "1"];
        // Ranks 0 and 1 are well; rank 2's disk fails.
        let out = launcher(&mpirun)
            .args(["-np", "2", BIN])
            .args(args)
            .args([":", "-np", "1", "env", &format!("OUTCORE_INJECT_FAULTS={fault}"), BIN])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{fault}: the job succeeded");
        let err = text(&out.stderr);
        assert_eq!(err.matches("large-svd: error:").count(), 1, "{fault}: one message, from rank 0: {err}");
        assert!(err.contains("large-svd: error: rank 2:") && err.contains("injected fault"), "{fault}: {err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("a.zarr")], "{fault}: output left behind");
    }
}

/// A TSQR of `ranks` ranks long enough to be interrupted (30,000,000 x 60, one worker each),
/// its output `dir/out` and spill files under `dir/spill` (returned).
fn long_job(mpirun: &Path, ranks: usize, dir: &Path) -> (std::process::Child, PathBuf) {
    let spill = dir.join("spill");
    std::fs::create_dir(&spill).unwrap();
    let args = ["tsqr", "--rows", "30000000", "--cols", "60", "--chunk-rows", "3000", "--workers", "1"];
    let child = patient_launcher(mpirun)
        .args(["-np", &ranks.to_string(), BIN])
        .args(args)
        .arg("--output")
        .arg(dir.join("out"))
        .arg("--spill-dir")
        .arg(&spill)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, spill)
}

#[test]
fn ctrl_c_under_mpirun_stops_every_rank_and_leaves_nothing() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, spill) = long_job(&mpirun, 3, dir.path());
    // Wait until every rank is computing: each has its spill directory, rank 0 its partial output.
    let started = std::time::Instant::now();
    let count = |d: &Path| std::fs::read_dir(d).map_or(0, |r| r.count());
    while count(&spill) < 3 || count(dir.path()) < 2 {
        assert!(child.try_wait().unwrap().is_none(), "the job ended before it could be interrupted");
        assert!(started.elapsed().as_secs() < 120, "the ranks never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill only sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let sent = std::time::Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success(), "an interrupted job reported success");
    assert!(sent.elapsed().as_secs() < 30, "took {:?} to stop", sent.elapsed());
    assert_eq!(count(&spill), 0, "spill directories left: {}", text(&output.stderr));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("spill")], "partial output left: {}", text(&output.stderr));
}

#[test]
fn a_dead_ranks_survivors_stop_on_their_own_and_leave_nothing() {
    survivors_of(2, 1);
}

#[test]
fn when_rank_0_dies_the_other_ranks_stop_on_their_own_and_say_why() {
    survivors_of(2, 0);
}

#[test]
fn ranks_that_never_wait_for_a_dead_rank_are_told_by_rank_0() {
    survivors_of(3, 2);
}

/// Rank `dies` of a job of `ranks` is killed mid-run. Every other rank stops on its own, before
/// mpirun's SIGTERM ten seconds later (see `patient_launcher`), as it must where no launcher sends one
/// (`srun` without `-K`): rank 0 (or, when rank 0 died, each rank) says why, each removes its
/// spill files and rank 0 its partial output.
fn survivors_of(ranks: usize, dies: usize) {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, spill) = long_job(&mpirun, ranks, dir.path());
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map_or(Vec::new(), |r| r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
    };
    // Every rank computing: each has its spill directory, rank 0 its partial output.
    let started = std::time::Instant::now();
    while names(&spill).len() < ranks || !names(dir.path()).iter().any(|n| n.starts_with(".out.partial-")) {
        assert!(child.try_wait().unwrap().is_none(), "the job ended before a rank could die");
        assert!(started.elapsed().as_secs() < 120, "the ranks never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Each rank's process id, by the rank Open MPI gave it.
    let rank_of = |pid: i32| {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ).into_owned();
        environ.split('\0').find_map(|v| v.strip_prefix("OMPI_COMM_WORLD_RANK=")?.parse::<usize>().ok())
    };
    let mut pids = vec![0; ranks];
    for pid in mpirun::children(child.id()) {
        pids[rank_of(pid).expect("a rank's number")] = pid;
    }
    // SAFETY: kill only sends a signal to a rank of our own child job.
    assert_eq!(unsafe { libc::kill(pids[dies], libc::SIGKILL) }, 0);
    let killed = std::time::Instant::now();
    let survivors: Vec<i32> = (0..ranks).filter(|&r| r != dies).map(|r| pids[r]).collect();
    while !survivors.iter().all(|&pid| mpirun::exited(pid)) {
        assert!(killed.elapsed().as_secs() < 8, "a rank waited for the dead rank {dies} for 8 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    while child.try_wait().unwrap().is_none() {
        if killed.elapsed().as_secs() >= 60 {
            let _ = child.kill();
            panic!("the job did not end within 60 s of a rank's death");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let err = text(&output.stderr);
    assert!(!output.status.success(), "the job succeeded without a rank: {err}");
    let why = format!("rank {dies}: its process ended before the run did");
    assert!(err.contains(&why), "no rank said why it stopped: {err}");
    for pid in survivors {
        let own = format!("outcore-spill-{pid}@");
        assert!(!names(&spill).iter().any(|n| n.starts_with(&own)), "a surviving rank left its spill files: {err}");
    }
    // A killed rank 0 leaves its partial output (named by its process id: the next run in
    // that directory removes it); a surviving one removes it.
    let partial = |n: &String| n == "out" || (dies != 0 && n.starts_with(".out.partial-"));
    assert!(!names(dir.path()).iter().any(partial), "partial output left: {err}");
}

#[test]
fn limits_the_plan_accepts_or_suggests_hold_on_ranks() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = |cols: &str, rows: &str, limit: &str| {
        let _ = std::fs::remove_dir_all(&out);
        let args = ["tsqr", "--rows", rows, "--cols", cols, "--memory-limit", limit, "--output", out.to_str().unwrap()];
        on_ranks(&mpirun, 2, &args)
    };
    // Accepted at 64 MiB: it used to fail mid-run on 2 ranks ("cannot reserve 23.4 MiB"), the
    // MPI library's own memory (about 9 MiB a rank) missing from the plan.
    let accepted = run("150", "300000", "64MiB");
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));
    // Refused up front, and the limit suggested works.
    let refused = run("300", "100000", "64MiB");
    let err = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    let suggested = err.split("raise --memory-limit to ").nth(1).and_then(|r| r.split_whitespace().next()).expect(&err);
    let again = run("300", "100000", suggested);
    assert!(again.status.success(), "the suggested {suggested} failed: {}", text(&again.stderr));
    // Every command that writes an output: refused at 4 MiB, it works at the limit it suggests.
    for command in [
        &["rsvd", "--rows", "8000", "--cols", "600", "--chunk", "2000", "-k", "5"][..],
        &["qr", "--rows", "40000", "--cols", "120"],
        &["lstsq", "--rows", "40000", "--cols", "120", "--rhs-cols", "3"],
    ] {
        let run = |limit: &str| {
            let _ = std::fs::remove_dir_all(&out);
            let args: Vec<&str> =
                command.iter().copied().chain(["--memory-limit", limit, "--output", out.to_str().unwrap()]).collect();
            on_ranks(&mpirun, 2, &args)
        };
        let err = text(&run("4MiB").stderr);
        let suggested =
            err.split("raise --memory-limit to ").nth(1).and_then(|r| r.split_whitespace().next()).expect(&err);
        let again = run(suggested);
        assert!(again.status.success(), "{} at the suggested {suggested}: {}", command[0], text(&again.stderr));
    }
}

#[test]
fn means_adds_the_lessons_processes_and_distributed_rows() {
    let Some(_) = mpirun() else { return };
    let out =
        Command::new(BIN).args(["means", "--tasks", "12", "--n", "500", "--repeat", "1", "--json"]).output().unwrap();
    let v = json(&out);
    let names: Vec<&str> = v["results"].as_array().unwrap().iter().map(|r| r["scheduler"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "serial",
            "mt_1",
            "mt_2",
            "mt_4",
            "processes_1",
            "processes_2",
            "processes_4",
            "distributed_1",
            "distributed_2",
            "distributed_4"
        ]
    );
    for row in &v["results"].as_array().unwrap()[4..] {
        assert!(row["job_wall_seconds"].as_f64().unwrap() >= row["median_seconds"].as_f64().unwrap(), "{row}");
        assert!(row["dask_median_seconds"].is_f64(), "{row}");
    }
}

#[test]
fn each_rank_writes_its_memory_timeline_and_one_process_commands_refuse_ranks() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let timeline = dir.path().join("memory.csv");
    let args = ["tsqr", "--rows", "50000", "--cols", "20", "--chunk-rows", "3000", "--values-only", "--json"];
    let out =
        launcher(&mpirun).args(["-np", "2", BIN]).args(args).arg("--memory-timeline").arg(&timeline).output().unwrap();
    json(&out);
    for file in ["memory.csv", "memory.rank1.csv"] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap_or_default();
        assert!(text.starts_with("seconds,process") && text.lines().count() > 1, "{file}: {text:?}");
    }
    let out =
        on_ranks(&mpirun, 2, &["generate", "--rows", "100", "--output", dir.path().join("g.zarr").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("runs in one process"), "{}", text(&out.stderr));
    assert!(!dir.path().join("g.zarr").exists());
}

/// Messages cut into pieces (as those over 1 GiB are) arrive whole: R factors of 20,000 bytes
/// sent in pieces of 1,000.
#[test]
fn messages_sent_in_pieces_give_the_same_bits() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let args = ["tsqr", "--input", input.to_str().unwrap(), "--values-only", "--json"];
    let threads = json(&alone(&[&args[..], &["--workers", "2"]].concat()));
    let out = launcher(&mpirun)
        .args(["-x", "OUTCORE_MPI_PIECE_BYTES=1000", "-np", "3", BIN])
        .args(args)
        .args(["--workers", "1"])
        .output()
        .unwrap();
    assert_eq!(value_bits(&json(&out)), value_bits(&threads));
}

#[test]
fn qr_and_lstsq_on_two_and_three_ranks_write_the_bits_of_the_threads_scheduler() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let rhs = dir.path().join("b.zarr");
    let generate = ["generate", "--rows", "100003", "--cols", "3", "--chunk-rows", "5000", "--seed", "8", "--json"];
    json(&alone(&[&generate[..], &["--output", rhs.to_str().unwrap()]].concat()));
    // Weights uniform in [0, 1), chunked unlike A and B.
    let weights = dir.path().join("w.zarr");
    let generate = ["generate", "--rows", "100003", "--cols", "1", "--chunk-rows", "7000", "--seed", "9", "--json"];
    json(&alone(&[&generate[..], &["--output", weights.to_str().unwrap()]].concat()));
    let (a, b, w) = (input.to_str().unwrap(), rhs.to_str().unwrap(), weights.to_str().unwrap());
    let jobs: [(&str, Vec<&str>, &[&str]); 3] = [
        ("qr", vec!["qr", "--input", a, "--rhs", b], &["q.zarr", "r.zarr", "qtb.zarr"]),
        ("lstsq", vec!["lstsq", "--input", a, "--rhs", b, "--fit-intercept"], &["x.zarr", "s.zarr"]),
        ("weighted", vec!["lstsq", "--input", a, "--rhs", b, "--weights", w, "--fit-intercept"], &["x.zarr"]),
    ];
    for (name, command, arrays) in jobs {
        let run = |ranks: usize, output: &Path| {
            let args = [&command[..], &["--json", "--memory-limit", "128MiB", "--workers", "1", "--output"]].concat();
            let args = [&args[..], &[output.to_str().unwrap()]].concat();
            if ranks == 0 { json(&alone(&args)) } else { json(&on_ranks(&mpirun, ranks, &args)) }
        };
        let threads = dir.path().join(format!("{name}-threads"));
        let one = run(0, &threads);
        assert!(name != "qr" || one.get("qt_b").is_some(), "qr --rhs reports Q^T B: {one}");
        for ranks in [2, 3] {
            let ours = dir.path().join(format!("{name}-{ranks}"));
            let summary = run(ranks, &ours);
            assert_eq!(summary["ranks"].as_array().map(Vec::len), Some(ranks), "{name}: {summary}");
            for field in ["r_diagonal", "qt_b", "x", "intercept", "stderr", "rss"] {
                assert_eq!(summary.get(field), one.get(field), "{name} on {ranks} ranks: {field} differs");
            }
            for array in arrays {
                assert!(
                    array_files(&ours.join(array)) == array_files(&threads.join(array)),
                    "{name} on {ranks} ranks: {array} differs from the threads scheduler's"
                );
            }
        }
    }
}
