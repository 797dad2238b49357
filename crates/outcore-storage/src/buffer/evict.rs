//! Eviction: blocks leave RAM, least recently used first, when a reservation would cross the
//! target threshold, when the worker's memory crosses the spill threshold, or when asked.
//! Clean blocks are dropped; dirty ones are written to spill files outside the lock.

use std::time::Instant;

use super::block::{BlockId, SpillEnd};
use super::guard::Reservation;
use super::pool::{PoolEvent, Shared};
use super::table::SpillJob;
use crate::error::{StorageError, StorageResult};

impl Shared {
    /// Writes the given blocks to spill files (outside the lock) and records the outcome:
    /// the first write that failed is the error (its block stays in RAM).
    pub(crate) fn write_spills(&self, to_spill: Vec<SpillJob>) -> StorageResult<()> {
        let mut first_error = None;
        for (id, generation, data) in to_spill {
            let started = Instant::now();
            let written = self.spill.write(&data);
            let took = started.elapsed();
            drop(data);
            let mut st = self.lock();
            st.spills_in_flight -= 1;
            let state = &mut *st;
            let (discard, spilled) = match state.blocks.get_mut(&id) {
                Some(block) => match block.spill_done(generation, written, &mut state.charges) {
                    SpillEnd::Written { disk_bytes } => {
                        let event = PoolEvent::Spilled { bytes: block.bytes, disk_bytes, took };
                        let idle = block.idle();
                        (state.settle(id, idle), Some(event))
                    }
                    SpillEnd::Failed(e) => {
                        first_error.get_or_insert(e);
                        let idle = block.idle();
                        (state.settle(id, idle), None)
                    }
                    SpillEnd::Stale(file) => (file, None),
                },
                // Removed meanwhile: the file is stale.
                None => (written.ok(), None),
            };
            drop(st);
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
        let (Some(tick), true) = (block.lru_tick, block.is_clean()) else { return false };
        st.lru.remove(tick);
        let (bytes, job) = st.take_out(id);
        debug_assert!(job.is_none(), "a clean block is never spilled");
        st.charges.add_reserved(bytes);
        st.charges.join(budget.purpose(), bytes);
        budget.absorb(bytes);
        true
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
}
