//! Worker threads kept between an engine's runs.

use std::ops::Deref;
use std::sync::{Mutex, PoisonError};

use rayon::ThreadPool;

use crate::error::{Error, Result};

/// Idle thread pools kept at most: two runs at once each find theirs without building one.
const MAX_IDLE: usize = 2;

/// An engine's worker threads between its runs: a run borrows a pool of the size it needs
/// (built when none is idle) and gives it back, so a host running many jobs starts no new
/// threads, and the allocator arenas and buffers those threads hold are reused, not grown.
/// Runs at once each have a pool of their own: no run waits for another's threads.
#[derive(Debug, Default)]
pub(crate) struct WorkerThreads {
    idle: Mutex<Vec<ThreadPool>>,
}

impl WorkerThreads {
    /// A pool of `workers` threads for one run.
    pub(crate) fn lend(&self, workers: usize) -> Result<Lent<'_>> {
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.iter().position(|p| p.current_num_threads() == workers).map(|i| idle.swap_remove(i))
        };
        let pool = match found {
            Some(pool) => pool,
            None => rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .thread_name(|i| format!("outcore-worker-{i}"))
                .build()
                .map_err(|e| Error::Bug(format!("cannot start {workers} worker threads: {e}")))?,
        };
        Ok(Lent { threads: self, pool: Some(pool) })
    }
}

/// A pool lent to one run, given back when dropped.
pub(crate) struct Lent<'a> {
    threads: &'a WorkerThreads,
    pool: Option<ThreadPool>,
}

impl Deref for Lent<'_> {
    type Target = ThreadPool;

    fn deref(&self) -> &ThreadPool {
        // Some until dropped.
        self.pool.as_ref().unwrap_or_else(|| unreachable!("a lent pool is taken only when dropped"))
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut idle = self.threads.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE
            && let Some(pool) = self.pool.take()
        {
            idle.push(pool);
        }
    }
}
