//! What an algorithm takes: a chunked matrix, or a matrix the caller holds in RAM, lent to the
//! run chunk by chunk and never copied whole.

use faer::{Mat, MatRef};

use crate::error::Result;
use crate::matrix::ChunkedMatrix;
use crate::matrix::borrowed::Lease;

/// A matrix to factor: a [`ChunkedMatrix`] (a Zarr array, a `.npy` file, a generator, a store
/// of one's own), or a faer matrix in RAM, borrowed for the call and never copied whole (each
/// algorithm reads it in chunks of its own choosing, multiplied where they lie).
///
/// Anything that converts: `&ChunkedMatrix` or `ChunkedMatrix` (a view, cheap to clone: a plan of
/// it borrows nothing), `MatRef<'_, f64>`, `&Mat<f64>` (borrowed while the plan lives).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Input<'a> {
    /// A matrix stored as chunks.
    Chunked(ChunkedMatrix),
    /// A matrix in RAM.
    Dense(MatRef<'a, f64>),
}

impl From<ChunkedMatrix> for Input<'_> {
    fn from(a: ChunkedMatrix) -> Self {
        Self::Chunked(a)
    }
}

impl From<&ChunkedMatrix> for Input<'_> {
    fn from(a: &ChunkedMatrix) -> Self {
        Self::Chunked(a.clone())
    }
}

impl<'a> From<MatRef<'a, f64>> for Input<'a> {
    fn from(a: MatRef<'a, f64>) -> Self {
        Self::Dense(a)
    }
}

impl<'a> From<&'a Mat<f64>> for Input<'a> {
    fn from(a: &'a Mat<f64>) -> Self {
        Self::Dense(a.as_ref())
    }
}

/// An input made ready for one algorithm: its chunked view, and for a matrix in the caller's
/// memory, the lease that lends it (the matrix is touched only while it lives).
#[derive(Debug)]
pub(crate) struct Lent<'a> {
    pub(crate) matrix: ChunkedMatrix,
    lease: Option<Lease<'a>>,
}

impl Lent<'_> {
    /// The hint of a memory message about the size of the chunks read: smaller chunks only
    /// where the caller chose them (not for a matrix in RAM, which the algorithm chunks).
    pub(crate) fn chunk_hint(&self) -> &'static str {
        if self.lease.is_some() {
            "a matrix in RAM is read in chunks of about 4 MiB"
        } else {
            "smaller chunks need less"
        }
    }
}

impl<'a> Input<'a> {
    /// Rows and columns.
    pub(crate) fn shape(&self) -> (usize, usize) {
        match self {
            Self::Chunked(matrix) => matrix.shape(),
            Self::Dense(a) => a.shape(),
        }
    }

    /// The input as a chunked matrix; a matrix in RAM is chunked as `chunk_shape(rows, cols)`
    /// says (the algorithm's preference).
    pub(crate) fn lend(self, chunk_shape: fn(usize, usize) -> (usize, usize)) -> Result<Lent<'a>> {
        match self {
            Self::Chunked(matrix) => Ok(Lent { matrix, lease: None }),
            Self::Dense(a) => {
                let (chunk_rows, chunk_cols) = chunk_shape(a.nrows(), a.ncols());
                let (matrix, lease) = ChunkedMatrix::borrowed(a, chunk_rows, chunk_cols)?;
                Ok(Lent { matrix, lease: Some(lease) })
            }
        }
    }
}
