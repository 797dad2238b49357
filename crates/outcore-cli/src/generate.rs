//! `large-svd generate`: a seeded random matrix (or an existing .npy/Zarr input) into a new
//! Zarr array.

use std::sync::Arc;

use outcore::storage::{Compression, StorageError, ZarrOptions, ZarrStore, format_size};
use outcore::{CancelToken, Error, Result, copy_matrix};
use serde_json::json;

use crate::cli::{GenerateArgs, RunArgs};
use crate::common::{MemorySummary, Session, create_output, open_matrix, peak_rss};

pub fn run(args: &GenerateArgs, run: &RunArgs, cancel: CancelToken) -> Result<()> {
    let a = open_matrix(&args.matrix)?;
    let compression: Compression =
        args.compression.parse().map_err(|e: StorageError| Error::invalid("--compression", e.to_string()))?;
    let out = create_output(&args.output, args.overwrite, &a, true)?;
    let grid = match &args.matrix.input {
        // Converting keeps the input's shape, in row panels like the generated default.
        Some(_) => outcore::storage::ChunkGrid::new(
            a.rows(),
            a.cols(),
            args.matrix.chunk_rows.min(a.rows()).max(1),
            a.cols().max(1),
        )?,
        None => a.grid(),
    };
    let session = Session::new(run, cancel, |engine| {
        let workers = engine.scheduler().workers() as u64;
        Ok(workers * (6 * grid.max_chunk_bytes() + a.store().read_scratch_bytes()) + (16 << 20))
    })?;
    let mut attributes = serde_json::Map::new();
    attributes.insert("outcore".into(), json!({ "source": a.describe() }));
    // A conversion keeps the input's precision (float32 stays float32).
    let options = ZarrOptions { dtype: a.store().dtype(), compression, attributes, ..ZarrOptions::default() };
    let dst = Arc::new(ZarrStore::create(out.path(), grid, &options)?);
    let stats = copy_matrix(&session.engine, &a, dst, &session.control)?;
    session.finish_progress();
    let path = out.commit()?;
    let wall = session.started.elapsed().as_secs_f64();
    let (_, peaks) = session.memory();
    let report = session.engine.memory_report();
    if run.json {
        let (cr, cc) = grid.chunk_shape();
        println!(
            "{}",
            json!({
                "command": "generate",
                "input": a.describe(),
                "output": path,
                "shape": [a.rows(), a.cols()],
                "chunks": [cr, cc],
                "bytes": grid.bytes(),
                "tasks": stats.tasks,
                "wall_seconds": wall,
                "peak_rss_bytes": peak_rss(),
                "memory": MemorySummary::new(report, peaks).with_dashboard(&session),
            })
        );
    } else {
        println!(
            "wrote {} ({} x {}, {}, chunks {:?}) in {wall:.2} s, {:.0} MiB/s, peak RSS {} (memory limit {})",
            path.display(),
            a.rows(),
            a.cols(),
            format_size(grid.bytes()),
            grid.chunk_shape(),
            grid.bytes() as f64 / wall / (1 << 20) as f64,
            format_size(peak_rss()),
            session.limit_text(),
        );
    }
    session.write_side_files(run, "generate memory")
}
