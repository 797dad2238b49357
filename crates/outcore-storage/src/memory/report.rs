//! The memory snapshot and the sliding window behind "unmanaged recent".

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::thresholds::{Accounting, Thresholds};
use crate::size::format_size;

/// A snapshot of memory in Dask's categories, plus peaks and spill activity.
///
/// `process = host + managed + unmanaged_old + unmanaged_recent` holds exactly. All sizes are
/// bytes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MemoryReport {
    /// The memory limit the thresholds are fractions of.
    pub limit: u64,
    /// The thresholds in force (fractions of `limit`; absent when disabled).
    pub thresholds: Thresholds,
    /// What the thresholds compare: the pool's own bytes, or the process's RSS.
    pub accounting: Accounting,
    /// Resident set size of the process.
    pub process: u64,
    /// Under own accounting, the part of `process` that is the host's, never counted against
    /// the limit: the process's RSS when the pool was made, what other pools in the process
    /// hold now, and whatever grew since beyond the most outcore itself holds outside its pool
    /// ([`OWN_UNMANAGED_ALLOWANCE`](crate::OWN_UNMANAGED_ALLOWANCE)). Zero under
    /// process accounting, where the process is the worker.
    pub host: u64,
    /// Managed bytes as counted in `process`: `min(managed_accounted, process)`.
    pub managed: u64,
    /// `process - host - managed`: code, thread stacks, allocator slack, kernel scratch.
    pub unmanaged: u64,
    /// Minimum of unmanaged over the history window.
    pub unmanaged_old: u64,
    /// `unmanaged - unmanaged_old`.
    pub unmanaged_recent: u64,
    /// Bytes of spill files on disk.
    pub spilled: u64,
    /// Exact managed bytes: resident chunk data plus reservations (reserved memory that is not
    /// yet touched is not in the RSS yet, hence the cap in `managed`).
    pub managed_accounted: u64,
    /// Of `managed_accounted`, bytes reserved for running work rather than held as chunks.
    pub reserved: u64,
    /// Chunks held in RAM.
    pub resident_chunks: usize,
    /// Chunks held only in spill files.
    pub spilled_chunks: usize,
    /// Highest resident set size of the process so far.
    pub peak_process: u64,
    /// Highest `managed_accounted` so far.
    pub peak_managed: u64,
    /// Highest `spilled` so far.
    pub peak_spilled: u64,
    /// Chunks written to spill files so far.
    pub spill_count: u64,
    /// Chunks read back from spill files so far.
    pub reload_count: u64,
}

impl MemoryReport {
    /// The memory the spill, pause and terminate thresholds compare: the pool's own bytes
    /// (`managed_accounted`), or the process's RSS under process accounting.
    pub fn worker_memory(&self) -> u64 {
        match self.accounting {
            Accounting::Own => self.managed_accounted,
            Accounting::Process => self.process,
        }
    }

    /// What [`worker_memory`](Self::worker_memory) is, for messages.
    pub fn worker_memory_name(&self) -> &'static str {
        match self.accounting {
            Accounting::Own => "the pool's own memory",
            Accounting::Process => "process memory",
        }
    }
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = format_size;
        let t = &self.thresholds;
        let pct = |v: Option<f64>| v.map_or_else(|| "off".to_string(), |v| format!("{:.0}%", v * 100.0));
        writeln!(
            f,
            "memory (limit {} of {}; target {}, spill {}, pause {}, terminate {})",
            s(self.limit),
            self.worker_memory_name(),
            pct(t.target),
            pct(t.spill),
            pct(t.pause),
            pct(t.terminate)
        )?;
        writeln!(f, "  process          {:>10}  (peak {})", s(self.process), s(self.peak_process))?;
        if self.accounting == Accounting::Own {
            writeln!(f, "  host             {:>10}  (not counted against the limit)", s(self.host))?;
        }
        writeln!(
            f,
            "  managed          {:>10}  (peak {}; {} chunks in RAM, {} reserved)",
            s(self.managed),
            s(self.peak_managed),
            self.resident_chunks,
            s(self.reserved)
        )?;
        writeln!(f, "  unmanaged old    {:>10}", s(self.unmanaged_old))?;
        writeln!(f, "  unmanaged recent {:>10}", s(self.unmanaged_recent))?;
        write!(
            f,
            "  spilled          {:>10}  (peak {}; {} chunks on disk; {} spills, {} reloads)",
            s(self.spilled),
            s(self.peak_spilled),
            self.spilled_chunks,
            self.spill_count,
            self.reload_count
        )
    }
}

/// Sliding-window minimum of unmanaged memory (Dask's "unmanaged old").
///
/// A monotonic deque: O(1) amortized per sample, whatever the sampling rate.
#[derive(Debug)]
pub struct UnmanagedHistory {
    window: Duration,
    samples: VecDeque<(Instant, u64)>,
}

impl UnmanagedHistory {
    /// History over `window` (Dask uses 30 s).
    pub fn new(window: Duration) -> Self {
        Self { window, samples: VecDeque::new() }
    }

    /// Records `unmanaged` at `now`; returns the minimum over the window, this sample included.
    pub fn record(&mut self, now: Instant, unmanaged: u64) -> u64 {
        while self.samples.back().is_some_and(|&(_, v)| v >= unmanaged) {
            self.samples.pop_back();
        }
        self.samples.push_back((now, unmanaged));
        while self.samples.front().is_some_and(|&(t, _)| now.duration_since(t) > self.window) {
            self.samples.pop_front();
        }
        // The sample just pushed is never expired, so the deque is not empty.
        self.samples.front().map_or(unmanaged, |&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_tracks_the_window_minimum() {
        let mut h = UnmanagedHistory::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(h.record(t0, 100), 100);
        assert_eq!(h.record(t0 + Duration::from_secs(1), 150), 100);
        assert_eq!(h.record(t0 + Duration::from_secs(2), 120), 100);
        // 100 leaves the window; 120 is the minimum of what remains.
        assert_eq!(h.record(t0 + Duration::from_secs(32), 200), 120);
        assert_eq!(h.record(t0 + Duration::from_secs(40), 90), 90);
    }
}
