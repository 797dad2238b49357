//! Column moments for centering: count, mean and sum of squared deviations per column, merged
//! exactly across chunks, row blocks and column blocks.

use faer::MatRef;
use outcore_storage::{CsrRows, Pinned};

use crate::error::{Error, Result};
use crate::task::Block;

/// Column moments of rows seen so far: count, mean and sum of squared deviations (M2) per
/// column, merged by Chan, Golub and LeVeque's update, which stays exact for columns far from
/// zero (sums of squares would cancel).
pub(super) struct Moments {
    count: f64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Moments {
    pub(super) fn new(cols: usize) -> Self {
        Self { count: 0.0, mean: vec![0.0; cols], m2: vec![0.0; cols] }
    }

    /// Adds `other`'s rows to these.
    fn absorb(&mut self, count: f64, mean: &[f64], m2: &[f64], col0: usize) {
        if count == 0.0 {
            return;
        }
        let total = self.count + count;
        for (j, (mb, qb)) in mean.iter().zip(m2).enumerate() {
            let (ma, qa) = (self.mean[col0 + j], self.m2[col0 + j]);
            let delta = mb - ma;
            self.mean[col0 + j] = ma + delta * count / total;
            self.m2[col0 + j] = qa + qb + delta * delta * self.count * count / total;
        }
        if col0 + mean.len() == self.mean.len() {
            self.count = total;
        }
    }

    /// Adds a block of rows covering columns `c0..` of the chunk (blocks span whole rows or
    /// come in column order, so the count moves when the last column is reached).
    pub(super) fn add_block(&mut self, c0: usize, block: MatRef<'_, f64>) {
        let (rows, cols) = block.shape();
        let n = rows as f64;
        let mean: Vec<f64> = (0..cols).map(|j| block.col(j).iter().sum::<f64>() / n).collect();
        let m2: Vec<f64> = (0..cols).map(|j| block.col(j).iter().map(|x| (x - mean[j]).powi(2)).sum()).collect();
        if rows > 0 {
            self.absorb(n, &mean, &m2, c0);
        }
    }

    /// Adds the rows of a sparse chunk (of its transpose when `transposed`), spanning every
    /// column of the chunk.
    pub(super) fn add_sparse(&mut self, rows: &CsrRows<'_>, transposed: bool) {
        let (count, mean, m2) = crate::matrix::sparse::moments(rows, transposed);
        if count > 0 {
            self.absorb(count as f64, &mean, &m2, 0);
        }
    }

    /// Merges `[count; mean; M2]` blocks in order.
    pub(super) fn merge(inputs: &[Pinned]) -> Result<Self> {
        let cols = inputs.first().map_or(0, |p| p.shape().1);
        let mut merged = Self::new(cols);
        for p in inputs {
            if p.shape() != (3, cols) {
                return Err(Error::Bug(format!("moments of shape {:?}, (3, {cols}) expected", p.shape())));
            }
            merged.absorb(p[0], &p[cols..2 * cols], &p[2 * cols..], 0);
        }
        Ok(merged)
    }

    pub(super) fn block(&self) -> Block {
        let cols = self.mean.len();
        Block { data: [vec![self.count; cols], self.mean.clone(), self.m2.clone()].concat(), rows: 3, cols }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    /// Column means and M2 of `a`, two-pass.
    fn direct(a: MatRef<'_, f64>) -> (Vec<f64>, Vec<f64>) {
        let m = a.nrows() as f64;
        let mean: Vec<f64> = (0..a.ncols()).map(|j| a.col(j).iter().sum::<f64>() / m).collect();
        let m2 = (0..a.ncols()).map(|j| a.col(j).iter().map(|x| (x - mean[j]).powi(2)).sum()).collect();
        (mean, m2)
    }

    fn assert_close(got: &Moments, a: MatRef<'_, f64>) {
        let (mean, m2) = direct(a);
        assert_eq!(got.count, a.nrows() as f64);
        for j in 0..a.ncols() {
            assert!((got.mean[j] - mean[j]).abs() <= 1e-12 * mean[j].abs().max(1.0), "mean {j}");
            assert!((got.m2[j] - m2[j]).abs() <= 1e-9 * m2[j].max(1.0), "M2 {j}: {} vs {}", got.m2[j], m2[j]);
        }
    }

    #[test]
    fn moments_merge_row_blocks_column_blocks_and_chunks() {
        // Columns far from zero, as centering must handle.
        let a = Mat::<f64>::from_fn(23, 7, |i, j| 1e4 * j as f64 + ((i * 13 + j * 5) % 17) as f64 * 0.37);
        // Row blocks spanning every column (a streamed chunk).
        let mut rows = Moments::new(7);
        for (r0, h) in [(0, 5), (5, 1), (6, 17)] {
            rows.add_block(0, a.as_ref().subrows(r0, h));
        }
        assert_close(&rows, a.as_ref());
        // Column blocks spanning every row (a streamed chunk of a transposed view).
        let mut cols = Moments::new(7);
        for (c0, w) in [(0, 3), (3, 1), (4, 3)] {
            cols.add_block(c0, a.as_ref().subcols(c0, w));
        }
        assert_close(&cols, a.as_ref());
        // Chunks merged in order.
        let mut top = Moments::new(7);
        top.add_block(0, a.as_ref().subrows(0, 10));
        let mut bottom = Moments::new(7);
        bottom.add_block(0, a.as_ref().subrows(10, 13));
        let blocks = [top.block(), bottom.block()];
        let mut merged = Moments::new(7);
        for b in &blocks {
            merged.absorb(b.data[0], &b.data[7..14], &b.data[14..], 0);
        }
        assert_close(&merged, a.as_ref());
    }
}
