//! The steps of a TSQR run, as data: one op per panel, tree node and U (or Q) block.

use crate::task::Operation;

/// One TSQR step; indices refer to the plan's panels and tree levels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TsqrOp {
    /// Read panel `panel`, QR it, output its R.
    PanelQr {
        /// Panel index.
        panel: usize,
    },
    /// Stack the children's R factors of node `node` of level `level`, QR, output R (and, with
    /// vectors, the Householder factors and coefficients).
    StackQr {
        /// Tree level (1 = just above the panels).
        level: usize,
        /// Node index within the level.
        node: usize,
    },
    /// SVD of the root R: singular values (and V, U_R with signs fixed).
    SvdR,
    /// The root R with its diagonal made non-negative (and, for Q, those signs as W).
    SignR,
    /// The least-squares solution from the root R of `[A | B]`.
    Solve,
    /// Apply node `node`'s Q to its block of W, giving one block per child.
    ApplyQ {
        /// Tree level.
        level: usize,
        /// Node index within the level.
        node: usize,
    },
    /// Re-factor panel `panel` and write its rows of U = Q_i [W_i; 0].
    PanelU {
        /// Panel index.
        panel: usize,
    },
}

impl Operation for TsqrOp {
    fn stage(&self) -> &'static str {
        match self {
            Self::PanelQr { .. } => "panel QR",
            Self::StackQr { .. } => "R reduction",
            Self::SvdR => "SVD of R",
            Self::SignR => "R",
            Self::Solve => "least squares",
            Self::ApplyQ { .. } => "Q back-propagation",
            Self::PanelU { .. } => "U assembly",
        }
    }

    fn label(&self) -> String {
        match self {
            Self::PanelQr { panel } => format!("qr panel {panel}"),
            Self::StackQr { level, node } => format!("stack qr L{level}.{node}"),
            Self::SvdR => "svd of R".to_string(),
            Self::SignR => "signs of R".to_string(),
            Self::Solve => "solve R_1 X = R_2".to_string(),
            Self::ApplyQ { level, node } => format!("apply Q L{level}.{node}"),
            Self::PanelU { panel } => format!("U panel {panel}"),
        }
    }

    fn row_block(&self) -> Option<usize> {
        match self {
            Self::PanelQr { panel } | Self::PanelU { panel } => Some(*panel),
            _ => None,
        }
    }
}
