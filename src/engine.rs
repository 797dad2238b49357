//! The engine: a buffer manager and a scheduler, shared by every algorithm run on them.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use outcore_storage::{BufferConfig, BufferManager};

use crate::Result;
use crate::graph::TaskGraph;
use crate::schedule::{self, Executor, Progress, Results, RunControl, RunStats, Scheduler};

/// Progress callback type.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Runs task graphs under one memory budget.
#[derive(Clone)]
pub struct Engine {
    manager: BufferManager,
    scheduler: Scheduler,
    progress: Option<ProgressFn>,
    cancel: Arc<AtomicBool>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("manager", &self.manager.to_string())
            .field("scheduler", &self.scheduler)
            .finish()
    }
}

impl Engine {
    /// An engine with Dask's default thresholds under `memory_limit` bytes.
    pub fn new(memory_limit: u64, scheduler: Scheduler) -> Result<Self> {
        Self::with_config(BufferConfig::new(memory_limit), scheduler)
    }

    /// An engine with a full buffer configuration.
    pub fn with_config(config: BufferConfig, scheduler: Scheduler) -> Result<Self> {
        check_workers(scheduler)?;
        Ok(Self {
            manager: BufferManager::new(config)?,
            scheduler,
            progress: None,
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// This engine under another scheduler: the same buffer manager (one memory budget and
    /// one accounting), progress callback and cancel flag.
    pub fn with_scheduler(&self, scheduler: Scheduler) -> Result<Self> {
        check_workers(scheduler)?;
        Ok(Self { scheduler, ..self.clone() })
    }

    /// Calls `progress` after every task of every run.
    pub fn with_progress(mut self, progress: ProgressFn) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Uses `cancel` as the cancel flag (see [`cancel_flag`](Self::cancel_flag)), e.g. one a
    /// Ctrl-C handler sets.
    pub fn with_cancel_flag(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = cancel;
        self
    }

    /// The buffer manager.
    pub fn manager(&self) -> &BufferManager {
        &self.manager
    }

    /// The scheduler.
    pub fn scheduler(&self) -> Scheduler {
        self.scheduler
    }

    /// The flag that stops runs at the next task boundary when set (e.g. from a Ctrl-C
    /// handler); the run then fails with [`Error::Interrupted`](crate::Error::Interrupted).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Runs `graph` with `executor`.
    pub fn run<E: Executor>(&self, graph: &TaskGraph<E::Op>, executor: &E) -> Result<(Results, RunStats)> {
        let progress = self.progress.as_deref().map(|p| p as &(dyn Fn(Progress) + Sync));
        let control = RunControl { progress, cancel: Some(&self.cancel) };
        schedule::run(self.scheduler, &self.manager, graph, executor, control)
    }
}

/// Refuses a scheduler without workers.
fn check_workers(scheduler: Scheduler) -> Result<()> {
    if scheduler.workers() == 0 {
        return Err(crate::Error::invalid("workers", "0 workers cannot run anything; give 1 or more"));
    }
    Ok(())
}
