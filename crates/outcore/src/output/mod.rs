//! Where results go: a [`Destination`] for a singular-vector factor (RAM, the caller's
//! matrix, a new Zarr array, the caller's store), the [`Factor`] a run returns for it, and
//! [`OutputDir`], a directory of results that appears atomically.
//!
//! Nothing appears under an output's final name unless the run succeeded. An output the run
//! creates is built under a hidden sibling name (`.NAME.partial-PID`, on the same filesystem)
//! and renamed into place on success; dropped without a commit (an error, a panic, a
//! cancellation), it is removed. An existing target is refused unless overwriting was asked
//! for; then it is replaced only once the new result is complete. An output never overlaps the
//! input it is computed from.

mod dir;
mod factor;
mod sink;

#[cfg(feature = "zarr")]
use std::path::PathBuf;
use std::sync::Arc;

use faer::MatMut;
use outcore_storage::ChunkStore;

pub use dir::{OutputDir, check_no_overlap};
#[cfg(feature = "zarr")]
pub use dir::{write_matrix_zarr, write_vector_zarr};
pub use factor::Factor;
pub(crate) use sink::{Sink, check_apart, check_shareable};

/// Where a large singular-vector factor goes: U of a tall matrix (V of a wide one) for TSQR,
/// U and V for the randomized SVD.
#[derive(Debug)]
#[non_exhaustive]
pub enum Destination<'a> {
    /// Kept in RAM and returned as [`Factor::Dense`]. It is the caller's result, allocated
    /// outside the memory limit: for factors larger than RAM write them to a store.
    Memory,
    /// Written into the caller's matrix, which must have the factor's shape (any layout);
    /// returned as [`Factor::Written`].
    Into(MatMut<'a, f64>),
    /// A new Zarr v3 array at this path, created by the run: it appears there only if the run
    /// succeeds (returned as [`Factor::Stored`]). The path must not exist or overlap the input.
    /// (Feature `zarr`.)
    #[cfg(feature = "zarr")]
    Zarr(PathBuf),
    /// The caller's store, of the plan's factor grid, written chunk by chunk. If the run fails
    /// or is cancelled, it holds part of the factor.
    Store(Arc<dyn ChunkStore>),
}
