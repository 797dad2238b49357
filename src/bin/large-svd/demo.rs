//! `large-svd` with no command: the Dask lesson's SVD demo, from a temporary Zarr store.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use outcore::copy::copy_matrix;
use outcore::storage::{ZarrOptions, ZarrStore, format_size};
use outcore::{ChunkedMatrix, Distribution, Result, TsqrOptions, TsqrPlan};
use serde_json::json;

use crate::cli::RunArgs;
use crate::common::{Session, memory_json, peak_rss, reset_peak_rss, values_line};

const ROWS: usize = 2_000_000;
const COLS: usize = 100;
const CHUNK_ROWS: usize = 10_000;

pub fn run(run: &RunArgs, cancel: Arc<AtomicBool>) -> Result<()> {
    let mut run = run.clone();
    if run.memory_limit == "auto" {
        run.memory_limit = "64MiB".into();
    }
    let dir = tempfile::Builder::new()
        .prefix("outcore-demo-")
        .tempdir()
        .map_err(|e| outcore::storage::StorageError::io(std::env::temp_dir(), e))?;
    let path = dir.path().join("x.zarr");
    let session = Session::new(&run, cancel, |_| Ok(0))?;
    let engine = &session.engine;
    if !run.json {
        eprintln!(
            "outcore demo: the Dask lesson's `da.linalg.svd(da.random.random((2000000, 100), chunks=(10000, 100)))`"
        );
        eprintln!(
            "writing a {ROWS} x {COLS} uniform random matrix ({}) to {} ...",
            format_size((ROWS * COLS * 8) as u64),
            path.display()
        );
    }
    let generated = ChunkedMatrix::generated(Distribution::Uniform, 0, ROWS, COLS, CHUNK_ROWS, COLS)?;
    let store = Arc::new(ZarrStore::create(&path, generated.grid(), &ZarrOptions::default())?);
    copy_matrix(engine, &generated, store)?;
    session.finish_progress();
    let write_seconds = session.started.elapsed().as_secs_f64();

    reset_peak_rss();
    let a = ChunkedMatrix::open(&path)?;
    let options = TsqrOptions { vectors: false, ..TsqrOptions::default() };
    let plan = TsqrPlan::new(&a, &options, engine)?;
    if !run.json {
        eprintln!(
            "computing its singular values from the Zarr store (TSQR) under a {} memory limit ...",
            session.limit_text()
        );
    }
    let start = std::time::Instant::now();
    let svd = plan.run(engine, None)?;
    session.finish_progress();
    let seconds = start.elapsed().as_secs_f64();
    let peak = peak_rss();
    let report = engine.manager().report();
    if run.json {
        println!(
            "{}",
            json!({
                "command": "demo",
                "shape": [ROWS, COLS],
                "chunks": [CHUNK_ROWS, COLS],
                "singular_values": svd.s,
                "wall_seconds": seconds,
                "write_seconds": write_seconds,
                "peak_rss_bytes": peak,
                "scheduler": engine.scheduler().name(),
                "workers": engine.scheduler().workers(),
                "memory": memory_json(&report),
            })
        );
    } else {
        println!(
            "matrix        {ROWS} x {COLS} float64 = {} on disk (Zarr, chunks {CHUNK_ROWS} x {COLS})",
            format_size((ROWS * COLS * 8) as u64)
        );
        println!("memory limit  {}", format_size(report.limit));
        println!(
            "peak RSS      {} during the SVD ({:.1}% of the matrix)",
            format_size(peak),
            100.0 * peak as f64 / (ROWS * COLS * 8) as f64
        );
        println!(
            "time          {seconds:.2} s for the SVD ({} tasks, {} scheduler, {} workers); {write_seconds:.2} s to write the matrix",
            svd.stats.tasks,
            engine.scheduler().name(),
            engine.scheduler().workers()
        );
        println!("top singular values  {}", values_line(&svd.s, 5));
        println!("(Dask on this machine kind: 9.0 s and 182 MiB peak for the same SVD, generated in memory)");
    }
    Ok(())
}
