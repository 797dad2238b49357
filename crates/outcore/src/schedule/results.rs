//! The outputs a run keeps.

use std::collections::HashMap;

use faer::Mat;

use super::Output;
use crate::graph::Key;
use crate::{Error, Result};

/// Kept outputs of a finished run, read out of the buffer manager when the run ended (where a
/// lost spill could still be recomputed). They are small by design: values, small factors.
#[derive(Debug, Default)]
pub struct Results {
    values: HashMap<Key, Output>,
}

impl Results {
    pub(crate) fn new(values: HashMap<Key, Output>) -> Self {
        Self { values }
    }

    fn get(&self, key: Key) -> Result<&Output> {
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
