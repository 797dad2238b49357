//! MPI's world communicator as a [`Transport`] (the `mpi` feature, rsmpi over the MPI library
//! `mpicc` names: Open MPI, MPICH, a site's MPI).

use std::sync::Mutex;

use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};

use super::{Transport, launcher_tasks};
use crate::{Error, Result};

/// The world of an MPI job: this process's rank among all processes the launcher started.
/// Joining initializes MPI unless the program did, funneled: every MPI call must come from the
/// thread that joined (run the engine's runs on it; calls from another thread are refused), and
/// one run at a time (the messages of two runs at once would mix). Dropping the handle that
/// initialized MPI finalizes it.
pub struct MpiWorld {
    rank: usize,
    ranks: usize,
    thread: std::thread::ThreadId,
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
            let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Funneled)
                .ok_or_else(|| Error::Bug("MPI was initialized while this rank joined".into()))?;
            if threading < mpi::Threading::Funneled {
                return Err(Error::invalid(
                    "launch",
                    "this MPI library supports no threads beside MPI's (MPI_THREAD_SINGLE), which outcore's workers need; use an MPI built with thread support",
                ));
            }
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
        Ok(Self { rank, ranks, thread: std::thread::current().id(), _universe: Mutex::new(universe) })
    }

    /// Refuses a call from a thread other than the one that joined (MPI is funneled).
    fn check_thread(&self) -> Result<()> {
        if std::thread::current().id() != self.thread {
            return Err(Error::invalid(
                "cluster",
                "MPI calls must come from the thread that joined the job (MPI runs funneled); start the engine's runs on that thread",
            ));
        }
        Ok(())
    }
}

/// The largest piece of a message one MPI call carries (its counts are 32-bit); longer
/// messages go as a length, then pieces. `OUTCORE_MPI_PIECE_BYTES` sets a smaller piece, a
/// testing hook that makes small runs take the path of large messages.
const PIECE: usize = 1 << 30;

fn piece_bytes() -> usize {
    std::env::var("OUTCORE_MPI_PIECE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(PIECE)
        .min(PIECE)
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
        self.check_thread()?;
        let to = i32::try_from(to).map_err(|_| Error::Bug(format!("no rank {to}")))?;
        let world = SimpleCommunicator::world();
        let peer = world.process_at_rank(to);
        let length = (message.len() as u64).to_le_bytes();
        for piece in std::iter::once(&length[..]).chain(message.chunks(piece_bytes())) {
            mpi::request::scope(|scope| {
                let mut request = peer.immediate_send(scope, piece);
                let mut pause = Pause::new();
                while let Err(pending) = request.test() {
                    request = pending;
                    pause.sleep();
                }
            });
        }
        Ok(())
    }

    fn receive(&self, from: usize) -> Result<Vec<u8>> {
        self.check_thread()?;
        let from_rank = i32::try_from(from).map_err(|_| Error::Bug(format!("no rank {from}")))?;
        let world = SimpleCommunicator::world();
        let peer = world.process_at_rank(from_rank);
        let next = || {
            let mut pause = Pause::new();
            while peer.immediate_probe().is_none() {
                pause.sleep();
            }
            peer.receive_vec::<u8>().0
        };
        let header = next();
        let length = header.as_slice().try_into().map(u64::from_le_bytes).map_err(|_| Error::Cluster {
            rank: from,
            message: format!("sent a message header of {} bytes", header.len()),
            bug: true,
        })?;
        let length = usize::try_from(length).map_err(|_| Error::Bug(format!("a message of {length} bytes")))?;
        let mut message = Vec::with_capacity(length);
        while message.len() < length {
            message.extend(next());
        }
        Ok(message)
    }
}
