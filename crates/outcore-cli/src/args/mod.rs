//! Command-line arguments, parsed into typed values at the boundary: a bad value is a usage
//! error (exit code 2) naming the flag, before anything runs.

mod values;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use outcore::storage::{Compression, ReadMode};
use outcore::{Accounting, Distribution, QrMode, RandomizedMethod, RandomizedSvdOptions, Thresholds};

pub(crate) use values::{GraphFile, MemoryLimit, SchedulerKind, TimelineFile};
use values::{
    accounting, at_least_one, compression, distribution, graph_file, html_file, memory_limit, method, non_negative,
    qr_mode, read_mode, seconds, svg_file, thresholds, timeline_file, workers,
};

/// Out-of-core SVD of matrices larger than RAM: TSQR for tall-and-skinny matrices, from a
/// Zarr array, a .npy file or a seeded random generator, under a fixed memory limit.
///
/// Without a command, runs the demo of the Dask lesson: the SVD of a 2,000,000 x 100 random
/// matrix read from a temporary Zarr store under a 64 MiB memory limit.
#[derive(Debug, Parser)]
#[command(name = "large-svd", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options for the demo (when no command is given).
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// TSQR SVD of a tall-and-skinny (or short-and-fat) matrix.
    Tsqr(TsqrArgs),
    /// Randomized SVD (top k) of a matrix chunked any way, with an error estimate.
    Rsvd(RsvdArgs),
    /// QR of a tall matrix by TSQR: R, and Q with --output (numpy's modes).
    Qr(QrArgs),
    /// Least squares A X = B (numpy's lstsq), and a regression's figures, in one pass.
    Lstsq(LstsqArgs),
    /// Grow an exact fit by new rows: one pass over them, merged into a saved state (PCA, SVD).
    Grow(GrowArgs),
    /// Write a seeded random matrix to a Zarr array (in parallel, in bounded memory).
    Generate(GenerateArgs),
    /// The lesson's scheduler comparison: `tasks` x mean(normal(n)), then the mean of means.
    Means(MeansArgs),
}

#[derive(Debug, Args)]
pub(crate) struct MeansArgs {
    /// Independent tasks.
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    pub tasks: usize,
    /// Standard normals per task.
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Runs per configuration (the median is reported).
    #[arg(long, default_value_t = 7, value_parser = at_least_one)]
    pub repeat: usize,
    /// Seed of the streams.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub(crate) struct RunArgs {
    /// Memory limit, e.g. 64MiB or 1.5GiB; `auto` picks what the plan needs (at least 64 MiB).
    #[arg(long, value_name = "SIZE", default_value = "auto", value_parser = memory_limit, global = true)]
    pub memory_limit: MemoryLimit,
    /// Task scheduler (default threads; `means` without it compares both).
    #[arg(long, value_enum, global = true)]
    pub scheduler: Option<SchedulerKind>,
    /// Worker threads for the threads scheduler (default: the number of CPUs).
    #[arg(long, value_parser = workers, global = true)]
    pub workers: Option<usize>,
    /// Print one JSON object on stdout instead of the human summary.
    #[arg(long, global = true)]
    pub json: bool,
    /// Write the task graph: .dot (Graphviz source), or .svg/.png/.pdf (needs Graphviz's dot).
    #[arg(long, value_name = "FILE", value_parser = graph_file, global = true)]
    pub visualize: Option<GraphFile>,
    /// Directory for spill files (default: the system temporary directory).
    #[arg(long, value_name = "DIR", global = true)]
    pub spill_dir: Option<PathBuf>,
    /// Change Dask's memory thresholds (fractions of the limit), e.g. `target=0.5,spill=off`:
    /// target (managed, default 0.6), spill (RSS, 0.7), pause (RSS, 0.8), terminate (RSS, 0.95).
    #[arg(long, value_name = "SPEC", value_parser = thresholds, global = true)]
    pub thresholds: Option<Thresholds>,
    /// What the memory limit and thresholds count: `process` (the process's RSS, as Dask's
    /// workers: the process is the worker) or `own` (only what outcore holds).
    #[arg(long, value_name = "MODE", default_value = "process", value_parser = accounting, global = true)]
    pub accounting: Accounting,
    /// Write the memory categories sampled every 20 ms: .csv, or .jsonl (JSON lines).
    #[arg(long, value_name = "FILE", value_parser = timeline_file, global = true)]
    pub memory_timeline: Option<TimelineFile>,
    /// Draw the memory timeline as a stacked area chart with the threshold lines (.svg).
    #[arg(long, value_name = "FILE.svg", value_parser = svg_file, global = true)]
    pub memory_plot: Option<PathBuf>,
    /// Serve a live dashboard (workers' memory, task stream, progress, graph) at ADDR:
    /// 127.0.0.1:8787 when none is given; 127.0.0.1:0 picks a free port. The URL is printed.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8787", global = true)]
    pub dashboard: Option<String>,
    /// Allow --dashboard on an address other machines reach; a random token in the URL guards it.
    #[arg(long, requires = "dashboard", global = true)]
    pub dashboard_allow_remote: bool,
    /// Also answer requests for this Host name on a loopback dashboard: a proxy's, such as
    /// jupyter-server-proxy's (others are refused, against DNS rebinding). Repeatable.
    #[arg(long, value_name = "NAME", requires = "dashboard", global = true)]
    pub dashboard_allow_host: Vec<String>,
    /// Keep serving the dashboard this many seconds after the command ends (Ctrl-C stops it).
    #[arg(long, value_name = "SECONDS", requires = "dashboard", value_parser = seconds, global = true)]
    pub dashboard_linger: Option<f64>,
    /// Write the dashboard's views of the whole command to one self-contained HTML file, readable
    /// offline (like Dask's performance_report).
    #[arg(long, value_name = "FILE.html", value_parser = html_file, global = true)]
    pub report: Option<PathBuf>,
}

/// Where the matrix comes from.
#[derive(Debug, Args, Clone)]
pub(crate) struct MatrixArgs {
    /// Rows of the generated matrix.
    #[arg(long, default_value_t = 2_000_000, value_parser = at_least_one)]
    pub rows: usize,
    /// Columns of the generated matrix.
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    pub cols: usize,
    /// Rows per chunk of the generated matrix.
    #[arg(long, default_value_t = 10_000, value_parser = at_least_one)]
    pub chunk_rows: usize,
    /// Columns per chunk of the generated matrix (default: all columns).
    #[arg(long, value_parser = at_least_one)]
    pub chunk_cols: Option<usize>,
    /// Seed of the generated matrix.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Distribution of the generated matrix: uniform (like dask.array.random.random) or normal.
    #[arg(long, default_value = "uniform", value_parser = distribution)]
    pub distribution: Distribution,
    /// Read this Zarr array or .npy file instead of generating a matrix.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["rows", "cols", "chunk_rows", "chunk_cols", "seed", "distribution"])]
    pub input: Option<PathBuf>,
    /// Skip the scan of the input for NaN and infinity.
    #[arg(long)]
    pub no_check_finite: bool,
    /// How --input's Zarr chunk files are read: buffered (through the page cache, with
    /// read-ahead) or direct (O_DIRECT: no page cache, no read-ahead). A .npy file is always
    /// read buffered.
    #[arg(long, value_name = "MODE", default_value = "buffered", value_parser = read_mode, requires = "input")]
    pub io: ReadMode,
}

#[derive(Debug, Args)]
pub(crate) struct TsqrArgs {
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// Write u.zarr, s.zarr, v.zarr and summary.json here (atomically: nothing appears on failure).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Replace an existing --output directory (only once the new result is complete).
    #[arg(long)]
    pub overwrite: bool,
    /// Compute singular values only (no U, V); implied without --output.
    #[arg(long)]
    pub values_only: bool,
    /// R factors stacked per reduction node (default: chosen from shape and memory).
    #[arg(long)]
    pub fan_in: Option<usize>,
    /// Rows per panel (default: whole chunk rows).
    #[arg(long, value_parser = at_least_one)]
    pub panel_rows: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct GrowArgs {
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// The state file: read, grown by the matrix's rows, and written back whole (the rows it
    /// saw before are not read again).
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// Start a new state at --state instead of growing one.
    #[arg(long)]
    pub new: bool,
    /// With --new, replace an existing state file (only once the new one is complete).
    #[arg(long, requires = "new")]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub(crate) struct QrArgs {
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// Write r.zarr, q.zarr (mode reduced) and summary.json here (atomically); for a wide
    /// matrix, factored as A = L Q, l.zarr and qt.zarr (Q^T).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Replace an existing --output directory (only once the new result is complete).
    #[arg(long)]
    pub overwrite: bool,
    /// reduced: Q and R (Q is computed only with --output, in a second pass); r: R alone, one
    /// pass.
    #[arg(long, default_value = "reduced", value_parser = qr_mode)]
    pub mode: QrMode,
    /// Also compute Q^T B in the same pass: B a Zarr array or .npy file with the matrix's rows
    /// (qt_b in the summary and qtb.zarr).
    #[arg(long, value_name = "PATH")]
    pub rhs: Option<PathBuf>,
    /// Write Q C (qc.zarr) in place of Q: C a Zarr array or .npy file with a row per column of
    /// the matrix, read into memory.
    #[arg(long, value_name = "PATH")]
    pub q_times: Option<PathBuf>,
    /// R factors stacked per reduction node (default: chosen from shape and memory).
    #[arg(long)]
    pub fan_in: Option<usize>,
    /// Rows per panel (default: whole chunk rows).
    #[arg(long, value_parser = at_least_one)]
    pub panel_rows: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct LstsqArgs {
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// The right-hand sides B: a Zarr array or .npy file with the matrix's rows (required with
    /// --input; a generated matrix gets generated right-hand sides).
    #[arg(long, value_name = "PATH")]
    pub rhs: Option<PathBuf>,
    /// Columns of the generated right-hand sides.
    #[arg(long, default_value_t = 1, value_parser = at_least_one, conflicts_with = "rhs")]
    pub rhs_cols: usize,
    /// Row weights for weighted least squares: a Zarr array or .npy file of one column (or a
    /// 1-D .npy) with the matrix's rows, each finite and at least 0.
    #[arg(long, value_name = "PATH")]
    pub weights: Option<PathBuf>,
    /// Singular values of A at most RCOND times the largest count as zero (default: machine
    /// epsilon times the larger dimension, numpy's).
    #[arg(long, value_parser = non_negative, allow_negative_numbers = true)]
    pub rcond: Option<f64>,
    /// Fit an intercept per column of B (the columns centered in the same pass).
    #[arg(long)]
    pub fit_intercept: bool,
    /// Ridge penalty ALPHA ||X||^2 (the intercept not penalized); 0 for least squares.
    #[arg(long, default_value_t = 0.0, value_parser = non_negative, allow_negative_numbers = true)]
    pub alpha: f64,
    /// Write x.zarr, s.zarr and summary.json here (atomically).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Replace an existing --output directory (only once the new result is complete).
    #[arg(long)]
    pub overwrite: bool,
    /// R factors stacked per reduction node (default: chosen from shape and memory).
    #[arg(long)]
    pub fan_in: Option<usize>,
    /// Rows per panel (default: whole chunk rows).
    #[arg(long, value_parser = at_least_one)]
    pub panel_rows: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct RsvdArgs {
    /// Rows of the generated matrix.
    #[arg(long, default_value_t = 10_000, value_parser = at_least_one)]
    pub rows: usize,
    /// Columns of the generated matrix.
    #[arg(long, default_value_t = 10_000, value_parser = at_least_one)]
    pub cols: usize,
    /// Rows and columns per chunk of the generated matrix.
    #[arg(long, default_value_t = 2_000, value_parser = at_least_one)]
    pub chunk: usize,
    /// Seed of the generated matrix and of the sketch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Distribution of the generated matrix: uniform or normal.
    #[arg(long, default_value = "uniform", value_parser = distribution)]
    pub distribution: Distribution,
    /// Read this Zarr array or .npy file instead of generating a matrix.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["rows", "cols", "chunk", "distribution"])]
    pub input: Option<PathBuf>,
    /// Skip the scan of the input for NaN and infinity.
    #[arg(long)]
    pub no_check_finite: bool,
    /// How --input's Zarr chunk files are read: buffered (through the page cache, with
    /// read-ahead) or direct (O_DIRECT: no page cache, no read-ahead). A .npy file is always
    /// read buffered.
    #[arg(long, value_name = "MODE", default_value = "buffered", value_parser = read_mode, requires = "input")]
    pub io: ReadMode,
    /// Singular values and vectors wanted.
    #[arg(short = 'k', long = "k", default_value_t = 5)]
    pub k: usize,
    /// Extra sketch columns beyond k.
    #[arg(long, default_value_t = 10)]
    pub oversamples: usize,
    /// Power iterations (two passes over the matrix each).
    #[arg(long, default_value_t = RandomizedSvdOptions::DEFAULT_POWER_ITERS)]
    pub power_iters: usize,
    /// krylov (block Krylov: best accuracy per pass) or subspace (re-orthonormalized power
    /// iteration, as Dask's "QR" iterator).
    #[arg(long, default_value = "krylov", value_parser = method)]
    pub method: RandomizedMethod,
    /// Gaussian probes for the error estimate (failure probability 10^-probes).
    #[arg(long, default_value_t = 10)]
    pub probes: usize,
    /// Write u.zarr, s.zarr, v.zarr and summary.json here (atomically).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Replace an existing --output directory (only once the new result is complete).
    #[arg(long)]
    pub overwrite: bool,
}

impl RsvdArgs {
    /// The matrix options in the shape the other commands use.
    pub(crate) fn matrix(&self) -> MatrixArgs {
        MatrixArgs {
            rows: self.rows,
            cols: self.cols,
            chunk_rows: self.chunk,
            chunk_cols: Some(self.chunk),
            seed: self.seed,
            distribution: self.distribution,
            input: self.input.clone(),
            no_check_finite: self.no_check_finite,
            io: self.io,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// The Zarr array to create.
    #[arg(long, value_name = "PATH")]
    pub output: PathBuf,
    /// Replace an existing array at --output.
    #[arg(long)]
    pub overwrite: bool,
    /// Chunk compression: none, zstd, gzip or blosc-lz4, each with an optional level (zstd:3).
    #[arg(long, default_value = "none", value_parser = compression)]
    pub compression: Compression,
}
