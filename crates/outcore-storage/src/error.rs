//! The storage layer's error type: every failure is typed and says what to do next.
//!
//! Messages name the knob to turn as data ([`Knob`]): `Display` calls it by its API name in
//! backticks (`` `memory_limit` ``, `` `spill_dir` ``); [`StorageError::render`] by the caller's
//! names (the command line's flags).

use std::io;
use std::path::PathBuf;

use crate::grid::ChunkIndex;
use crate::knob::{Knob, Namer};
use crate::memory::MemoryReport;
use crate::size::format_size;

/// Result alias for the storage crate.
pub type StorageResult<T> = Result<T, StorageError>;

/// Everything that can go wrong below the linear algebra.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An operating-system I/O error on a file or directory.
    #[error("{}", io_message(path, source, &Knob::quoted))]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The path does not exist.
    #[error("{} does not exist; check the path (a Zarr array directory or a .npy file)", path.display())]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },

    /// The path exists but is not something outcore can read as a matrix.
    #[error("{} is not a matrix outcore can read: {reason}", path.display())]
    NotAnArray {
        /// The offending path.
        path: PathBuf,
        /// What was found instead, and what to pass.
        reason: String,
    },

    /// The target of a create already exists.
    #[error("{} already exists; remove it or choose another path", path.display())]
    AlreadyExists {
        /// The existing path.
        path: PathBuf,
    },

    /// An element type other than float64 or float32.
    #[error("{} holds {dtype} values; outcore reads float64 and float32 (convert with numpy's `astype('float64')`)", path.display())]
    UnsupportedDtype {
        /// The array.
        path: PathBuf,
        /// The data type found.
        dtype: String,
    },

    /// The array is not a matrix.
    #[error("{} has {ndim} dimension(s); outcore needs a 2-D matrix (reshape it to rows x columns first)", path.display())]
    NotTwoDimensional {
        /// The array.
        path: PathBuf,
        /// Its number of dimensions.
        ndim: usize,
    },

    /// Zarr metadata or codec failure that is not corruption of a chunk.
    #[error("Zarr error on {}: {message}", path.display())]
    Zarr {
        /// The array.
        path: PathBuf,
        /// zarrs' description.
        message: String,
    },

    /// A chunk failed its checksum, or its bytes are truncated or undecodable.
    #[error("chunk {index} of {} is corrupted ({}): {reason}; restore the file from a backup or regenerate the array (if a writer was replacing it during the run, run again once it is done)", path.display(), file.display())]
    CorruptedChunk {
        /// The array.
        path: PathBuf,
        /// The chunk's position in the grid.
        index: ChunkIndex,
        /// The file that holds the chunk.
        file: PathBuf,
        /// What the decoder reported.
        reason: String,
    },

    /// An input file changed while the run read it: it was cut short (truncated, or being
    /// rewritten in place). The run stops rather than mix old and new values.
    #[error("{} changed while this run read it ({reason}); the run stopped rather than mix old and new values: run again once its writer is done. To update an input others may be reading, write a new file and rename it over the old one (as zarr-python does): a running reader keeps the old one", path.display())]
    InputChanged {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },

    /// A spilled intermediate could not be read back (its file is unreadable or corrupt).
    /// Schedulers recompute such blocks from their lineage where they can.
    #[error("{}", spill_lost(cause, &Knob::quoted))]
    SpillLost {
        /// Why the reload failed.
        cause: Box<StorageError>,
    },

    /// A spill file could not be read back intact.
    #[error("spill file {} is unreadable: {reason}", path.display())]
    SpillCorrupted {
        /// The spill file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A parameter is out of range or inconsistent.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// Which parameter.
        what: &'static str,
        /// Why, and what would be valid.
        reason: String,
    },

    /// A write to a store that cannot be written.
    #[error("{store} is read-only")]
    ReadOnly {
        /// Description of the store.
        store: String,
    },

    /// A store implemented outside outcore (the caller's [`ChunkStore`](crate::ChunkStore), a
    /// Python callable) failed to produce a chunk, or produced one of the wrong size.
    #[error("reading chunk {index} of {store} failed: {message}")]
    Source {
        /// Description of the store.
        store: String,
        /// The chunk.
        index: ChunkIndex,
        /// What the host reported.
        message: String,
    },

    /// A memory request that cannot be met within the limit.
    #[error("{}", exhausted(*requested, *limit, *in_use, &Knob::quoted))]
    ResourcesExhausted {
        /// Bytes asked for.
        requested: u64,
        /// The memory limit.
        limit: u64,
        /// Bytes pinned or reserved that cannot be released now.
        in_use: u64,
    },

    /// The worker's memory crossed the terminate threshold; the run was stopped.
    #[error("{}", terminated(*threshold, report, &Knob::quoted))]
    MemoryTerminated {
        /// Bytes at which termination triggers.
        threshold: u64,
        /// The memory categories at the moment of termination.
        report: Box<MemoryReport>,
    },

    /// The worker's memory stays above the pause threshold with no work running, so nothing
    /// can start.
    #[error("{}", paused(*threshold, report, &Knob::quoted))]
    MemoryPaused {
        /// Bytes at which new work pauses.
        threshold: u64,
        /// The memory categories when this was decided.
        report: Box<MemoryReport>,
    },

    /// A broken internal invariant: a bug in outcore, not a problem with the input.
    #[error("internal error (a bug in outcore, please report it): {0}")]
    Bug(String),
}

/// An I/O error on `path`, with advice where the remedy is obvious.
fn io_message(path: &std::path::Path, source: &io::Error, name: Namer<'_>) -> String {
    let hint = match source.kind() {
        io::ErrorKind::StorageFull => format!(
            "; the disk is full: free space, or point {} (spill files) or the output at another disk",
            name(Knob::SpillDir)
        ),
        io::ErrorKind::PermissionDenied => "; check the permissions of this path, or choose another".into(),
        io::ErrorKind::ReadOnlyFilesystem => "; the filesystem is read-only: choose a writable path".into(),
        _ => String::new(),
    };
    format!("I/O error on {}: {source}{hint}", path.display())
}

fn spill_lost(cause: &StorageError, name: Namer<'_>) -> String {
    format!("spilled block could not be read back ({}); its data is lost and must be recomputed", cause.render(name))
}

fn exhausted(requested: u64, limit: u64, in_use: u64, name: Namer<'_>) -> String {
    format!(
        "cannot reserve {} under the {} memory limit: {} is pinned or reserved and nothing more can be evicted; raise {} to at least {}",
        format_size(requested),
        format_size(limit),
        format_size(in_use),
        name(Knob::MemoryLimit),
        format_size(requested + in_use)
    )
}

fn terminated(threshold: u64, report: &MemoryReport, name: Namer<'_>) -> String {
    format!(
        "{} {} crossed the terminate threshold ({} of the {} limit); the run was stopped.\n{report}\nRaise {} or lower {}",
        report.worker_memory_name(),
        format_size(report.worker_memory()),
        format_size(threshold),
        format_size(report.limit),
        name(Knob::MemoryLimit),
        name(Knob::Workers)
    )
}

fn paused(threshold: u64, report: &MemoryReport, name: Namer<'_>) -> String {
    format!(
        "{} {} stays above the pause threshold ({}) with no task running and nothing left to spill (unmanaged memory {}, reserved {}). Raise {}",
        report.worker_memory_name(),
        format_size(report.worker_memory()),
        format_size(threshold),
        format_size(report.unmanaged),
        format_size(report.reserved),
        name(Knob::MemoryLimit)
    )
}

impl StorageError {
    /// The message with each knob named by `name` (`Display` names them by their API names).
    pub fn render(&self, name: Namer<'_>) -> String {
        match self {
            Self::Io { path, source } => io_message(path, source, name),
            Self::ResourcesExhausted { requested, limit, in_use } => exhausted(*requested, *limit, *in_use, name),
            Self::MemoryTerminated { threshold, report } => terminated(*threshold, report, name),
            Self::MemoryPaused { threshold, report } => paused(*threshold, report, name),
            Self::SpillLost { cause } => spill_lost(cause, name),
            other => other.to_string(),
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// `store` gave `got` values for chunk `index`, whose extent is `rows x cols`: the store
    /// broke its contract, not outcore (a [`Source`](Self::Source) error naming the store).
    pub fn wrong_chunk_size(
        store: &dyn crate::ChunkStore,
        index: ChunkIndex,
        got: usize,
        (rows, cols): (usize, usize),
    ) -> Self {
        Self::Source {
            store: store.describe(),
            index,
            message: format!(
                "it returned {got} values where the chunk's extent holds {rows} x {cols} = {}; \
                 a store's read_chunk_into must fill `out` with the chunk's trimmed extent, row-major",
                rows * cols
            ),
        }
    }
}
