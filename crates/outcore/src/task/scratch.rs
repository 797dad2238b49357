//! Buffers a worker keeps from task to task.

use outcore_storage::{BufferManager, Reservation};

use crate::error::{Error, Result};

/// Large buffers a worker thread reuses across its tasks (panels, chunk reads, U blocks), so
/// they are not allocated (and faulted in fresh) for every task, and the allocator has no churn
/// to keep pages for. Their bytes are a cache reservation in the pool, held from task to task
/// and given up whenever the worker is idle or waits for memory; a task that declares reusable
/// bytes is admitted with that much credit.
#[derive(Debug)]
pub struct WorkerScratch {
    reservation: Reservation,
    buffers: Vec<Vec<f64>>,
}

impl WorkerScratch {
    pub(crate) fn new(manager: &BufferManager) -> Result<Self> {
        Ok(Self { reservation: manager.reserve_cache(0)?, buffers: Vec::new() })
    }

    /// Bytes held (and reserved).
    pub fn bytes(&self) -> u64 {
        self.reservation.bytes()
    }

    /// Buffers `0..N`, the i-th holding `lens[i]` values (contents unspecified: whatever a
    /// previous task left, or zeros where it grew). Growth is paid from `budget`.
    pub fn buffers<const N: usize>(
        &mut self,
        lens: [usize; N],
        budget: &mut Reservation,
    ) -> Result<[&mut Vec<f64>; N]> {
        if self.buffers.len() < N {
            self.buffers.resize_with(N, Vec::new);
        }
        for (buf, &len) in self.buffers.iter_mut().zip(&lens) {
            if buf.capacity() < len {
                buf.reserve_exact(len - buf.len());
            }
            buf.resize(len, 0.0);
        }
        self.settle(budget)?;
        let indices: [usize; N] = std::array::from_fn(|i| i);
        self.buffers.get_disjoint_mut(indices).map_err(|e| Error::Bug(format!("scratch buffers: {e}")))
    }

    /// Frees every buffer and its reservation.
    pub fn clear(&mut self) {
        self.buffers.clear();
        self.reservation.shrink(u64::MAX);
    }

    /// Makes the reservation match the buffers' capacities (a store may have swapped a buffer
    /// for one of another size): growth is taken from `budget`, shrinkage given back.
    pub fn settle(&mut self, budget: &mut Reservation) -> Result<()> {
        let held: u64 = self.buffers.iter().map(|b| (b.capacity() * size_of::<f64>()) as u64).sum();
        let reserved = self.reservation.bytes();
        if held > reserved {
            budget.ensure(held - reserved)?;
            self.reservation.merge(budget.split(held - reserved)?)?;
        } else {
            self.reservation.shrink(reserved - held);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outcore_storage::{BufferConfig, Thresholds};

    #[test]
    fn buffers_persist_and_their_bytes_move_from_the_budget() {
        let manager = BufferManager::new(BufferConfig::new(1 << 20).with_thresholds(Thresholds::DISABLED)).unwrap();
        let mut scratch = WorkerScratch::new(&manager).unwrap();
        let mut budget = manager.reserve(64 << 10).unwrap();
        let [a, b] = scratch.buffers([1000, 3000], &mut budget).unwrap();
        a[0] = 7.0;
        b[2999] = 1.0;
        assert_eq!(scratch.bytes(), 32_000);
        assert_eq!(budget.bytes(), (64 << 10) - 32_000);
        drop(budget);
        let mut budget = manager.reserve(0).unwrap();
        let [a] = scratch.buffers([500], &mut budget).unwrap();
        assert_eq!(a[0], 7.0, "reused, not reallocated");
        assert_eq!(manager.report().managed_accounted, 32_000);
    }
}
