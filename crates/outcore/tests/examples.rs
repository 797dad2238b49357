//! The examples in `examples/` run as written (the host example with a smaller host) and check
//! their own results against faer's dense SVD; each runs in a child process, as a user runs it.
//! `cargo test` builds the examples before the tests.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/NAME`, beside this test's own `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    profile.join("examples").join(name)
}

/// Builds the examples when this test runs on its own (`cargo test --test examples` does not
/// build them; a plain `cargo test` already has). Cargo serializes the builds.
fn build_examples() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let release = example("x").parent().and_then(|p| p.parent()).is_some_and(|p| p.ends_with("release"));
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "--examples", "-p", "outcore"]).current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo");
        assert!(status.success(), "building the examples failed");
    });
}

fn run(name: &str, args: &[&str], expect: &[&str]) -> String {
    let path = example(name);
    if !path.exists() {
        build_examples();
    }
    let out = Command::new(&path).args(args).output().expect("spawn the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed ({}):\n{stdout}\n{stderr}", out.status);
    for text in expect {
        assert!(stdout.contains(text), "{name} did not say {text:?}:\n{stdout}");
    }
    stdout.into_owned()
}

#[test]
fn in_memory_svd_matches_faer() {
    run("in_memory", &[], &["matches faer's dense SVD"]);
}

#[test]
fn a_store_of_ones_own_matches_faer() {
    run("custom_store", &[], &["a store of type", "matches faer's dense SVD"]);
}

#[test]
fn zarr_in_and_out_matches_faer() {
    let dir = tempfile::tempdir().unwrap();
    run("zarr", &[dir.path().to_str().unwrap()], &["matches faer's dense SVD"]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the example left files behind");
}

#[test]
fn a_host_holding_memory_changes_nothing() {
    // The job spills alone (16 MiB limit) and exactly as much with the host's memory around it.
    let stdout =
        run("host_process", &["256"], &[" spills each, singular values bitwise equal", "matches faer's dense SVD"]);
    assert!(!stdout.contains(": 0 spills each"), "the example no longer spills alone:\n{stdout}");
}

#[test]
fn two_concurrent_jobs_on_one_budget_both_finish() {
    run("concurrent_jobs", &[], &["both finished, bitwise as alone, matching faer's dense SVD"]);
}

#[test]
fn a_cancelled_run_leaves_nothing_and_the_engine_carries_on() {
    run("cancel", &[], &["cancelled halfway", "the next run finished"]);
}
