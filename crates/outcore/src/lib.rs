//! outcore: out-of-core linear algebra. The SVD of matrices larger than RAM, streamed chunk by
//! chunk from a Zarr array, a `.npy` file, a random generator or your own memory, under a fixed
//! memory budget.
//!
//! * [`svd`]: the exact SVD by TSQR of a tall-and-skinny (or short-and-fat) matrix;
//!   [`randomized_svd`]: the top k of a matrix chunked any way, with an error estimate. Each
//!   takes any [`Input`]: a [`ChunkedMatrix`] (a Zarr array, a `.npy` file, a generator, a store
//!   of your own) or a faer matrix in RAM, borrowed and never copied whole.
//! * [`SvdPlan`] / [`RandomizedSvdPlan`] show the plan first (panels, memory) and send the large
//!   factors to a [`Destination`] (a Zarr array, your own matrix).
//! * An [`Engine`] is the memory budget and the workers; [`RunControl`] carries one run's
//!   cancel token and [event](Event) sink.
//!
//! ```
//! use outcore::{ChunkedMatrix, Distribution, Engine, SvdOptions};
//!
//! # fn main() -> outcore::Result<()> {
//! // A 20,000 x 20 random matrix in chunks of 3,000 rows, under a 64 MiB budget, on 2 threads.
//! let a = ChunkedMatrix::generated(Distribution::Normal, 42, 20_000, 20, 3_000, 20)?;
//! let engine = Engine::builder().memory_limit(64 << 20).workers(2).build()?;
//! let svd = outcore::svd(&engine, &a, &SvdOptions::new())?;
//! assert_eq!(svd.s.len(), 20);
//! assert!(svd.s.windows(2).all(|w| w[0] >= w[1]));
//! assert_eq!(svd.u_matrix().map(|u| u.shape()), Some((20_000, 20)));
//! # Ok(())
//! # }
//! ```
//!
//! A store of your own is a [`ChunkStore`](storage::ChunkStore) of a few methods (see the
//! `custom_store` example). Work of your own runs under the same engine as a task graph
//! ([`graph`]); ranks of an MPI job share a run through [`cluster`].
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
mod error;
mod linalg;
mod matrix;
mod output;
mod run;
mod task;

pub use error::{Error, MemoryError, Result};
pub use linalg::copy::copy_matrix;
pub use linalg::input::Input;
pub use linalg::lstsq::{LstsqOptions, LstsqPlan, LstsqResult, lstsq};
pub use linalg::qr::{QrMode, QrOptions, QrPlan, QrResult, qr};
pub use linalg::result::{Centered, ColumnMoments, SvdResult};
pub use linalg::rsvd::{
    ErrorEstimate, RandomizedMethod, RandomizedSvdOptions, RandomizedSvdPlan, RandomizedSvdResult, randomized_svd,
};
pub use linalg::state::FactorState;
pub use linalg::tsqr::{SvdOptions, SvdPlan, svd};
pub use matrix::{ChunkedMatrix, Distribution};
pub use output::{Destination, Factor};
pub use run::{Engine, EngineBuilder, Event, EventSink, RunControl, RunStats, Scheduler};
pub use task::CancelToken;

/// Task graphs of your own, run under an engine's memory budget, schedulers and events: describe
/// the work as a [`TaskGraph`](graph::TaskGraph) of ops, implement
/// [`Executor`](graph::Executor) for the op type, and run it with [`Engine::run_graph`] (the
/// `large-svd means` workload is built this way). Reductions take the shape of
/// [`reduction_tree`](graph::reduction_tree), as the library's own do.
pub mod graph {
    pub use crate::task::{
        Block, Executor, Key, Operation, Results, Stage, Task, TaskGraph, TaskId, Work, WorkerScratch, reduction_tree,
    };
}

/// Output directories that appear atomically, and small results written as Zarr arrays: what a
/// program that writes its results as files needs (the `large-svd` command line does).
pub mod files {
    pub use crate::output::{OutputDir, check_no_overlap};
    #[cfg(feature = "zarr")]
    pub use crate::output::{write_matrix_zarr, write_vector_zarr};
}

/// The storage layer: chunk stores (Zarr, `.npy`, memory), the buffer manager (the memory
/// pool), memory reports.
pub use outcore_storage as storage;
pub use outcore_storage::{Accounting, Knob, MemoryReport, Message, Thresholds};

/// faer, the dense linear algebra outcore computes with and returns results in.
pub use faer;

/// What most programs need, in one `use outcore::prelude::*`.
pub mod prelude {
    pub use crate::{
        ChunkedMatrix, Destination, Engine, Error, RandomizedSvdOptions, Result, RunControl, SvdOptions,
        randomized_svd, svd,
    };
}

/// The README's examples, compiled as doc tests so they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
