//! The values flags take, and their parsers: each refuses a bad value with a message naming
//! what it wants (a usage error, exit code 2, before anything runs).

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use outcore::storage::{Compression, ReadMode, parse_size};
use outcore::{Accounting, Distribution, QrMode, RandomizedMethod, Thresholds};

use crate::report::flags;

/// `--memory-limit`: a size, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemoryLimit {
    /// What the plan needs, from 64 MiB up to half the machine's RAM.
    Auto,
    /// This many bytes.
    Bytes(u64),
}

/// `--scheduler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SchedulerKind {
    /// One task at a time on the calling thread.
    Serial,
    /// Up to `--workers` tasks at a time.
    Threads,
}

/// `--memory-timeline`: a file and its format.
#[derive(Clone, Debug)]
pub(crate) struct TimelineFile {
    pub path: PathBuf,
    /// JSON lines rather than CSV.
    pub jsonl: bool,
}

/// `--visualize`: a file and what writes it.
#[derive(Clone, Debug)]
pub(crate) struct GraphFile {
    pub path: PathBuf,
    /// Graphviz's output format (`svg`, `png`, `pdf`), or `None` for DOT source.
    pub rendered: Option<&'static str>,
}

pub(super) fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 is not allowed; it must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?} is not a whole number ({e})")),
    }
}

pub(super) fn workers(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 workers cannot run anything; give 1 or more".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?} is not a whole number ({e})")),
    }
}

pub(super) fn memory_limit(text: &str) -> Result<MemoryLimit, String> {
    if text == "auto" {
        return Ok(MemoryLimit::Auto);
    }
    parse_size(text).map(MemoryLimit::Bytes).map_err(|e| flags::storage_message(&e))
}

pub(super) fn thresholds(text: &str) -> Result<Thresholds, String> {
    text.parse().map_err(|e| flags::storage_message(&e))
}

pub(super) fn accounting(text: &str) -> Result<Accounting, String> {
    text.parse().map_err(|e| flags::storage_message(&e))
}

pub(super) fn compression(text: &str) -> Result<Compression, String> {
    text.parse().map_err(|e| flags::storage_message(&e))
}

pub(super) fn distribution(text: &str) -> Result<Distribution, String> {
    text.parse().map_err(|e| flags::message(&e))
}

pub(super) fn method(text: &str) -> Result<RandomizedMethod, String> {
    text.parse().map_err(|e| flags::message(&e))
}

pub(super) fn qr_mode(text: &str) -> Result<QrMode, String> {
    match text {
        "reduced" => Ok(QrMode::Reduced),
        "r" => Ok(QrMode::R),
        _ => Err(format!("{text:?} is not one of reduced, r")),
    }
}

pub(super) fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("{text} is not a number of 0 or more")),
    }
}

pub(super) fn read_mode(text: &str) -> Result<ReadMode, String> {
    match text {
        "buffered" => Ok(ReadMode::Buffered),
        "direct" => Ok(ReadMode::Direct),
        _ => Err(format!("{text:?} is not one of buffered, direct")),
    }
}

pub(super) fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!("{text} is not a number of seconds; give 0 or more")),
    }
}

/// The lower-case extension of `path` (empty without one).
fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

pub(super) fn timeline_file(text: &str) -> Result<TimelineFile, String> {
    let path = PathBuf::from(text);
    match extension(&path).as_str() {
        "csv" => Ok(TimelineFile { path, jsonl: false }),
        "jsonl" | "ndjson" | "json" => Ok(TimelineFile { path, jsonl: true }),
        other => Err(format!("unknown format .{other}; use .csv, or .jsonl for JSON lines")),
    }
}

pub(super) fn svg_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if extension(&path) == "svg" { Ok(path) } else { Err(format!("{text} must end in .svg")) }
}

pub(super) fn html_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if ["html", "htm"].contains(&extension(&path).as_str()) {
        Ok(path)
    } else {
        Err(format!("{text} must end in .html"))
    }
}

pub(super) fn graph_file(text: &str) -> Result<GraphFile, String> {
    let path = PathBuf::from(text);
    let rendered = match extension(&path).as_str() {
        "dot" | "gv" | "" => None,
        "svg" => Some("svg"),
        "png" => Some("png"),
        "pdf" => Some("pdf"),
        other => return Err(format!("unknown format .{other}; use .dot, .svg, .png or .pdf")),
    };
    Ok(GraphFile { path, rendered })
}
