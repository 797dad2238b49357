//! Seeded random matrices, generated chunk by chunk and never stored.
//!
//! Entry (i, j) depends only on the seed, the distribution, i and j: not on the chunking, the
//! order chunks are generated in, the thread count or the scheduler. Row i is cut into tiles of
//! [`TILE`] columns and each tile draws from its own `Xoshiro256PlusPlus` stream, seeded from
//! (seed, i, tile) through SplitMix64 mixing. A chunk therefore starts generating at any tile
//! boundary without generating what comes before it, and a matrix of any shape is the top-left
//! corner of every larger matrix with the same seed.

use faer::MatMut;
use faer::reborrow::ReborrowMut;
use rand_distr::{Distribution as _, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

use outcore_storage::{ChunkExtent, ChunkGrid, ChunkIndex, ChunkRows, ChunkStore, StorageError, StorageResult};

use super::window::WindowSource;

/// Columns per random stream within a row.
pub(crate) const TILE: usize = 64;

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

/// Streams advanced together, one per SIMD lane (8 rows at once).
const LANES: usize = 8;

/// SplitMix64's increment, as in `rand_xoshiro`'s `seed_from_u64`.
const PHI: u64 = 0x9e37_79b9_7f4a_7c15;

/// `LANES` xoshiro256++ streams stepped together: [`Lanes`] in portable code, or in AVX-512
/// registers, which LLVM does not manage from the portable code (it stays scalar).
trait UniformLanes {
    /// What proves the CPU can run the implementation: `()` for portable code, [`Avx512`] for
    /// the AVX-512 one (only made once the CPU was checked).
    type Cpu: Copy;
    /// The streams of tile `tile` of rows `rows`.
    fn seeded(cpu: Self::Cpu, seed: u64, rows: [u64; LANES], tile: u64) -> Self;
    /// The next uniform [0, 1) value of every lane.
    fn next_uniform(&mut self) -> [f64; LANES];
}

/// The xoshiro256++ states of `LANES` streams, structure of arrays, in portable code. Bit for
/// bit the streams [`tile_rng`] makes, advanced in lock step.
#[derive(Clone, Copy, Default)]
struct Lanes {
    s: [[u64; LANES]; 4],
}

impl UniformLanes for Lanes {
    type Cpu = ();

    /// As [`tile_rng`], then `seed_from_u64`'s SplitMix64 expansion.
    #[inline(always)]
    fn seeded((): (), seed: u64, rows: [u64; LANES], tile: u64) -> Self {
        let t = mix64(tile.wrapping_add(0xd1b5_4a32_d192_ed03));
        let mut lanes = Self::default();
        for (i, &row) in rows.iter().enumerate() {
            let mut x = mix64(mix64(seed ^ mix64(row.wrapping_add(0x9e37_79b9_7f4a_7c15))) ^ t);
            for word in &mut lanes.s {
                x = x.wrapping_add(PHI);
                word[i] = mix64(x);
            }
        }
        lanes
    }

    #[inline(always)]
    fn next_uniform(&mut self) -> [f64; LANES] {
        let [s0, s1, s2, s3] = &mut self.s;
        let mut out = [0.0; LANES];
        for i in 0..LANES {
            let result = s0[i].wrapping_add(s3[i]).rotate_left(23).wrapping_add(s0[i]);
            let t = s1[i] << 17;
            s2[i] ^= s0[i];
            s3[i] ^= s1[i];
            s1[i] ^= s2[i];
            s0[i] ^= s3[i];
            s2[i] ^= t;
            s3[i] = s3[i].rotate_left(45);
            out[i] = (result >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        }
        out
    }
}

/// Proof that this CPU has AVX-512F, DQ and VL: only [`Avx512::detect`] makes one, after
/// checking. Code holding one may run those instructions (pulp's `Simd` tokens, in small).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx512(());

#[cfg(target_arch = "x86_64")]
impl Avx512 {
    fn detect() -> Option<Self> {
        let has = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl");
        has.then_some(Self(()))
    }
}

/// [`Lanes`] in four AVX-512 registers. Only made from an [`Avx512`] token, so its methods run
/// their intrinsics on a CPU known to have them.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Lanes512 {
    s: [std::arch::x86_64::__m512i; 4],
}

#[cfg(target_arch = "x86_64")]
impl UniformLanes for Lanes512 {
    type Cpu = Avx512;

    #[inline(always)]
    fn seeded(_cpu: Avx512, seed: u64, rows: [u64; LANES], tile: u64) -> Self {
        let lanes = Lanes::seeded((), seed, rows, tile);
        // SAFETY: the `Avx512` token proves AVX-512F; each load reads the eight u64 of one
        // state word.
        Self { s: lanes.s.map(|word| unsafe { std::arch::x86_64::_mm512_loadu_si512(word.as_ptr().cast()) }) }
    }

    #[inline(always)]
    fn next_uniform(&mut self) -> [f64; LANES] {
        use std::arch::x86_64::*;
        // SAFETY: a `Lanes512` exists only through `seeded`, whose `Avx512` token proves
        // AVX-512F and DQ (the conversion); the store writes the eight f64 of `out`.
        unsafe {
            let [s0, s1, s2, s3] = self.s;
            let result = _mm512_add_epi64(_mm512_rol_epi64::<23>(_mm512_add_epi64(s0, s3)), s0);
            let t = _mm512_slli_epi64::<17>(s1);
            let s2 = _mm512_xor_si512(s2, s0);
            let s3 = _mm512_xor_si512(s3, s1);
            let s1 = _mm512_xor_si512(s1, s2);
            let s0 = _mm512_xor_si512(s0, s3);
            let s2 = _mm512_xor_si512(s2, t);
            let s3 = _mm512_rol_epi64::<45>(s3);
            self.s = [s0, s1, s2, s3];
            // Below 2^53 after the shift, so the signed conversion is exact, as `as f64` is.
            let values = _mm512_mul_pd(
                _mm512_cvtepi64_pd(_mm512_srli_epi64::<11>(result)),
                _mm512_set1_pd(1.0 / (1u64 << 53) as f64),
            );
            let mut out = [0.0; LANES];
            _mm512_storeu_pd(out.as_mut_ptr(), values);
            out
        }
    }
}

/// Fills `dst` with the uniform entries at rows `row0..`, columns `col0..`: eight rows at a
/// time through `L`, the rows left over one at a time through [`fill_row`].
#[inline(always)]
fn fill_uniform_generic<L: UniformLanes>(cpu: L::Cpu, seed: u64, row0: usize, col0: usize, mut dst: MatMut<'_, f64>) {
    let (rows, cols) = dst.shape();
    let col_major = dst.row_stride() == 1;
    let mut r = 0;
    while r + LANES <= rows {
        let ids: [u64; LANES] = std::array::from_fn(|i| (row0 + r + i) as u64);
        let mut c = 0;
        while c < cols {
            let col = col0 + c;
            let tile = col / TILE;
            let take = (TILE - col % TILE).min(cols - c);
            let mut lanes = L::seeded(cpu, seed, ids, tile as u64);
            for _ in 0..col % TILE {
                lanes.next_uniform();
            }
            if col_major {
                // The eight rows of one column are adjacent: one vector store per column.
                let col_stride = dst.col_stride();
                let base = dst.rb_mut().as_ptr_mut();
                for k in 0..take {
                    let v = lanes.next_uniform();
                    // SAFETY: rows r..r + LANES and column c + k lie inside `dst` (r + LANES <=
                    // rows, c + k < cols), whose row stride is 1, so the eight values are
                    // adjacent and in bounds; nothing else borrows `dst` meanwhile.
                    unsafe {
                        let at = base.offset((c + k) as isize * col_stride + r as isize);
                        std::ptr::copy_nonoverlapping(v.as_ptr(), at, LANES);
                    }
                }
            } else {
                for k in 0..take {
                    let v = lanes.next_uniform();
                    for (i, x) in v.into_iter().enumerate() {
                        dst[(r + i, c + k)] = x;
                    }
                }
            }
            c += take;
        }
        r += LANES;
    }
    let mut row = vec![0.0; cols];
    for i in r..rows {
        fill_row(Distribution::Uniform, seed, row0 + i, col0, &mut row);
        for (j, &x) in row.iter().enumerate() {
            dst[(i, j)] = x;
        }
    }
}

/// The AVX-512 lanes, compiled with the features enabled so the intrinsics inline.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
fn fill_uniform_avx512(cpu: Avx512, seed: u64, row0: usize, col0: usize, dst: MatMut<'_, f64>) {
    fill_uniform_generic::<Lanes512>(cpu, seed, row0, col0, dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fill_uniform_avx2(seed: u64, row0: usize, col0: usize, dst: MatMut<'_, f64>) {
    fill_uniform_generic::<Lanes>((), seed, row0, col0, dst);
}

/// Fills `dst` (any layout) with entries at rows `row0..`, columns `col0..`: uniform entries
/// eight rows at a time, in AVX-512 registers when the CPU has AVX-512F/DQ (0.25 ns a value,
/// against 1.36 for the portable lanes on the same CPU), else the portable lanes compiled for
/// AVX2 or the baseline; normal ones row by row. The values are those of [`fill_row`], bit for bit.
pub(crate) fn fill_window(distribution: Distribution, seed: u64, row0: usize, col0: usize, mut dst: MatMut<'_, f64>) {
    match distribution {
        Distribution::Uniform => {
            #[cfg(target_arch = "x86_64")]
            {
                if let Some(cpu) = Avx512::detect() {
                    // SAFETY: the token proves the CPU has the features the function is
                    // compiled for.
                    return unsafe { fill_uniform_avx512(cpu, seed, row0, col0, dst) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has the feature the function is compiled for.
                    return unsafe { fill_uniform_avx2(seed, row0, col0, dst) };
                }
            }
            fill_uniform_generic::<Lanes>((), seed, row0, col0, dst)
        }
        Distribution::Normal => {
            let (rows, cols) = dst.shape();
            let mut row = vec![0.0; cols];
            for i in 0..rows {
                fill_row(distribution, seed, row0 + i, col0, &mut row);
                for (j, &x) in row.iter().enumerate() {
                    dst[(i, j)] = x;
                }
            }
        }
    }
}

/// A read-only [`ChunkStore`] whose chunks are generated on demand.
#[derive(Clone, Debug)]
pub(crate) struct GeneratedStore {
    grid: ChunkGrid,
    distribution: Distribution,
    seed: u64,
}

impl GeneratedStore {
    /// A `grid`-shaped matrix of `distribution` entries from `seed`.
    pub fn new(grid: ChunkGrid, distribution: Distribution, seed: u64) -> Self {
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
    use outcore_storage::read_matrix;

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
    fn simd_windows_equal_the_scalar_rows_in_every_layout() {
        for distribution in [Distribution::Uniform, Distribution::Normal] {
            for (row0, col0, rows, cols) in
                [(0, 0, 17, 130), (5, 63, 9, 2), (1000, 127, 24, 200), (3, 64, 8, 64), (0, 1, 7, 5)]
            {
                let mut expected = vec![0.0; rows * cols];
                for (i, row) in expected.chunks_exact_mut(cols).enumerate() {
                    fill_row(distribution, 11, row0 + i, col0, row);
                }
                let mut row_major = vec![0.0; rows * cols];
                fill_window(distribution, 11, row0, col0, MatMut::from_row_major_slice_mut(&mut row_major, rows, cols));
                assert_eq!(row_major, expected, "{distribution:?} row-major at ({row0}, {col0})");
                let mut col_major = faer::Mat::<f64>::zeros(rows, cols);
                fill_window(distribution, 11, row0, col0, col_major.as_mut());
                for i in 0..rows {
                    for j in 0..cols {
                        assert_eq!(
                            col_major[(i, j)].to_bits(),
                            expected[i * cols + j].to_bits(),
                            "col-major ({i}, {j})"
                        );
                    }
                }
                if distribution == Distribution::Uniform {
                    // The portable lanes, whichever path `fill_window` took on this CPU.
                    row_major.fill(0.0);
                    let dst = MatMut::from_row_major_slice_mut(&mut row_major, rows, cols);
                    fill_uniform_generic::<Lanes>((), 11, row0, col0, dst);
                    assert_eq!(row_major, expected, "portable path, row-major");
                    let mut col_major = faer::Mat::<f64>::zeros(rows, cols);
                    fill_uniform_generic::<Lanes>((), 11, row0, col0, col_major.as_mut());
                    assert!(
                        (0..rows).all(|i| (0..cols).all(|j| col_major[(i, j)] == expected[i * cols + j])),
                        "portable path, col-major at ({row0}, {col0})"
                    );
                }
            }
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
