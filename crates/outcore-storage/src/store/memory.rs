//! A store that keeps chunks in RAM.

use std::sync::{Arc, RwLock};

use crate::error::{StorageError, StorageResult};
use crate::grid::{ChunkGrid, ChunkIndex};
use crate::store::{ChunkRows, ChunkStore};

/// Row blocks of a chunk already in RAM (row-major, `cols` wide).
pub(crate) struct SliceRows<'a> {
    pub(crate) values: std::borrow::Cow<'a, [f64]>,
    pub(crate) cols: usize,
    pub(crate) next: usize,
}

impl ChunkRows for SliceRows<'_> {
    fn next_rows(&mut self, rows: usize, out: &mut Vec<f64>) -> StorageResult<()> {
        let end = (self.next + rows) * self.cols;
        let block = self.values.get(self.next * self.cols..end).ok_or_else(|| {
            StorageError::Bug(format!("reading rows {}..{} past the end of a chunk", self.next, self.next + rows))
        })?;
        out.clear();
        out.extend_from_slice(block);
        self.next += rows;
        Ok(())
    }

    fn finish(self: Box<Self>) -> StorageResult<()> {
        Ok(())
    }
}

/// Chunks in RAM; unwritten chunks read as zeros (Zarr's default fill value).
#[derive(Debug)]
pub struct MemoryStore {
    grid: ChunkGrid,
    chunks: RwLock<Vec<Option<Arc<Vec<f64>>>>>,
}

impl MemoryStore {
    /// An empty (all-zero) store with the given grid.
    pub fn new(grid: ChunkGrid) -> Self {
        Self { grid, chunks: RwLock::new(vec![None; grid.num_chunks()]) }
    }

    /// A store holding the row-major matrix `data` cut by `grid`.
    pub fn from_row_major(grid: ChunkGrid, data: &[f64]) -> StorageResult<Self> {
        let store = Self::new(grid);
        super::write_matrix(&store, data)?;
        Ok(store)
    }

    fn slot(&self, index: ChunkIndex) -> StorageResult<usize> {
        self.grid.extent(index)?;
        Ok(index.row * self.grid.grid_shape().1 + index.col)
    }
}

impl ChunkStore for MemoryStore {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let slot = self.slot(index)?;
        let chunks = self.chunks.read().map_err(|_| StorageError::Bug("memory store lock poisoned".into()))?;
        out.clear();
        match &chunks[slot] {
            Some(data) => out.extend_from_slice(data),
            None => out.resize(self.grid.extent(index)?.len(), 0.0),
        }
        Ok(())
    }

    fn write_chunk(&self, index: ChunkIndex, data: &[f64]) -> StorageResult<()> {
        self.grid.check_chunk_len(index, data.len())?;
        let slot = self.slot(index)?;
        let mut chunks = self.chunks.write().map_err(|_| StorageError::Bug("memory store lock poisoned".into()))?;
        chunks[slot] = Some(Arc::new(data.to_vec()));
        Ok(())
    }

    fn describe(&self) -> String {
        format!("in-memory store ({})", self.grid)
    }

    fn streams_rows(&self) -> bool {
        true
    }

    fn chunk_rows(&self, index: ChunkIndex) -> StorageResult<Option<Box<dyn ChunkRows + '_>>> {
        let cols = self.grid.extent(index)?.cols;
        let values = std::borrow::Cow::Owned(self.read_chunk(index)?);
        Ok(Some(Box::new(SliceRows { values, cols, next: 0 })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::read_matrix;

    #[test]
    fn round_trips_with_edge_chunks() {
        let grid = ChunkGrid::new(7, 5, 3, 2).unwrap();
        let data: Vec<f64> = (0..35).map(|x| x as f64 * 0.5).collect();
        let store = MemoryStore::from_row_major(grid, &data).unwrap();
        assert_eq!(read_matrix(&store).unwrap(), data);
        assert_eq!(store.read_chunk(ChunkIndex::new(2, 2)).unwrap(), vec![17.0]);
    }

    #[test]
    fn unwritten_chunks_are_zero_and_bad_writes_are_refused() {
        let store = MemoryStore::new(ChunkGrid::new(4, 4, 2, 2).unwrap());
        assert_eq!(store.read_chunk(ChunkIndex::new(1, 1)).unwrap(), vec![0.0; 4]);
        assert!(store.write_chunk(ChunkIndex::new(0, 0), &[1.0]).is_err());
        assert!(store.read_chunk(ChunkIndex::new(2, 0)).is_err());
    }
}
