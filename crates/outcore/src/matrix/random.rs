//! Seeded random entries: one stream per tile of a row, so any window starts anywhere.
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

use outcore_storage::Knob;

use crate::error::{Error, Result};

/// Columns per random stream within a row.
pub(crate) const TILE: usize = 64;

/// The distribution of generated entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Uniform on [0, 1), like `dask.array.random.random`.
    Uniform,
    /// Standard normal (mean 0, variance 1).
    Normal,
}

impl std::str::FromStr for Distribution {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "uniform" => Ok(Self::Uniform),
            "normal" => Ok(Self::Normal),
            _ => Err(Error::invalid(Knob::Distribution, format!("{s:?} is not one of uniform, normal"))),
        }
    }
}

/// SplitMix64's output function: a bijection on u64 with full avalanche.
pub(super) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stream for tile `tile` of row `row`.
pub(crate) fn tile_rng(seed: u64, row: u64, tile: u64) -> Xoshiro256PlusPlus {
    let z = mix64(seed ^ mix64(row.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    Xoshiro256PlusPlus::seed_from_u64(mix64(z ^ mix64(tile.wrapping_add(0xd1b5_4a32_d192_ed03))))
}

/// A uniform [0, 1) double from the top 53 bits.
#[inline]
fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Fills `out` with entries `(row, col0..col0 + out.len())`.
pub(crate) fn fill_row(distribution: Distribution, seed: u64, row: usize, col0: usize, out: &mut [f64]) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
