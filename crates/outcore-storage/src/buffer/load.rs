//! Pins, loads and removal, and what guards ask of their pool when they drop ([`Ledger`]).
//!
//! Pinning a block that is out of RAM loads it: the bytes are reserved first (from the task's
//! budget when given), then the values are read from the block's spill file or its store
//! outside the lock. A failed load puts the block back where it was, or removes it if its
//! removal was asked meanwhile.

use std::sync::Arc;
use std::time::Instant;

use super::block::{BlockId, Origin, Pin};
use super::charges::Purpose;
use super::guard::{Ledger, Pinned, Reservation};
use super::pool::{PoolEvent, Shared};
use super::spill::{SpillFile, spill_io_scratch};
use super::table::State;
use crate::error::{StorageError, StorageResult};

impl Shared {
    /// Moves `bytes` from a reservation into resident data (both under the lock).
    pub(crate) fn take_from(st: &mut State, reservation: &mut Reservation, bytes: u64) {
        reservation.forget(bytes);
        st.charges.leave(reservation.purpose(), bytes);
        st.charges.sub_reserved(bytes);
    }

    /// Pins block `id`, loading it (from its store or spill file) if it is not in RAM. Load
    /// memory comes from `budget` when given, topped up from the pool if it falls short.
    pub(crate) fn pin(self: &Arc<Self>, id: BlockId, mut budget: Option<&mut Reservation>) -> StorageResult<Pinned> {
        loop {
            let mut st = self.lock();
            let block = st.blocks.get_mut(&id).ok_or_else(|| unknown(id))?;
            match block.pin() {
                Pin::Ready(data, tick) => {
                    let shape = block.shape;
                    if let Some(tick) = tick {
                        st.lru.remove(tick);
                    }
                    drop(st);
                    return Ok(Pinned::new(self.clone(), id, shape, data));
                }
                Pin::Wait => drop(self.wait(st)),
                Pin::Load(spill_file) => {
                    let (bytes, shape, origin) = (block.bytes, block.shape, block.origin.clone());
                    drop(st);
                    return self.load(id, (bytes, shape), origin, spill_file, budget.as_deref_mut());
                }
            }
        }
    }

    /// Loads block `id` (`bytes` of `shape`), which this thread marked `Loading`, from
    /// `spill_file` or its store, and pins it.
    fn load(
        self: &Arc<Self>,
        id: BlockId,
        (bytes, shape): (u64, (usize, usize)),
        origin: Origin,
        spill_file: Option<SpillFile>,
        budget: Option<&mut Reservation>,
    ) -> StorageResult<Pinned> {
        let scratch = match (&spill_file, &origin) {
            (Some(_), _) => spill_io_scratch(bytes),
            (None, Origin::Clean { store, .. }) => store.read_scratch_bytes(),
            (None, Origin::Dirty) => 0,
        };
        let mut own = None;
        let reserved = match budget {
            Some(r) => r.ensure(bytes + scratch).map(|()| r),
            None => self.reserve(bytes + scratch, Purpose::Plain).map(|r| &mut *own.insert(r)),
        };
        let reservation = match reserved {
            Ok(r) => r,
            Err(e) => return Err(self.load_failed(id, spill_file, e)),
        };
        let started = Instant::now();
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
            Ok(data) if data.len() == shape.0 * shape.1 => Arc::new(data),
            Ok(data) => {
                let e = match (&spill_file, &origin) {
                    (None, Origin::Clean { store, index }) => {
                        StorageError::wrong_chunk_size(store.as_ref(), *index, data.len(), shape)
                    }
                    _ => StorageError::Bug(format!(
                        "block {id:?} loaded {} values, expected {}",
                        data.len(),
                        shape.0 * shape.1
                    )),
                };
                return Err(self.load_failed(id, spill_file, e));
            }
            Err(e) => return Err(self.load_failed(id, spill_file, e)),
        };
        let mut st = self.lock();
        Self::take_from(&mut st, reservation, bytes);
        let state = &mut *st;
        let block = state.blocks.get_mut(&id).ok_or_else(|| unknown(id))?;
        block.loaded(data.clone(), spill_file.as_ref(), &mut state.charges);
        drop(st);
        self.notify();
        if spill_file.is_some() {
            self.emit(PoolEvent::Reloaded { bytes, took: started.elapsed() });
        }
        drop(spill_file);
        Ok(Pinned::new(self.clone(), id, shape, data))
    }

    /// A load of block `id` failed with `error`: the block goes back to its spill file or its
    /// store, or is removed now if its removal was asked while it loaded. Returns `error`.
    fn load_failed(&self, id: BlockId, spill_file: Option<SpillFile>, error: StorageError) -> StorageError {
        let mut st = self.lock();
        let discard = match st.blocks.get_mut(&id) {
            Some(block) => {
                let idle = block.load_failed(spill_file);
                st.settle(id, idle)
            }
            None => spill_file,
        };
        drop(st);
        self.notify();
        drop(discard);
        error
    }

    /// Removes a block now, or as soon as it is unpinned and no I/O is running on it.
    pub(crate) fn remove(&self, id: BlockId) -> StorageResult<()> {
        let mut st = self.lock();
        let idle = st.blocks.get_mut(&id).ok_or_else(|| unknown(id))?.ask_removal();
        let discard = st.settle(id, idle);
        drop(st);
        self.notify();
        drop(discard);
        Ok(())
    }
}

impl Ledger for Shared {
    fn reserve_plain(&self, bytes: u64) -> StorageResult<()> {
        self.relieve_pressure()?;
        self.reserve_managed(bytes, Purpose::Plain, false).map(drop)
    }

    fn release(&self, bytes: u64, purpose: Purpose) {
        if bytes == 0 {
            return;
        }
        let mut st = self.lock();
        st.charges.sub_reserved(bytes);
        st.charges.leave(purpose, bytes);
        drop(st);
        self.notify();
    }

    fn end_admission(&self, bytes: u64) {
        let mut st = self.lock();
        st.charges.sub_reserved(bytes);
        st.charges.admitted -= 1;
        drop(st);
        self.notify();
    }

    fn move_between(&self, from: Purpose, to: Purpose, bytes: u64) {
        if from != to && bytes > 0 {
            let mut st = self.lock();
            st.charges.leave(from, bytes);
            st.charges.join(to, bytes);
        }
    }

    fn unpin(&self, id: BlockId) {
        let mut st = self.lock();
        let discard = match st.blocks.get_mut(&id) {
            Some(block) => {
                let idle = block.unpin();
                st.settle(id, idle)
            }
            None => None,
        };
        drop(st);
        self.notify();
        drop(discard);
    }
}

fn unknown(id: BlockId) -> StorageError {
    StorageError::Bug(format!("block {id:?} is not in the buffer manager (removed already?)"))
}
