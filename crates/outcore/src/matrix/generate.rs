//! Seeded random matrices, generated chunk by chunk and never stored.
//!
//! Entry (i, j) depends only on the seed, the distribution, i and j: not on the chunking, the
//! order chunks are generated in, the thread count or the scheduler. Row i is cut into tiles of
//! [`TILE`] columns and each tile draws from its own `Xoshiro256PlusPlus` stream, seeded from
//! (seed, i, tile) through SplitMix64 mixing. A chunk therefore starts generating at any tile
//! boundary without generating what comes before it, and a matrix of any shape is the top-left
//! corner of every larger matrix with the same seed.

use faer::MatMut;
use outcore_storage::{ChunkExtent, ChunkGrid, ChunkIndex, ChunkRows, ChunkStore, StorageResult};

use super::lanes::fill_window;
use super::random::Distribution;
use super::window::WindowSource;

/// A read-only [`ChunkStore`] whose chunks are generated on demand.
#[derive(Clone, Debug)]
pub(crate) struct GeneratedStore {
    grid: ChunkGrid,
    distribution: Distribution,
    seed: u64,
}

impl GeneratedStore {
    /// A `grid`-shaped matrix of `distribution` entries from `seed`.
    pub(crate) fn new(grid: ChunkGrid, distribution: Distribution, seed: u64) -> Self {
        Self { grid, distribution, seed }
    }
}

impl WindowSource for GeneratedStore {
    fn fill(&self, row0: usize, col0: usize, dst: MatMut<'_, f64>) -> crate::Result<()> {
        fill_window(self.distribution, self.seed, row0, col0, dst);
        Ok(())
    }

    fn always_finite(&self) -> bool {
        true
    }

    fn worth_caching(&self) -> bool {
        true
    }
}

impl ChunkStore for GeneratedStore {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let e = self.grid.extent(index)?;
        out.resize(e.len(), 0.0);
        let dst = MatMut::from_row_major_slice_mut(out, e.rows, e.cols);
        fill_window(self.distribution, self.seed, e.row0, e.col0, dst);
        Ok(())
    }

    fn streams_rows(&self) -> bool {
        true
    }

    fn chunk_rows(&self, index: ChunkIndex) -> StorageResult<Option<Box<dyn ChunkRows + '_>>> {
        Ok(Some(Box::new(GeneratedRows { store: self, extent: self.grid.extent(index)?, next: 0 })))
    }

    fn describe(&self) -> String {
        let d = match self.distribution {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
        };
        format!("generated {d} matrix (seed {}, {})", self.seed, self.grid)
    }
}

/// Row blocks of a generated chunk, generated as they are asked for.
struct GeneratedRows<'a> {
    store: &'a GeneratedStore,
    extent: ChunkExtent,
    next: usize,
}

impl ChunkRows for GeneratedRows<'_> {
    fn next_rows(&mut self, rows: usize, out: &mut Vec<f64>) -> StorageResult<()> {
        let e = self.extent;
        out.resize(rows * e.cols, 0.0);
        let dst = MatMut::from_row_major_slice_mut(out, rows, e.cols);
        fill_window(self.store.distribution, self.store.seed, e.row0 + self.next, e.col0, dst);
        self.next += rows;
        Ok(())
    }

    fn finish(self: Box<Self>) -> StorageResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outcore_storage::{StorageError, read_matrix};

    #[test]
    fn entries_do_not_depend_on_chunking_or_shape() {
        for distribution in [Distribution::Uniform, Distribution::Normal] {
            let whole =
                read_matrix(&GeneratedStore::new(ChunkGrid::new(37, 150, 37, 150).unwrap(), distribution, 7)).unwrap();
            let chunked =
                read_matrix(&GeneratedStore::new(ChunkGrid::new(37, 150, 5, 23).unwrap(), distribution, 7)).unwrap();
            assert_eq!(whole, chunked);
            let corner =
                read_matrix(&GeneratedStore::new(ChunkGrid::new(10, 70, 3, 9).unwrap(), distribution, 7)).unwrap();
            for i in 0..10 {
                assert_eq!(&corner[i * 70..(i + 1) * 70], &whole[i * 150..i * 150 + 70]);
            }
            let other =
                read_matrix(&GeneratedStore::new(ChunkGrid::new(37, 150, 37, 150).unwrap(), distribution, 8)).unwrap();
            assert_ne!(whole, other);
        }
    }

    #[test]
    fn is_read_only() {
        let store = GeneratedStore::new(ChunkGrid::new(2, 2, 1, 1).unwrap(), Distribution::Uniform, 0);
        assert!(matches!(store.write_chunk(ChunkIndex::new(0, 0), &[0.0]), Err(StorageError::ReadOnly { .. })));
    }
}
