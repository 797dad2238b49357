//! `large-svd` with no command: the Dask lesson's two SVD workloads, each from a temporary Zarr
//! store: TSQR of a 2,000,000 x 100 matrix and the randomized SVD (k = 5) of a 10000 x 10000 one.

use std::sync::Arc;
use std::time::Instant;

use outcore::storage::{MemoryPeaks, StorageError, ZarrOptions, ZarrStore, format_size};
use outcore::{
    CancelToken, ChunkedMatrix, Destination, Distribution, RandomizedSvdOptions, RandomizedSvdPlan, Result, SvdOptions,
    SvdPlan, copy_matrix,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::lifecycle::Command;
use crate::args::{MemoryLimit, RunArgs};
use crate::report::human::{peaks_line, values_line};
use crate::report::json::{ErrorEstimateJson, MemoryPeaksJson};
use crate::report::summary::MemorySummary;
use crate::session::Session;
use crate::system::{peak_rss, reset_peak_rss};

/// One workload of the demo: the lesson's Dask call, and its matrix.
struct Workload {
    title: &'static str,
    rows: usize,
    cols: usize,
    chunk: (usize, usize),
}

const TSQR: Workload = Workload {
    title: "da.linalg.svd(da.random.random((2000000, 100), chunks=(10000, 100)))",
    rows: 2_000_000,
    cols: 100,
    chunk: (10_000, 100),
};

const RSVD: Workload = Workload {
    title: "da.linalg.svd_compressed(da.random.random((10000, 10000), chunks=(2000, 2000)), k=5)",
    rows: 10_000,
    cols: 10_000,
    chunk: (2_000, 2_000),
};

/// The demo: both workloads, then their summaries.
pub(super) struct Demo;

/// The demo's options: those given, with a 64 MiB limit unless one was set.
pub(super) fn run_args(run: &RunArgs) -> RunArgs {
    let mut run = run.clone();
    if run.memory_limit == MemoryLimit::Auto {
        run.memory_limit = MemoryLimit::Bytes(64 << 20);
    }
    run
}

impl Command for Demo {
    /// The directory of the two stores.
    type Setup = TempDir;
    /// The two workloads' summaries.
    type Outcome = (Value, Value);
    const TITLE: &'static str = "outcore demo: the lesson's two SVDs";

    fn set_up(&self, run: &RunArgs, cancel: CancelToken) -> Result<(Session, TempDir)> {
        let dir = tempfile::Builder::new()
            .prefix("outcore-demo-")
            .tempdir()
            .map_err(|e| StorageError::io(std::env::temp_dir(), e))?;
        Ok((Session::new(run, cancel, |_| Ok(0))?, dir))
    }

    fn run(&self, session: &Session, dir: TempDir, _: &[u8]) -> Result<(Value, Value)> {
        let engine = &session.engine;
        if !session.json {
            eprintln!("outcore demo: the Dask lesson's two SVDs, each from a Zarr store in {}", dir.path().display());
        }
        let (tsqr_path, tsqr_write) = write_input(session, &TSQR, dir.path())?;
        reset_peak_rss();
        let a = ChunkedMatrix::open(&tsqr_path)?;
        let start = Instant::now();
        let plan = SvdPlan::new(engine, &a, &SvdOptions::new().vectors(false))?;
        let svd = plan.run_with(engine, Destination::Memory, &session.control)?;
        session.finish_progress();
        let tsqr = summary(session, &TSQR, start.elapsed().as_secs_f64(), tsqr_write, &svd.s, svd.stats.tasks, None);

        let (rsvd_path, rsvd_write) = write_input(session, &RSVD, dir.path())?;
        reset_peak_rss();
        let a = ChunkedMatrix::open(&rsvd_path)?;
        let start = Instant::now();
        let options = RandomizedSvdOptions::default();
        let plan = RandomizedSvdPlan::new(engine, &a, &options)?;
        let result = plan.run_with(engine, Destination::Memory, Destination::Memory, &session.control)?;
        let extra = json!({
            "error_estimate": ErrorEstimateJson::from(&result.error),
            "passes_over_input": result.passes,
            "power_iters": options.power_iters,
        });
        let elapsed = start.elapsed().as_secs_f64();
        let rsvd = summary(session, &RSVD, elapsed, rsvd_write, &result.svd.s, result.svd.stats.tasks, Some(extra));
        Ok((tsqr, rsvd))
    }

    fn finish(&self, session: &Session, (tsqr, rsvd): (Value, Value)) -> Result<()> {
        let (_, peaks) = session.memory();
        let peaks = MemoryPeaksJson::from(&peaks);
        if session.json {
            println!("{}", json!({ "command": "demo", "tsqr": tsqr, "rsvd": rsvd, "memory_peaks": peaks }));
        } else {
            print!("{}{}", render(&TSQR, &tsqr), render(&RSVD, &rsvd));
            println!("\n{}", peaks_line(&peaks));
        }
        Ok(())
    }
}

/// Writes the workload's random matrix to a Zarr store; returns its path and the seconds taken.
fn write_input(session: &Session, w: &Workload, dir: &std::path::Path) -> Result<(std::path::PathBuf, f64)> {
    let path = dir.join(format!("{}x{}.zarr", w.rows, w.cols));
    if !session.json {
        eprintln!(
            "writing a {} x {} uniform random matrix ({}) ...",
            w.rows,
            w.cols,
            format_size((w.rows * w.cols * 8) as u64)
        );
    }
    let start = Instant::now();
    let generated = ChunkedMatrix::generated(Distribution::Uniform, 0, w.rows, w.cols, w.chunk.0, w.chunk.1)?;
    let store = Arc::new(ZarrStore::create(&path, generated.grid(), &ZarrOptions::default())?);
    copy_matrix(&session.engine, &generated, store, &session.control)?;
    session.finish_progress();
    Ok((path, start.elapsed().as_secs_f64()))
}

fn summary(
    session: &Session,
    w: &Workload,
    seconds: f64,
    write_seconds: f64,
    s: &[f64],
    tasks: usize,
    extra: Option<Value>,
) -> Value {
    let engine = &session.engine;
    let report = engine.memory_report();
    let mut v = json!({
        "lesson": w.title,
        "shape": [w.rows, w.cols],
        "chunks": [w.chunk.0, w.chunk.1],
        "singular_values": s,
        "wall_seconds": seconds,
        "write_seconds": write_seconds,
        "peak_rss_bytes": peak_rss(),
        "tasks": tasks,
        "scheduler": engine.scheduler().name(),
        "workers": engine.scheduler().workers(),
        "memory": MemorySummary::new(&report, &MemoryPeaks::of(&[], &report), None),
    });
    if let (Some(extra), Some(map)) = (extra, v.as_object_mut()) {
        map.extend(extra.as_object().cloned().unwrap_or_default());
    }
    v
}

/// The human summary of workload `w` from its JSON summary `v`.
fn render(w: &Workload, v: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let bytes = (w.rows * w.cols * 8) as u64;
    let peak = v["peak_rss_bytes"].as_u64().unwrap_or(0);
    let s: Vec<f64> =
        v["singular_values"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
    let _ = writeln!(out, "\n{}", w.title);
    let _ = writeln!(
        out,
        "  matrix        {} x {} float64 = {} on disk (Zarr, chunks {} x {})",
        w.rows,
        w.cols,
        format_size(bytes),
        w.chunk.0,
        w.chunk.1
    );
    let _ = writeln!(out, "  memory limit  {}", format_size(v["memory"]["limit"].as_u64().unwrap_or(0)));
    let _ = writeln!(
        out,
        "  peak RSS      {} during the SVD ({:.1}% of the matrix)",
        format_size(peak),
        100.0 * peak as f64 / bytes as f64
    );
    let _ = writeln!(
        out,
        "  time          {:.2} s for the SVD ({} tasks, {} scheduler, {} workers); {:.2} s to write the matrix",
        v["wall_seconds"].as_f64().unwrap_or(0.0),
        v["tasks"],
        v["scheduler"].as_str().unwrap_or(""),
        v["workers"],
        v["write_seconds"].as_f64().unwrap_or(0.0)
    );
    let _ = writeln!(out, "  top singular values  {}", values_line(&s, 5));
    if let Some(est) = v.get("error_estimate") {
        let _ = writeln!(
            out,
            "  error estimate      ||A - U S V^T||_F ~ {:.1} ({} power iterations, {} passes over A)",
            est["frobenius"].as_f64().unwrap_or(f64::NAN),
            v["power_iters"],
            v["passes_over_input"]
        );
    }
    let _ = writeln!(out, "  (Dask on this machine, side by side: python3 benches/compare_dask.py --setup)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_shows_only_what_this_run_measured() {
        let v = json!({
            "peak_rss_bytes": 90u64 << 20,
            "singular_values": [577.4, 29.1],
            "memory": { "limit": 64u64 << 20 },
            "wall_seconds": 1.25,
            "tasks": 407,
            "scheduler": "threads",
            "workers": 2,
            "write_seconds": 0.5,
        });
        let text = render(&TSQR, &v);
        assert!(text.contains("1.25 s for the SVD") && text.contains("0.50 s to write"), "{text}");
        // No Dask figure from another machine: how to measure it here instead.
        assert!(text.contains("python3 benches/compare_dask.py --setup") && !text.contains("Dask threads"), "{text}");
    }
}
