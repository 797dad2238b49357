//! The pool's state under its lock: every block, the LRU order of those that may leave RAM,
//! and the charges. Nothing here does I/O or waits: eviction picks blocks and hands back the
//! dirty ones as [`SpillJob`]s for the caller to write once the lock is released.

use std::collections::HashMap;
use std::sync::Arc;

use super::block::{Block, BlockId, Idle, Origin, Residency};
use super::charges::Charges;
use super::lru::Lru;
use super::spill::SpillFile;
use crate::memory::UnmanagedHistory;

/// A dirty block chosen for spilling: its id, its generation at the time, and its values.
pub(crate) type SpillJob = (BlockId, u64, Arc<Vec<f64>>);

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) blocks: HashMap<BlockId, Block>,
    pub(crate) lru: Lru,
    next_id: u64,
    pub(crate) charges: Charges,
    pub(crate) spills_in_flight: usize,
    pub(crate) peak_rss_sampled: u64,
    /// The RSS read last (0 before the first read, or with the RSS thresholds off).
    pub(crate) last_rss: u64,
    pub(crate) history: UnmanagedHistory,
}

impl State {
    pub(crate) fn new(history: UnmanagedHistory) -> Self {
        Self {
            blocks: HashMap::new(),
            lru: Lru::default(),
            next_id: 0,
            charges: Charges::default(),
            spills_in_flight: 0,
            peak_rss_sampled: 0,
            last_rss: 0,
            history,
        }
    }

    pub(crate) fn managed(&self) -> u64 {
        self.charges.managed()
    }

    /// Adds a block; a resident one starts unpinned, as the most recently used.
    pub(crate) fn new_block(&mut self, shape: (usize, usize), origin: Origin, residency: Residency) -> BlockId {
        let id = BlockId(self.next_id);
        self.next_id += 1;
        let mut block = Block::new(shape, origin, residency, &mut self.charges);
        if block.is_resident() {
            block.lru_tick = Some(self.lru.push(id));
        }
        self.blocks.insert(id, block);
        id
    }

    /// Takes blocks out of RAM, least recently used first, until `want` bytes are freed or
    /// nothing unpinned is left. Clean blocks are dropped here; dirty ones are returned as
    /// jobs.
    pub(crate) fn evict(&mut self, want: u64) -> (u64, Vec<SpillJob>) {
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

    /// Takes block `id` out of RAM if it is resident and unpinned.
    pub(crate) fn evict_block(&mut self, id: BlockId) -> (u64, Option<SpillJob>) {
        match self.blocks.get(&id).and_then(|b| b.lru_tick) {
            Some(tick) => {
                self.lru.remove(tick);
                self.take_out(id)
            }
            None => (0, None),
        }
    }

    /// Takes one block that has just left the LRU out of RAM; returns the bytes that leave
    /// RAM and, for a dirty block, its spill job.
    pub(crate) fn take_out(&mut self, id: BlockId) -> (u64, Option<SpillJob>) {
        let Some(block) = self.blocks.get_mut(&id) else { return (0, None) };
        let (bytes, data) = block.take_out(&mut self.charges);
        let job = data.map(|data| (id, block.generation, data));
        if job.is_some() {
            self.spills_in_flight += 1;
        }
        (bytes, job)
    }

    /// Acts on what block `id` became ([`Idle`]): removes it, or puts it in the LRU. Returns a
    /// spill file to delete outside the lock.
    pub(crate) fn settle(&mut self, id: BlockId, idle: Idle) -> Option<SpillFile> {
        match idle {
            Idle::Remove => self.remove_idle(id),
            Idle::Evictable => {
                let tick = self.lru.push(id);
                if let Some(block) = self.blocks.get_mut(&id) {
                    block.lru_tick = Some(tick);
                }
                None
            }
            Idle::No | Idle::Resting => None,
        }
    }

    /// Deletes a block that is idle (unpinned, not being loaded or spilled). Returns its spill
    /// file, if any, for the caller to drop outside the lock.
    pub(crate) fn remove_idle(&mut self, id: BlockId) -> Option<SpillFile> {
        let block = self.blocks.remove(&id)?;
        if let Some(tick) = block.lru_tick {
            self.lru.remove(tick);
        }
        block.discard(&mut self.charges)
    }
}
