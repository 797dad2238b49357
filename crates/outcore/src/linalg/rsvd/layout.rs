//! The shape of a randomized SVD, decided from the options and the matrix alone: the sketch's
//! width, the iterations that can help, the passes over A and the factors' grids.

use outcore_storage::{ChunkGrid, Knob, Message};

use super::options::{RandomizedMethod, RandomizedSvdOptions};
use crate::error::{Error, Result};
use crate::linalg::result::check_can_center;
use crate::matrix::ChunkedMatrix;

/// A randomized SVD's sketch of one matrix.
#[derive(Clone, Debug)]
pub(crate) struct Sketch {
    pub(crate) a: ChunkedMatrix,
    pub(crate) options: RandomizedSvdOptions,
    /// Sketch width `k + p`.
    pub(crate) l: usize,
    pub(crate) cache_input: bool,
    /// Iterations run: those asked for, or, when a block Krylov space of that many would be
    /// wider than the matrix, the fewer that already fill it (the last block in part).
    iterations: usize,
}

impl Sketch {
    /// The sketch of `a` for `options`, once they are checked against its shape; chunks are
    /// cached in the pool when `cache_input(a)` says so.
    pub(crate) fn new(
        a: &ChunkedMatrix,
        options: &RandomizedSvdOptions,
        cache_input: impl FnOnce(&ChunkedMatrix) -> bool,
    ) -> Result<Self> {
        a.check_not_empty()?;
        let (m, n) = a.shape();
        let o = options;
        if o.center {
            check_can_center(m)?;
        }
        if o.k == 0 {
            return Err(Error::invalid(Knob::K, "k = 0 asks for no singular values; give k >= 1"));
        }
        if o.power_iters > RandomizedSvdOptions::MAX_POWER_ITERS {
            return Err(Error::invalid(
                Knob::PowerIters,
                format!(
                    "{} iterations is more than {} (each is two passes over A); the default {} is accurate on flat spectra, and more than 20 rarely helps",
                    o.power_iters,
                    RandomizedSvdOptions::MAX_POWER_ITERS,
                    RandomizedSvdOptions::DEFAULT_POWER_ITERS
                ),
            ));
        }
        if o.probes > RandomizedSvdOptions::MAX_PROBES {
            return Err(Error::invalid(
                Knob::Probes,
                format!(
                    "{} probes is more than {}; 10 already make the error bound fail with probability 1e-10",
                    o.probes,
                    RandomizedSvdOptions::MAX_PROBES
                ),
            ));
        }
        let sum = o.k.checked_add(o.oversamples);
        let Some(l) = sum.filter(|&l| l <= m.min(n)) else {
            let total = sum.map_or_else(|| " (more than can be counted)".into(), |l| format!(" = {l}"));
            let d = m.min(n);
            let exceeds = Message::new().text(format!(
                "k + oversamples = {} + {}{total} exceeds min(rows, cols) = {d} of the {m} x {n} matrix; ",
                o.k, o.oversamples,
            ));
            // The setting to blame: k alone fits, so the oversamples are too many.
            let (knob, reason) = if o.k <= d {
                let fix = exceeds.text("lower ").knob(Knob::Oversamples).text(format!(" to at most {}", d - o.k));
                (Knob::Oversamples, fix)
            } else {
                let fix = exceeds.text("lower ").knob(Knob::K).text(format!(" to at most {d}"));
                (Knob::K, fix.text(" (for all singular values of a narrow matrix use TSQR)"))
            };
            return Err(Error::invalid(knob, reason));
        };
        // A block Krylov space cannot be wider than min(m, n). Once it spans that much it holds
        // the whole column space and the SVD it gives is exact: the iterations that fill it are
        // run (the last block only in part), and more could add nothing.
        let d = m.min(n);
        let iterations = match o.method {
            RandomizedMethod::Krylov => o.power_iters.min(d.div_ceil(l) - 1),
            RandomizedMethod::Subspace => o.power_iters,
        };
        let options = o.clone();
        if o.probes == 0 {
            return Err(Error::invalid(
                Knob::Probes,
                "the error estimate needs at least 1 probe (10 gives a 1e-10 failure probability)",
            ));
        }
        if o.fan_in < 2 {
            return Err(Error::invalid(Knob::FanIn, "a reduction node must stack at least 2 blocks"));
        }
        let cache_input = cache_input(a);
        Ok(Self { a: a.clone(), options, l, cache_input, iterations })
    }

    /// Iterations the plan runs: the options' `power_iters`, unless a block Krylov space fills
    /// the matrix's column space sooner; then the iterations that fill it (the result is then
    /// exact, and more iterations could add nothing).
    pub(crate) fn iterations(&self) -> usize {
        self.iterations
    }

    /// True when the block Krylov space spans all of `min(m, n)` dimensions.
    pub(crate) fn krylov_space_full(&self) -> bool {
        self.options.method == RandomizedMethod::Krylov && self.basis_width() == self.a.rows().min(self.a.cols())
    }

    /// Width of the final basis Q: `k + p`; for block Krylov, `(k + p)` per block over
    /// `iterations + 1` blocks, at most `min(m, n)`.
    pub(crate) fn basis_width(&self) -> usize {
        match self.options.method {
            RandomizedMethod::Subspace => self.l,
            RandomizedMethod::Krylov => ((self.iterations + 1) * self.l).min(self.a.rows().min(self.a.cols())),
        }
    }

    /// Passes over A: the sketch, two per iteration, and `B^T = A^T Q`.
    pub(crate) fn passes(&self) -> usize {
        2 + 2 * self.iterations
    }

    /// Grids of U (`m x k`, chunked like A's rows) and V (`n x k`, like A's columns).
    pub(crate) fn factor_grids(&self) -> Result<(ChunkGrid, ChunkGrid)> {
        let (m, n) = self.a.shape();
        let (cr, cc) = self.a.grid().chunk_shape();
        let k = self.options.k;
        Ok((ChunkGrid::new(m, k, cr, k)?, ChunkGrid::new(n, k, cc, k)?))
    }

    /// Bytes kept between tasks: the blocks a reduction holds at once, and with the column
    /// moments (3 x n, gathered to center or when asked) those waiting in their merge trees
    /// (up to `fan_in - 1` per level, and the newest row's), then the merged ones to the end
    /// of the run.
    pub(crate) fn retained(&self) -> u64 {
        let o = &self.options;
        let (cr, cc) = self.a.grid().chunk_shape();
        let mut retained =
            2 * (cr.max(cc) * (self.basis_width() + o.probes) * size_of::<f64>()) as u64 * o.fan_in as u64;
        if o.gathers_moments() {
            let depth = crate::task::reduction_tree(self.a.grid().grid_shape().0, o.fan_in).len();
            let waiting = (o.fan_in.max(2) - 1) * depth + 2;
            retained += 3 * (self.a.cols() * size_of::<f64>()) as u64 * waiting as u64;
        }
        retained
    }
}
