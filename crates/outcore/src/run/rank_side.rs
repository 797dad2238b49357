//! The run loop's side of a run across ranks (`cluster::rank` walks the messages): a block made
//! here for another rank is copied out once made, with memory admitted for its encoding; a block
//! received is stored once memory admits it.

use std::collections::HashMap;

use outcore_storage::{Admission, Reservation};

use super::state::{Run, WAIT_SLICE};
use crate::cluster::rank::RankRun;
use crate::cluster::wire;
use crate::error::{Error, Result};
use crate::task::{Block, Executor, Key, WorkerScratch};

impl<E: Executor> Run<'_, E> {
    fn rank(&self) -> usize {
        self.placement.as_ref().map_or(0, |p| p.me)
    }

    /// Waits until memory admits `bytes` (as a worker's admission does), unless the run fails.
    fn admit_waiting(&self, bytes: u64) -> Result<Reservation> {
        loop {
            if let Some(e) = &self.lock().failed {
                return Err(wire::relayed(e, self.rank()));
            }
            match self.manager.admit(bytes)? {
                Admission::Granted(budget) => return Ok(budget),
                Admission::Wait(epoch) => self.manager.wait_for_release(epoch, WAIT_SLICE),
            }
        }
    }
}

impl<E: Executor> RankRun for Run<'_, E> {
    /// Message `index`: output `key`, made by a task here, encoded once made, with the memory
    /// it holds until sent; then this read of the block is done.
    fn made(&self, key: Key, index: usize) -> Result<(Vec<u8>, Reservation)> {
        let mut st = self.lock();
        let id = loop {
            if self.control.cancelled() {
                st.failed.get_or_insert(Error::Interrupted);
            }
            if let Some(e) = &st.failed {
                return Err(wire::relayed(e, self.rank()));
            }
            if let Some(id) = st.blocks[key.task.0][key.slot] {
                break id;
            }
            st = self.changed.wait_timeout(st, WAIT_SLICE).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        };
        drop(st);
        // The block, reloaded if spilled, and its encoding while it is sent.
        let bytes = self.manager.block_info(id).map_or(0, |b| b.bytes);
        let mut budget = self.admit_waiting(2 * bytes + 64)?;
        let mut scratch = WorkerScratch::new(self.manager)?;
        let pinned = self.pin_input(key, &mut budget, &mut scratch)?;
        let (rows, cols) = pinned.shape();
        let message = wire::encode_block(index, rows, cols, &pinned);
        drop(pinned);
        let freed = self.lock().read_done(key);
        if let Some(id) = freed {
            let _ = self.manager.remove(id);
        }
        Ok((message, budget))
    }

    /// Stores a block received from another rank, once memory admits it, and releases the
    /// tasks here that waited only for it.
    fn arrived(&self, key: Key, out: Block) -> Result<()> {
        let mut budget = self.admit_waiting(Block::bytes(out.rows, out.cols))?;
        let id = self.manager.insert(&mut budget, out.data, out.rows, out.cols)?;
        let mut st = self.lock();
        st.blocks[key.task.0][key.slot] = Some(id);
        st.remote_left[key.task.0] -= 1;
        if st.remote_left[key.task.0] == 0 {
            st.release(&self.dependents[key.task.0]);
        }
        drop(st);
        self.changed.notify_all();
        Ok(())
    }

    fn fail(&self, error: Error) {
        Run::fail(self, error);
    }

    fn take_failure(&self) -> Option<Error> {
        self.lock().failed.take()
    }

    fn outcome(&self) -> Result<HashMap<Key, Block>> {
        Run::outcome(self)
    }
}
