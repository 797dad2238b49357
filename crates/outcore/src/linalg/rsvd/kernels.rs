//! What each [`RsvdOp`] computes.

use std::sync::Arc;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use outcore_storage::{ChunkIndex, ChunkStore, Pinned, Reservation};

use super::layout::Sketch;
use super::moments::Moments;
use super::ops::{RsvdOp, Side};
use crate::error::{Error, Result};
use crate::linalg::dense::{thin_svd, to_block, view};
use crate::matrix::{Distribution, MatrixReader, fill_row, sparse};
use crate::task::{Block, Executor, WorkerScratch};

/// Seed of the sketch Ω and the probes ω, derived from the user's seed so the sketch does not
/// coincide with a generated input of the same seed.
fn sketch_seed(seed: u64) -> u64 {
    seed ^ 0x5ce7_c4ed_0b5e_57a1
}

pub(crate) struct RsvdExecutor<'a> {
    sketch: &'a Sketch,
    reader: MatrixReader,
    u: Arc<dyn ChunkStore>,
    v: Arc<dyn ChunkStore>,
}

fn pinned_view(p: &Pinned) -> MatRef<'_, f64> {
    let (r, c) = p.shape();
    view(p, r, c)
}

/// `lhs * rhs`, sequential.
fn product(lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(lhs.nrows(), rhs.ncols());
    matmul(out.as_mut(), Accum::Replace, lhs, rhs, 1.0, Par::Seq);
    out
}

impl<'a> RsvdExecutor<'a> {
    pub(crate) fn new(
        sketch: &'a Sketch,
        reader: MatrixReader,
        u: Arc<dyn ChunkStore>,
        v: Arc<dyn ChunkStore>,
    ) -> Self {
        Self { sketch, reader, u, v }
    }

    /// Rows `row0..row0 + n` of the generated n x width sketch-and-probes matrix, columns
    /// `col0..col0 + width`, row-major into `out`.
    fn sketch_rows(&self, row0: usize, col0: usize, width: usize, out: &mut [f64]) {
        for (r, row) in out.chunks_exact_mut(width).enumerate() {
            fill_row(Distribution::Normal, sketch_seed(self.sketch.options.seed), row0 + r, col0, row);
        }
    }

    /// `A_ij rhs` (or `A_ij^T rhs`; `rhs` row-major, `width` columns), accumulated over the
    /// pieces the reader streams, or over the nonzeros of a sparse chunk; with `moments`, the
    /// chunk's column moments too (`[count; mean; M2]`, merged block by block).
    #[allow(clippy::too_many_arguments)]
    fn chunk_product(
        &self,
        chunk: ChunkIndex,
        transpose: bool,
        rhs: &[f64],
        width: usize,
        budget: &mut Reservation,
        buf: &mut Vec<f64>,
        mut moments: Option<&mut Moments>,
    ) -> Result<Vec<Block>> {
        let e = self.sketch.a.grid().extent(chunk)?;
        let (rows, rhs_rows) = if transpose { (e.cols, e.rows) } else { (e.rows, e.cols) };
        let product = if let Some((a, flipped)) = self.reader.sparse_chunk(chunk)? {
            // The view's chunk is the stored rows, or their transpose when `flipped`.
            let mut out = vec![0.0; rows * width];
            if transpose == flipped {
                sparse::times(&a, rhs, width, &mut out);
            } else {
                sparse::times_t(&a, rhs, width, &mut out);
            }
            if let Some(m) = moments.as_deref_mut() {
                m.add_sparse(&a, flipped);
            }
            Block { data: out, rows, cols: width }
        } else {
            let rhs = MatRef::from_row_major_slice(rhs, rhs_rows, width);
            let mut out = Mat::<f64>::zeros(rows, width);
            self.reader.for_each_block(chunk, budget, buf, |r0, c0, block| {
                let (br, bc) = block.shape();
                if let Some(m) = moments.as_deref_mut() {
                    m.add_block(c0, block);
                }
                if transpose {
                    // out[c0..] += block^T rhs[r0..]
                    let dst = out.as_mut().submatrix_mut(c0, 0, bc, width);
                    matmul(dst, Accum::Add, block.transpose(), rhs.submatrix(r0, 0, br, width), 1.0, Par::Seq);
                } else {
                    // out[r0..] += block rhs[c0..]
                    let dst = out.as_mut().submatrix_mut(r0, 0, br, width);
                    matmul(dst, Accum::Add, block, rhs.submatrix(c0, 0, bc, width), 1.0, Par::Seq);
                }
                Ok(())
            })?;
            to_block(out.as_ref())
        };
        Ok(std::iter::once(product).chain(moments.map(|m| m.block())).collect())
    }

    fn sketch(
        &self,
        chunk: ChunkIndex,
        width: usize,
        budget: &mut Reservation,
        scratch: &mut WorkerScratch,
    ) -> Result<Vec<Block>> {
        let e = self.sketch.a.grid().extent(chunk)?;
        let [abuf, omega] = scratch.buffers([self.reader.buffer_len(), e.cols * width], budget)?;
        self.sketch_rows(e.col0, 0, width, omega);
        let mut moments = self.sketch.options.gathers_moments().then(|| Moments::new(e.cols));
        self.chunk_product(chunk, false, omega, width, budget, abuf, moments.as_mut())
    }

    /// `mu_j^T [Ω_j ω_j]`: chunk column `col`'s mean times its rows of the sketch.
    fn mean_sketch(&self, col: usize, width: usize, moments: &Pinned) -> Result<Vec<Block>> {
        let e = self.sketch.a.grid().extent(ChunkIndex::new(0, col))?;
        let mut omega = vec![0.0; e.cols * width];
        self.sketch_rows(e.col0, 0, width, &mut omega);
        let omega = MatRef::from_row_major_slice(&omega, e.cols, width);
        Ok(vec![to_block(product(mean_row(moments), omega).as_ref())])
    }

    fn small_svd(&self, k: usize, r: &Pinned) -> Result<Vec<Block>> {
        let (s, vectors) = thin_svd(pinned_view(r), true)?;
        let (ur, vr) = vectors.ok_or_else(|| Error::Bug("SVD without vectors".into()))?;
        if s.len() < k {
            return Err(Error::Bug(format!("SVD of R_b gave {} values, {k} wanted", s.len())));
        }
        // sigma_{k+1} of the projection, at most the residual's spectral norm (0 without one).
        let next = Block { data: vec![s.get(k).copied().unwrap_or(0.0)], rows: 1, cols: 1 };
        let s = Block { data: s[..k].to_vec(), rows: 1, cols: k };
        Ok(vec![s, to_block(ur.as_ref().subcols(0, k)), to_block(vr.as_ref().subcols(0, k)), next])
    }

    fn extremes(row0: usize, v: &Pinned) -> Vec<Block> {
        let (rows, k) = v.shape();
        let mut data = vec![0.0; 2 * k];
        for c in 0..k {
            let mut best = 0;
            for r in 1..rows {
                if v[r * k + c].abs() > v[best * k + c].abs() {
                    best = r;
                }
            }
            data[c] = if rows > 0 { v[best * k + c] } else { 0.0 };
            data[k + c] = (row0 + best) as f64;
        }
        vec![Block { data, rows: 2, cols: k }]
    }

    fn signs(inputs: &[Pinned]) -> Result<Vec<Block>> {
        let k = inputs.first().map_or(0, |p| p.shape().1);
        let mut best = vec![(0.0f64, f64::INFINITY); k];
        for block in inputs {
            for c in 0..k {
                let (value, row) = (block[c], block[k + c]);
                let (bv, br) = best[c];
                if value.abs() > bv.abs() || (value.abs() == bv.abs() && row < br) {
                    best[c] = (value, row);
                }
            }
        }
        let data = best.iter().map(|&(v, _)| if v < 0.0 { -1.0 } else { 1.0 }).collect();
        Ok(vec![Block { data, rows: 1, cols: k }])
    }

    fn probe_project(&self, col: usize, v: &Pinned) -> Result<Vec<Block>> {
        let e = self.sketch.a.grid().extent(ChunkIndex::new(0, col))?;
        let probes = self.sketch.options.probes;
        let mut omega = vec![0.0; e.cols * probes];
        self.sketch_rows(e.col0, self.sketch.l, probes, &mut omega);
        let omega = MatRef::from_row_major_slice(&omega, e.cols, probes);
        Ok(vec![to_block(product(pinned_view(v).transpose(), omega).as_ref())])
    }

    /// The Gram `Y^T Y` of this row block's residual on the probes, `Y = A ω - U diag(s) V^T ω`.
    fn residual(inputs: &[Pinned]) -> Result<Vec<Block>> {
        let [aw, u, s, vtw] = inputs else { return Err(Error::Bug("residual takes 4 inputs".into())) };
        let (rows, probes) = aw.shape();
        let k = s.shape().1;
        let us = Mat::<f64>::from_fn(rows, k, |i, j| u[i * k + j] * s[j]);
        let mut y = Mat::<f64>::from_fn(rows, probes, |i, c| aw[i * probes + c]);
        matmul(y.as_mut(), Accum::Add, us.as_ref(), pinned_view(vtw), -1.0, Par::Seq);
        Ok(vec![to_block(product(y.transpose(), y.as_ref()).as_ref())])
    }

    /// `[spectral bound, Frobenius estimate]` from the row blocks' Grams (see
    /// [`ErrorEstimate`](super::ErrorEstimate)).
    fn estimate(inputs: &[Pinned]) -> Result<Vec<Block>> {
        let probes = inputs.first().map_or(0, |p| p.shape().1);
        let gram = Mat::<f64>::from_fn(probes, probes, |i, j| inputs.iter().map(|p| p[i * probes + j]).sum());
        let frobenius = ((0..probes).map(|c| gram[(c, c)]).sum::<f64>() / probes.max(1) as f64).sqrt();
        let (largest, _) = thin_svd(gram.as_ref(), false)?;
        let largest = largest.first().copied().unwrap_or(0.0);
        let spectral = (largest / chi2_lower_quantile(probes, 10f64.powi(-(probes as i32)))).sqrt();
        Ok(vec![Block { data: vec![spectral, frobenius], rows: 1, cols: 2 }])
    }

    fn write(&self, side: Side, block: usize, inputs: &[Pinned]) -> Result<Vec<Block>> {
        let [values, signs] = inputs else { return Err(Error::Bug("write takes 2 inputs".into())) };
        let k = signs.shape().1;
        let data: Vec<f64> = values.iter().enumerate().map(|(i, x)| x * signs[i % k]).collect();
        let store = match side {
            Side::U => &self.u,
            Side::V => &self.v,
        };
        store.write_chunk(ChunkIndex::new(block, 0), &data)?;
        Ok(Vec::new())
    }
}

/// A chunk column's mean as a `1 x c` row, from its `[count; mean; M2]` block.
fn mean_row(moments: &Pinned) -> MatRef<'_, f64> {
    let c = moments.shape().1;
    view(&moments[c..2 * c], 1, c)
}

impl Executor for RsvdExecutor<'_> {
    type Op = RsvdOp;

    /// The input, the options (the seed among them) and whether the input is cached.
    fn identity(&self) -> String {
        format!("{} {:?} cache {}", self.sketch.a.describe(), self.sketch.options, self.sketch.cache_input)
    }

    fn execute(
        &self,
        op: &RsvdOp,
        inputs: &[Pinned],
        budget: &mut Reservation,
        scratch: &mut WorkerScratch,
    ) -> Result<Vec<Block>> {
        match (op, inputs) {
            (RsvdOp::Sketch { chunk, width }, []) => self.sketch(*chunk, *width, budget, scratch),
            (RsvdOp::Times { chunk, .. }, [x]) => {
                let [buf] = scratch.buffers([self.reader.buffer_len()], budget)?;
                self.chunk_product(*chunk, false, x, x.shape().1, budget, buf, None)
            }
            (RsvdOp::TimesT { chunk, .. }, [y]) => {
                let [buf] = scratch.buffers([self.reader.buffer_len()], budget)?;
                self.chunk_product(*chunk, true, y, y.shape().1, budget, buf, None)
            }
            (RsvdOp::Sum, [first, rest @ ..]) => {
                let mut data = first.to_vec();
                for p in rest {
                    data.iter_mut().zip(p.iter()).for_each(|(d, x)| *d += x);
                }
                let (rows, cols) = first.shape();
                Ok(vec![Block { data, rows, cols }])
            }
            (RsvdOp::Columns { from, to }, [block]) => Ok(vec![to_block(pinned_view(block).subcols(*from, to - from))]),
            (RsvdOp::Concat, _) => {
                let rows = inputs.first().map_or(0, |p| p.shape().0);
                let cols: usize = inputs.iter().map(|p| p.shape().1).sum();
                let mut out = Mat::<f64>::zeros(rows, cols);
                let mut c0 = 0;
                for p in inputs {
                    let v = pinned_view(p);
                    out.as_mut().submatrix_mut(0, c0, rows, v.ncols()).copy_from(v);
                    c0 += v.ncols();
                }
                Ok(vec![to_block(out.as_ref())])
            }
            (RsvdOp::Qr(op), _) => op.execute(inputs),
            (RsvdOp::SmallSvd { k }, [r]) => self.small_svd(*k, r),
            (RsvdOp::Multiply, [block, small]) => {
                Ok(vec![to_block(product(pinned_view(block), pinned_view(small)).as_ref())])
            }
            (RsvdOp::Extremes { row0 }, [v]) => Ok(Self::extremes(*row0, v)),
            (RsvdOp::Signs, _) => Self::signs(inputs),
            (RsvdOp::ProbeProject { col }, [v]) => self.probe_project(*col, v),
            (RsvdOp::Residual, _) => Self::residual(inputs),
            (RsvdOp::Estimate, _) => Self::estimate(inputs),
            (RsvdOp::Moments, _) => Ok(vec![Moments::merge(inputs)?.block()]),
            (RsvdOp::MeanSketch { col, width }, [moments]) => self.mean_sketch(*col, *width, moments),
            (RsvdOp::MeanTimes, [moments, x]) => {
                Ok(vec![to_block(product(mean_row(moments), pinned_view(x)).as_ref())])
            }
            (RsvdOp::ColumnSums, [y]) => {
                let (rows, cols) = y.shape();
                let data = (0..cols).map(|c| (0..rows).map(|i| y[i * cols + c]).sum()).collect();
                Ok(vec![Block { data, rows: 1, cols }])
            }
            (RsvdOp::SubtractRow, [y, row]) => {
                let (rows, cols) = y.shape();
                let data = (0..rows * cols).map(|i| y[i] - row[i % cols]).collect();
                Ok(vec![Block { data, rows, cols }])
            }
            (RsvdOp::SubtractOuter, [z, moments, sums]) => {
                let (rows, cols) = z.shape();
                let mean = mean_row(moments);
                let data = (0..rows * cols).map(|i| z[i] - mean[(0, i / cols)] * sums[i % cols]).collect();
                Ok(vec![Block { data, rows, cols }])
            }
            (RsvdOp::Write { side, block }, _) => self.write(*side, *block, inputs),
            _ => Err(Error::Bug(format!("{op:?} given {} inputs", inputs.len()))),
        }
    }
}

/// The `p`-quantile of the chi-squared distribution with `dof` degrees of freedom: the `x` with
/// `P(chi2_dof <= x) = p`, for the small `p` of a failure probability (bisection on the
/// regularized lower incomplete gamma function, whose series converges fast there).
pub(super) fn chi2_lower_quantile(dof: usize, p: f64) -> f64 {
    let a = dof as f64 / 2.0;
    // ln Gamma(a + 1) for a whole or half number: a (a - 1) ... down to 1, or to 1/2 times
    // Gamma(1/2) = sqrt(pi).
    let mut ln_gamma = if dof % 2 == 1 { 0.5 * std::f64::consts::PI.ln() } else { 0.0 };
    let mut t = a;
    while t > 0.25 {
        ln_gamma += t.ln();
        t -= 1.0;
    }
    // ln P(a, z), P the regularized lower incomplete gamma function.
    let ln_cdf = |z: f64| {
        let (mut term, mut sum) = (1.0, 1.0);
        for n in 1..10_000 {
            term *= z / (a + n as f64);
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
        }
        a * z.ln() - z - ln_gamma + sum.ln()
    };
    let target = p.ln();
    let (mut lo, mut hi) = (-700.0f64, (4.0 * a + 50.0).ln());
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if ln_cdf(mid.exp()) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    2.0 * (0.5 * (lo + hi)).exp()
}

#[cfg(test)]
mod tests {
    use super::chi2_lower_quantile;

    #[test]
    fn chi2_quantiles_match_closed_forms_and_tables() {
        let close = |x: f64, y: f64| ((x - y) / y).abs() < 1e-6;
        // Two degrees of freedom: P(chi2 <= x) = 1 - exp(-x / 2).
        for p in [1e-2, 1e-6, 1e-10] {
            let x = chi2_lower_quantile(2, p);
            assert!(close(x, -2.0 * (-p).ln_1p()), "{p}: {x}");
        }
        // Tables: chi2_10 at 0.01 is 2.558212, chi2_1 at 0.1 is 0.01579077, chi2_5 at 0.05 is 1.145476.
        assert!(close(chi2_lower_quantile(10, 0.01), 2.558_212), "{}", chi2_lower_quantile(10, 0.01));
        assert!(close(chi2_lower_quantile(1, 0.1), 0.015_790_77), "{}", chi2_lower_quantile(1, 0.1));
        assert!(close(chi2_lower_quantile(5, 0.05), 1.145_476), "{}", chi2_lower_quantile(5, 0.05));
    }
}
