//! Which rank runs each task of a graph, and the messages that follow from it.

use std::hash::{Hash, Hasher};

use crate::task::{Key, Operation, TaskGraph};

/// A block made on rank `from` and read on rank `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) key: Key,
    pub(crate) from: usize,
    pub(crate) to: usize,
}

/// Where the tasks of one graph run in a job of `ranks` ranks, seen from rank `me`.
#[derive(Debug)]
pub(crate) struct Placement {
    pub(crate) me: usize,
    pub(crate) ranks: usize,
    owner: Vec<usize>,
    /// Every message of the run, in the order all ranks walk them: by the task that makes the
    /// block, so a block depends only on blocks before it.
    pub(crate) messages: Vec<Message>,
}

impl Placement {
    /// Row blocks are split into `ranks` contiguous ranges (rank 0's the smallest when they do
    /// not divide, none when there are fewer blocks than ranks); a task reading or writing a row
    /// block runs on its owner, any other task where its first input was made (rank 0 for tasks
    /// without), so the tree's root runs where the first row block is. Kept results are sent
    /// to rank 0.
    pub(crate) fn new<O: Operation>(graph: &TaskGraph<O>, ranks: usize, me: usize) -> Self {
        let ranks = ranks.max(1);
        let tasks = graph.tasks();
        let blocks = tasks.iter().filter_map(|t| t.op.row_block()).max().map_or(0, |b| b + 1);
        // Rank r owns row blocks r * blocks / ranks .. (r + 1) * blocks / ranks.
        let owner_of_block = |b: usize| (0..ranks).rev().find(|&r| r * blocks / ranks <= b).unwrap_or(0);
        let mut owner = Vec::with_capacity(tasks.len());
        for task in tasks {
            let o = match (task.op.row_block(), task.inputs.first()) {
                (Some(b), _) => owner_of_block(b),
                (None, Some(first)) => owner[first.task.0],
                (None, None) => 0,
            };
            owner.push(o);
        }
        let mut messages = Vec::new();
        for (i, task) in tasks.iter().enumerate() {
            for key in &task.inputs {
                messages.push(Message { key: *key, from: owner[key.task.0], to: owner[i] });
            }
        }
        for key in graph.kept() {
            messages.push(Message { key: *key, from: owner[key.task.0], to: 0 });
        }
        messages.retain(|m| m.from != m.to);
        messages.sort_by_key(|m| (m.key, m.to));
        messages.dedup();
        Self { me, ranks, owner, messages }
    }

    /// Whether task `task` runs on this rank.
    pub(crate) fn runs_here(&self, task: usize) -> bool {
        self.owner[task] == self.me
    }

    /// The rank that runs task `task`.
    pub(crate) fn owner(&self, task: usize) -> usize {
        self.owner[task]
    }
}

/// A digest of everything that decides a graph's results and placement (the graph, and what its
/// executor says of itself: seeds, options): ranks compare it before any work, so ranks given
/// different inputs or options refuse together instead of exchanging blocks of different
/// computations.
pub(crate) fn fingerprint<O: Operation>(graph: &TaskGraph<O>, executor: &str) -> u64 {
    // SipHash with fixed keys: the same on every rank running the same binary.
    let mut h = std::hash::DefaultHasher::new();
    executor.hash(&mut h);
    graph.len().hash(&mut h);
    for task in graph.tasks() {
        task.op.label().hash(&mut h);
        task.op.row_block().hash(&mut h);
        task.inputs.hash(&mut h);
        (task.outputs, task.working_set, task.reusable).hash(&mut h);
    }
    graph.kept().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Op(Option<usize>, &'static str);

    impl Operation for Op {
        fn stage(&self) -> &'static str {
            "test"
        }
        fn label(&self) -> String {
            self.1.into()
        }
        fn row_block(&self) -> Option<usize> {
            self.0
        }
    }

    /// Five panels under a fan-in-2 tree, on three ranks (rank 0 owns one panel, ranks 1 and 2
    /// two each).
    #[test]
    fn panels_split_contiguously_and_nodes_follow_their_first_child() {
        let mut g = TaskGraph::new();
        let p: Vec<_> = (0..5).map(|b| g.add(Op(Some(b), "panel"), vec![], 1, 1).unwrap()).collect();
        let n01 = g.add(Op(None, "n01"), vec![p[0].out(0), p[1].out(0)], 1, 1).unwrap();
        let n23 = g.add(Op(None, "n23"), vec![p[2].out(0), p[3].out(0)], 1, 1).unwrap();
        let top = g.add(Op(None, "top"), vec![n01.out(0), n23.out(0), p[4].out(0)], 1, 1).unwrap();
        g.keep(top.out(0));
        let place = Placement::new(&g, 3, 1);
        let owners: Vec<_> = (0..g.len()).map(|t| place.owner(t)).collect();
        assert_eq!(owners, vec![0, 1, 1, 2, 2, 0, 1, 0]);
        assert!(place.runs_here(n23.0) && !place.runs_here(n01.0));
        let sent: Vec<_> = place.messages.iter().map(|m| (m.key.task.0, m.from, m.to)).collect();
        assert_eq!(sent, vec![(1, 1, 0), (3, 2, 1), (4, 2, 0), (6, 1, 0)]);
        // One rank: nothing to send.
        assert!(Placement::new(&g, 1, 0).messages.is_empty());
        assert_ne!(fingerprint(&g, ""), {
            let mut other = TaskGraph::new();
            other.add(Op(Some(0), "panel"), vec![], 1, 1).unwrap();
            fingerprint(&other, "")
        });
        assert_ne!(fingerprint(&g, "seed 1"), fingerprint(&g, "seed 2"), "the executor's identity counts");
    }
}
