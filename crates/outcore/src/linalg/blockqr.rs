//! Householder QR of a tall-and-skinny matrix held as row blocks in the buffer manager, as
//! task-graph fragments: a reduction tree of R factors going up, and its Q applied to a small
//! matrix W going down, one output block per input block (`Q W`, or Q itself with W = I).
//!
//! This is TSQR over task outputs rather than over a matrix on disk: the randomized SVD uses it
//! to orthonormalize its sketches (robust when they are rank-deficient, as they are for an
//! exactly low-rank input, where Cholesky QR would fail) and to take the SVD of `B^T`, so no
//! `n x l` matrix is ever gathered in one place.

use faer::Mat;
use outcore_storage::Pinned;

use crate::error::{Error, Result};
use crate::linalg::dense::{apply_q, qr_in_place, qr_scratch_bytes, r_factor, to_block, view};
use crate::task::{Block, Key, Operation, TaskGraph, TaskId, reduction_tree};

/// One step of a block QR tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BlockQrOp {
    /// QR of one block: outputs its R, Householder factors and coefficients.
    Leaf,
    /// QR of the children's R factors stacked: outputs R, factors, coefficients.
    Stack,
    /// The identity matrix of the given size (W at the root, to form Q itself).
    Identity {
        /// Rows and columns.
        size: usize,
    },
    /// Applies a node's Q to its block of W; outputs one block per child, of these row counts.
    Apply {
        /// Rows of each child's block (its R's row count).
        child_rows: Vec<usize>,
    },
    /// `Q_leaf [W; 0]` for one input block.
    LeafQ,
}

impl BlockQrOp {
    /// Short label.
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Leaf => "block qr".into(),
            Self::Stack => "stack qr".into(),
            Self::Identity { size } => format!("identity {size}"),
            Self::Apply { child_rows } => format!("apply Q to {} children", child_rows.len()),
            Self::LeafQ => "block Q".into(),
        }
    }

    /// Runs the step.
    pub(crate) fn execute(&self, inputs: &[Pinned]) -> Result<Vec<Block>> {
        match (self, inputs) {
            (Self::Leaf | Self::Stack, _) if !inputs.is_empty() => {
                let cols = inputs[0].shape().1;
                let rows: usize = inputs.iter().map(|p| p.shape().0).sum();
                let mut a = Mat::<f64>::zeros(rows, cols);
                let mut row = 0;
                for p in inputs {
                    let (r, c) = p.shape();
                    if c != cols {
                        return Err(Error::Bug(format!("stacking a {r} x {c} block under {cols} columns")));
                    }
                    a.as_mut().submatrix_mut(row, 0, r, c).copy_from(view(p, r, c));
                    row += r;
                }
                let coeffs = qr_in_place(a.as_mut());
                Ok(vec![r_factor(a.as_ref(), rows.min(cols)), to_block(a.as_ref()), to_block(coeffs.as_ref())])
            }
            (Self::Identity { size }, []) => Ok(vec![to_block(Mat::<f64>::identity(*size, *size).as_ref())]),
            (Self::Apply { child_rows }, [factors, coeffs, w]) => {
                let product = apply(factors, coeffs, w)?;
                let mut row = 0;
                let mut outputs = Vec::with_capacity(child_rows.len());
                for &rows in child_rows {
                    outputs.push(to_block(product.as_ref().submatrix(row, 0, rows, product.ncols())));
                    row += rows;
                }
                Ok(outputs)
            }
            (Self::LeafQ, [factors, coeffs, w]) => Ok(vec![to_block(apply(factors, coeffs, w)?.as_ref())]),
            _ => Err(Error::Bug(format!("{} given {} inputs", self.label(), inputs.len()))),
        }
    }
}

fn apply(factors: &Pinned, coeffs: &Pinned, w: &Pinned) -> Result<Mat<f64>> {
    let (fr, fc) = factors.shape();
    let factors = view(factors, fr, fc).to_owned();
    let (cr, cc) = coeffs.shape();
    let (wr, wc) = w.shape();
    apply_q(factors.as_ref(), view(coeffs, cr, cc), view(w, wr, wc))
}

/// A built tree: where each node's outputs are, for the way down.
#[derive(Clone, Debug)]
pub(crate) struct BlockTree {
    /// `levels[0]` are the leaves (one per input block); each node is (task, rows of its R).
    levels: Vec<Vec<(TaskId, usize)>>,
    /// Children of each node above the leaves, as a range in the level below.
    children: Vec<Vec<std::ops::Range<usize>>>,
    cols: usize,
}

impl BlockTree {
    /// The root's R (`min(rows, cols) x cols`).
    pub(crate) fn r(&self) -> Key {
        self.levels.last().map_or(TaskId(0), |l| l[0].0).out(0)
    }

    /// Rows of the root's R.
    pub(crate) fn r_rows(&self) -> usize {
        self.levels.last().map_or(0, |l| l[0].1)
    }
}

/// Bytes of an `r x c` block.
const fn bytes(r: usize, c: usize) -> u64 {
    Block::bytes(r, c)
}

/// Adds the tree's way up: QR of each block (`blocks`: key and row count, `cols` columns), then
/// stacks of `fan_in` R factors until one is left, in the one reduction tree
/// ([`reduction_tree`]). A stack holds no more rows than the largest block (at least two R
/// factors): a wide basis stacks fewer at a time, so no task holds `fan_in` of its
/// `cols x cols` factors three times over.
pub(crate) fn build_up<O: Operation>(
    g: &mut TaskGraph<O>,
    wrap: &impl Fn(BlockQrOp) -> O,
    blocks: &[(Key, usize)],
    cols: usize,
    fan_in: usize,
) -> Result<BlockTree> {
    if blocks.is_empty() {
        return Err(Error::Bug("a block QR of no blocks".into()));
    }
    let largest = blocks.iter().map(|&(_, rows)| rows).max().unwrap_or(0);
    let fan_in = fan_in.min((largest / cols.max(1)).max(2));
    let mut levels = vec![Vec::new()];
    for &(key, rows) in blocks {
        let ws = 3 * bytes(rows, cols) + bytes(rows.min(cols), cols) + 2 * qr_scratch_bytes(rows, cols);
        let id = g.add(wrap(BlockQrOp::Leaf), vec![key], 3, ws)?;
        levels[0].push((id, rows.min(cols)));
    }
    let mut children = vec![Vec::new()];
    for ranges in reduction_tree(blocks.len(), fan_in) {
        let below = levels.last().cloned().unwrap_or_default();
        let mut level = Vec::new();
        for range in &ranges {
            let rows: usize = below[range.clone()].iter().map(|n| n.1).sum();
            let ws = 3 * bytes(rows, cols) + bytes(rows.min(cols), cols) + 2 * qr_scratch_bytes(rows, cols);
            let inputs = below[range.clone()].iter().map(|n| n.0.out(0)).collect();
            let id = g.add(wrap(BlockQrOp::Stack), inputs, 3, ws)?;
            level.push((id, rows.min(cols)));
        }
        levels.push(level);
        children.push(ranges);
    }
    Ok(BlockTree { levels, children, cols })
}

/// Adds the way down: `Q W` for `w` (`r_rows x w_cols`, keyed), one block per input block in
/// input order (each `rows_i x w_cols`).
pub(crate) fn build_down<O: Operation>(
    g: &mut TaskGraph<O>,
    wrap: &impl Fn(BlockQrOp) -> O,
    tree: &BlockTree,
    w: Key,
    w_cols: usize,
    leaf_rows: &[usize],
) -> Result<Vec<Key>> {
    let mut out = vec![None; leaf_rows.len()];
    down(g, wrap, tree, tree.levels.len() - 1, 0, w, w_cols, leaf_rows, &mut out)?;
    out.into_iter().map(|k| k.ok_or_else(|| Error::Bug("a leaf got no block of Q W".into()))).collect()
}

#[allow(clippy::too_many_arguments)]
fn down<O: Operation>(
    g: &mut TaskGraph<O>,
    wrap: &impl Fn(BlockQrOp) -> O,
    tree: &BlockTree,
    level: usize,
    node: usize,
    w: Key,
    w_cols: usize,
    leaf_rows: &[usize],
    out: &mut [Option<Key>],
) -> Result<()> {
    let (id, k) = tree.levels[level][node];
    if level == 0 {
        let rows = leaf_rows[node];
        let ws = 3 * bytes(rows, tree.cols) + 3 * bytes(rows, w_cols) + bytes(k, w_cols);
        let q = g.add(wrap(BlockQrOp::LeafQ), vec![id.out(1), id.out(2), w], 1, ws)?;
        out[node] = Some(q.out(0));
        return Ok(());
    }
    let range = tree.children[level][node].clone();
    let child_rows: Vec<usize> = range.clone().map(|c| tree.levels[level - 1][c].1).collect();
    let rows: usize = child_rows.iter().sum();
    let ws = 3 * bytes(rows, tree.cols) + 3 * bytes(rows, w_cols) + bytes(k, w_cols);
    let apply = g.add(wrap(BlockQrOp::Apply { child_rows }), vec![id.out(1), id.out(2), w], range.len(), ws)?;
    for (i, child) in range.enumerate() {
        down(g, wrap, tree, level - 1, child, apply.out(i), w_cols, leaf_rows, out)?;
    }
    Ok(())
}

/// Orthonormalizes row blocks: the way up, then Q itself (W = I) on the way down. Returns the
/// Q blocks (each `rows_i x min(total rows, cols)`) and the tree.
pub(crate) fn orthonormalize<O: Operation>(
    g: &mut TaskGraph<O>,
    wrap: &impl Fn(BlockQrOp) -> O,
    blocks: &[(Key, usize)],
    cols: usize,
    fan_in: usize,
) -> Result<(Vec<Key>, BlockTree)> {
    let tree = build_up(g, wrap, blocks, cols, fan_in)?;
    let size = tree.r_rows();
    let identity = g.add(wrap(BlockQrOp::Identity { size }), vec![], 1, bytes(size, size))?;
    let rows: Vec<usize> = blocks.iter().map(|b| b.1).collect();
    let q = build_down(g, wrap, &tree, identity.out(0), size, &rows)?;
    Ok((q, tree))
}
