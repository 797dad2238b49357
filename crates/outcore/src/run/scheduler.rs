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

use std::collections::HashMap;
use std::time::Instant;

use outcore_storage::{BufferManager, Knob};

use super::control::RunControl;
use super::events::Event;
use super::observers::Observers;
use super::state::Run;
use super::threads::WorkerThreads;
use crate::cluster::placement::{Placement, fingerprint};
use crate::cluster::{Transport, check_same, rank};
use crate::error::{Error, Result};
use crate::task::{Block, Executor, Key, Results, TaskGraph, in_task_of};

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
            return Err(Error::invalid(Knob::Workers, "0 workers cannot run anything; give 1 or more"));
        }
        match name {
            "serial" => Ok(Self::Serial),
            "threads" => Ok(Self::Threads { workers }),
            _ => Err(Error::invalid(Knob::Scheduler, format!("{name:?} is not one of serial, threads"))),
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

/// What a run observed besides its results.
#[derive(Clone, Copy, Debug, Default)]
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

/// Runs `graph` with `executor` under `scheduler`, keeping the graph's kept outputs as results.
///
/// For its duration the run reserves the graph's own bookkeeping
/// ([`TaskGraph::footprint`]), subscribes `control`'s sink to the pool's events and samples
/// memory into it.
pub(crate) fn run<E: Executor>(
    scheduler: Scheduler,
    threads: &WorkerThreads,
    manager: &BufferManager,
    graph: &TaskGraph<E::Op>,
    executor: &E,
    control: &RunControl,
) -> Result<(Results, RunStats)> {
    let start = Instant::now();
    let control = &control.guarded();
    let placement = control.cluster.as_ref().map(|t| Placement::new(graph, t.ranks(), t.rank()));
    let workers = scheduler.workers().min(graph.max_concurrency()).max(1);
    let setup = (|| {
        if in_task_of(manager.pool_id()) {
            // Its tasks could wait for memory the calling task holds, and that task for them.
            return Err(Error::invalid(
                Knob::MemoryPool,
                "a run was started from inside a task of another run on the same memory pool, so each could wait for the other's memory; give the inner run an engine with a pool of its own",
            ));
        }
        let bookkeeping = manager.reserve(graph.footprint())?;
        let pool = match (&control.cluster, scheduler) {
            (None, Scheduler::Serial) => None,
            _ => Some(threads.lend(workers)?),
        };
        Ok((bookkeeping, pool))
    })();
    // Ranks go on together or fail together, before any work: each says whether its setup
    // succeeded and what it is about to run.
    if let Some(transport) = &control.cluster {
        let digest = fingerprint(graph, &executor.identity());
        check_same(&**transport, digest, setup.as_ref().map(drop))?;
    }
    let (bookkeeping, pool) = setup?;
    let run = Run::new(graph, executor, manager, control, placement);
    if control.observed() {
        let stages = graph.stage_graph(|t| run.runs_here(t.0)).into();
        control.emit(&Event::RunStarted { tasks: run.local_total, workers, stages, at: Instant::now() });
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
    let stats = run.end(start);
    drop(bookkeeping);
    drop(observers);
    let complete = kept.is_ok() && stats.tasks == run.local_total;
    control.emit(&Event::RunFinished { done: stats.tasks, complete, at: Instant::now() });
    if let Some(e) = control.sink_failure() {
        return Err(e);
    }
    let kept = kept?;
    if stats.tasks < run.local_total {
        return Err(Error::Bug(format!("run ended after {} of {} tasks", stats.tasks, run.local_total)));
    }
    Ok((Results::new(kept), stats))
}

impl<E: Executor> Run<'_, E> {
    /// Runs this rank's share ([`crate::cluster`]): the workers run while this thread walks
    /// the run's messages, then every rank's outcome goes to rank 0, which collects the kept
    /// outputs and sends them (or the first error) to every rank.
    fn as_rank(
        &self,
        transport: &dyn Transport,
        pool: &rayon::ThreadPool,
        workers: usize,
    ) -> Result<HashMap<Key, Block>> {
        let placement = self.placement.as_ref().ok_or_else(|| Error::Bug("a rank's run without a placement".into()))?;
        pool.in_place_scope(|s| {
            for me in 0..workers {
                s.spawn(move |_| self.worker(me));
            }
            rank::walk(transport, placement, self);
        });
        rank::conclude(transport, placement, self)
    }

    /// Removes the blocks the run still holds and says what it observed.
    fn end(&self, start: Instant) -> RunStats {
        let mut st = self.lock();
        let stats = RunStats {
            tasks: st.done,
            waits_for_memory: st.waits_for_memory,
            recomputed: st.recomputed,
            wall_seconds: start.elapsed().as_secs_f64(),
        };
        let blocks = std::mem::take(&mut st.blocks);
        drop(st);
        for id in blocks.into_iter().flatten().flatten() {
            let _ = self.manager.remove(id);
        }
        stats
    }
}
