//! Options, plan and result of the randomized SVD.

use outcore_storage::{ChunkGrid, format_size};
use serde::Serialize;

use super::build;
use super::kernels::RsvdExecutor;
use crate::control::RunControl;
use crate::engine::Engine;
use crate::linalg::budget::MemoryModel;
use crate::linalg::{Centred, SvdResult};
use crate::matrix::{ChunkedMatrix, MatrixReader};
use crate::output::{Destination, Sink};
use crate::{Error, MemoryError, Result};

/// How the range of A is explored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RsvdMethod {
    /// Subspace (power) iteration, re-orthonormalized between every product.
    Subspace,
    /// Block Krylov iteration: every iterate's block is kept.
    Krylov,
}

impl std::str::FromStr for RsvdMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "subspace" => Ok(Self::Subspace),
            "krylov" => Ok(Self::Krylov),
            _ => Err(Error::invalid("method", format!("{s:?} is not one of subspace, krylov"))),
        }
    }
}

/// Iterations by default. Measured on the Dask lesson's matrix (uniform 10000 x 10000, k = 5, a
/// flat spectral tail after sigma_1; `cargo bench --bench rsvd_accuracy`), the largest relative
/// error of sigma_2..sigma_5 is 28.1% at q = 0 (Dask's default), 10.4% (subspace) or 6.8%
/// (Krylov) at q = 2, and 6.2% (subspace) or 2.6% (Krylov) at q = 4. Block Krylov with q = 4
/// is the default: ten times more accurate than Dask's default and still faster than it.
pub const DEFAULT_POWER_ITERS: usize = 4;

/// Most power (or Krylov) iterations a plan takes: each is two passes over A.
pub const MAX_POWER_ITERS: usize = 100;

/// Most Gaussian probes of the error estimate: each adds a column to the first pass, and 10
/// already put the failure probability at 1e-10.
pub const MAX_PROBES: usize = 64;

/// Choices for a randomized SVD. Start from [`RsvdOptions::new`] with the number of singular
/// values wanted and change what you need:
///
/// ```
/// use outcore::{RsvdMethod, RsvdOptions};
///
/// let options = RsvdOptions::new(10).power_iters(2).method(RsvdMethod::Subspace).seed(7);
/// assert_eq!((options.k, options.oversamples), (10, 10));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RsvdOptions {
    /// Singular values and vectors wanted.
    pub k: usize,
    /// Extra sketch columns beyond k (Dask's `n_oversamples`, default 10).
    pub oversamples: usize,
    /// Power (or Krylov) iterations; each costs two passes over A.
    pub power_iters: usize,
    /// Subspace or block Krylov iteration.
    pub method: RsvdMethod,
    /// Seed of the sketch and the probes.
    pub seed: u64,
    /// Gaussian probes for the error estimate (failure probability 10^-probes).
    pub probes: usize,
    /// Refuse input holding NaN or infinity.
    pub check_finite: bool,
    /// Blocks per node of the QR reduction trees.
    pub fan_in: usize,
    /// Factor `A - 1 mean^T` (a PCA) without forming it: see [`center`](Self::center).
    pub center: bool,
}

impl Default for RsvdOptions {
    fn default() -> Self {
        Self {
            k: 5,
            oversamples: 10,
            power_iters: DEFAULT_POWER_ITERS,
            method: RsvdMethod::Krylov,
            seed: 0,
            probes: 10,
            check_finite: true,
            fan_in: 8,
            center: false,
        }
    }
}

impl RsvdOptions {
    /// The top `k` singular values and vectors, with the defaults for everything else.
    pub fn new(k: usize) -> Self {
        Self { k, ..Self::default() }
    }

    /// Extra sketch columns beyond k (default 10).
    pub fn oversamples(mut self, p: usize) -> Self {
        self.oversamples = p;
        self
    }

    /// Power or Krylov iterations (default [`DEFAULT_POWER_ITERS`]); each costs two passes.
    pub fn power_iters(mut self, q: usize) -> Self {
        self.power_iters = q;
        self
    }

    /// Subspace or block Krylov iteration (default Krylov).
    pub fn method(mut self, method: RsvdMethod) -> Self {
        self.method = method;
        self
    }

    /// Seed of the sketch and the probes (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Gaussian probes of the error estimate (default 10: failure probability 1e-10).
    pub fn probes(mut self, probes: usize) -> Self {
        self.probes = probes;
        self
    }

    /// Refuse input holding NaN or infinity (`true`, the default) or skip the scan.
    pub fn check_finite(mut self, check: bool) -> Self {
        self.check_finite = check;
        self
    }

    /// Blocks per node of the QR reduction trees (default 8, at least 2).
    pub fn fan_in(mut self, fan_in: usize) -> Self {
        self.fan_in = fan_in;
        self
    }

    /// Factor `A - 1 mean^T`, the matrix with its column means subtracted, as a PCA does,
    /// without forming it and without another pass: the first pass also gathers each
    /// column's moments, and every product is corrected by a rank-one term,
    /// `(A - 1 mu^T) X = A X - 1 (mu^T X)` and `(A - 1 mu^T)^T Y = A^T Y - mu (1^T Y)`. The
    /// means and the total variance come back in [`SvdResult::centred`](crate::SvdResult::centred).
    pub fn center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }
}

/// An a posteriori estimate of `||A - U diag(s) V^T||`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ErrorEstimate {
    /// Upper bound on the spectral norm, holding with probability `1 - failure_probability`.
    pub spectral_bound: f64,
    /// Estimate of the Frobenius norm (unbiased in its square).
    pub frobenius: f64,
    /// Probes used.
    pub probes: usize,
    /// Probability that the spectral bound does not hold: `10^-probes`.
    pub failure_probability: f64,
}

/// A randomized SVD with its error estimate.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RsvdResult {
    /// The top-k SVD.
    pub svd: SvdResult,
    /// The estimate of the residual's norm.
    pub error: ErrorEstimate,
    /// Passes over A.
    pub passes: usize,
}

/// A planned randomized SVD.
#[derive(Clone)]
pub struct RsvdPlan {
    pub(crate) a: ChunkedMatrix,
    pub(crate) options: RsvdOptions,
    /// Sketch width `k + p`.
    pub(crate) l: usize,
    pub(crate) cache_input: bool,
    /// Iterations run: those asked for, or, when a block Krylov space of that many would be
    /// wider than the matrix, the fewer that already fill it (the last block in part).
    iterations: usize,
    memory: MemoryModel,
}

impl std::fmt::Debug for RsvdPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsvdPlan")
            .field("matrix", &self.a.describe())
            .field("options", &self.options)
            .field("max_task_bytes", &self.memory.max_task)
            .finish_non_exhaustive()
    }
}

impl RsvdPlan {
    /// Plans the randomized SVD of `a`: checks the parameters against the shape and the memory
    /// limit against what one worker needs.
    pub fn new(a: &ChunkedMatrix, options: &RsvdOptions, engine: &Engine) -> Result<Self> {
        a.check_not_empty()?;
        let (m, n) = a.shape();
        let o = options;
        if o.center {
            crate::linalg::check_can_centre(m)?;
        }
        if o.k == 0 {
            return Err(Error::invalid("k", "k = 0 asks for no singular values; give k >= 1"));
        }
        if o.power_iters > MAX_POWER_ITERS {
            return Err(Error::invalid(
                "power_iters",
                format!(
                    "{} iterations is more than {MAX_POWER_ITERS} (each is two passes over A); the default {DEFAULT_POWER_ITERS} is accurate on flat spectra, and more than 20 rarely helps",
                    o.power_iters
                ),
            ));
        }
        if o.probes > MAX_PROBES {
            return Err(Error::invalid(
                "probes",
                format!(
                    "{} probes is more than {MAX_PROBES}; 10 already make the error bound fail with probability 1e-10",
                    o.probes
                ),
            ));
        }
        let sum = o.k.checked_add(o.oversamples);
        let Some(l) = sum.filter(|&l| l <= m.min(n)) else {
            let total = sum.map_or_else(|| " (more than can be counted)".into(), |l| format!(" = {l}"));
            return Err(Error::invalid(
                "k",
                format!(
                    "k + oversamples = {} + {}{total} exceeds min(rows, cols) = {} of the {m} x {n} matrix; lower `k` or `oversamples` (for all singular values of a narrow matrix use TSQR)",
                    o.k,
                    o.oversamples,
                    m.min(n)
                ),
            ));
        };
        // A block Krylov space cannot be wider than min(m, n). Once it spans that much it holds
        // the whole column space and the SVD it gives is exact: the iterations that fill it are
        // run (the last block only in part), and more could add nothing.
        let d = m.min(n);
        let iterations = match o.method {
            RsvdMethod::Krylov => o.power_iters.min(d.div_ceil(l) - 1),
            RsvdMethod::Subspace => o.power_iters,
        };
        let options = o.clone();
        if o.probes == 0 {
            return Err(Error::invalid(
                "probes",
                "the error estimate needs at least 1 probe (10 gives a 1e-10 failure probability)",
            ));
        }
        if o.fan_in < 2 {
            return Err(Error::invalid("fan_in", "a reduction node must stack at least 2 blocks"));
        }
        let model = MemoryModel::for_engine(engine);
        let target = engine.memory_pool().config().thresholds.target.unwrap_or(1.0);
        let cache_input = a.worth_caching() && a.store().grid().bytes() as f64 <= model.limit as f64 * target / 2.0;
        let mut plan = Self { a: a.clone(), options, l, cache_input, iterations, memory: model };
        let (cr, cc) = a.grid().chunk_shape();
        let mut retained =
            2 * (cr.max(cc) * (plan.basis_width() + o.probes) * size_of::<f64>()) as u64 * o.fan_in as u64;
        if o.center {
            // Every chunk's column moments (3 x its columns) live until pass 1 ends, then the
            // merged ones (3 x n) to the end of the run.
            let chunk_rows = a.grid().grid_shape().0 as u64;
            retained += 3 * (n * size_of::<f64>()) as u64 * (chunk_rows + 1);
        }
        plan.memory = model.with_graph(&build::graph(&plan)?.0, retained);
        MemoryError::check_limit("randomized SVD", model.limit, plan.memory.needed(1), || {
            format!(
                "one worker holds a {cr} x {cc} chunk and its products ({}); {} of unmanaged memory comes on top; smaller chunks need less",
                format_size(plan.memory.max_task),
                format_size(model.overhead)
            )
        })?;
        Ok(plan)
    }

    /// The options as given.
    pub fn options(&self) -> &RsvdOptions {
        &self.options
    }

    /// Iterations the plan runs: the options' `power_iters`, unless a block Krylov space fills
    /// the matrix's column space sooner; then the iterations that fill it (the result is then
    /// exact, and more iterations could add nothing). See [`summary`](Self::summary).
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// True when the block Krylov space spans all of `min(m, n)` dimensions.
    pub fn krylov_space_full(&self) -> bool {
        self.options.method == RsvdMethod::Krylov && self.basis_width() == self.a.rows().min(self.a.cols())
    }

    /// Width of the final basis Q: `k + p`; for block Krylov, `(k + p)` per block over
    /// `iterations + 1` blocks, at most `min(m, n)`.
    pub fn basis_width(&self) -> usize {
        match self.options.method {
            RsvdMethod::Subspace => self.l,
            RsvdMethod::Krylov => ((self.iterations + 1) * self.l).min(self.a.rows().min(self.a.cols())),
        }
    }

    /// Passes over A: the sketch, two per iteration, and `B^T = A^T Q`.
    pub fn passes(&self) -> usize {
        2 + 2 * self.iterations
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
        let (m, n) = self.a.shape();
        let (cr, cc) = self.a.grid().chunk_shape();
        let k = self.options.k;
        Ok((ChunkGrid::new(m, k, cr, k)?, ChunkGrid::new(n, k, cc, k)?))
    }

    /// A human summary.
    pub fn summary(&self) -> String {
        let (m, n) = self.a.shape();
        let o = &self.options;
        format!(
            "randomized SVD plan: {m} x {n} in chunks of {:?}, k = {}, sketch {} (+{} probes), {} {} iteration(s), {} passes over A\n  per-task working set up to {}; {} concurrent task(s) need a limit of {} (limit {}); 1 task needs {}",
            self.a.grid().chunk_shape(),
            o.k,
            self.l,
            o.probes,
            self.iterations,
            match o.method {
                RsvdMethod::Subspace => "subspace",
                RsvdMethod::Krylov => "block Krylov",
            },
            self.passes(),
            format_size(self.memory.max_task),
            self.concurrent_tasks(),
            format_size(self.memory_needed(self.concurrent_tasks())),
            format_size(self.memory.limit),
            format_size(self.memory_needed(1)),
        ) + &if self.iterations < o.power_iters {
            format!(
                "\n  note: {} Krylov iteration(s) already span all {} columns of the matrix's range (the last block in part): the result is exact, and the {} more asked for could add nothing",
                self.iterations,
                self.basis_width(),
                o.power_iters - self.iterations
            )
        } else {
            String::new()
        }
    }

    /// The task graph, in Graphviz DOT (one cluster per stage).
    pub fn to_dot(&self, title: &str) -> Result<String> {
        Ok(build::graph(self)?.0.to_dot(title))
    }

    /// Runs the plan, writing U and V (grids: [`factor_grids`](Self::factor_grids)) to their
    /// destinations.
    pub fn run(&self, engine: &Engine, u: Destination<'_>, v: Destination<'_>) -> Result<RsvdResult> {
        self.run_with(engine, u, v, &RunControl::default())
    }

    /// [`run`](Self::run) with a cancel token and an event sink.
    pub fn run_with(
        &self,
        engine: &Engine,
        u: Destination<'_>,
        v: Destination<'_>,
        control: &RunControl,
    ) -> Result<RsvdResult> {
        // Everything that can fail before the run, agreed among ranks when there are several.
        let opened = control.agree_on((|| {
            let (u_grid, v_grid) = self.factor_grids()?;
            if let (Destination::Zarr(a), Destination::Zarr(b)) = (&u, &v)
                && crate::output::overlap(a, b)
            {
                let (a, b) = (a.display(), b.display());
                return Err(Error::invalid("destination", format!("U ({a}) and V ({b}) would overwrite each other")));
            }
            crate::output::check_shareable(&u, control, "U")?;
            crate::output::check_shareable(&v, control, "V")?;
            let u = Sink::open(u, u_grid, &self.a, "U")?;
            let v = Sink::open(v, v_grid, &self.a, "V")?;
            let (graph, keys) = build::graph(self)?;
            let a = self.a.decoded_once(self.passes(), self.cache_input, engine.memory_pool())?;
            let reader = MatrixReader::new(&a, engine.memory_pool(), self.cache_input, self.options.check_finite)?;
            Ok((u, v, graph, keys, reader))
        })());
        let (u, v, graph, keys, reader) = opened?;
        let executor = RsvdExecutor::new(self, reader, u.store.clone(), v.store.clone());
        let (results, stats) = engine.run_graph(&graph, &executor, control)?;
        drop(executor);
        let s = results.values(keys.s)?;
        let estimate = results.values(keys.estimate)?;
        let centred = self.centred(&results, &keys.moments)?;
        let probes = self.options.probes;
        let error = ErrorEstimate {
            spectral_bound: estimate[0],
            frobenius: estimate[1],
            probes,
            failure_probability: 10f64.powi(-(probes as i32)),
        };
        let (u, v) = Sink::finish_pair(u, v)?;
        let svd = SvdResult { s, u: Some(u), v: Some(v), centred, stats };
        Ok(RsvdResult { svd, error, passes: self.passes() })
    }

    /// The column means and total variance from each chunk column's `[count; mean; M2]`.
    fn centred(&self, results: &crate::schedule::Results, moments: &[crate::graph::Key]) -> Result<Option<Centred>> {
        if !self.options.center {
            return Ok(None);
        }
        let (mut mean, mut squares) = (Vec::new(), 0.0);
        for key in moments {
            let m = results.matrix(*key)?;
            mean.extend(m.row(1).iter().copied());
            squares += m.row(2).iter().sum::<f64>();
        }
        let total_variance = squares / (self.a.rows() as f64 - 1.0);
        Ok(Some(Centred { mean, scale: None, total_variance }))
    }
}
