//! The randomized SVD's plan: the sketch, and what the memory limit must be for how many
//! tasks at once.

use outcore_storage::{ChunkGrid, format_size};

use super::graph::graph;
use super::layout::Sketch;
use super::options::{RandomizedMethod, RandomizedSvdOptions};
use crate::error::{MemoryError, Result};
use crate::linalg::budget::MemoryModel;
use crate::linalg::input::{Input, Lent};
use crate::run::Engine;

/// Bytes of one chunk of a matrix in RAM read by the randomized SVD: a task's unit of work.
const CHUNK_BYTES: usize = 4 << 20;

/// Columns per chunk of a matrix in RAM read by the randomized SVD.
const CHUNK_COLS: usize = 1024;

/// Nonzeros per chunk of a sparse matrix read by the randomized SVD.
const SPARSE_CHUNK_NNZ: usize = 1 << 21;

/// Most rows and columns per chunk of a sparse matrix read by the randomized SVD.
const SPARSE_CHUNK_SIDE: usize = 2048;

/// A planned randomized SVD, ready to run ([`run`](Self::run), [`run_with`](Self::run_with)).
/// Made with [`RandomizedSvdPlan::new`]; a matrix in the caller's memory stays lent to the plan while it
/// lives.
pub struct RandomizedSvdPlan<'a> {
    pub(super) sketch: Sketch,
    memory: MemoryModel,
    _input: Lent<'a>,
}

impl std::fmt::Debug for RandomizedSvdPlan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomizedSvdPlan")
            .field("matrix", &self.sketch.a.describe())
            .field("options", &self.sketch.options)
            .field("max_task_bytes", &self.memory.max_task)
            .finish_non_exhaustive()
    }
}

impl<'a> RandomizedSvdPlan<'a> {
    /// Plans the randomized SVD of `a` (any [`Input`]: a matrix in RAM is lent to the plan, read
    /// in chunks of about 4 MiB, never copied whole): checks the parameters against the shape
    /// and the memory limit against what one worker needs.
    pub fn new(engine: &Engine, a: impl Into<Input<'a>>, options: &RandomizedSvdOptions) -> Result<Self> {
        let input = a.into().lend(Self::chunk_shape)?;
        let model = MemoryModel::for_engine(engine);
        let target = engine.memory_pool().config().thresholds.target.unwrap_or(1.0);
        let sketch = Sketch::new(&input.matrix, options, |a| {
            a.worth_caching() && a.store().grid().bytes() as f64 <= model.limit as f64 * target / 2.0
        })?;
        let (cr, cc) = sketch.a.grid().chunk_shape();
        let memory = model.with_graph(&graph(&sketch, 1)?.0, sketch.retained());
        MemoryError::check_limit("randomized SVD", model.limit, memory.needed(1), || {
            format!(
                "one worker holds a {cr} x {cc} chunk and its products ({}); {} of unmanaged memory comes on top; {}",
                format_size(memory.max_task),
                format_size(model.overhead),
                input.chunk_hint()
            )
        })?;
        Ok(Self { sketch, memory, _input: input })
    }

    /// The chunk shape a matrix held in RAM is read in: about 4 MiB, at most 1024 columns wide.
    /// For stores of one's own over memory.
    pub fn chunk_shape(m: usize, n: usize) -> (usize, usize) {
        let chunk_cols = n.clamp(1, CHUNK_COLS);
        let chunk_rows = (CHUNK_BYTES / (size_of::<f64>() * chunk_cols)).max(CHUNK_COLS).clamp(1, m.max(1));
        (chunk_rows, chunk_cols)
    }

    /// The chunk shape of a sparse `rows x cols` matrix of `nnz` nonzeros read by the
    /// randomized SVD: at most 2048 x 2048 (each chunk's products are blocks of that many rows
    /// by the sketch's width), and about 2^21 nonzeros per chunk where the rows are sparser
    /// (few, long tasks).
    pub fn sparse_chunk_shape(rows: usize, cols: usize, nnz: usize) -> (usize, usize) {
        let chunk_cols = cols.clamp(1, SPARSE_CHUNK_SIDE);
        let per_row_and_chunk = nnz as f64 / rows.max(1) as f64 / cols.div_ceil(chunk_cols).max(1) as f64;
        let chunk_rows = (SPARSE_CHUNK_NNZ as f64 / per_row_and_chunk.max(1e-9)).ceil() as usize;
        (chunk_rows.clamp(1, SPARSE_CHUNK_SIDE.min(rows.max(1))), chunk_cols)
    }

    /// The options as given.
    pub fn options(&self) -> &RandomizedSvdOptions {
        &self.sketch.options
    }

    /// Iterations the plan runs: the options' `power_iters`, unless a block Krylov space fills
    /// the matrix's column space sooner; then the iterations that fill it (the result is then
    /// exact, and more iterations could add nothing). See [`summary`](Self::summary).
    pub fn iterations(&self) -> usize {
        self.sketch.iterations()
    }

    /// True when the block Krylov space spans all of `min(m, n)` dimensions.
    pub fn krylov_space_full(&self) -> bool {
        self.sketch.krylov_space_full()
    }

    /// Width of the final basis Q: `k + p`; for block Krylov, `(k + p)` per block over
    /// `iterations + 1` blocks, at most `min(m, n)`.
    pub fn basis_width(&self) -> usize {
        self.sketch.basis_width()
    }

    /// Passes over A: the sketch, two per iteration, and `B^T = A^T Q`.
    pub fn passes(&self) -> usize {
        self.sketch.passes()
    }

    /// The memory limit needed to run `workers` tasks at once.
    pub fn memory_needed(&self, workers: usize) -> u64 {
        self.memory.needed(workers)
    }

    /// How many tasks the memory limit lets run at once.
    pub fn concurrent_tasks(&self) -> usize {
        self.memory.concurrent()
    }

    /// Grids of U (`m x k`, chunked like A's rows) and V (`n x k`, like A's columns).
    pub fn factor_grids(&self) -> Result<(ChunkGrid, ChunkGrid)> {
        self.sketch.factor_grids()
    }

    /// A human summary.
    pub fn summary(&self) -> String {
        let (m, n) = self.sketch.a.shape();
        let o = &self.sketch.options;
        format!(
            "randomized SVD plan: {m} x {n} in chunks of {:?}, k = {}, sketch {} (+{} probes), {} {} iteration(s), {} passes over A\n  per-task working set up to {}; {} concurrent task(s) need a limit of {} (limit {}); 1 task needs {}",
            self.sketch.a.grid().chunk_shape(),
            o.k,
            self.sketch.l,
            o.probes,
            self.sketch.iterations(),
            match o.method {
                RandomizedMethod::Subspace => "subspace",
                RandomizedMethod::Krylov => "block Krylov",
            },
            self.sketch.passes(),
            format_size(self.memory.max_task),
            self.concurrent_tasks(),
            format_size(self.memory_needed(self.concurrent_tasks())),
            format_size(self.memory.limit),
            format_size(self.memory_needed(1)),
        ) + &if self.sketch.iterations() < o.power_iters {
            format!(
                "\n  note: {} Krylov iteration(s) already span all {} columns of the matrix's range (the last block in part): the result is exact, and the {} more asked for could add nothing",
                self.sketch.iterations(),
                self.sketch.basis_width(),
                o.power_iters - self.sketch.iterations()
            )
        } else {
            String::new()
        }
    }

    /// The task graph, in Graphviz DOT (one cluster per stage).
    pub fn to_dot(&self, title: &str) -> Result<String> {
        Ok(graph(&self.sketch, self.concurrent_tasks())?.0.to_dot(title))
    }
}
