//! The JSON records of a command: one typed record per kind of summary, so the fields scripts
//! read cannot drift between commands (`--json`, and `summary.json` in an `--output`).

use outcore::storage::{Dtype, MemoryPeaks};
use outcore::{ChunkedMatrix, Error, MemoryReport, Result, RunStats, Scheduler};
use serde::{Deserialize, Serialize};

use super::json::{self, ErrorEstimateJson, MemoryPeaksJson, MemoryReportJson};
use crate::ranks;
use crate::system::peak_rss;

/// The memory figures every JSON report carries.
#[derive(Debug, Serialize)]
pub(crate) struct MemorySummary {
    /// The memory limit.
    pub limit: u64,
    /// What the limit counts: `own` or `process`.
    pub accounting: &'static str,
    /// Highest managed bytes.
    pub peak_managed: u64,
    /// Highest bytes in spill files.
    pub spilled_bytes: u64,
    /// Blocks written to spill files.
    pub spill_count: u64,
    /// Blocks read back from spill files.
    pub reload_count: u64,
    /// Peak of each category over the run.
    pub peaks: MemoryPeaksJson,
    /// The categories at the end.
    #[serde(rename = "final")]
    pub last: MemoryReportJson,
    /// With `--dashboard` or `--report`: the most the dashboard may hold, which the plans
    /// counted in the process's overhead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_bytes: Option<u64>,
}

impl MemorySummary {
    /// The figures of `report` (now) and `peaks` (over the command), and the most a dashboard
    /// holds if there is one.
    pub(crate) fn new(report: &MemoryReport, peaks: &MemoryPeaks, dashboard_bytes: Option<u64>) -> Self {
        Self {
            limit: report.limit,
            accounting: json::accounting(report.accounting),
            peak_managed: report.peak_managed,
            spilled_bytes: report.peak_spilled,
            spill_count: report.spill_count,
            reload_count: report.reload_count,
            peaks: peaks.into(),
            last: report.into(),
            dashboard_bytes,
        }
    }
}

/// The `--json` summary of `tsqr`, `rsvd`, `qr` and `lstsq` (and `summary.json` in their
/// `--output`): one typed record, so the fields scripts read cannot drift between commands.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub command: &'static str,
    pub input: String,
    /// The input's element type; the results are written in it.
    pub dtype: &'static str,
    pub shape: [usize; 2],
    pub chunks: [usize; 2],
    /// The matrix's singular values (all of them, or the top k), where the command has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub singular_values: Option<Vec<f64>>,
    pub scheduler: &'static str,
    pub workers: usize,
    pub tasks: usize,
    pub wall_seconds: f64,
    pub peak_rss_bytes: u64,
    pub memory: MemorySummary,
    pub waits_for_memory: u64,
    /// Where `--output` put the results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<std::path::PathBuf>,
    /// Under MPI, each rank's figures, rank 0 first (the fields above are rank 0's, but
    /// `tasks`, summed over ranks, and `peak_rss_bytes_all_ranks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranks: Option<Vec<RankFigures>>,
    /// Under MPI, the sum of the ranks' peak RSS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes_all_ranks: Option<u64>,
    /// The command's own fields.
    #[serde(flatten)]
    pub details: Details,
    /// The input's element type.
    #[serde(skip)]
    element: Dtype,
}

/// One rank's figures in an MPI run's summary.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RankFigures {
    pub rank: usize,
    /// Tasks this rank ran.
    pub tasks: usize,
    pub wall_seconds: f64,
    pub peak_rss_bytes: u64,
    /// Its memory summary (limit, peaks, spills: the limit is per rank).
    pub memory: serde_json::Value,
}

/// The fields of one command.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Details {
    Tsqr {
        values_only: bool,
        panels: usize,
        fan_in: usize,
    },
    Rsvd {
        k: usize,
        oversamples: usize,
        power_iters: usize,
        /// Iterations run: fewer than asked only when the block Krylov space filled the
        /// matrix's column space sooner (the result is then exact).
        power_iters_run: usize,
        method: &'static str,
        error_estimate: ErrorEstimateJson,
        passes_over_input: usize,
    },
    Qr {
        /// `qr`, or `lq` for a wide matrix (factored through its transpose).
        factorization: &'static str,
        mode: &'static str,
        panels: usize,
        fan_in: usize,
        /// R's diagonal (non-negative).
        r_diagonal: Vec<f64>,
        /// `Q^T B`, row by row, with `--rhs`.
        #[serde(skip_serializing_if = "Option::is_none")]
        qt_b: Option<Vec<Vec<f64>>>,
    },
    Lstsq(Box<LstsqFields>),
    Grow {
        /// The state file grown.
        state: std::path::PathBuf,
        /// Rows the state has seen, these included.
        rows_seen: u64,
        /// Rows this run added.
        rows_added: usize,
        /// Each component's share of the variance of every row seen (with two rows or more;
        /// `singular_values` are then the centered rows').
        explained_variance_ratio: Vec<f64>,
    },
}

/// A matrix as rows of values, for JSON.
pub(crate) fn rows_of(m: &outcore::faer::Mat<f64>) -> Vec<Vec<f64>> {
    (0..m.nrows()).map(|i| (0..m.ncols()).map(|j| m[(i, j)]).collect()).collect()
}

/// `lstsq`'s own fields: numpy's results and a regression's, each per column of B.
#[derive(Debug, Serialize)]
pub(crate) struct LstsqFields {
    /// The right-hand sides.
    pub rhs: String,
    pub rhs_cols: usize,
    /// The row weights, when weighted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    pub fit_intercept: bool,
    pub alpha: f64,
    pub rcond: Option<f64>,
    pub panels: usize,
    pub fan_in: usize,
    /// The solution, row by row (`cols x rhs_cols`).
    pub x: Vec<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intercept: Option<Vec<f64>>,
    pub rank: usize,
    /// numpy's residuals (squared norms; empty unless a plain fit of full rank, more rows than
    /// columns).
    pub residuals: Vec<f64>,
    pub rss: Vec<f64>,
    pub r2: Vec<f64>,
    pub df_resid: f64,
    /// Standard errors of x, row by row, for ordinary least squares of full rank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<Vec<Vec<f64>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intercept_stderr: Option<Vec<f64>>,
    /// `(A^T A)^-1`, row by row: x's covariance is `scale[j]` times it, for ordinary least
    /// squares of full rank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cov_unscaled: Option<Vec<Vec<f64>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<Vec<f64>>,
}

impl Summary {
    /// The summary of a run (which observed `stats`) on `a`, with the singular values `s` it
    /// gave if any, on `scheduler`, `wall_seconds` into the command, with its `memory` figures.
    pub(crate) fn new(
        (command, details): (&'static str, Details),
        a: &ChunkedMatrix,
        (s, stats): (Option<&[f64]>, &RunStats),
        scheduler: Scheduler,
        wall_seconds: f64,
        memory: MemorySummary,
    ) -> Self {
        let (cr, cc) = a.grid().chunk_shape();
        Self {
            command,
            input: a.describe(),
            dtype: json::dtype(a.store().dtype()),
            shape: [a.rows(), a.cols()],
            chunks: [cr, cc],
            singular_values: s.map(<[f64]>::to_vec),
            scheduler: scheduler.name(),
            workers: scheduler.workers(),
            tasks: stats.tasks,
            wall_seconds,
            peak_rss_bytes: peak_rss(),
            memory,
            waits_for_memory: stats.waits_for_memory,
            output: None,
            ranks: None,
            peak_rss_bytes_all_ranks: None,
            details,
            element: a.store().dtype(),
        }
    }

    /// The input's element type, which the results are written in.
    pub(crate) fn dtype(&self) -> Dtype {
        self.element
    }

    /// Under MPI, brings every rank's figures to rank 0 (which adds them to this summary) and
    /// says whether this rank goes on to write and print: rank 0 (or the only process) does,
    /// the others are done.
    pub(crate) fn gather_ranks(&mut self) -> Result<bool> {
        if ranks::count() == 1 {
            return Ok(true);
        }
        let mine = RankFigures {
            rank: ranks::rank(),
            tasks: self.tasks,
            wall_seconds: self.wall_seconds,
            peak_rss_bytes: self.peak_rss_bytes,
            memory: serde_json::to_value(&self.memory).unwrap_or_default(),
        };
        let bytes = serde_json::to_vec(&mine).map_err(|e| Error::Bug(format!("rank figures: {e}")))?;
        let Some(parts) = ranks::gather(bytes)? else { return Ok(false) };
        let figures = parts
            .iter()
            .map(|part| serde_json::from_slice::<RankFigures>(part))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Bug(format!("a rank sent figures that do not parse: {e}")))?;
        self.tasks = figures.iter().map(|f| f.tasks).sum();
        self.peak_rss_bytes_all_ranks = Some(figures.iter().map(|f| f.peak_rss_bytes).sum());
        self.ranks = Some(figures);
        Ok(true)
    }
}
