//! Storage for outcore: chunk stores, the buffer manager, memory accounting.
//!
//! * Chunk stores: a 2-D grid of f64 chunks in Zarr (feature `zarr`, on by default), a `.npy`
//!   file, or RAM ([`ChunkStore`], [`ZarrStore`], [`NpyStore`], [`MemoryStore`]).
//! * The buffer manager: chunks in RAM under a byte budget, LRU eviction, LZ4 spilling, Dask's
//!   target/spill/pause/terminate thresholds ([`BufferManager`]; its module documentation is
//!   the design).
//! * Memory in Dask's categories ([`MemoryReport`]), sampled over time ([`MemoryMonitor`]).
//!
//! This crate knows nothing of linear algebra: it does not depend on faer or on `outcore`.
//! Every item has one path: the list below.

mod buffer;
mod error;
mod grid;
mod knob;
mod leftovers;
mod memory;
mod size;
mod store;
#[cfg(feature = "testing")]
mod testing;

pub use buffer::{
    Admission, BlockId, BlockInfo, BlockState, BufferConfig, BufferManager, MemoryMonitor, MemoryPeaks, MemorySample,
    OWN_UNMANAGED_ALLOWANCE, Pinned, PoolEpoch, PoolEvent, Reservation, Subscription,
};
pub use error::{StorageError, StorageResult};
pub use grid::{ChunkExtent, ChunkGrid, ChunkIndex};
pub use knob::{Knob, Message, Namer};
pub use leftovers::{SPILL_PREFIX, process_alive, process_tag, remove_leftovers};
pub use memory::{Accounting, MemoryReport, ProcessMemory, RssSource, Thresholds, UnmanagedHistory, meminfo};
pub use size::{format_size, parse_size};
pub use store::{
    ChunkRows, ChunkStore, Csr, CsrArrays, CsrParts, CsrRows, CsrStore, Dtype, MemoryStore, NpyStore, ReadMode,
    SparseIndex, TranscodedStore, extract_chunk, read_matrix, write_matrix,
};
#[cfg(feature = "zarr")]
pub use store::{Compression, ZarrOptions, ZarrStore};
#[cfg(feature = "testing")]
pub use testing::{FaultPlan, FaultyStore};
