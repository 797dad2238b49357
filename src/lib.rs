//! outcore: out-of-core linear algebra. The SVD of matrices larger than RAM, streamed chunk by
//! chunk from a Zarr array, a `.npy` file or a random generator under a fixed memory budget.
//!
//! ```
//! use outcore::{ChunkedMatrix, Distribution, Engine, Scheduler, TsqrOptions, tsqr_svd};
//!
//! # fn main() -> outcore::Result<()> {
//! // A 20,000 x 20 random matrix in chunks of 3,000 rows, under a 64 MiB budget, on 2 threads.
//! let a = ChunkedMatrix::generated(Distribution::Normal, 42, 20_000, 20, 3_000, 20)?;
//! let mut config = outcore::BufferConfig::new(64 << 20);
//! config.thresholds = outcore::Thresholds { spill: None, pause: None, terminate: None, ..Default::default() };
//! let engine = Engine::with_config(config, Scheduler::Threads { workers: 2 })?;
//! let svd = tsqr_svd(&engine, &a, &TsqrOptions::default())?;
//! assert_eq!(svd.s.len(), 20);
//! assert!(svd.s.windows(2).all(|w| w[0] >= w[1]));
//! let (u, v) = svd.dense_vectors()?;
//! assert_eq!((u.shape(), v.shape()), ((20_000, 20), (20, 20)));
//! # Ok(())
//! # }
//! ```

pub mod copy;
pub mod engine;
pub mod error;
pub mod graph;
pub mod linalg;
pub mod matrix;
pub mod means;
pub mod output;
pub mod schedule;
pub mod timeline;

pub use engine::Engine;
pub use error::{Error, Result};
pub use linalg::tsqr::{TsqrOptions, TsqrPlan, tsqr_svd};
pub use linalg::{Factor, SvdResult};
pub use matrix::{ChunkedMatrix, Distribution, GeneratedStore, MatrixReader};
pub use outcore_storage::{self as storage, BufferConfig, BufferManager, MemoryReport, Thresholds};
pub use schedule::{Progress, RunStats, Scheduler};

/// The README's examples, compiled as doc tests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
