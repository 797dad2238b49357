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
    if leaves == 0 {
        return Err(Error::Bug("a reduction of no leaves".into()));
    }
    let mut folding = Folding::new(leaves, fan_in);
    for j in 0..leaves {
        let made = leaf(context, j)?;
        folding.push(context, made, &mut node)?;
    }
    folding.root()
}

/// The reduction tree built as its leaves come: each [`push`](Self::push) adds the next leaf
/// and makes every node whose last child it completes, so nodes can be numbered among the
/// tasks that make later leaves (and run, and free their children, before those). [`fold`] is
/// this with the leaves made by a closure.
pub(crate) struct Folding<T> {
    levels: Vec<Vec<Range<usize>>>,
    /// Per level (leaves first), the finished nodes no parent has taken yet.
    pending: Vec<Vec<T>>,
    /// Per level, how many of its groups have become parents.
    grouped: Vec<usize>,
}

impl<T> Folding<T> {
    /// A tree over `leaves` leaves of `fan_in`.
    pub(crate) fn new(leaves: usize, fan_in: usize) -> Self {
        let levels = levels(leaves, fan_in);
        let depth = levels.len() + 1;
        Self { levels, pending: (0..depth).map(|_| Vec::new()).collect(), grouped: vec![0; depth] }
    }

    /// Adds the next leaf, then makes each node it completes with `node(context, children)`.
    pub(crate) fn push<C>(
        &mut self,
        context: &mut C,
        leaf: T,
        mut node: impl FnMut(&mut C, Vec<T>) -> Result<T>,
    ) -> Result<()> {
        self.pending[0].push(leaf);
        for level in 0..self.levels.len() {
            let Some(group) = self.levels[level].get(self.grouped[level]) else { break };
            if self.pending[level].len() < group.len() {
                break;
            }
            let children = std::mem::take(&mut self.pending[level]);
            self.grouped[level] += 1;
            let parent = node(context, children)?;
            self.pending[level + 1].push(parent);
        }
        Ok(())
    }

    /// The root, once every leaf was pushed.
    pub(crate) fn root(mut self) -> Result<T> {
        let mut top = self.pending.pop().unwrap_or_default().into_iter();
        match (top.next(), top.next()) {
            (Some(root), None) => Ok(root),
            _ => Err(Error::Bug("a reduction's root asked before its last leaf".into())),
        }
    }
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
    fn folding_makes_the_tree_of_levels_each_node_right_after_its_last_child() {
        /// The nodes of `levels`' tree under node `index` of `level`, depth first, children
        /// before parents; returns that node.
        fn walk(levels: &[Vec<Range<usize>>], level: usize, index: usize, made: &mut Vec<String>) -> String {
            if level == 0 {
                return index.to_string();
            }
            let children: Vec<String> =
                levels[level - 1][index].clone().map(|c| walk(levels, level - 1, c, made)).collect();
            let node = format!("({})", children.join(" "));
            made.push(node.clone());
            node
        }
        let join = |made: &mut Vec<String>, children: Vec<String>| {
            let node = format!("({})", children.join(" "));
            made.push(node.clone());
            Ok(node)
        };
        for (leaves, fan_in) in [(1, 2), (2, 2), (5, 2), (8, 3), (10, 4), (7, 7), (30, 8)] {
            let tree = levels(leaves, fan_in);
            let mut want = Vec::new();
            let root = walk(&tree, tree.len(), 0, &mut want);
            let mut made = Vec::new();
            let mut folding = Folding::new(leaves, fan_in);
            for j in 0..leaves {
                folding.push(&mut made, j.to_string(), join).unwrap();
            }
            assert_eq!(folding.root().unwrap(), root, "{leaves} leaves, fan-in {fan_in}");
            assert_eq!(made, want, "nodes made in the order of a depth-first walk");
        }
        assert!(Folding::<u8>::new(3, 2).root().is_err(), "no leaves pushed");
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
