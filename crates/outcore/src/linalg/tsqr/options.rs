//! What a caller chooses of a TSQR SVD.

/// Choices for an exact SVD by TSQR ([`svd`](crate::svd)). Start from [`SvdOptions::new`]
/// (or `default()`) and change what you need:
///
/// ```
/// let options = outcore::SvdOptions::new().vectors(false).fan_in(8);
/// assert!(!options.vectors);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SvdOptions {
    /// Compute singular vectors (U and V), not only values.
    pub vectors: bool,
    /// R factors stacked per reduction node (default: chosen from the shape and memory).
    pub fan_in: Option<usize>,
    /// Rows per panel (default: whole chunk rows, at least as many rows as columns).
    pub panel_rows: Option<usize>,
    /// Refuse input holding NaN or infinity (a scan of each panel as it is read).
    pub check_finite: bool,
    /// Factor the matrix with its column means subtracted (a PCA), in the same single pass.
    pub center: bool,
    /// Also divide each centered column by its standard deviation (implies `center`).
    pub standardize: bool,
}

impl Default for SvdOptions {
    fn default() -> Self {
        Self { vectors: true, fan_in: None, panel_rows: None, check_finite: true, center: false, standardize: false }
    }
}

impl SvdOptions {
    /// Values and vectors, sizes chosen by the plan, input checked for NaN and infinity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compute U and V (`true`, the default), or singular values only (`false`: one pass over
    /// the input).
    pub fn vectors(mut self, vectors: bool) -> Self {
        self.vectors = vectors;
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

    /// Factor `A - 1 mean^T`, the matrix with its column means subtracted, as a PCA does,
    /// without forming it: still one pass. Each panel is centered on its own means and factored,
    /// and two factors merge as the QR of `[R_1; R_2; sqrt(n_1 n_2 / (n_1 + n_2)) (mu_1 - mu_2)^T]`
    /// (generalised to any fan-in), which is exact. The means come back in
    /// [`SvdResult::centered`](crate::SvdResult::centered). For a tall matrix the result has V but
    /// not U (project instead: `U = (A - 1 mean^T) V diag(s)^-1`); for a wide one each
    /// row of the transposed problem is centered where it is read, and U and V both come back.
    pub fn center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }

    /// Center each column and divide it by its standard deviation (`ddof = 1`; a constant
    /// column, one whose variance is within centering's rounding, is left unscaled), as
    /// scikit-learn's `StandardScaler` does (it divides by the `ddof = 0` deviation); implies
    /// [`center`](Self::center). For a tall matrix the scaling is applied to the final R.
    pub fn standardize(mut self, standardize: bool) -> Self {
        self.standardize = standardize;
        self
    }
}
