//! The buffer manager: chunks in RAM under a byte budget, spilled to disk under pressure.
//!
//! # Overview
//!
//! Every chunk an algorithm touches lives in the [`BufferManager`] as a *block*: a row-major
//! `rows x cols` array of f64. A block is either **clean** (a chunk of a [`ChunkStore`]: it can
//! be dropped from RAM and read again) or **dirty** (an intermediate result that exists only
//! here: leaving RAM means an LZ4-compressed spill file). Memory is a contract:
//!
//! * **Reserve before allocating.** [`BufferManager::reserve`] sets bytes aside before a buffer
//!   exists, evicting if needed; the [`Reservation`] returns them when dropped. Loading a block
//!   reserves its bytes before reading, and [`BufferManager::insert`] turns reserved bytes into a
//!   dirty block. Managed bytes (blocks in RAM + reservations) never exceed the limit.
//! * **Pin to use.** [`BufferManager::pin`] returns a [`Pinned`] guard that derefs to the values
//!   and unpins when dropped. Only unpinned blocks leave memory, least recently used first.
//!
//! ```text
//!   task ──reserve(n)──▶ Reservation ──insert(data)──▶ dirty block ─┐
//!   task ──pin(id)─────▶ Pinned ◀── load: store read / spill reload │
//!                          │ drop                                    │
//!                          ▼                                         ▼
//!                    LRU (unpinned, oldest first) ──evict──▶ clean: dropped
//!                                                           dirty: spill file (lz4)
//! ```
//!
//! # The four thresholds (Dask's, each a fraction of `memory_limit`, each can be disabled)
//!
//! | threshold | default | measured on | effect |
//! |---|---|---|---|
//! | target | 0.60 | managed bytes | a reservation that would cross it first evicts LRU blocks |
//! | spill | 0.70 | process RSS | above it, evict until RSS is back under target |
//! | pause | 0.80 | process RSS | [`BufferManager::may_start_task`] says no; schedulers wait |
//! | terminate | 0.95 | process RSS | the run stops with [`StorageError::MemoryTerminated`] |
//!
//! Unlike Dask there is one accounting: managed bytes are exact because the manager owns them,
//! and the RSS checks run in the same call that reserves, so spilling cannot race past pause.
//!
//! A request that can never fit (larger than the limit, or everything pinned or reserved) fails
//! at once with [`StorageError::ResourcesExhausted`], naming the sizes; it never hangs.
//!
//! # Example
//!
//! ```
//! use outcore_storage::{BufferConfig, BufferManager, Thresholds};
//!
//! # fn main() -> Result<(), outcore_storage::StorageError> {
//! // 1 MiB budget, no RSS thresholds (this doc test shares its process with others).
//! let thresholds = Thresholds { spill: None, pause: None, terminate: None, ..Thresholds::default() };
//! let manager = BufferManager::new(outcore_storage::BufferConfig::new(1 << 20).with_thresholds(thresholds))?;
//! let mut ids = Vec::new();
//! for i in 0..8 {
//!     // 256 KiB each: 2 MiB in all, twice the budget, so older blocks are spilled.
//!     let mut reservation = manager.reserve(256 << 10)?;
//!     let data = vec![i as f64; 32 << 10];
//!     ids.push(manager.insert(&mut reservation, data, 32, 1024)?);
//! }
//! let first = manager.pin(ids[0])?; // reloaded from its spill file
//! assert!(first.iter().all(|&v| v == 0.0));
//! assert!(manager.report().spill_count > 0);
//! # Ok(())
//! # }
//! ```
//!
//! [`ChunkStore`]: crate::ChunkStore
//! [`StorageError::MemoryTerminated`]: crate::StorageError::MemoryTerminated
//! [`StorageError::ResourcesExhausted`]: crate::StorageError::ResourcesExhausted

mod config;
mod guard;
mod lru;
mod pool;
mod spill;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use config::{BufferConfig, Thresholds};
pub use guard::{Pinned, Reservation};
use pool::{Origin, Residency, Shared};

use crate::error::{StorageError, StorageResult};
use crate::grid::ChunkIndex;
use crate::memory::MemoryReport;
use crate::size::format_size;
use crate::store::ChunkStore;

/// Identifies a block in a [`BufferManager`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub(crate) u64);

/// Where a block's values are right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockState {
    /// In RAM.
    InMemory,
    /// In a spill file only.
    Spilled,
    /// A clean block not in RAM (it will be read from its store when pinned).
    NotLoaded,
    /// Being read or spilled by some thread.
    Busy,
}

/// Snapshot of one block, for inspection and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Where its values are.
    pub state: BlockState,
    /// Active pins.
    pub pins: usize,
    /// Bytes of its values.
    pub bytes: u64,
    /// True for dirty blocks (intermediates), false for clean chunks of a store.
    pub dirty: bool,
}

/// Chunks in RAM under a byte budget, with LRU eviction, spilling and Dask's thresholds.
///
/// Cheap to clone: clones share one pool. See the [module documentation](self) for the design.
#[derive(Clone, Debug)]
pub struct BufferManager {
    shared: Arc<Shared>,
}

impl BufferManager {
    /// A manager for `config` (checked first).
    pub fn new(config: BufferConfig) -> StorageResult<Self> {
        config.validate()?;
        Ok(Self { shared: Arc::new(Shared::new(config)) })
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
        self.shared.reserve(bytes)
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
        let id = self.shared.new_block(&mut st, (rows, cols), Origin::Dirty, Residency::Resident(Arc::new(data)));
        drop(st);
        Ok(id)
    }

    /// Registers chunk `index` of `store` as a clean block, not loaded until pinned.
    pub fn register(&self, store: Arc<dyn ChunkStore>, index: ChunkIndex) -> StorageResult<BlockId> {
        let extent = store.grid().extent(index)?;
        let mut st = self.shared.lock();
        let id = self.shared.new_block(
            &mut st,
            (extent.rows, extent.cols),
            Origin::Clean { store, index },
            Residency::Unloaded,
        );
        drop(st);
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
        let st = self.shared.lock();
        let block = st.blocks.get(&id)?;
        let state = match block.residency {
            Residency::Resident(_) => BlockState::InMemory,
            Residency::Spilled(_) => BlockState::Spilled,
            Residency::Unloaded => BlockState::NotLoaded,
            Residency::Loading | Residency::Spilling(_) => BlockState::Busy,
        };
        Some(BlockInfo { state, pins: block.pins, bytes: block.bytes, dirty: matches!(block.origin, Origin::Dirty) })
    }

    /// The memory categories now, with peaks and spill counts.
    pub fn report(&self) -> MemoryReport {
        self.shared.report()
    }

    /// Applies the RSS thresholds (spill, terminate) and answers whether a new task may start
    /// (false while process memory is above the pause threshold).
    pub fn may_start_task(&self) -> StorageResult<bool> {
        let rss = self.shared.relieve_rss()?;
        Ok(self.shared.config.fraction(self.shared.config.thresholds.pause).is_none_or(|pause| rss <= pause))
    }

    /// A task's admission in one step: applies the RSS thresholds once, then reserves `bytes`
    /// unless process memory is above the pause threshold (`Ok(None)`: wait and ask again).
    pub fn admit(&self, bytes: u64) -> StorageResult<Option<Reservation>> {
        let rss = self.shared.relieve_rss()?;
        if self.shared.config.fraction(self.shared.config.thresholds.pause).is_some_and(|pause| rss > pause) {
            return Ok(None);
        }
        self.shared.reserve_managed(bytes).map(Some)
    }

    /// Waits until a new task may start (see [`may_start_task`](Self::may_start_task)).
    ///
    /// `nothing_running` tells whether any task is still running: if none is and memory stays
    /// above the pause threshold after evicting everything unpinned, waiting would never end,
    /// so this fails with [`StorageError::MemoryPaused`].
    pub fn wait_until_unpaused(&self, nothing_running: impl Fn() -> bool) -> StorageResult<()> {
        loop {
            if self.may_start_task()? {
                return Ok(());
            }
            if nothing_running() {
                self.evict(u64::MAX)?;
                if self.may_start_task()? {
                    return Ok(());
                }
                let threshold = self.shared.config.fraction(self.shared.config.thresholds.pause).unwrap_or(0);
                return Err(StorageError::MemoryPaused { threshold, report: Box::new(self.report()) });
            }
            let st = self.shared.lock();
            drop(self.shared.wait_timeout(st, Duration::from_millis(5)));
        }
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
            st.spilled_chunks
        )
    }
}
