//! Inputs of a task, pinned; and lineage recomputation: a block whose spill file cannot be read
//! back is computed again from its producer's inputs (recomputed in turn if their spills are
//! lost too). Only tasks with outputs are re-run, and those are pure functions of their inputs,
//! so the result is bitwise the lost one.

use outcore_storage::{BlockId, Pinned, Reservation, StorageError};

use super::state::{Run, Temporaries};
use crate::error::{Error, Result};
use crate::task::{Executor, Key, Operation, WorkerScratch};

impl<E: Executor> Run<'_, E> {
    /// Pins output `key` of an earlier task. If its spilled copy cannot be read back, the block
    /// is recomputed from its lineage and replaces the lost one.
    pub(super) fn pin_input(&self, key: Key, budget: &mut Reservation, scratch: &mut WorkerScratch) -> Result<Pinned> {
        let held = self.lock().blocks[key.task.0][key.slot];
        let id = held.ok_or_else(|| Error::Bug(format!("input {key:?} is missing")))?;
        match self.manager.pin_with(id, budget) {
            Err(StorageError::SpillLost { .. }) => {
                let fresh = self.recompute(key, budget, scratch, 0)?;
                {
                    let mut st = self.lock();
                    st.blocks[key.task.0][key.slot] = Some(fresh);
                    st.recomputed += 1;
                }
                let _ = self.manager.remove(id);
                Ok(self.manager.pin_with(fresh, budget)?)
            }
            other => Ok(other?),
        }
    }

    /// Runs the producer of `key` again and stores that output as a new block. The producer's
    /// inputs are pinned if still held (recomputed in turn if their spills are lost too) or
    /// recomputed if already freed. Only tasks with outputs are ever re-run, and those are
    /// pure functions of their inputs (kernels write to stores only in tasks without outputs),
    /// so the result is bitwise the lost one.
    fn recompute(
        &self,
        key: Key,
        budget: &mut Reservation,
        scratch: &mut WorkerScratch,
        depth: usize,
    ) -> Result<BlockId> {
        if depth > self.graph.len() {
            return Err(Error::Bug(format!("recomputing {key:?} recursed through more tasks than the graph has")));
        }
        if let Some(place) = self.placement.as_ref().filter(|p| !p.runs_here(key.task.0)) {
            return Err(Error::Cluster {
                rank: place.me,
                message: format!(
                    "a lost spill could not be recomputed: it needs a block rank {} sent, which is no longer here (a spill file was lost; check the spill directory's disk)",
                    place.owner(key.task.0)
                )
                .into(),
                bug: false,
            });
        }
        let spec = &self.graph.tasks()[key.task.0];
        let mut pins = Vec::with_capacity(spec.inputs.len());
        // Recomputed inputs no task holds: removed when this returns, on errors too.
        let mut temporaries = Temporaries { manager: self.manager, ids: Vec::new() };
        for &input in &spec.inputs {
            let held = self.lock().blocks[input.task.0][input.slot];
            let pinned = match held {
                Some(_) => self.pin_input(input, budget, scratch)?,
                None => {
                    let fresh = self.recompute(input, budget, scratch, depth + 1)?;
                    temporaries.ids.push(fresh);
                    self.manager.pin_with(fresh, budget)?
                }
            };
            pins.push(pinned);
        }
        let outputs = self.executor.execute(&spec.op, &pins, budget, scratch)?;
        drop(pins);
        drop(temporaries);
        let out = outputs.into_iter().nth(key.slot).ok_or_else(|| {
            Error::Bug(format!("recomputing {key:?}: {} has no output {}", spec.op.label(), key.slot))
        })?;
        Ok(self.manager.insert(budget, out.data, out.rows, out.cols)?)
    }
}
