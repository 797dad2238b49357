//! Uniform windows eight rows at a time: the row streams of `random` stepped in lock step,
//! in AVX-512 registers when the CPU has them, else in portable lanes. Bit for bit the values
//! of [`fill_row`].

use faer::MatMut;
use faer::reborrow::ReborrowMut;

use super::random::{Distribution, TILE, fill_row, mix64};

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
/// bit the streams [`tile_rng`](super::random::tile_rng) makes, advanced in lock step.
#[derive(Clone, Copy, Default)]
struct Lanes {
    s: [[u64; LANES]; 4],
}

impl UniformLanes for Lanes {
    type Cpu = ();

    /// As [`tile_rng`](super::random::tile_rng), then `seed_from_u64`'s SplitMix64 expansion.
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
/// eight rows at a time, in AVX-512 registers when the CPU has AVX-512F/DQ, else the portable
/// lanes compiled for AVX2 or the baseline; normal ones row by row. The values are those of
/// [`fill_row`], bit for bit.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
