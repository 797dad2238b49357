//! Running outcore from Python: the engine of one call, the GIL released, Ctrl-C and progress
//! delivered on the calling thread, outcore's errors as Python exceptions.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use outcore::{CancelToken, Engine, Event, MemoryReport, RunControl};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::stores::Source;

/// How often the calling thread wakes to deliver signals and progress while a run works.
const POLL: Duration = Duration::from_millis(50);

/// One call's engine settings and progress callback.
pub(crate) struct Settings {
    memory_limit: u64,
    workers: Option<usize>,
    progress: Option<Py<PyAny>>,
}

impl Settings {
    /// Threads for work outside the engine: as many as the engine would run.
    pub(crate) fn threads(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub(crate) fn new(memory_limit: u64, workers: Option<usize>, progress: Option<Py<PyAny>>) -> PyResult<Self> {
        if workers == Some(0) {
            return Err(PyValueError::new_err(
                "n_jobs must be at least 1 (or -1 for every core, None for the default)",
            ));
        }
        Ok(Self { memory_limit, workers, progress })
    }

    /// An engine whose limit counts outcore's own memory only (not the interpreter's).
    fn engine(&self) -> outcore::Result<Engine> {
        let mut builder = Engine::builder().memory_limit(self.memory_limit);
        if let Some(w) = self.workers {
            builder = builder.workers(w);
        }
        builder.build()
    }
}

/// Runs `work` on its own thread with the GIL released. The calling thread waits, waking every
/// [`POLL`] to call `progress(done, total)` when it moved and to check Python's signals: a
/// pending KeyboardInterrupt (or an exception from `progress`) cancels the run, whose outputs
/// are then removed, and is raised; so is an exception a callable among `sources` raised.
/// Returns the result and the engine's memory report.
pub(crate) fn run_detached<T: Send>(
    py: Python<'_>,
    settings: &Settings,
    sources: &[&Source],
    work: impl FnOnce(&Engine, &RunControl, &CancelToken) -> outcore::Result<T> + Send,
) -> PyResult<(T, MemoryReport)> {
    let engine = settings.engine().map_err(to_py)?;
    let token = CancelToken::new();
    let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let seen = counts.clone();
    let control = RunControl::new().cancel_token(token.clone()).events(move |event: &Event| {
        if let Event::TaskFinished { done, total, .. } = event {
            seen.0.store(*done, Ordering::Relaxed);
            seen.1.store(*total, Ordering::Relaxed);
        }
    });
    let mut raised: Option<PyErr> = None;
    let mut reported = (0, 0);
    // While the run works: signals, then progress. Once it is over: the last progress only (a
    // signal arriving then is Python's to raise, at its next instruction).
    let mut deliver = |py: Python<'_>, raised: &mut Option<PyErr>, running: bool| {
        let now = (counts.0.load(Ordering::Relaxed), counts.1.load(Ordering::Relaxed));
        if raised.is_some() {
            return;
        }
        let signals = if running { py.check_signals() } else { Ok(()) };
        let step = signals.and_then(|()| match &settings.progress {
            Some(callback) if now != reported && now.1 > 0 => callback.call1(py, now).map(drop),
            _ => Ok(()),
        });
        reported = now;
        if let Err(err) = step {
            token.cancel();
            *raised = Some(err);
        }
    };
    let outcome = py.detach(|| {
        std::thread::scope(|scope| {
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let (engine, control, cancel) = (&engine, &control, &token);
            let worker = scope.spawn(move || {
                let result = work(engine, control, cancel);
                let _ = done_tx.send(());
                result
            });
            while let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(POLL) {
                Python::attach(|py| deliver(py, &mut raised, true));
            }
            worker.join()
        })
    });
    Python::attach(|py| deliver(py, &mut raised, false));
    let result = match outcome {
        Ok(result) => result,
        Err(_) => return Err(PyRuntimeError::new_err("outcore panicked (a bug in outcore, please report it)")),
    };
    match (result, raised) {
        (_, Some(err)) => Err(err),
        (Ok(value), None) => Ok((value, engine.memory_report())),
        (Err(err), None) => Err(sources.iter().find_map(|s| s.raised()).unwrap_or_else(|| to_py(err))),
    }
}
