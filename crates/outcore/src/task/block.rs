//! A block of values: what a kernel returns, and what a run stores, moves between ranks and
//! keeps as a result.

/// A block of values a kernel returns: `rows x cols`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// The values, row-major.
    pub data: Vec<f64>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl Block {
    /// Bytes of `rows x cols` f64 values.
    pub const fn bytes(rows: usize, cols: usize) -> u64 {
        (rows * cols * size_of::<f64>()) as u64
    }
}
