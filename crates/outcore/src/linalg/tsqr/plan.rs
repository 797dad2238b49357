//! The TSQR plan: panels, reduction tree, and the memory each task needs, decided before
//! anything runs (faer's `*_scratch` idea at the scale of the whole computation).

use std::ops::Range;

use outcore_storage::{ChunkGrid, ChunkIndex, format_size};

use super::build;
use super::kernels::TsqrExecutor;
use crate::control::RunControl;
use crate::engine::Engine;
use crate::graph::Key;
use crate::linalg::budget::MemoryModel;
use crate::linalg::dense::{cholesky_qr2_bytes, qr_scratch_bytes, svd_scratch_bytes};
use crate::linalg::{Centred, Factor, SvdResult};
use crate::matrix::{ChunkedMatrix, MatrixReader};
use crate::output::{Destination, Sink};
use crate::schedule::Output;
use crate::{Error, MemoryError, Result};

/// Choices for a TSQR SVD. Start from [`TsqrOptions::new`] (or `default()`) and change what
/// you need:
///
/// ```
/// let options = outcore::TsqrOptions::new().values_only().fan_in(8);
/// assert!(!options.vectors);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TsqrOptions {
    /// Compute singular vectors (U and V), not only values.
    pub vectors: bool,
    /// R factors stacked per reduction node (default: chosen from the shape and memory).
    pub fan_in: Option<usize>,
    /// Rows per panel (default: whole chunk rows, at least as many rows as columns).
    pub panel_rows: Option<usize>,
    /// Refuse input holding NaN or infinity (a scan of each panel as it is read).
    pub check_finite: bool,
    /// Factor the matrix with its column means subtracted (a PCA), in the same single pass.
    pub center: bool,
    /// Also divide each centred column by its standard deviation (implies `center`).
    pub standardize: bool,
}

impl Default for TsqrOptions {
    fn default() -> Self {
        Self { vectors: true, fan_in: None, panel_rows: None, check_finite: true, center: false, standardize: false }
    }
}

impl TsqrOptions {
    /// Values and vectors, sizes chosen by the plan, input checked for NaN and infinity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Singular values only: one pass over the input, no U or V.
    pub fn values_only(self) -> Self {
        self.vectors(false)
    }

    /// Compute U and V (`true`, the default) or not.
    pub fn vectors(mut self, vectors: bool) -> Self {
        self.vectors = vectors;
        self
    }

    /// R factors stacked per reduction node (at least 2).
    pub fn fan_in(mut self, fan_in: usize) -> Self {
        self.fan_in = Some(fan_in);
        self
    }

    /// Rows per panel.
    pub fn panel_rows(mut self, rows: usize) -> Self {
        self.panel_rows = Some(rows);
        self
    }

    /// Refuse input holding NaN or infinity (`true`, the default) or skip the scan.
    pub fn check_finite(mut self, check: bool) -> Self {
        self.check_finite = check;
        self
    }

    /// Factor `A - 1 mean^T`, the matrix with its column means subtracted, as a PCA does,
    /// without forming it: still one pass. Each panel is centred on its own means and factored,
    /// and two factors merge as the QR of `[R_1; R_2; sqrt(n_1 n_2 / (n_1 + n_2)) (mu_1 - mu_2)^T]`
    /// (generalised to any fan-in), which is exact. The means come back in
    /// [`SvdResult::centred`](crate::SvdResult::centred). For a tall matrix the result has V but
    /// not U (project instead: `U = (A - 1 mean^T) V diag(s)^-1`); for a wide one each
    /// row of the transposed problem is centred where it is read, and U and V both come back.
    pub fn center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }

    /// Centre each column and divide it by its standard deviation (`ddof = 1`; a constant
    /// column, one whose variance is within centring's rounding, is left unscaled), as
    /// scikit-learn's `StandardScaler` does (it divides by the `ddof = 0` deviation); implies
    /// [`center`](Self::center). For a tall matrix the scaling is applied to the final R.
    pub fn standardize(mut self, standardize: bool) -> Self {
        self.standardize = standardize;
        self
    }
}

/// How the tall problem is centred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Centring {
    /// Not centred.
    None,
    /// Its columns (the input's, for tall input): panels merge their means up the tree.
    Columns,
    /// Its rows (the input's columns, for wide input): each panel row is centred where read.
    Rows,
}

/// Target size of a panel when no chunk grid constrains it.
const PANEL_BYTES: usize = 4 << 20;

/// Rows of a panel of `n` columns sized for speed (about [`PANEL_BYTES`], at least `n` rows),
/// when no chunk grid constrains panels.
pub(crate) fn speed_panel_rows(n: usize) -> usize {
    (PANEL_BYTES / (n.max(1) * size_of::<f64>())).max(n)
}

/// What [`TsqrPlan::new`] settled before sizing panels.
#[derive(Clone, Copy)]
struct Setup {
    transposed: bool,
    cache_input: bool,
    centring: Centring,
    small_v: bool,
}

/// A node of the reduction tree.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// Its children in the level below (empty for panels).
    pub(crate) children: Range<usize>,
    /// Rows of the stacked matrix it factors (panel rows, for a panel).
    pub(crate) rows: usize,
    /// Rows of its R factor: `min(rows, n)`.
    pub(crate) k: usize,
    /// Rows of the tall matrix under it.
    pub(crate) count: usize,
}

/// A planned TSQR SVD: shapes, panels, tree and memory, ready to run.
#[derive(Clone)]
pub struct TsqrPlan {
    pub(crate) tall: ChunkedMatrix,
    pub(crate) transposed: bool,
    pub(crate) n: usize,
    pub(crate) panels: Vec<Range<usize>>,
    pub(crate) levels: Vec<Vec<Node>>,
    pub(crate) fan_in: usize,
    pub(crate) vectors: bool,
    /// V (the tall problem's small factor) without the second pass: a column-centred plan
    /// asked for vectors.
    pub(crate) small_v: bool,
    pub(crate) centring: Centring,
    pub(crate) standardize: bool,
    pub(crate) check_finite: bool,
    pub(crate) cache_input: bool,
    pub(crate) factor_chunk_rows: usize,
    /// Largest condition bound of a panel's R for which U takes the `A R^-1 W` shortcut.
    pub(crate) shortcut_condition: f64,
    memory: MemoryModel,
}

impl std::fmt::Debug for TsqrPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsqrPlan")
            .field("matrix", &self.tall.describe())
            .field("transposed", &self.transposed)
            .field("panels", &self.panels.len())
            .field("panel_rows", &self.panels.first().map(Range::len))
            .field("fan_in", &self.fan_in)
            .field("depth", &self.depth())
            .field("vectors", &self.vectors)
            .field("max_task_bytes", &self.memory.max_task)
            .field("memory_limit", &self.memory.limit)
            .finish_non_exhaustive()
    }
}

/// The shortcut `U_panel = A_panel R^-1 W` adds a rounding error of about `eps` times the
/// bound `||R||_F ||R^-1||_F` (see [`solve_r_if_conditioned`]); it is taken while that stays
/// within the `eps sqrt(m)` scale of TSQR's own error, with a factor 4 of margin. Panels of the
/// seed's uniform matrix have bounds near 200, under 5657 for its 2,000,000 rows.
///
/// [`solve_r_if_conditioned`]: crate::linalg::dense::solve_r_if_conditioned
fn shortcut_condition(m: usize) -> f64 {
    4.0 * (m as f64).sqrt()
}

/// Bytes of an `r x c` faer matrix (columns padded to whole SIMD registers).
pub(crate) fn mat_bytes(r: usize, c: usize) -> u64 {
    (r.next_multiple_of(8) * c * size_of::<f64>()) as u64
}

impl TsqrPlan {
    /// Plans the SVD of `a` on `engine`: refuses an empty matrix, and a memory limit below what
    /// one worker needs, saying which limit would work.
    pub fn new(a: &ChunkedMatrix, options: &TsqrOptions, engine: &Engine) -> Result<Self> {
        a.check_not_empty()?;
        if options.fan_in.is_some_and(|f| f < 2) {
            return Err(Error::invalid("fan_in", "a reduction node must stack at least 2 factors"));
        }
        if options.panel_rows == Some(0) {
            return Err(Error::invalid("panel_rows", "panels need at least one row"));
        }
        let transposed = a.rows() < a.cols();
        let tall = if transposed { a.t() } else { a.clone() };
        let (m, n) = tall.shape();
        let centring = match (options.center || options.standardize, transposed) {
            (false, _) => Centring::None,
            (true, false) => Centring::Columns,
            (true, true) => Centring::Rows,
        };
        if centring != Centring::None {
            crate::linalg::check_can_centre(a.rows())?;
        }
        // Centred tall input: V from the root alone; U would need the means in the second
        // pass's Q (project instead), so there is no large factor.
        let small_v = options.vectors && centring == Centring::Columns;
        let options = &TsqrOptions { vectors: options.vectors && !small_v, ..options.clone() };
        let model = MemoryModel::for_engine(engine);
        let target = engine.memory_pool().config().thresholds.target.unwrap_or(1.0);
        let cache_input = options.vectors
            && tall.worth_caching()
            && tall.store().grid().bytes() as f64 <= model.limit as f64 * target / 2.0;
        let (cr, _) = tall.grid().chunk_shape();
        // Panels follow the chunk grid when chunks are read (a chunk is read whole) or U is
        // written (chunk by chunk). Otherwise they are sized for speed: panels of about 4 MiB
        // factored 7% faster than 8 MiB ones (2,000,000 x 100, 2 threads: 0.685 against 0.735 s).
        let aligned = cr * n.div_ceil(cr).max(1);
        let sized = speed_panel_rows(n);
        let default_rows = if tall.reads_windows() && !options.vectors { sized } else { aligned };
        let mut panel_rows = options.panel_rows.unwrap_or(default_rows).min(m);
        loop {
            let setup = Setup { transposed, cache_input, centring, small_v };
            let plan = Self::with_panel_rows(&tall, setup, options, panel_rows, model)?;
            let needed = plan.memory_needed(1);
            if needed <= model.limit {
                return Ok(plan);
            }
            if options.panel_rows.is_some() || panel_rows <= n {
                return Err(MemoryError::LimitTooSmall {
                    algorithm: "TSQR",
                    limit: model.limit,
                    needed,
                    detail: plan.memory_detail(),
                }
                .into());
            }
            panel_rows = (panel_rows / 2).max(n);
        }
    }

    /// What the memory one task needs is for, largest part named first, for messages.
    fn memory_detail(&self) -> String {
        let (h, n) = (self.panels[0].len(), self.n);
        let read = self.tall.read_bytes(self.panels[0].clone(), 0..n, self.cache_input);
        let panel = Output::bytes(h, n) + qr_scratch_bytes(h, n);
        let (cr, cc) = self.tall.grid().chunk_shape();
        let reading = if read >= panel {
            format!(
                "reading the input takes {} of it: {cr} x {cc} chunks are read whole (and decoded, if compressed), so smaller chunks need less; the {h} x {n} panel and its QR take {}",
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
            format_size(self.memory.max_task),
            format_size(self.memory.overhead),
            format_size(self.memory.retained)
        )
    }

    fn with_panel_rows(
        tall: &ChunkedMatrix,
        setup: Setup,
        options: &TsqrOptions,
        panel_rows: usize,
        model: MemoryModel,
    ) -> Result<Self> {
        let Setup { transposed, cache_input, centring, small_v } = setup;
        let (m, n) = tall.shape();
        let (cr, _) = tall.grid().chunk_shape();
        let panels: Vec<Range<usize>> =
            (0..m.div_ceil(panel_rows)).map(|i| i * panel_rows..((i + 1) * panel_rows).min(m)).collect();
        let factor_chunk_rows = if panel_rows.is_multiple_of(cr) { cr } else { panel_rows };
        let mut plan = Self {
            tall: tall.clone(),
            transposed,
            n,
            panels,
            levels: Vec::new(),
            fan_in: 2,
            vectors: options.vectors,
            small_v,
            centring,
            standardize: options.standardize,
            check_finite: options.check_finite,
            cache_input,
            factor_chunk_rows,
            shortcut_condition: shortcut_condition(m),
            memory: model,
        };
        let panel_bytes = plan.panel_qr_bytes(0).0;
        let r_bytes = mat_bytes(n, n);
        plan.fan_in = options
            .fan_in
            .unwrap_or_else(|| (panel_rows / n).min((panel_bytes / (3 * r_bytes).max(1)) as usize).clamp(2, 32));
        plan.levels = tree(&plan.panels, n, plan.fan_in, plan.mean_rows());
        // The R factors a tree holds at once, and the panels' means kept to the end (rows centred).
        let stats: u64 = plan.panels.iter().map(|p| plan.stats_bytes(p.len())).sum();
        let retained = plan.levels.len() as u64 * plan.fan_in as u64 * r_bytes + stats;
        plan.memory = model.with_graph(&build::graph(&plan)?, retained);
        Ok(plan)
    }

    /// The matrix's shape `(rows, cols)` as given (not the tall view).
    pub fn shape(&self) -> (usize, usize) {
        let (m, n) = self.tall.shape();
        if self.transposed { (n, m) } else { (m, n) }
    }

    /// Number of singular values, `min(rows, cols)`.
    pub fn k(&self) -> usize {
        self.n
    }

    /// Row ranges of the tall view's panels.
    pub fn panels(&self) -> &[Range<usize>] {
        &self.panels
    }

    /// R factors stacked per reduction node.
    pub fn fan_in(&self) -> usize {
        self.fan_in
    }

    /// Levels of the reduction tree above the panels.
    pub fn depth(&self) -> usize {
        self.levels.len() - 1
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

    /// Grid of the large singular-vector factor (U for tall input, V for wide), chunked like the
    /// input along its long side; `None` for values only.
    pub fn factor_grid(&self) -> Option<ChunkGrid> {
        self.vectors.then(|| ChunkGrid::new(self.tall.rows(), self.n, self.factor_chunk_rows, self.n).ok()).flatten()
    }

    /// A human summary of the plan.
    pub fn summary(&self) -> String {
        let (m, n) = self.shape();
        let h = self.panels[0].len();
        let mut text = format!(
            "TSQR plan: {m} x {n}{}, {} panel(s) of {h} x {} ({}), reduction fan-in {} over {} level(s)\n",
            if self.transposed { " (through its transpose)" } else { "" },
            self.panels.len(),
            self.n,
            format_size(mat_bytes(h, self.n)),
            self.fan_in,
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
        text
    }

    /// The task graph this plan runs, in Graphviz DOT (one cluster per stage).
    pub fn to_dot(&self, title: &str) -> Result<String> {
        Ok(build::graph(self)?.to_dot(title))
    }

    /// Runs the plan. The large singular-vector factor (U of a tall matrix, V of a wide one;
    /// see [`factor_grid`](Self::factor_grid)) goes to `factor`; the small one is returned in
    /// RAM. Values-only plans take [`Destination::Memory`] and write nothing.
    pub fn run(&self, engine: &Engine, factor: Destination<'_>) -> Result<SvdResult> {
        self.run_with(engine, factor, &RunControl::default())
    }

    /// [`run`](Self::run) with a cancel token and an event sink.
    pub fn run_with(&self, engine: &Engine, factor: Destination<'_>, control: &RunControl) -> Result<SvdResult> {
        let name = if self.transposed { "V" } else { "U" };
        // Everything that can fail before the run, agreed among ranks when there are several.
        let opened = control.agree_on((|| {
            let sink = match self.factor_grid() {
                Some(grid) => {
                    crate::output::check_shareable(&factor, control, name)?;
                    Some(Sink::open(factor, grid, &self.tall, name)?)
                }
                None if matches!(factor, Destination::Memory) => None,
                None => {
                    return Err(Error::invalid(
                        "destination",
                        "the plan writes no large factor (`vectors` is false, or a tall matrix is centred: \
                         TSQR then gives V alone): there is no factor to write",
                    ));
                }
            };
            let (graph, keys) = build::graph_with_keys(self)?;
            let passes = if self.vectors { 2 } else { 1 };
            let tall = self.tall.decoded_once(passes, self.cache_input, engine.memory_pool())?;
            let reader = MatrixReader::new(&tall, engine.memory_pool(), self.cache_input, self.check_finite)?;
            Ok((sink, graph, keys, reader))
        })());
        let (sink, graph, keys, reader) = opened?;
        let executor = TsqrExecutor::new(self, reader, sink.as_ref().map(|s| s.store.clone()));
        let (results, stats) = engine.run_graph(&graph, &executor, control).map_err(|e| self.in_callers_terms(e))?;
        drop(executor);
        let s = results.values(keys.s)?;
        let (u, v) = match (keys.vectors, sink) {
            (Some(v_key), Some(sink)) => {
                let small = Factor::Dense(results.matrix(v_key)?);
                let large = sink.finish()?;
                if self.transposed { (Some(small), Some(large)) } else { (Some(large), Some(small)) }
            }
            (Some(v_key), None) if self.small_v => (None, Some(Factor::Dense(results.matrix(v_key)?))),
            (None, None) => (None, None),
            _ => return Err(Error::Bug("vectors planned without a sink, or a sink without vectors".into())),
        };
        let centred = self.centred(&results, &keys.stats, &s)?;
        Ok(SvdResult { s, u, v, centred, stats })
    }

    /// An error about the matrix factored, in terms of the matrix given: a wide matrix is
    /// factored through its transpose, so a place in it, and its name, are transposed back.
    fn in_callers_terms(&self, e: Error) -> Error {
        match e {
            Error::NonFinite { index, row, col, .. } if self.transposed => Error::NonFinite {
                what: self.tall.t().describe(),
                index: ChunkIndex::new(index.col, index.row),
                row: col,
                col: row,
            },
            e => e,
        }
    }

    /// The means (and scales) from the stats blocks: the root's (columns centred) or the
    /// panels' in order (rows centred). The total variance is `||s||^2 / (m - 1)`: TSQR has
    /// every singular value.
    fn centred(&self, results: &crate::schedule::Results, stats: &[Key], s: &[f64]) -> Result<Option<Centred>> {
        if self.centring == Centring::None {
            return Ok(None);
        }
        let mut mean = Vec::new();
        let mut scale = Vec::new();
        for key in stats {
            let m = results.matrix(*key)?;
            mean.extend(m.row(0).iter().copied());
            scale.extend(m.row(1).iter().copied());
        }
        let samples = self.shape().0 as f64;
        let total_variance = s.iter().map(|x| x * x).sum::<f64>() / (samples - 1.0);
        Ok(Some(Centred { mean, scale: self.standardize.then_some(scale), total_variance }))
    }

    // Working sets of each kind of task, in bytes: (total, reusable from worker scratch).

    pub(crate) fn panel_qr_bytes(&self, panel: usize) -> (u64, u64) {
        let h = self.panels[panel].len();
        let n = self.n;
        // Reading: the chunks (pinned when cached, else through the worker's reusable read
        // buffer) and the store's transient scratch, counted once.
        let read = self.tall.read_bytes(self.panels[panel].clone(), 0..n, self.cache_input);
        let buffer = if self.cache_input { 0 } else { (self.tall.buffer_len(false) * size_of::<f64>()) as u64 };
        let reusable = Output::bytes(h, n) + buffer;
        let total = Output::bytes(h, n) + read;
        // Without U a panel may take CholeskyQR2, whose n x n temporaries exceed Householder's.
        let factor =
            if self.vectors { qr_scratch_bytes(h, n) } else { qr_scratch_bytes(h, n).max(cholesky_qr2_bytes(n)) };
        (total + factor + Output::bytes(h.min(n) + self.mean_rows(), n) + self.stats_bytes(h), reusable)
    }

    /// Rows carrying a mean below each R factor: 1 when columns are centred.
    pub(crate) fn mean_rows(&self) -> usize {
        usize::from(self.centring == Centring::Columns)
    }

    /// Bytes of a panel's row means and scales (rows centred), kept to the end of the run.
    fn stats_bytes(&self, h: usize) -> u64 {
        if self.centring == Centring::Rows { Output::bytes(2, h) } else { 0 }
    }

    pub(crate) fn panel_u_bytes(&self, panel: usize) -> (u64, u64) {
        let h = self.panels[panel].len();
        let (n, k) = (self.n, self.n);
        let (total, reusable) = self.panel_qr_bytes(panel);
        let out_chunk = Output::bytes(self.factor_chunk_rows.min(h), k);
        let u = Output::bytes(h, k);
        // The W input, U's panel, and the store's encoding of one chunk.
        (total - Output::bytes(h.min(n), n) + Output::bytes(h.min(n), k) + u + 2 * out_chunk, reusable + u)
    }

    pub(crate) fn stack_bytes(&self, node: &Node) -> u64 {
        let n = self.n;
        let inputs = Output::bytes(node.rows, n);
        let kept = if self.vectors { Output::bytes(node.rows, n) + qr_scratch_bytes(node.rows, n) } else { 0 };
        inputs
            + mat_bytes(node.rows, n)
            + qr_scratch_bytes(node.rows, n)
            + Output::bytes(node.k + self.mean_rows(), n)
            + kept
    }

    pub(crate) fn svd_bytes(&self, k_root: usize) -> u64 {
        let n = self.n;
        let vectors = self.vectors || self.small_v;
        let outputs = if vectors { Output::bytes(n + k_root + 1, k_root) } else { Output::bytes(1, k_root) };
        let input = Output::bytes(k_root + self.mean_rows(), n);
        input + mat_bytes(k_root, n) + svd_scratch_bytes(k_root, n, vectors) + outputs + Output::bytes(2, n)
    }

    pub(crate) fn apply_bytes(&self, node: &Node) -> u64 {
        let (n, k) = (self.n, self.n);
        let factors = Output::bytes(node.rows, n) + qr_scratch_bytes(node.rows, n);
        factors
            + mat_bytes(node.rows, n)
            + Output::bytes(node.k, k)
            + mat_bytes(node.rows, k)
            + Output::bytes(node.rows, k)
    }
}

/// The reduction tree ([`tree::levels`](crate::linalg::tree::levels)) over the panels: level 0
/// holds the panels, each level above stacks `fan_in` nodes' R factors, and `mean_rows` (1 when
/// columns are centred) rows per child carrying its mean.
fn tree(panels: &[Range<usize>], n: usize, fan_in: usize, mean_rows: usize) -> Vec<Vec<Node>> {
    let mut levels = vec![
        panels
            .iter()
            .map(|p| Node { children: 0..0, rows: p.len(), k: p.len().min(n), count: p.len() })
            .collect::<Vec<_>>(),
    ];
    for ranges in crate::linalg::tree::levels(panels.len(), fan_in) {
        let below = levels.last().map(Vec::as_slice).unwrap_or_default();
        let level = ranges
            .into_iter()
            .map(|children| {
                let under = &below[children.clone()];
                let rows = under.iter().map(|c| c.k + mean_rows).sum::<usize>();
                let count = under.iter().map(|c| c.count).sum();
                Node { children, rows, k: rows.min(n), count }
            })
            .collect();
        levels.push(level);
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_groups_by_fan_in_up_to_one_root() {
        let panels: Vec<Range<usize>> = (0..10).map(|i| i * 50..(i + 1) * 50).collect();
        let levels = tree(&panels, 20, 3, 0);
        let sizes: Vec<usize> = levels.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 4, 2, 1]);
        assert_eq!(levels[1][3].children, 9..10);
        assert_eq!(levels[1][0].rows, 60);
        assert_eq!(levels[1][0].k, 20);
        assert_eq!(tree(&panels[..1], 20, 3, 0).len(), 1);
        let centred = tree(&panels, 20, 3, 1);
        assert_eq!((centred[1][0].rows, centred[1][0].k, centred[1][0].count), (63, 20, 150));
        assert_eq!(centred[3][0].count, 500);
    }
}
