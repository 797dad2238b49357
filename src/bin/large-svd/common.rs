//! What every command shares: engine and memory limit, input, progress, pictures, reports.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use outcore::output::{OutputDir, write_vector_zarr};
use outcore::storage::{
    ChunkGrid, ChunkStore, FaultPlan, FaultyStore, MemoryMonitor, MemoryPeaks, RssSource, ZarrOptions, ZarrStore,
    format_size, parse_size,
};
use outcore::{BufferConfig, ChunkedMatrix, Engine, Error, MemoryReport, Progress, Result, Scheduler, SvdResult};
use serde_json::{Value, json};

use crate::cli::{MatrixArgs, RunArgs};

/// The smallest limit `auto` picks.
const AUTO_MIN_LIMIT: u64 = 64 << 20;

/// How often the memory categories are sampled.
const MEMORY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// An engine, how its limit was chosen, when the command started, and its memory sampler.
pub struct Session {
    pub engine: Engine,
    pub auto_limit: bool,
    pub started: Instant,
    bar: ProgressBar,
    monitor: std::cell::RefCell<Option<MemoryMonitor>>,
}

impl Session {
    /// Builds the engine for `run`. With `--memory-limit auto`, `needed` is asked, on a
    /// provisional engine, for the limit the command's plan needs.
    pub fn new(run: &RunArgs, cancel: Arc<AtomicBool>, needed: impl Fn(&Engine) -> Result<u64>) -> Result<Self> {
        check_memory_files(run)?;
        let scheduler = scheduler(run)?;
        let spill_faults = InjectedFaults::from_env()?.spill.unwrap_or_default();
        let thresholds: outcore::Thresholds = match &run.thresholds {
            Some(spec) => spec
                .parse()
                .map_err(|e: outcore::storage::StorageError| Error::invalid("--thresholds", e.to_string()))?,
            None => outcore::Thresholds::default(),
        };
        let config = |limit: u64| {
            let mut config = BufferConfig::new(limit).with_thresholds(thresholds);
            config.spill_parent = run.spill_dir.clone();
            config.spill_faults = spill_faults;
            config
        };
        let (limit, auto_limit) = if run.memory_limit == "auto" {
            let ceiling = total_ram() / 2;
            let provisional = Engine::with_config(config(ceiling), scheduler)?;
            let needed = needed(&provisional)?;
            let limit = (needed + needed / 4).next_multiple_of(16 << 20).max(AUTO_MIN_LIMIT).min(ceiling);
            (limit, true)
        } else {
            (parse_size(&run.memory_limit).map_err(|e| Error::invalid("--memory-limit", e.to_string()))?, false)
        };
        if let Some(dir) = &run.spill_dir
            && !dir.is_dir()
        {
            return Err(Error::invalid("--spill-dir", format!("{} is not a directory", dir.display())));
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:20} [{bar:30}] {pos}/{len} tasks {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let progress_bar = bar.clone();
        let progress = move |p: Progress| {
            progress_bar.set_length(p.total as u64);
            progress_bar.set_position(p.done as u64);
            progress_bar.set_message(p.stage);
        };
        let engine =
            Engine::with_config(config(limit), scheduler)?.with_progress(Arc::new(progress)).with_cancel_flag(cancel);
        let monitor = std::cell::RefCell::new(Some(MemoryMonitor::start(engine.manager().clone(), MEMORY_INTERVAL)));
        Ok(Self { engine, auto_limit, started: Instant::now(), bar, monitor })
    }

    /// A session whose `auto` limit is what the plan `make` builds needs
    /// (`needed(plan, workers)`), and that plan built again on the session's engine.
    pub fn planned<P>(
        run: &RunArgs,
        cancel: Arc<AtomicBool>,
        make: impl Fn(&Engine) -> Result<P>,
        needed: impl Fn(&P, usize) -> u64,
    ) -> Result<(Self, P)> {
        let session = Self::new(run, cancel, |engine| Ok(needed(&make(engine)?, engine.scheduler().workers())))?;
        let plan = make(&session.engine)?;
        Ok((session, plan))
    }

    /// Stops the memory sampler, writes `--memory-timeline` and `--memory-plot` if asked, and
    /// returns the peak of each memory category.
    pub fn finish_memory(&self, run: &RunArgs, title: &str) -> Result<MemoryPeaks> {
        let samples = self.monitor.borrow_mut().take().map(MemoryMonitor::stop).unwrap_or_default();
        if let Some(path) = &run.memory_timeline {
            outcore::timeline::write_timeline(path, &samples)?;
        }
        if let Some(path) = &run.memory_plot {
            outcore::timeline::plot_timeline(path, &samples, title)?;
        }
        Ok(MemoryPeaks::of(&samples, &self.engine.manager().report()))
    }

    /// Clears the progress bar.
    pub fn finish_progress(&self) {
        self.bar.finish_and_clear();
    }

    /// `64.0 MiB` or `64.0 MiB (auto)`.
    pub fn limit_text(&self) -> String {
        let limit = format_size(self.engine.manager().memory_limit());
        if self.auto_limit { format!("{limit} (auto; set --memory-limit to choose)") } else { limit }
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

/// Creates the Zarr array `name` in `out` for a factor (U or V) with `grid`, failing as
/// `OUTCORE_INJECT_FAULTS` says.
pub fn factor_store(out: &OutputDir, name: &str, grid: ChunkGrid) -> Result<Arc<dyn ChunkStore>> {
    let store = Arc::new(ZarrStore::create(out.path().join(name), grid, &ZarrOptions::default())?);
    Ok(InjectedFaults::from_env()?.output(store))
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

/// The scheduler `run` asks for (threads when none is named).
fn scheduler(run: &RunArgs) -> Result<Scheduler> {
    let workers = run.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    Scheduler::from_name(run.scheduler.as_deref().unwrap_or("threads"), workers)
}

/// Checks the memory file options before any work, so a typo does not cost a whole run.
fn check_memory_files(run: &RunArgs) -> Result<()> {
    if let Some(path) = &run.memory_timeline {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if !["csv", "jsonl", "ndjson", "json"].contains(&ext.as_str()) {
            return Err(Error::invalid(
                "--memory-timeline",
                format!("unknown format .{ext}; use .csv, or .jsonl for JSON lines"),
            ));
        }
    }
    if let Some(path) = &run.memory_plot
        && !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        return Err(Error::invalid("--memory-plot", format!("{} must end in .svg", path.display())));
    }
    Ok(())
}

/// Physical memory of the machine, from /proc/meminfo (8 GiB where unknown).
fn total_ram() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(8 << 30, |kib| kib * 1024)
}

/// The matrix the command works on, from `--input` or generated.
pub fn open_matrix(args: &MatrixArgs) -> Result<ChunkedMatrix> {
    if let Some(path) = &args.input {
        let matrix = ChunkedMatrix::open(path)?;
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
pub fn memory_json(report: &MemoryReport, peaks: &MemoryPeaks) -> Value {
    json!({
        "limit": report.limit,
        "peak_managed": report.peak_managed,
        "spilled_bytes": report.peak_spilled,
        "spill_count": report.spill_count,
        "reload_count": report.reload_count,
        "peaks": peaks,
        "final": report.to_json(),
    })
}

/// The report fields every SVD command shares: input, singular values, scheduler, time and
/// memory. Commands add their own fields after these.
pub fn svd_summary(command: &str, a: &ChunkedMatrix, svd: &SvdResult, session: &Session, peaks: &MemoryPeaks) -> Value {
    let engine = &session.engine;
    let (cr, cc) = a.grid().chunk_shape();
    json!({
        "command": command,
        "input": a.describe(),
        "shape": [a.rows(), a.cols()],
        "chunks": [cr, cc],
        "singular_values": svd.s,
        "scheduler": engine.scheduler().name(),
        "workers": engine.scheduler().workers(),
        "tasks": svd.stats.tasks,
        "wall_seconds": session.started.elapsed().as_secs_f64(),
        "peak_rss_bytes": peak_rss(),
        "memory": memory_json(&engine.manager().report(), peaks),
        "waits_for_memory": svd.stats.waits_for_memory,
    })
}

/// Completes an `--output` directory: writes `s.zarr` and `summary.json` (with the output's
/// final path added to `summary`), then moves the directory into place.
pub fn commit_output(out: OutputDir, s: &[f64], summary: &mut Value) -> Result<()> {
    write_vector_zarr(&out.path().join("s.zarr"), s)?;
    summary["output"] = json!(out.target());
    let path = out.path().join("summary.json");
    let text = serde_json::to_string_pretty(summary).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| outcore::storage::StorageError::io(&path, e))?;
    out.commit().map(drop)
}

/// The line every human SVD summary ends its figures with: time, peak RSS and the manager's
/// limit, managed peak and spills.
pub fn usage_line(summary: &Value, extra: &str) -> String {
    let memory = &summary["memory"];
    let size = |v: &Value| format_size(v.as_u64().unwrap_or(0));
    format!(
        "time {:.2} s{extra}, peak RSS {} (memory limit {}, peak managed {}, {} spills), {} tasks on {} {}",
        summary["wall_seconds"].as_f64().unwrap_or(0.0),
        size(&summary["peak_rss_bytes"]),
        size(&memory["limit"]),
        size(&memory["peak_managed"]),
        memory["spill_count"],
        summary["tasks"],
        summary["workers"],
        if summary["workers"] == 1 { "worker" } else { "workers" },
    )
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

/// Prints the top singular values, ten to a line at most.
pub fn values_line(s: &[f64], count: usize) -> String {
    let shown: Vec<String> = s.iter().take(count).map(|x| format!("{x:.6}")).collect();
    let more = if s.len() > count { format!(" ... ({} in all)", s.len()) } else { String::new() };
    format!("{}{more}", shown.join("  "))
}
