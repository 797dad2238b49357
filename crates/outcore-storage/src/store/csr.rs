//! A sparse matrix in compressed sparse row form (CSR), held in RAM (the caller's arrays, lent
//! without a copy, or vectors of its own), cut into chunks of rows and columns.
//!
//! Algorithms that multiply read its nonzeros where they lie ([`CsrStore::chunk`]); the rest
//! read it as any store, one dense row block at a time ([`ChunkStore::chunk_rows`]), so a dense
//! copy of more than a block never exists.

use std::fmt;
use std::ops::Range;

use crate::error::{StorageError, StorageResult};
use crate::grid::{ChunkGrid, ChunkIndex};
use crate::store::{ChunkRows, ChunkStore};

/// An integer type sparse indices are stored in: numpy's int32 and int64, as scipy keeps them.
pub trait SparseIndex: Copy + Send + Sync + fmt::Debug + 'static {
    /// The value as an index, `None` when negative.
    fn index(self) -> Option<usize>;
}

impl SparseIndex for i32 {
    fn index(self) -> Option<usize> {
        usize::try_from(self).ok()
    }
}

impl SparseIndex for i64 {
    fn index(self) -> Option<usize> {
        usize::try_from(self).ok()
    }
}

/// The three arrays of a CSR matrix with indices of type `I`: row `r`'s nonzeros are
/// `data[indptr[r]..indptr[r + 1]]`, in the columns `indices[indptr[r]..indptr[r + 1]]`.
#[derive(Clone, Copy, Debug)]
pub struct Csr<'a, I> {
    /// Offsets of each row's first nonzero, one more than there are rows.
    pub indptr: &'a [I],
    /// The column of each nonzero.
    pub indices: &'a [I],
    /// The value of each nonzero.
    pub data: &'a [f64],
}

impl<I: SparseIndex> Csr<'_, I> {
    /// Row `r`'s columns and values (valid once the arrays were checked).
    #[inline]
    /// Arrays changed after the check (the caller's, written during a run against the
    /// contract) give wrong rows, never a panic: an offset out of range reads as an empty row.
    pub fn row(&self, r: usize) -> (&[I], &[f64]) {
        let offset = |i: usize| self.indptr.get(i).and_then(|p| p.index()).unwrap_or(0);
        let range = offset(r)..offset(r + 1);
        match (self.indices.get(range.clone()), self.data.get(range)) {
            (Some(c), Some(v)) => (c, v),
            _ => (&[], &[]),
        }
    }

    /// Row `r`'s columns and values within `columns` (the indices are sorted: two binary
    /// searches, none when the row lies in them).
    #[inline]
    pub fn row_in(&self, r: usize, columns: &Range<usize>) -> (&[I], &[f64]) {
        let (c, v) = self.row(r);
        if columns.start == 0 && c.last().is_none_or(|last| last.index().unwrap_or(0) < columns.end) {
            return (c, v);
        }
        let lo = c.partition_point(|x| x.index().unwrap_or(0) < columns.start);
        let hi = lo + c[lo..].partition_point(|x| x.index().unwrap_or(0) < columns.end);
        (&c[lo..hi], &v[lo..hi])
    }

    /// Rows described by `indptr` (the rows are `indptr.len() - 1`).
    pub fn rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }
}

/// A chunk of a CSR matrix: some of its rows (`indptr` cut to them), within a window of its
/// columns: what [`CsrStore::chunk`] lends.
#[derive(Clone, Debug)]
pub struct CsrRows<'a> {
    /// The arrays, `indptr` cut to the chunk's rows.
    pub parts: CsrParts<'a>,
    /// The chunk's columns.
    pub columns: Range<usize>,
}

impl CsrRows<'_> {
    /// Rows.
    pub fn rows(&self) -> usize {
        match &self.parts {
            CsrParts::I32(a) => a.rows(),
            CsrParts::I64(a) => a.rows(),
        }
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.columns.len()
    }

    /// Rows `from..to` as consecutive dense row-major rows into `out` (resized).
    pub fn densify(&self, from: usize, to: usize, out: &mut Vec<f64>) {
        fn fill<I: SparseIndex>(a: &Csr<'_, I>, columns: &Range<usize>, from: usize, to: usize, out: &mut [f64]) {
            for (r, dst) in (from..to).zip(out.chunks_exact_mut(columns.len().max(1))) {
                let (indices, values) = a.row_in(r, columns);
                for (c, v) in indices.iter().zip(values) {
                    if let Some(d) = c.index().and_then(|c| dst.get_mut(c.wrapping_sub(columns.start))) {
                        *d = *v;
                    }
                }
            }
        }
        out.clear();
        out.resize((to - from) * self.cols(), 0.0);
        match &self.parts {
            CsrParts::I32(a) => fill(a, &self.columns, from, to, out),
            CsrParts::I64(a) => fill(a, &self.columns, from, to, out),
        }
    }
}

/// Where a [`CsrStore`]'s arrays live: vectors it owns, or the caller's memory (a scipy matrix's
/// numpy arrays, say). Indices and `indptr` share one type, as in scipy.
pub trait CsrArrays: Send + Sync + fmt::Debug {
    /// The arrays.
    fn csr(&self) -> CsrParts<'_>;
}

/// A [`CsrArrays`]' arrays, of either index type.
#[derive(Clone, Copy, Debug)]
pub enum CsrParts<'a> {
    /// int32 indices.
    I32(Csr<'a, i32>),
    /// int64 indices.
    I64(Csr<'a, i64>),
}

#[derive(Debug)]
struct Owned {
    indptr: Vec<i64>,
    indices: Vec<i64>,
    data: Vec<f64>,
}

impl CsrArrays for Owned {
    fn csr(&self) -> CsrParts<'_> {
        CsrParts::I64(Csr { indptr: &self.indptr, indices: &self.indices, data: &self.data })
    }
}

/// A sparse `rows x cols` matrix in CSR form, in chunks of `chunk_rows x chunk_cols`. Its arrays
/// are checked once when it is made: `indptr` starts at 0 and never decreases, each row's column
/// indices are in range and strictly increasing (sorted, no duplicates), and every value is
/// finite; a matrix that breaks any of these is refused, naming the row.
pub struct CsrStore {
    grid: ChunkGrid,
    nnz: usize,
    arrays: Box<dyn CsrArrays>,
}

impl fmt::Debug for CsrStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrStore").field("grid", &self.grid).field("nnz", &self.nnz).finish_non_exhaustive()
    }
}

impl CsrStore {
    /// The matrix held by `arrays`, checked, in chunks of `chunk_rows x chunk_cols` (each at
    /// least 1 and at most the matrix).
    pub fn new(
        rows: usize,
        cols: usize,
        (chunk_rows, chunk_cols): (usize, usize),
        arrays: Box<dyn CsrArrays>,
    ) -> StorageResult<Self> {
        let grid = ChunkGrid::new(rows, cols, chunk_rows.clamp(1, rows.max(1)), chunk_cols.clamp(1, cols.max(1)))?;
        let nnz = match arrays.csr() {
            CsrParts::I32(a) => check(&a, rows, cols)?,
            CsrParts::I64(a) => check(&a, rows, cols)?,
        };
        Ok(Self { grid, nnz, arrays })
    }

    /// The matrix of these vectors (scipy's `indptr`, `indices` and `data`), checked.
    pub fn from_vecs(
        rows: usize,
        cols: usize,
        chunks: (usize, usize),
        indptr: Vec<i64>,
        indices: Vec<i64>,
        data: Vec<f64>,
    ) -> StorageResult<Self> {
        Self::new(rows, cols, chunks, Box::new(Owned { indptr, indices, data }))
    }

    /// Nonzeros stored.
    pub fn nnz(&self) -> usize {
        self.nnz
    }

    /// Chunk `index`, where it lies.
    pub fn chunk(&self, index: ChunkIndex) -> StorageResult<CsrRows<'_>> {
        let e = self.grid.extent(index)?;
        let rows = e.row0..e.row0 + e.rows + 1;
        let changed = || StorageError::Bug(format!("{}: its arrays changed after they were checked", self.describe()));
        let parts = match self.arrays.csr() {
            CsrParts::I32(a) => CsrParts::I32(Csr { indptr: a.indptr.get(rows).ok_or_else(changed)?, ..a }),
            CsrParts::I64(a) => CsrParts::I64(Csr { indptr: a.indptr.get(rows).ok_or_else(changed)?, ..a }),
        };
        Ok(CsrRows { parts, columns: e.col0..e.col0 + e.cols })
    }
}

/// Checks the arrays of a `rows x cols` CSR matrix; returns its nonzeros.
fn check<I: SparseIndex>(a: &Csr<'_, I>, rows: usize, cols: usize) -> StorageResult<usize> {
    let bad = |reason: String| StorageError::InvalidArgument { what: "sparse matrix", reason };
    if a.indptr.len() != rows + 1 {
        return Err(bad(format!(
            "a {rows} x {cols} CSR matrix needs {} offsets in indptr, got {}",
            rows + 1,
            a.indptr.len()
        )));
    }
    if a.indptr[0].index() != Some(0) {
        return Err(bad(format!("indptr must start at 0, got {:?}", a.indptr[0])));
    }
    let nnz = a.indptr[rows].index().unwrap_or(usize::MAX);
    if nnz > a.indices.len() || nnz > a.data.len() {
        return Err(bad(format!(
            "indptr ends at {:?} but there are {} indices and {} values",
            a.indptr[rows],
            a.indices.len(),
            a.data.len()
        )));
    }
    for r in 0..rows {
        let (start, end) = (a.indptr[r].index(), a.indptr[r + 1].index());
        let (Some(start), Some(end)) = (start, end) else { return Err(bad(format!("row {r}: indptr is negative"))) };
        if end < start || end > nnz {
            return Err(bad(format!(
                "row {r}: indptr goes from {start} to {end}; it must never decrease nor pass the {nnz} nonzeros"
            )));
        }
        let mut previous = None;
        for (c, v) in a.indices[start..end].iter().zip(&a.data[start..end]) {
            let c = c
                .index()
                .filter(|&c| c < cols)
                .ok_or_else(|| bad(format!("row {r}: column index {c:?} is out of range for {cols} columns")))?;
            if previous.is_some_and(|p| p >= c) {
                return Err(bad(format!(
                    "row {r}: column indices are not sorted or repeat ({} then {c}); sort them first (scipy: X.sum_duplicates())",
                    previous.unwrap_or(0)
                )));
            }
            if !v.is_finite() {
                return Err(bad(format!("row {r}, column {c}: the value is {v}; outcore factors finite numbers only")));
            }
            previous = Some(c);
        }
    }
    Ok(nnz)
}

/// Dense row blocks of a chunk of a [`CsrStore`].
struct DenseRows<'a> {
    rows: CsrRows<'a>,
    next: usize,
}

impl ChunkRows for DenseRows<'_> {
    fn next_rows(&mut self, rows: usize, out: &mut Vec<f64>) -> StorageResult<()> {
        let end = self.next + rows;
        if end > self.rows.rows() {
            return Err(StorageError::Bug(format!("reading rows {}..{end} past the end of a chunk", self.next)));
        }
        self.rows.densify(self.next, end, out);
        self.next = end;
        Ok(())
    }

    fn finish(self: Box<Self>) -> StorageResult<()> {
        Ok(())
    }
}

impl ChunkStore for CsrStore {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let rows = self.chunk(index)?;
        rows.densify(0, rows.rows(), out);
        Ok(())
    }

    fn describe(&self) -> String {
        let (rows, cols) = self.grid.shape();
        format!("a {rows} x {cols} sparse matrix with {} nonzeros", self.nnz)
    }

    fn streams_rows(&self) -> bool {
        true
    }

    fn chunk_rows(&self, index: ChunkIndex) -> StorageResult<Option<Box<dyn ChunkRows + '_>>> {
        Ok(Some(Box::new(DenseRows { rows: self.chunk(index)?, next: 0 })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(indptr: Vec<i64>, indices: Vec<i64>, data: Vec<f64>) -> StorageResult<CsrStore> {
        let rows = indptr.len().saturating_sub(1);
        CsrStore::from_vecs(rows, 4, (2, 3), indptr, indices, data)
    }

    #[test]
    fn chunks_densify_and_stream_in_row_blocks() {
        // [[1, 0, 0, 2], [0, 0, 0, 0], [0, 3, 0, 0]]
        let s = store(vec![0, 2, 2, 3], vec![0, 3, 1], vec![1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.nnz(), 3);
        assert_eq!(crate::store::read_matrix(&s).unwrap(), [1., 0., 0., 2., 0., 0., 0., 0., 0., 3., 0., 0.]);
        // Chunk (0, 0): rows 0..2, columns 0..3.
        let mut rows = s.chunk_rows(ChunkIndex::new(0, 0)).unwrap().unwrap();
        let mut out = Vec::new();
        rows.next_rows(1, &mut out).unwrap();
        assert_eq!(out, [1., 0., 0.]);
        rows.next_rows(1, &mut out).unwrap();
        assert_eq!(out, [0.; 3]);
        assert!(rows.next_rows(1, &mut out).is_err(), "past the chunk's two rows");
    }

    #[test]
    fn bad_arrays_are_refused_naming_the_row() {
        let err = |s: StorageResult<CsrStore>| s.unwrap_err().to_string();
        assert!(err(store(vec![0, 1], vec![4], vec![1.0])).contains("row 0: column index 4 is out of range"));
        assert!(err(store(vec![0, 2], vec![2, 1], vec![1.0, 1.0])).contains("row 0: column indices are not sorted"));
        assert!(err(store(vec![0, 2, 1, 2], vec![0, 1], vec![1.0, 1.0])).contains("row 1: indptr goes from 2 to 1"));
        assert!(err(store(vec![1, 1], vec![0], vec![1.0])).contains("indptr must start at 0"));
        assert!(err(store(vec![0, 1], vec![0], vec![f64::NAN])).contains("row 0, column 0: the value is NaN"));
        assert!(err(store(vec![0, 3], vec![0, 1], vec![1.0, 1.0])).contains("indptr ends at 3"));
        assert!(err(store(vec![0, 1], vec![-1], vec![1.0])).contains("column index -1"));
        let wrong_len = CsrStore::from_vecs(3, 4, (2, 2), vec![0, 0], vec![], vec![]);
        assert!(err(wrong_len).contains("needs 4 offsets"));
    }
}
