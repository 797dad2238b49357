//! The state a client is sent: copied out of the board under its lock, serialized after.

use outcore::storage::{Accounting, MemoryReport};
use serde::Serialize;

use super::query::{Cursor, Share};
use super::roofline::WorkView;
use super::{Board, Inner, IoMark, Point, StageState, TaskRect, ThreadRow};
use crate::report::json::ThresholdsJson;

/// The state a client is sent, copied out of the board under its lock and serialized after.
#[derive(Serialize)]
struct View<'a> {
    title: &'a str,
    /// Which process and command this is: a page that reconnects to another starts afresh.
    run: &'a str,
    rank: usize,
    status: &'static str,
    elapsed: f64,
    runs: u32,
    tasks: Counts,
    waits_for_memory: u64,
    stages: Vec<StageState>,
    threads: Vec<ThreadRow>,
    workers: [Worker; 1],
    stream: Stream,
    timeline: Vec<Point>,
    work: WorkView,
    dashboard_bytes: u64,
}

#[derive(Serialize)]
struct Counts {
    done: u64,
    total: u64,
}

#[derive(Serialize)]
struct Stream {
    /// Sequence number of the first task in `tasks`.
    from: u64,
    tasks: Vec<TaskRect>,
    /// Sequence number of the first spill or reload in `marks`.
    marks_from: u64,
    marks: Vec<IoMark>,
}

/// A worker's row: the process (outcore's threads share one pool, as a Dask worker's threads
/// share its memory).
#[derive(Serialize)]
pub(super) struct Worker {
    pub(super) name: String,
    pub(super) threads: usize,
    pub(super) limit: u64,
    pub(super) accounting: &'static str,
    pub(super) thresholds: ThresholdsJson,
    pub(super) process: u64,
    pub(super) managed: u64,
    pub(super) unmanaged_old: u64,
    pub(super) unmanaged_recent: u64,
    pub(super) host: u64,
    pub(super) spilled: u64,
    /// Highest process memory, managed memory and bytes in spill files so far: what a finished
    /// run's report shows beside the values at its end.
    pub(super) peak_process: u64,
    pub(super) peak_managed: u64,
    pub(super) peak_spilled: u64,
    pub(super) spills: u64,
    pub(super) reloads: u64,
    pub(super) spilled_bytes: u64,
    pub(super) reloaded_bytes: u64,
    pub(super) read_bytes: u64,
    pub(super) written_bytes: u64,
}

impl Board {
    /// The state as JSON: what the board holds after `cursor`, within `share`, and the cursor
    /// after it. The lock is held only to copy: workers' events never wait for serializing.
    pub(crate) fn state_json(&self, cursor: Cursor, share: Share) -> (String, Cursor) {
        let io = ProcessIo::read();
        let inner = self.lock();
        let newest = inner.tasks.len().saturating_sub(share.tasks);
        let skip = (cursor.next_task.saturating_sub(inner.first_seq) as usize).max(newest);
        let tasks: Vec<TaskRect> = inner.tasks.iter().skip(skip).copied().collect();
        let from = inner.first_seq + skip.min(inner.tasks.len()) as u64;
        let newest = inner.marks.len().saturating_sub(share.marks());
        let skip = (cursor.next_mark.saturating_sub(inner.first_mark) as usize).max(newest);
        let marks: Vec<IoMark> = inner.marks.iter().skip(skip).copied().collect();
        let marks_from = inner.first_mark + skip.min(inner.marks.len()) as u64;
        let timeline = match share.timeline {
            true => inner.samples[inner.samples.partition_point(|p| p.0 <= cursor.last_sample)..].to_vec(),
            false => Vec::new(),
        };
        let next = Cursor {
            next_task: inner.first_seq + inner.tasks.len() as u64,
            next_mark: inner.first_mark + inner.marks.len() as u64,
            last_sample: inner.samples.last().filter(|_| share.timeline).map_or(cursor.last_sample, |p| p.0),
        };
        let view = View {
            title: &self.title,
            run: &self.run,
            rank: self.rank,
            status: inner.status(),
            elapsed: inner.finished_at.unwrap_or_else(|| self.started.elapsed().as_secs_f64()),
            runs: inner.runs,
            tasks: Counts { done: inner.done, total: inner.total },
            waits_for_memory: inner.waits,
            stages: inner.stages.clone(),
            threads: inner.threads.clone(),
            workers: [inner.worker(&self.name, self.threads, io)],
            stream: Stream { from, tasks, marks_from, marks },
            timeline,
            work: WorkView::new(inner.work, self.roofs),
            dashboard_bytes: inner.bytes(),
        };
        drop(inner);
        (serde_json::to_string(&view).unwrap_or_else(|_| "{}".into()), next)
    }
}

impl Inner {
    pub(super) fn worker(&self, name: &str, threads: usize, io: ProcessIo) -> Worker {
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
            thresholds: r.map_or_else(outcore::Thresholds::default, |r| r.thresholds).into(),
            process: field(|r| r.process),
            managed: field(|r| r.managed),
            unmanaged_old: field(|r| r.unmanaged_old),
            unmanaged_recent: field(|r| r.unmanaged_recent),
            host: field(|r| r.host),
            spilled: field(|r| r.spilled),
            peak_process: field(|r| r.peak_process),
            peak_managed: field(|r| r.peak_managed),
            peak_spilled: field(|r| r.peak_spilled),
            spills: field(|r| r.spill_count),
            reloads: field(|r| r.reload_count),
            spilled_bytes: self.spilled_bytes,
            reloaded_bytes: self.reloaded_bytes,
            read_bytes: io.read,
            written_bytes: io.written,
        }
    }
}

/// Bytes the process read and wrote (`rchar`, `wchar` of /proc/self/io; zero elsewhere).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ProcessIo {
    read: u64,
    written: u64,
}

impl ProcessIo {
    pub(super) fn read() -> Self {
        let Ok(text) = std::fs::read_to_string("/proc/self/io") else { return Self::default() };
        let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0);
        Self { read: field("rchar:"), written: field("wchar:") }
    }
}
