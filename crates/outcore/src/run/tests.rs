//! Scheduler tests with a toy executor: a sum tree over numbered leaves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use outcore_storage::{Accounting, BufferConfig, BufferManager, Knob, Pinned, Reservation, Thresholds};

use std::time::Duration;

use super::RunControl;
use super::events::Event;
use super::scheduler::{RunStats, Scheduler};
use super::threads::WorkerThreads;
use crate::error::{Error, MemoryError, Result};
use crate::task::{Block, CancelToken, Executor, Key, Operation, Results, TaskGraph, WorkerScratch as Scratch};

/// A run on threads of its own, as an engine's first run.
fn run<E: Executor>(
    scheduler: Scheduler,
    manager: &BufferManager,
    graph: &TaskGraph<E::Op>,
    executor: &E,
    control: &RunControl,
) -> Result<(Results, RunStats)> {
    super::scheduler::run(scheduler, &WorkerThreads::default(), manager, graph, executor, control)
}

#[derive(Debug)]
enum Toy {
    Leaf(usize),
    Sum,
    Fail,
}

impl Operation for Toy {
    fn stage(&self) -> &'static str {
        match self {
            Self::Leaf(_) => "leaf",
            Self::Sum => "sum",
            Self::Fail => "fail",
        }
    }
    fn label(&self) -> String {
        format!("{self:?}")
    }
}

#[derive(Default)]
struct ToyExecutor {
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl Executor for ToyExecutor {
    type Op = Toy;
    fn execute(
        &self,
        op: &Toy,
        inputs: &[Pinned],
        _budget: &mut Reservation,
        _scratch: &mut Scratch,
    ) -> Result<Vec<Block>> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(2));
        self.running.fetch_sub(1, Ordering::SeqCst);
        match op {
            Toy::Leaf(i) => Ok(vec![Block { data: vec![*i as f64; 4], rows: 2, cols: 2 }]),
            Toy::Sum => {
                let mut data = vec![0.0; 4];
                for p in inputs {
                    data.iter_mut().zip(p.iter()).for_each(|(d, x)| *d += x);
                }
                Ok(vec![Block { data, rows: 2, cols: 2 }])
            }
            Toy::Fail => Err(Error::invalid(Knob::Input, "this task always fails")),
        }
    }
}

/// A pool of `limit` bytes of its own memory (what the test process holds does not count),
/// with only the hard limit: these tests look at admission, not at the thresholds.
fn manager(limit: u64) -> BufferManager {
    let thresholds = Thresholds { spill: None, pause: None, terminate: None, ..Thresholds::default() };
    BufferManager::new(BufferConfig::new(limit).with_thresholds(thresholds)).unwrap()
}

/// A control whose sink calls `on_finished(done)` after every task.
fn on_finished(f: impl Fn(usize) + Send + Sync + 'static) -> RunControl {
    RunControl::new().memory_interval(None).events(move |e: &Event| {
        if let Event::TaskFinished { done, .. } = e {
            f(*done);
        }
    })
}

/// Leaves 0..n summed in groups of 4, then all sums summed; each task declares `ws` bytes.
fn sum_tree(n: usize, ws: u64) -> (TaskGraph<Toy>, Key) {
    let mut g = TaskGraph::new();
    let mut sums = Vec::new();
    for group in (0..n).collect::<Vec<_>>().chunks(4) {
        let leaves: Vec<_> = group.iter().map(|&i| g.add(Toy::Leaf(i), vec![], 1, ws).unwrap().out(0)).collect();
        sums.push(g.add(Toy::Sum, leaves, 1, ws).unwrap().out(0));
    }
    let root = g.add(Toy::Sum, sums, 1, ws).unwrap().out(0);
    g.keep(root);
    (g, root)
}

#[test]
fn serial_and_threads_compute_the_same_sum_and_free_intermediates() {
    for scheduler in [Scheduler::Serial, Scheduler::Threads { workers: 1 }, Scheduler::Threads { workers: 4 }] {
        let m = manager(1 << 20);
        let (g, root) = sum_tree(21, 1024);
        let done = Arc::new(AtomicUsize::new(0));
        let seen = done.clone();
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        let control = RunControl::new().memory_interval(None).events(move |e: &Event| {
            if let Event::TaskFinished { done, total, .. } = e {
                seen.store(*done, Ordering::SeqCst);
                assert_eq!(*total, 28);
            }
            log.lock().unwrap().push(e.clone());
        });
        let (results, stats) = run(scheduler, &m, &g, &ToyExecutor::default(), &control).unwrap();
        assert_eq!(results.values(root).unwrap(), vec![210.0; 4], "{scheduler:?}");
        assert_eq!((stats.tasks, done.load(Ordering::SeqCst)), (28, 28));
        assert_eq!(m.report().managed_accounted, 0, "kept results are copied out; nothing stays in the pool");
        drop(results);
        // One stream: the run's start and end around a start and a finish for every task.
        let events = events.lock().unwrap();
        assert!(matches!(events.first(), Some(Event::RunStarted { tasks: 28, .. })), "{scheduler:?}");
        assert!(matches!(events.last(), Some(Event::RunFinished { done: 28, complete: true, .. })));
        let started = events.iter().filter(|e| matches!(e, Event::TaskStarted { .. })).count();
        let finished = events.iter().filter(|e| matches!(e, Event::TaskFinished { .. })).count();
        assert_eq!((started, finished), (28, 28));
    }
}

#[test]
fn memory_admission_limits_concurrency() {
    // Each task declares 600 KiB under a 1 MiB limit: never two at once, whatever the workers.
    let m = manager(1 << 20);
    let (g, root) = sum_tree(12, 600 << 10);
    let exec = ToyExecutor::default();
    let (results, stats) = run(Scheduler::Threads { workers: 4 }, &m, &g, &exec, &RunControl::default()).unwrap();
    assert_eq!(results.values(root).unwrap(), vec![66.0; 4]);
    assert_eq!(exec.max_running.load(Ordering::SeqCst), 1);
    assert!(stats.waits_for_memory > 0);
    // With room for all, they do overlap.
    let exec = ToyExecutor::default();
    let (g, _) = sum_tree(12, 1024);
    run(Scheduler::Threads { workers: 4 }, &manager(1 << 20), &g, &exec, &RunControl::default()).unwrap();
    assert!(exec.max_running.load(Ordering::SeqCst) > 1);
}

#[test]
fn a_task_larger_than_the_limit_fails_instead_of_waiting() {
    let m = manager(1 << 20);
    let (g, _) = sum_tree(4, 2 << 20);
    let err =
        run(Scheduler::Threads { workers: 2 }, &m, &g, &ToyExecutor::default(), &RunControl::default()).unwrap_err();
    assert!(matches!(err, Error::Memory(MemoryError::Exhausted(_))), "{err}");
}

#[test]
fn the_first_error_stops_the_run_and_frees_everything() {
    for scheduler in [Scheduler::Serial, Scheduler::Threads { workers: 3 }] {
        let m = manager(1 << 20);
        let mut g = TaskGraph::new();
        let leaves: Vec<_> = (0..6).map(|i| g.add(Toy::Leaf(i), vec![], 1, 64).unwrap().out(0)).collect();
        let bad = g.add(Toy::Fail, vec![leaves[0]], 1, 64).unwrap();
        let root = g.add(Toy::Sum, [leaves.clone(), vec![bad.out(0)]].concat(), 1, 64).unwrap();
        g.keep(root.out(0));
        let err = run(scheduler, &m, &g, &ToyExecutor::default(), &RunControl::default()).unwrap_err();
        assert!(err.to_string().contains("always fails"), "{err}");
        assert_eq!(m.report().managed_accounted, 0, "{scheduler:?} left blocks behind");
    }
}

#[test]
fn cancelling_stops_at_a_task_boundary() {
    let m = manager(1 << 20);
    let (g, _) = sum_tree(40, 64);
    let cancel = CancelToken::new();
    let token = cancel.clone();
    let control = on_finished(move |done| {
        if done == 5 {
            token.cancel();
        }
    })
    .cancel_token(cancel);
    let err = run(Scheduler::Threads { workers: 2 }, &m, &g, &ToyExecutor::default(), &control).unwrap_err();
    assert!(matches!(err, Error::Interrupted));
    assert_eq!(m.report().managed_accounted, 0);
    // The cancel belonged to that run: the next one on the same pool runs to the end.
    run(Scheduler::Threads { workers: 2 }, &m, &g, &ToyExecutor::default(), &RunControl::default()).unwrap();
}

#[test]
fn scheduler_names_and_worker_counts_are_checked() {
    assert_eq!(Scheduler::from_name("threads", 2).unwrap(), Scheduler::Threads { workers: 2 });
    assert!(Scheduler::from_name("threads", 0).unwrap_err().to_string().contains("0 workers"));
    assert!(Scheduler::from_name("processes", 2).unwrap_err().to_string().contains("serial, threads"));
}

/// Leaf 0 holds memory above the pause threshold while it runs (the RSS source is set high when
/// it starts and low when it ends); `Sum` tasks record when they start.
struct Hog {
    rss: std::sync::Arc<std::sync::atomic::AtomicU64>,
    released: Mutex<Option<std::time::Instant>>,
    starts: Mutex<Vec<std::time::Instant>>,
}

impl Executor for Hog {
    type Op = Toy;
    fn execute(
        &self,
        op: &Toy,
        _inputs: &[Pinned],
        _budget: &mut Reservation,
        _scratch: &mut Scratch,
    ) -> Result<Vec<Block>> {
        match op {
            Toy::Leaf(0) => {
                self.rss.store(85 << 20, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(150));
                *self.released.lock().unwrap() = Some(std::time::Instant::now());
                self.rss.store(10 << 20, Ordering::SeqCst);
            }
            // The gate waits until the hog holds its memory, so the tasks it releases find the
            // process above the pause threshold.
            Toy::Leaf(_) => {
                while self.rss.load(Ordering::SeqCst) < 85 << 20 && self.released.lock().unwrap().is_none() {
                    std::thread::yield_now();
                }
            }
            _ => self.starts.lock().unwrap().push(std::time::Instant::now()),
        }
        Ok(vec![Block { data: vec![1.0], rows: 1, cols: 1 }])
    }
}

#[test]
fn no_task_starts_above_the_pause_threshold_and_work_resumes_below_it() {
    use outcore_storage::RssSource;
    let (rss, handle) = RssSource::manual(10 << 20);
    let config = BufferConfig::new(100 << 20).with_rss(rss).with_accounting(Accounting::Process);
    let m = BufferManager::new(config).unwrap();
    let mut g = TaskGraph::new();
    let hog = g.add(Toy::Leaf(0), vec![], 1, 64).unwrap();
    let gate = g.add(Toy::Leaf(1), vec![], 1, 64).unwrap();
    let waiting: Vec<_> = (0..6).map(|_| g.add(Toy::Sum, vec![gate.out(0)], 1, 64).unwrap().out(0)).collect();
    let last = g.add(Toy::Sum, [vec![hog.out(0)], waiting].concat(), 1, 64).unwrap();
    g.keep(last.out(0));
    let exec = Hog { rss: handle, released: Mutex::new(None), starts: Mutex::new(Vec::new()) };
    let (_, stats) = run(Scheduler::Threads { workers: 2 }, &m, &g, &exec, &RunControl::default()).unwrap();
    let released = exec.released.lock().unwrap().expect("the hog ran");
    let starts = exec.starts.lock().unwrap();
    assert_eq!(starts.len(), 7);
    assert!(starts.iter().all(|&t| t >= released), "a task started while the process was above the pause threshold");
    assert!(stats.waits_for_memory >= 1, "the tasks released by the gate had to wait");
}

#[test]
fn crossing_the_terminate_threshold_stops_the_run_with_the_memory_report() {
    use outcore_storage::{RssSource, StorageError};
    let (rss, handle) = RssSource::manual(10 << 20);
    let config = BufferConfig::new(100 << 20).with_rss(rss).with_accounting(Accounting::Process);
    let m = BufferManager::new(config).unwrap();
    let (g, _) = sum_tree(40, 1024);
    let control = on_finished(move |done| {
        if done == 5 {
            handle.store(97 << 20, Ordering::SeqCst);
        }
    });
    let err = run(Scheduler::Threads { workers: 2 }, &m, &g, &ToyExecutor::default(), &control).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Memory(MemoryError::Terminated(StorageError::MemoryTerminated { .. }))), "{text}");
    assert!(text.contains("terminate threshold") && text.contains("unmanaged recent"), "{text}");
    assert_eq!(m.report().managed_accounted, 0, "a terminated run frees its blocks");
}

/// Each task takes a large buffer from its worker's scratch.
struct ScratchHungry;

impl Executor for ScratchHungry {
    type Op = Toy;
    fn execute(
        &self,
        _op: &Toy,
        _inputs: &[Pinned],
        budget: &mut Reservation,
        scratch: &mut Scratch,
    ) -> Result<Vec<Block>> {
        let [buf] = scratch.buffers([75 * 1024], budget)?; // 600 KiB
        buf[0] = 1.0;
        std::thread::sleep(Duration::from_millis(2));
        Ok(vec![Block { data: vec![buf[0]], rows: 1, cols: 1 }])
    }
}

#[test]
fn idle_workers_release_their_scratch_so_others_can_run() {
    // Only one 600 KiB scratch fits under 1 MiB: two workers must take turns, never give up.
    let m = manager(1 << 20);
    let mut g = TaskGraph::new();
    let leaves: Vec<_> =
        (0..12).map(|i| g.add_reusing(Toy::Leaf(i), vec![], 1, 600 << 10, 600 << 10).unwrap().out(0)).collect();
    // The sum takes the same scratch buffer, and says so (the executor uses it in every task).
    let sum = g.add_reusing(Toy::Sum, leaves, 1, 600 << 10, 600 << 10).unwrap();
    g.keep(sum.out(0));
    for _ in 0..5 {
        let (_, stats) =
            run(Scheduler::Threads { workers: 2 }, &m, &g, &ScratchHungry, &RunControl::default()).unwrap();
        assert_eq!(stats.tasks, 13);
        assert_eq!(m.report().managed_accounted, 0);
    }
}

/// Panics in its third task.
struct Panicky(AtomicUsize);

impl Executor for Panicky {
    type Op = Toy;
    fn execute(
        &self,
        op: &Toy,
        inputs: &[Pinned],
        budget: &mut Reservation,
        scratch: &mut Scratch,
    ) -> Result<Vec<Block>> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 2 {
            panic!("injected panic in a kernel");
        }
        ToyExecutor::default().execute(op, inputs, budget, scratch)
    }
}

#[test]
fn a_panicking_kernel_ends_the_run_with_a_typed_error_under_every_scheduler() {
    for scheduler in [Scheduler::Serial, Scheduler::Threads { workers: 3 }] {
        let m = manager(1 << 20);
        let (g, _) = sum_tree(40, 1024);
        let start = std::time::Instant::now();
        let err = run(scheduler, &m, &g, &Panicky(AtomicUsize::new(0)), &RunControl::default()).unwrap_err();
        assert!(matches!(&err, Error::Bug(text) if text.contains("injected panic")), "{scheduler:?}: {err}");
        assert!(start.elapsed() < Duration::from_secs(10), "{scheduler:?}: the run hung after the panic");
        assert_eq!(m.report().managed_accounted, 0, "{scheduler:?}: a panicked run kept memory");
    }
}

/// Starts a run of its own, on the pool it was given, from inside its task.
struct Nested(BufferManager);

impl Executor for Nested {
    type Op = Toy;
    fn execute(
        &self,
        _op: &Toy,
        _inputs: &[Pinned],
        _budget: &mut Reservation,
        _scratch: &mut Scratch,
    ) -> Result<Vec<Block>> {
        let (g, _) = sum_tree(4, 1024);
        run(Scheduler::Serial, &self.0, &g, &ToyExecutor::default(), &RunControl::default())?;
        Ok(vec![Block { data: vec![1.0], rows: 1, cols: 1 }])
    }
}

#[test]
fn a_run_started_inside_a_task_on_the_same_pool_is_refused_not_deadlocked() {
    let m = manager(1 << 20);
    let (g, _) = sum_tree(4, 1024);
    let err = run(Scheduler::Threads { workers: 2 }, &m, &g, &Nested(m.clone()), &RunControl::default()).unwrap_err();
    assert!(err.to_string().contains("same memory pool"), "{err}");
    // On a pool of its own, the inner run is fine.
    let (g, _) = sum_tree(4, 1024);
    run(Scheduler::Threads { workers: 2 }, &m, &g, &Nested(manager(1 << 20)), &RunControl::default()).unwrap();
    assert_eq!(m.report().managed_accounted, 0);
}
