//! What a plan needs from the memory limit, shared by every algorithm's plan.
//!
//! A plan is a pure function of the shape, chunking, options, limit, workers and accounting
//! mode: never of what the process holds at the moment, so the same inputs and configuration
//! give the same plan, and the same bits, under any host load.

use crate::run::Engine;
use crate::task::{Operation, TaskGraph};

/// The figures that decide whether a plan fits a memory limit, and with how many tasks at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemoryModel {
    /// The memory limit.
    pub(crate) limit: u64,
    /// Worker threads available.
    pub(crate) workers: usize,
    /// Memory the worker holds outside the pool: the engine's process overhead under process
    /// accounting, nothing under own accounting (the pool is the worker).
    pub(crate) overhead: u64,
    /// Intermediates that wait between tasks and must stay in RAM.
    pub(crate) retained: u64,
    /// The largest working set of a task.
    pub(crate) max_task: u64,
    /// The largest reusable (worker scratch) part of a task's working set.
    pub(crate) max_reusable: u64,
    /// The terminate threshold as a fraction (1 when off).
    pub(crate) terminate: f64,
    /// The pause threshold as a fraction (1 when off).
    pub(crate) pause: f64,
}

impl MemoryModel {
    /// The engine's limit, workers, accounting and thresholds.
    pub(crate) fn for_engine(engine: &Engine) -> Self {
        let config = engine.memory_pool().config();
        let overhead = engine.process_overhead();
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

    /// The same model with the task figures of `graph` and `retained` bytes between tasks
    /// (the graph's own bookkeeping is added to them).
    pub(crate) fn with_graph<O: Operation>(self, graph: &TaskGraph<O>, retained: u64) -> Self {
        Self {
            retained: retained + graph.footprint(),
            max_task: graph.max_working_set(),
            max_reusable: graph.tasks().iter().map(|t| t.reusable).max().unwrap_or(0),
            ..self
        }
    }

    /// The limit needed to run `workers` tasks at once: all of them running must stay under
    /// the terminate threshold, and the last one must be able to start (under the pause
    /// threshold) while the others run and its worker holds its reusable buffers.
    pub(crate) fn needed(&self, workers: usize) -> u64 {
        let base = self.retained + self.overhead;
        let others = workers.saturating_sub(1) as u64 * self.max_task;
        let running = base + others + self.max_task;
        let starting = base + others + self.max_reusable;
        (running as f64 / self.terminate).max(starting as f64 / self.pause).ceil() as u64
    }

    /// How many tasks the limit lets run at once (at least 1, at most the workers).
    pub(crate) fn concurrent(&self) -> usize {
        (1..=self.workers).rev().find(|&w| self.needed(w) <= self.limit).unwrap_or(1)
    }
}
