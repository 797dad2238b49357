//! Fault injection (feature `testing`): a store, and a pool's spill directory, that fail
//! chosen I/O calls, so tests can prove every failure surfaces as a typed error and no
//! half-written output is visible.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{StorageError, StorageResult};
use crate::grid::{ChunkGrid, ChunkIndex};
use crate::store::{ChunkRows, ChunkStore, Dtype};

/// Which I/O calls fail: the N-th read and/or the N-th write (1-based), once or from then on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// The read call that fails (1 = the first).
    pub fail_read: Option<u64>,
    /// The write call that fails (1 = the first).
    pub fail_write: Option<u64>,
    /// Fail every call after the first failing one too (a dead disk rather than a glitch).
    pub persistent: bool,
    /// Failing writes report a full disk (ENOSPC) rather than a generic I/O error.
    pub disk_full: bool,
}

impl std::str::FromStr for FaultPlan {
    type Err = StorageError;

    /// Parses `read=N`, `write=N`, `persistent` and `disk-full`, comma-separated.
    fn from_str(text: &str) -> StorageResult<Self> {
        let mut plan = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || StorageError::InvalidArgument {
                what: "fault plan",
                reason: format!("{part:?} is not one of read=N, write=N, persistent, disk-full"),
            };
            match part.split_once('=') {
                Some(("read", n)) => plan.fail_read = Some(n.parse().map_err(|_| bad())?),
                Some(("write", n)) => plan.fail_write = Some(n.parse().map_err(|_| bad())?),
                None if part == "persistent" => plan.persistent = true,
                None if part == "disk-full" => plan.disk_full = true,
                _ => return Err(bad()),
            }
        }
        Ok(plan)
    }
}

impl FaultPlan {
    /// Fails only read call `n`.
    pub fn read(n: u64) -> Self {
        Self { fail_read: Some(n), ..Self::default() }
    }

    /// Fails only write call `n`.
    pub fn write(n: u64) -> Self {
        Self { fail_write: Some(n), ..Self::default() }
    }
}

/// Counts calls and decides which fail, following a [`FaultPlan`].
#[derive(Debug, Default)]
pub(crate) struct FaultCounter {
    plan: FaultPlan,
    reads: AtomicU64,
    writes: AtomicU64,
}

impl FaultCounter {
    pub(crate) fn new(plan: FaultPlan) -> Self {
        Self { plan, ..Self::default() }
    }

    fn check(
        &self,
        counter: &AtomicU64,
        fail_at: Option<u64>,
        op: &str,
        target: &str,
        kind: std::io::ErrorKind,
    ) -> StorageResult<()> {
        let call = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let fails = fail_at.is_some_and(|n| call == n || (self.plan.persistent && call > n));
        if fails {
            return Err(StorageError::io(
                target,
                std::io::Error::new(kind, format!("injected fault: {op} call {call} fails")),
            ));
        }
        Ok(())
    }

    pub(crate) fn on_read(&self, target: &str) -> StorageResult<()> {
        self.check(&self.reads, self.plan.fail_read, "read", target, std::io::ErrorKind::Other)
    }

    pub(crate) fn on_write(&self, target: &str) -> StorageResult<()> {
        let kind = if self.plan.disk_full { std::io::ErrorKind::StorageFull } else { std::io::ErrorKind::Other };
        self.check(&self.writes, self.plan.fail_write, "write", target, kind)
    }

    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.reads.load(Ordering::SeqCst), self.writes.load(Ordering::SeqCst))
    }
}

/// Wraps a store and fails the reads and writes its [`FaultPlan`] names, before touching the
/// inner store (so a failed write leaves the old chunk intact).
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ChunkStore>,
    faults: FaultCounter,
}

impl FaultyStore {
    /// `inner` with faults injected by `plan`.
    pub fn new(inner: Arc<dyn ChunkStore>, plan: FaultPlan) -> Self {
        Self { inner, faults: FaultCounter::new(plan) }
    }

    /// Read and write calls made so far `(reads, writes)`, failed ones included.
    pub fn calls(&self) -> (u64, u64) {
        self.faults.counts()
    }
}

impl ChunkStore for FaultyStore {
    fn grid(&self) -> ChunkGrid {
        self.inner.grid()
    }

    fn location(&self) -> Option<&std::path::Path> {
        self.inner.location()
    }

    fn dtype(&self) -> Dtype {
        self.inner.dtype()
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        self.faults.on_read(&self.inner.describe())?;
        self.inner.read_chunk_into(index, out)
    }

    fn write_chunk(&self, index: ChunkIndex, data: &[f64]) -> StorageResult<()> {
        self.faults.on_write(&self.inner.describe())?;
        self.inner.write_chunk(index, data)
    }

    /// The store it stands in for (its failures say "injected fault"): a run reading through
    /// it is the same computation, as ranks of a job that inject faults on one rank compare.
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn read_scratch_bytes(&self) -> u64 {
        self.inner.read_scratch_bytes()
    }

    fn streams_rows(&self) -> bool {
        self.inner.streams_rows()
    }

    fn write_scratch_bytes(&self) -> u64 {
        self.inner.write_scratch_bytes()
    }

    fn chunk_rows(&self, index: ChunkIndex) -> StorageResult<Option<Box<dyn ChunkRows + '_>>> {
        self.faults.on_read(&self.inner.describe())?;
        self.inner.chunk_rows(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn fails_exactly_the_planned_calls() {
        let grid = ChunkGrid::new(4, 4, 2, 2).unwrap();
        let inner: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new(grid));
        let store = FaultyStore::new(
            inner.clone(),
            FaultPlan { fail_read: Some(2), fail_write: Some(1), ..FaultPlan::default() },
        );
        let idx = ChunkIndex::new(0, 0);
        let err = store.write_chunk(idx, &[1.0; 4]).unwrap_err();
        assert!(err.to_string().contains("injected fault: write call 1"), "{err}");
        assert_eq!(inner.read_chunk(idx).unwrap(), vec![0.0; 4], "a failed write must not touch the chunk");
        store.write_chunk(idx, &[1.0; 4]).unwrap();
        assert!(store.read_chunk(idx).is_ok());
        assert!(store.read_chunk(idx).is_err());
        assert!(store.read_chunk(idx).is_ok());
        assert_eq!(store.calls(), (3, 2));
    }

    #[test]
    fn plans_parse_and_disk_full_faults_say_so() {
        let plan: FaultPlan = "read=3, write=2,persistent,disk-full".parse().unwrap();
        assert_eq!(plan, FaultPlan { fail_read: Some(3), fail_write: Some(2), persistent: true, disk_full: true });
        assert!("read=x".parse::<FaultPlan>().is_err());
        let grid = ChunkGrid::new(2, 2, 2, 2).unwrap();
        let store =
            FaultyStore::new(Arc::new(MemoryStore::new(grid)), FaultPlan { disk_full: true, ..FaultPlan::write(1) });
        let err = store.write_chunk(ChunkIndex::new(0, 0), &[0.0; 4]).unwrap_err().to_string();
        assert!(err.contains("the disk is full") && err.contains("`spill_dir`"), "{err}");
    }

    #[test]
    fn persistent_faults_keep_failing() {
        let grid = ChunkGrid::new(2, 2, 2, 2).unwrap();
        let store =
            FaultyStore::new(Arc::new(MemoryStore::new(grid)), FaultPlan { persistent: true, ..FaultPlan::read(1) });
        for _ in 0..3 {
            assert!(store.read_chunk(ChunkIndex::new(0, 0)).is_err());
        }
    }
}
