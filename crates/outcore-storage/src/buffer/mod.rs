//! The buffer manager: chunks in RAM under a byte budget, spilled to disk under pressure. The
//! design (reservations, pins, eviction, the accounting modes and Dask's four thresholds) is
//! [`BufferManager`]'s documentation. A block's states are `block`; the pool's charges
//! `charges`; its state under the lock `table`; the lock, epochs and reports `pool`; its
//! operations, each using only those before it, `evict`, `admit` and `load`.

mod admit;
mod block;
mod charges;
mod config;
mod evict;
mod guard;
mod load;
mod lru;
mod monitor;
mod pool;
mod spill;
mod table;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use admit::Admission;
pub use block::{BlockId, BlockInfo, BlockState};
use block::{Origin, Residency};
use charges::Purpose;
pub use config::BufferConfig;
pub use guard::{Pinned, Reservation};
pub use monitor::{MemoryMonitor, MemoryPeaks, MemorySample};
use pool::Shared;
pub use pool::{OWN_UNMANAGED_ALLOWANCE, PoolEpoch, PoolEvent};
use spill::SpillDir;

use crate::error::{StorageError, StorageResult};
use crate::grid::ChunkIndex;
use crate::memory::MemoryReport;
use crate::size::format_size;
use crate::store::ChunkStore;

/// A subscription to a pool's events (see [`BufferManager::subscribe`]); dropping it ends it.
#[must_use = "the subscription ends when this is dropped"]
pub struct Subscription {
    shared: Arc<Shared>,
    id: u64,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").field("id", &self.id).finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.unsubscribe(self.id);
    }
}

/// Chunks in RAM under a byte budget, with LRU eviction, spilling and Dask's thresholds.
/// Cheap to clone: clones share one pool.
///
/// # Overview
///
/// Every chunk an algorithm touches lives in the [`BufferManager`] as a *block*: a row-major
/// `rows x cols` array of f64. A block is either **clean** (a chunk of a [`ChunkStore`]: it can
/// be dropped from RAM and read again) or **dirty** (an intermediate result that exists only
/// here: leaving RAM means an LZ4-compressed spill file). Memory is a contract:
///
/// * **Reserve before allocating.** [`BufferManager::reserve`] sets bytes aside before a buffer
///   exists, evicting if needed; the [`Reservation`] returns them when dropped. Loading a block
///   reserves its bytes before reading, and [`BufferManager::insert`] turns reserved bytes into a
///   dirty block. Managed bytes (blocks in RAM + reservations) never exceed the limit.
/// * **Pin to use.** [`BufferManager::pin`] returns a [`Pinned`] guard that derefs to the values
///   and unpins when dropped. Only unpinned blocks leave memory, least recently used first.
///
/// ```text
///   task ──reserve(n)──▶ Reservation ──insert(data)──▶ dirty block ─┐
///   task ──pin(id)─────▶ Pinned ◀── load: store read / spill reload │
///                          │ drop                                    │
///                          ▼                                         ▼
///                    LRU (unpinned, oldest first) ──evict──▶ clean: dropped
///                                                           dirty: spill file (lz4)
/// ```
///
/// # Whose memory: the two accounting modes
///
/// The limit bounds a *worker*. Under [`Accounting::Own`] (the default) the worker is the pool
/// itself: its memory is the bytes it holds (blocks in RAM plus reservations), exact and known
/// before anything is allocated, whatever the host process around it holds. That is the mode
/// for a library inside a Python interpreter or a service, and for several pools in one
/// process. Under [`Accounting::Process`] the worker is the whole process, as in Dask: its
/// memory is the process's RSS, read from the OS. That is the mode of a command-line run, where
/// nothing else lives in the process. Several engines share one budget by sharing one manager
/// (clones share one pool).
///
/// # The four thresholds (Dask's, each a fraction of `memory_limit`, each can be disabled)
///
/// | threshold | default | compares | effect |
/// |---|---|---|---|
/// | target | 0.60 | managed bytes | a reservation that would cross it first evicts LRU blocks |
/// | spill | 0.70 | worker memory | above it, evict until it is back under target |
/// | pause | 0.80 | worker memory | [`BufferManager::admit`] says wait; no new task starts |
/// | terminate | 0.95 | worker memory | managed bytes are capped to stay under it; crossed anyway (process memory outside the pool grew), the run stops with [`StorageError::MemoryTerminated`] |
///
/// Unlike Dask there is one accounting: managed bytes are exact because the manager owns them,
/// and the threshold checks run in the same call that reserves, so spilling cannot race past
/// pause.
///
/// # Waiting for memory
///
/// A task is admitted with [`BufferManager::admit`]: its working set is reserved, or it is told
/// to [wait](Admission::Wait) while memory is held by work that will give it back (running
/// tasks' admissions, workers' [cache](BufferManager::reserve_cache) reservations), in any
/// engine sharing the pool. The decision is taken under the pool's lock, and
/// [`BufferManager::wait_for_release`] returns as soon as anything was released since, so no
/// release is missed. A request that can never fit (larger than the limit, or everything
/// pinned or reserved with nothing running) fails at once with
/// [`StorageError::ResourcesExhausted`], naming the sizes; it never hangs.
///
/// # Example
///
/// ```
/// use outcore_storage::{BufferConfig, BufferManager};
///
/// # fn main() -> Result<(), outcore_storage::StorageError> {
/// // A 1 MiB budget of the pool's own memory (the default accounting).
/// let manager = BufferManager::new(BufferConfig::new(1 << 20))?;
/// let mut ids = Vec::new();
/// for i in 0..8 {
///     // 256 KiB each: 2 MiB in all, twice the budget, so older blocks are spilled.
///     let mut reservation = manager.reserve(256 << 10)?;
///     let data = vec![i as f64; 32 << 10];
///     ids.push(manager.insert(&mut reservation, data, 32, 1024)?);
/// }
/// let first = manager.pin(ids[0])?; // reloaded from its spill file
/// assert!(first.iter().all(|&v| v == 0.0));
/// assert!(manager.report().spill_count > 0);
/// # Ok(())
/// # }
/// ```
///
/// [`ChunkStore`]: crate::ChunkStore
/// [`Accounting::Own`]: crate::Accounting::Own
/// [`Accounting::Process`]: crate::Accounting::Process
/// [`StorageError::MemoryTerminated`]: crate::StorageError::MemoryTerminated
/// [`StorageError::ResourcesExhausted`]: crate::StorageError::ResourcesExhausted
#[derive(Clone, Debug)]
pub struct BufferManager {
    shared: Arc<Shared>,
}

impl BufferManager {
    /// A manager for `config` (checked first).
    pub fn new(config: BufferConfig) -> StorageResult<Self> {
        config.validate()?;
        let spill = SpillDir::new(config.spill_parent.clone(), config.compress_spills);
        Ok(Self { shared: Arc::new(Shared::new(config, spill)) })
    }

    /// A manager for `config` whose spill writes and reloads fail as `faults` says (testing).
    #[cfg(feature = "testing")]
    pub fn with_spill_faults(config: BufferConfig, faults: crate::FaultPlan) -> StorageResult<Self> {
        config.validate()?;
        let spill = SpillDir::new(config.spill_parent.clone(), config.compress_spills).with_faults(faults);
        Ok(Self { shared: Arc::new(Shared::new(config, spill)) })
    }

    /// The configuration.
    pub fn config(&self) -> &BufferConfig {
        &self.shared.config
    }

    /// The memory limit in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.shared.config.memory_limit
    }

    /// Reserves `bytes`, evicting least-recently-used unpinned blocks if managed memory would
    /// cross the target threshold. Fails with [`StorageError::ResourcesExhausted`] if the bytes
    /// cannot fit under the limit even after evicting everything unpinned.
    pub fn reserve(&self, bytes: u64) -> StorageResult<Reservation> {
        self.shared.reserve(bytes, Purpose::Plain)
    }

    /// Like [`reserve`](Self::reserve), for a cache: buffers a worker keeps between tasks and
    /// gives up (shrinks to zero) whenever it is idle or waits for memory. Others waiting for
    /// memory count on that and wait rather than fail.
    pub fn reserve_cache(&self, bytes: u64) -> StorageResult<Reservation> {
        self.shared.reserve(bytes, Purpose::Cache)
    }

    /// A task's admission in one step: applies the thresholds once, then reserves `bytes` as
    /// the task's working set ([`Admission::Granted`]; the guard ends the admission when it
    /// drops), or answers [`Admission::Wait`] while the worker's memory is above the pause
    /// threshold or the bytes are held by running tasks or caches, in any engine sharing this
    /// pool. Fails when waiting could never help: [`StorageError::ResourcesExhausted`] (the
    /// request does not fit and nothing will be released) or [`StorageError::MemoryPaused`]
    /// (above pause with nothing running and nothing left to evict).
    pub fn admit(&self, bytes: u64) -> StorageResult<Admission> {
        self.shared.admit(bytes)
    }

    /// Waits until memory may have been released since `since` (an epoch from
    /// [`Admission::Wait`]), or until `timeout` passes; returns at once if it already was.
    pub fn wait_for_release(&self, since: PoolEpoch, timeout: Duration) {
        self.shared.wait_for_release(since, timeout);
    }

    /// Calls `listener` with every [`PoolEvent`] (spills, reloads) until the returned
    /// subscription is dropped; once the drop returns, the listener is not called again.
    /// Listeners run on the thread that caused the event, with the pool's state unlocked but
    /// the list of listeners locked: keep them short, and do not subscribe or unsubscribe
    /// from one.
    pub fn subscribe(&self, listener: impl Fn(&PoolEvent) + Send + Sync + 'static) -> Subscription {
        let id = self.shared.subscribe(Arc::new(listener));
        Subscription { shared: self.shared.clone(), id }
    }

    /// Whether `other` is a handle to the same pool.
    pub fn same_pool(&self, other: &BufferManager) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// A number that identifies this pool among the live pools of the process.
    pub fn pool_id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// Stores `data` (`rows x cols`, row-major) as a dirty block, taking its bytes from
    /// `reservation` (reserving any shortfall). The block starts unpinned.
    pub fn insert(
        &self,
        reservation: &mut Reservation,
        data: Vec<f64>,
        rows: usize,
        cols: usize,
    ) -> StorageResult<BlockId> {
        if rows * cols != data.len() {
            return Err(StorageError::InvalidArgument {
                what: "block data",
                reason: format!("{rows} x {cols} block given {} values", data.len()),
            });
        }
        if !reservation.belongs_to(&self.shared) {
            return Err(StorageError::Bug("inserting with a reservation from another buffer manager".into()));
        }
        let bytes = (data.len() * size_of::<f64>()) as u64;
        reservation.ensure(bytes)?;
        let mut st = self.shared.lock();
        Shared::take_from(&mut st, reservation, bytes);
        let id = st.new_block((rows, cols), Origin::Dirty, Residency::Resident(Arc::new(data)));
        drop(st);
        Ok(id)
    }

    /// Registers chunk `index` of `store` as a clean block, not loaded until pinned.
    pub fn register(&self, store: Arc<dyn ChunkStore>, index: ChunkIndex) -> StorageResult<BlockId> {
        let extent = store.grid().extent(index)?;
        let id = self.shared.lock().new_block(
            (extent.rows, extent.cols),
            Origin::Clean { store, index },
            Residency::Unloaded,
        );
        Ok(id)
    }

    /// Pins a block, loading it if needed (memory for the load is reserved from the pool).
    pub fn pin(&self, id: BlockId) -> StorageResult<Pinned> {
        self.shared.pin(id, None)
    }

    /// Pins a block, taking the memory for a load from `budget` (topped up if short). A task
    /// that reserved its working set up front uses this so loads cannot fail for lack of room
    /// taken meanwhile by others.
    pub fn pin_with(&self, id: BlockId, budget: &mut Reservation) -> StorageResult<Pinned> {
        if !budget.belongs_to(&self.shared) {
            return Err(StorageError::Bug("pinning with a budget from another buffer manager".into()));
        }
        self.shared.pin(id, Some(budget))
    }

    /// Forgets a block: frees its memory or spill file now, or when its last pin drops.
    pub fn remove(&self, id: BlockId) -> StorageResult<()> {
        self.shared.remove(id)
    }

    /// Evicts least-recently-used unpinned blocks until at least `bytes` are freed (or nothing
    /// unpinned is left); returns the bytes freed. `u64::MAX` evicts everything unpinned.
    pub fn evict(&self, bytes: u64) -> StorageResult<u64> {
        self.shared.evict(bytes)
    }

    /// Takes block `id` out of RAM now if it is resident and unpinned (a clean block is dropped,
    /// a dirty one spilled); returns the bytes freed. For streaming reads that will not come
    /// back to a chunk soon, so it does not push out blocks that will.
    pub fn evict_block(&self, id: BlockId) -> StorageResult<u64> {
        self.shared.evict_block(id)
    }

    /// Drops clean block `id` from RAM if it is resident and unpinned, moving its bytes into
    /// `budget` rather than back to the pool: a task streaming through chunks keeps the room
    /// for the next one. Returns whether the block was dropped (dirty or pinned ones are not).
    pub fn drop_clean_into(&self, id: BlockId, budget: &mut Reservation) -> StorageResult<bool> {
        if !budget.belongs_to(&self.shared) {
            return Err(StorageError::Bug("a budget from another buffer manager".into()));
        }
        Ok(self.shared.drop_clean_into(id, budget))
    }

    /// Where block `id` is and how it is used, or `None` if there is no such block.
    pub fn block_info(&self, id: BlockId) -> Option<BlockInfo> {
        self.shared.lock().blocks.get(&id).map(|block| block.info())
    }

    /// The memory categories now, with peaks and spill counts.
    pub fn report(&self) -> MemoryReport {
        self.shared.report()
    }

    /// Applies the spill and terminate thresholds and answers whether a new task may start
    /// now (false while the worker's memory is above the pause threshold).
    pub fn may_start_task(&self) -> StorageResult<bool> {
        let memory = self.shared.relieve_pressure()?;
        Ok(self.shared.config.fraction(self.shared.config.thresholds.pause).is_none_or(|pause| memory <= pause))
    }

    /// The memory the spill, pause and terminate thresholds compare now: the pool's own bytes,
    /// or the process's RSS under [`Accounting::Process`](crate::Accounting::Process).
    pub fn worker_memory(&self) -> u64 {
        self.shared.worker_memory()
    }

    /// The spill directory, once something has been spilled.
    pub fn spill_dir(&self) -> Option<PathBuf> {
        self.shared.spill.path()
    }
}

impl fmt::Display for BufferManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        write!(
            f,
            "lru(used: {}, limit: {}, spilled: {} chunks)",
            format_size(st.managed()),
            format_size(self.shared.config.memory_limit),
            st.charges.spilled_chunks
        )
    }
}
