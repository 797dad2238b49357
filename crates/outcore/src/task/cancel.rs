//! Cancellation: a token a caller holds, and what a kernel asks between blocks (is the run
//! whose task this thread runs cancelled?).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// Stops the runs it is given to at their next task boundary; they fail with
/// [`Error::Interrupted`](crate::Error::Interrupted). Clones share one flag: keep a clone to
/// cancel from another thread or a signal handler.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every run holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

thread_local! {
    /// The pools whose tasks this thread is running now, with the worker running them and
    /// their runs' cancel tokens (innermost last).
    static RUNNING_TASK_OF: std::cell::RefCell<Vec<(usize, usize, Option<CancelToken>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks the current thread as running a task of a pool, as a worker of its run, while it
/// lives (from the task's admission to its end).
pub(crate) struct InTask;

impl InTask {
    pub(crate) fn enter(pool: usize, worker: usize, cancel: Option<CancelToken>) -> Self {
        RUNNING_TASK_OF.with(|p| p.borrow_mut().push((pool, worker, cancel)));
        Self
    }
}

/// Fails with [`Error::Interrupted`] if the run whose task this thread is running was
/// cancelled: long kernels call it between blocks, so a cancel is honoured within a block's
/// time rather than a task's.
pub(crate) fn check_cancelled() -> Result<()> {
    let cancelled = RUNNING_TASK_OF
        .with(|p| p.borrow().last().and_then(|(_, _, c)| c.as_ref()).is_some_and(CancelToken::is_cancelled));
    if cancelled { Err(Error::Interrupted) } else { Ok(()) }
}

impl Drop for InTask {
    fn drop(&mut self) {
        RUNNING_TASK_OF.with(|p| p.borrow_mut().pop());
    }
}

/// Whether this thread is running a task of the pool numbered `pool` (a run started from
/// inside one could wait for memory that task holds, and that task for it).
pub(crate) fn in_task_of(pool: usize) -> bool {
    worker_of(pool).is_some()
}

/// The worker this thread is, in the innermost run of the pool numbered `pool` it runs a task
/// of: what names the thread that spilled or reloaded a block.
pub(crate) fn worker_of(pool: usize) -> Option<usize> {
    RUNNING_TASK_OF.with(|p| p.borrow().iter().rev().find(|(running, ..)| *running == pool).map(|&(_, w, _)| w))
}
