//! Buffer manager configuration: the memory limit, Dask's four thresholds, spilling.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::error::{StorageError, StorageResult};
use crate::memory::RssSource;
use crate::size::format_size;
use crate::store::FaultPlan;

/// Dask's memory thresholds as fractions of the memory limit; `None` disables one.
///
/// * `target` (0.60, of **managed** bytes): reserving beyond it first evicts least-recently-used
///   unpinned chunks (clean ones are dropped, dirty ones spilled).
/// * `spill` (0.70, of the **worker's memory**: the pool's own bytes, or process RSS under
///   [`Accounting::Process`]): above it, evict until that is back under `target`.
/// * `pause` (0.80, of the worker's memory): schedulers start no new task while above it.
/// * `terminate` (0.95, of the worker's memory): managed bytes are capped so the worker stays
///   under it; if the process crosses it anyway (process accounting: memory outside the
///   pool grew), the run stops with [`StorageError::MemoryTerminated`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    /// Managed-memory fraction at which LRU eviction starts.
    pub target: Option<f64>,
    /// RSS fraction at which eviction runs until RSS is under `target`.
    pub spill: Option<f64>,
    /// RSS fraction at which no new task starts.
    pub pause: Option<f64>,
    /// RSS fraction at which the run stops.
    pub terminate: Option<f64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { target: Some(0.60), spill: Some(0.70), pause: Some(0.80), terminate: Some(0.95) }
    }
}

impl std::str::FromStr for Thresholds {
    type Err = StorageError;

    /// Parses changes to the defaults, e.g. `target=0.5,spill=off` (names: target, spill, pause,
    /// terminate; values: a fraction in (0, 1] or `off`), then checks the result.
    fn from_str(text: &str) -> StorageResult<Self> {
        let mut t = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || StorageError::InvalidArgument {
                what: "memory thresholds",
                reason: format!(
                    "{part:?} is not NAME=FRACTION or NAME=off, with NAME one of target, spill, pause, terminate"
                ),
            };
            let (name, value) = part.split_once('=').ok_or_else(bad)?;
            let value = match value.trim() {
                "off" => None,
                v => Some(v.parse::<f64>().map_err(|_| bad())?),
            };
            match name.trim() {
                "target" => t.target = value,
                "spill" => t.spill = value,
                "pause" => t.pause = value,
                "terminate" => t.terminate = value,
                _ => return Err(bad()),
            }
        }
        t.validate()?;
        Ok(t)
    }
}

impl Thresholds {
    /// All thresholds off: only the hard limit on managed bytes applies.
    pub const DISABLED: Self = Self { target: None, spill: None, pause: None, terminate: None };

    /// Checks each fraction is in (0, 1] and that enabled ones are in the order
    /// target <= spill <= pause <= terminate.
    pub fn validate(&self) -> StorageResult<()> {
        let named =
            [("target", self.target), ("spill", self.spill), ("pause", self.pause), ("terminate", self.terminate)];
        let mut previous: Option<(&str, f64)> = None;
        for (name, value) in named {
            let Some(v) = value else { continue };
            if !(v > 0.0 && v <= 1.0) {
                return Err(StorageError::InvalidArgument {
                    what: "memory threshold",
                    reason: format!("{name} = {v} must be a fraction in (0, 1], like 0.7"),
                });
            }
            if let Some((prev_name, prev)) = previous
                && prev > v
            {
                return Err(StorageError::InvalidArgument {
                    what: "memory threshold",
                    reason: format!(
                        "{prev_name} = {prev} is above {name} = {v}; they must not decrease in the order target, spill, pause, terminate"
                    ),
                });
            }
            previous = Some((name, v));
        }
        Ok(())
    }
}

/// What the memory limit and the spill, pause and terminate thresholds are compared with.
///
/// Whatever the mode, the target threshold compares managed bytes and managed bytes never
/// exceed the limit; the modes differ in what counts as the *worker's* memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accounting {
    /// The pool's own footprint: bytes of chunks it holds in RAM plus every reservation (task
    /// working sets, worker scratch, buffers). Exact, known before anything is allocated, and
    /// blind to whatever else the process holds: the mode for a library inside a host program
    /// (a Python interpreter, a service), and for several pools in one process. The default.
    #[default]
    Own,
    /// The resident set size of the whole process, as Dask's worker compares it: the process is
    /// the worker. The mode of the `large-svd` command line, where nothing else lives in the
    /// process; inside a host, the host's own memory would count against the limit.
    Process,
}

impl std::str::FromStr for Accounting {
    type Err = StorageError;

    fn from_str(text: &str) -> StorageResult<Self> {
        match text.trim() {
            "own" => Ok(Self::Own),
            "process" => Ok(Self::Process),
            other => Err(StorageError::InvalidArgument {
                what: "accounting",
                reason: format!("{other:?} is not one of own, process"),
            }),
        }
    }
}

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
    /// Faults to inject into spill writes and reloads (testing).
    pub spill_faults: FaultPlan,
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
            spill_faults: FaultPlan::default(),
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

    /// Fails spill writes and reloads as `faults` says (testing).
    pub fn with_spill_faults(mut self, faults: FaultPlan) -> Self {
        self.spill_faults = faults;
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
    fn validates_fractions_and_order() {
        Thresholds::default().validate().unwrap();
        Thresholds::DISABLED.validate().unwrap();
        let bad = Thresholds { target: Some(1.5), ..Thresholds::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("target = 1.5"));
        let bad = Thresholds { pause: Some(0.5), ..Thresholds::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("spill = 0.7 is above pause = 0.5"));
        let partial = Thresholds { spill: None, pause: None, ..Thresholds::default() };
        partial.validate().unwrap();
        assert_eq!("spill=off, pause=off".parse::<Thresholds>().unwrap(), partial);
        assert!(
            "target=0.9".parse::<Thresholds>().unwrap_err().to_string().contains("target = 0.9 is above spill = 0.7")
        );
        assert!("colour=0.5".parse::<Thresholds>().is_err());
        assert!(BufferConfig::new(0).validate().is_err());
    }
}
