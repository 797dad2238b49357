//! A chunk's file: opened through the page cache or with direct I/O (`O_DIRECT`), read (never
//! mapped: a file cut while mapped would kill the process with SIGBUS) in one request into a
//! page-aligned buffer, and its failures named by array, chunk and file.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{StorageError, StorageResult};
use crate::grid::ChunkIndex;

/// Alignment of direct I/O buffers, offsets and lengths: a page, a multiple of every
/// logical block size Linux file systems use.
pub(super) const DIRECT_ALIGN: usize = 4096;

thread_local! {
    /// A thread's buffer for whole-file reads, grown to the largest chunk file it has read.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An open chunk file of an array.
pub(super) struct ChunkFile<'a> {
    pub(super) file: File,
    pub(super) path: PathBuf,
    /// The array's directory.
    array: &'a Path,
    index: ChunkIndex,
}

impl<'a> ChunkFile<'a> {
    /// Opens `path`, chunk `index` of the array at `array` (with `O_DIRECT` when `direct`), or
    /// `None` when Zarr never stored it: a chunk all of the fill value.
    pub(super) fn open(array: &'a Path, index: ChunkIndex, path: PathBuf, direct: bool) -> StorageResult<Option<Self>> {
        match open_chunk_file(&path, direct) {
            Ok(file) => Ok(Some(Self { file, path, array, index })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    /// The chunk's place in its array's grid.
    pub(super) fn index(&self) -> ChunkIndex {
        self.index
    }

    /// The file's length in bytes.
    pub(super) fn len(&self) -> StorageResult<u64> {
        Ok(self.file.metadata().map_err(|e| self.io(e))?.len())
    }

    /// An I/O error on this file.
    pub(super) fn io(&self, e: std::io::Error) -> StorageError {
        // Its length was checked when it was opened: ending early, it was cut since.
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return StorageError::InputChanged {
                path: self.path.clone(),
                reason: "the chunk file ended before the length it had when the run opened it".into(),
            };
        }
        StorageError::io(&self.path, e)
    }

    /// This chunk is corrupted, for `reason`.
    pub(super) fn corrupted(&self, reason: String) -> StorageError {
        corrupted(self.array, self.index, self.path.clone(), reason)
    }
}

/// Chunk `index` of the array at `array`, stored in `file`, is corrupted, for `reason`.
pub(super) fn corrupted(array: &Path, index: ChunkIndex, file: PathBuf, reason: String) -> StorageError {
    StorageError::CorruptedChunk { path: array.to_path_buf(), index, file, reason }
}

/// Opens a chunk file for reading, with `O_DIRECT` when `direct`.
fn open_chunk_file(path: &Path, direct: bool) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    if direct {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_DIRECT);
    }
    options.open(path)
}

/// Reads `len` bytes of `file` into this thread's page-aligned buffer (so a file opened with
/// `O_DIRECT` reads too) in one request, and passes them to `f`. A file that ends early (cut
/// while it was read) is an error of kind `UnexpectedEof`.
pub(super) fn read_whole<T>(
    file: &File,
    len: usize,
    f: impl FnOnce(&[u8]) -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::unix::fs::FileExt;
    READ_BUFFER.with_borrow_mut(|buffer| {
        let rounded = len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        if buffer.len() < rounded + DIRECT_ALIGN {
            *buffer = vec![0; rounded + DIRECT_ALIGN];
        }
        let start = buffer.as_ptr().align_offset(DIRECT_ALIGN);
        let Some(aligned) = buffer.get_mut(start..start.saturating_add(rounded)) else {
            return Err(std::io::Error::new(std::io::ErrorKind::OutOfMemory, "no page-aligned buffer for direct I/O"));
        };
        let mut done = 0;
        while done < len {
            match file.read_at(&mut aligned[done..], done as u64) {
                Ok(0) => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file ended early")),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        f(&aligned[..len])
    })
}

/// Asks the kernel to start reading `path` now (`posix_fadvise(WILLNEED)`): the next chunk a
/// reader going down the rows wants, while this one is decoded and factored. A hint: failures
/// are ignored.
pub(super) fn announce(path: &Path) {
    #[cfg(target_os = "linux")]
    if let Ok(file) = File::open(path) {
        use std::os::fd::AsRawFd;
        // SAFETY: posix_fadvise only reads its arguments; the descriptor is open.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
    }
}

/// True when the file system holding the array at `path` opens its metadata with `O_DIRECT`
/// (tmpfs and some network file systems refuse it).
#[cfg(target_os = "linux")]
pub(super) fn direct_io_allowed(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    ["zarr.json", ".zarray"]
        .iter()
        .any(|name| std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path.join(name)).is_ok())
}

/// Direct I/O is Linux-only here.
#[cfg(not(target_os = "linux"))]
pub(super) fn direct_io_allowed(_path: &Path) -> bool {
    false
}
