//! The dashboard's state: what the run's events said, kept in bounded buffers, and its views as
//! JSON (the page's and `/api/state.json`), Prometheus text and a Chrome trace.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use outcore::storage::{Accounting, MemoryReport};
use outcore::{Event, EventSink};
use serde::Serialize;
#[cfg(test)]
use {outcore::graph::Stage, std::sync::Arc};

/// Task rectangles kept for the task stream and the trace (the oldest go first; Dask's stream
/// keeps 1,000).
pub const TASK_CAP: usize = 10_000;
/// Memory samples kept: past this the timeline keeps every second sample, then every fourth...
pub const SAMPLE_CAP: usize = 4_096;
/// The most the dashboard holds, counted in the plans' process overhead: the board's buffers
/// at their caps and one serialized state per connection the server takes (a test checks it).
pub const BOARD_BYTES: u64 = 6 << 20;

/// A finished task: thread, stage (index into the board's stages), start and end in seconds
/// since the command started (sent to 0.1 ms).
#[derive(Clone, Copy, Debug)]
struct TaskRect(u16, u16, f32, f32);

impl Serialize for TaskRect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.0, self.1, tenths_of_ms(self.2), tenths_of_ms(self.3)).serialize(s)
    }
}

/// `seconds` rounded to 0.1 ms, so that it prints short.
fn tenths_of_ms(seconds: f32) -> f64 {
    (f64::from(seconds) * 1e4).round() / 1e4
}

/// A memory sample: seconds, then process, managed, unmanaged old, unmanaged recent, host and
/// spilled bytes.
#[derive(Clone, Copy, Debug)]
struct Point(f32, u64, u64, u64, u64, u64, u64);

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
    finished_at: Option<f64>,
    stages: Vec<StageState>,
    /// The current run's stage positions in `stages`.
    run_stages: Vec<usize>,
    threads: Vec<ThreadRow>,
    tasks: VecDeque<TaskRect>,
    /// Sequence number of `tasks[0]`.
    first_seq: u64,
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
}

/// What the dashboard shows, fed by the run's events (an [`EventSink`]).
#[derive(Debug)]
pub struct Board {
    started: Instant,
    title: String,
    /// This process's rank in an MPI job (0 otherwise), and its name as a worker.
    rank: usize,
    name: String,
    threads: usize,
    inner: Mutex<Inner>,
    /// Bumped on every change; a client is sent a new state only when it moved.
    version: AtomicU64,
}

/// Where a client's last update ended: the next task's sequence number, the last sample's time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cursor {
    pub next_task: u64,
    pub last_sample: f32,
}

impl Default for Cursor {
    /// Everything: no task sent yet, no sample (samples are at 0 s or later).
    fn default() -> Self {
        Self { next_task: 0, last_sample: -1.0 }
    }
}

impl Cursor {
    /// The cursor of a state query, `from=N&after=T` (the start where absent).
    pub fn from_query(query: &str) -> Self {
        let value = |key: &str| query.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='));
        Self {
            next_task: value("from").and_then(|v| v.parse().ok()).unwrap_or(0),
            last_sample: value("after").and_then(|v| v.parse().ok()).unwrap_or(-1.0),
        }
    }

    /// The query that asks for what comes after this cursor.
    pub fn query(&self) -> String {
        format!("from={}&after={}", self.next_task, self.last_sample)
    }
}

/// The static part of the state.
#[derive(Serialize)]
struct View<'a> {
    title: &'a str,
    rank: usize,
    status: &'static str,
    elapsed: f64,
    runs: u32,
    tasks: Counts,
    waits_for_memory: u64,
    stages: &'a [StageState],
    threads: &'a [ThreadRow],
    workers: [Worker; 1],
    stream: Stream<'a>,
    timeline: &'a [Point],
    dashboard_bytes: u64,
}

#[derive(Serialize)]
struct Counts {
    done: u64,
    total: u64,
}

#[derive(Serialize)]
struct Stream<'a> {
    /// Sequence number of the first task in `tasks`.
    from: u64,
    tasks: Vec<&'a TaskRect>,
}

/// A worker's row: the process (outcore's threads share one pool, as a Dask worker's threads
/// share its memory).
#[derive(Serialize)]
struct Worker {
    name: String,
    threads: usize,
    limit: u64,
    accounting: &'static str,
    thresholds: outcore::Thresholds,
    process: u64,
    managed: u64,
    unmanaged_old: u64,
    unmanaged_recent: u64,
    host: u64,
    spilled: u64,
    spills: u64,
    reloads: u64,
    spilled_bytes: u64,
    reloaded_bytes: u64,
    read_bytes: u64,
    written_bytes: u64,
}

impl Board {
    /// A board for a command titled `title` whose runs use up to `threads` workers, in the
    /// process that is worker `name`, rank `rank` of its job.
    pub fn new(title: String, rank: usize, name: String, threads: usize, started: Instant) -> Self {
        let inner = Inner { stride: 1, threads: vec![ThreadRow::default(); threads.max(1)], ..Inner::default() };
        Self { started, title, rank, name, threads, inner: Mutex::new(inner), version: AtomicU64::new(0) }
    }

    /// Says that something beside the board's own events changed (the other ranks' states).
    pub fn touch(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The change counter.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seconds(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    /// The state as JSON: everything the board holds from `cursor` on (all of it from the
    /// default cursor), and the cursor after it.
    pub fn state_json(&self, cursor: Cursor) -> (String, Cursor) {
        let io = ProcessIo::read();
        let inner = self.lock();
        let skip = cursor.next_task.saturating_sub(inner.first_seq) as usize;
        let tasks: Vec<&TaskRect> = inner.tasks.iter().skip(skip).collect();
        let from = inner.first_seq + skip.min(inner.tasks.len()) as u64;
        let new_samples = inner.samples.partition_point(|p| p.0 <= cursor.last_sample);
        let timeline = &inner.samples[new_samples..];
        let next = Cursor {
            next_task: inner.first_seq + inner.tasks.len() as u64,
            last_sample: inner.samples.last().map_or(cursor.last_sample, |p| p.0),
        };
        let view = View {
            title: &self.title,
            rank: self.rank,
            status: inner.status(),
            elapsed: inner.finished_at.unwrap_or_else(|| self.started.elapsed().as_secs_f64()),
            runs: inner.runs,
            tasks: Counts { done: inner.done, total: inner.total },
            waits_for_memory: inner.waits,
            stages: &inner.stages,
            threads: &inner.threads,
            workers: [inner.worker(&self.name, self.threads, io)],
            stream: Stream { from, tasks },
            timeline,
            dashboard_bytes: inner.bytes(),
        };
        (serde_json::to_string(&view).unwrap_or_else(|_| "{}".into()), next)
    }

    /// The figures in Prometheus' text format.
    pub fn metrics(&self) -> String {
        let io = ProcessIo::read();
        let inner = self.lock();
        let w = inner.worker(&self.name, self.threads, io);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP outcore_{name} {help}\n# TYPE outcore_{name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "outcore_{name}{labels} {value}");
            }
        };
        let one = |v: u64| [(String::new(), v as f64)];
        metric("tasks_done", "counter", "Tasks finished.", &one(inner.done));
        metric("tasks_total", "gauge", "Tasks in the runs begun so far.", &one(inner.total));
        metric("running", "gauge", "1 while a run goes on.", &one(u64::from(inner.running)));
        let memory: Vec<(String, f64)> = [
            ("process", w.process),
            ("managed", w.managed),
            ("unmanaged_old", w.unmanaged_old),
            ("unmanaged_recent", w.unmanaged_recent),
            ("host", w.host),
            ("spilled", w.spilled),
        ]
        .iter()
        .map(|(c, v)| (format!("{{category=\"{c}\"}}"), *v as f64))
        .collect();
        metric("memory_bytes", "gauge", "Memory by Dask's categories (spilled: bytes in spill files).", &memory);
        metric("memory_limit_bytes", "gauge", "The memory limit.", &one(w.limit));
        let thresholds: Vec<(String, f64)> =
            [("target", w.thresholds.target), ("spill", w.thresholds.spill), ("pause", w.thresholds.pause)]
                .into_iter()
                .chain([("terminate", w.thresholds.terminate)])
                .filter_map(|(n, v)| v.map(|v| (format!("{{threshold=\"{n}\"}}"), v)))
                .collect();
        metric("threshold_ratio", "gauge", "Thresholds as fractions of the limit.", &thresholds);
        metric("spills_total", "counter", "Blocks written to spill files.", &one(w.spills));
        metric("reloads_total", "counter", "Blocks read back from spill files.", &one(w.reloads));
        metric("waits_for_memory_total", "counter", "Times a task waited for memory.", &one(inner.waits));
        metric("read_bytes_total", "counter", "Bytes the process read (rchar).", &one(w.read_bytes));
        metric("written_bytes_total", "counter", "Bytes the process wrote (wchar).", &one(w.written_bytes));
        let stage_rows = |f: fn(&StageState) -> u64| -> Vec<(String, f64)> {
            inner.stages.iter().map(|s| (format!("{{stage=\"{}\"}}", s.name), f(s) as f64)).collect()
        };
        metric("stage_tasks_done", "counter", "Tasks finished per stage.", &stage_rows(|s| s.done));
        metric("stage_tasks_total", "gauge", "Tasks per stage.", &stage_rows(|s| s.total));
        let busy = inner.threads.iter().filter(|t| t.state == ThreadState::Running).count() as u64;
        metric("threads_busy", "gauge", "Threads running a task.", &one(busy));
        out
    }

    /// The kept tasks as a Chrome trace (for Perfetto or chrome://tracing): one track per
    /// thread, one slice per task, named by stage.
    pub fn trace_json(&self) -> String {
        let inner = self.lock();
        let mut events: Vec<serde_json::Value> = (0..inner.threads.len())
            .map(|t| {
                serde_json::json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": t,
                    "args": {"name": format!("worker thread {t}")}})
            })
            .collect();
        events.extend(inner.tasks.iter().map(|&TaskRect(thread, stage, start, end)| {
            let name = inner.stages.get(usize::from(stage)).map_or("task", |s| s.name);
            serde_json::json!({"name": name, "cat": name, "ph": "X", "pid": 1, "tid": thread,
                "ts": (f64::from(start) * 1e6).round(), "dur": (f64::from(end - start) * 1e6).round()})
        }));
        let trace = serde_json::json!({"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"title": self.title, "dropped_tasks": inner.first_seq}});
        trace.to_string()
    }

    /// Marks the command as failed (its runs may have ended without saying so).
    pub fn fail(&self) {
        let mut inner = self.lock();
        inner.failed = true;
        inner.running = false;
        inner.finished_at.get_or_insert_with(|| self.started.elapsed().as_secs_f64());
        drop(inner);
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

impl EventSink for Board {
    fn event(&self, event: &Event) {
        let mut inner = self.lock();
        match event {
            Event::RunStarted { tasks, workers, stages, .. } => {
                inner.runs += 1;
                inner.running = true;
                inner.finished_at = None;
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
            Event::TaskFinished { worker, stage, started, finished, .. } => {
                let (start, end) = (self.seconds(*started), self.seconds(*finished));
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
                let rect = TaskRect(*worker as u16, stage.unwrap_or(0) as u16, start as f32, end as f32);
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
            Event::Spilled { bytes, .. } => inner.spilled_bytes += bytes,
            Event::Reloaded { bytes, .. } => inner.reloaded_bytes += bytes,
            Event::Memory { report, at } => {
                let t = self.seconds(*at) as f32;
                inner.sample(t, report);
            }
            Event::RunFinished { complete, at, .. } => {
                inner.running = false;
                inner.failed |= !complete;
                inner.finished_at = Some(self.seconds(*at));
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
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

impl Inner {
    fn status(&self) -> &'static str {
        match (self.running, self.failed, self.runs) {
            (true, _, _) => "running",
            (false, true, _) => "failed",
            (false, false, 0) => "starting",
            (false, false, _) => "finished",
        }
    }

    /// The board's position of the current run's stage `name`.
    fn stage_of(&self, name: &str) -> Option<usize> {
        self.run_stages.iter().copied().find(|&s| self.stages[s].name == name)
    }

    fn sample(&mut self, t: f32, r: &MemoryReport) {
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

    fn worker(&self, name: &str, threads: usize, io: ProcessIo) -> Worker {
        let r = self.last.as_ref();
        let field = |f: fn(&MemoryReport) -> u64| r.map_or(0, f);
        Worker {
            name: name.to_string(),
            threads,
            limit: field(|r| r.limit),
            accounting: match r.map(|r| r.accounting) {
                Some(Accounting::Own) => "own",
                _ => "process",
            },
            thresholds: r.map_or_else(outcore::Thresholds::default, |r| r.thresholds),
            process: field(|r| r.process),
            managed: field(|r| r.managed),
            unmanaged_old: field(|r| r.unmanaged_old),
            unmanaged_recent: field(|r| r.unmanaged_recent),
            host: field(|r| r.host),
            spilled: field(|r| r.spilled),
            spills: field(|r| r.spill_count),
            reloads: field(|r| r.reload_count),
            spilled_bytes: self.spilled_bytes,
            reloaded_bytes: self.reloaded_bytes,
            read_bytes: io.read,
            written_bytes: io.written,
        }
    }

    /// Bytes the board's buffers hold.
    fn bytes(&self) -> u64 {
        (self.tasks.capacity() * size_of::<TaskRect>()
            + self.samples.capacity() * size_of::<Point>()
            + self.threads.capacity() * size_of::<ThreadRow>()
            + self.stages.iter().map(|s| size_of::<StageState>() + s.after.capacity() * 8).sum::<usize>())
            as u64
    }
}

/// Bytes the process read and wrote (`rchar`, `wchar` of /proc/self/io; zero elsewhere).
#[derive(Clone, Copy, Debug, Default)]
struct ProcessIo {
    read: u64,
    written: u64,
}

impl ProcessIo {
    fn read() -> Self {
        let Ok(text) = std::fs::read_to_string("/proc/self/io") else { return Self::default() };
        let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0);
        Self { read: field("rchar:"), written: field("wchar:") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::server::MAX_CONNECTIONS;

    /// A board at its caps, with the longest numbers: what [`BOARD_BYTES`] must cover.
    #[test]
    fn a_full_board_and_a_state_per_connection_fit_the_bytes_counted_for_them() {
        let start = Instant::now();
        let name = "rank 1023 (a-long-host-name.cluster.example.org, pid 4194304)".to_string();
        let board = Board::new("large-svd tsqr --rows 50000000 --dashboard".into(), 1023, name, 64, start);
        let stages: Arc<[Stage]> =
            (0..8).map(|i| Stage { name: "Q back-propagation", tasks: 1 << 30, after: vec![i] }).collect();
        board.event(&Event::RunStarted { tasks: 1 << 40, workers: 64, stages, at: start });
        let late = start + std::time::Duration::from_secs(86_400 * 30);
        for task in 0..TASK_CAP + 10 {
            board.event(&Event::TaskFinished {
                worker: 63,
                task,
                stage: "Q back-propagation",
                started: late - std::time::Duration::from_nanos(123_456_789),
                finished: late,
                done: task,
                total: 1 << 40,
            });
        }
        let mut report = outcore::Engine::new(64 << 20).expect("an engine").memory_report();
        for field in [&mut report.limit, &mut report.process, &mut report.managed, &mut report.unmanaged_old] {
            *field = u64::MAX / 2;
        }
        (report.unmanaged_recent, report.host, report.spilled) = (u64::MAX / 2, u64::MAX / 2, u64::MAX / 2);
        for _ in 0..SAMPLE_CAP * 3 {
            board.event(&Event::Memory { report: Box::new(report.clone()), at: late });
        }
        let (state, _) = board.state_json(Cursor::default());
        let buffers = board.lock().bytes();
        let total = buffers + (MAX_CONNECTIONS * state.len()) as u64;
        eprintln!("a full board: {buffers} B of buffers, a state of {} B, {total} B in all", state.len());
        assert!(total <= BOARD_BYTES, "{buffers} + {MAX_CONNECTIONS} x {} = {total} > {BOARD_BYTES}", state.len());
        assert_eq!(board.lock().tasks.len(), TASK_CAP);
        assert!(board.lock().samples.len() <= SAMPLE_CAP);
    }
}
