//! outcore: out-of-core linear algebra. The SVD of matrices larger than RAM, streamed chunk by
//! chunk from a Zarr array, a `.npy` file, a random generator or your own memory, under a fixed
//! memory budget.
//!
//! * [`svd`] / [`randomized_svd`]: one call on a matrix you hold (a faer [`MatRef`](faer::MatRef),
//!   borrowed, never copied whole).
//! * [`tsqr_svd`] / [`rsvd`] on a [`ChunkedMatrix`] (Zarr, `.npy`, generated), or
//!   [`TsqrPlan`] / [`RsvdPlan`] to see the plan first and send the factors to a
//!   [`Destination`] (a Zarr array, your own matrix).
//! * An [`Engine`] is the memory budget and the workers; [`RunControl`] carries one run's
//!   cancel token and [event](Event) sink.
//!
//! ```
//! use outcore::{ChunkedMatrix, Distribution, Engine, TsqrOptions, tsqr_svd};
//!
//! # fn main() -> outcore::Result<()> {
//! // A 20,000 x 20 random matrix in chunks of 3,000 rows, under a 64 MiB budget, on 2 threads.
//! let a = ChunkedMatrix::generated(Distribution::Normal, 42, 20_000, 20, 3_000, 20)?;
//! let engine = Engine::builder().memory_limit(64 << 20).workers(2).build()?;
//! let svd = tsqr_svd(&engine, &a, &TsqrOptions::new())?;
//! assert_eq!(svd.s.len(), 20);
//! assert!(svd.s.windows(2).all(|w| w[0] >= w[1]));
//! assert_eq!(svd.u_matrix().map(|u| u.shape()), Some((20_000, 20)));
//! # Ok(())
//! # }
//! ```
//!
//! # Whose memory the limit counts
//!
//! By default ([`Accounting::Own`]) the limit counts what the engine holds: chunks in RAM and
//! reservations for every task's working set, scratch and buffers, reserved before they are
//! allocated. The host program's memory (a Python interpreter, your own arrays, other engines)
//! is never counted against it; the memory report shows it on its own line. Under
//! [`Accounting::Process`] the limit counts the whole process's RSS, as Dask's workers do: the
//! mode of the `large-svd` command line, where the process is the worker. Engines share one
//! budget by sharing one pool ([`Engine::memory_pool`], [`EngineBuilder::memory_pool`], or a
//! clone of the engine).

pub mod cluster;
mod control;
mod copy;
mod engine;
mod error;
pub mod events;
pub mod graph;
mod linalg;
mod matrix;
pub mod output;
mod schedule;

pub use control::{CancelToken, DEFAULT_MEMORY_INTERVAL, RunControl};
pub use copy::copy_matrix;
pub use engine::{DEFAULT_MEMORY_LIMIT, DEFAULT_PROCESS_OVERHEAD, Engine, EngineBuilder, MAX_WORKERS};
pub use error::{Error, MemoryError, Result};
pub use events::{Event, EventSink};
pub use linalg::in_memory::{randomized_svd, randomized_svd_with, rsvd_chunk_shape, svd, svd_with, tsqr_chunk_shape};
pub use linalg::rsvd::{
    DEFAULT_POWER_ITERS, ErrorEstimate, MAX_POWER_ITERS, MAX_PROBES, RsvdMethod, RsvdOptions, RsvdPlan, RsvdResult,
    rsvd,
};
pub use linalg::tsqr::{TsqrOptions, TsqrPlan, tsqr_svd};
pub use linalg::{Centred, Factor, SvdResult};
pub use matrix::{ChunkedMatrix, Distribution};
pub use output::Destination;
pub use schedule::{RunStats, Scheduler};

/// The storage layer: chunk stores (Zarr, `.npy`, memory), the buffer manager (the memory
/// pool), memory reports.
pub use outcore_storage as storage;
pub use outcore_storage::{Accounting, MemoryReport, Thresholds};

/// faer, the dense linear algebra outcore computes with and returns results in.
pub use faer;

/// What most programs need, in one `use outcore::prelude::*`.
pub mod prelude {
    pub use crate::{
        ChunkedMatrix, Destination, Engine, Error, Result, RsvdOptions, RunControl, TsqrOptions, randomized_svd, rsvd,
        svd, tsqr_svd,
    };
}

/// The README's examples, compiled as doc tests so they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
