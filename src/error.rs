//! The engine's error type. Storage errors are wrapped unchanged, so callers can still tell
//! "out of memory" from "corrupted chunk".

use outcore_storage::{ChunkIndex, StorageError, format_size};

/// Result alias for outcore.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in outcore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A storage failure: I/O, Zarr, corruption, memory limits.
    #[error(transparent)]
    Storage(#[from] StorageError),

    /// A parameter is out of range or inconsistent.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// Which parameter.
        what: &'static str,
        /// Why, and what would be valid.
        reason: String,
    },

    /// The memory limit is below what the plan needs even with one worker.
    #[error(
        "memory limit {} is too small for {algorithm}: it needs at least {} ({detail}); pass --memory-limit {} or more",
        format_size(*limit), format_size(*needed), needed_arg(*needed)
    )]
    MemoryLimitTooSmall {
        /// The algorithm planned.
        algorithm: &'static str,
        /// The limit given.
        limit: u64,
        /// The smallest limit that works.
        needed: u64,
        /// What the memory is for.
        detail: String,
    },

    /// A dense SVD or eigendecomposition did not converge.
    #[error(
        "the SVD of the {rows} x {cols} reduced matrix did not converge; the input may contain huge or tiny values (check for overflow), or report it as a bug"
    )]
    NoConvergence {
        /// Rows of the matrix whose SVD failed.
        rows: usize,
        /// Columns of the matrix whose SVD failed.
        cols: usize,
    },

    /// The input holds NaN or infinity.
    #[error(
        "{what} has a non-finite value (NaN or infinity) in chunk {index}, at row {row}, column {col}; clean the data (or pass --no-check-finite to skip this check)"
    )]
    NonFinite {
        /// The input.
        what: String,
        /// The chunk.
        index: ChunkIndex,
        /// Matrix row of the first non-finite value.
        row: usize,
        /// Matrix column of the first non-finite value.
        col: usize,
    },

    /// The run was cancelled (Ctrl-C).
    #[error("interrupted; no output was written")]
    Interrupted,

    /// A broken internal invariant: a bug in outcore, not a problem with the input.
    #[error("internal error (a bug in outcore, please report it): {0}")]
    Bug(String),
}

/// A size rounded up to whole MiB, as `--memory-limit` takes it.
fn needed_arg(bytes: u64) -> String {
    format!("{}MiB", bytes.div_ceil(1 << 20))
}

impl Error {
    /// An [`Error::InvalidArgument`].
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { what, reason: reason.into() }
    }
}
