//! Control of one run: a cancel token and an event sink, passed to the run, never left on the
//! engine. Two runs on one engine each have their own; cancelling one leaves the other going,
//! and a cancelled run does not affect the next.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use outcore_storage::Knob;

use super::events::{Event, EventSink};
use crate::cluster::{Transport, agree};
use crate::error::{Error, Result, panic_message};
use crate::task::CancelToken;

/// What a caller controls and observes of one run: a cancel token and an event sink.
///
/// ```
/// use outcore::{CancelToken, Event, RunControl};
///
/// let cancel = CancelToken::new();
/// let control = RunControl::new().cancel_token(cancel.clone()).events(|event: &Event| {
///     if let Event::TaskFinished { done, total, .. } = event {
///         eprintln!("{done}/{total}");
///     }
/// });
/// # drop(control);
/// ```
#[derive(Clone)]
pub struct RunControl {
    pub(crate) cancel: Option<CancelToken>,
    pub(crate) events: Option<Arc<dyn EventSink>>,
    pub(crate) memory_interval: Option<Duration>,
    pub(crate) cluster: Option<Arc<dyn Transport>>,
    /// What the sink's first panic said, once [`guarded`](Self::guarded) wrapped it.
    sink_panic: Option<Arc<OnceLock<String>>>,
}

impl std::fmt::Debug for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunControl")
            .field("cancel", &self.cancel)
            .field("events", &self.events.is_some())
            .field("memory_interval", &self.memory_interval)
            .field("cluster", &self.cluster.as_ref().map(|t| (t.rank(), t.ranks())))
            .finish()
    }
}

impl Default for RunControl {
    fn default() -> Self {
        Self {
            cancel: None,
            events: None,
            memory_interval: Some(Self::DEFAULT_MEMORY_INTERVAL),
            cluster: None,
            sink_panic: None,
        }
    }
}

impl RunControl {
    /// How often memory is sampled into the event stream by default.
    pub const DEFAULT_MEMORY_INTERVAL: Duration = Duration::from_millis(20);

    /// No cancel token, no events.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the run when `token` is cancelled.
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Sends the run's events to `sink`, memory samples included (every
    /// [`DEFAULT_MEMORY_INTERVAL`](Self::DEFAULT_MEMORY_INTERVAL) unless [`memory_interval`](Self::memory_interval) says
    /// otherwise).
    pub fn events(mut self, sink: impl EventSink + 'static) -> Self {
        self.events = Some(Arc::new(sink));
        self
    }

    /// Sends the run's events to a sink shared with other runs.
    pub fn shared_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = Some(sink);
        self
    }

    /// Samples memory into the event stream every `interval` (`None`: never).
    pub fn memory_interval(mut self, interval: Option<Duration>) -> Self {
        self.memory_interval = interval;
        self
    }

    /// Runs as one rank of a job ([`cluster`](crate::cluster)): this rank does its share of the
    /// graph and exchanges blocks with the others through `transport`. Every rank must run the
    /// same plan; results are bitwise those of one process.
    pub fn cluster(mut self, transport: Arc<dyn Transport>) -> Self {
        self.cluster = Some(transport);
        self
    }

    /// `step`'s outcome (a step before the run that could fail on one rank only, such as opening
    /// a destination), agreed with the other ranks when this run is one rank of several: every
    /// rank goes on, or every rank fails (this one with its own error, if it had one).
    pub(crate) fn agree_on<T>(&self, step: Result<T>) -> Result<T> {
        let Some(transport) = &self.cluster else { return step };
        let agreed = agree(&**transport, step.as_ref().map(|_| Vec::new()));
        match (step, agreed) {
            (Ok(value), Ok(_)) => Ok(value),
            (Err(own), _) => Err(own),
            (Ok(_), Err(theirs)) => Err(theirs),
        }
    }

    /// Whether runs under this control are one rank of several.
    pub(crate) fn distributed(&self) -> bool {
        self.cluster.as_ref().is_some_and(|t| t.ranks() > 1)
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
    }

    /// The sampling interval in force: none without a sink.
    pub(crate) fn sampling(&self) -> Option<Duration> {
        self.events.as_ref().and(self.memory_interval)
    }

    /// Whether a sink receives this run's events (so that costly ones are built only then).
    pub(crate) fn observed(&self) -> bool {
        self.events.is_some()
    }

    /// This control for one run, its sink kept from panicking into the run's threads: the
    /// sink's first panic is recorded, later events are dropped, and the run fails with
    /// [`sink_failure`](Self::sink_failure)'s error.
    pub(crate) fn guarded(&self) -> Self {
        let Some(inner) = self.events.clone() else { return self.clone() };
        let panic = Arc::new(OnceLock::new());
        let sink = GuardedSink { inner, panic: panic.clone() };
        Self { events: Some(Arc::new(sink)), sink_panic: Some(panic), ..self.clone() }
    }

    /// The error of a run whose event sink panicked: the caller's sink broke the run.
    pub(crate) fn sink_failure(&self) -> Option<Error> {
        let said = self.sink_panic.as_ref()?.get()?;
        Some(Error::invalid(
            Knob::Events,
            format!("the event sink panicked ({said}); a sink runs on the run's threads and must return normally"),
        ))
    }

    /// Sends `event` to the sink, if any.
    pub(crate) fn emit(&self, event: &Event) {
        if let Some(sink) = &self.events {
            sink.event(event);
        }
    }
}

/// The caller's sink, called inside `catch_unwind` (see [`RunControl::guarded`]).
struct GuardedSink {
    inner: Arc<dyn EventSink>,
    panic: Arc<OnceLock<String>>,
}

impl EventSink for GuardedSink {
    fn event(&self, event: &Event) {
        if self.panic.get().is_some() {
            return;
        }
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.inner.event(event)));
        if let Err(panic) = sent {
            let _ = self.panic.set(panic_message(&*panic));
        }
    }
}
