//! MPI's world communicator as a [`Transport`] (the `mpi` feature, rsmpi over the MPI library
//! `mpicc` names: Open MPI, MPICH, a site's MPI).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};

use super::launch::launcher_tasks;
use super::transport::Transport;
use outcore_storage::Knob;

use crate::error::{Error, Result};
use crate::task::CancelToken;

/// The world of an MPI job: this process's rank among all processes the launcher started.
/// Joining initializes MPI unless the program did, funneled: every MPI call must come from the
/// thread that joined (run the engine's runs on it; calls from another thread are refused), and
/// one run at a time (the messages of two runs at once would mix). Dropping the handle that
/// initialized MPI finalizes it, unless [`stop_on`](Self::stop_on)'s token was cancelled.
pub struct MpiWorld {
    rank: usize,
    ranks: usize,
    thread: std::thread::ThreadId,
    /// Ends every wait for another rank when cancelled ([`stop_on`](Self::stop_on)).
    cancel: Option<CancelToken>,
    /// When a wait first saw the cancellation.
    cancel_seen: std::sync::OnceLock<std::time::Instant>,
    /// A wait was cut short: a rank may be gone, so MPI is not finalized (which would wait
    /// for it).
    abandoned: AtomicBool,
    /// Finalizes MPI when dropped, if this handle initialized it (and no wait was abandoned).
    universe: Mutex<Option<Universe>>,
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
                    Knob::Ranks,
                    "this MPI library supports no threads beside MPI's (MPI_THREAD_SINGLE), which outcore's workers need; use an MPI built with thread support",
                ));
            }
            Some(universe)
        };
        let world = SimpleCommunicator::world();
        let (rank, ranks) = (world.rank() as usize, world.size() as usize);
        if let Some((variable, tasks)) = launcher_tasks().filter(|&(_, tasks)| tasks > 1 && ranks == 1) {
            return Err(Error::invalid(
                Knob::Ranks,
                format!(
                    "the launcher started {tasks} tasks ({variable}={tasks}) but MPI sees a world of 1 rank, so each task would compute alone: this binary's MPI does not match the launcher's. Build it against the MPI the launcher belongs to (`MPICC=<that mpicc> cargo build --release --features mpi`), or give srun the plugin that MPI speaks (`--mpi=pmix` for Open MPI, `--mpi=pmi2` for MPICH)"
                ),
            ));
        }
        Ok(Self {
            rank,
            ranks,
            thread: std::thread::current().id(),
            cancel: None,
            cancel_seen: std::sync::OnceLock::new(),
            abandoned: AtomicBool::new(false),
            universe: Mutex::new(universe),
        })
    }

    /// Ends every wait for another rank (a message to receive, a send to complete) with
    /// [`Error::Interrupted`] a quarter of a second after `cancel` is cancelled: a rank whose
    /// peer died waits for a message that never comes, and a launcher's SIGTERM must still stop
    /// it. Give it the token the signal handler cancels. Once it is cancelled MPI is not
    /// finalized (that would wait for the peer too, and for ranks the launcher is stopping).
    #[must_use]
    pub fn stop_on(mut self, cancel: CancelToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Whether a wait should stop: cancelled, and for [`GRACE`] since a wait first saw it, in
    /// which ranks that are alive and cancelled too answer as they wind down together; then
    /// every later wait stops at once. If so, MPI will not be finalized.
    fn give_up(&self) -> bool {
        if self.abandoned.load(Ordering::SeqCst) {
            return true;
        }
        if !self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            return false;
        }
        let stop = self.cancel_seen.get_or_init(std::time::Instant::now).elapsed() >= GRACE;
        if stop {
            self.abandoned.store(true, Ordering::SeqCst);
        }
        stop
    }

    /// Refuses a call from a thread other than the one that joined (MPI is funneled).
    fn check_thread(&self) -> Result<()> {
        if std::thread::current().id() != self.thread {
            return Err(Error::invalid(
                Knob::Ranks,
                "MPI calls must come from the thread that joined the job (MPI runs funneled); start the engine's runs on that thread",
            ));
        }
        Ok(())
    }
}

/// The largest piece of a message one MPI call carries (its counts are 32-bit); longer
/// messages go in pieces, the first led by the message's length. `OUTCORE_MPI_PIECE_BYTES` sets a smaller piece, a
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

/// How long a wait goes on once the run is cancelled: the other ranks, cancelled by the same
/// signal, answer within it as they stop; a dead one never does. Well under the second Open
/// MPI (and Slurm's KillWait at least) leaves between its SIGTERM and its SIGKILL.
const GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// Waits between polls of a pending message: MPI's blocking calls spin on a core while they
/// wait, and the rank's workers need that core (a rank may wait for an R factor for most of a
/// run), so the calling thread polls: yielding the core for the first 50 µs (a message about to
/// arrive is taken at once), then sleeping 50 µs between polls up to 2 ms of waiting, 200 µs up
/// to 20 ms, and 2 ms beyond: waking often for a whole run costs the workers their core
/// (docs/decisions.md).
struct Pause(std::time::Instant);

impl Pause {
    fn new() -> Self {
        Self(std::time::Instant::now())
    }

    fn sleep(&self) {
        let waited = self.0.elapsed().as_micros();
        let sleep = match waited {
            0..50 => return std::thread::yield_now(),
            50..2_000 => 50,
            2_000..20_000 => 200,
            _ => 2_000,
        };
        std::thread::sleep(std::time::Duration::from_micros(sleep));
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
        // The first piece leads with the message's length.
        let piece = piece_bytes();
        let (head, rest) = message.split_at(message.len().min(piece - 8));
        let mut first = Vec::with_capacity(8 + head.len());
        first.extend_from_slice(&(message.len() as u64).to_le_bytes());
        first.extend_from_slice(head);
        for piece in std::iter::once(&first[..]).chain(rest.chunks(piece)) {
            let cancelled = mpi::request::scope(|scope| {
                let mut request = peer.immediate_send(scope, piece);
                let pause = Pause::new();
                let mut cancelled = false;
                // A request cannot be left pending (MPI may still read the piece): once
                // cancelled it is asked to stop, and completes either way.
                while let Err(pending) = request.test() {
                    request = pending;
                    if !cancelled && self.give_up() {
                        request.cancel();
                        cancelled = true;
                    }
                    pause.sleep();
                }
                cancelled
            });
            if cancelled {
                return Err(Error::Interrupted);
            }
        }
        Ok(())
    }

    fn receive(&self, from: usize) -> Result<Vec<u8>> {
        self.check_thread()?;
        let from_rank = i32::try_from(from).map_err(|_| Error::Bug(format!("no rank {from}")))?;
        let world = SimpleCommunicator::world();
        let peer = world.process_at_rank(from_rank);
        let next = || {
            let pause = Pause::new();
            while peer.immediate_probe().is_none() {
                if self.give_up() {
                    return Err(Error::Interrupted);
                }
                pause.sleep();
            }
            Ok(peer.receive_vec::<u8>().0)
        };
        let mut message = next()?;
        let length =
            message.get(..8).and_then(|h| h.try_into().ok()).map(u64::from_le_bytes).ok_or_else(|| Error::Cluster {
                rank: from,
                message: format!("sent a message of {} bytes without its length", message.len()).into(),
                bug: true,
            })?;
        let length = usize::try_from(length).map_err(|_| Error::Bug(format!("a message of {length} bytes")))?;
        message.drain(..8);
        message.reserve(length.saturating_sub(message.len()));
        while message.len() < length {
            message.extend(next()?);
        }
        Ok(message)
    }
}

impl Drop for MpiWorld {
    fn drop(&mut self) {
        let universe = self.universe.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let cancelled = self.cancel.as_ref().is_some_and(CancelToken::is_cancelled);
        if cancelled || self.abandoned.load(Ordering::SeqCst) {
            // Finalizing waits for every rank, and one may be gone, or be stopping too while
            // the launcher no longer lets the ranks meet: the process exits without.
            std::mem::forget(universe);
        }
    }
}
