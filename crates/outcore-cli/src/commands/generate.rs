//! `large-svd generate`: a seeded random matrix (or an existing .npy/Zarr input) into a new
//! Zarr array.

use std::sync::Arc;

use outcore::files::OutputDir;
use outcore::storage::{ChunkGrid, ZarrOptions, ZarrStore, format_size};
use outcore::{CancelToken, ChunkedMatrix, Result, RunStats, copy_matrix};
use serde_json::json;

use super::lifecycle::Command;
use crate::args::{GenerateArgs, RunArgs};
use crate::inputs::{create_output, open_matrix};
use crate::session::Session;
use crate::system::peak_rss;

/// The input, the array being written, and its grid.
pub(super) struct Setup {
    a: ChunkedMatrix,
    out: OutputDir,
    grid: ChunkGrid,
}

impl Command for GenerateArgs {
    type Setup = Setup;
    type Outcome = (Setup, RunStats);
    const TITLE: &'static str = "generate memory";

    fn set_up(&self, run: &RunArgs, cancel: CancelToken) -> Result<(Session, Setup)> {
        let a = open_matrix(&self.matrix)?;
        let out = create_output(&self.output, self.overwrite, &a, true)?;
        let grid = match &self.matrix.input {
            // Converting keeps the input's shape, in row panels like the generated default.
            Some(_) => {
                ChunkGrid::new(a.rows(), a.cols(), self.matrix.chunk_rows.min(a.rows()).max(1), a.cols().max(1))?
            }
            None => a.grid(),
        };
        let session = Session::new(run, cancel, |engine| {
            let workers = engine.scheduler().workers() as u64;
            Ok(workers * (6 * grid.max_chunk_bytes() + a.store().read_scratch_bytes()) + (16 << 20))
        })?;
        Ok((session, Setup { a, out, grid }))
    }

    fn run(&self, session: &Session, setup: Setup, _: &[u8]) -> Result<(Setup, RunStats)> {
        let mut attributes = serde_json::Map::new();
        attributes.insert("outcore".into(), json!({ "source": setup.a.describe() }));
        // A conversion keeps the input's precision (float32 stays float32).
        let options = ZarrOptions {
            dtype: setup.a.store().dtype(),
            compression: self.compression,
            attributes,
            ..ZarrOptions::default()
        };
        let dst = Arc::new(ZarrStore::create(setup.out.path(), setup.grid, &options)?);
        let stats = copy_matrix(&session.engine, &setup.a, dst, &session.control)?;
        Ok((setup, stats))
    }

    fn finish(&self, session: &Session, (setup, stats): (Setup, RunStats)) -> Result<()> {
        let Setup { a, out, grid } = setup;
        let path = out.commit()?;
        let wall = session.started.elapsed().as_secs_f64();
        if session.json {
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
                    "memory": session.memory_summary(),
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
        Ok(())
    }
}
