//! MPI's world communicator as a [`Transport`] (the `mpi` feature, rsmpi over the MPI library
//! `mpicc` names: Open MPI, MPICH, a site's MPI).

use std::sync::Mutex;

use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};

use super::Transport;
use crate::{Error, Result};

/// Environment variables by which launchers say how many tasks they started, in the order
/// read: Open MPI's `mpirun`, PMI-1/2 launchers (MPICH's hydra, `srun --mpi=pmi2`), Slurm's
/// `srun` (set for the job step, not for a batch script itself).
const TASK_COUNTS: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"];

/// Variables present only in a process some launcher started as one of its tasks.
const LAUNCHED: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMIX_RANK", "SLURM_STEP_NUM_TASKS"];

/// The number of tasks the launcher that started this process says it started, and the
/// variable that says it; `None` when no launcher started this process (a plain run).
pub fn launcher_tasks() -> Option<(&'static str, usize)> {
    if !LAUNCHED.iter().any(|v| std::env::var_os(v).is_some()) {
        return None;
    }
    let counted = TASK_COUNTS.iter().find_map(|v| std::env::var(v).ok().and_then(|n| n.parse().ok()).map(|n| (*v, n)));
    Some(counted.unwrap_or(("PMIX_RANK", 1)))
}

/// The world of an MPI job: this process's rank among all processes the launcher started.
/// Joining initializes MPI (funneled: every MPI call comes from the thread that joined, the one
/// that runs the engine's runs); dropping the last handle finalizes it.
pub struct MpiWorld {
    rank: usize,
    ranks: usize,
    /// Finalizes MPI when dropped, if this handle initialized it.
    _universe: Mutex<Option<Universe>>,
}

impl MpiWorld {
    /// Joins the job's world, initializing MPI unless the program already did. Refuses a world
    /// of one rank when the launcher started several tasks: each would compute alone (an MPI
    /// library that does not match the launcher, such as an MPICH build under
    /// `srun --mpi=pmix`, starts every task as a singleton).
    pub fn join() -> Result<Self> {
        let universe = if mpi::environment::is_initialized() {
            None
        } else {
            let (universe, _threading) = mpi::initialize_with_threading(mpi::Threading::Funneled)
                .ok_or_else(|| Error::Bug("MPI was initialized while this rank joined".into()))?;
            Some(universe)
        };
        let world = SimpleCommunicator::world();
        let (rank, ranks) = (world.rank() as usize, world.size() as usize);
        if let Some((variable, tasks)) = launcher_tasks().filter(|&(_, tasks)| tasks > 1 && ranks == 1) {
            return Err(Error::invalid(
                "ranks",
                format!(
                    "the launcher started {tasks} tasks ({variable}={tasks}) but MPI sees a world of 1 rank, so each task would compute alone: this binary's MPI does not match the launcher's. Build it against the MPI the launcher belongs to (`MPICC=<that mpicc> cargo build --release --features mpi`), or give srun the plugin that MPI speaks (`--mpi=pmix` for Open MPI, `--mpi=pmi2` for MPICH)"
                ),
            ));
        }
        Ok(Self { rank, ranks, _universe: Mutex::new(universe) })
    }
}

impl Transport for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.ranks
    }

    fn send(&self, to: usize, message: &[u8]) -> Result<()> {
        if i32::try_from(message.len()).is_err() {
            return Err(Error::Bug(format!("a message of {} bytes exceeds what one MPI send carries", message.len())));
        }
        let to = i32::try_from(to).map_err(|_| Error::Bug(format!("no rank {to}")))?;
        SimpleCommunicator::world().process_at_rank(to).send(message);
        Ok(())
    }

    fn receive(&self, from: usize) -> Result<Vec<u8>> {
        let from = i32::try_from(from).map_err(|_| Error::Bug(format!("no rank {from}")))?;
        let (message, _status) = SimpleCommunicator::world().process_at_rank(from).receive_vec::<u8>();
        Ok(message)
    }
}
