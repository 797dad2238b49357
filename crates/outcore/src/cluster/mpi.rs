//! MPI's world communicator as a [`Transport`] (the `mpi` feature, rsmpi over the MPI library
//! `mpicc` names: Open MPI, MPICH, a site's MPI).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::request::{LocalScope, Request};
use mpi::topology::{Communicator, SimpleCommunicator};

use super::launch::launcher_tasks;
use super::liveness::{GONE, Liveness};
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
    /// Whether the other ranks' processes live (none in a world of one, or where this rank
    /// cannot listen).
    liveness: Option<Liveness>,
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
        let mut world = Self {
            rank,
            ranks,
            thread: std::thread::current().id(),
            cancel: None,
            cancel_seen: std::sync::OnceLock::new(),
            abandoned: AtomicBool::new(false),
            liveness: None,
            universe: Mutex::new(universe),
        };
        if ranks > 1 {
            world.watch_ranks()?;
        }
        Ok(world)
    }

    /// Every rank starts its liveness listener and learns the others' (a collective of the
    /// join): from then on a wait for a rank whose process ended stops with an error naming it,
    /// without the launcher's signal (which `srun` without `-K` never sends).
    fn watch_ranks(&mut self) -> Result<()> {
        let liveness = Liveness::listen();
        let mine = liveness.as_ref().map(Liveness::introduction).unwrap_or_default();
        let all = super::gather(self, mine.into_bytes())?
            .map(|parts| parts.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>().join("\n"));
        let all = super::agree(self, Ok(all.unwrap_or_default().into_bytes()))?;
        if let Some(liveness) = &liveness {
            liveness.meet(self.rank, &String::from_utf8_lossy(&all));
        }
        self.liveness = liveness;
        Ok(())
    }

    /// Whether a wait for `rank` should stop because its process ended: gone for [`GONE`]
    /// (a message it sent just before it ended may still be on its way). Watching starts once
    /// a wait has lasted [`WATCH_AFTER`]. If so, MPI will not be finalized.
    fn lost(&self, rank: usize, pause: &Pause) -> Result<()> {
        let watch = pause.0.elapsed() >= WATCH_AFTER;
        let Some(liveness) = &self.liveness else { return Ok(()) };
        if liveness.gone(rank, watch).is_none_or(|t| t.elapsed() < GONE) {
            return Ok(());
        }
        liveness.lose(rank);
        self.abandoned.store(true, Ordering::SeqCst);
        Err(Error::Cluster {
            rank,
            message:
                "its process ended before the run did (killed, out of memory or crashed: the launcher's log says which)"
                    .into(),
            bug: false,
        })
    }

    /// Ends every wait for another rank (a message to receive, a send to complete) with
    /// [`Error::Interrupted`] a quarter of a second after `cancel` is cancelled: a rank whose
    /// peer died waits for a message that never comes, and a launcher's SIGTERM must still stop
    /// it. Give it the token the signal handler cancels. The job cancels it too when a rank's
    /// process ends (see the module `liveness`). Once it is cancelled MPI is not finalized
    /// (that would wait for the peer too, and for ranks the launcher is stopping).
    #[must_use]
    pub fn stop_on(mut self, cancel: CancelToken) -> Self {
        if let Some(liveness) = &self.liveness {
            liveness.stop_on(cancel.clone());
        }
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

    /// Whether a wait for `rank` should stop: it is lost (named, though the loss cancelled
    /// the run too), or the run was cancelled (see [`give_up`](Self::give_up)).
    fn stop(&self, rank: usize, pause: &Pause) -> Result<()> {
        self.lost(rank, pause)?;
        if self.give_up() { Err(Error::Interrupted) } else { Ok(()) }
    }

    /// Waits for `request`, a send to or receive from `rank`, polling; asked to stop (see
    /// [`stop`](Self::stop)), it cancels the request, which completes either way unless the
    /// rank is gone. Such a request is left pending after [`GRACE`]; then MPI may still use
    /// its buffer, which the caller must leak (the `bool`), and MPI is not finalized.
    fn complete<'a, D: ?Sized>(&self, rank: usize, mut request: Request<'a, D, &LocalScope<'a>>) -> (Result<()>, bool) {
        let pause = Pause::new();
        let mut stopped: Option<(Error, std::time::Instant)> = None;
        loop {
            match request.test() {
                Ok(_) => return (stopped.map_or(Ok(()), |(e, _)| Err(e)), false),
                Err(pending) => request = pending,
            }
            match &stopped {
                None => {
                    if let Err(e) = self.stop(rank, &pause) {
                        request.cancel();
                        stopped = Some((e, std::time::Instant::now()));
                    }
                }
                Some((_, since)) if since.elapsed() >= GRACE => {
                    // SAFETY: the request is left pending, unregistered from its scope; MPI
                    // may still use its buffer, which the caller leaks (never frees), and MPI
                    // is not finalized.
                    let _ = unsafe { request.into_raw() };
                    self.abandoned.store(true, Ordering::SeqCst);
                    return (Err(stopped.map_or(Error::Interrupted, |(e, _)| e)), true);
                }
                Some(_) => {}
            }
            pause.sleep();
        }
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

/// How long a wait goes on before it starts watching whether the rank waited for lives (most
/// messages come sooner, and never cost a connection).
const WATCH_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

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

    fn send(&self, to: usize, message: Vec<u8>) -> Result<()> {
        self.check_thread()?;
        let world = SimpleCommunicator::world();
        let peer = world.process_at_rank(i32::try_from(to).map_err(|_| Error::Bug(format!("no rank {to}")))?);
        // The first piece leads with the message's length.
        let piece = piece_bytes();
        let (head, rest) = message.split_at(message.len().min(piece - 8));
        let mut first = Vec::with_capacity(8 + head.len());
        first.extend_from_slice(&(message.len() as u64).to_le_bytes());
        first.extend_from_slice(head);
        let mut outcome = Ok(());
        let mut left_pending = false;
        for piece in std::iter::once(&first[..]).chain(rest.chunks(piece)) {
            (outcome, left_pending) = mpi::request::scope(|scope| self.complete(to, peer.immediate_send(scope, piece)));
            if outcome.is_err() {
                break;
            }
        }
        if left_pending {
            std::mem::forget(first);
            std::mem::forget(message);
        }
        outcome
    }

    fn receive(&self, from: usize) -> Result<Vec<u8>> {
        self.check_thread()?;
        let from_rank = i32::try_from(from).map_err(|_| Error::Bug(format!("no rank {from}")))?;
        let world = SimpleCommunicator::world();
        let peer = world.process_at_rank(from_rank);
        let next = || {
            let pause = Pause::new();
            let status = loop {
                if let Some(status) = peer.immediate_probe() {
                    break status;
                }
                self.stop(from, &pause)?;
                pause.sleep();
            };
            // Received without blocking: a rank that died while its message was on its way
            // would leave a blocking receive waiting inside MPI for good.
            let count = usize::try_from(status.count(u8::equivalent_datatype())).unwrap_or(0);
            let mut piece = vec![0u8; count];
            let (outcome, left_pending) =
                mpi::request::scope(|scope| self.complete(from, peer.immediate_receive_into(scope, &mut piece[..])));
            if left_pending {
                std::mem::forget(piece);
                return outcome.map(|()| Vec::new());
            }
            outcome.map(|()| piece)
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

    fn lost_rank(&self) -> Option<usize> {
        self.liveness.as_ref().and_then(Liveness::lost)
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
