//! The 2-D grid of chunks a matrix is cut into.

use std::fmt;

use crate::error::{StorageError, StorageResult};

/// Position of a chunk in the grid: `row` counts chunk rows, `col` chunk columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkIndex {
    /// Chunk row (0-based).
    pub row: usize,
    /// Chunk column (0-based).
    pub col: usize,
}

impl ChunkIndex {
    /// The chunk at chunk row `row`, chunk column `col`.
    pub const fn new(row: usize, col: usize) -> Self {
        Self { row, col }
    }
}

impl fmt::Display for ChunkIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.row, self.col)
    }
}

/// Where a chunk lies in the matrix and its actual (edge-trimmed) size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkExtent {
    /// First matrix row of the chunk.
    pub row0: usize,
    /// First matrix column of the chunk.
    pub col0: usize,
    /// Rows in this chunk (smaller than the chunk shape at the bottom edge).
    pub rows: usize,
    /// Columns in this chunk (smaller than the chunk shape at the right edge).
    pub cols: usize,
}

impl ChunkExtent {
    /// Number of values in the chunk.
    pub const fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// True when the chunk holds no values.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the chunk as f64 values.
    pub const fn bytes(&self) -> u64 {
        (self.len() * size_of::<f64>()) as u64
    }
}

/// A `rows x cols` matrix cut into chunks of `chunk_rows x chunk_cols` (row-major within a chunk).
///
/// Shapes need not divide: chunks on the bottom and right edges are smaller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkGrid {
    rows: usize,
    cols: usize,
    chunk_rows: usize,
    chunk_cols: usize,
}

impl ChunkGrid {
    /// A grid for a `rows x cols` matrix with chunks of `chunk_rows x chunk_cols`.
    ///
    /// Chunk dimensions must be positive. A chunk side longer than the matrix (Zarr allows
    /// one) is cut to the matrix, so chunk sizes never exceed the matrix's, which must be
    /// addressable. The matrix may be empty (stores can hold empty arrays); algorithms refuse
    /// empty matrices themselves.
    pub fn new(rows: usize, cols: usize, chunk_rows: usize, chunk_cols: usize) -> StorageResult<Self> {
        if chunk_rows == 0 || chunk_cols == 0 {
            return Err(StorageError::InvalidArgument {
                what: "chunk shape",
                reason: format!(
                    "chunk shape {chunk_rows} x {chunk_cols} has a zero side; chunks need at least one row and one column"
                ),
            });
        }
        rows.checked_mul(cols).and_then(|n| n.checked_mul(size_of::<f64>())).ok_or_else(|| {
            StorageError::InvalidArgument {
                what: "matrix shape",
                reason: format!("{rows} x {cols} is too large to address"),
            }
        })?;
        Ok(Self { rows, cols, chunk_rows: chunk_rows.min(rows.max(1)), chunk_cols: chunk_cols.min(cols.max(1)) })
    }

    /// Matrix shape `(rows, cols)`.
    pub const fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Matrix rows.
    pub const fn rows(&self) -> usize {
        self.rows
    }

    /// Matrix columns.
    pub const fn cols(&self) -> usize {
        self.cols
    }

    /// Nominal chunk shape `(chunk_rows, chunk_cols)` (edge chunks may be smaller).
    pub const fn chunk_shape(&self) -> (usize, usize) {
        (self.chunk_rows, self.chunk_cols)
    }

    /// Number of chunks along each dimension `(chunk rows, chunk columns)`.
    pub const fn grid_shape(&self) -> (usize, usize) {
        (self.rows.div_ceil(self.chunk_rows), self.cols.div_ceil(self.chunk_cols))
    }

    /// Total number of chunks.
    pub const fn num_chunks(&self) -> usize {
        let (r, c) = self.grid_shape();
        r * c
    }

    /// Bytes of the whole matrix as f64.
    pub const fn bytes(&self) -> u64 {
        (self.rows * self.cols * size_of::<f64>()) as u64
    }

    /// Bytes of the largest chunk (a full interior chunk, or the whole matrix if smaller).
    pub fn max_chunk_bytes(&self) -> u64 {
        (self.chunk_rows.min(self.rows) * self.chunk_cols.min(self.cols) * size_of::<f64>()) as u64
    }

    /// True when `index` names a chunk of this grid.
    pub const fn contains(&self, index: ChunkIndex) -> bool {
        let (r, c) = self.grid_shape();
        index.row < r && index.col < c
    }

    /// Position and trimmed size of chunk `index`.
    pub fn extent(&self, index: ChunkIndex) -> StorageResult<ChunkExtent> {
        if !self.contains(index) {
            let (r, c) = self.grid_shape();
            return Err(StorageError::InvalidArgument {
                what: "chunk index",
                reason: format!("chunk {index} is outside the {r} x {c} chunk grid"),
            });
        }
        let row0 = index.row * self.chunk_rows;
        let col0 = index.col * self.chunk_cols;
        Ok(ChunkExtent {
            row0,
            col0,
            rows: self.chunk_rows.min(self.rows - row0),
            cols: self.chunk_cols.min(self.cols - col0),
        })
    }

    /// Every chunk index, row by row.
    pub fn indices(&self) -> impl Iterator<Item = ChunkIndex> + use<> {
        let (r, c) = self.grid_shape();
        (0..r).flat_map(move |row| (0..c).map(move |col| ChunkIndex { row, col }))
    }

    /// The grid of the transposed matrix.
    pub const fn transposed(&self) -> Self {
        Self { rows: self.cols, cols: self.rows, chunk_rows: self.chunk_cols, chunk_cols: self.chunk_rows }
    }

    /// Checks that `len` values fit chunk `index`; returns its extent.
    pub fn check_chunk_len(&self, index: ChunkIndex, len: usize) -> StorageResult<ChunkExtent> {
        let extent = self.extent(index)?;
        if extent.len() != len {
            return Err(StorageError::InvalidArgument {
                what: "chunk data",
                reason: format!(
                    "chunk {index} is {} x {} = {} values, got {len}",
                    extent.rows,
                    extent.cols,
                    extent.len()
                ),
            });
        }
        Ok(extent)
    }
}

impl fmt::Display for ChunkGrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} x {} in chunks of {} x {}", self.rows, self.cols, self.chunk_rows, self.chunk_cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_chunks_are_trimmed() {
        let g = ChunkGrid::new(7, 5, 3, 2).unwrap();
        assert_eq!(g.grid_shape(), (3, 3));
        let e = g.extent(ChunkIndex::new(2, 2)).unwrap();
        assert_eq!((e.row0, e.col0, e.rows, e.cols), (6, 4, 1, 1));
        let e = g.extent(ChunkIndex::new(1, 0)).unwrap();
        assert_eq!((e.row0, e.col0, e.rows, e.cols), (3, 0, 3, 2));
        assert_eq!(g.indices().map(|i| g.extent(i).unwrap().len()).sum::<usize>(), 35);
    }

    #[test]
    fn chunks_longer_than_the_matrix_are_cut_to_it_and_sizes_never_wrap() {
        let g = ChunkGrid::new(1000, 10, 1 << 40, 1 << 40).unwrap();
        assert_eq!((g.chunk_shape(), g.grid_shape()), ((1000, 10), (1, 1)));
        assert_eq!(g.extent(ChunkIndex::new(0, 0)).unwrap().bytes(), 80_000);
        assert!(ChunkGrid::new(1 << 40, 1 << 40, 10, 10).is_err(), "2^80 values cannot be addressed");
    }

    #[test]
    fn refuses_zero_chunks_and_out_of_range() {
        assert!(ChunkGrid::new(4, 4, 0, 2).unwrap_err().to_string().contains("zero side"));
        let g = ChunkGrid::new(4, 4, 2, 2).unwrap();
        assert!(g.extent(ChunkIndex::new(2, 0)).is_err());
        assert!(g.check_chunk_len(ChunkIndex::new(0, 0), 3).unwrap_err().to_string().contains("got 3"));
    }

    #[test]
    fn transposes() {
        let g = ChunkGrid::new(7, 5, 3, 2).unwrap().transposed();
        assert_eq!(g.shape(), (5, 7));
        assert_eq!(g.chunk_shape(), (2, 3));
    }
}
