//! `large-svd tsqr`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use outcore::output::{OutputDir, write_matrix_zarr, write_vector_zarr};
use outcore::storage::{ChunkStore, ZarrOptions, ZarrStore, format_size};
use outcore::{Factor, Result, TsqrOptions, TsqrPlan};
use serde_json::json;

use crate::cli::{RunArgs, TsqrArgs};
use crate::common::{
    InjectedFaults, Session, check_memory_files, memory_json, open_matrix, peak_rss, peaks_line, values_line,
    write_visualization,
};

pub fn run(args: &TsqrArgs, run: &RunArgs, cancel: Arc<AtomicBool>) -> Result<()> {
    let a = open_matrix(&args.matrix)?;
    let options = TsqrOptions {
        vectors: !args.values_only,
        fan_in: args.fan_in,
        panel_rows: args.panel_rows,
        check_finite: !args.matrix.no_check_finite,
    };
    // Refuse a taken output path before any work.
    let output = args.output.as_ref().map(|p| OutputDir::create(p, args.overwrite)).transpose()?;
    check_memory_files(run)?;
    let session = Session::new(run, cancel, |engine| {
        let plan = TsqrPlan::new(&a, &options, engine)?;
        Ok(plan.memory_needed(engine.scheduler().workers()))
    })?;
    let engine = &session.engine;
    let plan = TsqrPlan::new(&a, &options, engine)?;
    if let Some(path) = &run.visualize {
        write_visualization(path, &plan.graph()?.to_dot(&format!("TSQR SVD of {} x {}", a.rows(), a.cols())))?;
    }
    if !run.json {
        eprintln!("large-svd tsqr: {}", a.describe());
        eprintln!(
            "matrix {} x {} ({}), memory limit {}",
            a.rows(),
            a.cols(),
            format_size(a.store().grid().bytes()),
            session.limit_text()
        );
        eprintln!("{}", plan.summary());
    }
    let sink: Option<Arc<dyn ChunkStore>> = match (&output, plan.factor_grid()) {
        (Some(out), Some(grid)) => {
            let name = if a.rows() >= a.cols() { "u.zarr" } else { "v.zarr" };
            let store: Arc<dyn ChunkStore> =
                Arc::new(ZarrStore::create(out.path().join(name), grid, &ZarrOptions::default())?);
            Some(InjectedFaults::from_env()?.output(store))
        }
        _ => None,
    };
    let svd = plan.run(engine, sink)?;
    session.finish_progress();
    let peaks = session.finish_memory(run, "TSQR SVD memory")?;
    let wall = session.started.elapsed().as_secs_f64();
    let report = engine.manager().report();
    let peak = peak_rss();
    let (cr, cc) = a.grid().chunk_shape();
    let mut summary = json!({
        "command": "tsqr",
        "input": a.describe(),
        "shape": [a.rows(), a.cols()],
        "chunks": [cr, cc],
        "singular_values": svd.s,
        "values_only": args.values_only,
        "scheduler": engine.scheduler().name(),
        "workers": engine.scheduler().workers(),
        "tasks": svd.stats.tasks,
        "panels": plan.panels().len(),
        "fan_in": plan.fan_in(),
        "wall_seconds": wall,
        "peak_rss_bytes": peak,
        "memory": memory_json(&report, &peaks),
        "waits_for_memory": svd.stats.waits_for_memory,
    });
    if let Some(out) = output {
        write_vector_zarr(&out.path().join("s.zarr"), &svd.s)?;
        let small = match (&svd.u, &svd.v) {
            (Some(Factor::Dense(u)), _) => Some(("u.zarr", u)),
            (_, Some(Factor::Dense(v))) => Some(("v.zarr", v)),
            _ => None,
        };
        if let Some((name, m)) = small {
            write_matrix_zarr(&out.path().join(name), m.as_ref(), m.nrows())?;
        }
        summary["output"] = json!(out.target());
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        std::fs::write(out.path().join("summary.json"), text)
            .map_err(|e| outcore::storage::StorageError::io(out.path().join("summary.json"), e))?;
        out.commit()?;
    }
    if run.json {
        println!("{summary}");
    } else {
        println!("singular values: {}", values_line(&svd.s, 10));
        println!(
            "time {wall:.2} s, peak RSS {} (memory limit {}, peak managed {}, {} spills), {} tasks on {} {}",
            format_size(peak),
            format_size(report.limit),
            format_size(report.peak_managed),
            report.spill_count,
            svd.stats.tasks,
            engine.scheduler().workers(),
            if engine.scheduler().workers() == 1 { "worker" } else { "workers" },
        );
        println!("{}", peaks_line(&peaks));
        if let Some(path) = &args.output {
            println!(
                "wrote {} (u.zarr, s.zarr, v.zarr, summary.json; V holds right singular vectors as columns)",
                path.display()
            );
        }
    }
    Ok(())
}
