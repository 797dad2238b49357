//! The outputs a run keeps.

use std::collections::HashMap;

use faer::Mat;

use super::block::Block;
use super::graph::Key;
use crate::error::{Error, Result};

/// Kept outputs of a finished run, read out of the buffer manager when the run ended (where a
/// lost spill could still be recomputed). They are small by design: values, small factors.
#[derive(Debug, Default)]
pub struct Results {
    values: HashMap<Key, Block>,
}

impl Results {
    pub(crate) fn new(values: HashMap<Key, Block>) -> Self {
        Self { values }
    }

    fn get(&self, key: Key) -> Result<&Block> {
        self.values.get(&key).ok_or_else(|| Error::Bug(format!("{key:?} was not kept by the run")))
    }

    /// The values of output `key` as a matrix.
    pub fn matrix(&self, key: Key) -> Result<Mat<f64>> {
        let out = self.get(key)?;
        Ok(Mat::from_fn(out.rows, out.cols, |i, j| out.data[i * out.cols + j]))
    }

    /// The values of output `key`, row-major.
    pub fn values(&self, key: Key) -> Result<Vec<f64>> {
        Ok(self.get(key)?.data.clone())
    }
}
