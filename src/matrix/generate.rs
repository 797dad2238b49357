//! Seeded random matrices, generated chunk by chunk and never stored.
//!
//! Entry (i, j) depends only on the seed, the distribution, i and j: not on the chunking, the
//! order chunks are generated in, the thread count or the scheduler. Row i is cut into tiles of
//! [`TILE`] columns and each tile draws from its own `Xoshiro256PlusPlus` stream, seeded from
//! (seed, i, tile) through SplitMix64 mixing. A chunk therefore starts generating at any tile
//! boundary without generating what comes before it, and a matrix of any shape is the top-left
//! corner of every larger matrix with the same seed.

use rand_distr::{Distribution as _, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

use outcore_storage::{ChunkExtent, ChunkGrid, ChunkIndex, ChunkRows, ChunkStore, StorageError, StorageResult};

/// Columns per random stream within a row.
pub const TILE: usize = 64;

/// The distribution of generated entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Uniform on [0, 1), like `dask.array.random.random`.
    Uniform,
    /// Standard normal (mean 0, variance 1).
    Normal,
}

impl std::str::FromStr for Distribution {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "uniform" => Ok(Self::Uniform),
            "normal" => Ok(Self::Normal),
            _ => Err(crate::Error::invalid("distribution", format!("{s:?} is not one of uniform, normal"))),
        }
    }
}

/// SplitMix64's output function: a bijection on u64 with full avalanche.
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stream for tile `tile` of row `row`.
pub fn tile_rng(seed: u64, row: u64, tile: u64) -> Xoshiro256PlusPlus {
    let z = mix64(seed ^ mix64(row.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    Xoshiro256PlusPlus::seed_from_u64(mix64(z ^ mix64(tile.wrapping_add(0xd1b5_4a32_d192_ed03))))
}

/// A uniform [0, 1) double from the top 53 bits.
#[inline]
fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Fills `out` with entries `(row, col0..col0 + out.len())`.
pub fn fill_row(distribution: Distribution, seed: u64, row: usize, col0: usize, out: &mut [f64]) {
    let mut col = col0;
    let mut filled = 0;
    while filled < out.len() {
        let tile = col / TILE;
        let skip = col % TILE;
        let take = (TILE - skip).min(out.len() - filled);
        let mut rng = tile_rng(seed, row as u64, tile as u64);
        let dst = &mut out[filled..filled + take];
        match distribution {
            Distribution::Uniform => {
                for _ in 0..skip {
                    rng.next_u64();
                }
                dst.iter_mut().for_each(|v| *v = uniform(&mut rng));
            }
            Distribution::Normal => {
                for _ in 0..skip {
                    let _: f64 = StandardNormal.sample(&mut rng);
                }
                dst.iter_mut().for_each(|v| *v = StandardNormal.sample(&mut rng));
            }
        }
        filled += take;
        col += take;
    }
}

/// A read-only [`ChunkStore`] whose chunks are generated on demand.
#[derive(Clone, Debug)]
pub struct GeneratedStore {
    grid: ChunkGrid,
    distribution: Distribution,
    seed: u64,
}

impl GeneratedStore {
    /// A `grid`-shaped matrix of `distribution` entries from `seed`.
    pub fn new(grid: ChunkGrid, distribution: Distribution, seed: u64) -> Self {
        Self { grid, distribution, seed }
    }

    /// The distribution.
    pub fn distribution(&self) -> Distribution {
        self.distribution
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl ChunkStore for GeneratedStore {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn read_chunk(&self, index: ChunkIndex) -> StorageResult<Vec<f64>> {
        let mut out = Vec::new();
        self.read_chunk_into(index, &mut out)?;
        Ok(out)
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let e = self.grid.extent(index)?;
        out.resize(e.len(), 0.0);
        for (r, row) in out.chunks_exact_mut(e.cols.max(1)).enumerate().take(e.rows) {
            fill_row(self.distribution, self.seed, e.row0 + r, e.col0, row);
        }
        Ok(())
    }

    fn write_chunk(&self, _index: ChunkIndex, _data: &[f64]) -> StorageResult<()> {
        Err(StorageError::ReadOnly { store: self.describe() })
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
        for (r, row) in out.chunks_exact_mut(e.cols.max(1)).enumerate() {
            fill_row(self.store.distribution, self.store.seed, e.row0 + self.next + r, e.col0, row);
        }
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
    use outcore_storage::store::read_matrix;

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
    fn moments_match_the_distribution() {
        let n = 200_000;
        let mut row = vec![0.0; n];
        fill_row(Distribution::Uniform, 1, 0, 0, &mut row);
        let mean = row.iter().sum::<f64>() / n as f64;
        assert!(row.iter().all(|&v| (0.0..1.0).contains(&v)));
        assert!((mean - 0.5).abs() < 0.005, "uniform mean {mean}");
        fill_row(Distribution::Normal, 1, 0, 0, &mut row);
        let mean = row.iter().sum::<f64>() / n as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "normal mean {mean} var {var}");
    }

    #[test]
    fn is_read_only() {
        let store = GeneratedStore::new(ChunkGrid::new(2, 2, 1, 1).unwrap(), Distribution::Uniform, 0);
        assert!(matches!(store.write_chunk(ChunkIndex::new(0, 0), &[0.0]), Err(StorageError::ReadOnly { .. })));
    }
}
