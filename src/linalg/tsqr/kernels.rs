//! The TSQR kernels: what each [`TsqrOp`] computes from its inputs.

use std::sync::Arc;

use faer::linalg::matmul::matmul;
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use outcore_storage::{ChunkIndex, ChunkStore, Pinned, Reservation};

use super::build::TsqrOp;
use super::plan::TsqrPlan;
use crate::linalg::dense::{
    apply_q, apply_q_into, flip_signs, output, qr_in_place, r_factor, solve_r_if_conditioned, thin_svd, view,
};
use crate::matrix::MatrixReader;
use crate::schedule::{Executor, Output, WorkerScratch};
use crate::{Error, Result};

pub(crate) struct TsqrExecutor<'a> {
    plan: &'a TsqrPlan,
    reader: MatrixReader,
    sink: Option<Arc<dyn ChunkStore>>,
}

impl<'a> TsqrExecutor<'a> {
    pub(crate) fn new(plan: &'a TsqrPlan, reader: MatrixReader, sink: Option<Arc<dyn ChunkStore>>) -> Self {
        Self { plan, reader, sink }
    }

    /// Reads panel `panel` into `panel_buf` (column-major).
    fn read_panel<'b>(
        &self,
        panel: usize,
        panel_buf: &'b mut [f64],
        chunk: &mut Vec<f64>,
        budget: &mut Reservation,
    ) -> Result<MatMut<'b, f64>> {
        let rows = self.plan.panels[panel].clone();
        let mut a = MatMut::from_column_major_slice_mut(panel_buf, rows.len(), self.plan.n);
        self.reader.read(rows, 0..self.plan.n, a.rb_mut(), budget, chunk)?;
        Ok(a)
    }

    /// Reads panel `panel` into `panel_buf` and factors it in place; returns the Householder
    /// coefficients. Used by both passes, so the second pass's Q matches the first pass's R bit
    /// for bit.
    fn factor_panel(
        &self,
        panel: usize,
        panel_buf: &mut [f64],
        chunk: &mut Vec<f64>,
        budget: &mut Reservation,
    ) -> Result<Mat<f64>> {
        Ok(qr_in_place(self.read_panel(panel, panel_buf, chunk, budget)?))
    }

    fn panel_r(&self, panel: usize, budget: &mut Reservation, scratch: &mut WorkerScratch) -> Result<Vec<Output>> {
        let (h, n) = (self.plan.panels[panel].len(), self.plan.n);
        let [panel_buf, chunk] = scratch.buffers([h * n, self.reader.buffer_len()], budget)?;
        let coeffs = self.factor_panel(panel, panel_buf, chunk, budget)?;
        Ok(vec![r_factor(MatRef::from_column_major_slice(panel_buf, h, n), coeffs.ncols())])
    }

    fn stack_qr(&self, level: usize, node: usize, inputs: &[Pinned]) -> Result<Vec<Output>> {
        let spec = &self.plan.levels[level][node];
        let mut a = Mat::<f64>::zeros(spec.rows, self.plan.n);
        let mut row = 0;
        for r in inputs {
            let (rows, cols) = r.shape();
            if row + rows > spec.rows || cols != self.plan.n {
                return Err(Error::Bug(format!("stack L{level}.{node} got a {rows} x {cols} factor at row {row}")));
            }
            a.as_mut().submatrix_mut(row, 0, rows, cols).copy_from(view(r, rows, cols));
            row += rows;
        }
        let coeffs = qr_in_place(a.as_mut());
        let mut outputs = vec![r_factor(a.as_ref(), spec.k)];
        if self.plan.vectors {
            outputs.push(output(a.as_ref()));
            outputs.push(output(coeffs.as_ref()));
        }
        Ok(outputs)
    }

    fn svd_of_r(&self, r: &Pinned) -> Result<Vec<Output>> {
        let (rows, cols) = r.shape();
        let (s, vectors) = thin_svd(view(r, rows, cols), self.plan.vectors)?;
        let k = s.len();
        let s = Output { data: s, rows: 1, cols: k };
        match vectors {
            None => Ok(vec![s]),
            Some((mut u, mut v)) => {
                flip_signs(u.as_mut(), v.as_mut());
                Ok(vec![s, output(v.as_ref()), output(u.as_ref())])
            }
        }
    }

    fn apply_node_q(&self, level: usize, node: usize, inputs: &[Pinned]) -> Result<Vec<Output>> {
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
        for child in self.plan.levels[level][node].children.clone() {
            let k = self.plan.levels[level - 1][child].k;
            outputs.push(output(product.as_ref().submatrix(row, 0, k, product.ncols())));
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
    ) -> Result<Vec<Output>> {
        let sink = self.sink.as_ref().ok_or_else(|| Error::Bug("U assembly without a store for U".into()))?;
        let rows = self.plan.panels[panel].clone();
        let (h, n) = (rows.len(), self.plan.n);
        let (wr, c) = w.shape();
        let grid = sink.grid();
        let chunk_rows = grid.chunk_shape().0;
        let lens = [h * n, self.reader.buffer_len(), h * c];
        let [panel_buf, chunk, u_buf] = scratch.buffers(lens, budget)?;
        // Row-major, so each chunk of U is a contiguous run of it, written without a copy.
        let mut u = MatMut::from_row_major_slice_mut(u_buf, h, c);
        let (rr, rc) = r.shape();
        match solve_r_if_conditioned(view(r, rr, rc), view(w, wr, c), self.plan.shortcut_condition) {
            Some(x) => {
                let a = self.read_panel(panel, panel_buf, chunk, budget)?;
                matmul(u.rb_mut(), Accum::Replace, a.rb(), x.as_ref(), 1.0, Par::Seq);
            }
            None => {
                let coeffs = self.factor_panel(panel, panel_buf, chunk, budget)?;
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
        let p = self.plan;
        format!(
            "{} finite {} shortcut {} cache {}",
            p.tall.describe(),
            p.check_finite,
            p.shortcut_condition,
            p.cache_input
        )
    }

    fn execute(
        &self,
        op: &TsqrOp,
        inputs: &[Pinned],
        budget: &mut Reservation,
        scratch: &mut WorkerScratch,
    ) -> Result<Vec<Output>> {
        match (op, inputs) {
            (TsqrOp::PanelQr { panel }, []) => self.panel_r(*panel, budget, scratch),
            (TsqrOp::StackQr { level, node }, _) => self.stack_qr(*level, *node, inputs),
            (TsqrOp::SvdR, [r]) => self.svd_of_r(r),
            (TsqrOp::ApplyQ { level, node }, _) => self.apply_node_q(*level, *node, inputs),
            (TsqrOp::PanelU { panel }, [w, r]) => self.panel_u(*panel, w, r, budget, scratch),
            _ => Err(Error::Bug(format!("{op:?} given {} inputs", inputs.len()))),
        }
    }
}
