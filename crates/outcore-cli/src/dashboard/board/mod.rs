//! The dashboard's state: what the run's events said, kept in bounded buffers, and its views as
//! JSON (the page's and `/api/state.json`), Prometheus text and a Chrome trace.

mod export;
mod query;
mod roofline;
mod state;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use outcore::storage::MemoryReport;
use outcore::{Event, EventSink};
use serde::Serialize;

pub(crate) use query::{Cursor, Share, query_value};
pub(crate) use roofline::Roofs;

/// Task rectangles kept for the task stream and the trace (the oldest go first; Dask's stream
/// keeps 1,000).
pub(super) const TASK_CAP: usize = 4_096;
/// Spills and reloads kept for the task stream and the trace (the oldest go first).
pub(super) const MARK_CAP: usize = 1_024;
/// Memory samples kept: past this the timeline keeps every second sample, then every fourth...
pub(super) const SAMPLE_CAP: usize = 2_048;
/// The most the dashboard holds, counted in the plans' process overhead (with the server's
/// request heads): the board's buffers at their caps, and per connection the server takes one
/// state (or trace) with the copy it is made from, and the other ranks' final states (a test
/// fills a board to check it).
pub(super) const BOARD_BYTES: u64 = 9 << 20;
/// What rank 0 holds more for each rank of a job: that rank's few fixed rows (threads,
/// stages, its worker) once kept and once per connection.
pub(super) const RANK_BYTES: u64 = 128 << 10;

/// A finished task: thread, stage (index into the board's stages), start and end in seconds
/// since the command started (sent to 0.1 ms), bytes reserved for it, its number in the graph.
#[derive(Clone, Copy, Debug)]
struct TaskRect(u16, u16, f64, f64, u64, u64);

impl Serialize for TaskRect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.0, self.1, tenths_of_ms(self.2), tenths_of_ms(self.3), self.4, self.5).serialize(s)
    }
}

/// A block written to a spill file or read back: the thread that did it (none: outside the
/// run's tasks), which of the two, start and end in seconds, bytes of the block.
#[derive(Clone, Copy, Debug)]
struct IoMark(Option<u16>, IoKind, f64, f64, u64);

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
enum IoKind {
    Spill,
    Reload,
}

impl Serialize for IoMark {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.0, self.1, tenths_of_ms(self.2), tenths_of_ms(self.3), self.4).serialize(s)
    }
}

/// `seconds` rounded to 0.1 ms, so that it prints short.
fn tenths_of_ms(seconds: f64) -> f64 {
    (seconds * 1e4).round() / 1e4
}

/// A memory sample: seconds, then process, managed, unmanaged old, unmanaged recent, host and
/// spilled bytes.
#[derive(Clone, Copy, Debug)]
struct Point(f64, u64, u64, u64, u64, u64, u64);

impl Serialize for Point {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (tenths_of_ms(self.0), self.1, self.2, self.3, self.4, self.5, self.6).serialize(s)
    }
}

#[derive(Clone, Debug, Serialize)]
struct StageState {
    name: &'static str,
    total: u64,
    done: u64,
    running: u32,
    /// Stages whose outputs it reads.
    after: Vec<usize>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
enum ThreadState {
    #[default]
    Idle,
    Running,
    Waiting,
}

#[derive(Clone, Debug, Default, Serialize)]
struct ThreadRow {
    state: ThreadState,
    /// The stage of the task it runs or waits for.
    stage: Option<usize>,
    /// Since when (seconds) it is in this state.
    since: f64,
    done: u64,
    /// Seconds spent running tasks.
    busy: f64,
    /// Bytes reserved for its running task and held as scratch.
    reserved: u64,
}

#[derive(Debug, Default)]
struct Inner {
    runs: u32,
    running: bool,
    failed: bool,
    /// The command is done (not only a run of it).
    closed: bool,
    finished_at: Option<f64>,
    stages: Vec<StageState>,
    /// The current run's stage positions in `stages`.
    run_stages: Vec<usize>,
    threads: Vec<ThreadRow>,
    tasks: VecDeque<TaskRect>,
    /// Sequence number of `tasks[0]`.
    first_seq: u64,
    marks: VecDeque<IoMark>,
    /// Sequence number of `marks[0]`.
    first_mark: u64,
    samples: Vec<Point>,
    /// Keep one sample in `stride`.
    stride: u32,
    skipped: u32,
    last: Option<MemoryReport>,
    done: u64,
    total: u64,
    waits: u64,
    spilled_bytes: u64,
    reloaded_bytes: u64,
    /// What the finished tasks computed and read.
    work: outcore::graph::Work,
}

/// What the dashboard shows, fed by the run's events (an [`EventSink`]).
#[derive(Debug)]
pub(crate) struct Board {
    started: Instant,
    title: String,
    /// Process id and start time: names this command's state among others on the same port.
    run: String,
    /// This process's rank in an MPI job (0 otherwise), and its name as a worker.
    rank: usize,
    name: String,
    threads: usize,
    roofs: Roofs,
    inner: Mutex<Inner>,
    /// Bumped on every change; a client is sent a new state only when it moved.
    version: AtomicU64,
}

impl Board {
    /// A board for a command titled `title` whose runs use up to `threads` workers, in the
    /// process that is worker `name`, rank `rank` of its job, on a machine with `roofs`.
    pub(crate) fn new(
        title: String,
        rank: usize,
        name: String,
        threads: usize,
        roofs: Roofs,
        started: Instant,
    ) -> Self {
        let inner = Inner { stride: 1, threads: vec![ThreadRow::default(); threads.max(1)], ..Inner::default() };
        let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let run = format!("{}-{}", std::process::id(), epoch.as_millis());
        Self { started, title, run, rank, name, threads, roofs, inner: Mutex::new(inner), version: AtomicU64::new(0) }
    }

    /// Says that something beside the board's own events changed (the other ranks' states).
    pub(crate) fn touch(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The change counter.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seconds(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    /// Marks the command as done: its runs are over and its results written.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.finished_at = Some(self.started.elapsed().as_secs_f64());
        drop(inner);
        self.touch();
    }

    /// Marks the command as failed (its runs may have ended without saying so).
    pub(crate) fn fail(&self) {
        let mut inner = self.lock();
        inner.failed = true;
        inner.running = false;
        inner.finished_at.get_or_insert_with(|| self.started.elapsed().as_secs_f64());
        drop(inner);
        self.touch();
    }
}

impl EventSink for Board {
    fn event(&self, event: &Event) {
        let mut inner = self.lock();
        match event {
            Event::RunStarted { tasks, workers, stages, .. } => {
                inner.runs += 1;
                inner.running = true;
                inner.total += *tasks as u64;
                if inner.threads.len() < *workers {
                    inner.threads.resize(*workers, ThreadRow::default());
                }
                // Stages of the same name across runs (the passes of a plan) share a row.
                let mut positions = Vec::with_capacity(stages.len());
                for stage in stages.iter() {
                    let at = match inner.stages.iter().position(|s| s.name == stage.name) {
                        Some(at) => at,
                        None => {
                            let state = StageState { name: stage.name, total: 0, done: 0, running: 0, after: vec![] };
                            inner.stages.push(state);
                            inner.stages.len() - 1
                        }
                    };
                    inner.stages[at].total += stage.tasks as u64;
                    positions.push(at);
                }
                for (stage, &at) in stages.iter().zip(&positions) {
                    for &a in &stage.after {
                        let from = positions[a];
                        if !inner.stages[at].after.contains(&from) {
                            inner.stages[at].after.push(from);
                        }
                    }
                }
                inner.run_stages = positions;
            }
            Event::TaskStarted { worker, stage, reserved, scratch, at, .. } => {
                let since = self.seconds(*at);
                let stage = inner.stage_of(stage);
                if let Some(s) = stage {
                    inner.stages[s].running += 1;
                }
                if let Some(t) = inner.threads.get_mut(*worker) {
                    *t = ThreadRow { state: ThreadState::Running, stage, since, reserved: reserved + scratch, ..*t };
                }
            }
            Event::TaskFinished { worker, task, stage, started, finished, work, .. } => {
                inner.work = inner.work.and(*work);
                let (start, end) = (self.seconds(*started), self.seconds(*finished));
                let reserved = inner.threads.get(*worker).map_or(0, |t| t.reserved);
                let stage = inner.stage_of(stage);
                if let Some(s) = stage {
                    let s = &mut inner.stages[s];
                    s.running = s.running.saturating_sub(1);
                    s.done += 1;
                }
                inner.done += 1;
                if let Some(t) = inner.threads.get_mut(*worker) {
                    let busy = t.busy + (end - start);
                    *t = ThreadRow {
                        state: ThreadState::Idle,
                        stage: None,
                        since: end,
                        done: t.done + 1,
                        busy,
                        reserved: 0,
                    };
                }
                if inner.tasks.len() == TASK_CAP {
                    inner.tasks.pop_front();
                    inner.first_seq += 1;
                }
                let rect = TaskRect(*worker as u16, stage.unwrap_or(0) as u16, start, end, reserved, *task as u64);
                inner.tasks.push_back(rect);
            }
            Event::Waiting { worker, at, .. } => {
                inner.waits += 1;
                let since = self.seconds(*at);
                if let Some(t) = inner.threads.get_mut(*worker) {
                    t.state = ThreadState::Waiting;
                    t.since = since;
                }
            }
            Event::Resumed { .. } => {}
            Event::Spilled { bytes, worker, took, at, .. } => {
                inner.spilled_bytes = inner.spilled_bytes.saturating_add(*bytes);
                inner.mark(IoKind::Spill, *worker, self.seconds(*at), *took, *bytes);
            }
            Event::Reloaded { bytes, worker, took, at } => {
                inner.reloaded_bytes = inner.reloaded_bytes.saturating_add(*bytes);
                inner.mark(IoKind::Reload, *worker, self.seconds(*at), *took, *bytes);
            }
            Event::Memory { report, at } => {
                let t = self.seconds(*at);
                inner.sample(t, report);
            }
            Event::RunFinished { complete, at, .. } => {
                inner.running = false;
                if !complete {
                    inner.failed = true;
                    inner.finished_at = Some(self.seconds(*at));
                }
                for t in &mut inner.threads {
                    t.state = ThreadState::Idle;
                    t.stage = None;
                }
                for s in &mut inner.stages {
                    s.running = 0;
                }
            }
            _ => {}
        }
        drop(inner);
        self.touch();
    }
}

impl Inner {
    /// The command's status: `finished` only once it is done, not between its runs.
    fn status(&self) -> &'static str {
        match (self.failed, self.closed, self.running || self.runs > 0) {
            (true, _, _) => "failed",
            (false, true, _) => "finished",
            (false, false, true) => "running",
            (false, false, false) => "starting",
        }
    }

    /// The board's position of the current run's stage `name`.
    fn stage_of(&self, name: &str) -> Option<usize> {
        self.run_stages.iter().copied().find(|&s| self.stages[s].name == name)
    }

    /// Keeps a spill or reload that ended at `end` (seconds) after `took`.
    fn mark(&mut self, kind: IoKind, worker: Option<usize>, end: f64, took: std::time::Duration, bytes: u64) {
        if self.marks.len() == MARK_CAP {
            self.marks.pop_front();
            self.first_mark += 1;
        }
        let worker = worker.and_then(|w| u16::try_from(w).ok());
        self.marks.push_back(IoMark(worker, kind, (end - took.as_secs_f64()).max(0.0), end, bytes));
    }

    fn sample(&mut self, t: f64, r: &MemoryReport) {
        self.last = Some(r.clone());
        self.skipped += 1;
        if self.skipped < self.stride {
            return;
        }
        self.skipped = 0;
        if self.samples.len() == SAMPLE_CAP {
            let mut keep = false;
            self.samples.retain(|_| {
                keep = !keep;
                keep
            });
            self.stride *= 2;
        }
        self.samples.push(Point(t, r.process, r.managed, r.unmanaged_old, r.unmanaged_recent, r.host, r.spilled));
    }
    /// Bytes the board's buffers hold.
    fn bytes(&self) -> u64 {
        (self.tasks.capacity() * size_of::<TaskRect>()
            + self.marks.capacity() * size_of::<IoMark>()
            + self.samples.capacity() * size_of::<Point>()
            + self.threads.capacity() * size_of::<ThreadRow>()
            + self.stages.iter().map(|s| size_of::<StageState>() + s.after.capacity() * 8).sum::<usize>())
            as u64
    }
}

#[cfg(test)]
mod tests;
