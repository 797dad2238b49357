//! The task graph: tasks in priority order, the keys of their inputs, and their working
//! sets.

use super::op::Operation;
use crate::error::{Error, Result};

/// Position of a task in its graph (also its priority: lower runs first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub usize);

/// Output `slot` of task `task`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The producing task.
    pub task: TaskId,
    /// Which of its outputs.
    pub slot: usize,
}

impl TaskId {
    /// Output `slot` of this task.
    pub const fn out(self, slot: usize) -> Key {
        Key { task: self, slot }
    }
}

/// One unit of work.
#[derive(Debug)]
pub struct Task<O> {
    /// What to do.
    pub op: O,
    /// Outputs of earlier tasks this one reads, in the order the op expects them.
    pub inputs: Vec<Key>,
    /// Number of outputs.
    pub outputs: usize,
    /// Bytes the task may hold while it runs: reloaded inputs, chunk reads, scratch, outputs.
    pub working_set: u64,
    /// Of `working_set`, bytes of buffers the task takes from its worker's reusable scratch.
    pub reusable: u64,
    /// What it computes and reads, for rates (zero where not counted).
    pub work: Work,
}

/// What a task computes and reads: the flops of the textbook algorithm of its op (a
/// Householder QR of m x n, m >= n, counts 2mn^2 - 2n^3/3, as LAPACK-equivalent rates do; a
/// product of m x k by k x n counts 2mnk) and the bytes of input it reads from the store,
/// decoded (8 per value). Run events carry it, so that a dashboard can give the run's rates
/// against the machine's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Floating-point operations.
    pub flops: u64,
    /// Bytes of input read, decoded.
    pub read: u64,
}

impl Work {
    /// A Householder QR of `m x n`, reading `read` bytes.
    pub fn qr(m: usize, n: usize, read: u64) -> Self {
        let (long, short) = (m.max(n) as u64, m.min(n) as u64);
        Self { flops: (2 * long * short * short).saturating_sub(2 * short.pow(3) / 3), read }
    }

    /// The product of `m x k` by `k x n`, reading `read` bytes.
    pub fn product(m: usize, k: usize, n: usize, read: u64) -> Self {
        Self { flops: 2 * (m as u64) * (k as u64) * (n as u64), read }
    }

    /// Both (saturating: a total over a long run never wraps).
    pub fn and(self, other: Self) -> Self {
        Self { flops: self.flops.saturating_add(other.flops), read: self.read.saturating_add(other.read) }
    }
}

/// One stage of a graph (see [`TaskGraph::stage_graph`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Its name, [`Operation::stage`] of its tasks.
    pub name: &'static str,
    /// Its tasks (those counted).
    pub tasks: usize,
    /// The stages whose outputs its tasks read, by position.
    pub after: Vec<usize>,
}

/// A directed acyclic graph of tasks in priority order.
#[derive(Debug)]
pub struct TaskGraph<O> {
    tasks: Vec<Task<O>>,
    kept: Vec<Key>,
    max_concurrency: usize,
}

impl<O> Default for TaskGraph<O> {
    fn default() -> Self {
        Self { tasks: Vec::new(), kept: Vec::new(), max_concurrency: usize::MAX }
    }
}

impl<O: Operation> TaskGraph<O> {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a task after all existing ones; its inputs must be outputs of existing tasks.
    pub fn add(&mut self, op: O, inputs: Vec<Key>, outputs: usize, working_set: u64) -> Result<TaskId> {
        self.add_reusing(op, inputs, outputs, working_set, 0)
    }

    /// Adds a task that takes `reusable` of its `working_set` bytes from its worker's scratch.
    pub fn add_reusing(
        &mut self,
        op: O,
        inputs: Vec<Key>,
        outputs: usize,
        working_set: u64,
        reusable: u64,
    ) -> Result<TaskId> {
        if reusable > working_set {
            return Err(Error::Bug(format!("task {} reuses {reusable} of only {working_set} bytes", op.label())));
        }
        for key in &inputs {
            let valid = self.tasks.get(key.task.0).is_some_and(|t| key.slot < t.outputs);
            if !valid {
                return Err(Error::Bug(format!("task {} reads {key:?}, which no earlier task produces", op.label())));
            }
        }
        self.tasks.push(Task { op, inputs, outputs, working_set, reusable, work: Work::default() });
        Ok(TaskId(self.tasks.len() - 1))
    }

    /// Says what task `id` computes and reads (see [`Work`]).
    pub fn set_work(&mut self, id: TaskId, work: Work) {
        if let Some(task) = self.tasks.get_mut(id.0) {
            task.work = work;
        }
    }

    /// Marks an output as a result: it is kept after the run instead of freed.
    pub fn keep(&mut self, key: Key) {
        self.kept.push(key);
    }

    /// Caps how many tasks may run at once, whatever the worker count: a plan that knows only
    /// `n` working sets fit under the memory limit says so here.
    pub fn set_max_concurrency(&mut self, n: usize) {
        self.max_concurrency = n.max(1);
    }

    /// The cap on tasks running at once.
    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// The tasks in priority order.
    pub fn tasks(&self) -> &[Task<O>] {
        &self.tasks
    }

    /// The outputs kept as results.
    pub fn kept(&self) -> &[Key] {
        &self.kept
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The largest working set of any task.
    pub fn max_working_set(&self) -> u64 {
        self.tasks.iter().map(|t| t.working_set).max().unwrap_or(0)
    }

    /// Bytes the graph and a run's bookkeeping of it hold while it runs: the tasks, their input
    /// lists, and per task the scheduler's counters, dependents and block slots (ops are plain
    /// values held in the task). A run reserves this up front, so a plan counts it like any
    /// working set.
    pub fn footprint(&self) -> u64 {
        let bytes: u64 = self.tasks.iter().map(|t| Self::task_bytes(t.inputs.capacity(), t.outputs)).sum();
        bytes + ((self.tasks.capacity() - self.tasks.len()) * size_of::<Task<O>>()) as u64
    }

    /// Bytes one task with `inputs` inputs and `outputs` outputs adds to the
    /// [`footprint`](Self::footprint): lets a builder refuse a graph too large for the limit
    /// before allocating it.
    pub fn task_bytes(inputs: usize, outputs: usize) -> u64 {
        const VEC: usize = size_of::<Vec<usize>>();
        let per_task = size_of::<Task<O>>() + 3 * VEC + 2 * size_of::<usize>();
        let per_input = size_of::<Key>() + size_of::<usize>();
        let per_output = size_of::<usize>() + size_of::<Option<u64>>() + size_of::<Key>();
        (per_task + inputs * per_input + outputs * per_output) as u64
    }

    /// Task count per stage, in order of first appearance.
    pub fn stages(&self) -> Vec<(&'static str, usize)> {
        self.stage_graph(|_| true).into_iter().map(|s| (s.name, s.tasks)).collect()
    }

    /// The stages in order of first appearance, each with the tasks `counted` selects (a rank
    /// counts its own) and the stages whose outputs it reads: the graph at the scale of a
    /// picture, whatever its size.
    pub fn stage_graph(&self, counted: impl Fn(TaskId) -> bool) -> Vec<Stage> {
        let mut stages: Vec<Stage> = Vec::new();
        let mut of_task = Vec::with_capacity(self.tasks.len());
        for (i, task) in self.tasks.iter().enumerate() {
            let name = task.op.stage();
            let s = match stages.iter().position(|s| s.name == name) {
                Some(s) => s,
                None => {
                    stages.push(Stage { name, tasks: 0, after: Vec::new() });
                    stages.len() - 1
                }
            };
            of_task.push(s);
            stages[s].tasks += usize::from(counted(TaskId(i)));
            for key in &task.inputs {
                let from = of_task[key.task.0];
                if from != s && !stages[s].after.contains(&from) {
                    stages[s].after.push(from);
                }
            }
        }
        stages
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[derive(Debug)]
    pub(crate) struct Step(pub &'static str, pub usize);

    impl Operation for Step {
        fn stage(&self) -> &'static str {
            self.0
        }
        fn label(&self) -> String {
            format!("{} {}", self.0, self.1)
        }
    }

    #[test]
    fn refuses_inputs_from_the_future_and_counts_stages() {
        let mut g = TaskGraph::new();
        let a = g.add(Step("load", 0), vec![], 1, 10).unwrap();
        let b = g.add(Step("load", 1), vec![], 1, 30).unwrap();
        g.add(Step("sum", 0), vec![a.out(0), b.out(0)], 1, 5).unwrap();
        assert!(g.add(Step("bad", 0), vec![TaskId(9).out(0)], 1, 0).is_err());
        assert!(g.add(Step("bad", 0), vec![a.out(1)], 1, 0).is_err());
        assert_eq!(g.stages(), vec![("load", 2), ("sum", 1)]);
        let stages = g.stage_graph(|t| t.0 != 0);
        assert_eq!(stages[0], Stage { name: "load", tasks: 1, after: vec![] });
        assert_eq!(stages[1], Stage { name: "sum", tasks: 1, after: vec![0] });
        assert_eq!(g.max_working_set(), 30);
    }
}
