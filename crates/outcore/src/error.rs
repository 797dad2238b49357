//! The engine's error types. Memory conditions have their own type ([`MemoryError`]); other
//! storage failures are wrapped unchanged, so callers can tell "out of memory" from "corrupted
//! chunk" with one `match`.
//!
//! Messages name what to change as data ([`Knob`]): `Display` calls each knob by its API name in
//! backticks (`` `memory_limit` ``, `` `oversamples` ``, `` `check_finite = false` ``);
//! [`Error::render`] by the caller's names, as the command line does with its flags.

use outcore_storage::{ChunkIndex, Knob, MemoryReport, Message, Namer, StorageError, format_size};

/// Result alias for outcore.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in outcore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A storage failure: I/O, Zarr, corruption, spill files.
    #[error(transparent)]
    Storage(StorageError),

    /// The memory limit cannot hold the work (see [`MemoryError`]).
    #[error(transparent)]
    Memory(#[from] MemoryError),

    /// Another rank of a distributed run failed (or could not be reached); every rank ends with
    /// the same error.
    #[error("rank {rank}: {message}")]
    Cluster {
        /// The rank where it happened.
        rank: usize,
        /// What went wrong there.
        message: Message,
        /// Whether it was an internal error (a bug) there.
        bug: bool,
    },

    /// A parameter is out of range or inconsistent.
    #[error("invalid {}: {reason}", knob.quoted())]
    InvalidArgument {
        /// Which parameter.
        knob: Knob,
        /// Why, and what would be valid.
        reason: Message,
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
    #[error("{}", non_finite(what, *index, *row, *col, &Knob::quoted))]
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

    /// The run was cancelled through its [`CancelToken`](crate::CancelToken). Outputs the run
    /// created were removed; a store the caller handed in may hold part of a result.
    #[error("the run was cancelled")]
    Interrupted,

    /// A saved [`FactorState`](crate::FactorState) that cannot be read back: not a state
    /// file, another version, cut short, or damaged.
    #[error("{what} is not a usable outcore state: {reason}")]
    StateFile {
        /// The file (its path), or the bytes given.
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A broken internal invariant: a bug in outcore, not a problem with the input.
    #[error("internal error (a bug in outcore, please report it): {0}")]
    Bug(String),
}

/// The memory limit cannot hold the work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The plan needs more than the limit even with one task at a time; refused before any work.
    #[error("{}", limit_too_small(algorithm, *limit, *needed, detail, &Knob::quoted))]
    LimitTooSmall {
        /// The algorithm planned.
        algorithm: &'static str,
        /// The limit given.
        limit: u64,
        /// The smallest limit that works.
        needed: u64,
        /// What the memory is for.
        detail: String,
    },

    /// A reservation cannot be met: everything is pinned or reserved and nothing will be
    /// released.
    #[error(transparent)]
    Exhausted(StorageError),

    /// The worker's memory stays above the pause threshold with nothing running.
    #[error(transparent)]
    Paused(StorageError),

    /// The worker's memory crossed the terminate threshold.
    #[error(transparent)]
    Terminated(StorageError),
}

impl MemoryError {
    /// `Ok` when `needed` bytes fit under `limit`; else [`MemoryError::LimitTooSmall`] for
    /// `algorithm`, with `detail()` saying what the memory is for. Plans and graph builders
    /// call it before they allocate what they would need.
    pub fn check_limit(
        algorithm: &'static str,
        limit: u64,
        needed: u64,
        detail: impl FnOnce() -> String,
    ) -> std::result::Result<(), Error> {
        if needed <= limit {
            return Ok(());
        }
        Err(Self::LimitTooSmall { algorithm, limit, needed, detail: detail() }.into())
    }

    /// The memory categories when the condition was found, where there is such a report.
    pub fn report(&self) -> Option<&MemoryReport> {
        match self {
            Self::Paused(StorageError::MemoryPaused { report, .. })
            | Self::Terminated(StorageError::MemoryTerminated { report, .. }) => Some(report),
            _ => None,
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            e @ StorageError::ResourcesExhausted { .. } => Self::Memory(MemoryError::Exhausted(e)),
            e @ StorageError::MemoryPaused { .. } => Self::Memory(MemoryError::Paused(e)),
            e @ StorageError::MemoryTerminated { .. } => Self::Memory(MemoryError::Terminated(e)),
            e => Self::Storage(e),
        }
    }
}

/// A size rounded up to whole MiB, as limits are written (`81MiB`).
fn needed_arg(bytes: u64) -> String {
    format!("{}MiB", bytes.div_ceil(1 << 20))
}

fn non_finite(what: &str, index: ChunkIndex, row: usize, col: usize, name: Namer<'_>) -> String {
    format!(
        "{what} has a non-finite value (NaN or infinity) in chunk {index}, at row {row}, column {col}; clean the data (or set {} to skip this check)",
        name(Knob::CheckFinite)
    )
}

fn limit_too_small(algorithm: &str, limit: u64, needed: u64, detail: &str, name: Namer<'_>) -> String {
    format!(
        "memory limit {} is too small for {algorithm}: it needs at least {} ({detail}); raise {} to {} or more",
        format_size(limit),
        format_size(needed),
        name(Knob::MemoryLimit),
        needed_arg(needed)
    )
}

impl Error {
    /// An [`Error::InvalidArgument`] about `knob`.
    pub fn invalid(knob: Knob, reason: impl Into<Message>) -> Self {
        Self::InvalidArgument { knob, reason: reason.into() }
    }

    /// The message with each knob named by `name` (`Display` names them by their API names):
    /// the command line passes its flags.
    pub fn render(&self, name: Namer<'_>) -> String {
        match self {
            Self::Storage(e) => e.render(name),
            Self::Memory(e) => e.render(name),
            Self::Cluster { rank, message, .. } => format!("rank {rank}: {}", message.render(name)),
            Self::InvalidArgument { knob, reason } => format!("invalid {}: {}", name(*knob), reason.render(name)),
            Self::NonFinite { what, index, row, col } => non_finite(what, *index, *row, *col, name),
            other => other.to_string(),
        }
    }

    /// The message with its knobs as data, as it travels to other ranks.
    pub(crate) fn message(&self) -> Message {
        Message::from_marked(&self.render(&|k| Message::new().knob(k).marked()))
    }
}

impl MemoryError {
    /// The message with each knob named by `name`.
    pub fn render(&self, name: Namer<'_>) -> String {
        match self {
            Self::LimitTooSmall { algorithm, limit, needed, detail } => {
                limit_too_small(algorithm, *limit, *needed, detail, name)
            }
            Self::Exhausted(e) | Self::Paused(e) | Self::Terminated(e) => e.render(name),
        }
    }
}

/// What a caught panic said.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
