//! The pool's shared core: the state behind one mutex, the condition variable and epochs by
//! which waiters learn that memory may have come free, subscribers to its events, and what it
//! reads of the process (RSS) for the thresholds and reports.
//!
//! Disk and store I/O (spilling, reloading, reading clean chunks) happens outside the lock,
//! with the block marked `Spilling` or `Loading` meanwhile so other threads wait on the
//! condition variable instead of racing. The pool's operations are written in the files above
//! this one, each using only those below it: eviction (`evict`), reservations and admission
//! (`admit`), pins, loads and removal (`load`).
//!
//! Guards ([`Pinned`](super::Pinned), [`Reservation`](super::Reservation)) lock the mutex when
//! dropped, so no guard may be dropped while the lock is held: code moves bytes out of guards
//! by hand under the lock and lets the guards drop afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::charges::ALL_MANAGED;
use super::config::BufferConfig;
use super::spill::SpillDir;
use super::table::State;
use crate::error::StorageError;
use crate::memory::{Accounting, MemoryReport, UnmanagedHistory};

/// Under own accounting, the most process memory outside the pool a report attributes to
/// outcore itself (thread stacks, allocator slack, small buffers: see ARCHITECTURE.md's
/// invariants); growth beyond it is the host's.
pub const OWN_UNMANAGED_ALLOWANCE: u64 = 16 << 20;

/// A moment in a pool's life: it changes whenever memory may have come free. Returned by
/// [`BufferManager::admit`](super::BufferManager::admit) with
/// [`Admission::Wait`](super::Admission::Wait) and handed to
/// [`BufferManager::wait_for_release`](super::BufferManager::wait_for_release), so a release
/// between the two is never missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolEpoch(u64);

/// Something that happened in a pool, as its subscribers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolEvent {
    /// A dirty block was written to a spill file.
    Spilled {
        /// Bytes of the block in RAM.
        bytes: u64,
        /// Bytes of its spill file.
        disk_bytes: u64,
        /// How long writing it took (it ended as the event was emitted).
        took: Duration,
    },
    /// A block was read back from its spill file.
    Reloaded {
        /// Bytes of the block in RAM.
        bytes: u64,
        /// How long reading it took (it ended as the event was emitted).
        took: Duration,
    },
}

/// A subscriber to a pool's events.
pub(crate) type Listener = Arc<dyn Fn(&PoolEvent) + Send + Sync>;

/// State shared by the manager, its pins and its reservations.
pub(crate) struct Shared {
    pub(crate) config: BufferConfig,
    state: Mutex<State>,
    changed: Condvar,
    /// Bumped whenever memory may have come free (see [`PoolEpoch`]).
    epoch: AtomicU64,
    pub(crate) spill: SpillDir,
    /// Process RSS when the pool was made: the host's memory, under own accounting.
    baseline_rss: u64,
    listeners: Mutex<Vec<(u64, Listener)>>,
    next_listener: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("config", &self.config).field("state", &self.state).finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let st = self.lock();
        ALL_MANAGED.fetch_sub(st.managed(), Ordering::Relaxed);
    }
}

impl Shared {
    pub(crate) fn new(config: BufferConfig, spill: SpillDir) -> Self {
        let history = UnmanagedHistory::new(config.unmanaged_window);
        let baseline_rss = config.rss.current();
        Self {
            config,
            state: Mutex::new(State::new(history)),
            changed: Condvar::new(),
            epoch: AtomicU64::new(0),
            spill,
            baseline_rss,
            listeners: Mutex::new(Vec::new()),
            next_listener: AtomicU64::new(0),
        }
    }

    /// Calls `listener` with every event of the pool until the returned id is unsubscribed.
    pub(crate) fn subscribe(&self, listener: Listener) -> u64 {
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).push((id, listener));
        id
    }

    pub(crate) fn unsubscribe(&self, id: u64) {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).retain(|(i, _)| *i != id);
    }

    /// Tells every subscriber; called with no lock held.
    pub(crate) fn emit(&self, event: PoolEvent) {
        // Held while calling, so a listener never runs after its unsubscribe returned.
        let listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        for (_, listener) in listeners.iter() {
            listener(&event);
        }
    }

    /// Locks the state. A panic elsewhere while holding the lock leaves the accounting as it
    /// was at that moment; carrying on is better than cascading the panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|p| p.into_inner())
    }

    fn wait_timeout<'a>(&self, guard: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        self.changed.wait_timeout(guard, timeout).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0)
    }

    /// Wakes every waiter: memory may have come free. Takes the lock for an instant so a
    /// waiter that has just checked the epoch is already waiting when the wake-up comes.
    pub(crate) fn notify(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        drop(self.lock());
        self.changed.notify_all();
    }

    /// The current epoch.
    pub(crate) fn epoch(&self) -> PoolEpoch {
        PoolEpoch(self.epoch.load(Ordering::Relaxed))
    }

    /// Waits until memory may have come free since `since`, or `timeout` passes.
    pub(crate) fn wait_for_release(&self, since: PoolEpoch, timeout: Duration) {
        let st = self.lock();
        if self.epoch.load(Ordering::Relaxed) != since.0 {
            return;
        }
        drop(self.wait_timeout(st, timeout));
    }

    /// The error of a reservation of `requested` bytes that cannot be met.
    pub(crate) fn exhausted(&self, requested: u64, st: &State) -> StorageError {
        // What cannot be given back: managed bytes in use, and unmanaged memory under the cap.
        let unmanaged = self.config.memory_limit.saturating_sub(self.managed_cap(st));
        StorageError::ResourcesExhausted {
            requested,
            limit: self.config.memory_limit,
            in_use: st.managed() + unmanaged,
        }
    }

    /// The worker's memory the spill, pause and terminate thresholds compare: the pool's own
    /// bytes, or the process's RSS under [`Accounting::Process`].
    pub(crate) fn worker_memory(&self) -> u64 {
        match self.config.accounting {
            Accounting::Own => self.lock().managed(),
            Accounting::Process => self.sample_rss(),
        }
    }

    /// The current RSS (cheap: no peak), recorded into the sampled peak.
    fn sample_rss(&self) -> u64 {
        let rss = self.config.rss.current();
        let mut st = self.lock();
        st.peak_rss_sampled = st.peak_rss_sampled.max(rss);
        st.last_rss = rss;
        rss
    }

    /// The most managed memory may grow to: the limit, and with the terminate threshold on, no
    /// more than keeps the worker under it (under process accounting, leaving room for the
    /// unmanaged memory last measured), so reservations cannot push the worker over it. One
    /// accounting: the thresholds do not fight.
    pub(crate) fn managed_cap(&self, st: &State) -> u64 {
        let limit = self.config.memory_limit;
        match (self.config.fraction(self.config.thresholds.terminate), self.config.accounting) {
            (Some(terminate), Accounting::Process) => {
                limit.min(terminate.saturating_sub(st.last_rss.saturating_sub(st.managed())))
            }
            (Some(terminate), Accounting::Own) => limit.min(terminate),
            (None, _) => limit,
        }
    }

    /// A snapshot of memory in Dask's categories.
    pub(crate) fn report(&self) -> MemoryReport {
        let memory = self.config.rss.sample();
        let mut st = self.lock();
        st.peak_rss_sampled = st.peak_rss_sampled.max(memory.rss);
        let managed_accounted = st.managed();
        let managed = managed_accounted.min(memory.rss);
        let host = match self.config.accounting {
            Accounting::Process => 0,
            Accounting::Own => {
                // Outside the pool: the host's memory when the pool was made and what other
                // pools hold now, and what grew since, of which outcore's own part (stacks,
                // allocator slack) is at most OWN_UNMANAGED_ALLOWANCE; the rest is the host's.
                let outside = memory.rss - managed;
                let others = ALL_MANAGED.load(Ordering::Relaxed).saturating_sub(managed_accounted);
                let floor = (self.baseline_rss + others).min(outside);
                outside - (outside - floor).min(OWN_UNMANAGED_ALLOWANCE)
            }
        };
        let unmanaged = memory.rss - managed - host;
        let unmanaged_old = st.history.record(Instant::now(), unmanaged).min(unmanaged);
        let c = &st.charges;
        MemoryReport {
            limit: self.config.memory_limit,
            thresholds: self.config.thresholds,
            accounting: self.config.accounting,
            process: memory.rss,
            host,
            managed,
            unmanaged,
            unmanaged_old,
            unmanaged_recent: unmanaged - unmanaged_old,
            spilled: c.spilled,
            managed_accounted,
            reserved: c.reserved,
            resident_chunks: c.resident_chunks,
            spilled_chunks: c.spilled_chunks,
            peak_process: memory.peak.max(st.peak_rss_sampled),
            peak_managed: c.peak_managed,
            peak_spilled: c.peak_spilled,
            spill_count: c.spill_count,
            reload_count: c.reload_count,
        }
    }
}
