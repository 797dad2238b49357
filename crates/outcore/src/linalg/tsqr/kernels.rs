//! The TSQR kernels: what each [`TsqrOp`] computes from its inputs.

use std::sync::Arc;

use faer::linalg::matmul::matmul;
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use outcore_storage::{ChunkIndex, ChunkStore, Knob, Pinned, Reservation};

use super::layout::{Centering, Layout, Root};
use super::ops::TsqrOp;
use crate::error::{Error, Result};
use crate::linalg::dense::{
    CholeskyQr, Regression, apply_q, apply_q_into, center_columns, center_rows, cholesky_qr2_r, column_scales, fit,
    flip_signs, pooled_mean, qr_in_place, r_factor, solve_r_if_conditioned, thin_svd, to_block, view, weigh_rows,
};
use crate::matrix::{ChunkedMatrix, MatrixReader};
use crate::task::{Block, Executor, WorkerScratch};

pub(crate) struct TsqrExecutor<'a> {
    layout: &'a Layout,
    reader: MatrixReader,
    /// The right-hand sides' reader, for a least-squares root.
    rhs: Option<MatrixReader>,
    /// The row weights' reader, for a weighted least-squares root.
    weights: Option<MatrixReader>,
    sink: Option<Arc<dyn ChunkStore>>,
}

impl<'a> TsqrExecutor<'a> {
    pub(crate) fn new(
        layout: &'a Layout,
        reader: MatrixReader,
        beside: (Option<MatrixReader>, Option<MatrixReader>),
        sink: Option<Arc<dyn ChunkStore>>,
    ) -> Self {
        let (rhs, weights) = beside;
        Self { layout, reader, rhs, weights, sink }
    }

    /// Values of the chunk buffer the readers share.
    fn chunk_len(&self) -> usize {
        let beside = self.rhs.iter().chain(&self.weights).map(MatrixReader::buffer_len).max().unwrap_or(0);
        self.reader.buffer_len().max(beside)
    }

    /// Reads panel `panel` into `panel_buf` (column-major) and centers it as the plan says,
    /// returning its means (one per column, or `[mean; scale]` per row); with weights (read
    /// into `weight_buf`, one per panel row), weighs its rows (see [`weigh_rows`]).
    fn read_panel<'b>(
        &self,
        panel: usize,
        panel_buf: &'b mut [f64],
        weight_buf: &mut [f64],
        chunk: &mut Vec<f64>,
        budget: &mut Reservation,
    ) -> Result<(MatMut<'b, f64>, Option<Block>)> {
        let rows = self.layout.panels[panel].clone();
        let (h, n, lhs) = (rows.len(), self.layout.n, self.layout.lhs_cols());
        let mut a = MatMut::from_column_major_slice_mut(panel_buf, h, n);
        self.reader.read(rows.clone(), 0..lhs, a.rb_mut().subcols_mut(0, lhs), budget, chunk)?;
        if let Some(rhs) = &self.rhs {
            rhs.read(rows.clone(), 0..n - lhs, a.rb_mut().subcols_mut(lhs, n - lhs), budget, chunk)?;
        }
        if let Some(weights) = &self.weights {
            let w =
                weight_buf.get_mut(..h).ok_or_else(|| Error::Bug("a weighted panel read without weights".into()))?;
            weights.read(rows.clone(), 0..1, MatMut::from_column_major_slice_mut(w, h, 1), budget, chunk)?;
            if let Some((i, w)) = w.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
                let reason = format!(
                    "row {} has weight {w}: a weight is how many times its row counts, finite and at least 0",
                    rows.start + i
                );
                return Err(Error::invalid(Knob::Weights, reason));
            }
            let stats = weigh_rows(a.rb_mut(), w, self.layout.centering == Centering::Columns);
            return Ok((a, stats));
        }
        let stats = match self.layout.centering {
            Centering::None => None,
            Centering::Columns => Some(center_columns(a.rb_mut())),
            Centering::Rows => Some(center_rows(a.rb_mut(), self.layout.standardize)),
        };
        Ok((a, stats))
    }

    /// Reads panel `panel` into `panel_buf` and factors it in place; returns the Householder
    /// coefficients and the panel's means. The U pass's factorization: the same read and
    /// `qr_in_place` as `panel_r`'s Householder path, so its Q matches the first pass's R bit
    /// for bit.
    fn factor_panel(
        &self,
        panel: usize,
        panel_buf: &mut [f64],
        chunk: &mut Vec<f64>,
        budget: &mut Reservation,
    ) -> Result<(Mat<f64>, Option<Block>)> {
        let (a, stats) = self.read_panel(panel, panel_buf, &mut [], chunk, budget)?;
        Ok((qr_in_place(a), stats))
    }

    /// The panel's R; with columns centered, its column means as one more row; with rows
    /// centered, its row means and scales as a second output.
    fn panel_r(&self, panel: usize, budget: &mut Reservation, scratch: &mut WorkerScratch) -> Result<Vec<Block>> {
        let (h, n) = (self.layout.panels[panel].len(), self.layout.n);
        let weights = if self.weights.is_some() { h } else { 0 };
        let [panel_buf, weight_buf, chunk] = scratch.buffers([h * n, weights, self.chunk_len()], budget)?;
        let householder_r = |buf: &mut [f64]| {
            let coeffs = qr_in_place(MatMut::from_column_major_slice_mut(buf, h, n));
            r_factor(MatRef::from_column_major_slice(buf, h, n), coeffs.ncols())
        };
        // Without U no panel's Q is needed again, so its R may come from CholeskyQR2 (a
        // Householder R may differ from it in signs, which the Q back-propagation relies on).
        // With U, the R must be the one `factor_panel` gives the U pass.
        let (a, stats) = self.read_panel(panel, panel_buf, weight_buf, chunk, budget)?;
        let cholesky = if self.layout.vectors { CholeskyQr::Declined } else { cholesky_qr2_r(a) };
        let mut r = match cholesky {
            CholeskyQr::R(r) => to_block(r.as_ref()),
            CholeskyQr::Declined => householder_r(panel_buf),
            CholeskyQr::Failed => {
                // The panel was overwritten: read it again (same values, same means).
                self.read_panel(panel, panel_buf, weight_buf, chunk, budget)?;
                householder_r(panel_buf)
            }
        };
        match (self.layout.centering, stats) {
            (Centering::None, None) => Ok(vec![r]),
            (Centering::Columns, Some(mean)) => {
                r.data.extend_from_slice(&mean.data);
                r.rows += mean.rows;
                Ok(vec![r])
            }
            (Centering::Rows, Some(stats)) => Ok(vec![r, stats]),
            _ => Err(Error::Bug("a panel's centering does not match its plan".into())),
        }
    }

    /// Stacks the children's R factors and QRs them. With columns centered each child brings
    /// its mean as a row below its R, and the stack gets one row `sqrt(c_j) (mu_j - mu)` per
    /// child (`c_j` its rows, or with weights the sum of its rows' weights, which the child
    /// brings as a last row; `mu` the weighted mean): the centered matrix's Gram is the sum of
    /// the children's plus `sum_j c_j (mu_j - mu)(mu_j - mu)^T`, so the stack's R is the R of
    /// the rows under the node centered on their common mean. The node's mean (and weight)
    /// rides along the same way.
    fn stack_qr(&self, level: usize, node: usize, inputs: &[Pinned]) -> Result<Vec<Block>> {
        let spec = &self.layout.levels[level][node];
        let n = self.layout.n;
        let centered = self.layout.centering == Centering::Columns;
        let extra = self.layout.mean_rows();
        let weighted = centered && self.weights.is_some();
        let counts: Vec<f64> = match weighted {
            true => inputs.iter().map(|r| r[(r.shape().0 - 1) * n]).collect(),
            false => spec.children.clone().map(|c| self.layout.levels[level - 1][c].count as f64).collect(),
        };
        if spec.children.len() != inputs.len() || inputs.iter().any(|r| r.shape().0 < extra) {
            return Err(Error::Bug(format!(
                "stack L{level}.{node} got {} factors for {} children",
                inputs.len(),
                spec.children.len()
            )));
        }
        let total = counts.iter().sum::<f64>();
        let mean = match centered {
            true => pooled_mean(inputs.iter().zip(&counts).map(|(r, c)| (*c, &r[(r.shape().0 - extra) * n..][..n])), n),
            false => vec![0.0; n],
        };
        let mut a = Mat::<f64>::zeros(spec.rows, n);
        let mut row = 0;
        for (r, c) in inputs.iter().zip(&counts) {
            // R and the mean row; the weight row stays behind.
            let (rows, cols) = (r.shape().0 - extra + usize::from(centered), r.shape().1);
            if row + rows > spec.rows || cols != n {
                return Err(Error::Bug(format!("stack L{level}.{node} got a {rows} x {cols} factor at row {row}")));
            }
            a.as_mut().submatrix_mut(row, 0, rows, cols).copy_from(view(&r[..rows * cols], rows, cols));
            if centered {
                let weight = c.sqrt();
                (0..n).for_each(|j| a[(row + rows - 1, j)] = weight * (a[(row + rows - 1, j)] - mean[j]));
            }
            row += rows;
        }
        let coeffs = qr_in_place(a.as_mut());
        let mut r = r_factor(a.as_ref(), spec.k);
        if centered {
            r.data.extend_from_slice(&mean);
            r.rows += 1;
        }
        if weighted {
            r.data.push(total);
            r.data.resize(r.data.len() + n - 1, 0.0);
            r.rows += 1;
        }
        let mut outputs = vec![r];
        if self.layout.vectors {
            outputs.push(to_block(a.as_ref()));
            outputs.push(to_block(coeffs.as_ref()));
        }
        Ok(outputs)
    }

    /// The SVD of the root R: s, then V (and U_R for the second pass) when asked; with columns
    /// centered, the root's mean row is split off first, R's columns are scaled when
    /// standardizing, and the means and scales come last.
    fn svd_of_r(&self, r: &Pinned) -> Result<Vec<Block>> {
        let (rows, cols) = r.shape();
        let mut r = view(r, rows, cols).to_owned();
        let mut stats = None;
        if self.layout.centering == Centering::Columns {
            let k = rows - self.layout.mean_rows();
            let mean: Vec<f64> = r.row(k).iter().copied().collect();
            r.truncate(k, cols);
            let scale = if self.layout.standardize {
                let samples = self.layout.tall.rows() as f64;
                column_scales(r.as_mut(), &mean, samples)
            } else {
                vec![1.0; cols]
            };
            stats = Some(Block { data: [mean, scale].concat(), rows: 2, cols });
        }
        let (s, vectors) = thin_svd(r.as_ref(), self.layout.vectors || self.layout.small_v)?;
        let k = s.len();
        let mut outputs = vec![Block { data: s, rows: 1, cols: k }];
        if let Some((mut u, mut v)) = vectors {
            flip_signs(u.as_mut(), v.as_mut());
            outputs.push(to_block(v.as_ref()));
            if self.layout.vectors {
                outputs.push(to_block(u.as_ref()));
            }
        }
        outputs.extend(stats);
        Ok(outputs)
    }

    /// A's R from the root R of `[A | B]` (of A alone, without right-hand sides),
    /// `[R_1 | R_2]` in its first `a` rows: `D R_1` with `D = diag(sign(r_ii))` (a zero counts as
    /// positive), so that the factorization is the same whatever the kernels' signs; with
    /// vectors also W = `[D C; 0]` (`C` the identity unless given), so that the second pass
    /// writes `Q D C`; with right-hand sides last `D R_2`, which is `(Q D)^T B`.
    fn sign_r(&self, r: &Pinned) -> Result<Vec<Block>> {
        let (rows, cols) = r.shape();
        let a = self.layout.lhs_cols();
        if rows < a {
            return Err(Error::Bug(format!("a QR root of {rows} rows for {a} columns")));
        }
        let mut r = view(r, rows, cols).subrows(0, a).to_owned();
        let signs: Vec<f64> = (0..a).map(|i| if r[(i, i)] < 0.0 { -1.0 } else { 1.0 }).collect();
        for (i, &sign) in signs.iter().enumerate() {
            if sign < 0.0 {
                r.as_mut().row_mut(i).iter_mut().for_each(|x| *x = -*x);
            }
        }
        let mut outputs = vec![to_block(r.as_ref().subcols(0, a))];
        if self.layout.vectors {
            let c = self.layout.factor_cols();
            let w = match &self.layout.q_times {
                Some(times) => Mat::from_fn(rows, c, |i, j| if i < a { signs[i] * times[(i, j)] } else { 0.0 }),
                None => Mat::from_fn(rows, c, |i, j| if i == j { signs[i] } else { 0.0 }),
            };
            outputs.push(to_block(w.as_ref()));
        }
        if self.layout.rhs.is_some() {
            outputs.push(to_block(r.as_ref().subcols(a, cols - a)));
        }
        Ok(outputs)
    }

    /// The least-squares fit from the root `R = [R_1 | R_2]` of `[A | B]`: `[A | B] = Q R`
    /// makes `||A X - B|| = ||R_1 X - R_2||`, solved through the SVD of `R_1` (with columns
    /// centered, the root's mean row is split off first). Outputs X (`a x p`), the singular
    /// values of A, the residual sums of squares, the rank, the total sums of squares, then
    /// the intercepts, the standard errors of X and of the intercepts, `(A^T A)^-1` and the
    /// scales `sigma_j^2` (each `0 x 0` when not computed).
    fn solve(&self, r: &Pinned, how: Regression) -> Result<Vec<Block>> {
        let (rows, cols) = r.shape();
        let r = view(r, rows, cols);
        let centered = self.layout.centering == Centering::Columns;
        let k = rows - self.layout.mean_rows();
        let means: Option<Vec<f64>> = centered.then(|| r.row(k).iter().copied().collect());
        let samples = self.layout.tall.rows() as f64;
        // The weights' sum, which the intercept's variance is over: the rows' count unweighted.
        let weight = if centered && self.weights.is_some() { r[(rows - 1, 0)] } else { samples };
        if centered && weight <= 0.0 {
            let reason = "the weights sum to 0, so no row counts and there are no means to fit an intercept to: give some rows a positive weight";
            return Err(Error::invalid(Knob::Weights, reason));
        }
        let f = fit(r.subrows(0, k), self.layout.lhs_cols(), means.as_deref(), (samples, weight), how)?;
        let row = |values: Vec<f64>| Block { rows: 1, cols: values.len(), data: values };
        let none = || Block { rows: 0, cols: 0, data: Vec::new() };
        let [stderr, intercept_stderr, unscaled, scale] = match f.covariance {
            Some(c) => [
                to_block(c.x.as_ref()),
                c.intercept.map_or_else(none, row),
                to_block(c.unscaled.as_ref()),
                row(c.scale),
            ],
            None => [none(), none(), none(), none()],
        };
        Ok(vec![
            to_block(f.x.as_ref()),
            row(f.s),
            row(f.rss),
            row(vec![f.rank as f64]),
            row(f.tss),
            f.intercept.map_or_else(none, row),
            stderr,
            intercept_stderr,
            unscaled,
            scale,
        ])
    }

    fn apply_node_q(&self, level: usize, node: usize, inputs: &[Pinned]) -> Result<Vec<Block>> {
        let [factors, coeffs, w] = inputs else {
            return Err(Error::Bug(format!("apply Q L{level}.{node} takes 3 inputs, got {}", inputs.len())));
        };
        let factors = view(factors, factors.shape().0, factors.shape().1).to_owned();
        let product = apply_q(
            factors.as_ref(),
            view(coeffs, coeffs.shape().0, coeffs.shape().1),
            view(w, w.shape().0, w.shape().1),
        )?;
        let mut row = 0;
        let mut outputs = Vec::new();
        for child in self.layout.levels[level][node].children.clone() {
            let k = self.layout.levels[level - 1][child].k;
            outputs.push(to_block(product.as_ref().submatrix(row, 0, k, product.ncols())));
            row += k;
        }
        Ok(outputs)
    }

    /// `U_panel = Q_panel W`, written to the sink. Where the panel's R is well conditioned this
    /// is `A_panel (R^-1 W)`: one product, against a second QR and a Householder application.
    fn panel_u(
        &self,
        panel: usize,
        w: &Pinned,
        r: &Pinned,
        budget: &mut Reservation,
        scratch: &mut WorkerScratch,
    ) -> Result<Vec<Block>> {
        let sink = self.sink.as_ref().ok_or_else(|| Error::Bug("U assembly without a store for U".into()))?;
        let rows = self.layout.panels[panel].clone();
        let (h, n) = (rows.len(), self.layout.n);
        let (wr, c) = w.shape();
        let grid = sink.grid();
        let chunk_rows = grid.chunk_shape().0;
        let lens = [h * n, self.chunk_len(), h * c];
        let [panel_buf, chunk, u_buf] = scratch.buffers(lens, budget)?;
        // Row-major, so each chunk of U is a contiguous run of it, written without a copy.
        let mut u = MatMut::from_row_major_slice_mut(u_buf, h, c);
        let (rr, rc) = r.shape();
        match solve_r_if_conditioned(view(r, rr, rc), view(w, wr, c), self.layout.shortcut_condition) {
            Some(x) => {
                let (a, _) = self.read_panel(panel, panel_buf, &mut [], chunk, budget)?;
                matmul(u.rb_mut(), Accum::Replace, a.rb(), x.as_ref(), 1.0, Par::Seq);
            }
            None => {
                let (coeffs, _) = self.factor_panel(panel, panel_buf, chunk, budget)?;
                let factors = MatRef::from_column_major_slice(panel_buf, h, n);
                apply_q_into(factors, coeffs.as_ref(), view(w, wr, c), u.rb_mut())?;
            }
        }
        for index in rows.start / chunk_rows..rows.end.div_ceil(chunk_rows) {
            let e = grid.extent(ChunkIndex::new(index, 0))?;
            let first = e.row0 - rows.start;
            sink.write_chunk(ChunkIndex::new(index, 0), &u_buf[first * c..(first + e.rows) * c])?;
        }
        Ok(Vec::new())
    }
}

impl Executor for TsqrExecutor<'_> {
    type Op = TsqrOp;

    /// The input, how panels are checked and U assembled, and whether the input is cached.
    fn identity(&self) -> String {
        let p = self.layout;
        format!(
            "{} rhs {} weights {} finite {} shortcut {} cache {} centering {:?} standardize {} root {:?}",
            p.tall.describe(),
            p.rhs.as_ref().map_or_else(|| "none".to_string(), ChunkedMatrix::describe),
            p.weights.as_ref().map_or_else(|| "none".to_string(), ChunkedMatrix::describe),
            p.check_finite,
            p.shortcut_condition,
            p.cache_input,
            p.centering,
            p.standardize,
            p.root
        )
    }

    fn execute(
        &self,
        op: &TsqrOp,
        inputs: &[Pinned],
        budget: &mut Reservation,
        scratch: &mut WorkerScratch,
    ) -> Result<Vec<Block>> {
        match (op, inputs) {
            (TsqrOp::PanelQr { panel }, []) => self.panel_r(*panel, budget, scratch),
            (TsqrOp::StackQr { level, node }, _) => self.stack_qr(*level, *node, inputs),
            (TsqrOp::SvdR, [r]) => self.svd_of_r(r),
            (TsqrOp::SignR, [r]) => self.sign_r(r),
            (TsqrOp::Solve, [r]) => match self.layout.root {
                Root::Lstsq(how) => self.solve(r, how),
                root => Err(Error::Bug(format!("a least-squares step in a plan whose root is {root:?}"))),
            },
            (TsqrOp::ApplyQ { level, node }, _) => self.apply_node_q(*level, *node, inputs),
            (TsqrOp::PanelU { panel }, [w, r]) => self.panel_u(*panel, w, r, budget, scratch),
            _ => Err(Error::Bug(format!("{op:?} given {} inputs", inputs.len()))),
        }
    }
}
