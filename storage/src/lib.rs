//! Storage for outcore: chunk stores, the buffer manager, memory accounting.
//!
//! * [`store`]: a 2-D grid of f64 chunks on Zarr, `.npy`, or in RAM ([`ChunkStore`]).
//! * [`buffer`]: chunks in RAM under a byte budget, LRU eviction, LZ4 spilling, Dask's
//!   target/spill/pause/terminate thresholds ([`BufferManager`]).
//! * [`memory`]: process memory in Dask's categories ([`MemoryReport`]).
//!
//! This crate knows nothing of linear algebra: it does not depend on faer or on `outcore`.

pub mod buffer;
pub mod error;
pub mod grid;
pub mod leftovers;
pub mod memory;
pub mod size;
pub mod store;

pub use buffer::{
    Accounting, Admission, BlockId, BlockInfo, BlockState, BufferConfig, BufferManager, Pinned, PoolEpoch, PoolEvent,
    Reservation, Subscription, Thresholds,
};
pub use error::{StorageError, StorageResult};
pub use grid::{ChunkExtent, ChunkGrid, ChunkIndex};
pub use memory::{MemoryMonitor, MemoryPeaks, MemoryReport, MemorySample, ProcessMemory, RssSource, meminfo};
pub use size::{format_size, parse_size};
pub use store::{
    ChunkRows, ChunkStore, Compression, Dtype, FaultPlan, FaultyStore, MemoryStore, NpyStore, ReadMode,
    TranscodedStore, ZarrOptions, ZarrStore,
};
