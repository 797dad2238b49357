//! The library's rustdoc examples name only what a program depending on `outcore` alone can
//! name: `outcore` and the standard library. Rustdoc builds doctests with every dependency and
//! dev-dependency of the crate in reach, so an example naming `faer::Mat` passes there and
//! fails in a user's crate. This test reads every example of `src/` and refuses paths into the
//! crate's own dependencies (the library re-exports what its examples need: `outcore::faer`,
//! `outcore::storage`).

use std::path::{Path, PathBuf};

/// The crates `Cargo.toml` lists as dependencies and dev-dependencies, as code names them,
/// but the crate itself.
fn dependencies() -> Vec<String> {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("Cargo.toml");
    let mut names = Vec::new();
    let mut listing = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            listing = matches!(line, "[dependencies]" | "[dev-dependencies]");
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        // The crate itself may be a dev-dependency (with features for its tests).
        if listing && !name.is_empty() && !line.starts_with('#') && name != env!("CARGO_PKG_NAME") {
            names.push(name.replace('-', "_"));
        }
    }
    names
}

/// Each example's lines (`# ` hidden lines included) in `source`, with their line numbers.
fn examples(source: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    // Within a fenced block: whether it is Rust.
    let mut block: Option<bool> = None;
    for (i, line) in source.lines().enumerate() {
        let Some(doc) = line.trim_start().strip_prefix("///").or_else(|| line.trim_start().strip_prefix("//!")) else {
            block = None;
            continue;
        };
        let doc = doc.strip_prefix(' ').unwrap_or(doc);
        if let Some(fence) = doc.trim_start().strip_prefix("```") {
            // Rust unless another language is named.
            let rust = fence.is_empty()
                || fence
                    .split(',')
                    .any(|t| matches!(t, "rust" | "no_run" | "should_panic" | "ignore" | "compile_fail"));
            block = if block.is_some() { None } else { Some(rust) };
            continue;
        }
        if block == Some(true) {
            lines.push((i + 1, doc.strip_prefix("# ").unwrap_or(doc).to_string()));
        }
    }
    lines
}

/// Paths of `source`'s examples that start at one of `crates`: `file:line: text`.
fn foreign_paths(file: &str, source: &str, crates: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for (line, text) in examples(source) {
        let bytes = text.as_bytes();
        for name in crates {
            let mut from = 0;
            while let Some(at) = text[from..].find(&format!("{name}::")).map(|i| i + from) {
                // At a path's start: not after `::`, a letter, a digit or `_`.
                let start = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || matches!(bytes[at - 1], b'_' | b':'));
                if start {
                    found.push(format!("{file}:{line}: {}", text.trim()));
                }
                from = at + name.len() + 2;
            }
        }
    }
    found
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_examples_name_only_outcore_and_the_standard_library() {
    let crates = dependencies();
    assert!(crates.iter().any(|c| c == "faer") && crates.iter().any(|c| c == "proptest"), "{crates:?}");
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let (mut found, mut lines) = (Vec::new(), 0);
    for file in &files {
        let source = std::fs::read_to_string(file).expect("a source file");
        lines += examples(&source).len();
        found.extend(foreign_paths(&file.display().to_string(), &source, &crates));
    }
    assert!(lines > 100, "the examples were not found ({lines} lines)");
    assert!(
        found.is_empty(),
        "examples a user's crate cannot build (name these through `outcore::`):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_a_dependency_named_in_an_example_and_nowhere_else() {
    let crates = vec!["faer".to_string()];
    let source = "/// ```\n/// let a = faer::Mat::<f64>::zeros(2, 2);\n/// # use faer::Par;\n/// let b = outcore::faer::Mat::<f64>::zeros(2, 2);\n/// ```\n\
                  /// ```text\n/// faer::Mat\n/// ```\nfn f() { faer::Mat::<f64>::zeros(1, 1); }\n";
    let found = foreign_paths("x.rs", source, &crates);
    assert_eq!(found, ["x.rs:2: let a = faer::Mat::<f64>::zeros(2, 2);", "x.rs:3: use faer::Par;"]);
}
