//! What this program reads of the process and the machine: its own footprint outside the pool,
//! CPUs, RAM, peak RSS.

use outcore::Engine;
use outcore::storage::{RssSource, meminfo};

/// What this process holds outside outcore's pool, which plans under process accounting leave
/// room for: code and data as they are paged in, thread stacks, allocator state (measured in
/// docs/decisions.md; the unoptimized build the tests run holds more). A constant per build,
/// so plans never depend on the RSS of the moment.
pub(crate) fn process_overhead() -> u64 {
    if cfg!(debug_assertions) { 24 << 20 } else { Engine::DEFAULT_PROCESS_OVERHEAD }
}

/// The machine's CPUs (1 where unknown).
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Physical memory of the machine, from /proc/meminfo (8 GiB where unknown).
pub(crate) fn total_ram() -> u64 {
    meminfo("MemTotal").unwrap_or(8 << 30)
}

/// Peak resident set size of this process so far.
pub(crate) fn peak_rss() -> u64 {
    RssSource::Process.sample().peak
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) so the next phase is measured on its own.
pub(crate) fn reset_peak_rss() {
    // Linux: writing 5 to clear_refs resets VmHWM. Elsewhere this does nothing.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
