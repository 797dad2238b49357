//! Copying a matrix chunk by chunk into another store, as a task graph: `large-svd generate`
//! (a generated matrix into a Zarr array) and format conversion (`.npy` into Zarr) use it, with
//! the schedulers' memory admission and progress.

use std::sync::Arc;

use outcore_storage::{ChunkIndex, ChunkStore, Knob, Pinned, Reservation};

use crate::error::{Error, MemoryError, Result};
use crate::linalg::budget::MemoryModel;
use crate::matrix::{ChunkedMatrix, MatrixReader};
use crate::run::{Engine, RunControl, RunStats};
use crate::task::{Block, Executor, Operation, TaskGraph, WorkerScratch};

/// Copy one chunk of the destination grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CopyChunk(ChunkIndex);

impl Operation for CopyChunk {
    fn stage(&self) -> &'static str {
        "copy chunk"
    }
    fn label(&self) -> String {
        format!("copy chunk {}", self.0)
    }
    fn row_block(&self) -> Option<usize> {
        Some(self.0.row)
    }
}

struct CopyExecutor {
    reader: MatrixReader,
    dst: Arc<dyn ChunkStore>,
}

impl Executor for CopyExecutor {
    type Op = CopyChunk;

    fn execute(
        &self,
        op: &CopyChunk,
        _inputs: &[Pinned],
        budget: &mut Reservation,
        scratch: &mut WorkerScratch,
    ) -> Result<Vec<Block>> {
        let e = self.dst.grid().extent(op.0)?;
        let [block, chunk] = scratch.buffers([e.len(), self.reader.buffer_len()], budget)?;
        let view = faer::MatMut::from_row_major_slice_mut(block, e.rows, e.cols);
        self.reader.read(e.row0..e.row0 + e.rows, e.col0..e.col0 + e.cols, view, budget, chunk)?;
        self.dst.write_chunk(op.0, block)?;
        Ok(Vec::new())
    }
}

/// Copies `src` into `dst` (same shape, any chunking), one destination chunk per task, under
/// the engine's memory limit: converts a `.npy` file to Zarr, or writes a generated matrix.
pub fn copy_matrix(
    engine: &Engine,
    src: &ChunkedMatrix,
    dst: Arc<dyn ChunkStore>,
    control: &RunControl,
) -> Result<RunStats> {
    let grid = dst.grid();
    if grid.shape() != src.shape() {
        return Err(Error::invalid(
            Knob::Destination,
            format!("{} is {:?} but {} is {:?}", src.describe(), src.shape(), dst.describe(), grid.shape()),
        ));
    }
    // The graph holds a task per chunk: refuse one whose bookkeeping alone exceeds the limit
    // before building it.
    let chunks = grid.grid_shape().0.saturating_mul(grid.grid_shape().1) as u64;
    let bookkeeping = chunks.saturating_mul(TaskGraph::<CopyChunk>::task_bytes(0, 0));
    MemoryError::check_limit("the copy", engine.memory_limit(), bookkeeping, || {
        format!("{chunks} chunks, a task each; larger chunks need fewer")
    })?;
    let reader = MatrixReader::new(src, engine.memory_pool(), false, false)?;
    let mut graph = TaskGraph::new();
    for index in grid.indices() {
        let e = grid.extent(index)?;
        // Reused: the destination block and the source's read buffer. Not: decoding, encoding.
        let reusable = e.bytes() + Block::bytes(reader.buffer_len(), 1);
        let ws = reusable + src.store().read_scratch_bytes() + dst.write_scratch_bytes();
        graph.add_reusing(CopyChunk(index), vec![], 0, ws, reusable)?;
    }
    // As many copies at once as the limit holds, like the algorithms' plans.
    let model = MemoryModel::for_engine(engine).with_graph(&graph, 0);
    graph.set_max_concurrency(model.concurrent());
    let (_, stats) = engine.run_graph(&graph, &CopyExecutor { reader, dst }, control)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Distribution;
    use crate::run::Scheduler;
    use outcore_storage::{ChunkGrid, MemoryStore, read_matrix};

    #[test]
    fn copies_across_chunkings() {
        let src = ChunkedMatrix::generated(Distribution::Normal, 5, 37, 23, 10, 7).unwrap();
        let dst: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new(ChunkGrid::new(37, 23, 6, 23).unwrap()));
        let engine =
            Engine::builder().memory_limit(16 << 20).scheduler(Scheduler::Threads { workers: 2 }).build().unwrap();
        copy_matrix(&engine, &src, dst.clone(), &RunControl::default()).unwrap();
        let expected = read_matrix(src.store().as_ref()).unwrap();
        assert_eq!(read_matrix(dst.as_ref()).unwrap(), expected);
        let wrong: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new(ChunkGrid::new(36, 23, 6, 23).unwrap()));
        assert!(copy_matrix(&engine, &src, wrong, &RunControl::default()).is_err());
    }
}
