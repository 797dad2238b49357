//! The buffer pool's shared state: blocks, accounting, eviction, loading.
//!
//! One mutex guards [`State`]; disk and store I/O (spilling, reloading, reading clean chunks)
//! happens outside it, with the block marked `Spilling` or `Loading` meanwhile so other threads
//! wait on the condition variable instead of racing.
//!
//! Guards ([`Pinned`], [`Reservation`]) lock the mutex when dropped, so no guard may be dropped
//! while the lock is held: code here moves bytes out of guards by hand under the lock and lets
//! the guards drop afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::config::{Accounting, BufferConfig};
use super::guard::{Kind, Pinned, Reservation};
use super::lru::Lru;
use super::spill::{SpillDir, SpillFile, spill_io_scratch};
use super::{Admission, BlockId, PoolEpoch, PoolEvent};
use crate::error::{StorageError, StorageResult};
use crate::grid::ChunkIndex;
use crate::memory::{MemoryReport, UnmanagedHistory};
use crate::store::ChunkStore;

/// Where a block's contents can be recovered from when it is not in RAM.
#[derive(Clone, Debug)]
pub(crate) enum Origin {
    /// A chunk of a store: dropping it from RAM loses nothing.
    Clean { store: Arc<dyn ChunkStore>, index: ChunkIndex },
    /// Data that exists only here: leaving RAM means a spill file.
    Dirty,
}

#[derive(Debug)]
pub(crate) enum Residency {
    Resident(Arc<Vec<f64>>),
    /// Being read by some thread (from its store or spill file).
    Loading,
    /// Being written to a spill file by some thread; still in RAM until that finishes.
    Spilling(Arc<Vec<f64>>),
    Spilled(SpillFile),
    /// Clean and not in RAM.
    Unloaded,
}

/// A dirty block chosen for spilling: its id, generation at the time, and its values.
type SpillJob = (BlockId, u64, Arc<Vec<f64>>);

/// A subscriber to a pool's events.
pub(crate) type Listener = Arc<dyn Fn(&PoolEvent) + Send + Sync>;

/// Managed bytes of every pool in the process, so a pool's report can tell what other pools
/// (other engines in the same host) hold from the host's own memory. Only reports read it:
/// no decision depends on process-wide state.
static ALL_MANAGED: AtomicU64 = AtomicU64::new(0);

/// Under own accounting, the most process memory outside the pool a report attributes to
/// outcore itself (thread stacks, allocator slack, small buffers: see ARCHITECTURE.md's
/// invariants); growth beyond it is the host's.
pub const OWN_UNMANAGED_ALLOWANCE: u64 = 16 << 20;

#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) shape: (usize, usize),
    pub(crate) bytes: u64,
    pub(crate) origin: Origin,
    pub(crate) residency: Residency,
    pub(crate) pins: usize,
    /// Position in the LRU while resident and unpinned.
    pub(crate) lru_tick: Option<u64>,
    /// Bumped when a spill in flight is cancelled by a pin, so its result is discarded.
    pub(crate) generation: u64,
    /// Removal was asked while the block was busy; done when it becomes idle.
    pub(crate) remove_when_idle: bool,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) blocks: HashMap<BlockId, Block>,
    pub(crate) lru: Lru,
    next_id: u64,
    /// Bytes of blocks in RAM (resident or being spilled).
    pub(crate) resident: u64,
    /// Bytes held by reservations.
    pub(crate) reserved: u64,
    /// Bytes of spill files on disk.
    pub(crate) spilled: u64,
    pub(crate) spilled_chunks: usize,
    pub(crate) resident_chunks: usize,
    spills_in_flight: usize,
    pub(crate) peak_managed: u64,
    pub(crate) peak_spilled: u64,
    pub(crate) peak_rss_sampled: u64,
    /// The RSS read last (0 before the first read, or with the RSS thresholds off).
    last_rss: u64,
    pub(crate) spill_count: u64,
    pub(crate) reload_count: u64,
    history: UnmanagedHistory,
    /// Task admissions alive: working sets of running tasks, which will be released.
    admitted: usize,
    /// Bytes of cache reservations (workers' reusable scratch), released when idle.
    cache_held: u64,
}

impl State {
    pub(crate) fn managed(&self) -> u64 {
        self.resident + self.reserved
    }

    /// Whether memory held now will come free without anyone asking: running tasks finish,
    /// and workers give up their scratch when idle or waiting.
    fn releasable(&self) -> bool {
        self.admitted > 0 || self.cache_held > 0
    }

    fn add_reserved(&mut self, bytes: u64) {
        self.reserved += bytes;
        ALL_MANAGED.fetch_add(bytes, Ordering::Relaxed);
        self.note_peaks();
    }

    fn sub_reserved(&mut self, bytes: u64) {
        self.reserved -= bytes;
        ALL_MANAGED.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Bytes of a reservation of `kind` leave it (released, or moved into a block).
    pub(crate) fn leave(&mut self, kind: Kind, bytes: u64) {
        if kind == Kind::Cache {
            self.cache_held -= bytes;
        }
    }

    /// Bytes join a reservation of `kind`.
    pub(crate) fn join(&mut self, kind: Kind, bytes: u64) {
        if kind == Kind::Cache {
            self.cache_held += bytes;
        }
    }

    fn note_peaks(&mut self) {
        self.peak_managed = self.peak_managed.max(self.managed());
        self.peak_spilled = self.peak_spilled.max(self.spilled);
    }

    fn add_resident(&mut self, bytes: u64) {
        self.resident += bytes;
        self.resident_chunks += 1;
        ALL_MANAGED.fetch_add(bytes, Ordering::Relaxed);
        self.note_peaks();
    }

    fn sub_resident(&mut self, bytes: u64) {
        self.resident -= bytes;
        self.resident_chunks -= 1;
        ALL_MANAGED.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Takes blocks out of RAM, least recently used first, until `want` bytes are freed or
    /// nothing unpinned is left. Clean blocks are dropped here; dirty ones are marked
    /// `Spilling` and returned for the caller to write outside the lock.
    fn evict(&mut self, want: u64) -> (u64, Vec<SpillJob>) {
        let mut freed = 0;
        let mut to_spill = Vec::new();
        while freed < want {
            let Some(id) = self.lru.pop_oldest() else { break };
            let (bytes, job) = self.take_out(id);
            freed += bytes;
            to_spill.extend(job);
        }
        (freed, to_spill)
    }

    /// Takes one block that was just removed from the LRU out of RAM: a clean block is dropped
    /// here; a dirty one is marked `Spilling` and returned as a job for the caller to write
    /// outside the lock. Returns the bytes that leave RAM.
    fn take_out(&mut self, id: BlockId) -> (u64, Option<SpillJob>) {
        let Some(block) = self.blocks.get_mut(&id) else { return (0, None) };
        block.lru_tick = None;
        let Residency::Resident(data) = &block.residency else { return (0, None) };
        let data = data.clone();
        let bytes = block.bytes;
        match block.origin {
            Origin::Clean { .. } => {
                block.residency = Residency::Unloaded;
                self.sub_resident(bytes);
                (bytes, None)
            }
            Origin::Dirty => {
                block.residency = Residency::Spilling(data.clone());
                let job = (id, block.generation, data);
                self.spills_in_flight += 1;
                (bytes, Some(job))
            }
        }
    }

    /// Takes block `id` out of RAM if it is resident and unpinned.
    fn evict_block(&mut self, id: BlockId) -> (u64, Option<SpillJob>) {
        match self.blocks.get(&id).and_then(|b| b.lru_tick) {
            Some(tick) => {
                self.lru.remove(tick);
                self.take_out(id)
            }
            None => (0, None),
        }
    }

    /// Deletes a block that is idle (unpinned, not being loaded or spilled). Returns its spill
    /// file, if any, for the caller to drop outside the lock.
    fn remove_idle(&mut self, id: BlockId) -> Option<SpillFile> {
        let block = self.blocks.remove(&id)?;
        if let Some(tick) = block.lru_tick {
            self.lru.remove(tick);
        }
        match block.residency {
            Residency::Resident(_) | Residency::Spilling(_) => {
                self.sub_resident(block.bytes);
                None
            }
            Residency::Spilled(file) => {
                self.spilled -= file.disk_bytes();
                self.spilled_chunks -= 1;
                Some(file)
            }
            Residency::Loading | Residency::Unloaded => None,
        }
    }
}

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
    pub(crate) fn new(config: BufferConfig) -> Self {
        let spill = SpillDir::new(config.spill_parent.clone(), config.compress_spills, config.spill_faults);
        let history = UnmanagedHistory::new(config.unmanaged_window);
        let baseline_rss = config.rss.current();
        Self {
            config,
            state: Mutex::new(State {
                blocks: HashMap::new(),
                lru: Lru::default(),
                next_id: 0,
                resident: 0,
                reserved: 0,
                spilled: 0,
                spilled_chunks: 0,
                resident_chunks: 0,
                spills_in_flight: 0,
                peak_managed: 0,
                peak_spilled: 0,
                peak_rss_sampled: 0,
                last_rss: 0,
                spill_count: 0,
                reload_count: 0,
                history,
                admitted: 0,
                cache_held: 0,
            }),
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
    fn emit(&self, event: PoolEvent) {
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

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: std::time::Duration,
    ) -> MutexGuard<'a, State> {
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

    fn exhausted(&self, requested: u64, st: &State) -> StorageError {
        // What cannot be given back: managed bytes in use, and unmanaged memory under the cap.
        let unmanaged = self.config.memory_limit.saturating_sub(self.managed_cap(st));
        StorageError::ResourcesExhausted {
            requested,
            limit: self.config.memory_limit,
            in_use: st.managed() + unmanaged,
        }
    }

    /// Reserves `bytes` of `kind`, evicting least-recently-used unpinned blocks first so
    /// managed memory stays under the target threshold (or the limit when the target is off).
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64, kind: Kind) -> StorageResult<Reservation> {
        self.relieve_pressure()?;
        match self.reserve_managed(bytes, kind, false)? {
            Admission::Granted(r) => Ok(r),
            Admission::Wait(_) => Err(StorageError::Bug("a plain reservation was told to wait".into())),
        }
    }

    /// A task's admission: applies the thresholds once, then reserves `bytes` unless the
    /// worker's memory is above the pause threshold or the bytes are held by work that will
    /// release them (then [`Admission::Wait`]). Fails when waiting could never help.
    pub(crate) fn admit(self: &Arc<Self>, bytes: u64) -> StorageResult<Admission> {
        let memory = self.relieve_pressure()?;
        if let Some(pause) = self.config.fraction(self.config.thresholds.pause)
            && memory > pause
        {
            let st = self.lock();
            if st.releasable() {
                return Ok(Admission::Wait(self.epoch()));
            }
            drop(st);
            // Nothing will come free by itself: evict what can go, and look again.
            self.evict(u64::MAX)?;
            if self.worker_memory() > pause {
                return Err(StorageError::MemoryPaused { threshold: pause, report: Box::new(self.report()) });
            }
        }
        self.reserve_managed(bytes, Kind::Admission, true)
    }

    /// The part of [`reserve`](Self::reserve) and [`admit`](Self::admit) after the threshold
    /// checks. With `may_wait`, a request that does not fit while running work holds memory
    /// returns [`Admission::Wait`] (decided under the lock, so no release is missed).
    fn reserve_managed(self: &Arc<Self>, bytes: u64, kind: Kind, may_wait: bool) -> StorageResult<Admission> {
        let limit = self.config.memory_limit;
        if bytes > limit {
            return Err(StorageError::ResourcesExhausted { requested: bytes, limit, in_use: 0 });
        }
        let goal = self.config.fraction(self.config.thresholds.target).unwrap_or(limit).min(limit);
        loop {
            let mut st = self.lock();
            let want = (st.managed() + bytes).saturating_sub(goal);
            let (_, to_spill) = st.evict(want);
            if to_spill.is_empty() {
                if st.managed() + bytes <= self.managed_cap(&st) {
                    st.add_reserved(bytes);
                    st.join(kind, bytes);
                    if kind == Kind::Admission {
                        st.admitted += 1;
                    }
                    drop(st);
                    return Ok(Admission::Granted(Reservation::new(self.clone(), bytes, kind)));
                }
                if st.spills_in_flight > 0 {
                    drop(self.wait(st));
                    continue;
                }
                if may_wait && st.releasable() {
                    return Ok(Admission::Wait(self.epoch()));
                }
                return Err(self.exhausted(bytes, &st));
            }
            drop(st);
            self.write_spills(to_spill)?;
        }
    }

    /// Writes the given blocks to spill files (outside the lock) and records the outcome.
    fn write_spills(&self, to_spill: Vec<SpillJob>) -> StorageResult<()> {
        let mut first_error = None;
        for (id, generation, data) in to_spill {
            let written = self.spill.write(&data);
            drop(data);
            let mut discard = None;
            let mut spilled = None;
            let mut guard = self.lock();
            guard.spills_in_flight -= 1;
            let st = &mut *guard;
            if let Some(block) = st.blocks.get_mut(&id)
                && block.generation == generation
                && let Residency::Spilling(data) = &block.residency
            {
                match written {
                    Ok(file) => {
                        spilled = Some(PoolEvent::Spilled { bytes: block.bytes, disk_bytes: file.disk_bytes() });
                        st.spilled += file.disk_bytes();
                        st.spilled_chunks += 1;
                        st.spill_count += 1;
                        block.residency = Residency::Spilled(file);
                        let bytes = block.bytes;
                        let remove = block.remove_when_idle;
                        st.sub_resident(bytes);
                        st.note_peaks();
                        if remove {
                            discard = st.remove_idle(id);
                        }
                    }
                    Err(e) => {
                        // Keep the block in RAM and evictable (or drop it, if it was removed
                        // meanwhile); report the failure.
                        block.residency = Residency::Resident(data.clone());
                        if block.remove_when_idle {
                            discard = st.remove_idle(id);
                        } else {
                            block.lru_tick = Some(st.lru.push(id));
                        }
                        first_error.get_or_insert(e);
                    }
                }
            } else {
                // A pin took the block back while it was being written: the file is stale.
                discard = written.ok();
            }
            drop(guard);
            self.notify();
            drop(discard);
            if let Some(event) = spilled {
                self.emit(event);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Evicts least-recently-used unpinned blocks until `bytes` are freed; returns bytes freed.
    pub(crate) fn evict(&self, bytes: u64) -> StorageResult<u64> {
        let (freed, to_spill) = self.lock().evict(bytes);
        self.write_spills(to_spill)?;
        self.notify();
        Ok(freed)
    }

    /// Takes block `id` out of RAM now if it is resident and unpinned; returns bytes freed.
    pub(crate) fn evict_block(&self, id: BlockId) -> StorageResult<u64> {
        let (freed, job) = self.lock().evict_block(id);
        self.write_spills(job.into_iter().collect())?;
        self.notify();
        Ok(freed)
    }

    /// Drops clean block `id` from RAM if it is resident and unpinned, moving its bytes into
    /// `budget` instead of back to the pool. Returns whether it was dropped.
    pub(crate) fn drop_clean_into(&self, id: BlockId, budget: &mut Reservation) -> bool {
        let mut st = self.lock();
        let Some(block) = st.blocks.get(&id) else { return false };
        let clean = matches!(block.origin, Origin::Clean { .. });
        let (Some(tick), true) = (block.lru_tick, clean) else { return false };
        st.lru.remove(tick);
        let (bytes, job) = st.take_out(id);
        debug_assert!(job.is_none(), "a clean block is never spilled");
        st.add_reserved(bytes);
        st.join(budget.kind(), bytes);
        budget.absorb(bytes);
        true
    }

    /// The worker's memory the spill, pause and terminate thresholds compare: the pool's own
    /// bytes, or the process's RSS under [`Accounting::Process`].
    pub(crate) fn worker_memory(&self) -> u64 {
        match self.config.accounting {
            Accounting::Own => self.lock().managed(),
            Accounting::Process => self.sample_rss(),
        }
    }

    /// Applies the worker-memory thresholds: terminate if above `terminate`; above `spill`,
    /// evict until the worker's memory is under `target` (or nothing is left to evict).
    /// Returns the worker's memory after any relief. Under process accounting with these
    /// thresholds all off, does nothing (and reads nothing).
    pub(crate) fn relieve_pressure(&self) -> StorageResult<u64> {
        let t = self.config.thresholds;
        if t.spill.is_none() && t.pause.is_none() && t.terminate.is_none() {
            return Ok(0);
        }
        let mut memory = self.worker_memory();
        if let Some(terminate) = self.config.fraction(t.terminate)
            && memory > terminate
        {
            return Err(StorageError::MemoryTerminated { threshold: terminate, report: Box::new(self.report()) });
        }
        let Some(spill) = self.config.fraction(t.spill) else { return Ok(memory) };
        if memory <= spill {
            return Ok(memory);
        }
        let goal = self.config.fraction(t.target).unwrap_or(spill);
        while memory > goal {
            let block_bytes = self.evict(1)?;
            if block_bytes == 0 {
                break;
            }
            memory = self.worker_memory();
        }
        Ok(memory)
    }

    /// The current RSS (cheap: no peak), recorded into the sampled peak.
    pub(crate) fn sample_rss(&self) -> u64 {
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
    fn managed_cap(&self, st: &State) -> u64 {
        let limit = self.config.memory_limit;
        match (self.config.fraction(self.config.thresholds.terminate), self.config.accounting) {
            (Some(terminate), Accounting::Process) => {
                limit.min(terminate.saturating_sub(st.last_rss.saturating_sub(st.managed())))
            }
            (Some(terminate), Accounting::Own) => limit.min(terminate),
            (None, _) => limit,
        }
    }

    pub(crate) fn new_block(
        &self,
        st: &mut State,
        shape: (usize, usize),
        origin: Origin,
        residency: Residency,
    ) -> BlockId {
        let id = BlockId(st.next_id);
        st.next_id += 1;
        let resident = matches!(residency, Residency::Resident(_));
        let bytes = (shape.0 * shape.1 * size_of::<f64>()) as u64;
        let lru_tick = resident.then(|| st.lru.push(id));
        st.blocks.insert(
            id,
            Block { shape, bytes, origin, residency, pins: 0, lru_tick, generation: 0, remove_when_idle: false },
        );
        if resident {
            st.add_resident(bytes);
        }
        id
    }

    /// Moves `bytes` from a reservation into resident data (both under the lock).
    pub(crate) fn take_from(st: &mut State, reservation: &mut Reservation, bytes: u64) {
        reservation.forget(bytes);
        st.leave(reservation.kind(), bytes);
        st.sub_reserved(bytes);
    }

    /// Pins block `id`, loading it (from its store or spill file) if it is not in RAM. Load
    /// memory comes from `budget` when given, topped up from the pool if it falls short.
    pub(crate) fn pin(self: &Arc<Self>, id: BlockId, mut budget: Option<&mut Reservation>) -> StorageResult<Pinned> {
        loop {
            let mut st = self.lock();
            let block = st.blocks.get_mut(&id).ok_or_else(|| unknown(id))?;
            match &block.residency {
                Residency::Resident(data) => {
                    let data = data.clone();
                    block.pins += 1;
                    let (shape, tick) = (block.shape, block.lru_tick.take());
                    if let Some(tick) = tick {
                        st.lru.remove(tick);
                    }
                    drop(st);
                    return Ok(Pinned::new(self.clone(), id, shape, data));
                }
                Residency::Spilling(data) => {
                    // Cancel the spill in flight: the writer sees the new generation and discards.
                    let data = data.clone();
                    block.residency = Residency::Resident(data.clone());
                    block.generation += 1;
                    block.pins += 1;
                    let shape = block.shape;
                    drop(st);
                    return Ok(Pinned::new(self.clone(), id, shape, data));
                }
                Residency::Loading => {
                    drop(self.wait(st));
                }
                Residency::Spilled(_) | Residency::Unloaded => {
                    let previous = std::mem::replace(&mut block.residency, Residency::Loading);
                    let (bytes, shape, origin) = (block.bytes, block.shape, block.origin.clone());
                    drop(st);
                    let spill_file = match previous {
                        Residency::Spilled(file) => Some(file),
                        _ => None,
                    };
                    return self.load(id, bytes, shape, origin, spill_file, budget.as_deref_mut());
                }
            }
        }
    }

    fn load(
        self: &Arc<Self>,
        id: BlockId,
        bytes: u64,
        shape: (usize, usize),
        origin: Origin,
        mut spill_file: Option<SpillFile>,
        budget: Option<&mut Reservation>,
    ) -> StorageResult<Pinned> {
        let scratch = match (&spill_file, &origin) {
            (Some(_), _) => spill_io_scratch(bytes),
            (None, Origin::Clean { store, .. }) => store.read_scratch_bytes(),
            (None, Origin::Dirty) => 0,
        };
        let mut own = None;
        let reservation: &mut Reservation = match budget {
            Some(r) => match r.ensure(bytes + scratch) {
                Ok(()) => r,
                Err(e) => {
                    self.restore_after_failed_load(id, spill_file);
                    return Err(e);
                }
            },
            None => match self.reserve(bytes + scratch, Kind::Plain) {
                Ok(r) => own.insert(r),
                Err(e) => {
                    self.restore_after_failed_load(id, spill_file);
                    return Err(e);
                }
            },
        };
        let loaded = match (&spill_file, &origin) {
            (Some(file), _) => {
                self.spill.read(file).map_err(|cause| StorageError::SpillLost { cause: Box::new(cause) })
            }
            (None, Origin::Clean { store, index }) => store.read_chunk(*index),
            (None, Origin::Dirty) => {
                Err(StorageError::Bug(format!("dirty block {id:?} has neither data nor spill file")))
            }
        };
        let data = match loaded {
            Ok(data) if data.len() == shape.0 * shape.1 => data,
            Ok(data) => {
                self.restore_after_failed_load(id, spill_file);
                return Err(StorageError::Bug(format!(
                    "block {id:?} loaded {} values, expected {}",
                    data.len(),
                    shape.0 * shape.1
                )));
            }
            Err(e) => {
                self.restore_after_failed_load(id, spill_file);
                return Err(e);
            }
        };
        let data = Arc::new(data);
        let mut st = self.lock();
        Self::take_from(&mut st, reservation, bytes);
        st.add_resident(bytes);
        if let Some(file) = &spill_file {
            st.spilled -= file.disk_bytes();
            st.spilled_chunks -= 1;
            st.reload_count += 1;
        }
        let block = st.blocks.get_mut(&id).ok_or_else(|| unknown(id))?;
        block.residency = Residency::Resident(data.clone());
        block.pins += 1;
        drop(st);
        self.notify();
        if spill_file.take().is_some() {
            self.emit(PoolEvent::Reloaded { bytes });
        }
        Ok(Pinned::new(self.clone(), id, shape, data))
    }

    fn restore_after_failed_load(&self, id: BlockId, spill_file: Option<SpillFile>) {
        let mut st = self.lock();
        if let Some(block) = st.blocks.get_mut(&id) {
            block.residency = match spill_file {
                Some(file) => Residency::Spilled(file),
                None => Residency::Unloaded,
            };
        }
        drop(st);
        self.notify();
    }

    /// Called when a pin guard drops.
    pub(crate) fn unpin(&self, id: BlockId) {
        let mut st = self.lock();
        let mut discard = None;
        if let Some(block) = st.blocks.get_mut(&id) {
            block.pins -= 1;
            if block.pins == 0 {
                if block.remove_when_idle {
                    discard = st.remove_idle(id);
                } else if let Residency::Resident(_) = block.residency {
                    let tick = st.lru.push(id);
                    if let Some(block) = st.blocks.get_mut(&id) {
                        block.lru_tick = Some(tick);
                    }
                }
            }
        }
        drop(st);
        self.notify();
        drop(discard);
    }

    /// Removes a block now, or as soon as it is unpinned and no I/O is running on it.
    pub(crate) fn remove(&self, id: BlockId) -> StorageResult<()> {
        let mut st = self.lock();
        let block = st.blocks.get_mut(&id).ok_or_else(|| unknown(id))?;
        let busy = block.pins > 0 || matches!(block.residency, Residency::Loading | Residency::Spilling(_));
        let discard = if busy {
            block.remove_when_idle = true;
            None
        } else {
            st.remove_idle(id)
        };
        drop(st);
        self.notify();
        drop(discard);
        Ok(())
    }

    /// Releases reservation bytes of `kind` (a reservation guard dropping or shrinking).
    pub(crate) fn release(&self, bytes: u64, kind: Kind) {
        if bytes == 0 {
            return;
        }
        let mut st = self.lock();
        st.sub_reserved(bytes);
        st.leave(kind, bytes);
        drop(st);
        self.notify();
    }

    /// An admission's guard drops: its bytes are released and the task no longer runs.
    pub(crate) fn end_admission(&self, bytes: u64) {
        let mut st = self.lock();
        st.sub_reserved(bytes);
        st.admitted -= 1;
        drop(st);
        self.notify();
    }

    /// Moves `bytes` held by a reservation of kind `from` to one of kind `to`.
    pub(crate) fn move_between(&self, from: Kind, to: Kind, bytes: u64) {
        if from != to && bytes > 0 {
            let mut st = self.lock();
            st.leave(from, bytes);
            st.join(to, bytes);
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
            spilled: st.spilled,
            managed_accounted,
            reserved: st.reserved,
            resident_chunks: st.resident_chunks,
            spilled_chunks: st.spilled_chunks,
            peak_process: memory.peak.max(st.peak_rss_sampled),
            peak_managed: st.peak_managed,
            peak_spilled: st.peak_spilled,
            spill_count: st.spill_count,
            reload_count: st.reload_count,
        }
    }
}

fn unknown(id: BlockId) -> StorageError {
    StorageError::Bug(format!("block {id:?} is not in the buffer manager (removed already?)"))
}
