//! What a caller chooses of a least-squares solve.

/// Choices for a least-squares solve ([`lstsq`](crate::lstsq)). Start from
/// [`LstsqOptions::new`] (or `default()`) and change what you need:
///
/// ```
/// let options = outcore::LstsqOptions::new().rcond(1e-10);
/// assert_eq!(options.rcond, Some(1e-10));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LstsqOptions {
    /// Singular values of A at most `rcond` times the largest count as zero (numpy's
    /// `rcond`); `None`: machine epsilon times `max(rows, cols)`, numpy's default. As in
    /// LAPACK's `gelsd`, which numpy calls, a value outside `(0, 1)` means machine epsilon.
    pub rcond: Option<f64>,
    /// R factors stacked per reduction node (default: chosen from the shape and memory).
    pub fan_in: Option<usize>,
    /// Rows per panel (default: whole chunk rows, at least as many rows as columns).
    pub panel_rows: Option<usize>,
    /// Refuse input holding NaN or infinity (a scan of each panel as it is read).
    pub check_finite: bool,
    /// Fit an intercept per column of B (the columns of A and B centered, in the same pass,
    /// without forming the centered matrix), as scikit-learn's `fit_intercept`.
    pub fit_intercept: bool,
    /// Ridge penalty: minimize `||A X - B||^2 + alpha ||X||^2` (the intercept not penalized),
    /// as scikit-learn's `Ridge`; 0 for ordinary least squares.
    pub alpha: f64,
}

impl Default for LstsqOptions {
    fn default() -> Self {
        Self { rcond: None, fan_in: None, panel_rows: None, check_finite: true, fit_intercept: false, alpha: 0.0 }
    }
}

impl LstsqOptions {
    /// numpy's cutoff, sizes chosen by the plan, input checked for NaN and infinity.
    pub fn new() -> Self {
        Self::default()
    }

    /// The relative cutoff for A's singular values (finite; outside `(0, 1)`, machine epsilon).
    pub fn rcond(mut self, rcond: f64) -> Self {
        self.rcond = Some(rcond);
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

    /// Fit an intercept per column of B (`false`, the default, as numpy's `lstsq`).
    pub fn fit_intercept(mut self, fit: bool) -> Self {
        self.fit_intercept = fit;
        self
    }

    /// The ridge penalty (at least 0; 0, the default, for ordinary least squares).
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }
}
