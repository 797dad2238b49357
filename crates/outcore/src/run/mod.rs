//! Running a task graph: the engine (a memory pool and a scheduler), the run loop of its
//! workers, the control a caller has over one run, and the events every view of a run reads.
//!
//! A run (`scheduler`) sets up its state (`state`), starts its workers (`worker`: take the
//! lowest-numbered ready task, wait for memory to admit it, pin its inputs, run the kernel,
//! store the outputs), recomputes a block whose spill was lost from its lineage
//! (`recompute`), forwards the pool's events and memory samples to the run's sink
//! (`observers`) and, as one rank of a job, lets `cluster::rank` walk the run's messages
//! (`rank_side`), on worker threads the engine keeps between runs (`threads`). Layers, each
//! using only those before it: `events`, `control`, `state`, `recompute`, `worker`,
//! `rank_side`, `observers`, `threads`, `scheduler`, `engine`.

mod control;
mod engine;
mod events;
mod observers;
mod rank_side;
mod recompute;
mod scheduler;
mod state;
#[cfg(test)]
mod tests;
mod threads;
mod worker;

pub use control::RunControl;
pub use engine::{Engine, EngineBuilder};
pub use events::{Event, EventSink};
pub use scheduler::{RunStats, Scheduler};
