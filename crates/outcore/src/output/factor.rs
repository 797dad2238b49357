//! Where a factor ended up.

use std::sync::Arc;

use faer::Mat;
use outcore_storage::{ChunkStore, Knob};

use crate::error::{Error, Result};
use crate::matrix::ChunkedMatrix;

/// A matrix of singular vectors: small ones in RAM, large ones where their
/// [`Destination`](crate::Destination) said.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Factor {
    /// Held in RAM.
    Dense(Mat<f64>),
    /// Written to a chunk store (for example a Zarr array), chunk by chunk.
    Stored(Arc<dyn ChunkStore>),
    /// Written into the matrix the caller passed as its destination.
    Written {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
}

impl Factor {
    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Self::Dense(m) => m.shape(),
            Self::Stored(s) => s.grid().shape(),
            Self::Written { rows, cols } => (*rows, *cols),
        }
    }

    /// The factor in RAM (reads a stored one whole: for tests and small results).
    pub fn to_dense(&self) -> Result<Mat<f64>> {
        match self {
            Self::Dense(m) => Ok(m.clone()),
            Self::Stored(s) => ChunkedMatrix::from_store(s.clone()).to_dense(),
            Self::Written { .. } => Err(Error::invalid(
                Knob::Destination,
                "the factor was written into the matrix you passed; read it there",
            )),
        }
    }
}
