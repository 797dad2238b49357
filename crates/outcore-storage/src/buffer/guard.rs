//! RAII guards: a pinned chunk unpins when dropped, a reservation releases when dropped.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::block::BlockId;
use super::charges::Purpose;
use crate::error::{StorageError, StorageResult};
use crate::size::format_size;

/// What a guard asks of the pool it came from (the pool implements it).
pub(crate) trait Ledger: Send + Sync + fmt::Debug {
    /// Reserves `bytes` more as a plain reservation, evicting first if needed.
    fn reserve_plain(&self, bytes: u64) -> StorageResult<()>;
    /// Releases reservation bytes of `purpose`.
    fn release(&self, bytes: u64, purpose: Purpose);
    /// An admission's bytes are released and its task no longer runs.
    fn end_admission(&self, bytes: u64);
    /// Moves `bytes` held by a reservation of purpose `from` to one of purpose `to`.
    fn move_between(&self, from: Purpose, to: Purpose, bytes: u64);
    /// One pin of block `id` fewer.
    fn unpin(&self, id: BlockId);
}

/// Bytes of the memory budget set aside before allocating. Released when dropped.
///
/// Reserve first, allocate second: a buffer never exists without bytes reserved for it.
#[derive(Debug)]
pub struct Reservation {
    shared: Arc<dyn Ledger>,
    bytes: u64,
    purpose: Purpose,
}

impl Reservation {
    pub(crate) fn new(shared: Arc<dyn Ledger>, bytes: u64, purpose: Purpose) -> Self {
        Self { shared, bytes, purpose }
    }

    pub(crate) fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Gives `bytes` back to the pool now (all of it if `bytes` exceeds what is held).
    pub fn shrink(&mut self, bytes: u64) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.shared.release(bytes, self.purpose);
    }

    /// Makes sure at least `bytes` are held, reserving the shortfall from the pool.
    pub fn ensure(&mut self, bytes: u64) -> StorageResult<()> {
        if self.bytes >= bytes {
            return Ok(());
        }
        let extra = bytes - self.bytes;
        self.shared.reserve_plain(extra)?;
        self.shared.move_between(Purpose::Plain, self.purpose, extra);
        self.bytes += extra;
        Ok(())
    }

    /// Moves `bytes` of this reservation into a new, plain one (bytes split off a task's
    /// admission or a worker's cache are no longer counted as such).
    pub fn split(&mut self, bytes: u64) -> StorageResult<Reservation> {
        if bytes > self.bytes {
            return Err(StorageError::Bug(format!(
                "splitting {} off a reservation of {}",
                format_size(bytes),
                format_size(self.bytes)
            )));
        }
        self.shared.move_between(self.purpose, Purpose::Plain, bytes);
        self.bytes -= bytes;
        Ok(Self::new(self.shared.clone(), bytes, Purpose::Plain))
    }

    /// Takes over the bytes of `other` (a reservation of the same manager).
    pub fn merge(&mut self, mut other: Reservation) -> StorageResult<()> {
        if !std::ptr::addr_eq(Arc::as_ptr(&self.shared), Arc::as_ptr(&other.shared)) {
            return Err(StorageError::Bug("merging reservations of different buffer managers".into()));
        }
        self.shared.move_between(other.purpose, self.purpose, other.bytes);
        self.bytes += other.bytes;
        other.bytes = 0;
        Ok(())
    }

    /// Drops `bytes` from this guard without releasing them: the caller, holding the pool lock,
    /// has moved them into a block.
    pub(crate) fn forget(&mut self, bytes: u64) {
        self.bytes -= bytes;
    }

    /// Adds `bytes` the caller, holding the pool lock, has moved into the reserved total.
    pub(crate) fn absorb(&mut self, bytes: u64) {
        self.bytes += bytes;
    }

    /// Whether this reservation came from `pool`.
    pub(crate) fn belongs_to<L: Ledger>(&self, pool: &Arc<L>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.shared), Arc::as_ptr(pool))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        match self.purpose {
            Purpose::Admission => self.shared.end_admission(self.bytes),
            purpose => self.shared.release(self.bytes, purpose),
        }
    }
}

/// A chunk pinned in RAM: it cannot be evicted while this guard lives. Derefs to the chunk's
/// row-major values.
#[derive(Debug)]
pub struct Pinned {
    shared: Arc<dyn Ledger>,
    id: BlockId,
    shape: (usize, usize),
    data: Arc<Vec<f64>>,
}

impl Pinned {
    pub(crate) fn new(shared: Arc<dyn Ledger>, id: BlockId, shape: (usize, usize), data: Arc<Vec<f64>>) -> Self {
        Self { shared, id, shape, data }
    }

    /// The pinned block.
    pub fn id(&self) -> BlockId {
        self.id
    }

    /// `(rows, cols)` of the block.
    pub fn shape(&self) -> (usize, usize) {
        self.shape
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f64] {
        &self.data
    }
}

impl Deref for Pinned {
    type Target = [f64];

    fn deref(&self) -> &[f64] {
        &self.data
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.shared.unpin(self.id);
    }
}
