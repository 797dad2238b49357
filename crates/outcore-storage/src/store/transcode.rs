//! Decode once: a compressed store read by a multi-pass algorithm, each chunk decoded on its
//! first read and kept as raw f64 in a local directory for every later read.
//!
//! Without it every pass decoded the whole store again (the cost is in docs/decisions.md).
//! Raw local copies are read at the speed of the page cache (or the disk), and take the
//! matrix's uncompressed size on disk, in a directory named like spill directories (so a
//! killed run's copy is removed by the next run) and removed when the store is dropped.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::grid::{ChunkGrid, ChunkIndex};
use crate::leftovers::SPILL_PREFIX;
use crate::store::{ChunkStore, Dtype};
use crate::{StorageError, StorageResult};

/// `inner`, with each chunk decoded once into a raw local copy.
#[derive(Debug)]
pub struct TranscodedStore {
    inner: Arc<dyn ChunkStore>,
    dir: tempfile::TempDir,
    /// Per chunk (row-major over the grid): its raw copy is complete.
    copied: Vec<AtomicBool>,
}

impl TranscodedStore {
    /// Wraps `inner`, keeping raw copies in a new directory under `parent` (the spill parent;
    /// the system's temporary directory when `None`). `None` when the copies (the matrix's
    /// raw size) would take more than half the free space there: the disk is left to spills.
    pub fn new(inner: Arc<dyn ChunkStore>, parent: Option<&Path>) -> StorageResult<Option<Self>> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        crate::leftovers::remove_leftovers(&parent, SPILL_PREFIX);
        let raw = inner.grid().bytes();
        if free_bytes(&parent).is_none_or(|free| raw > free / 2) {
            return Ok(None);
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{SPILL_PREFIX}{}-decoded-", crate::leftovers::process_tag()))
            .tempdir_in(&parent)
            .map_err(|e| StorageError::io(&parent, e))?;
        let (rows, cols) = inner.grid().grid_shape();
        let chunks = rows * cols;
        Ok(Some(Self { inner, dir, copied: (0..chunks).map(|_| AtomicBool::new(false)).collect() }))
    }

    fn slot(&self, index: ChunkIndex) -> usize {
        index.row * self.inner.grid().grid_shape().1 + index.col
    }

    fn file(&self, index: ChunkIndex) -> PathBuf {
        self.dir.path().join(format!("{}-{}.f64", index.row, index.col))
    }

    /// Writes the raw copy of a chunk (under a temporary name, renamed when complete).
    fn keep(&self, index: ChunkIndex, values: &[f64]) -> std::io::Result<()> {
        let path = self.file(index);
        let partial = path.with_extension("partial");
        let mut file = File::create(&partial)?;
        file.write_all(bytemuck::cast_slice(values))?;
        drop(file);
        std::fs::rename(&partial, &path)
    }
}

/// Bytes free for an unprivileged user on the filesystem holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a NUL-terminated path and a pointer to writable space for one statvfs.
    if unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

impl ChunkStore for TranscodedStore {
    fn grid(&self) -> ChunkGrid {
        self.inner.grid()
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let slot = self.slot(index);
        if self.copied.get(slot).is_some_and(|c| c.load(Ordering::Acquire)) {
            let len = self.inner.grid().extent(index)?.len();
            let path = self.file(index);
            // Reused buffers are not zeroed again: the read overwrites every value.
            out.truncate(len);
            out.resize(len, 0.0);
            let mut file = File::open(&path).map_err(|e| StorageError::io(&path, e))?;
            return file.read_exact(bytemuck::cast_slice_mut(out)).map_err(|e| StorageError::io(&path, e));
        }
        self.inner.read_chunk_into(index, out)?;
        // A copy that cannot be written (a full disk) only means decoding again next time.
        if self.keep(index, out).is_ok()
            && let Some(c) = self.copied.get(slot)
        {
            c.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn location(&self) -> Option<&Path> {
        self.inner.location()
    }

    fn dtype(&self) -> Dtype {
        self.inner.dtype()
    }

    fn read_scratch_bytes(&self) -> u64 {
        self.inner.read_scratch_bytes()
    }

    fn decodes(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    /// Counts reads of the store it wraps.
    #[derive(Debug)]
    struct Counting(MemoryStore, std::sync::atomic::AtomicUsize);

    impl ChunkStore for Counting {
        fn grid(&self) -> ChunkGrid {
            self.0.grid()
        }
        fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.read_chunk_into(index, out)
        }
        fn write_chunk(&self, index: ChunkIndex, data: &[f64]) -> StorageResult<()> {
            self.0.write_chunk(index, data)
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    #[test]
    fn each_chunk_is_decoded_once_and_the_copies_go_with_the_store() {
        let grid = ChunkGrid::new(7, 5, 3, 2).unwrap();
        let data: Vec<f64> = (0..35).map(|x| x as f64 * 0.25 - 3.0).collect();
        let inner = Arc::new(Counting(MemoryStore::from_row_major(grid, &data).unwrap(), Default::default()));
        let parent = tempfile::tempdir().unwrap();
        let store = TranscodedStore::new(inner.clone(), Some(parent.path())).unwrap().expect("room for 280 bytes");
        let dir = store.dir.path().to_path_buf();
        for _pass in 0..3 {
            let mut out = Vec::new();
            for index in grid.indices() {
                store.read_chunk_into(index, &mut out).unwrap();
                assert_eq!(out, inner.0.read_chunk(index).unwrap(), "chunk {index}");
            }
        }
        assert_eq!(inner.1.load(Ordering::Relaxed), grid.indices().count(), "decoded once each");
        assert!(dir.is_dir() && dir.file_name().unwrap().to_str().unwrap().starts_with(SPILL_PREFIX));
        drop(store);
        assert!(!dir.exists(), "the raw copies are removed with the store");
    }
}
