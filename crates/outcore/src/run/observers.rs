//! The run's links to the pool while it lasts: spill and reload events, and memory samples,
//! forwarded to the run's event sink.

use std::time::Instant;

use outcore_storage::{BufferManager, MemoryMonitor, PoolEvent};

use super::control::RunControl;
use super::events::Event;

/// The run's links to the pool while it lasts: spill and reload events, memory samples.
pub(super) struct Observers {
    _subscription: Option<outcore_storage::Subscription>,
    monitor: Option<MemoryMonitor>,
}

impl Observers {
    pub(super) fn start(manager: &BufferManager, control: &RunControl) -> Self {
        let Some(sink) = control.events.clone() else { return Self { _subscription: None, monitor: None } };
        let forward = sink.clone();
        let subscription = manager.subscribe(move |event| {
            let at = Instant::now();
            match *event {
                PoolEvent::Spilled { bytes, disk_bytes } => forward.event(&Event::Spilled { bytes, disk_bytes, at }),
                PoolEvent::Reloaded { bytes } => forward.event(&Event::Reloaded { bytes, at }),
                _ => {}
            }
        });
        // Without a sampler thread the run still works; its timeline is only thinner.
        let monitor = control.sampling().and_then(|interval| {
            MemoryMonitor::start(manager.clone(), interval, move |sample| {
                sink.event(&Event::Memory { report: Box::new(sample.report), at: Instant::now() });
            })
            .ok()
        });
        Self { _subscription: Some(subscription), monitor }
    }
}

impl Drop for Observers {
    fn drop(&mut self) {
        if let Some(monitor) = self.monitor.take() {
            monitor.stop();
        }
    }
}
