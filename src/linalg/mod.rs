//! Linear algebra out of core: TSQR SVD ([`tsqr`]) on top of dense kernels ([`dense`]).

pub mod blockqr;
pub mod budget;
pub mod dense;
pub mod rsvd;
pub mod tsqr;

use std::sync::Arc;

use faer::Mat;
use outcore_storage::ChunkStore;

use crate::matrix::ChunkedMatrix;
use crate::schedule::RunStats;
use crate::{Error, Result};

/// A matrix of singular vectors: small ones in RAM, large ones in a chunk store.
#[derive(Clone, Debug)]
pub enum Factor {
    /// Held in RAM.
    Dense(Mat<f64>),
    /// Written to a chunk store (for example a Zarr array), chunk by chunk.
    Stored(Arc<dyn ChunkStore>),
}

impl Factor {
    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Self::Dense(m) => m.shape(),
            Self::Stored(s) => s.grid().shape(),
        }
    }

    /// The factor in RAM (reads a stored one whole: for tests and small results).
    pub fn to_dense(&self) -> Result<Mat<f64>> {
        match self {
            Self::Dense(m) => Ok(m.clone()),
            Self::Stored(s) => ChunkedMatrix::from_store(s.clone()).to_dense(),
        }
    }
}

/// A singular value decomposition `A = U diag(s) V^T`.
#[derive(Clone, Debug)]
pub struct SvdResult {
    /// Singular values, descending.
    pub s: Vec<f64>,
    /// Left singular vectors as columns (`m x k`), when computed.
    pub u: Option<Factor>,
    /// Right singular vectors as columns (`n x k`; V, not V^T), when computed.
    pub v: Option<Factor>,
    /// What the run observed.
    pub stats: RunStats,
}

impl SvdResult {
    /// U and V in RAM, or an error if they were not computed.
    pub fn dense_vectors(&self) -> Result<(Mat<f64>, Mat<f64>)> {
        match (&self.u, &self.v) {
            (Some(u), Some(v)) => Ok((u.to_dense()?, v.to_dense()?)),
            _ => Err(Error::invalid("result", "singular vectors were not computed (values only)")),
        }
    }
}
