//! The steps of a randomized SVD, as data: chunk products, sums, the block QR tree's steps,
//! the small SVD, writes and the error estimate.

use outcore_storage::ChunkIndex;

use crate::linalg::blockqr::BlockQrOp;
use crate::task::Operation;

/// Which factor a write task writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Left singular vectors, blocks by chunk row.
    U,
    /// Right singular vectors, blocks by chunk column.
    V,
}

/// One step of the randomized SVD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RsvdOp {
    /// `A_ij [Ω_j ω_j]`: the chunk times its rows of the sketch and probes (generated).
    Sketch {
        /// The chunk.
        chunk: ChunkIndex,
        /// Sketch plus probe columns.
        width: usize,
    },
    /// `A_ij X_j` for an input block `X_j`.
    Times {
        /// The chunk.
        chunk: ChunkIndex,
        /// Columns of X.
        width: usize,
    },
    /// `A_ij^T Y_i` for an input block `Y_i`.
    TimesT {
        /// The chunk.
        chunk: ChunkIndex,
        /// Columns of Y.
        width: usize,
    },
    /// Sum of same-shape blocks, in input order.
    Sum,
    /// Columns `from..to` of a block.
    Columns {
        /// First column.
        from: usize,
        /// One past the last column.
        to: usize,
    },
    /// Blocks side by side.
    Concat,
    /// A step of a block QR tree.
    Qr(BlockQrOp),
    /// SVD of `R_b` (`B^T = Q_b R_b`): outputs s, `U_r` and `V_r`, first `k` of each.
    SmallSvd {
        /// Singular triplets kept.
        k: usize,
    },
    /// A block times a small matrix.
    Multiply,
    /// Per column of a V block: the entry of largest magnitude and its global row.
    Extremes {
        /// Global row of the block's first row.
        row0: usize,
    },
    /// The sign of each column of V (from all blocks' extremes).
    Signs,
    /// `V_j^T ω_j` for chunk column `col` (probes regenerated).
    ProbeProject {
        /// Chunk column.
        col: usize,
    },
    /// Squared column norms of `(A ω)_i - U_i diag(s) V^T ω`.
    Residual,
    /// The spectral bound and Frobenius estimate from all residual norms.
    Estimate,
    /// Merges column moments (`[count; mean; M2]` blocks of one chunk column), in input order.
    Moments,
    /// `mu_j^T [Ω_j ω_j]` for chunk column `col` (the sketch regenerated) from its moments.
    MeanSketch {
        /// Chunk column.
        col: usize,
        /// Sketch plus probe columns.
        width: usize,
    },
    /// `mu_j^T X_j` from a chunk column's moments and its block of X.
    MeanTimes,
    /// `1^T Y_i`: the column sums of a block.
    ColumnSums,
    /// `Y_i - 1 r^T`: a row subtracted from every row of a block (centering `A X`).
    SubtractRow,
    /// `Z_j - mu_j s^T`: centering `A^T Y` (`s = 1^T Y`).
    SubtractOuter,
    /// Writes a block of U or V, signs applied, to its store.
    Write {
        /// Which factor.
        side: Side,
        /// Its block (chunk row of A for U, chunk column for V).
        block: usize,
    },
}

impl Operation for RsvdOp {
    fn stage(&self) -> &'static str {
        match self {
            Self::Sketch { .. } | Self::Times { .. } | Self::TimesT { .. } => "pass over A",
            Self::Sum | Self::Columns { .. } | Self::Concat => "block sums",
            Self::Qr(_) => "orthonormalization",
            Self::SmallSvd { .. } => "SVD of B",
            Self::Multiply => "U = Q V_r",
            Self::Extremes { .. } | Self::Signs => "signs",
            Self::ProbeProject { .. } | Self::Residual | Self::Estimate => "error estimate",
            Self::Moments
            | Self::MeanSketch { .. }
            | Self::MeanTimes
            | Self::ColumnSums
            | Self::SubtractRow
            | Self::SubtractOuter => "centering",
            Self::Write { .. } => "write U, V",
        }
    }

    fn label(&self) -> String {
        match self {
            Self::Sketch { chunk, .. } => format!("A{chunk} sketch"),
            Self::Times { chunk, .. } => format!("A{chunk} X"),
            Self::TimesT { chunk, .. } => format!("A{chunk}^T Y"),
            Self::Sum => "sum".into(),
            Self::Columns { from, to } => format!("columns {from}..{to}"),
            Self::Concat => "concat".into(),
            Self::Qr(op) => op.label(),
            Self::SmallSvd { k } => format!("svd of R_b (k = {k})"),
            Self::Multiply => "Q V_r".into(),
            Self::Extremes { row0 } => format!("extremes @{row0}"),
            Self::Signs => "signs".into(),
            Self::ProbeProject { col } => format!("V^T probes {col}"),
            Self::Residual => "residual".into(),
            Self::Estimate => "estimate".into(),
            Self::Moments => "moments".into(),
            Self::MeanSketch { col, .. } => format!("mean sketch {col}"),
            Self::MeanTimes => "mean X".into(),
            Self::ColumnSums => "column sums".into(),
            Self::SubtractRow => "Y - 1 r".into(),
            Self::SubtractOuter => "Z - mu s".into(),
            Self::Write { side, block } => format!("write {side:?} {block}"),
        }
    }

    fn row_block(&self) -> Option<usize> {
        match self {
            Self::Sketch { chunk, .. } | Self::Times { chunk, .. } | Self::TimesT { chunk, .. } => Some(chunk.row),
            Self::Write { side: Side::U, block } => Some(*block),
            _ => None,
        }
    }
}
