//! Reservations and task admission: bytes are set aside before anything is allocated, after
//! the thresholds are applied, evicting least-recently-used blocks first so managed memory
//! stays under the target; a task is admitted, told to wait for memory that will come free, or
//! refused when waiting could never help.

use std::sync::Arc;

use super::charges::Purpose;
use super::guard::Reservation;
use super::pool::{PoolEpoch, Shared};
use crate::error::{StorageError, StorageResult};

/// The answer to a task's request to start.
#[derive(Debug)]
pub enum Admission {
    /// The working set is reserved: the task may start.
    Granted(Reservation),
    /// Memory is held by work that will release it: wait (see
    /// [`BufferManager::wait_for_release`](super::BufferManager::wait_for_release)) and ask
    /// again.
    Wait(PoolEpoch),
}

impl Shared {
    /// Reserves `bytes` of `purpose`, evicting least-recently-used unpinned blocks first so
    /// managed memory stays under the target threshold (or the limit when the target is off).
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64, purpose: Purpose) -> StorageResult<Reservation> {
        self.relieve_pressure()?;
        self.reserve_managed(bytes, purpose, false)?;
        Ok(Reservation::new(self.clone(), bytes, purpose))
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
            if st.charges.releasable() {
                return Ok(Admission::Wait(self.epoch()));
            }
            drop(st);
            // Nothing will come free by itself: evict what can go, and look again.
            self.evict(u64::MAX)?;
            if self.worker_memory() > pause {
                return Err(StorageError::MemoryPaused { threshold: pause, report: Box::new(self.report()) });
            }
        }
        Ok(match self.reserve_managed(bytes, Purpose::Admission, true)? {
            None => Admission::Granted(Reservation::new(self.clone(), bytes, Purpose::Admission)),
            Some(epoch) => Admission::Wait(epoch),
        })
    }

    /// The part of [`reserve`](Self::reserve) and [`admit`](Self::admit) after the threshold
    /// checks: charges `bytes` to a reservation of `purpose` (the caller makes its guard), or,
    /// with `may_wait`, returns the epoch to wait from when the request does not fit while
    /// running work holds memory (decided under the lock, so no release is missed).
    pub(crate) fn reserve_managed(
        &self,
        bytes: u64,
        purpose: Purpose,
        may_wait: bool,
    ) -> StorageResult<Option<PoolEpoch>> {
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
                    st.charges.add_reserved(bytes);
                    st.charges.join(purpose, bytes);
                    if purpose == Purpose::Admission {
                        st.charges.admitted += 1;
                    }
                    return Ok(None);
                }
                if st.spills_in_flight > 0 {
                    drop(self.wait(st));
                    continue;
                }
                if may_wait && st.charges.releasable() {
                    return Ok(Some(self.epoch()));
                }
                return Err(self.exhausted(bytes, &st));
            }
            drop(st);
            self.write_spills(to_spill)?;
        }
    }
}
