//! One run's state: the graph being run, which tasks are ready, the blocks their outputs are in
//! and how many reads of each are left, and the run's first failure.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use outcore_storage::{BlockId, BufferManager};

use super::control::RunControl;
use crate::cluster::placement::Placement;
use crate::error::{Error, Result, panic_message};
use crate::task::{Block, Executor, Key, TaskGraph, WorkerScratch};

/// One run's shared state.
pub(super) struct State {
    pub(super) ready: BinaryHeap<Reverse<usize>>,
    /// Unfinished distinct producers each task still waits for.
    pub(super) waiting: Vec<usize>,
    /// Remaining reads of each output, per task and slot (`usize::MAX` for kept outputs).
    pub(super) reads_left: Vec<Vec<usize>>,
    pub(super) blocks: Vec<Vec<Option<BlockId>>>,
    /// Of each task run on another rank, the blocks this rank still waits to receive.
    pub(super) remote_left: Vec<usize>,
    pub(super) done: usize,
    pub(super) waits_for_memory: u64,
    pub(super) recomputed: u64,
    pub(super) failed: Option<Error>,
}

impl State {
    /// One read of output `key` is done: its block, to remove, once no read is left (kept
    /// outputs never).
    pub(super) fn read_done(&mut self, key: Key) -> Option<BlockId> {
        let left = &mut self.reads_left[key.task.0][key.slot];
        if *left == usize::MAX {
            return None;
        }
        *left -= 1;
        if *left == 0 { self.blocks[key.task.0][key.slot].take() } else { None }
    }

    /// A producer's outputs are all here: `dependents` whose inputs now all are become ready.
    pub(super) fn release(&mut self, dependents: &[usize]) {
        for &d in dependents {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.ready.push(Reverse(d));
            }
        }
    }
}

pub(super) struct Run<'a, E: Executor> {
    pub(super) graph: &'a TaskGraph<E::Op>,
    pub(super) executor: &'a E,
    pub(super) manager: &'a BufferManager,
    pub(super) control: &'a RunControl,
    pub(super) dependents: Vec<Vec<usize>>,
    /// Where tasks run when the run is one rank of several.
    pub(super) placement: Option<Placement>,
    /// Tasks this process runs: all of them, or this rank's.
    pub(super) local_total: usize,
    pub(super) state: Mutex<State>,
    pub(super) changed: Condvar,
}

/// How long a waiting worker sleeps at most before it looks again (a release wakes it sooner).
pub(super) const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Blocks no task holds yet (recomputed inputs, a task's outputs before they are recorded),
/// removed from the pool when dropped.
pub(super) struct Temporaries<'m> {
    pub(super) manager: &'m BufferManager,
    pub(super) ids: Vec<BlockId>,
}

impl Drop for Temporaries<'_> {
    fn drop(&mut self) {
        for &id in &self.ids {
            // Each exists: stored by this run and removed nowhere else while held here.
            let _ = self.manager.remove(id);
        }
    }
}

impl<'a, E: Executor> Run<'a, E> {
    /// The run of `graph` by `executor` (on this rank's share, with a `placement`): which task
    /// waits for which, and how many reads of each output are left.
    pub(super) fn new(
        graph: &'a TaskGraph<E::Op>,
        executor: &'a E,
        manager: &'a BufferManager,
        control: &'a RunControl,
        placement: Option<Placement>,
    ) -> Self {
        let tasks = graph.tasks();
        let here = |i: usize| placement.as_ref().is_none_or(|p| p.runs_here(i));
        let mut dependents = vec![Vec::new(); tasks.len()];
        let mut waiting = vec![0; tasks.len()];
        let mut reads_left: Vec<Vec<usize>> = tasks.iter().map(|t| vec![0; t.outputs]).collect();
        for (i, task) in tasks.iter().enumerate().filter(|(i, _)| here(*i)) {
            let mut producers: Vec<usize> = task.inputs.iter().map(|k| k.task.0).collect();
            producers.sort_unstable();
            producers.dedup();
            waiting[i] = producers.len();
            for p in producers {
                dependents[p].push(i);
            }
            for key in &task.inputs {
                reads_left[key.task.0][key.slot] += 1;
            }
        }
        let mut remote_left = vec![0; tasks.len()];
        for m in placement.iter().flat_map(|p| p.messages.iter().map(move |m| (p.me, m))) {
            match m {
                (me, m) if m.from == me => reads_left[m.key.task.0][m.key.slot] += 1,
                (me, m) if m.to == me => remote_left[m.key.task.0] += 1,
                _ => {}
            }
        }
        // Results are kept where they are collected: in the one process, or on rank 0.
        if placement.as_ref().is_none_or(|p| p.me == 0) {
            for key in graph.kept() {
                reads_left[key.task.0][key.slot] = usize::MAX;
            }
        }
        let ready = (0..tasks.len()).filter(|&i| here(i) && waiting[i] == 0).map(Reverse).collect();
        let local_total = (0..tasks.len()).filter(|&i| here(i)).count();
        let state = State {
            ready,
            waiting,
            reads_left,
            blocks: tasks.iter().map(|t| vec![None; t.outputs]).collect(),
            remote_left,
            done: 0,
            waits_for_memory: 0,
            recomputed: 0,
            failed: None,
        };
        Self {
            graph,
            executor,
            manager,
            control,
            dependents,
            placement,
            local_total,
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    /// Whether task `task` runs in this process (all do, unless the run is one rank of several).
    pub(super) fn runs_here(&self, task: usize) -> bool {
        self.placement.as_ref().is_none_or(|p| p.runs_here(task))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn fail(&self, error: Error) {
        self.lock().failed.get_or_insert(error);
        self.changed.notify_all();
    }

    /// The run's error, or its kept outputs, read now while a lost spill can still be
    /// recomputed (which runs a kernel here, so a panic is caught as in the workers).
    pub(super) fn outcome(&self) -> Result<HashMap<Key, Block>> {
        if let Some(e) = self.lock().failed.take() {
            return Err(e);
        }
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.collect_kept())).unwrap_or_else(|panic| {
            Err(Error::Bug(format!("reading the results panicked: {}", panic_message(&*panic))))
        })
    }

    /// Copies every kept output out of the buffer manager (recomputing any whose spill is lost).
    pub(super) fn collect_kept(&self) -> Result<HashMap<Key, Block>> {
        let mut budget = self.manager.reserve(0)?;
        let mut scratch = WorkerScratch::new(self.manager)?;
        let mut kept = std::collections::HashMap::new();
        for &key in self.graph.kept() {
            let pinned = self.pin_input(key, &mut budget, &mut scratch)?;
            let (rows, cols) = pinned.shape();
            kept.insert(key, Block { data: pinned.to_vec(), rows, cols });
        }
        Ok(kept)
    }
}
