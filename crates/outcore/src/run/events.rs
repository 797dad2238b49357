//! One stream of events per run: what each worker did and when, spills and reloads, memory.
//!
//! A run hands every [`Event`] to the [`EventSink`] of its [`RunControl`](crate::RunControl),
//! as it happens, on the thread where it happened. The stream is the single source for every
//! view of a run: the command line's progress bar and memory timeline are consumers of it, and
//! so is anything a host program builds (a log, a dashboard, a progress callback):
//!
//! ```text
//!   worker 0 ─┐  TaskStarted / TaskFinished / Waiting / Resumed
//!   worker 1 ─┼─────────────────────────────────────────────▶ EventSink ──▶ progress bar
//!   pool ─────┤  Spilled / Reloaded                                     ──▶ memory timeline
//!   sampler ──┘  Memory (every RunControl::memory_interval)             ──▶ your own view
//! ```
//!
//! Sinks must be quick (a lock and a push, a channel send): workers wait while they run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outcore_storage::MemoryReport;

use crate::task::{Stage, Work};

/// Something that happened during a run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The run began.
    RunStarted {
        /// Tasks in its graph.
        tasks: usize,
        /// Workers that will run them.
        workers: usize,
        /// The graph's stages, with the tasks of each this process runs (see
        /// [`TaskGraph::stage_graph`](crate::graph::TaskGraph::stage_graph)).
        stages: Arc<[Stage]>,
        /// When.
        at: Instant,
    },
    /// A worker started a task, its working set reserved.
    TaskStarted {
        /// The worker (0-based within the run).
        worker: usize,
        /// The task's number in the graph.
        task: usize,
        /// Its stage ("panel QR", "R reduction", ...).
        stage: &'static str,
        /// Bytes reserved for it, beside the worker's reusable scratch.
        reserved: u64,
        /// Bytes of scratch buffers the worker holds from earlier tasks.
        scratch: u64,
        /// When.
        at: Instant,
    },
    /// A worker finished a task.
    TaskFinished {
        /// The worker.
        worker: usize,
        /// The task's number in the graph.
        task: usize,
        /// Its stage.
        stage: &'static str,
        /// When it started.
        started: Instant,
        /// When it finished.
        finished: Instant,
        /// Tasks finished in the run so far, this one included.
        done: usize,
        /// Tasks in the run.
        total: usize,
        /// What it computed and read.
        work: Work,
    },
    /// A worker has a task but waits for memory.
    Waiting {
        /// The worker.
        worker: usize,
        /// The task it waits to start.
        task: usize,
        /// Bytes it asked for.
        bytes: u64,
        /// When it began to wait.
        at: Instant,
    },
    /// A waiting worker got its memory.
    Resumed {
        /// The worker.
        worker: usize,
        /// How long it waited.
        waited: Duration,
        /// When.
        at: Instant,
    },
    /// A dirty block was written to a spill file (by any worker sharing the pool).
    Spilled {
        /// Bytes of the block.
        bytes: u64,
        /// Bytes of its file.
        disk_bytes: u64,
        /// The worker of this run that wrote it, if one did (not another run's, nor the
        /// memory monitor's).
        worker: Option<usize>,
        /// How long writing it took.
        took: Duration,
        /// When it ended.
        at: Instant,
    },
    /// A block was read back from its spill file.
    Reloaded {
        /// Bytes of the block.
        bytes: u64,
        /// The worker of this run that read it, if one did.
        worker: Option<usize>,
        /// How long reading it took.
        took: Duration,
        /// When it ended.
        at: Instant,
    },
    /// A sample of the memory categories (see [`MemoryReport`]).
    Memory {
        /// The categories.
        report: Box<MemoryReport>,
        /// When.
        at: Instant,
    },
    /// The run ended, successfully or not.
    RunFinished {
        /// Tasks finished.
        done: usize,
        /// Whether every task finished.
        complete: bool,
        /// When.
        at: Instant,
    },
}

/// Receives a run's events. Implemented for every `Fn(&Event) + Send + Sync`.
pub trait EventSink: Send + Sync {
    /// Called for each event, on the thread where it happened.
    fn event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> EventSink for F {
    fn event(&self, event: &Event) {
        self(event);
    }
}
