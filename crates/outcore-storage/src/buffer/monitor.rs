//! A background thread sampling the memory report at a fixed interval: the data behind the
//! memory timeline (Dask's dashboard "Workers" memory bars, over time).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::BufferManager;
use crate::memory::MemoryReport;

/// One sample of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct MemorySample {
    /// Seconds since the monitor started.
    pub seconds: f64,
    /// The memory categories at that moment.
    pub report: MemoryReport,
}

/// Highest value seen of each category over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryPeaks {
    /// Process RSS (the kernel's high-water mark where known).
    pub process: u64,
    /// Managed bytes.
    pub managed: u64,
    /// Unmanaged bytes.
    pub unmanaged: u64,
    /// Unmanaged recent bytes.
    pub unmanaged_recent: u64,
    /// Spilled bytes.
    pub spilled: u64,
}

impl MemoryPeaks {
    /// Peaks over `samples`, and over the running maxima kept by `last` (which also covers
    /// moments between samples for process, managed and spilled).
    pub fn of(samples: &[MemorySample], last: &MemoryReport) -> Self {
        let max = |f: fn(&MemoryReport) -> u64| samples.iter().map(|s| f(&s.report)).max().unwrap_or(0).max(f(last));
        Self {
            process: max(|r| r.process).max(last.peak_process),
            managed: max(|r| r.managed).max(last.peak_managed.min(last.peak_process)),
            unmanaged: max(|r| r.unmanaged),
            unmanaged_recent: max(|r| r.unmanaged_recent),
            spilled: max(|r| r.spilled).max(last.peak_spilled),
        }
    }
}

/// Samples a buffer manager's memory report every `interval` until stopped, handing each
/// sample to a callback on its own thread.
#[derive(Debug)]
pub struct MemoryMonitor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MemoryMonitor {
    /// Starts sampling `manager` now and every `interval`, calling `on_sample` with each sample
    /// (the last one when stopped). Sampling does not start if the thread cannot be spawned;
    /// the error says why.
    pub fn start(
        manager: BufferManager,
        interval: Duration,
        mut on_sample: impl FnMut(MemorySample) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("outcore-memory-monitor".into()).spawn(move || {
            let start = Instant::now();
            loop {
                let last = flag.load(Ordering::Relaxed);
                on_sample(MemorySample { seconds: start.elapsed().as_secs_f64(), report: manager.report() });
                if last {
                    return;
                }
                std::thread::park_timeout(interval);
            }
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }

    /// Stops sampling after one last sample.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // A panicking callback has already said so on stderr; there is nothing to return.
            let _ = thread.join();
        }
    }
}

impl Drop for MemoryMonitor {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufferConfig;
    use crate::memory::Thresholds;

    #[test]
    fn samples_satisfy_the_category_identity_and_see_managed_memory() {
        let manager = BufferManager::new(BufferConfig::new(64 << 20).with_thresholds(Thresholds::DISABLED)).unwrap();
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = samples.clone();
        let monitor =
            MemoryMonitor::start(manager.clone(), Duration::from_millis(2), move |s| sink.lock().unwrap().push(s))
                .unwrap();
        let mut r = manager.reserve(8 << 20).unwrap();
        let id = manager.insert(&mut r, vec![1.0; 1 << 20], 1024, 1024).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        manager.remove(id).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        monitor.stop();
        let samples = std::mem::take(&mut *samples.lock().unwrap());
        assert!(samples.len() >= 5, "{} samples", samples.len());
        assert!(samples.windows(2).all(|w| w[0].seconds <= w[1].seconds));
        for s in &samples {
            let r = &s.report;
            assert_eq!(r.process, r.host + r.managed + r.unmanaged_old + r.unmanaged_recent, "at {} s", s.seconds);
        }
        assert!(samples.iter().any(|s| s.report.managed_accounted == 8 << 20));
        let peaks = MemoryPeaks::of(&samples, &manager.report());
        assert!(peaks.managed >= 8 << 20 && peaks.process >= peaks.managed);
    }
}
