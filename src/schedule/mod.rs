//! Schedulers: run a [`TaskGraph`] with an [`Executor`], serially or on worker threads.
//!
//! Both schedulers share one loop ([`run`]): a worker takes the lowest-numbered ready task,
//! asks the buffer manager whether a task may start (the pause threshold) and reserves the
//! task's working set (admission: if other tasks hold the memory, it waits for one to finish;
//! if none is running, the request can never be met and the run fails with a typed error).
//! Then it pins the task's inputs, runs the kernel, stores the outputs as dirty blocks, and
//! frees every input no later task needs. **Serial** runs that loop on the calling thread;
//! **threads** runs it on `workers` threads of a dedicated rayon pool.
//!
//! Each task's result depends only on its inputs (kernels use sequential faer), so results are
//! bitwise identical under both schedulers and any worker count.

mod results;
mod scratch;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use outcore_storage::{BlockId, BufferManager, Pinned, Reservation, StorageError};

pub use results::Results;
pub use scratch::WorkerScratch;

use crate::graph::{Key, Operation, TaskGraph};
use crate::{Error, Result};

/// How tasks are run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduler {
    /// One task at a time on the calling thread.
    Serial,
    /// Up to `workers` tasks at a time on a pool of that many threads.
    Threads {
        /// Number of worker threads (at least 1).
        workers: usize,
    },
}

impl Scheduler {
    /// Number of tasks that may run at once.
    pub fn workers(&self) -> usize {
        match self {
            Self::Serial => 1,
            Self::Threads { workers } => *workers,
        }
    }

    /// Builds a scheduler from a name (`serial` or `threads`) and a worker count.
    pub fn from_name(name: &str, workers: usize) -> Result<Self> {
        if workers == 0 {
            return Err(Error::invalid("workers", "0 workers cannot run anything; give 1 or more"));
        }
        match name {
            "serial" => Ok(Self::Serial),
            "threads" => Ok(Self::Threads { workers }),
            _ => Err(Error::invalid("scheduler", format!("{name:?} is not one of serial, threads"))),
        }
    }

    /// `serial` or `threads`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Serial => "serial",
            Self::Threads { .. } => "threads",
        }
    }
}

/// A block of values a kernel returns: `rows x cols`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// The values, row-major.
    pub data: Vec<f64>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl Output {
    /// Bytes of `rows x cols` f64 values.
    pub const fn bytes(rows: usize, cols: usize) -> u64 {
        (rows * cols * size_of::<f64>()) as u64
    }
}

/// Runs the ops of one algorithm.
pub trait Executor: Sync {
    /// The algorithm's op type.
    type Op: Operation;

    /// Runs `op` on its pinned inputs. Chunk reads and scratch take memory from `budget`, which
    /// holds the task's declared working set less the credit for `scratch` (the worker's reusable
    /// buffers); the returned outputs are stored from it too.
    fn execute(
        &self,
        op: &Self::Op,
        inputs: &[Pinned],
        budget: &mut Reservation,
        scratch: &mut WorkerScratch,
    ) -> Result<Vec<Output>>;
}

/// A progress notification, sent after each task.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Tasks finished.
    pub done: usize,
    /// Tasks in the graph.
    pub total: usize,
    /// Stage of the task that just finished.
    pub stage: &'static str,
}

/// What a run observed besides its results.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct RunStats {
    /// Tasks run.
    pub tasks: usize,
    /// Times a task start waited for memory (pause threshold or admission).
    pub waits_for_memory: u64,
    /// Intermediates recomputed from their lineage because their spill files were lost.
    pub recomputed: u64,
    /// Wall-clock seconds of the run.
    pub wall_seconds: f64,
}

/// Callbacks and controls of one run.
#[derive(Clone, Copy, Default)]
pub struct RunControl<'a> {
    /// Called after every task.
    pub progress: Option<&'a (dyn Fn(Progress) + Sync)>,
    /// Set to stop the run at the next task boundary ([`Error::Interrupted`]).
    pub cancel: Option<&'a AtomicBool>,
}

struct State {
    ready: BinaryHeap<Reverse<usize>>,
    /// Unfinished distinct producers each task still waits for.
    waiting: Vec<usize>,
    /// Remaining reads of each output, per task and slot (`usize::MAX` for kept outputs).
    reads_left: Vec<Vec<usize>>,
    blocks: Vec<Vec<Option<BlockId>>>,
    /// Tasks taken from the ready queue (admitting or executing).
    running: usize,
    /// Tasks that hold their memory reservation and are executing.
    executing: usize,
    /// Bytes of reusable scratch each worker holds.
    scratch: Vec<u64>,
    /// Times a worker released its scratch (lets waiting admissions retry).
    releases: u64,
    done: usize,
    completions: u64,
    waits_for_memory: u64,
    recomputed: u64,
    failed: Option<Error>,
}

struct Run<'a, E: Executor> {
    graph: &'a TaskGraph<E::Op>,
    executor: &'a E,
    manager: &'a BufferManager,
    control: RunControl<'a>,
    dependents: Vec<Vec<usize>>,
    state: Mutex<State>,
    changed: Condvar,
}

/// Runs `graph` with `executor` under `scheduler`, keeping the graph's kept outputs as results.
pub fn run<E: Executor>(
    scheduler: Scheduler,
    manager: &BufferManager,
    graph: &TaskGraph<E::Op>,
    executor: &E,
    control: RunControl<'_>,
) -> Result<(Results, RunStats)> {
    let start = Instant::now();
    let tasks = graph.tasks();
    let mut dependents = vec![Vec::new(); tasks.len()];
    let mut waiting = vec![0; tasks.len()];
    let mut reads_left: Vec<Vec<usize>> = tasks.iter().map(|t| vec![0; t.outputs]).collect();
    for (i, task) in tasks.iter().enumerate() {
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
    for key in graph.kept() {
        reads_left[key.task.0][key.slot] = usize::MAX;
    }
    let ready = (0..tasks.len()).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let run = Run {
        graph,
        executor,
        manager,
        control,
        dependents,
        state: Mutex::new(State {
            ready,
            waiting,
            reads_left,
            blocks: tasks.iter().map(|t| vec![None; t.outputs]).collect(),
            running: 0,
            executing: 0,
            scratch: vec![0; scheduler.workers().max(1)],
            releases: 0,
            done: 0,
            completions: 0,
            waits_for_memory: 0,
            recomputed: 0,
            failed: None,
        }),
        changed: Condvar::new(),
    };
    match scheduler {
        Scheduler::Serial => run.worker(0),
        Scheduler::Threads { workers } => {
            let workers = workers.min(graph.max_concurrency());
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(workers.max(1))
                .thread_name(|i| format!("outcore-worker-{i}"))
                .build()
                .map_err(|e| Error::Bug(format!("cannot start {workers} worker threads: {e}")))?;
            pool.scope(|s| {
                for me in 0..workers.max(1) {
                    let run = &run;
                    s.spawn(move |_| run.worker(me));
                }
            });
        }
    }
    let failed = run.lock().failed.take();
    // Read the kept outputs now, while a lost spill can still be recomputed.
    let kept = match failed {
        Some(e) => Err(e),
        None => run.collect_kept(),
    };
    let mut st = run.lock();
    let stats = RunStats {
        tasks: st.done,
        waits_for_memory: st.waits_for_memory,
        recomputed: st.recomputed,
        wall_seconds: start.elapsed().as_secs_f64(),
    };
    let blocks = std::mem::take(&mut st.blocks);
    drop(st);
    for id in blocks.into_iter().flatten().flatten() {
        let _ = manager.remove(id);
    }
    let kept = kept?;
    if stats.tasks < tasks.len() {
        return Err(Error::Bug(format!("run ended after {} of {} tasks", stats.tasks, tasks.len())));
    }
    Ok((Results::new(kept), stats))
}

impl<E: Executor> Run<'_, E> {
    /// Copies every kept output out of the buffer manager (recomputing any whose spill is lost).
    fn collect_kept(&self) -> Result<std::collections::HashMap<Key, Output>> {
        let mut budget = self.manager.reserve(0)?;
        let mut scratch = WorkerScratch::new(self.manager)?;
        let mut kept = std::collections::HashMap::new();
        for &key in self.graph.kept() {
            let pinned = self.pin_input(key, &mut budget, &mut scratch)?;
            let (rows, cols) = pinned.shape();
            kept.insert(key, Output { data: pinned.to_vec(), rows, cols });
        }
        Ok(kept)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cancelled(&self) -> bool {
        self.control.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Takes tasks until the graph is done or the run failed. Worker `me` keeps its scratch
    /// between tasks, and releases it when it finds nothing to do.
    fn worker(&self, me: usize) {
        let mut scratch = match WorkerScratch::new(self.manager) {
            Ok(s) => s,
            Err(e) => {
                self.lock().failed.get_or_insert(e);
                self.changed.notify_all();
                return;
            }
        };
        loop {
            let mut st = self.lock();
            let task = loop {
                if st.failed.is_some() || st.done == self.graph.len() {
                    return;
                }
                if self.cancelled() {
                    st.failed.get_or_insert(Error::Interrupted);
                    self.changed.notify_all();
                    return;
                }
                if let Some(Reverse(t)) = st.ready.pop() {
                    st.running += 1;
                    break t;
                }
                if scratch.bytes() > 0 {
                    // Idle: the buffers are only a cache; another worker may need the room.
                    drop(st);
                    scratch.clear();
                    st = self.lock();
                    st.scratch[me] = 0;
                    st.releases += 1;
                    self.changed.notify_all();
                    continue;
                }
                st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            };
            drop(st);
            let outcome = self.admit(task, me, &mut scratch).and_then(|budget| {
                let result = self.execute(task, budget, &mut scratch);
                let mut st = self.lock();
                st.executing -= 1;
                st.scratch[me] = scratch.bytes();
                result
            });
            let mut st = self.lock();
            st.running -= 1;
            st.completions += 1;
            if let Err(e) = outcome {
                st.failed.get_or_insert(e);
            }
            drop(st);
            self.changed.notify_all();
        }
    }

    /// Waits until memory allows `task` to start, then reserves its working set, less the
    /// reusable bytes worker `me` already holds, up to what the task reuses.
    ///
    /// Waiting is only for memory that will come free: executing tasks finish, and idle
    /// workers release their scratch. When neither holds any, a refused request can never be
    /// met, so it fails at once.
    fn admit(&self, task: usize, me: usize, scratch: &mut WorkerScratch) -> Result<Reservation> {
        let spec = &self.graph.tasks()[task];
        let mut waited = false;
        loop {
            let none_executing = || self.lock().executing == 0;
            // Memory that can still come free: executing tasks, and other workers' scratch.
            let releasable =
                |st: &State| st.executing > 0 || st.scratch.iter().enumerate().any(|(w, &b)| w != me && b > 0);
            let working_set = spec.working_set - scratch.bytes().min(spec.reusable);
            let (seen, seen_releases) = {
                let st = self.lock();
                (st.completions, st.releases)
            };
            match self.manager.admit(working_set) {
                Ok(Some(budget)) => {
                    let mut st = self.lock();
                    st.executing += 1;
                    st.waits_for_memory += u64::from(waited);
                    return Ok(budget);
                }
                Ok(None) => {
                    waited = true;
                    match self.manager.wait_until_unpaused(none_executing) {
                        // Nothing runs and memory stays high: this worker's idle buffers are the
                        // last thing that can go. Free them and look again.
                        Err(StorageError::MemoryPaused { .. }) if scratch.bytes() > 0 => scratch.clear(),
                        other => other?,
                    }
                }
                Err(StorageError::ResourcesExhausted { .. }) if releasable(&self.lock()) => {
                    waited = true;
                    // Others hold the memory; wait for a task to finish or a worker to release
                    // its scratch, and try again.
                    let mut st = self.lock();
                    while st.completions == seen
                        && st.releases == seen_releases
                        && releasable(&st)
                        && st.failed.is_none()
                    {
                        st = self
                            .changed
                            .wait_timeout(st, Duration::from_millis(50))
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0);
                    }
                    if st.failed.is_some() {
                        // Another task failed; the run reports that first error, not this one.
                        return Err(Error::Interrupted);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn execute(&self, task: usize, mut budget: Reservation, scratch: &mut WorkerScratch) -> Result<()> {
        let spec = &self.graph.tasks()[task];
        let mut pins = Vec::with_capacity(spec.inputs.len());
        for &key in &spec.inputs {
            pins.push(self.pin_input(key, &mut budget, scratch)?);
        }
        let outputs = self.executor.execute(&spec.op, &pins, &mut budget, scratch)?;
        drop(pins);
        scratch.settle(&mut budget)?;
        if outputs.len() != spec.outputs {
            return Err(Error::Bug(format!(
                "{} returned {} outputs, expected {}",
                spec.op.label(),
                outputs.len(),
                spec.outputs
            )));
        }
        let mut ids = Vec::with_capacity(outputs.len());
        for out in outputs {
            ids.push(self.manager.insert(&mut budget, out.data, out.rows, out.cols)?);
        }
        drop(budget);
        self.finish(task, ids);
        Ok(())
    }

    /// Pins output `key` of an earlier task. If its spilled copy cannot be read back, the block
    /// is recomputed from its lineage and replaces the lost one.
    fn pin_input(&self, key: Key, budget: &mut Reservation, scratch: &mut WorkerScratch) -> Result<Pinned> {
        let held = self.lock().blocks[key.task.0][key.slot];
        let id = held.ok_or_else(|| Error::Bug(format!("input {key:?} is missing")))?;
        match self.manager.pin_with(id, budget) {
            Err(StorageError::SpillLost { .. }) => {
                let fresh = self.recompute(key, budget, scratch, 0)?;
                {
                    let mut st = self.lock();
                    st.blocks[key.task.0][key.slot] = Some(fresh);
                    st.recomputed += 1;
                }
                let _ = self.manager.remove(id);
                Ok(self.manager.pin_with(fresh, budget)?)
            }
            other => Ok(other?),
        }
    }

    /// Runs the producer of `key` again and stores that output as a new block. The producer's
    /// inputs are pinned if still held (recomputed in turn if their spills are lost too) or
    /// recomputed if already freed. Only tasks with outputs are ever re-run, and those are
    /// pure functions of their inputs (kernels write to stores only in tasks without outputs),
    /// so the result is bitwise the lost one.
    fn recompute(
        &self,
        key: Key,
        budget: &mut Reservation,
        scratch: &mut WorkerScratch,
        depth: usize,
    ) -> Result<BlockId> {
        if depth > self.graph.len() {
            return Err(Error::Bug(format!("recomputing {key:?} recursed through more tasks than the graph has")));
        }
        let spec = &self.graph.tasks()[key.task.0];
        let mut pins = Vec::with_capacity(spec.inputs.len());
        let mut temporaries = Vec::new();
        for &input in &spec.inputs {
            let held = self.lock().blocks[input.task.0][input.slot];
            let pinned = match held {
                Some(_) => self.pin_input(input, budget, scratch)?,
                None => {
                    let fresh = self.recompute(input, budget, scratch, depth + 1)?;
                    temporaries.push(fresh);
                    self.manager.pin_with(fresh, budget)?
                }
            };
            pins.push(pinned);
        }
        let outputs = self.executor.execute(&spec.op, &pins, budget, scratch)?;
        drop(pins);
        for id in temporaries {
            let _ = self.manager.remove(id);
        }
        let out = outputs.into_iter().nth(key.slot).ok_or_else(|| {
            Error::Bug(format!("recomputing {key:?}: {} has no output {}", spec.op.label(), key.slot))
        })?;
        Ok(self.manager.insert(budget, out.data, out.rows, out.cols)?)
    }

    /// Records a finished task: stores its outputs, frees inputs nobody else reads, releases
    /// dependents whose inputs are now all there.
    fn finish(&self, task: usize, ids: Vec<BlockId>) {
        let spec = &self.graph.tasks()[task];
        let mut st = self.lock();
        let mut to_remove = Vec::new();
        for (slot, id) in ids.into_iter().enumerate() {
            if st.reads_left[task][slot] == 0 {
                to_remove.push(id);
            } else {
                st.blocks[task][slot] = Some(id);
            }
        }
        for key in &spec.inputs {
            let left = &mut st.reads_left[key.task.0][key.slot];
            if *left != usize::MAX {
                *left -= 1;
                if *left == 0
                    && let Some(id) = st.blocks[key.task.0][key.slot].take()
                {
                    to_remove.push(id);
                }
            }
        }
        for &d in &self.dependents[task] {
            st.waiting[d] -= 1;
            if st.waiting[d] == 0 {
                st.ready.push(Reverse(d));
            }
        }
        st.done += 1;
        let progress = Progress { done: st.done, total: self.graph.len(), stage: spec.op.stage() };
        drop(st);
        self.changed.notify_all();
        for id in to_remove {
            // The block exists: it was produced by a finished task and not removed before.
            let _ = self.manager.remove(id);
        }
        if let Some(callback) = self.control.progress {
            callback(progress);
        }
    }
}

#[cfg(test)]
mod tests;
