//! What every command shares: engine and memory limit, input, progress, pictures, reports.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use outcore::files::{OutputDir, write_vector_zarr};
use outcore::storage::{
    Accounting, ChunkGrid, ChunkStore, FaultPlan, FaultyStore, MemoryPeaks, MemorySample, ReadMode, RssSource,
    ZarrOptions, ZarrStore, format_size, parse_size,
};
use outcore::{
    CancelToken, ChunkedMatrix, Engine, Error, Event, EventSink, MemoryReport, Result, RunControl, Scheduler, SvdResult,
};
use serde::Serialize;

use crate::cli::{MatrixArgs, RunArgs};

/// The smallest limit `auto` picks.
const AUTO_MIN_LIMIT: u64 = 64 << 20;

/// The command's view of its runs' events: the progress bar, the memory timeline and the
/// dashboard's board.
struct Observer {
    bar: ProgressBar,
    started: Instant,
    samples: Mutex<Vec<MemorySample>>,
    board: Option<Arc<crate::dashboard::Board>>,
}

impl EventSink for Observer {
    fn event(&self, event: &Event) {
        if let Some(board) = &self.board {
            board.event(event);
        }
        match event {
            Event::TaskFinished { done, total, stage, .. } => {
                self.bar.set_length(*total as u64);
                self.bar.set_position(*done as u64);
                self.bar.set_message(*stage);
            }
            Event::Memory { report, at } => {
                let seconds = at.saturating_duration_since(self.started).as_secs_f64();
                let sample = MemorySample { seconds, report: (**report).clone() };
                self.samples.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
            }
            _ => {}
        }
    }
}

/// An engine, how its limit was chosen, when the command started, and the control of its runs
/// (Ctrl-C's cancel token, the progress bar and memory sampler).
pub struct Session {
    pub engine: Engine,
    pub auto_limit: bool,
    pub started: Instant,
    pub control: RunControl,
    observer: Arc<Observer>,
    dashboard: Option<crate::dashboard::Dashboard>,
    cancel: CancelToken,
    /// Set once the side files are written: a session dropped before failed.
    finished: std::sync::atomic::AtomicBool,
}

impl Session {
    /// Builds the engine for `run`. With `--memory-limit auto`, `needed` is asked, on a
    /// provisional engine, for the limit the command's plan needs.
    pub fn new(run: &RunArgs, cancel: CancelToken, needed: impl Fn(&Engine) -> Result<u64>) -> Result<Self> {
        check_side_files(run)?;
        let scheduler = scheduler(run)?;
        // Under MPI, rank 0 serves and reports; the other ranks serve their boards to it.
        let watched = run.dashboard.is_some() || run.report.is_some();
        let overhead = process_overhead() + if watched { crate::dashboard::held_bytes() } else { 0 };
        let spill_faults = InjectedFaults::from_env()?.spill.unwrap_or_default();
        let thresholds: outcore::Thresholds = match &run.thresholds {
            Some(spec) => spec
                .parse()
                .map_err(|e: outcore::storage::StorageError| Error::invalid("--thresholds", e.to_string()))?,
            None => outcore::Thresholds::default(),
        };
        let accounting: Accounting = run
            .accounting
            .parse()
            .map_err(|e: outcore::storage::StorageError| Error::invalid("--accounting", e.to_string()))?;
        let engine = |limit: u64| {
            let mut builder = Engine::builder()
                .memory_limit(limit)
                .process_overhead(overhead)
                .scheduler(scheduler)
                .accounting(accounting)
                .thresholds(thresholds)
                .spill_faults(spill_faults);
            if let Some(dir) = &run.spill_dir {
                builder = builder.spill_dir(dir);
            }
            builder.build()
        };
        let ram = total_ram();
        let (limit, auto_limit) = if run.memory_limit == "auto" {
            let ceiling = ram / 2;
            let needed = needed(&engine(ceiling)?)?;
            // Room for the concurrent working sets under the target threshold (Dask's 60%),
            // which counts reservations as managed memory: at less, the pool spills the run's
            // own intermediates to make room (measured: 482 spills and 4.25 s instead of 3.40 s
            // for the zstd 10000^2 store's randomized SVD at 304 against 384 MiB).
            let share = thresholds.target.unwrap_or(0.8).clamp(0.5, 1.0);
            let limit = ((needed as f64 / share) as u64).next_multiple_of(16 << 20).max(AUTO_MIN_LIMIT).min(ceiling);
            (limit, true)
        } else {
            let limit = parse_size(&run.memory_limit).map_err(|e| Error::invalid("--memory-limit", e.to_string()))?;
            if limit > ram && crate::ranks::is_root() {
                eprintln!(
                    "warning: --memory-limit {} is more than this machine's RAM ({}): the limit cannot keep the run within memory; give at most what the machine can spare",
                    format_size(limit),
                    format_size(ram)
                );
            }
            (limit, false)
        };
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:20} [{bar:30}] {pos}/{len} tasks {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let spill_parent = run.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
        let removed = outcore::storage::remove_leftovers(&spill_parent, outcore::storage::SPILL_PREFIX);
        notice_leftovers(&removed, "spill directory", "spill directories");
        let started = Instant::now();
        let engine = engine(limit)?;
        let dashboard = watched
            .then(|| {
                let threads = engine.scheduler().workers();
                crate::dashboard::Dashboard::start(run, threads, started)
            })
            .transpose()?;
        let board = dashboard.as_ref().map(|d| d.board().clone());
        let observer = Arc::new(Observer { bar, started, samples: Mutex::new(Vec::new()), board });
        // Memory is sampled every `outcore::RunControl::DEFAULT_MEMORY_INTERVAL` (20 ms).
        let mut control = RunControl::new().cancel_token(cancel.clone()).shared_events(observer.clone());
        if let Some(transport) = crate::ranks::cluster() {
            control = control.cluster(transport);
        }
        if !crate::ranks::is_root() {
            observer.bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let finished = false.into();
        Ok(Self { engine, auto_limit, started, control, observer, dashboard, cancel, finished })
    }

    /// In an MPI job with a dashboard, on every rank once all agreed to go on: tells rank 0
    /// where the other ranks serve their boards, so that it shows each rank as a worker.
    pub fn meet_ranks(&self) -> Result<()> {
        match self.dashboard.as_ref().filter(|_| crate::ranks::in_job()) {
            Some(dashboard) => dashboard.meet_ranks(),
            None => Ok(()),
        }
    }

    /// In an MPI job with a dashboard, on every rank once the runs are over and before rank 0
    /// does anything alone: brings every rank's final board to rank 0.
    pub fn gather_boards(&self) -> Result<()> {
        match self.dashboard.as_ref().filter(|_| crate::ranks::in_job()) {
            Some(dashboard) => dashboard.gather_ranks(),
            None => Ok(()),
        }
    }

    /// A session whose `auto` limit is what the plan `make` builds needs
    /// (`needed(plan, workers)`), and that plan built again on the session's engine.
    pub fn planned<P>(
        run: &RunArgs,
        cancel: CancelToken,
        make: impl Fn(&Engine) -> Result<P>,
        needed: impl Fn(&P, usize) -> u64,
    ) -> Result<(Self, P)> {
        // `auto` sizes the limit for the tasks that can run at once: no more than the CPUs.
        let session =
            Self::new(run, cancel, |engine| Ok(needed(&make(engine)?, engine.scheduler().workers().min(cpus()))))?;
        let plan = make(&session.engine)?;
        Ok((session, plan))
    }

    /// The memory samples so far and the peak of each category.
    pub fn memory(&self) -> (Vec<MemorySample>, MemoryPeaks) {
        let samples = self.observer.samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let peaks = MemoryPeaks::of(&samples, &self.engine.memory_report());
        (samples, peaks)
    }

    /// Writes `--memory-timeline`, `--memory-plot` and `--report` if asked, then keeps the
    /// dashboard serving for `--dashboard-linger`. Called once the command's result is safe: a
    /// failure here never costs it.
    pub fn write_side_files(&self, run: &RunArgs, title: &str) -> Result<()> {
        self.finished.store(true, std::sync::atomic::Ordering::Release);
        if let Some(dashboard) = &self.dashboard {
            dashboard.close();
        }
        if let Some((dashboard, path)) = self.dashboard.as_ref().and_then(|d| Some((d, d.report.as_ref()?))) {
            dashboard.write_report(path)?;
        }
        self.write_memory_files(run, title)?;
        if let (Some(dashboard), Some(seconds)) = (&self.dashboard, run.dashboard_linger) {
            dashboard.linger(seconds, &self.cancel);
        }
        Ok(())
    }

    fn write_memory_files(&self, run: &RunArgs, title: &str) -> Result<()> {
        let (samples, _) = self.memory();
        // Under MPI each rank writes its own (rank R's beside rank 0's, as NAME.rankR.EXT).
        if let Some(path) = &run.memory_timeline {
            crate::timeline::write_timeline(&crate::ranks::own_path(path), &samples)?;
        }
        if let Some(path) = &run.memory_plot {
            crate::timeline::plot_timeline(&crate::ranks::own_path(path), &samples, title)?;
        }
        Ok(())
    }

    /// Clears the progress bar.
    pub fn finish_progress(&self) {
        self.observer.bar.finish_and_clear();
    }

    /// `64.0 MiB` or `64.0 MiB (auto)`.
    pub fn limit_text(&self) -> String {
        let limit = format_size(self.engine.memory_limit());
        if self.auto_limit { format!("{limit} (auto; set --memory-limit to choose)") } else { limit }
    }
}

impl Drop for Session {
    /// A command that failed still writes its `--report`, marked failed: what went on until
    /// then is what its user needs to see.
    fn drop(&mut self) {
        if self.finished.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let Some(dashboard) = &self.dashboard else { return };
        dashboard.board().fail();
        if let Some(path) = &dashboard.report {
            match dashboard.write_report(path) {
                Ok(()) => eprintln!("wrote the report of the failed command to {}", path.display()),
                Err(e) => eprintln!("warning: the report of the failed command was not written: {e}"),
            }
        }
    }
}

/// Faults to inject, from the `OUTCORE_INJECT_FAULTS` environment variable: a testing hook for
/// the reliability tests, e.g. `input:read=3; output:write=2; spill:read=1,persistent` (see
/// [`FaultPlan`] for the part after the colon). Unset in normal use.
#[derive(Clone, Copy, Debug, Default)]
pub struct InjectedFaults {
    /// Faults of reads of the input matrix.
    pub input: Option<FaultPlan>,
    /// Faults of writes of the output arrays.
    pub output: Option<FaultPlan>,
    /// Faults of spill writes and reloads.
    pub spill: Option<FaultPlan>,
}

impl InjectedFaults {
    /// Reads `OUTCORE_INJECT_FAULTS`.
    pub fn from_env() -> Result<Self> {
        let Ok(text) = std::env::var("OUTCORE_INJECT_FAULTS") else { return Ok(Self::default()) };
        let mut faults = Self::default();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                Error::invalid(
                    "OUTCORE_INJECT_FAULTS",
                    format!("{part:?} is not input:PLAN, output:PLAN or spill:PLAN"),
                )
            };
            let (target, plan) = part.split_once(':').ok_or_else(bad)?;
            let plan: FaultPlan = plan.parse()?;
            match target.trim() {
                "input" => faults.input = Some(plan),
                "output" => faults.output = Some(plan),
                "spill" => faults.spill = Some(plan),
                _ => return Err(bad()),
            }
        }
        Ok(faults)
    }

    /// `store`, failing as the output plan says.
    pub fn output(&self, store: Arc<dyn ChunkStore>) -> Arc<dyn ChunkStore> {
        match self.output {
            Some(plan) => Arc::new(FaultyStore::new(store, plan)),
            None => store,
        }
    }
}

/// Creates the Zarr array `name` in `out` for a factor (U or V) of `a` with `grid`, in `a`'s
/// precision, failing as `OUTCORE_INJECT_FAULTS` says: the destination of a run writing into
/// `out`.
pub fn factor_store(
    out: &OutputDir,
    name: &str,
    grid: ChunkGrid,
    a: &ChunkedMatrix,
) -> Result<outcore::Destination<'static>> {
    let options = ZarrOptions { dtype: a.store().dtype(), ..ZarrOptions::default() };
    let store = Arc::new(ZarrStore::create(out.path().join(name), grid, &options)?);
    Ok(outcore::Destination::Store(InjectedFaults::from_env()?.output(store)))
}

/// What rank 0 shares with the other ranks of an MPI job before a run: the path of its partial
/// output directory, where they open the factor arrays it created (empty without one).
pub fn output_share(output: Option<&OutputDir>) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    // Absolute: ranks need not share a working directory.
    let absolute = |o: &OutputDir| std::fs::canonicalize(o.path()).unwrap_or_else(|_| o.path().to_path_buf());
    output.map(|o| absolute(o).as_os_str().as_bytes().to_vec()).unwrap_or_default()
}

/// On a rank other than 0: the factor array `name` rank 0 created in its partial output
/// directory `shared` (on storage every rank sees), opened to write this rank's rows.
pub fn shared_factor(shared: &[u8], name: &str) -> Result<outcore::Destination<'static>> {
    use std::os::unix::ffi::OsStrExt;
    let dir = Path::new(std::ffi::OsStr::from_bytes(shared));
    let store = Arc::new(ZarrStore::open(dir.join(name))?);
    Ok(outcore::Destination::Store(InjectedFaults::from_env()?.output(store)))
}

/// The human summary's header on stderr: the input, its size, the memory limit and the plan.
pub fn print_header(command: &str, a: &ChunkedMatrix, session: &Session, plan_summary: &str) {
    eprintln!("large-svd {command}: {}", a.describe());
    eprintln!(
        "matrix {} x {} ({}), memory limit {}",
        a.rows(),
        a.cols(),
        format_size(a.store().grid().bytes()),
        session.limit_text()
    );
    eprintln!("{plan_summary}");
}

/// Starts the output `path` for results computed from `input`, refusing one over the input,
/// and says which partial outputs of killed runs it removed on the way: a directory of results
/// ([`OutputDir::create`]), or with `array` a Zarr array ([`OutputDir::create_for_array`]).
pub fn create_output(path: &Path, overwrite: bool, input: &ChunkedMatrix, array: bool) -> Result<OutputDir> {
    outcore::files::check_no_overlap(input, path)?;
    let out = if array { OutputDir::create_for_array(path, overwrite)? } else { OutputDir::create(path, overwrite)? };
    notice_leftovers(out.leftovers_removed(), "partial output", "partial outputs");
    Ok(out)
}

/// Tells on stderr what leftovers of killed runs were removed (rank 0 alone, under MPI).
fn notice_leftovers(removed: &[std::path::PathBuf], one: &str, many: &str) {
    if let Some(first) = removed.first().filter(|_| crate::ranks::is_root()) {
        let what = if removed.len() == 1 { one } else { many };
        eprintln!("note: removed {} {what} left by killed runs (e.g. {})", removed.len(), first.display());
    }
}

/// The scheduler `run` asks for (threads when none is named).
fn scheduler(run: &RunArgs) -> Result<Scheduler> {
    let workers = run.workers.unwrap_or_else(cpus);
    Scheduler::from_name(run.scheduler.as_deref().unwrap_or("threads"), workers)
}

/// Checks the side files (memory timeline and plot, task graph picture) before any work, so a
/// typo or an unwritable directory does not cost a whole run.
fn check_side_files(run: &RunArgs) -> Result<()> {
    if let Some(path) = &run.memory_timeline {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if !["csv", "jsonl", "ndjson", "json"].contains(&ext.as_str()) {
            return Err(Error::invalid(
                "--memory-timeline",
                format!("unknown format .{ext}; use .csv, or .jsonl for JSON lines"),
            ));
        }
        check_writable("--memory-timeline", &crate::ranks::own_path(path))?;
    }
    if let Some(path) = &run.memory_plot {
        if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) {
            return Err(Error::invalid("--memory-plot", format!("{} must end in .svg", path.display())));
        }
        check_writable("--memory-plot", &crate::ranks::own_path(path))?;
    }
    if let Some(path) = run.report.as_ref().filter(|_| crate::ranks::is_root()) {
        if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm")) {
            return Err(Error::invalid("--report", format!("{} must end in .html", path.display())));
        }
        check_writable("--report", path)?;
    }
    if let Some(seconds) = run.dashboard_linger.filter(|s| !(s.is_finite() && *s >= 0.0)) {
        return Err(Error::invalid(
            "--dashboard-linger",
            format!("{seconds} is not a number of seconds; give 0 or more"),
        ));
    }
    // Under MPI, rank 0 alone draws the graph.
    if let Some(path) = run.visualize.as_ref().filter(|_| crate::ranks::is_root()) {
        check_writable("--visualize", path)?;
    }
    Ok(())
}

/// Refuses a file path whose directory does not exist or cannot take new files.
fn check_writable(flag: &'static str, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        let problem = if dir.exists() { "is not a directory" } else { "does not exist" };
        return Err(Error::invalid(
            flag,
            format!(
                "{} cannot be written: {} {problem}; create it or choose another path",
                path.display(),
                dir.display()
            ),
        ));
    }
    let probe = tempfile::NamedTempFile::new_in(dir).map_err(|e| {
        let kind = e.kind();
        Error::invalid(
            flag,
            format!("{} cannot be written in {}: {kind}; choose another path", path.display(), dir.display()),
        )
    })?;
    drop(probe);
    if path.is_dir() {
        return Err(Error::invalid(flag, format!("{} is a directory; give a file name", path.display())));
    }
    Ok(())
}

/// What this process holds outside outcore's pool, which plans under process accounting leave
/// room for: code and data as they are paged in, thread stacks, allocator state. Measured
/// (unmanaged memory, start of a run / peak during one): 7.5 / 14 MiB for the release binary,
/// 11.5 / 17 MiB for the unoptimized one the tests run. A constant per build, so plans never
/// depend on the RSS of the moment.
fn process_overhead() -> u64 {
    if cfg!(debug_assertions) { 24 << 20 } else { outcore::Engine::DEFAULT_PROCESS_OVERHEAD }
}

/// The machine's CPUs (1 where unknown).
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Physical memory of the machine, from /proc/meminfo (8 GiB where unknown).
fn total_ram() -> u64 {
    outcore::storage::meminfo("MemTotal").unwrap_or(8 << 30)
}

/// The matrix the command works on, from `--input` or generated.
pub fn open_matrix(args: &MatrixArgs) -> Result<ChunkedMatrix> {
    if let Some(path) = &args.input {
        let mode = if args.io == "direct" { ReadMode::Direct } else { ReadMode::Buffered };
        let matrix = ChunkedMatrix::open_with(path, mode)?;
        return Ok(match InjectedFaults::from_env()?.input {
            Some(plan) => ChunkedMatrix::from_store(Arc::new(FaultyStore::new(matrix.store().clone(), plan))),
            None => matrix,
        });
    }
    let distribution = args.distribution.parse()?;
    for (name, value) in [("--rows", args.rows), ("--cols", args.cols), ("--chunk-rows", args.chunk_rows)] {
        if value == 0 {
            return Err(Error::invalid("matrix shape", format!("{name} is 0; it must be at least 1")));
        }
    }
    let chunk_cols = args.chunk_cols.unwrap_or(args.cols);
    if chunk_cols == 0 {
        return Err(Error::invalid("matrix shape", "--chunk-cols is 0; it must be at least 1"));
    }
    ChunkedMatrix::generated(distribution, args.seed, args.rows, args.cols, args.chunk_rows, chunk_cols)
}

/// Writes the task graph to `path`: DOT source, or a picture rendered by Graphviz's `dot`.
pub fn write_visualization(path: &Path, dot: &str) -> Result<()> {
    let io = |e: std::io::Error| Error::from(outcore::storage::StorageError::io(path, e));
    let format = path.extension().and_then(|e| e.to_str()).unwrap_or("dot").to_ascii_lowercase();
    match format.as_str() {
        "dot" | "gv" => std::fs::write(path, dot).map_err(io),
        "svg" | "png" | "pdf" => {
            use std::io::Write;
            let mut child = std::process::Command::new("dot")
                .arg(format!("-T{format}"))
                .arg("-o")
                .arg(path)
                .stdin(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Error::invalid(
                            "--visualize",
                            format!("rendering {format} needs Graphviz's `dot`, which is not installed (apt install graphviz); or write a .dot file"),
                        )
                    } else {
                        io(e)
                    }
                })?;
            child.stdin.take().map(|mut stdin| stdin.write_all(dot.as_bytes())).transpose().map_err(io)?;
            let status = child.wait().map_err(io)?;
            if !status.success() {
                return Err(Error::invalid(
                    "--visualize",
                    format!("Graphviz's dot failed ({status}) writing {}", path.display()),
                ));
            }
            Ok(())
        }
        other => Err(Error::invalid("--visualize", format!("unknown format .{other}; use .dot, .svg, .png or .pdf"))),
    }
}

/// Peak resident set size of this process so far.
pub fn peak_rss() -> u64 {
    RssSource::Process.sample().peak
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) so the next phase is measured on its own.
pub fn reset_peak_rss() {
    // Linux: writing 5 to clear_refs resets VmHWM. Elsewhere this does nothing.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The memory figures every JSON report carries.
#[derive(Debug, Serialize)]
pub struct MemorySummary {
    /// The memory limit.
    pub limit: u64,
    /// What the limit counts: `own` or `process`.
    pub accounting: Accounting,
    /// Highest managed bytes.
    pub peak_managed: u64,
    /// Highest bytes in spill files.
    pub spilled_bytes: u64,
    /// Blocks written to spill files.
    pub spill_count: u64,
    /// Blocks read back from spill files.
    pub reload_count: u64,
    /// Peak of each category over the run.
    pub peaks: MemoryPeaks,
    /// The categories at the end.
    #[serde(rename = "final")]
    pub last: MemoryReport,
    /// With `--dashboard` or `--report`: the most the dashboard may hold, which the plans
    /// counted in the process's overhead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_bytes: Option<u64>,
}

impl MemorySummary {
    /// Adds what `session`'s dashboard may hold.
    pub fn with_dashboard(self, session: &Session) -> Self {
        Self { dashboard_bytes: session.dashboard.as_ref().map(|_| crate::dashboard::held_bytes()), ..self }
    }

    pub fn new(report: MemoryReport, peaks: MemoryPeaks) -> Self {
        Self {
            limit: report.limit,
            accounting: report.accounting,
            peak_managed: report.peak_managed,
            spilled_bytes: report.peak_spilled,
            spill_count: report.spill_count,
            reload_count: report.reload_count,
            peaks,
            last: report,
            dashboard_bytes: None,
        }
    }
}

/// The `--json` summary of `tsqr` and `rsvd` (and `summary.json` in their `--output`): one
/// typed record, so the fields scripts read cannot drift between commands.
#[derive(Debug, Serialize)]
pub struct SvdSummary {
    pub command: &'static str,
    pub input: String,
    /// The input's element type; U, s and V are written in it.
    pub dtype: outcore::storage::Dtype,
    pub shape: [usize; 2],
    pub chunks: [usize; 2],
    pub singular_values: Vec<f64>,
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
    /// `tsqr`'s or `rsvd`'s own fields.
    #[serde(flatten)]
    pub details: Details,
}

/// One rank's figures in an MPI run's summary.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct RankFigures {
    pub rank: usize,
    /// Tasks this rank ran.
    pub tasks: usize,
    pub wall_seconds: f64,
    pub peak_rss_bytes: u64,
    /// Its memory summary (limit, peaks, spills: the limit is per rank).
    pub memory: serde_json::Value,
}

/// Lines saying each rank's share and the job's total, for human summaries of MPI runs (none
/// otherwise).
pub fn ranks_lines(summary: &SvdSummary) -> Vec<String> {
    let Some(ranks) = &summary.ranks else { return Vec::new() };
    let managed = |f: &RankFigures| f.memory.get("peak_managed").and_then(serde_json::Value::as_u64).unwrap_or(0);
    let mut lines: Vec<String> = ranks
        .iter()
        .map(|f| {
            format!(
                "rank {}: {} tasks, {:.2} s, peak RSS {}, peak managed {}",
                f.rank,
                f.tasks,
                f.wall_seconds,
                format_size(f.peak_rss_bytes),
                format_size(managed(f))
            )
        })
        .collect();
    lines.push(format!(
        "all {} ranks: {} tasks, peak RSS {} and peak managed {} summed over ranks (the limit is per rank)",
        ranks.len(),
        summary.tasks,
        format_size(ranks.iter().map(|f| f.peak_rss_bytes).sum()),
        format_size(ranks.iter().map(managed).sum())
    ));
    lines
}

/// [`outcore::ErrorEstimate`] in the JSON summaries.
#[derive(Debug, Serialize)]
pub struct ErrorEstimateJson {
    pub spectral_bound: f64,
    pub frobenius: f64,
    pub probes: usize,
    pub failure_probability: f64,
}

impl From<&outcore::ErrorEstimate> for ErrorEstimateJson {
    fn from(e: &outcore::ErrorEstimate) -> Self {
        Self {
            spectral_bound: e.spectral_bound,
            frobenius: e.frobenius,
            probes: e.probes,
            failure_probability: e.failure_probability,
        }
    }
}

/// A method's name in the JSON summaries.
pub fn method_name(method: outcore::RandomizedMethod) -> &'static str {
    match method {
        outcore::RandomizedMethod::Krylov => "krylov",
        _ => "subspace",
    }
}

/// The fields of one command.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Details {
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
}

impl SvdSummary {
    /// The summary of `svd` computed from `a`, with the session's figures now.
    pub fn new(command: &'static str, a: &ChunkedMatrix, svd: &SvdResult, session: &Session, details: Details) -> Self {
        let engine = &session.engine;
        let (cr, cc) = a.grid().chunk_shape();
        let (_, peaks) = session.memory();
        Self {
            command,
            input: a.describe(),
            dtype: a.store().dtype(),
            shape: [a.rows(), a.cols()],
            chunks: [cr, cc],
            singular_values: svd.s.clone(),
            scheduler: engine.scheduler().name(),
            workers: engine.scheduler().workers(),
            tasks: svd.stats.tasks,
            wall_seconds: session.started.elapsed().as_secs_f64(),
            peak_rss_bytes: peak_rss(),
            memory: MemorySummary::new(engine.memory_report(), peaks).with_dashboard(session),
            waits_for_memory: svd.stats.waits_for_memory,
            output: None,
            ranks: None,
            peak_rss_bytes_all_ranks: None,
            details,
        }
    }

    /// Under MPI, brings every rank's figures to rank 0 (which adds them to this summary) and
    /// says whether this rank goes on to write and print: rank 0 (or the only process) does,
    /// the others are done.
    pub fn gather_ranks(&mut self) -> Result<bool> {
        if crate::ranks::count() == 1 {
            return Ok(true);
        }
        let mine = RankFigures {
            rank: crate::ranks::rank(),
            tasks: self.tasks,
            wall_seconds: self.wall_seconds,
            peak_rss_bytes: self.peak_rss_bytes,
            memory: serde_json::to_value(&self.memory).unwrap_or_default(),
        };
        let bytes = serde_json::to_vec(&mine).map_err(|e| Error::Bug(format!("rank figures: {e}")))?;
        let Some(parts) = crate::ranks::gather(bytes)? else { return Ok(false) };
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

    /// The line every human SVD summary ends its figures with: time, peak RSS and the pool's
    /// limit, managed peak and spills.
    pub fn usage_line(&self, extra: &str) -> String {
        format!(
            "time {:.2} s{extra}, peak RSS {} (memory limit {} of {} memory, peak managed {}, {} spills), {} tasks on {} {}",
            self.wall_seconds,
            format_size(self.peak_rss_bytes),
            format_size(self.memory.limit),
            match self.memory.accounting {
                Accounting::Own => "own",
                _ => "process",
            },
            format_size(self.memory.peak_managed),
            self.memory.spill_count,
            self.tasks,
            self.workers,
            if self.workers == 1 { "worker" } else { "workers" },
        )
    }
}

/// Completes an `--output` directory: writes `s.zarr` and `summary.json` (with the output's
/// final path in `summary`), then moves the directory into place.
pub fn commit_output(out: OutputDir, summary: &mut SvdSummary) -> Result<()> {
    write_vector_zarr(&out.path().join("s.zarr"), &summary.singular_values, summary.dtype)?;
    summary.output = Some(out.target().to_path_buf());
    let path = out.path().join("summary.json");
    let text = serde_json::to_string_pretty(summary).map_err(|e| Error::Bug(format!("summary: {e}")))?;
    std::fs::write(&path, text).map_err(|e| outcore::storage::StorageError::io(&path, e))?;
    out.commit().map(drop)
}

/// The peak of each memory category, for human summaries.
pub fn peaks_line(peaks: &MemoryPeaks) -> String {
    format!(
        "memory peaks: process {}, managed {}, unmanaged {}, unmanaged recent {}, spilled {}",
        format_size(peaks.process),
        format_size(peaks.managed),
        format_size(peaks.unmanaged),
        format_size(peaks.unmanaged_recent),
        format_size(peaks.spilled)
    )
}

/// What an SVD command's `--output` directory holds, once committed.
pub fn wrote_line(path: &Path) -> String {
    format!(
        "wrote {} (u.zarr, s.zarr, v.zarr, summary.json; V holds right singular vectors as columns)",
        path.display()
    )
}

/// Prints the top singular values, ten to a line at most.
pub fn values_line(s: &[f64], count: usize) -> String {
    let shown: Vec<String> = s.iter().take(count).map(|x| format!("{x:.6}")).collect();
    let more = if s.len() > count { format!(" ... ({} in all)", s.len()) } else { String::new() };
    format!("{}{more}", shown.join("  "))
}
