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
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use outcore_storage::{Admission, BlockId, BufferManager, MemoryMonitor, Pinned, PoolEvent, Reservation, StorageError};

pub use results::Results;
pub use scratch::WorkerScratch;

use crate::cluster::placement::{Placement, fingerprint};
use crate::cluster::{Transport, wire};
use crate::control::{CancelToken, RunControl};
use crate::events::Event;
use crate::graph::{Key, Operation, TaskGraph};
use crate::{Error, Result};

/// How tasks are run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduler {
    /// One task at a time on the calling thread (in a run across ranks, on one worker thread
    /// while the calling thread exchanges the rank's messages).
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

    /// What besides the graph decides the results (seeds, options), as text: the ranks of a
    /// run across ranks compare it, with the graph, before any work. Empty by default.
    fn identity(&self) -> String {
        String::new()
    }
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

/// One run's shared state.
struct State {
    ready: BinaryHeap<Reverse<usize>>,
    /// Unfinished distinct producers each task still waits for.
    waiting: Vec<usize>,
    /// Remaining reads of each output, per task and slot (`usize::MAX` for kept outputs).
    reads_left: Vec<Vec<usize>>,
    blocks: Vec<Vec<Option<BlockId>>>,
    /// Of each task run on another rank, the blocks this rank still waits to receive.
    remote_left: Vec<usize>,
    done: usize,
    waits_for_memory: u64,
    recomputed: u64,
    failed: Option<Error>,
}

impl State {
    /// One read of output `key` is done: its block, to remove, once no read is left (kept
    /// outputs never).
    fn read_done(&mut self, key: Key) -> Option<BlockId> {
        let left = &mut self.reads_left[key.task.0][key.slot];
        if *left == usize::MAX {
            return None;
        }
        *left -= 1;
        if *left == 0 { self.blocks[key.task.0][key.slot].take() } else { None }
    }

    /// A producer's outputs are all here: `dependents` whose inputs now all are become ready.
    fn release(&mut self, dependents: &[usize]) {
        for &d in dependents {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.ready.push(Reverse(d));
            }
        }
    }
}

struct Run<'a, E: Executor> {
    graph: &'a TaskGraph<E::Op>,
    executor: &'a E,
    manager: &'a BufferManager,
    control: &'a RunControl,
    dependents: Vec<Vec<usize>>,
    /// Where tasks run when the run is one rank of several.
    placement: Option<Placement>,
    /// Tasks this process runs: all of them, or this rank's.
    local_total: usize,
    state: Mutex<State>,
    changed: Condvar,
}

/// How long a waiting worker sleeps at most before it looks again (a release wakes it sooner).
const WAIT_SLICE: Duration = Duration::from_millis(50);

thread_local! {
    /// The pools whose tasks this thread is running now, with their runs' cancel tokens
    /// (innermost last).
    static RUNNING_TASK_OF: std::cell::RefCell<Vec<(usize, Option<CancelToken>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks the current thread as running a task of a pool while it lives.
struct InTask;

impl InTask {
    fn enter(pool: usize, cancel: Option<CancelToken>) -> Self {
        RUNNING_TASK_OF.with(|p| p.borrow_mut().push((pool, cancel)));
        Self
    }
}

/// Fails with [`Error::Interrupted`] if the run whose task this thread is running was
/// cancelled: long kernels call it between blocks, so a cancel is honoured within a block's
/// time rather than a task's.
pub(crate) fn check_cancelled() -> Result<()> {
    let cancelled = RUNNING_TASK_OF
        .with(|p| p.borrow().last().and_then(|(_, c)| c.as_ref()).is_some_and(CancelToken::is_cancelled));
    if cancelled { Err(Error::Interrupted) } else { Ok(()) }
}

impl Drop for InTask {
    fn drop(&mut self) {
        RUNNING_TASK_OF.with(|p| p.borrow_mut().pop());
    }
}

/// Runs `graph` with `executor` under `scheduler`, keeping the graph's kept outputs as results.
///
/// For its duration the run reserves the graph's own bookkeeping
/// ([`TaskGraph::footprint`]), subscribes `control`'s sink to the pool's events and samples
/// memory into it.
pub(crate) fn run<E: Executor>(
    scheduler: Scheduler,
    manager: &BufferManager,
    graph: &TaskGraph<E::Op>,
    executor: &E,
    control: &RunControl,
) -> Result<(Results, RunStats)> {
    let start = Instant::now();
    let tasks = graph.tasks();
    let placement = control.cluster.as_ref().map(|t| Placement::new(graph, t.ranks(), t.rank()));
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
    let workers = scheduler.workers().min(graph.max_concurrency()).max(1);
    let worker_pool = || {
        rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("outcore-worker-{i}"))
            .build()
            .map_err(|e| Error::Bug(format!("cannot start {workers} worker threads: {e}")))
    };
    let setup = (|| {
        if RUNNING_TASK_OF.with(|p| p.borrow().iter().any(|(pool, _)| *pool == manager.pool_id())) {
            // Its tasks could wait for memory the calling task holds, and that task for them.
            return Err(Error::invalid(
                "engine",
                "a run was started from inside a task of another run on the same memory pool, so each could wait for the other's memory; give the inner run an engine with a pool of its own",
            ));
        }
        let bookkeeping = manager.reserve(graph.footprint())?;
        let pool = match (&control.cluster, scheduler) {
            (None, Scheduler::Serial) => None,
            _ => Some(worker_pool()?),
        };
        Ok((bookkeeping, pool))
    })();
    // Ranks go on together or fail together, before any work: each says whether its setup
    // succeeded and what it is about to run.
    if let Some(transport) = &control.cluster {
        let digest = fingerprint(graph, &executor.identity());
        crate::cluster::check_same(&**transport, digest, setup.as_ref().map(drop))?;
    }
    let (bookkeeping, pool) = setup?;
    let ready = (0..tasks.len()).filter(|&i| here(i) && waiting[i] == 0).map(Reverse).collect();
    let local_total = (0..tasks.len()).filter(|&i| here(i)).count();
    // The stages for the run's observers (built only if someone watches).
    let stages = control.observed().then(|| graph.stage_graph(|t| here(t.0)).into());
    let run = Run {
        graph,
        executor,
        manager,
        control,
        dependents,
        placement,
        local_total,
        state: Mutex::new(State {
            ready,
            waiting,
            reads_left,
            blocks: tasks.iter().map(|t| vec![None; t.outputs]).collect(),
            remote_left,
            done: 0,
            waits_for_memory: 0,
            recomputed: 0,
            failed: None,
        }),
        changed: Condvar::new(),
    };
    if let Some(stages) = stages {
        control.emit(&Event::RunStarted { tasks: local_total, workers, stages, at: Instant::now() });
    }
    let observers = Observers::start(manager, control);
    let kept = match (&control.cluster, pool) {
        (Some(transport), Some(pool)) => run.as_rank(&**transport, &pool, workers),
        (_, None) => {
            run.worker(0);
            run.outcome()
        }
        (None, Some(pool)) => {
            pool.scope(|s| {
                for me in 0..workers {
                    let run = &run;
                    s.spawn(move |_| run.worker(me));
                }
            });
            run.outcome()
        }
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
    drop(bookkeeping);
    drop(observers);
    let complete = kept.is_ok() && stats.tasks == local_total;
    control.emit(&Event::RunFinished { done: stats.tasks, complete, at: Instant::now() });
    let kept = kept?;
    if stats.tasks < local_total {
        return Err(Error::Bug(format!("run ended after {} of {} tasks", stats.tasks, local_total)));
    }
    Ok((Results::new(kept), stats))
}

/// Blocks no task holds yet (recomputed inputs, a task's outputs before they are recorded),
/// removed from the pool when dropped.
struct Temporaries<'m> {
    manager: &'m BufferManager,
    ids: Vec<BlockId>,
}

impl Drop for Temporaries<'_> {
    fn drop(&mut self) {
        for &id in &self.ids {
            // Each exists: stored by this run and removed nowhere else while held here.
            let _ = self.manager.remove(id);
        }
    }
}

/// What a caught panic said.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The run's links to the pool while it lasts: spill and reload events, memory samples.
struct Observers {
    _subscription: Option<outcore_storage::Subscription>,
    monitor: Option<MemoryMonitor>,
}

impl Observers {
    fn start(manager: &BufferManager, control: &RunControl) -> Self {
        let Some(sink) = control.events.clone() else { return Self { _subscription: None, monitor: None } };
        let forward = sink.clone();
        let subscription = manager.subscribe(move |event| {
            let at = Instant::now();
            match *event {
                PoolEvent::Spilled { bytes, disk_bytes } => forward.event(&Event::Spilled { bytes, disk_bytes, at }),
                PoolEvent::Reloaded { bytes } => forward.event(&Event::Reloaded { bytes, at }),
                _ => {}
            }
        });
        // Without a sampler thread the run still works; its timeline is only thinner.
        let monitor = control.sampling().and_then(|interval| {
            MemoryMonitor::start(manager.clone(), interval, move |sample| {
                sink.event(&Event::Memory { report: Box::new(sample.report), at: Instant::now() });
            })
            .ok()
        });
        Self { _subscription: Some(subscription), monitor }
    }
}

impl Drop for Observers {
    fn drop(&mut self) {
        if let Some(monitor) = self.monitor.take() {
            monitor.stop();
        }
    }
}

/// A worker of one run: its identity and the buffers it keeps between tasks. Serial runs have
/// one, on the calling thread; threaded runs one per pool thread. What it does (idle, waiting,
/// running) is told by its events: [`Event::Waiting`], [`Event::Resumed`],
/// [`Event::TaskStarted`], [`Event::TaskFinished`].
struct Worker {
    id: usize,
    scratch: WorkerScratch,
}

impl<E: Executor> Run<'_, E> {
    /// The run's error, or its kept outputs, read now while a lost spill can still be
    /// recomputed (which runs a kernel here, so a panic is caught as in the workers).
    fn outcome(&self) -> Result<std::collections::HashMap<Key, Output>> {
        if let Some(e) = self.lock().failed.take() {
            return Err(e);
        }
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.collect_kept()))
            .unwrap_or_else(|panic| Err(Error::Bug(format!("reading the results panicked: {}", panic_text(&*panic)))))
    }

    /// Runs this rank's share ([`crate::cluster`]): the workers run while this thread walks
    /// the run's messages, then every rank's outcome goes to rank 0, which collects the kept
    /// outputs and sends them (or the first error) to every rank.
    fn as_rank(
        &self,
        transport: &dyn Transport,
        pool: &rayon::ThreadPool,
        workers: usize,
    ) -> Result<std::collections::HashMap<Key, Output>> {
        let placement = self.placement.as_ref().ok_or_else(|| Error::Bug("a rank's run without a placement".into()))?;
        pool.in_place_scope(|s| {
            for me in 0..workers {
                s.spawn(move |_| self.worker(me));
            }
            self.walk(transport, placement);
        });
        let (me, ranks) = (placement.me, placement.ranks);
        let failed = self.lock().failed.take();
        if me != 0 {
            let status = failed
                .as_ref()
                .map_or_else(|| wire::encode_outcome(&Ok(Vec::new()), me), |e| wire::encode_error(e, me));
            transport.send(0, &status)?;
            return wire::decode_kept(wire::decode_outcome(&transport.receive(0)?, 0)?, 0);
        }
        // Rank 0: its own error first, else the lowest rank's; being interrupted is reported
        // only when nothing else went wrong. Every rank is heard and answered, whatever fails.
        let mut verdict = failed;
        for from in 1..ranks {
            let theirs = transport.receive(from).and_then(|bytes| wire::decode_outcome(&bytes, from).map(drop));
            match (&verdict, theirs) {
                (_, Ok(())) => {}
                (None | Some(Error::Interrupted), Err(e)) => verdict = Some(e),
                (Some(_), Err(_)) => {}
            }
        }
        let kept = match verdict {
            Some(e) => Err(e),
            None => self.outcome(),
        };
        let message = match &kept {
            Ok(kept) => wire::encode_outcome(&Ok(wire::encode_kept(kept)), 0),
            Err(e) => wire::encode_error(e, 0),
        };
        let mut unsent = None;
        for to in 1..ranks {
            if let Err(e) = transport.send(to, &message) {
                unsent.get_or_insert(e);
            }
        }
        match unsent {
            Some(e) if kept.is_ok() => Err(e),
            _ => kept,
        }
    }

    fn rank(&self) -> usize {
        self.placement.as_ref().map_or(0, |p| p.me)
    }

    /// Waits until memory admits `bytes` (as a worker's admission does), unless the run fails.
    fn admit_waiting(&self, bytes: u64) -> Result<Reservation> {
        loop {
            if let Some(e) = &self.lock().failed {
                return Err(wire::relayed(e, self.rank()));
            }
            match self.manager.admit(bytes)? {
                Admission::Granted(budget) => return Ok(budget),
                Admission::Wait(epoch) => self.manager.wait_for_release(epoch, WAIT_SLICE),
            }
        }
    }

    /// Walks the run's messages in order, every one of them whatever fails: sends each block
    /// this rank makes for another once made (or the run's error in its place), and stores each
    /// block received for a task here. A panic copying a block out (a lost spill recomputed
    /// here runs a kernel) fails the run like a worker's.
    fn walk(&self, transport: &dyn Transport, placement: &Placement) {
        let me = placement.me;
        for (index, m) in placement.messages.iter().enumerate() {
            if m.from == me {
                let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.made(m.key, index)))
                    .unwrap_or_else(|panic| {
                        Err(Error::Bug(format!("copying a block to send panicked: {}", panic_text(&*panic))))
                    });
                let (message, _budget) = match made {
                    Ok((message, budget)) => (message, Some(budget)),
                    Err(e) => {
                        let message = wire::encode_error(&e, me);
                        self.fail(e);
                        (message, None)
                    }
                };
                if let Err(e) = transport.send(m.to, &message) {
                    self.fail(e);
                }
            } else if m.to == me {
                let arrived = transport
                    .receive(m.from)
                    .and_then(|bytes| wire::decode_block(&bytes, index, m.from))
                    .and_then(|out| self.arrived(m.key, out));
                if let Err(e) = arrived {
                    self.fail(e);
                }
            }
        }
    }

    /// Message `index`: output `key`, made by a task here, encoded once made, with the memory
    /// it holds until sent; then this read of the block is done.
    fn made(&self, key: Key, index: usize) -> Result<(Vec<u8>, Reservation)> {
        let mut st = self.lock();
        let id = loop {
            if self.control.cancelled() {
                st.failed.get_or_insert(Error::Interrupted);
            }
            if let Some(e) = &st.failed {
                return Err(wire::relayed(e, self.rank()));
            }
            if let Some(id) = st.blocks[key.task.0][key.slot] {
                break id;
            }
            st = self.changed.wait_timeout(st, WAIT_SLICE).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        };
        drop(st);
        // The block, reloaded if spilled, and its encoding while it is sent.
        let bytes = self.manager.block_info(id).map_or(0, |b| b.bytes);
        let mut budget = self.admit_waiting(2 * bytes + 64)?;
        let mut scratch = WorkerScratch::new(self.manager)?;
        let pinned = self.pin_input(key, &mut budget, &mut scratch)?;
        let (rows, cols) = pinned.shape();
        let message = wire::encode_block(index, rows, cols, &pinned);
        drop(pinned);
        let freed = self.lock().read_done(key);
        if let Some(id) = freed {
            let _ = self.manager.remove(id);
        }
        Ok((message, budget))
    }

    /// Stores a block received from another rank, once memory admits it, and releases the
    /// tasks here that waited only for it.
    fn arrived(&self, key: Key, out: Output) -> Result<()> {
        let mut budget = self.admit_waiting(Output::bytes(out.rows, out.cols))?;
        let id = self.manager.insert(&mut budget, out.data, out.rows, out.cols)?;
        let mut st = self.lock();
        st.blocks[key.task.0][key.slot] = Some(id);
        st.remote_left[key.task.0] -= 1;
        if st.remote_left[key.task.0] == 0 {
            st.release(&self.dependents[key.task.0]);
        }
        drop(st);
        self.changed.notify_all();
        Ok(())
    }

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

    fn fail(&self, error: Error) {
        self.lock().failed.get_or_insert(error);
        self.changed.notify_all();
    }

    /// Takes tasks until the graph is done or the run failed. A panic in a kernel ends the run
    /// with a typed error instead of leaving the other workers waiting for it.
    fn worker(&self, id: usize) {
        let scratch = match WorkerScratch::new(self.manager) {
            Ok(s) => s,
            Err(e) => return self.fail(e),
        };
        let mut worker = Worker { id, scratch };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work(&mut worker)));
        if let Err(panic) = outcome {
            self.fail(Error::Bug(format!("worker {id} panicked: {}", panic_text(&*panic))));
        }
    }

    fn work(&self, worker: &mut Worker) {
        loop {
            let mut st = self.lock();
            let task = loop {
                if st.failed.is_some() || st.done == self.local_total {
                    return;
                }
                if self.control.cancelled() {
                    st.failed.get_or_insert(Error::Interrupted);
                    self.changed.notify_all();
                    return;
                }
                if let Some(Reverse(t)) = st.ready.pop() {
                    break t;
                }
                if worker.scratch.bytes() > 0 {
                    // Idle: the buffers are only a cache; another worker may need the room.
                    drop(st);
                    worker.scratch.clear();
                    st = self.lock();
                    continue;
                }
                st = self.changed.wait_timeout(st, WAIT_SLICE).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
            };
            drop(st);
            let outcome = self.admit(task, worker).and_then(|budget| match budget {
                Some(budget) => {
                    let _in_task = InTask::enter(self.manager.pool_id(), self.control.cancel.clone());
                    self.execute(task, budget, worker)
                }
                None => Ok(()),
            });
            if let Err(e) = outcome {
                self.fail(e);
            }
            self.changed.notify_all();
        }
    }

    /// Waits until memory allows `task` to start, then reserves its working set, less the
    /// reusable bytes the worker already holds, up to what the task reuses. `None` when the
    /// run failed or was cancelled meanwhile.
    ///
    /// Waiting is only for memory that will come free: running tasks finish and idle or
    /// waiting workers give up their scratch, in this run or any other sharing the pool. A
    /// waiting worker gives up its own scratch first, so no two workers wait on each other.
    fn admit(&self, task: usize, worker: &mut Worker) -> Result<Option<Reservation>> {
        let spec = &self.graph.tasks()[task];
        let mut waited_since: Option<Instant> = None;
        loop {
            let working_set = spec.working_set - worker.scratch.bytes().min(spec.reusable);
            match self.manager.admit(working_set)? {
                Admission::Granted(budget) => {
                    if let Some(since) = waited_since {
                        self.lock().waits_for_memory += 1;
                        let at = Instant::now();
                        self.control.emit(&Event::Resumed { worker: worker.id, waited: at - since, at });
                    }
                    return Ok(Some(budget));
                }
                Admission::Wait(_) if worker.scratch.bytes() > 0 => worker.scratch.clear(),
                Admission::Wait(epoch) => {
                    if waited_since.is_none() {
                        let at = Instant::now();
                        waited_since = Some(at);
                        self.control.emit(&Event::Waiting { worker: worker.id, task, bytes: working_set, at });
                    }
                    if self.lock().failed.is_some() {
                        return Ok(None);
                    }
                    if self.control.cancelled() {
                        return Err(Error::Interrupted);
                    }
                    self.manager.wait_for_release(epoch, WAIT_SLICE);
                }
            }
        }
    }

    fn execute(&self, task: usize, mut budget: Reservation, worker: &mut Worker) -> Result<()> {
        let spec = &self.graph.tasks()[task];
        let started = Instant::now();
        self.control.emit(&Event::TaskStarted {
            worker: worker.id,
            task,
            stage: spec.op.stage(),
            reserved: budget.bytes(),
            scratch: worker.scratch.bytes(),
            at: started,
        });
        let scratch = &mut worker.scratch;
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
        // Outputs stored so far belong to no task until `finish`: freed if a later one fails.
        let mut stored = Temporaries { manager: self.manager, ids: Vec::with_capacity(outputs.len()) };
        for out in outputs {
            stored.ids.push(self.manager.insert(&mut budget, out.data, out.rows, out.cols)?);
        }
        drop(budget);
        let done = self.finish(task, std::mem::take(&mut stored.ids));
        self.control.emit(&Event::TaskFinished {
            worker: worker.id,
            task,
            stage: spec.op.stage(),
            started,
            finished: Instant::now(),
            done,
            total: self.local_total,
        });
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
        if let Some(place) = self.placement.as_ref().filter(|p| !p.runs_here(key.task.0)) {
            return Err(Error::Cluster {
                rank: place.me,
                message: format!(
                    "a lost spill could not be recomputed: it needs a block rank {} sent, which is no longer here (a spill file was lost; check the spill directory's disk)",
                    place.owner(key.task.0)
                ),
                bug: false,
            });
        }
        let spec = &self.graph.tasks()[key.task.0];
        let mut pins = Vec::with_capacity(spec.inputs.len());
        // Recomputed inputs no task holds: removed when this returns, on errors too.
        let mut temporaries = Temporaries { manager: self.manager, ids: Vec::new() };
        for &input in &spec.inputs {
            let held = self.lock().blocks[input.task.0][input.slot];
            let pinned = match held {
                Some(_) => self.pin_input(input, budget, scratch)?,
                None => {
                    let fresh = self.recompute(input, budget, scratch, depth + 1)?;
                    temporaries.ids.push(fresh);
                    self.manager.pin_with(fresh, budget)?
                }
            };
            pins.push(pinned);
        }
        let outputs = self.executor.execute(&spec.op, &pins, budget, scratch)?;
        drop(pins);
        drop(temporaries);
        let out = outputs.into_iter().nth(key.slot).ok_or_else(|| {
            Error::Bug(format!("recomputing {key:?}: {} has no output {}", spec.op.label(), key.slot))
        })?;
        Ok(self.manager.insert(budget, out.data, out.rows, out.cols)?)
    }

    /// Records a finished task: stores its outputs, frees inputs nobody else reads, releases
    /// dependents whose inputs are now all there. Returns the tasks done so far.
    fn finish(&self, task: usize, ids: Vec<BlockId>) -> usize {
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
        to_remove.extend(spec.inputs.iter().filter_map(|&key| st.read_done(key)));
        st.release(&self.dependents[task]);
        st.done += 1;
        let done = st.done;
        drop(st);
        self.changed.notify_all();
        for id in to_remove {
            // The block exists: it was produced by a finished task and not removed before.
            let _ = self.manager.remove(id);
        }
        done
    }
}

#[cfg(test)]
mod tests;
