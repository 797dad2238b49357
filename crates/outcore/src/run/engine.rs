//! The engine: a memory pool and a scheduler, shared by every run made on it.
//!
//! An [`Engine`] holds no state of any one run: cancel tokens and event sinks are given to each
//! run ([`RunControl`]), so one engine serves several runs at once, from several threads, under
//! one memory budget. Clones share the pool; [`Engine::with_scheduler`] and
//! [`EngineBuilder::memory_pool`] put engines with other schedulers on the same budget.

use std::path::PathBuf;
use std::sync::Arc;

#[cfg(feature = "testing")]
use outcore_storage::FaultPlan;
use outcore_storage::{Accounting, BufferConfig, BufferManager, Knob, MemoryReport, Thresholds};

use super::control::RunControl;
use super::scheduler::{self, RunStats, Scheduler};
use super::threads::WorkerThreads;
use crate::error::{Error, Result};
use crate::task::{Executor, Results, TaskGraph};

/// Runs algorithms under one memory budget with one scheduler.
///
/// ```
/// use outcore::{Accounting, Engine};
///
/// # fn main() -> outcore::Result<()> {
/// // 128 MiB of outcore's own memory (whatever else the program holds), 2 worker threads.
/// let engine = Engine::builder().memory_limit(128 << 20).workers(2).build()?;
/// assert_eq!(engine.accounting(), Accounting::Own);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Engine {
    pool: BufferManager,
    scheduler: Scheduler,
    process_overhead: u64,
    /// Worker threads kept between runs (shared by clones).
    threads: Arc<WorkerThreads>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pool", &self.pool.to_string())
            .field("accounting", &self.accounting())
            .field("scheduler", &self.scheduler)
            .finish()
    }
}

impl Engine {
    /// The limit [`EngineBuilder`] uses when none is given.
    pub const DEFAULT_MEMORY_LIMIT: u64 = 256 << 20;

    /// Most worker threads an engine takes: more than this many on one machine only adds threads.
    pub const MAX_WORKERS: usize = 1024;

    /// Under process accounting, the process memory outside the pool plans leave room for by
    /// default: code, thread stacks, allocator state (the measurement behind it is in
    /// docs/decisions.md).
    pub const DEFAULT_PROCESS_OVERHEAD: u64 = 16 << 20;

    /// An engine of `memory_limit` bytes of its own memory, on as many worker threads as the
    /// machine has CPUs.
    pub fn new(memory_limit: u64) -> Result<Self> {
        Self::builder().memory_limit(memory_limit).build()
    }

    /// Starts an engine's configuration.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// This engine under another scheduler, on the same memory pool (one budget, one
    /// accounting).
    pub fn with_scheduler(&self, scheduler: Scheduler) -> Result<Self> {
        check_workers(scheduler)?;
        Ok(Self { scheduler, ..self.clone() })
    }

    /// The memory pool: the buffer manager every run on this engine reserves from. Hand it to
    /// [`EngineBuilder::memory_pool`] to put another engine on the same budget.
    pub fn memory_pool(&self) -> &BufferManager {
        &self.pool
    }

    /// The scheduler.
    pub fn scheduler(&self) -> Scheduler {
        self.scheduler
    }

    /// The memory limit in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.pool.memory_limit()
    }

    /// What the memory limit counts: the pool's own bytes, or the process's RSS.
    pub fn accounting(&self) -> Accounting {
        self.pool.config().accounting
    }

    /// Under [`Accounting::Process`] with the terminate threshold on, the process memory
    /// outside the pool that plans leave room for (see [`EngineBuilder::process_overhead`]).
    /// Nothing under own accounting, or with terminate off (the limit then caps managed bytes
    /// only).
    pub fn process_overhead(&self) -> u64 {
        let config = self.pool.config();
        match (config.accounting, config.thresholds.terminate) {
            (Accounting::Process, Some(_)) => self.process_overhead,
            _ => 0,
        }
    }

    /// The memory categories now.
    pub fn memory_report(&self) -> MemoryReport {
        self.pool.report()
    }

    /// Runs a task graph of your own with `executor` (the extension point the algorithms use;
    /// see [`graph`](crate::graph)). Kept outputs come back in [`Results`].
    pub fn run_graph<E: Executor>(
        &self,
        graph: &TaskGraph<E::Op>,
        executor: &E,
        control: &RunControl,
    ) -> Result<(Results, RunStats)> {
        scheduler::run(self.scheduler, &self.threads, &self.pool, graph, executor, control)
    }
}

/// Configures an [`Engine`]: limit, workers, accounting, thresholds, spilling, shared pool.
#[derive(Clone, Debug, Default)]
#[must_use = "call build() to make the engine"]
pub struct EngineBuilder {
    memory_limit: Option<u64>,
    scheduler: Option<Scheduler>,
    accounting: Option<Accounting>,
    thresholds: Option<Thresholds>,
    spill_dir: Option<PathBuf>,
    compress_spills: Option<bool>,
    #[cfg(feature = "testing")]
    spill_faults: Option<FaultPlan>,
    pool: Option<BufferManager>,
    process_overhead: Option<u64>,
}

impl EngineBuilder {
    /// Under [`Accounting::Process`], the process memory outside the pool that plans leave
    /// room for (default [`Engine::DEFAULT_PROCESS_OVERHEAD`]). A program that knows its own footprint
    /// says so here (the command line passes what it holds at start, plus allocator slack):
    /// plans stay a function of their inputs and this figure, never of the RSS of the moment.
    pub fn process_overhead(mut self, bytes: u64) -> Self {
        self.process_overhead = Some(bytes);
        self
    }

    /// Bytes of memory the engine may use (default [`Engine::DEFAULT_MEMORY_LIMIT`]).
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Worker threads (default: the machine's CPUs).
    pub fn workers(mut self, workers: usize) -> Self {
        self.scheduler = Some(Scheduler::Threads { workers });
        self
    }

    /// The scheduler: [`Scheduler::Serial`] runs every task on the calling thread.
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// What the limit counts (default [`Accounting::Own`]: the engine's own bytes).
    pub fn accounting(mut self, accounting: Accounting) -> Self {
        self.accounting = Some(accounting);
        self
    }

    /// Dask's target, spill, pause and terminate thresholds (default 60/70/80/95%).
    pub fn thresholds(mut self, thresholds: Thresholds) -> Self {
        self.thresholds = Some(thresholds);
        self
    }

    /// Where spill files go (default: the system's temporary directory).
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// Compress spill files with LZ4 (default on).
    pub fn compress_spills(mut self, compress: bool) -> Self {
        self.compress_spills = Some(compress);
        self
    }

    /// Fail spill writes and reloads as `faults` says: for testing how a program copes.
    #[cfg(feature = "testing")]
    pub fn spill_faults(mut self, faults: FaultPlan) -> Self {
        self.spill_faults = Some(faults);
        self
    }

    /// Share `pool` (another engine's [`Engine::memory_pool`]) instead of making a new one:
    /// one budget, one accounting, one spill directory for both. The limit, accounting,
    /// thresholds and spill options are the pool's; setting them here too is an error.
    pub fn memory_pool(mut self, pool: BufferManager) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Checks the configuration and makes the engine.
    pub fn build(self) -> Result<Engine> {
        let scheduler = self.scheduler.unwrap_or_else(|| Scheduler::Threads { workers: available_workers() });
        check_workers(scheduler)?;
        let process_overhead = self.process_overhead.unwrap_or(Engine::DEFAULT_PROCESS_OVERHEAD);
        let spill_faults = self.has_spill_faults();
        if let Some(pool) = self.pool {
            let own_settings = self.memory_limit.is_some()
                || self.accounting.is_some()
                || self.thresholds.is_some()
                || self.spill_dir.is_some()
                || self.compress_spills.is_some()
                || spill_faults;
            if own_settings {
                return Err(Error::invalid(
                    Knob::MemoryPool,
                    "a shared pool keeps its own limit, accounting, thresholds and spill options; set them where the pool was made",
                ));
            }
            return Ok(Engine { pool, scheduler, process_overhead, threads: Arc::default() });
        }
        let mut config = BufferConfig::new(self.memory_limit.unwrap_or(Engine::DEFAULT_MEMORY_LIMIT))
            .with_accounting(self.accounting.unwrap_or_default())
            .with_thresholds(self.thresholds.unwrap_or_default());
        if let Some(dir) = self.spill_dir {
            if !dir.is_dir() {
                return Err(Error::invalid(
                    Knob::SpillDir,
                    format!("{} is not a directory; create it or choose another", dir.display()),
                ));
            }
            config = config.with_spill_parent(dir);
        }
        if let Some(compress) = self.compress_spills {
            config = config.with_compressed_spills(compress);
        }
        #[cfg(feature = "testing")]
        if let Some(faults) = self.spill_faults {
            let pool = BufferManager::with_spill_faults(config, faults).map_err(memory_limit_field)?;
            return Ok(Engine { pool, scheduler, process_overhead, threads: Arc::default() });
        }
        let pool = BufferManager::new(config).map_err(memory_limit_field)?;
        Ok(Engine { pool, scheduler, process_overhead, threads: Arc::default() })
    }

    /// Whether spill faults are injected (testing).
    fn has_spill_faults(&self) -> bool {
        #[cfg(feature = "testing")]
        return self.spill_faults.is_some();
        #[cfg(not(feature = "testing"))]
        false
    }
}

/// Names the API field in a configuration error of the storage layer.
fn memory_limit_field(e: outcore_storage::StorageError) -> Error {
    match e {
        outcore_storage::StorageError::InvalidArgument { what: "memory limit", reason } => {
            Error::invalid(Knob::MemoryLimit, reason)
        }
        other => other.into(),
    }
}

/// The machine's CPUs (1 where unknown).
pub(crate) fn available_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Refuses a scheduler without workers, or with more than [`Engine::MAX_WORKERS`].
fn check_workers(scheduler: Scheduler) -> Result<()> {
    match scheduler.workers() {
        0 => Err(Error::invalid(Knob::Workers, "0 workers cannot run anything; give 1 or more")),
        w if w > Engine::MAX_WORKERS => Err(Error::invalid(
            Knob::Workers,
            format!(
                "{w} workers is more than the {} an engine runs; this machine has {} CPUs",
                Engine::MAX_WORKERS,
                available_workers()
            ),
        )),
        _ => Ok(()),
    }
}
