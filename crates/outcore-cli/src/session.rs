//! A command's session: the engine under the memory limit (`auto`: what the plan needs), the
//! control of its runs (Ctrl-C's cancel token, the progress bar, the memory sampler and the
//! dashboard, all consumers of one event stream), and its side files.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use outcore::storage::{MemoryPeaks, MemorySample, SPILL_PREFIX, format_size, remove_leftovers};
use outcore::{
    CancelToken, ChunkedMatrix, Engine, Error, Event, EventSink, Knob, Result, RunControl, RunStats, Scheduler,
    Thresholds,
};

use crate::args::{MemoryLimit, RunArgs, SchedulerKind};
use crate::faults::InjectedFaults;
use crate::inputs::notice_leftovers;
use crate::report::summary::{Details, MemorySummary, Summary};
use crate::system;

/// The smallest limit `auto` picks.
const AUTO_MIN_LIMIT: u64 = 64 << 20;

/// The limit `auto` picks for a plan that `needed` bytes: room for the concurrent working sets
/// under the target threshold (Dask's 60%), which counts reservations as managed memory (at
/// less, the pool spills the run's own intermediates to make room: docs/decisions.md), in
/// whole 16 MiB, at least [`AUTO_MIN_LIMIT`], at most `ceiling`.
fn auto_limit(needed: u64, thresholds: &Thresholds, ceiling: u64) -> u64 {
    let share = thresholds.target.unwrap_or(0.8).clamp(0.5, 1.0);
    ((needed as f64 / share) as u64).next_multiple_of(16 << 20).max(AUTO_MIN_LIMIT).min(ceiling)
}

/// The command's view of its runs' events: the progress bar, the memory timeline and the
/// dashboard's board.
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
pub(crate) struct Session {
    pub engine: Engine,
    pub auto_limit: bool,
    pub started: Instant,
    pub control: RunControl,
    /// `--json`: one JSON object on stdout instead of the human summary.
    pub json: bool,
    observer: Arc<Observer>,
    dashboard: Option<crate::dashboard::Dashboard>,
    cancel: CancelToken,
    /// Set once the side files are written: a session dropped before failed.
    finished: std::sync::atomic::AtomicBool,
}

impl Session {
    /// Builds the engine for `run`. With `--memory-limit auto`, `needed` is asked, on a
    /// provisional engine, for the limit the command's plan needs.
    pub(crate) fn new(run: &RunArgs, cancel: CancelToken, needed: impl Fn(&Engine) -> Result<u64>) -> Result<Self> {
        check_side_files(run)?;
        let workers = run.workers.unwrap_or_else(system::cpus);
        let scheduler = match run.scheduler {
            Some(SchedulerKind::Serial) => Scheduler::Serial,
            Some(SchedulerKind::Threads) | None => Scheduler::Threads { workers },
        };
        // Under MPI, rank 0 serves and reports; the other ranks serve their boards to it.
        let watched = run.dashboard.is_some() || run.report.is_some();
        // Under MPI, the MPI library's memory too (measured when the job was joined).
        let dashboard = if watched { crate::dashboard::held_bytes() } else { 0 };
        let overhead = system::process_overhead() + dashboard + crate::ranks::footprint();
        let spill_faults = InjectedFaults::from_env()?.spill;
        let thresholds = run.thresholds.unwrap_or_default();
        let engine = |limit: u64| {
            let mut builder = Engine::builder()
                .memory_limit(limit)
                .process_overhead(overhead)
                .scheduler(scheduler)
                .accounting(run.accounting)
                .thresholds(thresholds);
            if let Some(plan) = spill_faults {
                builder = builder.spill_faults(plan);
            }
            if let Some(dir) = &run.spill_dir {
                builder = builder.spill_dir(dir);
            }
            builder.build()
        };
        let ram = system::total_ram();
        let (limit, auto_limit) = match run.memory_limit {
            MemoryLimit::Auto => {
                let ceiling = ram / 2;
                (auto_limit(needed(&engine(ceiling)?)?, &thresholds, ceiling), true)
            }
            MemoryLimit::Bytes(limit) => {
                if limit > ram && crate::ranks::is_root() {
                    eprintln!(
                        "warning: --memory-limit {} is more than this machine's RAM ({}): the limit cannot keep the run within memory; give at most what the machine can spare",
                        format_size(limit),
                        format_size(ram)
                    );
                }
                (limit, false)
            }
        };
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:20} [{bar:30}] {pos}/{len} tasks {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let spill_parent = run.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
        let removed = remove_leftovers(&spill_parent, SPILL_PREFIX);
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
        // Memory is sampled every `RunControl::DEFAULT_MEMORY_INTERVAL` (20 ms).
        let mut control = RunControl::new().cancel_token(cancel.clone()).shared_events(observer.clone());
        if let Some(transport) = crate::ranks::cluster() {
            control = control.cluster(transport);
        }
        if !crate::ranks::is_root() {
            observer.bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let finished = false.into();
        Ok(Self { engine, auto_limit, started, control, json: run.json, observer, dashboard, cancel, finished })
    }

    /// In an MPI job with a dashboard, on every rank once all agreed to go on: tells rank 0
    /// where the other ranks serve their boards, so that it shows each rank as a worker.
    pub(crate) fn meet_ranks(&self) -> Result<()> {
        match self.dashboard.as_ref().filter(|_| crate::ranks::in_job()) {
            Some(dashboard) => dashboard.meet_ranks(),
            None => Ok(()),
        }
    }

    /// In an MPI job with a dashboard, on every rank once the runs are over and before rank 0
    /// does anything alone: brings every rank's final board to rank 0.
    pub(crate) fn gather_boards(&self) -> Result<()> {
        match self.dashboard.as_ref().filter(|_| crate::ranks::in_job()) {
            Some(dashboard) => dashboard.gather_ranks(),
            None => Ok(()),
        }
    }

    /// A session whose `auto` limit is what the plan `make` builds needs
    /// (`needed(plan, workers)`), and that plan built again on the session's engine.
    pub(crate) fn planned<P>(
        run: &RunArgs,
        cancel: CancelToken,
        make: impl Fn(&Engine) -> Result<P>,
        needed: impl Fn(&P, usize) -> u64,
    ) -> Result<(Self, P)> {
        // `auto` sizes the limit for the tasks that can run at once: no more than the CPUs.
        let session = Self::new(run, cancel, |engine| {
            Ok(needed(&make(engine)?, engine.scheduler().workers().min(system::cpus())))
        })?;
        let plan = make(&session.engine)?;
        Ok((session, plan))
    }

    /// The memory samples so far and the peak of each category.
    pub(crate) fn memory(&self) -> (Vec<MemorySample>, MemoryPeaks) {
        let samples = self.observer.samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let peaks = MemoryPeaks::of(&samples, &self.engine.memory_report());
        (samples, peaks)
    }

    /// Writes `--memory-timeline`, `--memory-plot` and `--report` if asked, then keeps the
    /// dashboard serving for `--dashboard-linger`. Called once the command's result is safe: a
    /// failure here never costs it.
    pub(crate) fn write_side_files(&self, run: &RunArgs, title: &str) -> Result<()> {
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
        if let Some(file) = &run.memory_timeline {
            crate::timeline::write_timeline(&crate::ranks::own_path(&file.path), file.jsonl, &samples)?;
        }
        if let Some(path) = &run.memory_plot {
            crate::timeline::plot_timeline(&crate::ranks::own_path(path), &samples, title)?;
        }
        Ok(())
    }

    /// Clears the progress bar.
    pub(crate) fn finish_progress(&self) {
        self.observer.bar.finish_and_clear();
    }

    /// The JSON summary of `svd`, computed from `a` by `command`, with the session's figures now.
    pub(crate) fn summary(
        &self,
        command: (&'static str, Details),
        a: &ChunkedMatrix,
        run: (Option<&[f64]>, &RunStats),
    ) -> Summary {
        let wall = self.started.elapsed().as_secs_f64();
        Summary::new(command, a, run, self.engine.scheduler(), wall, self.memory_summary())
    }

    /// The memory figures of a JSON summary now.
    pub(crate) fn memory_summary(&self) -> MemorySummary {
        let (_, peaks) = self.memory();
        let dashboard = self.dashboard.as_ref().map(|_| crate::dashboard::held_bytes());
        MemorySummary::new(&self.engine.memory_report(), &peaks, dashboard)
    }

    /// `64.0 MiB` or `64.0 MiB (auto)`.
    pub(crate) fn limit_text(&self) -> String {
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

/// Checks the side files (memory timeline and plot, task graph picture) before any work, so a
/// typo or an unwritable directory does not cost a whole run.
fn check_side_files(run: &RunArgs) -> Result<()> {
    if let Some(file) = &run.memory_timeline {
        check_writable("--memory-timeline", &crate::ranks::own_path(&file.path))?;
    }
    if let Some(path) = &run.memory_plot {
        check_writable("--memory-plot", &crate::ranks::own_path(path))?;
    }
    if let Some(path) = run.report.as_ref().filter(|_| crate::ranks::is_root()) {
        check_writable("--report", path)?;
    }
    // Under MPI, rank 0 alone draws the graph.
    if let Some(file) = run.visualize.as_ref().filter(|_| crate::ranks::is_root()) {
        check_writable("--visualize", &file.path)?;
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
            Knob::Program(flag),
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
            Knob::Program(flag),
            format!("{} cannot be written in {}: {kind}; choose another path", path.display(), dir.display()),
        )
    })?;
    drop(probe);
    if path.is_dir() {
        return Err(Error::invalid(
            Knob::Program(flag),
            format!("{} is a directory; give a file name", path.display()),
        ));
    }
    Ok(())
}
