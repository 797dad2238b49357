//! Buffer manager configuration: the memory limit, thresholds and accounting, spilling.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{StorageError, StorageResult};
use crate::memory::{Accounting, RssSource, Thresholds};
use crate::size::format_size;

/// Everything a [`BufferManager`](super::BufferManager) needs to know.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BufferConfig {
    /// Bytes the thresholds are fractions of, and the hard cap on managed bytes.
    pub memory_limit: u64,
    /// The four thresholds.
    pub thresholds: Thresholds,
    /// What the spill, pause and terminate thresholds compare (default: the pool's own bytes).
    pub accounting: Accounting,
    /// Where the spill directory is created (a fresh temporary directory inside it, removed on
    /// drop); the system temporary directory when `None`.
    pub spill_parent: Option<PathBuf>,
    /// Compress spill files with LZ4 (default on).
    pub compress_spills: bool,
    /// Where process RSS is read from (for the report; and for the thresholds under
    /// [`Accounting::Process`]).
    pub rss: RssSource,
    /// Window of the "unmanaged old" minimum (Dask: 30 s).
    pub unmanaged_window: Duration,
}

impl BufferConfig {
    /// Default thresholds and spilling under `memory_limit` bytes.
    pub fn new(memory_limit: u64) -> Self {
        Self {
            memory_limit,
            thresholds: Thresholds::default(),
            accounting: Accounting::Own,
            spill_parent: None,
            compress_spills: true,
            rss: RssSource::Process,
            unmanaged_window: Duration::from_secs(30),
        }
    }

    /// Replaces the thresholds.
    pub fn with_thresholds(mut self, thresholds: Thresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Compares the thresholds with `accounting`.
    pub fn with_accounting(mut self, accounting: Accounting) -> Self {
        self.accounting = accounting;
        self
    }

    /// Compresses spill files with LZ4 or not.
    pub fn with_compressed_spills(mut self, compress: bool) -> Self {
        self.compress_spills = compress;
        self
    }

    /// Sets the window of "unmanaged old" (Dask: 30 s).
    pub fn with_unmanaged_window(mut self, window: Duration) -> Self {
        self.unmanaged_window = window;
        self
    }

    /// Creates the spill directory inside `parent`.
    pub fn with_spill_parent(mut self, parent: impl Into<PathBuf>) -> Self {
        self.spill_parent = Some(parent.into());
        self
    }

    /// Reads RSS from `rss`.
    pub fn with_rss(mut self, rss: RssSource) -> Self {
        self.rss = rss;
        self
    }

    /// Checks the limit and thresholds.
    pub fn validate(&self) -> StorageResult<()> {
        if self.memory_limit == 0 {
            return Err(StorageError::InvalidArgument {
                what: "memory limit",
                reason: "it is zero; give a size such as 256MiB".into(),
            });
        }
        self.thresholds.validate()
    }

    /// `fraction` of the limit in bytes.
    pub(crate) fn fraction(&self, fraction: Option<f64>) -> Option<u64> {
        fraction.map(|f| (f * self.memory_limit as f64) as u64)
    }

    /// One-line summary, e.g. `limit 64.0 MiB (target 60%, ...)`.
    pub fn summary(&self) -> String {
        let pct = |v: Option<f64>| v.map_or_else(|| "off".to_string(), |v| format!("{:.0}%", v * 100.0));
        let t = &self.thresholds;
        format!(
            "limit {} of {} memory (target {}, spill {}, pause {}, terminate {})",
            format_size(self.memory_limit),
            match self.accounting {
                Accounting::Own => "own",
                Accounting::Process => "process",
            },
            pct(t.target),
            pct(t.spill),
            pct(t.pause),
            pct(t.terminate)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_zero_limit() {
        assert!(BufferConfig::new(0).validate().is_err());
        BufferConfig::new(1).validate().unwrap();
    }
}
