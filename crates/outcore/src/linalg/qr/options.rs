//! What a caller chooses of a QR.

use faer::Mat;

/// What a QR returns, as numpy's `qr` modes name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QrMode {
    /// `Q` (`m x n`, orthonormal columns, written to a destination) and `R` (`n x n`): two
    /// passes over the matrix. numpy's default.
    #[default]
    Reduced,
    /// `R` alone, in one pass; `Q` is never formed.
    R,
}

/// Choices for a QR ([`qr`](crate::qr)). Start from [`QrOptions::new`] (or `default()`) and
/// change what you need:
///
/// ```
/// use outcore::{QrMode, QrOptions};
///
/// let options = QrOptions::new().mode(QrMode::R).fan_in(8);
/// assert_eq!(options.mode, QrMode::R);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QrOptions {
    /// What is computed: `Q` and `R`, or `R` alone.
    pub mode: QrMode,
    /// R factors stacked per reduction node (default: chosen from the shape and memory).
    pub fan_in: Option<usize>,
    /// Rows per panel (default: whole chunk rows, at least as many rows as columns).
    pub panel_rows: Option<usize>,
    /// Refuse input holding NaN or infinity (a scan of each panel as it is read).
    pub check_finite: bool,
    /// In [`QrMode::Reduced`], write `Q C` (`m x p`) in place of Q: `C` is `n x p`, held in
    /// RAM (scipy's `qr_multiply(a, c, mode="left")`). Q itself is never formed.
    pub q_times: Option<Mat<f64>>,
}

impl Default for QrOptions {
    fn default() -> Self {
        Self { mode: QrMode::Reduced, fan_in: None, panel_rows: None, check_finite: true, q_times: None }
    }
}

impl QrOptions {
    /// `Q` and `R`, sizes chosen by the plan, input checked for NaN and infinity.
    pub fn new() -> Self {
        Self::default()
    }

    /// What is computed ([`QrMode::Reduced`], the default, or [`QrMode::R`]).
    pub fn mode(mut self, mode: QrMode) -> Self {
        self.mode = mode;
        self
    }

    /// R factors stacked per reduction node (at least 2).
    pub fn fan_in(mut self, fan_in: usize) -> Self {
        self.fan_in = Some(fan_in);
        self
    }

    /// Rows per panel.
    pub fn panel_rows(mut self, rows: usize) -> Self {
        self.panel_rows = Some(rows);
        self
    }

    /// Refuse input holding NaN or infinity (`true`, the default) or skip the scan.
    pub fn check_finite(mut self, check: bool) -> Self {
        self.check_finite = check;
        self
    }

    /// Write `Q C` in place of Q (`c` has a row per column of the matrix).
    pub fn q_times(mut self, c: Mat<f64>) -> Self {
        self.q_times = Some(c);
        self
    }
}
