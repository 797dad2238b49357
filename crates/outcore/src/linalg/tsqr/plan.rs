//! The TSQR plan: the layout that fits the memory limit, and what the limit must be for how
//! many tasks at once.

use std::ops::Range;

use outcore_storage::{ChunkGrid, Knob, format_size};

use super::graph::graph_with_keys;
use super::layout::{Centering, Layout, Root, Setup, mat_bytes, speed_panel_rows};
use super::options::SvdOptions;
use crate::error::{Error, MemoryError, Result};
use crate::linalg::budget::MemoryModel;
use crate::linalg::dense::qr_scratch_bytes;
use crate::linalg::input::{Input, Lent};
use crate::linalg::result::check_can_center;
use crate::matrix::ChunkedMatrix;
use crate::run::Engine;
use crate::task::Block;

/// A planned exact SVD by TSQR: panels, reduction tree and memory, ready to run
/// ([`run`](Self::run), [`run_with`](Self::run_with)). Made with [`SvdPlan::new`]; a matrix in
/// the caller's memory stays lent to the plan while it lives.
pub struct SvdPlan<'a> {
    pub(super) layout: Layout,
    pub(super) memory: MemoryModel,
    _inputs: [Option<Lent<'a>>; 3],
}

impl std::fmt::Debug for SvdPlan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let layout = &self.layout;
        f.debug_struct("SvdPlan")
            .field("matrix", &layout.tall.describe())
            .field("transposed", &layout.transposed)
            .field("panels", &layout.panels.len())
            .field("panel_rows", &layout.panels.first().map(Range::len))
            .field("fan_in", &layout.fan_in)
            .field("depth", &layout.depth())
            .field("vectors", &layout.vectors)
            .field("max_task_bytes", &self.memory.max_task)
            .field("memory_limit", &self.memory.limit)
            .finish_non_exhaustive()
    }
}

impl<'a> SvdPlan<'a> {
    /// Plans the SVD of `a` (any [`Input`]: a matrix in RAM is lent to the plan, read in
    /// panels, never copied whole) on `engine`: refuses an empty matrix, and a memory limit
    /// below what one worker needs, saying which limit would work.
    pub fn new(engine: &Engine, a: impl Into<Input<'a>>, options: &SvdOptions) -> Result<Self> {
        Self::with_root(engine, a.into(), Beside::default(), options, Root::Svd)
    }

    /// Plans a TSQR of `a` (with right-hand sides and row weights read beside it, for a
    /// least-squares root) whose root computes `root`: the SVD of R, R itself for a QR, or a
    /// solution.
    pub(crate) fn with_root(
        engine: &Engine,
        a: Input<'a>,
        beside: Beside<'a>,
        options: &SvdOptions,
        root: Root,
    ) -> Result<Self> {
        let input = a.lend(Self::chunk_shape)?;
        let a = &input.matrix;
        a.check_not_empty()?;
        let rhs = beside.rhs.map(|b| b.lend(Self::chunk_shape)).transpose()?;
        if let Some(b) = &rhs {
            check_rhs(a, &b.matrix)?;
        }
        let weights = beside.weights.map(|w| w.lend(Self::chunk_shape)).transpose()?;
        if let Some(w) = &weights {
            check_weights(a, &w.matrix)?;
        }
        if options.fan_in.is_some_and(|f| f < 2) {
            return Err(Error::invalid(Knob::FanIn, "a reduction node must stack at least 2 factors"));
        }
        if options.panel_rows == Some(0) {
            return Err(Error::invalid(Knob::PanelRows, "panels need at least one row"));
        }
        // A least-squares problem keeps its rows: [A | B] is factored as it is, whatever its
        // shape (TSQR's R then has as many rows as A when A is wide).
        let transposed = a.rows() < a.cols() && rhs.is_none();
        let tall = if transposed { a.t() } else { a.clone() };
        // The tall problem's width: the matrix's columns, and the right-hand sides beside them.
        let (m, n) = (tall.rows(), tall.cols() + rhs.as_ref().map_or(0, |b| b.matrix.cols()));
        let centering = match (options.center || options.standardize, transposed) {
            (false, _) => Centering::None,
            (true, false) => Centering::Columns,
            (true, true) => Centering::Rows,
        };
        if centering != Centering::None {
            check_can_center(a.rows())?;
        }
        // Centered tall input: V from the root alone; U would need the means in the second
        // pass's Q (project instead), so there is no large factor.
        let small_v = options.vectors && centering == Centering::Columns;
        let options = &SvdOptions { vectors: options.vectors && !small_v, ..options.clone() };
        let model = MemoryModel::for_engine(engine);
        let target = engine.memory_pool().config().thresholds.target.unwrap_or(1.0);
        let cache_input = options.vectors
            && tall.worth_caching()
            && tall.store().grid().bytes() as f64 <= model.limit as f64 * target / 2.0;
        let (cr, _) = tall.grid().chunk_shape();
        // Panels follow the chunk grid when chunks are read (a chunk is read whole) or U is
        // written (chunk by chunk). Otherwise they are sized for speed (docs/decisions.md).
        let aligned = cr * n.div_ceil(cr).max(1);
        let sized = speed_panel_rows(n);
        let default_rows = if tall.reads_windows() && !options.vectors { sized } else { aligned };
        let mut panel_rows = options.panel_rows.unwrap_or(default_rows).min(m);
        let setup = Setup { transposed, cache_input, centering, small_v, root };
        loop {
            let sides = (rhs.as_ref().map(|b| &b.matrix), weights.as_ref().map(|w| &w.matrix), beside.q_times.as_ref());
            let layout = Layout::new(&tall, sides, setup, options, panel_rows);
            let (graph, _) = graph_with_keys(&layout, 1)?;
            let memory = model.with_graph(&graph, layout.retained());
            let needed = memory.needed(1);
            if needed <= model.limit {
                return Ok(Self { layout, memory, _inputs: [Some(input), rhs, weights] });
            }
            if options.panel_rows.is_some() || panel_rows <= n {
                return Err(MemoryError::LimitTooSmall {
                    algorithm: "TSQR",
                    limit: model.limit,
                    needed,
                    detail: memory_detail(&layout, &memory, input.chunk_hint()),
                }
                .into());
            }
            panel_rows = (panel_rows / 2).max(n);
        }
    }

    /// The chunk shape a matrix held in RAM (`m x n`, any layout) is read in: each chunk one
    /// panel of about 4 MiB spanning the short side. For stores of one's own over memory.
    pub fn chunk_shape(m: usize, n: usize) -> (usize, usize) {
        let panel = speed_panel_rows(m.min(n)).clamp(1, m.max(n).max(1));
        if m >= n { (panel, n.max(1)) } else { (m.max(1), panel) }
    }

    /// The matrix's shape `(rows, cols)` as given (not the tall view).
    pub fn shape(&self) -> (usize, usize) {
        self.layout.shape()
    }

    /// Number of singular values, `min(rows, cols)`.
    pub fn k(&self) -> usize {
        self.layout.k()
    }

    /// Row ranges of the tall view's panels.
    pub fn panels(&self) -> &[Range<usize>] {
        self.layout.panels()
    }

    /// R factors stacked per reduction node.
    pub fn fan_in(&self) -> usize {
        self.layout.fan_in()
    }

    /// Levels of the reduction tree above the panels.
    pub fn depth(&self) -> usize {
        self.layout.depth()
    }

    /// Grid of the large singular-vector factor (U for tall input, V for wide), chunked like the
    /// input along its long side; `None` for values only.
    pub fn factor_grid(&self) -> Option<ChunkGrid> {
        self.layout.factor_grid()
    }

    /// The largest working set of a single task.
    pub fn max_task_bytes(&self) -> u64 {
        self.memory.max_task
    }

    /// The memory limit needed to run `workers` tasks at once: all of them under the terminate
    /// threshold, the last able to start under the pause threshold.
    pub fn memory_needed(&self, workers: usize) -> u64 {
        self.memory.needed(workers)
    }

    /// How many tasks the memory limit lets run at once (at most the worker count).
    pub fn concurrent_tasks(&self) -> usize {
        self.memory.concurrent()
    }

    /// A human summary of the plan.
    pub fn summary(&self) -> String {
        let (m, n) = self.shape();
        let h = self.layout.panels[0].len();
        let mut text = format!(
            "TSQR plan: {m} x {n}{}, {} panel(s) of {h} x {} ({}), reduction fan-in {} over {} level(s)\n",
            if self.layout.transposed { " (through its transpose)" } else { "" },
            self.layout.panels.len(),
            self.layout.n,
            format_size(mat_bytes(h, self.layout.n)),
            self.layout.fan_in,
            self.depth()
        );
        text.push_str(&format!(
            "  per-task working set up to {}; {} concurrent task(s) need a limit of {} (limit {}); 1 task needs {}",
            format_size(self.memory.max_task),
            self.concurrent_tasks(),
            format_size(self.memory_needed(self.concurrent_tasks())),
            format_size(self.memory.limit),
            format_size(self.memory_needed(1)),
        ));
        if self.layout.tall.is_sparse() {
            text.push_str(
                "\n  note: the input is sparse; each panel is made dense as it is read, one row block at a time",
            );
        }
        text
    }

    /// The task graph this plan runs, in Graphviz DOT (one cluster per stage).
    pub fn to_dot(&self, title: &str) -> Result<String> {
        Ok(graph_with_keys(&self.layout, self.concurrent_tasks())?.0.to_dot(title))
    }
}

/// Refuses right-hand sides `b` that are not a matrix of `a`'s rows with at least one column.
fn check_rhs(a: &ChunkedMatrix, b: &ChunkedMatrix) -> Result<()> {
    let ((m, _), (rows, cols)) = (a.shape(), b.shape());
    if rows != m {
        let reason = format!(
            "the right-hand sides have {rows} rows and the matrix {m}: each row of B must go with the row of A it is an observation of"
        );
        return Err(Error::invalid(Knob::Rhs, reason));
    }
    if cols == 0 {
        return Err(Error::invalid(Knob::Rhs, "the right-hand sides have no columns: give B at least one"));
    }
    Ok(())
}

/// Refuses row weights `w` that are not one column of `a`'s rows.
fn check_weights(a: &ChunkedMatrix, w: &ChunkedMatrix) -> Result<()> {
    let ((m, _), (rows, cols)) = (a.shape(), w.shape());
    if (rows, cols) != (m, 1) {
        let reason = format!(
            "the weights are {rows} x {cols} and the matrix has {m} rows: give one weight per row of A, as a column of {m}"
        );
        return Err(Error::invalid(Knob::Weights, reason));
    }
    Ok(())
}

/// What a least-squares TSQR reads beside A, row for row.
#[derive(Default)]
pub(crate) struct Beside<'a> {
    /// The right-hand sides B, factored as columns after A's.
    pub(crate) rhs: Option<Input<'a>>,
    /// Row weights (`m x 1`, finite, at least 0): each row of `[A | B]` counts `w_i` times.
    pub(crate) weights: Option<Input<'a>>,
    /// For a QR with Q: `C`, whose product `Q C` is written in place of Q.
    pub(crate) q_times: Option<faer::Mat<f64>>,
}

/// What the memory one task needs is for, largest part named first, for messages.
fn memory_detail(layout: &Layout, memory: &MemoryModel, chunk_hint: &str) -> String {
    let (h, n) = (layout.panels[0].len(), layout.n);
    let read = layout.tall.read_working_set(layout.panels[0].clone(), 0..layout.lhs_cols(), layout.cache_input);
    let panel = Block::bytes(h, n) + qr_scratch_bytes(h, n);
    let (cr, cc) = layout.tall.grid().chunk_shape();
    let reading = if read >= panel {
        format!(
            "reading the input takes {} of it: {cr} x {cc} chunks are read whole (and decoded, if compressed), and {chunk_hint}; the {h} x {n} panel and its QR take {}",
            format_size(read),
            format_size(panel)
        )
    } else {
        format!(
            "its {h} x {n} panel and QR take {} of it, reading {cr} x {cc} chunks {}",
            format_size(panel),
            format_size(read)
        )
    };
    format!(
        "one task needs {}; {reading}; on top, {} outside the pool and {} kept between tasks (n x n factors, the task graph)",
        format_size(memory.max_task),
        format_size(memory.overhead),
        format_size(memory.retained)
    )
}
