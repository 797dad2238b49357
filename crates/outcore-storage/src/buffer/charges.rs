//! The pool's memory charges: bytes of blocks in RAM, of reservations and of spill files, with
//! their peaks. Reservations and block transitions ([`Block`](super::block::Block)) change
//! them, under the pool's lock; nothing else does.

use std::sync::atomic::{AtomicU64, Ordering};

/// Managed bytes of every pool in the process, so a pool's report can tell what other pools
/// (other engines in the same host) hold from the host's own memory. Only reports read it:
/// no decision depends on process-wide state.
pub(crate) static ALL_MANAGED: AtomicU64 = AtomicU64::new(0);

/// What a reservation is for, as far as waiting goes: memory held by an admission or a cache
/// comes free by itself, memory of a plain reservation only when its holder says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Set aside by its holder for as long as it likes.
    Plain,
    /// A running task's working set: released when the task ends.
    Admission,
    /// A worker's reusable buffers: given up when the worker is idle or waits.
    Cache,
}

/// The bytes a pool holds, by what holds them.
#[derive(Debug, Default)]
pub(crate) struct Charges {
    /// Bytes of blocks in RAM (resident or being spilled).
    pub(crate) resident: u64,
    /// Bytes held by reservations.
    pub(crate) reserved: u64,
    /// Bytes of spill files on disk.
    pub(crate) spilled: u64,
    pub(crate) spilled_chunks: usize,
    pub(crate) resident_chunks: usize,
    pub(crate) peak_managed: u64,
    pub(crate) peak_spilled: u64,
    pub(crate) spill_count: u64,
    pub(crate) reload_count: u64,
    /// Task admissions alive: working sets of running tasks, which will be released.
    pub(crate) admitted: usize,
    /// Bytes of cache reservations (workers' reusable scratch), released when idle.
    pub(crate) cache_held: u64,
}

impl Charges {
    /// Blocks in RAM plus reservations: what the limit and the target threshold bound.
    pub(crate) fn managed(&self) -> u64 {
        self.resident + self.reserved
    }

    /// Whether memory held now will come free without anyone asking: running tasks finish,
    /// and workers give up their scratch when idle or waiting.
    pub(crate) fn releasable(&self) -> bool {
        self.admitted > 0 || self.cache_held > 0
    }

    pub(crate) fn add_reserved(&mut self, bytes: u64) {
        self.reserved += bytes;
        ALL_MANAGED.fetch_add(bytes, Ordering::Relaxed);
        self.note_peaks();
    }

    pub(crate) fn sub_reserved(&mut self, bytes: u64) {
        self.reserved -= bytes;
        ALL_MANAGED.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Bytes of a reservation of `purpose` leave it (released, or moved into a block).
    pub(crate) fn leave(&mut self, purpose: Purpose, bytes: u64) {
        if purpose == Purpose::Cache {
            self.cache_held -= bytes;
        }
    }

    /// Bytes join a reservation of `purpose`.
    pub(crate) fn join(&mut self, purpose: Purpose, bytes: u64) {
        if purpose == Purpose::Cache {
            self.cache_held += bytes;
        }
    }

    pub(crate) fn note_peaks(&mut self) {
        self.peak_managed = self.peak_managed.max(self.managed());
        self.peak_spilled = self.peak_spilled.max(self.spilled);
    }

    pub(crate) fn add_resident(&mut self, bytes: u64) {
        self.resident += bytes;
        self.resident_chunks += 1;
        ALL_MANAGED.fetch_add(bytes, Ordering::Relaxed);
        self.note_peaks();
    }

    pub(crate) fn sub_resident(&mut self, bytes: u64) {
        self.resident -= bytes;
        self.resident_chunks -= 1;
        ALL_MANAGED.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A spill file of `disk_bytes` now holds a block.
    pub(crate) fn add_spilled(&mut self, disk_bytes: u64) {
        self.spilled += disk_bytes;
        self.spilled_chunks += 1;
        self.spill_count += 1;
    }

    /// A spill file of `disk_bytes` no longer holds a block.
    pub(crate) fn sub_spilled(&mut self, disk_bytes: u64) {
        self.spilled -= disk_bytes;
        self.spilled_chunks -= 1;
    }
}
