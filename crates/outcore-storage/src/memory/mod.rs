//! Memory accounting with Dask's categories.
//!
//! * **process**: resident set size of this process, read from the OS ([`RssSource`]).
//! * **host** (own accounting only): the host program's part of the process, never counted
//!   against the limit: RSS when the pool was made, plus what other pools hold.
//! * **managed**: bytes of chunk data the buffer manager holds in RAM plus bytes reserved for
//!   running work. Exact, because the buffer manager owns them (Dask estimates with `sizeof`).
//! * **unmanaged**: `process - host - managed`: code, thread stacks, allocator slack, kernel
//!   scratch.
//! * **unmanaged old**: the minimum of unmanaged over the last 30 s (the window is configurable).
//! * **unmanaged recent**: `unmanaged - unmanaged old`, memory that appeared lately.
//! * **spilled**: bytes of spill files on disk.
//!
//! By construction `process = host + managed + unmanaged old + unmanaged recent` in every
//! [`MemoryReport`].

mod report;
mod rss;
mod thresholds;

pub use report::{MemoryReport, UnmanagedHistory};
pub use rss::{ProcessMemory, RssSource, meminfo};
pub use thresholds::{Accounting, Thresholds};
