//! The task vocabulary, at the bottom of the library: what to compute, as data.
//!
//! An algorithm describes its work as a [`TaskGraph`] of [`Task`]s. A task is an operation (a
//! value of the algorithm's own op enum, implementing [`Operation`]: *what* to do to which
//! panel or node, never an opaque closure), the [`Key`]s of its inputs (outputs of earlier
//! tasks), how many outputs it makes, and the bytes it needs while it runs. An [`Executor`]
//! runs the ops: it is handed the inputs as pinned [`Block`]s and returns its outputs as
//! blocks, taking buffers from its worker's [`WorkerScratch`].
//!
//! Tasks are numbered in the order they are added, inputs always refer to earlier tasks, and
//! the number is the task's priority: schedulers start the lowest-numbered ready task first.
//! Builders add tasks depth-first (a reduction node right after its children), so branches
//! finish and their intermediates are freed before new ones start. Every reduction has the
//! shape of one tree ([`reduction_tree`]), fixed by its leaf count and fan-in.
//!
//! Nothing here runs anything: the run loop (`run`) and the ranks of a job (`cluster`) sit
//! above it.

mod block;
mod cancel;
mod dot;
mod executor;
mod graph;
mod op;
mod results;
mod scratch;
mod tree;

pub use block::Block;
pub use cancel::CancelToken;
pub(crate) use cancel::{InTask, check_cancelled, in_task_of, worker_of};
pub use executor::Executor;
pub use graph::{Key, Stage, Task, TaskGraph, TaskId, Work};
pub use op::Operation;
pub use results::Results;
pub use scratch::WorkerScratch;
pub use tree::levels as reduction_tree;
pub(crate) use tree::{Folding, fold as reduce_fold};
