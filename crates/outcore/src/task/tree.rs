//! The one reduction tree: TSQR's R factors of the panels, the randomized SVD's block QR and
//! its block sums all reduce in it. Its shape is a function of the leaf count and the fan-in
//! alone, so the bracketing of every reduction, and with it every bit of the result, is the same
//! under any scheduler, worker count or number of ranks: a run across ranks places the same
//! nodes on ranks (each where its first child was made) rather than reducing in a shape of its
//! own, as MPI's reductions would.
//!
//! ```text
//!  leaves   0 1 2 | 3 4 5 | 6 7      fan-in 3: groups of 3 consecutive nodes, the last smaller
//!  level 1   0..3 | 3..6  | 6..8
//!  level 2        0..3               up to a single root
//! ```

use std::ops::Range;

use crate::error::{Error, Result};

/// The levels above `leaves` leaves: each node's children, a range of the level below, in
/// groups of `fan_in` (at least 2) consecutive nodes, the last group smaller, up to one root.
/// A single leaf is its own root: no levels. Graphs of one's own reduce in this tree to get
/// the bracketing outcore's algorithms use.
///
/// ```
/// assert_eq!(outcore::graph::reduction_tree(5, 2), vec![vec![0..2, 2..4, 4..5], vec![0..2, 2..3], vec![0..2]]);
/// ```
pub fn levels(leaves: usize, fan_in: usize) -> Vec<Vec<Range<usize>>> {
    let fan_in = fan_in.max(2);
    let mut levels = Vec::new();
    let mut below = leaves;
    while below > 1 {
        let level: Vec<_> = (0..below.div_ceil(fan_in)).map(|i| i * fan_in..((i + 1) * fan_in).min(below)).collect();
        below = level.len();
        levels.push(level);
    }
    levels
}

/// Builds the tree over `leaves` leaves depth first: each leaf is made in order by
/// `leaf(context, j)`, and each node by `node(context, children)` right after its last child,
/// so at most `fan_in - 1` finished children wait per level. Returns the root.
pub(crate) fn fold<C, T>(
    context: &mut C,
    leaves: usize,
    fan_in: usize,
    mut leaf: impl FnMut(&mut C, usize) -> Result<T>,
    mut node: impl FnMut(&mut C, Vec<T>) -> Result<T>,
) -> Result<T> {
    fn walk<C, T>(
        levels: &[Vec<Range<usize>>],
        context: &mut C,
        level: usize,
        index: usize,
        leaf: &mut impl FnMut(&mut C, usize) -> Result<T>,
        node: &mut impl FnMut(&mut C, Vec<T>) -> Result<T>,
    ) -> Result<T> {
        if level == 0 {
            return leaf(context, index);
        }
        let children = levels[level - 1][index].clone();
        let made = children.map(|c| walk(levels, context, level - 1, c, leaf, node)).collect::<Result<Vec<_>>>()?;
        node(context, made)
    }
    if leaves == 0 {
        return Err(Error::Bug("a reduction of no leaves".into()));
    }
    let levels = levels(leaves, fan_in);
    walk(&levels, context, levels.len(), 0, &mut leaf, &mut node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_consecutive_nodes_by_fan_in_up_to_one_root() {
        assert!(levels(1, 3).is_empty());
        assert_eq!(levels(8, 3), vec![vec![0..3, 3..6, 6..8], vec![0..3]]);
        assert_eq!(levels(5, 2), vec![vec![0..2, 2..4, 4..5], vec![0..2, 2..3], vec![0..2]]);
        assert_eq!(levels(4, 1), levels(4, 2), "a fan-in below 2 is 2");
    }

    #[test]
    fn fold_makes_leaves_in_order_and_each_node_after_its_children() {
        let mut order = Vec::new();
        let root = fold(
            &mut order,
            5,
            2,
            |log, j| {
                log.push(format!("{j}"));
                Ok(format!("{j}"))
            },
            |log, kids| {
                let made = format!("({})", kids.join(" "));
                log.push(made.clone());
                Ok(made)
            },
        )
        .unwrap();
        assert_eq!(root, "(((0 1) (2 3)) ((4)))");
        assert_eq!(order, ["0", "1", "(0 1)", "2", "3", "(2 3)", "((0 1) (2 3))", "4", "(4)", "((4))", root.as_str()]);
        assert!(fold(&mut (), 0, 2, |_, _| Ok(()), |_, _| Ok(())).is_err());
    }
}
