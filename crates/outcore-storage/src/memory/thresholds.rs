//! What the memory limit bounds: Dask's four thresholds and the accounting mode that says
//! whose memory they compare.

use crate::error::{StorageError, StorageResult};

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
#[derive(Clone, Copy, Debug, PartialEq)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    }
}
