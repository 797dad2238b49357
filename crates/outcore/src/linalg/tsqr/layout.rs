//! The shape of a TSQR run, decided before anything runs: the panels, the reduction tree
//! above them, and the bytes each kind of task holds (faer's `*_scratch` idea at the scale of
//! the whole computation). The graph is built from it, and the plan sizes memory from that.

use std::ops::Range;

use faer::Mat;
use outcore_storage::ChunkGrid;

use super::options::SvdOptions;
use crate::linalg::dense::{Regression, cholesky_qr2_bytes, qr_scratch_bytes, svd_scratch_bytes};
use crate::matrix::ChunkedMatrix;
use crate::task::{Block, reduction_tree};

/// How the tall problem is centered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Centering {
    /// Not centered.
    None,
    /// Its columns (the input's, for tall input): panels merge their means up the tree.
    Columns,
    /// Its rows (the input's columns, for wide input): each panel row is centered where read.
    Rows,
}

/// What the root of the tree computes from the tall problem's R.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Root {
    /// The SVD of R: singular values, and V and U_R with vectors.
    Svd,
    /// R itself, its diagonal made non-negative; with vectors, the signs as W, so that the
    /// second pass writes Q.
    Qr,
    /// The least-squares fit of `B` on `A`, the tall problem being `[A | B]` (the right-hand
    /// sides read beside A, the columns centered for an intercept): from its
    /// `R = [R_1 | R_2]`, `min ||R_1 X - R_2||` with the regression's figures.
    Lstsq(Regression),
}

/// Target size of a panel when no chunk grid constrains it.
const PANEL_BYTES: usize = 4 << 20;

/// Rows of a panel of `n` columns sized for speed (about [`PANEL_BYTES`], at least `n` rows),
/// when no chunk grid constrains panels.
pub(crate) fn speed_panel_rows(n: usize) -> usize {
    (PANEL_BYTES / (n.max(1) * size_of::<f64>())).max(n)
}

/// What [`SvdPlan::new`](super::SvdPlan::new) settled before sizing panels.
#[derive(Clone, Copy)]
pub(crate) struct Setup {
    pub(crate) transposed: bool,
    pub(crate) cache_input: bool,
    pub(crate) centering: Centering,
    pub(crate) small_v: bool,
    pub(crate) root: Root,
}

/// A node of the reduction tree.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// Its children in the level below (empty for panels).
    pub(crate) children: Range<usize>,
    /// Rows of the stacked matrix it factors (panel rows, for a panel).
    pub(crate) rows: usize,
    /// Rows of its R factor: `min(rows, n)`.
    pub(crate) k: usize,
    /// Rows of the tall matrix under it.
    pub(crate) count: usize,
}

/// The shape of a TSQR run: the tall problem, its panels, the reduction tree above them, and
/// what each kind of task holds.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) tall: ChunkedMatrix,
    /// Right-hand sides read beside `tall` (same rows), for a least-squares root.
    pub(crate) rhs: Option<ChunkedMatrix>,
    /// Row weights read beside `tall` (`m x 1`): each row of the tall problem is scaled by the
    /// square root of its weight (centered first on the weighted means).
    pub(crate) weights: Option<ChunkedMatrix>,
    /// For a QR with Q: the matrix `C` (`lhs_cols x p`) whose product `Q C` the second pass
    /// writes in place of Q.
    pub(crate) q_times: Option<Mat<f64>>,
    pub(crate) transposed: bool,
    /// Columns of the tall problem: `tall`'s, and `rhs`'s beside them.
    pub(crate) n: usize,
    pub(crate) panels: Vec<Range<usize>>,
    pub(crate) levels: Vec<Vec<Node>>,
    pub(crate) fan_in: usize,
    pub(crate) vectors: bool,
    /// What the root computes.
    pub(crate) root: Root,
    /// V (the tall problem's small factor) without the second pass: a column-centered plan
    /// asked for vectors.
    pub(crate) small_v: bool,
    pub(crate) centering: Centering,
    pub(crate) standardize: bool,
    pub(crate) check_finite: bool,
    pub(crate) cache_input: bool,
    pub(crate) factor_chunk_rows: usize,
    /// Largest condition bound of a panel's R for which U takes the `A R^-1 W` shortcut.
    pub(crate) shortcut_condition: f64,
}

/// The shortcut `U_panel = A_panel R^-1 W` adds a rounding error of about `eps` times the
/// bound `||R||_F ||R^-1||_F` (see [`solve_r_if_conditioned`]); it is taken while that stays
/// within the `eps sqrt(m)` scale of TSQR's own error, with a factor 4 of margin. Panels of the
/// seed's uniform matrix have bounds near 200, under 5657 for its 2,000,000 rows.
///
/// [`solve_r_if_conditioned`]: crate::linalg::dense::solve_r_if_conditioned
fn shortcut_condition(m: usize) -> f64 {
    4.0 * (m as f64).sqrt()
}

/// Bytes of an `r x c` faer matrix (columns padded to whole SIMD registers).
pub(crate) fn mat_bytes(r: usize, c: usize) -> u64 {
    (r.next_multiple_of(8) * c * size_of::<f64>()) as u64
}

impl Layout {
    /// The layout of `tall` (the matrix or its transpose), with right-hand sides and weights
    /// beside it and a QR's `C` (`sides`), in panels of `panel_rows` rows.
    pub(crate) fn new(
        tall: &ChunkedMatrix,
        sides: (Option<&ChunkedMatrix>, Option<&ChunkedMatrix>, Option<&Mat<f64>>),
        setup: Setup,
        options: &SvdOptions,
        panel_rows: usize,
    ) -> Self {
        let Setup { transposed, cache_input, centering, small_v, root } = setup;
        let (rhs, weights, q_times) = sides;
        let m = tall.rows();
        let n = tall.cols() + rhs.map_or(0, ChunkedMatrix::cols);
        let (cr, _) = tall.grid().chunk_shape();
        let panels: Vec<Range<usize>> =
            (0..m.div_ceil(panel_rows)).map(|i| i * panel_rows..((i + 1) * panel_rows).min(m)).collect();
        let factor_chunk_rows = if panel_rows.is_multiple_of(cr) { cr } else { panel_rows };
        let mut layout = Self {
            tall: tall.clone(),
            rhs: rhs.cloned(),
            weights: weights.cloned(),
            q_times: q_times.cloned(),
            transposed,
            n,
            panels,
            levels: Vec::new(),
            fan_in: 2,
            vectors: options.vectors,
            root,
            small_v,
            centering,
            standardize: options.standardize,
            check_finite: options.check_finite,
            cache_input,
            factor_chunk_rows,
            shortcut_condition: shortcut_condition(m),
        };
        let panel_bytes = layout.panel_qr_bytes(0).0;
        let r_bytes = mat_bytes(n, n);
        layout.fan_in = options
            .fan_in
            .unwrap_or_else(|| (panel_rows / n).min((panel_bytes / (3 * r_bytes).max(1)) as usize).clamp(2, 32));
        // Children stack their R and mean rows (not the weights' sums).
        layout.levels = tree(&layout.panels, n, layout.fan_in, usize::from(centering == Centering::Columns));
        layout
    }

    /// Bytes kept in RAM between tasks: the R factors a tree holds at once, and the panels'
    /// means kept to the end (rows centered).
    pub(crate) fn retained(&self) -> u64 {
        let stats: u64 = self.panels.iter().map(|p| self.stats_bytes(p.len())).sum();
        self.levels.len() as u64 * self.fan_in as u64 * mat_bytes(self.n, self.n) + stats
    }

    /// The matrix's shape `(rows, cols)` as given (not the tall view).
    pub(crate) fn shape(&self) -> (usize, usize) {
        let (m, n) = self.tall.shape();
        if self.transposed { (n, m) } else { (m, n) }
    }

    /// Number of singular values, `min(rows, cols)`.
    pub(crate) fn k(&self) -> usize {
        self.n
    }

    /// Columns of the matrix factored (`tall`'s, without the right-hand sides).
    pub(crate) fn lhs_cols(&self) -> usize {
        self.tall.cols()
    }

    /// Values of the buffer a streaming read of a panel needs: the largest of the readers'.
    pub(crate) fn read_buffer_len(&self) -> usize {
        let beside = self.beside().map(|b| b.buffer_len(false)).max().unwrap_or(0);
        self.tall.buffer_len(self.cache_input).max(beside)
    }

    /// What is read beside `tall`: the right-hand sides and the weights.
    pub(crate) fn beside(&self) -> impl Iterator<Item = &ChunkedMatrix> {
        self.rhs.iter().chain(&self.weights)
    }

    /// Row ranges of the tall view's panels.
    pub(crate) fn panels(&self) -> &[Range<usize>] {
        &self.panels
    }

    /// R factors stacked per reduction node.
    pub(crate) fn fan_in(&self) -> usize {
        self.fan_in
    }

    /// Levels of the reduction tree above the panels.
    pub(crate) fn depth(&self) -> usize {
        self.levels.len() - 1
    }

    /// Grid of the large factor (U for tall input, V for wide, Q or `Q C` for a QR), chunked
    /// like the input along its long side; `None` for values only.
    pub(crate) fn factor_grid(&self) -> Option<ChunkGrid> {
        let cols = self.factor_cols();
        self.vectors.then(|| ChunkGrid::new(self.tall.rows(), cols, self.factor_chunk_rows, cols).ok()).flatten()
    }

    /// Columns of the large factor: the matrix's (A's, without right-hand sides), or `C`'s.
    pub(crate) fn factor_cols(&self) -> usize {
        self.q_times.as_ref().map_or(self.lhs_cols(), Mat::ncols)
    }

    // Working sets of each kind of task, in bytes: (total, reusable from worker scratch).

    pub(crate) fn panel_qr_bytes(&self, panel: usize) -> (u64, u64) {
        let h = self.panels[panel].len();
        let n = self.n;
        // Reading: the chunks (pinned when cached, else through the worker's reusable read
        // buffer) and the store's transient scratch, counted once.
        let rows = self.panels[panel].clone();
        // Streaming reads of A, the right-hand sides and the weights share one buffer, the
        // largest's; the weights have a panel's buffer of their own.
        let buffer = (self.read_buffer_len() * size_of::<f64>()) as u64;
        let beside_scratch: u64 = self.beside().map(|b| b.store().read_scratch_bytes()).sum();
        let read = if self.cache_input {
            self.tall.read_working_set(rows, 0..self.lhs_cols(), true) + buffer + beside_scratch
        } else {
            buffer + self.tall.store().read_scratch_bytes() + beside_scratch
        };
        let weights = if self.weights.is_some() { Block::bytes(h, 1) } else { 0 };
        let reusable = Block::bytes(h, n) + buffer + weights;
        let total = Block::bytes(h, n) + read + weights;
        // Without U a panel may take CholeskyQR2, whose n x n temporaries exceed Householder's.
        let factor =
            if self.vectors { qr_scratch_bytes(h, n) } else { qr_scratch_bytes(h, n).max(cholesky_qr2_bytes(n)) };
        (total + factor + Block::bytes(h.min(n) + self.mean_rows(), n) + self.stats_bytes(h), reusable)
    }

    /// Rows carrying statistics below each R factor, when columns are centered: the means,
    /// and with weights a row whose first entry is the weights' sum under the node.
    pub(crate) fn mean_rows(&self) -> usize {
        match self.centering {
            Centering::Columns => 1 + usize::from(self.weights.is_some()),
            _ => 0,
        }
    }

    /// Bytes of a panel's row means and scales (rows centered), kept to the end of the run.
    pub(crate) fn stats_bytes(&self, h: usize) -> u64 {
        if self.centering == Centering::Rows { Block::bytes(2, h) } else { 0 }
    }

    pub(crate) fn panel_u_bytes(&self, panel: usize) -> (u64, u64) {
        let h = self.panels[panel].len();
        let (n, k) = (self.n, self.factor_cols());
        let (total, reusable) = self.panel_qr_bytes(panel);
        let out_chunk = Block::bytes(self.factor_chunk_rows.min(h), k);
        let u = Block::bytes(h, k);
        // The W input, U's panel, and the store's encoding of one chunk.
        (total - Block::bytes(h.min(n), n) + Block::bytes(h.min(n), k) + u + 2 * out_chunk, reusable + u)
    }

    pub(crate) fn stack_bytes(&self, node: &Node) -> u64 {
        let n = self.n;
        let inputs = Block::bytes(node.rows, n);
        let kept = if self.vectors { Block::bytes(node.rows, n) + qr_scratch_bytes(node.rows, n) } else { 0 };
        inputs
            + mat_bytes(node.rows, n)
            + qr_scratch_bytes(node.rows, n)
            + Block::bytes(node.k + self.mean_rows(), n)
            + kept
    }

    /// The root's working set: the SVD of R, R with its signs, or the least-squares solve.
    pub(crate) fn root_bytes(&self, k_root: usize) -> u64 {
        let (n, a) = (self.n, self.lhs_cols());
        match self.root {
            Root::Svd => self.svd_bytes(k_root),
            // R, D R, W = D C (or D), Q^T B.
            Root::Qr => 2 * Block::bytes(k_root, n) + Block::bytes(k_root, self.factor_cols()) + Block::bytes(n, n),
            // R, its two blocks (with ridge's rows), two SVDs of R_1, the solution, the
            // residual, the outputs.
            Root::Lstsq(_) => {
                let rows = k_root + a + 1;
                2 * Block::bytes(rows, n)
                    + 2 * svd_scratch_bytes(rows, a, true)
                    + 3 * mat_bytes(a, n)
                    + 2 * mat_bytes(a, a)
                    + mat_bytes(rows, n)
                    + Block::bytes(7, n)
            }
        }
    }

    fn svd_bytes(&self, k_root: usize) -> u64 {
        let n = self.n;
        let vectors = self.vectors || self.small_v;
        let outputs = if vectors { Block::bytes(n + k_root + 1, k_root) } else { Block::bytes(1, k_root) };
        let input = Block::bytes(k_root + self.mean_rows(), n);
        input + mat_bytes(k_root, n) + svd_scratch_bytes(k_root, n, vectors) + outputs + Block::bytes(2, n)
    }

    pub(crate) fn apply_bytes(&self, node: &Node) -> u64 {
        let (n, k) = (self.n, self.factor_cols());
        let factors = Block::bytes(node.rows, n) + qr_scratch_bytes(node.rows, n);
        factors
            + mat_bytes(node.rows, n)
            + Block::bytes(node.k, k)
            + mat_bytes(node.rows, k)
            + Block::bytes(node.rows, k)
    }
}

/// The reduction tree ([`reduction_tree`]) over the panels: level 0
/// holds the panels, each level above stacks `fan_in` nodes' R factors, and `mean_rows` (1 when
/// columns are centered) rows per child carrying its mean.
fn tree(panels: &[Range<usize>], n: usize, fan_in: usize, mean_rows: usize) -> Vec<Vec<Node>> {
    let mut levels = vec![
        panels
            .iter()
            .map(|p| Node { children: 0..0, rows: p.len(), k: p.len().min(n), count: p.len() })
            .collect::<Vec<_>>(),
    ];
    for ranges in reduction_tree(panels.len(), fan_in) {
        let below = levels.last().map(Vec::as_slice).unwrap_or_default();
        let level = ranges
            .into_iter()
            .map(|children| {
                let under = &below[children.clone()];
                let rows = under.iter().map(|c| c.k + mean_rows).sum::<usize>();
                let count = under.iter().map(|c| c.count).sum();
                Node { children, rows, k: rows.min(n), count }
            })
            .collect();
        levels.push(level);
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_groups_by_fan_in_up_to_one_root() {
        let panels: Vec<Range<usize>> = (0..10).map(|i| i * 50..(i + 1) * 50).collect();
        let levels = tree(&panels, 20, 3, 0);
        let sizes: Vec<usize> = levels.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 4, 2, 1]);
        assert_eq!(levels[1][3].children, 9..10);
        assert_eq!(levels[1][0].rows, 60);
        assert_eq!(levels[1][0].k, 20);
        assert_eq!(tree(&panels[..1], 20, 3, 0).len(), 1);
        let centered = tree(&panels, 20, 3, 1);
        assert_eq!((centered[1][0].rows, centered[1][0].k, centered[1][0].count), (63, 20, 150));
        assert_eq!(centered[3][0].count, 500);
    }
}
