//! The worker loop: take the lowest-numbered ready task, wait for memory to admit its working
//! set (giving up the worker's own scratch first), pin its inputs, run the kernel, store its
//! outputs, free the inputs no later task reads.

use std::cmp::Reverse;
use std::time::Instant;

use outcore_storage::{Admission, BlockId, Reservation};

use super::events::Event;
use super::state::{Run, Temporaries, WAIT_SLICE};
use crate::error::{Error, Result, panic_message};
use crate::task::{Executor, InTask, Operation, WorkerScratch};

/// A worker of one run: its identity and the buffers it keeps between tasks. Serial runs have
/// one, on the calling thread; threaded runs one per pool thread. What it does (idle, waiting,
/// running) is told by its events: [`Event::Waiting`], [`Event::Resumed`],
/// [`Event::TaskStarted`], [`Event::TaskFinished`].
struct Worker {
    id: usize,
    scratch: WorkerScratch,
}

impl<E: Executor> Run<'_, E> {
    /// Takes tasks until the graph is done or the run failed. A panic in a kernel ends the run
    /// with a typed error instead of leaving the other workers waiting for it.
    pub(super) fn worker(&self, id: usize) {
        let scratch = match WorkerScratch::new(self.manager) {
            Ok(s) => s,
            Err(e) => return self.fail(e),
        };
        let mut worker = Worker { id, scratch };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work(&mut worker)));
        if let Err(panic) = outcome {
            self.fail(Error::Bug(format!("worker {id} panicked: {}", panic_message(&*panic))));
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
                if let Some(e) = self.control.sink_failure() {
                    st.failed.get_or_insert(e);
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
            // From admission on: a spill to make room for the task is this worker's.
            let in_task = InTask::enter(self.manager.pool_id(), worker.id, self.control.cancel.clone());
            let outcome = self.admit(task, worker).and_then(|budget| match budget {
                Some(budget) => self.execute(task, budget, worker),
                None => Ok(()),
            });
            drop(in_task);
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
            work: spec.work,
        });
        Ok(())
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
