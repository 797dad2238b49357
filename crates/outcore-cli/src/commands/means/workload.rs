//! The seed lesson's scheduler comparison: `calc_mean(i, n) = mean(normal(n))` for independent
//! tasks `i`, then the mean of the means, as a task graph.
//!
//! Task `i` draws from its own stream: a `Xoshiro256PlusPlus` seeded once and advanced by `i`
//! jumps of 2^128 steps, so streams never overlap and every task's result is the same whatever
//! the scheduler, worker count or order. Values are summed as they are drawn: unlike numpy's
//! `np.mean(np.random.normal(size=n))` no array of `n` values is ever allocated.
//!
//! Built on outcore's public task-graph API ([`outcore::graph`]), as any program's own work
//! would be.

use outcore::graph::{Block, Executor, Operation, TaskGraph, WorkerScratch};
use outcore::storage::{Pinned, Reservation, format_size};
use outcore::{Engine, Error, Knob, MemoryError, Result, RunControl, RunStats};
use rand_distr::{Distribution as _, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;

/// A step of the means workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MeansOp {
    /// The mean of `n` standard normals from stream `task`.
    Mean {
        /// The task (and stream) number.
        task: usize,
    },
    /// The mean of all the means.
    Combine,
}

impl Operation for MeansOp {
    fn stage(&self) -> &'static str {
        match self {
            Self::Mean { .. } => "calc_mean",
            Self::Combine => "mean of means",
        }
    }

    fn label(&self) -> String {
        match self {
            Self::Mean { task } => format!("calc_mean({task})"),
            Self::Combine => "mean of means".into(),
        }
    }

    /// Across MPI ranks, each rank computes its share of the means; the rank of the first
    /// combines them.
    fn row_block(&self) -> Option<usize> {
        match self {
            Self::Mean { task } => Some(*task),
            Self::Combine => None,
        }
    }
}

/// The stream of task `task`: the seed's stream jumped `task` times.
fn task_stream(seed: u64, task: usize) -> Xoshiro256PlusPlus {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for _ in 0..task {
        rng.jump();
    }
    rng
}

/// `mean(normal(n))` from stream `task`, computed directly (the reference for the graph).
fn calc_mean(seed: u64, task: usize, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let mut rng = task_stream(seed, task);
    let mut sum = 0.0;
    for _ in 0..n {
        let x: f64 = StandardNormal.sample(&mut rng);
        sum += x;
    }
    sum / n as f64
}

struct MeansExecutor {
    n: usize,
    seed: u64,
}

impl Executor for MeansExecutor {
    type Op = MeansOp;

    /// The seed and the draws per task.
    fn identity(&self) -> String {
        format!("means seed {} n {}", self.seed, self.n)
    }

    fn execute(
        &self,
        op: &MeansOp,
        inputs: &[Pinned],
        _budget: &mut Reservation,
        _scratch: &mut WorkerScratch,
    ) -> Result<Vec<Block>> {
        let value = match op {
            MeansOp::Mean { task } => calc_mean(self.seed, *task, self.n),
            MeansOp::Combine => inputs.iter().map(|p| p[0]).sum::<f64>() / inputs.len().max(1) as f64,
        };
        Ok(vec![Block { data: vec![value], rows: 1, cols: 1 }])
    }
}

/// The graph: `tasks` independent means, then their mean.
fn means_graph(tasks: usize) -> Result<TaskGraph<MeansOp>> {
    let mut g = TaskGraph::new();
    let means: Vec<_> = (0..tasks)
        .map(|task| g.add(MeansOp::Mean { task }, vec![], 1, Block::bytes(1, 1)).map(|t| t.out(0)))
        .collect::<Result<_>>()?;
    let combine = g.add(MeansOp::Combine, means, 1, Block::bytes(tasks + 1, 1))?;
    g.keep(combine.out(0));
    Ok(g)
}

/// Runs the workload: returns the mean of the means and what the run observed.
pub(super) fn run_means(
    engine: &Engine,
    tasks: usize,
    n: usize,
    seed: u64,
    control: &RunControl,
) -> Result<(f64, RunStats)> {
    if tasks == 0 {
        return Err(Error::invalid(Knob::Program("--tasks"), "0 tasks compute nothing; give 1 or more"));
    }
    // The graph's bookkeeping, and the combining task's input, grow with the task count:
    // refuse what the limit cannot hold before allocating any of it.
    let per_task = TaskGraph::<MeansOp>::task_bytes(0, 1) + 2 * Block::bytes(1, 1);
    let needed = (tasks as u64).saturating_mul(per_task);
    MemoryError::check_limit("the means workload", engine.memory_limit(), needed, || {
        format!("{tasks} tasks at {} each; give fewer --tasks", format_size(per_task))
    })?;
    let graph = means_graph(tasks)?;
    let (results, stats) = engine.run_graph(&graph, &MeansExecutor { n, seed }, control)?;
    let key = *graph.kept().first().ok_or_else(|| Error::Bug("the means graph keeps no result".into()))?;
    Ok((results.values(key)?[0], stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use outcore::Scheduler;

    #[test]
    fn equals_the_direct_single_threaded_computation_under_every_scheduler() {
        let direct = (0..37).map(|t| calc_mean(5, t, 1000)).sum::<f64>() / 37.0;
        for scheduler in [Scheduler::Serial, Scheduler::Threads { workers: 1 }, Scheduler::Threads { workers: 3 }] {
            let engine = Engine::builder().memory_limit(16 << 20).scheduler(scheduler).build().unwrap();
            let (mean, stats) = run_means(&engine, 37, 1000, 5, &RunControl::default()).unwrap();
            assert_eq!(mean.to_bits(), direct.to_bits(), "{scheduler:?}");
            assert_eq!(stats.tasks, 38);
        }
    }

    #[test]
    fn streams_differ_and_look_normal() {
        assert_ne!(calc_mean(1, 0, 100), calc_mean(1, 1, 100));
        let m = calc_mean(1, 3, 1_000_000);
        assert!(m.abs() < 0.005, "mean of a million standard normals: {m}");
    }
}
