//! The run's links to the pool while it lasts: spill and reload events, and memory samples,
//! forwarded to the run's event sink.

use std::time::Instant;

use outcore_storage::{BufferManager, MemoryMonitor, PoolEvent};

use super::control::RunControl;
use super::events::Event;
use crate::task::worker_of;

/// The run's links to the pool while it lasts: spill and reload events, memory samples.
pub(super) struct Observers {
    _subscription: Option<outcore_storage::Subscription>,
    monitor: Option<MemoryMonitor>,
}

impl Observers {
    pub(super) fn start(manager: &BufferManager, control: &RunControl) -> Self {
        let Some(sink) = control.events.clone() else { return Self { _subscription: None, monitor: None } };
        let forward = sink.clone();
        let pool = manager.pool_id();
        // Called on the thread that spilled or reloaded: a worker of this run names itself.
        let subscription = manager.subscribe(move |event| {
            let (at, worker) = (Instant::now(), worker_of(pool));
            match *event {
                PoolEvent::Spilled { bytes, disk_bytes, took } => {
                    forward.event(&Event::Spilled { bytes, disk_bytes, worker, took, at });
                }
                PoolEvent::Reloaded { bytes, took } => forward.event(&Event::Reloaded { bytes, worker, took, at }),
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
