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
fn many_jobs_on_one_engine_start_no_threads_and_keep_memory_flat() {
    run("many_runs", &["25"], &["no thread started, memory between runs settled", "bitwise the first"]);
}

#[test]
fn a_cancelled_run_leaves_nothing_and_the_engine_carries_on() {
    run("cancel", &[], &["cancelled halfway", "the next run finished"]);
}

/// The crates outcore's manifest lists as dependencies and dev-dependencies (but outcore
/// itself), as code names them: `cargo test --doc` hands every doctest all of them.
fn dependencies() -> Vec<String> {
    let manifest =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let mut names = Vec::new();
    let mut listing = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            listing = matches!(line, "[dependencies]" | "[dev-dependencies]");
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        if listing && !name.is_empty() && !line.starts_with('#') && name != env!("CARGO_PKG_NAME") {
            names.push(name.replace('-', "_"));
        }
    }
    names
}

/// The rustdoc examples (and the guide's) name outcore's dependencies through `outcore::`
/// (`outcore::faer::Mat`, `outcore::storage::ZarrStore`): an outside crate depends on outcore
/// alone, while `cargo test --doc` hands every doctest all of outcore's dependencies, so a
/// bare `faer::` there compiles in this repository and fails in a user's. Every dependency of
/// the manifest is checked, and zarrs (the storage crate's).
#[test]
fn doc_examples_compile_as_an_outside_crate() {
    let deps: Vec<String> = dependencies().into_iter().chain(["zarrs".to_string()]).map(|d| d + "::").collect();
    assert!(deps.iter().any(|d| d == "faer::") && deps.iter().any(|d| d == "rayon::"), "{deps:?}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("../../docs/library.md"), root.join("../../README.md")];
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut bad = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let markdown = file.extension().is_some_and(|e| e == "md");
        let mut in_rust_block = false;
        for (n, line) in text.lines().enumerate() {
            let code = if markdown {
                if line.trim_start().starts_with("```") {
                    in_rust_block = !in_rust_block && line.trim_start().trim_start_matches('`').starts_with("rust");
                    continue;
                }
                in_rust_block.then_some(line)
            } else {
                let t = line.trim_start();
                (t.starts_with("///") || t.starts_with("//!")).then(|| &t[3..])
            };
            let Some(code) = code else { continue };
            for dep in &deps {
                let bare = code.match_indices(dep).any(|(i, _)| {
                    let before = &code[..i];
                    !before.ends_with("outcore::")
                        && !before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
                        && !before.ends_with('`')
                });
                if bare {
                    bad.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "examples naming a dependency outcore users do not have:\n{}", bad.join("\n"));
}
