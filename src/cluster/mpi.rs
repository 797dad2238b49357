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

/// Waits between polls of a pending message: MPI's blocking calls spin on a core while they
/// wait, and the rank's workers need that core (a rank may wait for an R factor for most of a
/// run), so the calling thread polls: first yielding the core (a message about to arrive is
/// taken within microseconds), then sleeping from 50 µs up to 2 ms between polls. Waking every
/// 200 µs at most cost the workers 10% on a 2-core box (2,000,000 x 100 on 2 ranks: 2.21 s
/// against 2.04-2.10 s with 2 ms; threads 1.96-2.00 s).
struct Pause {
    yields: u32,
    sleep: std::time::Duration,
}

impl Pause {
    /// Polls that only yield before the first sleep.
    const YIELDS: u32 = 64;

    fn new() -> Self {
        Self { yields: 0, sleep: std::time::Duration::from_micros(50) }
    }

    fn sleep(&mut self) {
        if self.yields < Self::YIELDS {
            self.yields += 1;
            std::thread::yield_now();
            return;
        }
        std::thread::sleep(self.sleep);
        self.sleep = (self.sleep * 2).min(std::time::Duration::from_millis(2));
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
        let world = SimpleCommunicator::world();
        mpi::request::scope(|scope| {
            let mut request = world.process_at_rank(to).immediate_send(scope, message);
            let mut pause = Pause::new();
            while let Err(pending) = request.test() {
                request = pending;
                pause.sleep();
            }
        });
        Ok(())
    }

    fn receive(&self, from: usize) -> Result<Vec<u8>> {
        let from = i32::try_from(from).map_err(|_| Error::Bug(format!("no rank {from}")))?;
        let world = SimpleCommunicator::world();
        let peer = world.process_at_rank(from);
        let mut pause = Pause::new();
        while peer.immediate_probe().is_none() {
            pause.sleep();
        }
        let (message, _status) = peer.receive_vec::<u8>();
        Ok(message)
    }
}
