//! What runs the ops of one algorithm: the kernels, behind one trait.

use outcore_storage::{Pinned, Reservation};

use super::block::Block;
use super::op::Operation;
use super::scratch::WorkerScratch;
use crate::error::Result;

/// Runs the ops of one algorithm.
pub trait Executor: Sync {
    /// The algorithm's op type.
    type Op: Operation;

    /// Runs `op` on its pinned inputs. Chunk reads and scratch take memory from `budget`, which
    /// holds the task's declared working set less the credit for `scratch` (the worker's reusable
    /// buffers); the returned outputs are stored from it too.
    fn execute(
        &self,
        op: &Self::Op,
        inputs: &[Pinned],
        budget: &mut Reservation,
        scratch: &mut WorkerScratch,
    ) -> Result<Vec<Block>>;

    /// What besides the graph decides the results (seeds, options), as text: the ranks of a
    /// run across ranks compare it, with the graph, before any work. Empty by default.
    fn identity(&self) -> String {
        String::new()
    }
}
