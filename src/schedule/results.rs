//! The outputs a run keeps.

use std::collections::HashMap;

use faer::Mat;
use outcore_storage::{BlockId, BufferManager};

use crate::graph::Key;
use crate::{Error, Result};

/// Kept outputs of a finished run, held in the buffer manager until this drops.
#[derive(Debug)]
pub struct Results {
    manager: BufferManager,
    blocks: HashMap<Key, BlockId>,
}

impl Results {
    pub(crate) fn new(manager: BufferManager, blocks: HashMap<Key, BlockId>) -> Self {
        Self { manager, blocks }
    }

    /// The values of output `key` as a matrix.
    pub fn matrix(&self, key: Key) -> Result<Mat<f64>> {
        let id = self.blocks.get(&key).ok_or_else(|| Error::Bug(format!("{key:?} was not kept by the run")))?;
        let pinned = self.manager.pin(*id)?;
        let (rows, cols) = pinned.shape();
        Ok(Mat::from_fn(rows, cols, |i, j| pinned[i * cols + j]))
    }

    /// The values of output `key`, row-major.
    pub fn values(&self, key: Key) -> Result<Vec<f64>> {
        let id = self.blocks.get(&key).ok_or_else(|| Error::Bug(format!("{key:?} was not kept by the run")))?;
        Ok(self.manager.pin(*id)?.to_vec())
    }
}

impl Drop for Results {
    fn drop(&mut self) {
        for &id in self.blocks.values() {
            let _ = self.manager.remove(id);
        }
    }
}
