//! One block and its states: where its values are, who uses it, and the bytes it is charged.
//!
//! ```text
//!                 pin (load)               load done
//!   Unloaded ────────────────▶ Loading ───────────────▶ Resident ◀──┐ pin (cancels the spill)
//!   Spilled  ────────────────▶    │  load failed: back,             │    │
//!      ▲                          ▼  or removed if asked            │    │ take_out (dirty)
//!      └─────────── spill written ─────────────────────── Spilling ◀─────┘
//!                                                         take_out (clean): Unloaded
//! ```
//!
//! Every transition is a method here and updates the pool's [`Charges`] itself, so a block's
//! bytes are counted exactly while it is in RAM or in a spill file. A block asked to be removed
//! while busy (pinned, loading, spilling) is removed by whichever transition makes it idle.

use std::sync::Arc;

use super::charges::Charges;
use super::spill::SpillFile;
use crate::error::{StorageError, StorageResult};
use crate::grid::ChunkIndex;
use crate::store::ChunkStore;

/// Identifies a block in a [`BufferManager`](super::BufferManager).
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

/// What pinning a block found.
pub(crate) enum Pin {
    /// The values are in RAM; the block is pinned. It was in the LRU at this tick, if any.
    Ready(Arc<Vec<f64>>, Option<u64>),
    /// Another thread is loading it: wait, then pin again.
    Wait,
    /// The block is now `Loading` and the pinning thread must load it, from this spill file (or,
    /// without one, from its store).
    Load(Option<SpillFile>),
}

/// What a spill that finished writing did.
pub(crate) enum SpillEnd {
    /// The block now lives in its spill file (`disk_bytes` of it).
    Written { disk_bytes: u64 },
    /// The write failed; the block stays in RAM.
    Failed(StorageError),
    /// A pin took the block back while it was written (or it was removed): the file, if
    /// written, is stale.
    Stale(Option<SpillFile>),
}

/// A block's next place once its last user is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Idle {
    /// Still pinned or busy: nothing to do.
    No,
    /// Removal was asked: remove it now.
    Remove,
    /// In RAM and unpinned: it joins the LRU.
    Evictable,
    /// Out of RAM and unpinned.
    Resting,
}

#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) shape: (usize, usize),
    pub(crate) bytes: u64,
    pub(crate) origin: Origin,
    residency: Residency,
    pins: usize,
    /// Position in the LRU while resident and unpinned.
    pub(crate) lru_tick: Option<u64>,
    /// Bumped when a spill in flight is cancelled by a pin, so its result is discarded.
    pub(crate) generation: u64,
    /// Removal was asked while the block was busy; done when it becomes idle.
    remove_when_idle: bool,
}

impl Block {
    /// A block of `shape`, charged to `charges` if it starts in RAM.
    pub(crate) fn new(shape: (usize, usize), origin: Origin, residency: Residency, charges: &mut Charges) -> Self {
        let bytes = (shape.0 * shape.1 * size_of::<f64>()) as u64;
        if matches!(residency, Residency::Resident(_)) {
            charges.add_resident(bytes);
        }
        Self { shape, bytes, origin, residency, pins: 0, lru_tick: None, generation: 0, remove_when_idle: false }
    }

    pub(crate) fn is_resident(&self) -> bool {
        matches!(self.residency, Residency::Resident(_))
    }

    pub(crate) fn is_clean(&self) -> bool {
        matches!(self.origin, Origin::Clean { .. })
    }

    pub(crate) fn info(&self) -> BlockInfo {
        let state = match self.residency {
            Residency::Resident(_) => BlockState::InMemory,
            Residency::Spilled(_) => BlockState::Spilled,
            Residency::Unloaded => BlockState::NotLoaded,
            Residency::Loading | Residency::Spilling(_) => BlockState::Busy,
        };
        BlockInfo { state, pins: self.pins, bytes: self.bytes, dirty: !self.is_clean() }
    }

    /// Takes the block out of RAM (it has just left the LRU): a clean block is dropped, a dirty
    /// one becomes `Spilling` and its values are returned for the caller to write outside the
    /// lock. Returns the bytes that leave RAM.
    pub(crate) fn take_out(&mut self, charges: &mut Charges) -> (u64, Option<Arc<Vec<f64>>>) {
        self.lru_tick = None;
        let Residency::Resident(data) = &self.residency else { return (0, None) };
        let data = data.clone();
        if self.is_clean() {
            self.residency = Residency::Unloaded;
            charges.sub_resident(self.bytes);
            (self.bytes, None)
        } else {
            self.residency = Residency::Spilling(data.clone());
            (self.bytes, Some(data))
        }
    }

    /// Pins the block if its values are in RAM (cancelling a spill in flight), or starts its
    /// load.
    pub(crate) fn pin(&mut self) -> Pin {
        match &self.residency {
            Residency::Resident(data) => {
                let data = data.clone();
                self.pins += 1;
                Pin::Ready(data, self.lru_tick.take())
            }
            Residency::Spilling(data) => {
                // The writer sees the new generation and discards its file.
                let data = data.clone();
                self.residency = Residency::Resident(data.clone());
                self.generation += 1;
                self.pins += 1;
                Pin::Ready(data, None)
            }
            Residency::Loading => Pin::Wait,
            Residency::Spilled(_) | Residency::Unloaded => {
                match std::mem::replace(&mut self.residency, Residency::Loading) {
                    Residency::Spilled(file) => Pin::Load(Some(file)),
                    _ => Pin::Load(None),
                }
            }
        }
    }

    /// A load finished: the block is in RAM and pinned, its bytes (taken from a reservation by
    /// the caller) charged as resident, its spill file (if it came from one) released.
    pub(crate) fn loaded(&mut self, data: Arc<Vec<f64>>, spill: Option<&SpillFile>, charges: &mut Charges) {
        charges.add_resident(self.bytes);
        if let Some(file) = spill {
            charges.sub_spilled(file.disk_bytes());
            charges.reload_count += 1;
        }
        self.residency = Residency::Resident(data);
        self.pins += 1;
    }

    /// A load failed: the block is back where it was (its spill file, or its store), or
    /// removed now if removal was asked meanwhile ([`Idle::Remove`]).
    pub(crate) fn load_failed(&mut self, spill: Option<SpillFile>) -> Idle {
        self.residency = match spill {
            Some(file) => Residency::Spilled(file),
            None => Residency::Unloaded,
        };
        self.idle()
    }

    /// One pin fewer.
    pub(crate) fn unpin(&mut self) -> Idle {
        self.pins -= 1;
        self.idle()
    }

    /// Asks for the block's removal: now if it is idle ([`Idle::Remove`]), else when it
    /// becomes idle.
    pub(crate) fn ask_removal(&mut self) -> Idle {
        self.remove_when_idle = true;
        if self.busy() { Idle::No } else { Idle::Remove }
    }

    /// A spill of generation `generation` finished writing (`written`). A failed write leaves
    /// the block in RAM and returns the error.
    pub(crate) fn spill_done(
        &mut self,
        generation: u64,
        written: StorageResult<SpillFile>,
        charges: &mut Charges,
    ) -> SpillEnd {
        let current = matches!(self.residency, Residency::Spilling(_)) && self.generation == generation;
        if !current {
            return SpillEnd::Stale(written.ok());
        }
        match written {
            Ok(file) => {
                let disk_bytes = file.disk_bytes();
                charges.add_spilled(disk_bytes);
                if let Residency::Spilling(_) = std::mem::replace(&mut self.residency, Residency::Spilled(file)) {
                    charges.sub_resident(self.bytes);
                }
                charges.note_peaks();
                SpillEnd::Written { disk_bytes }
            }
            Err(e) => {
                if let Residency::Spilling(data) = &self.residency {
                    self.residency = Residency::Resident(data.clone());
                }
                SpillEnd::Failed(e)
            }
        }
    }

    /// Whether the block has become idle, and what follows ([`Idle`]).
    pub(crate) fn idle(&self) -> Idle {
        if self.busy() {
            Idle::No
        } else if self.remove_when_idle {
            Idle::Remove
        } else if self.is_resident() {
            Idle::Evictable
        } else {
            Idle::Resting
        }
    }

    fn busy(&self) -> bool {
        self.pins > 0 || matches!(self.residency, Residency::Loading | Residency::Spilling(_))
    }

    /// Removes an idle block's charges; returns its spill file, if any, for the caller to
    /// delete outside the lock.
    pub(crate) fn discard(self, charges: &mut Charges) -> Option<SpillFile> {
        match self.residency {
            Residency::Resident(_) | Residency::Spilling(_) => {
                charges.sub_resident(self.bytes);
                None
            }
            Residency::Spilled(file) => {
                charges.sub_spilled(file.disk_bytes());
                Some(file)
            }
            Residency::Loading | Residency::Unloaded => None,
        }
    }
}
