//! What a plan needs from the memory limit, shared by every algorithm's plan.

use crate::engine::Engine;
use crate::graph::{Operation, TaskGraph};

/// Allocator slack and small buffers outside any reservation, added to the process's current
/// unmanaged memory when the RSS thresholds are on.
pub const UNMANAGED_SLACK: u64 = 8 << 20;

/// The figures that decide whether a plan fits a memory limit, and with how many tasks at once.
#[derive(Clone, Copy, Debug)]
pub struct MemoryModel {
    /// The memory limit.
    pub limit: u64,
    /// Worker threads available.
    pub workers: usize,
    /// Unmanaged memory of the process (when the RSS thresholds apply).
    pub overhead: u64,
    /// Intermediates that wait between tasks and must stay in RAM.
    pub retained: u64,
    /// The largest working set of a task.
    pub max_task: u64,
    /// The largest reusable (worker scratch) part of a task's working set.
    pub max_reusable: u64,
    /// The terminate threshold as a fraction (1 when off).
    pub terminate: f64,
    /// The pause threshold as a fraction (1 when off).
    pub pause: f64,
}

impl MemoryModel {
    /// The engine's limit, workers and thresholds, with the unmanaged memory measured now.
    pub fn for_engine(engine: &Engine) -> Self {
        let config = engine.manager().config();
        let overhead = if config.thresholds.terminate.is_some() {
            let report = engine.manager().report();
            report.process.saturating_sub(report.managed) + UNMANAGED_SLACK
        } else {
            0
        };
        Self {
            limit: config.memory_limit,
            workers: engine.scheduler().workers(),
            overhead,
            retained: 0,
            max_task: 0,
            max_reusable: 0,
            terminate: config.thresholds.terminate.unwrap_or(1.0),
            pause: config.thresholds.pause.unwrap_or(1.0),
        }
    }

    /// The same model with the task figures of `graph` and `retained` bytes between tasks.
    pub fn with_graph<O: Operation>(self, graph: &TaskGraph<O>, retained: u64) -> Self {
        Self {
            retained,
            max_task: graph.max_working_set(),
            max_reusable: graph.tasks().iter().map(|t| t.reusable).max().unwrap_or(0),
            ..self
        }
    }

    /// The limit needed to run `workers` tasks at once: all of them running must stay under
    /// the terminate threshold, and the last one must be able to start (under the pause
    /// threshold) while the others run and its worker holds its reusable buffers.
    pub fn needed(&self, workers: usize) -> u64 {
        let base = self.retained + self.overhead;
        let others = workers.saturating_sub(1) as u64 * self.max_task;
        let running = base + others + self.max_task;
        let starting = base + others + self.max_reusable;
        (running as f64 / self.terminate).max(starting as f64 / self.pause).ceil() as u64
    }

    /// How many tasks the limit lets run at once (at least 1, at most the workers).
    pub fn concurrent(&self) -> usize {
        (1..=self.workers).rev().find(|&w| self.needed(w) <= self.limit).unwrap_or(1)
    }
}
