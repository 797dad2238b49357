//! Products of a sparse matrix's rows (CSR, from a [`CsrStore`](crate::storage::CsrStore))
//! with dense blocks, and their column moments: work in proportion to the nonzeros, the dense
//! operands row-major so each nonzero scales one contiguous row.

use std::ops::Range;

use outcore_storage::{Csr, CsrParts, CsrRows, SparseIndex};

/// Where row `c` (a column index, as an offset in the chunk's window) of a row-major matrix
/// `w` wide lies. The store checked the indices when it was made; one changed since (the
/// caller's array, written during a run against the contract) may fall outside the matrix,
/// and the caller's `get` then gives `None`, never a panic.
#[inline(always)]
fn row_range<I: SparseIndex>(c: I, columns: &Range<usize>, w: usize) -> Option<Range<usize>> {
    let start = c.index()?.checked_sub(columns.start)?.checked_mul(w)?;
    Some(start..start.checked_add(w)?)
}

/// A kernel over one chunk's nonzeros, run by [`dispatch`].
trait Kernel {
    fn run<I: SparseIndex>(self, a: &Csr<'_, I>, columns: &Range<usize>);
}

/// Runs `kernel` on `a`'s index type, compiled for AVX2 where the CPU has it: the same
/// multiplications and additions in wider registers (no fused multiply-add), so the same bits.
fn dispatch(a: &CsrRows<'_>, kernel: impl Kernel) {
    #[inline(always)]
    fn run(a: &CsrRows<'_>, kernel: impl Kernel) {
        match &a.parts {
            CsrParts::I32(p) => kernel.run(p, &a.columns),
            CsrParts::I64(p) => kernel.run(p, &a.columns),
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn avx2(a: &CsrRows<'_>, kernel: impl Kernel) {
            run(a, kernel);
        }
        // SAFETY: the CPU has AVX2, the one feature `avx2` is compiled for.
        return unsafe { avx2(a, kernel) };
    }
    run(a, kernel);
}

/// `out += v * src`, element by element.
#[inline(always)]
fn axpy(out: &mut [f64], v: f64, src: &[f64]) {
    out.iter_mut().zip(src).for_each(|(d, s)| *d += v * s);
}

/// `out += A rhs`: `A` the chunk (`rows x cols`), `rhs` `cols x w` and `out` `rows x w`,
/// row-major.
pub(crate) fn times(a: &CsrRows<'_>, rhs: &[f64], w: usize, out: &mut [f64]) {
    struct Times<'r> {
        rhs: &'r [f64],
        w: usize,
        out: &'r mut [f64],
    }
    impl Kernel for Times<'_> {
        #[inline(always)]
        fn run<I: SparseIndex>(self, a: &Csr<'_, I>, columns: &Range<usize>) {
            let w = self.w;
            for (r, dst) in self.out.chunks_exact_mut(w).enumerate().take(a.rows()) {
                let (indices, values) = a.row_in(r, columns);
                for (&c, &v) in indices.iter().zip(values) {
                    if let Some(src) = row_range(c, columns, w).and_then(|r| self.rhs.get(r)) {
                        axpy(dst, v, src);
                    }
                }
            }
        }
    }
    if w > 0 {
        dispatch(a, Times { rhs, w, out });
    }
}

/// `out += A^T rhs`: `A` the chunk (`rows x cols`), `rhs` `rows x w` and `out` `cols x w`,
/// row-major.
pub(crate) fn times_t(a: &CsrRows<'_>, rhs: &[f64], w: usize, out: &mut [f64]) {
    struct TimesT<'r> {
        rhs: &'r [f64],
        w: usize,
        out: &'r mut [f64],
    }
    impl Kernel for TimesT<'_> {
        #[inline(always)]
        fn run<I: SparseIndex>(self, a: &Csr<'_, I>, columns: &Range<usize>) {
            let w = self.w;
            for (r, src) in self.rhs.chunks_exact(w).enumerate().take(a.rows()) {
                let (indices, values) = a.row_in(r, columns);
                for (&c, &v) in indices.iter().zip(values) {
                    if let Some(dst) = row_range(c, columns, w).and_then(|r| self.out.get_mut(r)) {
                        axpy(dst, v, src);
                    }
                }
            }
        }
    }
    if w > 0 {
        dispatch(a, TimesT { rhs, w, out });
    }
}

/// Column moments of the chunk (`transposed`: of its transpose): the rows each column has, and
/// per column its mean and sum of squared deviations, zeros included, in two passes over the
/// nonzeros (`M2 = sum (x - mean)^2 over the nonzeros + zeros * mean^2`).
pub(crate) fn moments(a: &CsrRows<'_>, transposed: bool) -> (usize, Vec<f64>, Vec<f64>) {
    fn go<I: SparseIndex>(a: &Csr<'_, I>, columns: &Range<usize>, transposed: bool) -> (usize, Vec<f64>, Vec<f64>) {
        let (count, width) = if transposed { (columns.len(), a.rows()) } else { (a.rows(), columns.len()) };
        let mut sum = vec![0.0; width];
        let mut nonzeros = vec![0usize; width];
        let slot = |r: usize, c: I| {
            let j = if transposed { Some(r) } else { c.index().and_then(|c| c.checked_sub(columns.start)) };
            j.filter(|&j| j < width)
        };
        for r in 0..a.rows() {
            let (indices, values) = a.row_in(r, columns);
            for (&c, &v) in indices.iter().zip(values) {
                if let Some(j) = slot(r, c) {
                    sum[j] += v;
                    nonzeros[j] += 1;
                }
            }
        }
        let n = count.max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let mut m2: Vec<f64> =
            mean.iter().zip(&nonzeros).map(|(m, &z)| count.saturating_sub(z) as f64 * m * m).collect();
        for r in 0..a.rows() {
            let (indices, values) = a.row_in(r, columns);
            for (&c, &v) in indices.iter().zip(values) {
                if let Some(j) = slot(r, c) {
                    m2[j] += (v - mean[j]) * (v - mean[j]);
                }
            }
        }
        (count, mean, m2)
    }
    match &a.parts {
        CsrParts::I32(p) => go(p, &a.columns, transposed),
        CsrParts::I64(p) => go(p, &a.columns, transposed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outcore_storage::{ChunkIndex, ChunkStore, CsrStore, read_matrix};

    /// A 5 x 4 matrix with an empty row and a column of zeros, and its dense copy.
    fn example() -> (CsrStore, Vec<f64>) {
        let store = CsrStore::from_vecs(
            5,
            4,
            (5, 4),
            vec![0, 2, 2, 4, 5, 6],
            vec![0, 3, 1, 3, 0, 3],
            vec![1.0, -2.0, 3.5, 4.0, 1e3, 0.25],
        )
        .unwrap();
        let dense = read_matrix(&store).unwrap();
        (store, dense)
    }

    #[test]
    fn products_and_moments_match_the_dense_matrix() {
        let (store, a) = example();
        let rows = store.chunk(ChunkIndex::new(0, 0)).unwrap();
        let (m, n, w) = (5, 4, 3);
        let x: Vec<f64> = (0..n * w).map(|i| (i as f64 * 0.7).sin()).collect();
        let y: Vec<f64> = (0..m * w).map(|i| (i as f64 * 0.3).cos()).collect();
        let mut ax = vec![1.0; m * w];
        times(&rows, &x, w, &mut ax);
        let mut aty = vec![0.0; n * w];
        times_t(&rows, &y, w, &mut aty);
        for i in 0..m {
            for c in 0..w {
                let want = 1.0 + (0..n).map(|j| a[i * n + j] * x[j * w + c]).sum::<f64>();
                assert!((ax[i * w + c] - want).abs() < 1e-12, "A x ({i}, {c})");
            }
        }
        for j in 0..n {
            for c in 0..w {
                let want: f64 = (0..m).map(|i| a[i * n + j] * y[i * w + c]).sum();
                assert!((aty[j * w + c] - want).abs() < 1e-12, "A^T y ({j}, {c})");
            }
        }
        // Column moments, and row moments (those of the transpose).
        for transposed in [false, true] {
            let (count, mean, m2) = moments(&rows, transposed);
            let (lines, len) = if transposed { (m, n) } else { (n, m) };
            assert_eq!((count, mean.len()), (len, lines));
            for l in 0..lines {
                let values: Vec<f64> = (0..len).map(|k| if transposed { a[l * n + k] } else { a[k * n + l] }).collect();
                let mu = values.iter().sum::<f64>() / len as f64;
                let dev: f64 = values.iter().map(|v| (v - mu) * (v - mu)).sum();
                assert!((mean[l] - mu).abs() < 1e-12 && (m2[l] - dev).abs() < 1e-9 * dev.max(1.0), "{transposed} {l}");
            }
        }
        assert_eq!(store.describe(), "a 5 x 4 sparse matrix with 6 nonzeros");
        // Chunk (0, 1) of 5 x 2 chunks: rows 0..5, columns 2..4.
        let windowed =
            CsrStore::from_vecs(5, 4, (5, 2), vec![0, 2, 2, 4, 5, 6], vec![0, 3, 1, 3, 0, 3], vec![1.0; 6]).unwrap();
        let right = windowed.chunk(ChunkIndex::new(0, 1)).unwrap();
        let mut out = vec![0.0; 5];
        times(&right, &[1.0, 10.0], 1, &mut out);
        assert_eq!(out, [10.0, 0.0, 10.0, 0.0, 10.0]);
    }
}
