//! Where the process's resident set size comes from.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Resident memory of the process: now and the peak so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessMemory {
    /// Current resident set size in bytes.
    pub rss: u64,
    /// Highest resident set size of the process so far, in bytes.
    pub peak: u64,
}

/// Source of the process memory figure the RSS thresholds (spill, pause, terminate) compare.
#[derive(Clone, Debug, Default)]
pub enum RssSource {
    /// This process, from `/proc/self/status` (`VmRSS` and `VmHWM`). Where that file is absent
    /// (not Linux), RSS reads as zero and the RSS thresholds never fire.
    #[default]
    Process,
    /// A value set by hand: lets tests drive the thresholds deterministically.
    Manual(Arc<AtomicU64>),
}

impl RssSource {
    /// A manual source starting at `bytes`, and the handle that changes it.
    pub fn manual(bytes: u64) -> (Self, Arc<AtomicU64>) {
        let cell = Arc::new(AtomicU64::new(bytes));
        (Self::Manual(cell.clone()), cell)
    }

    /// Reads the current resident set size only: cheaper than [`sample`](Self::sample), for
    /// the threshold checks made before every task.
    pub fn current(&self) -> u64 {
        match self {
            Self::Process => read_proc_statm().unwrap_or_default(),
            Self::Manual(cell) => cell.load(Ordering::Relaxed),
        }
    }

    /// Reads the current and peak resident set size.
    pub fn sample(&self) -> ProcessMemory {
        match self {
            Self::Process => read_proc_status().unwrap_or_default(),
            Self::Manual(cell) => {
                let rss = cell.load(Ordering::Relaxed);
                ProcessMemory { rss, peak: rss }
            }
        }
    }
}

/// Resident pages from `/proc/self/statm` (its second field), in bytes.
fn read_proc_statm() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions; it returns -1 if the name is unknown.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|&p| p > 0)?)
}

/// Field `name` (e.g. `VmRSS`) of a `/proc` file of `name:   1234 kB` lines, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(':')))?;
    let kib: u64 = line[name.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

fn read_proc_status() -> Option<ProcessMemory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(ProcessMemory { rss: kib_field(&status, "VmRSS")?, peak: kib_field(&status, "VmHWM")? })
}

/// Field `name` of `/proc/meminfo` (e.g. `MemTotal`, `MemAvailable`) in bytes, where the
/// system has one.
pub fn meminfo(name: &str) -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_rss_is_plausible_on_linux() {
        // The cheap reading first, the high-water mark after it: the mark can only have grown,
        // whatever sibling tests allocate meanwhile, so the comparison holds under any load.
        let current = RssSource::Process.current();
        let m = RssSource::Process.sample();
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(m.rss > 1 << 20, "rss {}", m.rss);
            assert!(m.peak >= m.rss);
            assert!(current > 1 << 20 && current <= m.peak, "statm {current} vs status {m:?}");
        }
    }

    #[test]
    fn meminfo_reads_fields_by_exact_name() {
        let text = "MemTotal:       24000000 kB\nMemAvailable:   1000 kB\nMemAvailableX: 5 kB\n";
        assert_eq!(kib_field(text, "MemTotal"), Some(24_000_000 * 1024));
        assert_eq!(kib_field(text, "MemAvailable"), Some(1000 * 1024));
        assert_eq!(kib_field(text, "Missing"), None);
        if cfg!(target_os = "linux") {
            assert!(meminfo("MemTotal").is_some_and(|b| b > 1 << 20));
        }
    }

    #[test]
    fn manual_source_follows_its_handle() {
        let (src, cell) = RssSource::manual(5);
        assert_eq!(src.sample().rss, 5);
        cell.store(9, Ordering::Relaxed);
        assert_eq!(src.sample().rss, 9);
    }
}
