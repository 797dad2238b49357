//! Whether the other ranks' processes still live, seen without their help: MPI (before ULFM)
//! has no such check, a receive from a rank that died waits forever, and a rank busy with its
//! own rows would compute on for minutes.
//!
//! Each rank listens on a TCP port and keeps open the connections other ranks make to it, once
//! they proved they belong to the job (the listener's token, sent over MPI with its port). The
//! kernel closes a dead process's sockets, so a rank holding a connection to another sees the
//! end of the stream when that one dies. A thread of each rank watches: rank 0 every other
//! rank, the others rank 0. When rank 0 sees a rank gone it writes that rank's number to every
//! rank watching it, and each rank that learns of a loss cancels its runs (the token given to
//! [`Liveness::stop_on`]). Waits for a rank also watch it ([`Liveness::gone`]). At most
//! [`MAX_WATCHED`] connections each way; a rank that cannot be watched (no route, a full
//! listener) is waited for as before, until a signal.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::task::CancelToken;

/// The most connections a rank holds to watch others, and accepts from others watching it;
/// beyond them, ranks are waited for until a signal, as without watching.
const MAX_WATCHED: usize = 256;

/// How long connecting to a rank, and hearing whether it accepts, may take.
const HANDSHAKE: Duration = Duration::from_secs(2);

/// How long the listener waits for a caller's token before hanging up on it.
const TOKEN_WAIT: Duration = Duration::from_secs(1);

/// The most callers waiting to send their token.
const MAX_PENDING: usize = 64;

/// How often the listening thread accepts and the watching thread looks.
const TICK: Duration = Duration::from_millis(100);

/// How long a rank is seen gone before it counts as lost: a message it sent just before it
/// ended may still be arriving.
pub(super) const GONE: Duration = Duration::from_secs(1);

/// What a listener answers a caller with its token: watching (it keeps the connection), or full.
const WATCHING: u8 = 1;
const FULL: u8 = 0;

/// No rank lost; written on a connection, a rank leaving the job in good order.
const NONE: usize = usize::MAX;

/// What this rank knows of another's life.
#[derive(Debug)]
enum Watch {
    /// Not watched yet: where it listens and its token, if it said.
    Idle(Option<(String, [u8; 16])>),
    /// Being connected to, outside the lock (a rank that cannot be reached takes seconds).
    Connecting,
    /// A connection its death will close.
    Watching(TcpStream),
    /// Its connection ended, first seen then: the process is gone.
    Gone(Instant),
    /// It cannot be watched (no address, no route, its listener full).
    Blind,
}

/// What the watching thread shares with the rank's MPI thread.
#[derive(Debug)]
struct Shared {
    /// This rank, once the ranks met.
    me: AtomicUsize,
    peers: Mutex<Vec<Watch>>,
    /// The first rank known lost, or [`NONE`].
    lost: AtomicUsize,
    /// Cancelled when a rank is lost.
    cancel: Mutex<Option<CancelToken>>,
    /// The connections of the ranks watching this one.
    kept: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

impl Shared {
    fn peers(&self) -> MutexGuard<'_, Vec<Watch>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When `rank`'s process was first seen gone, if it was; connects to it first if `watch`
    /// and it is not watched yet.
    fn check(&self, rank: usize, watch: bool) -> Option<Instant> {
        if watch {
            self.watch(rank);
        }
        let mut peers = self.peers();
        let state = peers.get_mut(rank)?;
        if let Watch::Watching(stream) = state {
            let mut byte = [0u8; 1];
            match stream.peek(&mut byte) {
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                // A notice (read by the watching thread): alive.
                Ok(n) if n > 0 => {}
                // The end of the stream, or a reset: the process is gone.
                _ => *state = Watch::Gone(Instant::now()),
            }
        }
        match state {
            Watch::Gone(since) => Some(*since),
            _ => None,
        }
    }

    /// Connects to `rank` if it is not watched yet (and there is room), without holding the
    /// lock while it connects: the other thread's looks and waits go on meanwhile.
    fn watch(&self, rank: usize) {
        let target = {
            let mut peers = self.peers();
            let watched = peers.iter().filter(|w| matches!(w, Watch::Watching(_) | Watch::Connecting)).count();
            let Some(Watch::Idle(addr)) = peers.get_mut(rank) else { return };
            let addr = addr.take().filter(|_| watched < MAX_WATCHED);
            peers[rank] = Watch::Connecting;
            addr
        };
        let state = target.and_then(|(addr, token)| connect(&addr, token)).map_or(Watch::Blind, Watch::Watching);
        if let Some(slot) = self.peers().get_mut(rank) {
            *slot = state;
        }
    }

    /// Records `rank` as lost (the first loss is kept) and cancels this rank's runs.
    fn lose(&self, rank: usize) {
        let _ = self.lost.compare_exchange(NONE, rank, Ordering::AcqRel, Ordering::Acquire);
        if let Some(cancel) = &*self.cancel.lock().unwrap_or_else(|p| p.into_inner()) {
            cancel.cancel();
        }
    }
}

/// This rank's listener, and its watch over the others.
#[derive(Debug)]
pub(super) struct Liveness {
    token: [u8; 16],
    port: u16,
    shared: Arc<Shared>,
}

impl Liveness {
    /// Listens on every address for the ranks that will watch this one, and starts the
    /// watching thread; `None` if it cannot (the job then runs unwatched).
    pub(super) fn listen() -> Option<Self> {
        let listener = TcpListener::bind(("0.0.0.0", 0)).ok()?;
        let port = listener.local_addr().ok()?.port();
        listener.set_nonblocking(true).ok()?;
        let token: [u8; 16] = rand::random();
        let shared = Arc::new(Shared {
            me: AtomicUsize::new(NONE),
            peers: Mutex::new(Vec::new()),
            lost: AtomicUsize::new(NONE),
            cancel: Mutex::new(None),
            kept: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        // Two threads: a rank's handshake with another must not wait for that one's own.
        let (acceptor, watcher) = (shared.clone(), shared.clone());
        std::thread::Builder::new()
            .name("outcore-listener".into())
            .spawn(move || accept(&listener, token, &acceptor))
            .ok()?;
        std::thread::Builder::new().name("outcore-liveness".into()).spawn(move || watch(&watcher)).ok()?;
        Some(Self { token, port, shared })
    }

    /// What this rank tells the others: its token, host and port, as a line of text.
    pub(super) fn introduction(&self) -> String {
        let token: String = self.token.iter().map(|b| format!("{b:02x}")).collect();
        format!("{token} {}:{}", hostname(), self.port)
    }

    /// Learns where every rank listens from their introductions, a line each in rank order
    /// (this rank's, `me`, included; an empty line from a rank that does not listen).
    pub(super) fn meet(&self, me: usize, introductions: &str) {
        let here = hostname();
        let peers = introductions
            .split('\n')
            .map(|intro| {
                let (token, addr) = intro.split_once(' ')?;
                let token: Vec<u8> = (0..token.len())
                    .step_by(2)
                    .map(|i| token.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                    .collect::<Option<_>>()?;
                let (host, port) = addr.rsplit_once(':')?;
                // A rank on this machine is reached over loopback.
                let addr = if host == here { format!("127.0.0.1:{port}") } else { addr.to_string() };
                Some((addr, <[u8; 16]>::try_from(token).ok()?))
            })
            .map(Watch::Idle)
            .collect();
        *self.shared.peers() = peers;
        self.shared.me.store(me, Ordering::Release);
    }

    /// Cancels `cancel` when a rank is lost.
    pub(super) fn stop_on(&self, cancel: CancelToken) {
        *self.shared.cancel.lock().unwrap_or_else(|p| p.into_inner()) = Some(cancel);
    }

    /// When this rank first saw `rank`'s process gone, if it has; starts watching it if
    /// `watch` (a connection, once).
    pub(super) fn gone(&self, rank: usize, watch: bool) -> Option<Instant> {
        self.shared.check(rank, watch)
    }

    /// Records `rank` as lost, as a wait for it found: cancels this rank's runs.
    pub(super) fn lose(&self, rank: usize) {
        self.shared.lose(rank);
    }

    /// The first rank known lost (gone for [`GONE`]): seen so here, or told by rank 0.
    pub(super) fn lost(&self) -> Option<usize> {
        Some(self.shared.lost.load(Ordering::Acquire)).filter(|&r| r != NONE)
    }
}

impl Drop for Liveness {
    /// Tells the ranks watching this one that it leaves in good order (its connections are
    /// about to close), and stops the watching thread.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        tell(&self.shared, NONE);
    }
}

/// Writes `rank` (a lost rank, or [`NONE`]: leaving) to every rank watching this one.
fn tell(shared: &Shared, rank: usize) {
    for stream in shared.kept.lock().unwrap_or_else(|p| p.into_inner()).iter_mut() {
        let _ = stream.write_all(&(rank as u64).to_le_bytes());
    }
}

/// Connects to a rank's listener and proves this rank's membership: the watching connection,
/// or `None` if it cannot be had.
fn connect(addr: &str, token: [u8; 16]) -> Option<TcpStream> {
    let target: SocketAddr = addr.to_socket_addrs().ok()?.next()?;
    let mut stream = TcpStream::connect_timeout(&target, HANDSHAKE).ok()?;
    stream.set_read_timeout(Some(HANDSHAKE)).ok()?;
    stream.write_all(&token).ok()?;
    let mut answer = [FULL; 1];
    stream.read_exact(&mut answer).ok()?;
    (answer[0] == WATCHING).then_some(())?;
    stream.set_nonblocking(true).ok()?;
    Some(stream)
}

/// The listening thread, until the rank leaves the job: keeps each connection that brings the
/// token within [`TOKEN_WAIT`] (while there is room) and hangs up on any other. Callers are
/// read without blocking, so idle strangers cannot hold up the ranks' own handshakes: at most
/// [`MAX_PENDING`] wait, the oldest hung up on first.
fn accept(listener: &TcpListener, token: [u8; 16], shared: &Shared) {
    let mut pending: Vec<(TcpStream, Instant, Vec<u8>)> = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        while let Ok((stream, _)) = listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                pending.push((stream, Instant::now(), Vec::new()));
            }
        }
        if pending.len() > MAX_PENDING {
            pending.drain(..pending.len() - MAX_PENDING);
        }
        pending.retain_mut(|(stream, since, got)| {
            let mut buf = [0u8; 16];
            match stream.read(&mut buf[..16 - got.len()]) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                _ => return false,
            }
            if got.len() == 16 {
                let mut kept = shared.kept.lock().unwrap_or_else(|p| p.into_inner());
                admit(stream, got == &token, &mut kept);
                return false;
            }
            since.elapsed() < TOKEN_WAIT
        });
        std::thread::sleep(TICK);
    }
}

/// The watching thread, until the rank leaves the job: once the ranks met, watches (rank 0
/// every rank, the others rank 0) and acts on a loss.
fn watch(shared: &Shared) {
    let mut told = false;
    while !shared.stop.load(Ordering::Acquire) {
        let me = shared.me.load(Ordering::Acquire);
        let watching = me != NONE && shared.lost.load(Ordering::Acquire) == NONE;
        if let Some(lost) = watching.then(|| look(shared, me)).flatten() {
            shared.lose(lost);
        }
        // Rank 0 names the lost rank to every rank watching it, once.
        let lost = shared.lost.load(Ordering::Acquire);
        if me == 0 && lost != NONE && !told {
            told = true;
            tell(shared, lost);
        }
        std::thread::sleep(TICK);
    }
}

/// One look over the ranks rank `me` watches (rank 0 every rank, the others rank 0): a rank
/// gone for [`GONE`], or the one rank 0 says is lost. A rank that leaves in good order is no
/// longer watched.
fn look(shared: &Shared, me: usize) -> Option<usize> {
    let ranks = shared.peers().len();
    let watched: Vec<usize> = if me == 0 { (1..ranks).collect() } else { vec![0] };
    for rank in watched {
        {
            let mut peers = shared.peers();
            let state = peers.get_mut(rank)?;
            match notice(state) {
                Some(NONE) => *state = Watch::Blind,
                Some(lost) if rank == 0 => return Some(lost),
                _ => {}
            }
        }
        if shared.check(rank, true).is_some_and(|since| since.elapsed() >= GONE) {
            return Some(rank);
        }
    }
    None
}

/// Keeps a caller that brought the token (`proven`) if there is room, telling it which;
/// hangs up on any other.
fn admit(stream: &mut TcpStream, proven: bool, kept: &mut Vec<TcpStream>) {
    let room = kept.len() < MAX_WATCHED;
    if proven
        && stream.write_all(&[if room { WATCHING } else { FULL }]).is_ok()
        && room
        && let Ok(stream) = stream.try_clone()
    {
        kept.push(stream);
    }
}

/// What a watched rank wrote on its connection, once all its bytes arrived: a lost rank (from
/// rank 0), or [`NONE`]: it leaves in good order.
fn notice(state: &mut Watch) -> Option<usize> {
    let Watch::Watching(stream) = state else { return None };
    let mut bytes = [0u8; 8];
    if stream.peek(&mut bytes).ok()? < 8 {
        return None;
    }
    stream.read_exact(&mut bytes).ok()?;
    usize::try_from(u64::from_le_bytes(bytes)).ok()
}

/// This machine's name (`localhost` where unknown).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "localhost".into(), |h| h.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The introduction line of a listener at `addr` with `token`.
    fn line(token: [u8; 16], addr: &str) -> String {
        let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
        format!("{token} {addr}")
    }

    fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_rank_whose_connection_ends_is_lost_and_its_job_cancelled() {
        // Rank 0 accepts the watching connection, then dies: its end of it closes unannounced.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let token = [7u8; 16];
        let dies = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut theirs = [0u8; 16];
            stream.read_exact(&mut theirs).unwrap();
            assert_eq!(theirs, token);
            stream.write_all(&[WATCHING]).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        let me = Liveness::listen().unwrap();
        let cancel = CancelToken::new();
        me.stop_on(cancel.clone());
        me.meet(1, &format!("{}\n{}", line(token, &addr), me.introduction()));
        dies.join().unwrap();
        let gone = Instant::now();
        until("the loss seen", || cancel.is_cancelled());
        assert!(gone.elapsed() >= GONE - TICK, "lost after {:?}, before the grace", gone.elapsed());
        assert_eq!(me.lost(), Some(0));
    }

    #[test]
    fn a_rank_that_leaves_in_good_order_is_not_lost() {
        let (zero, one) = (Liveness::listen().unwrap(), Liveness::listen().unwrap());
        let cancel = CancelToken::new();
        one.stop_on(cancel.clone());
        let lines = format!("{}\n{}", zero.introduction(), one.introduction());
        zero.meet(0, &lines);
        one.meet(1, &lines);
        // Each watches the other once its thread looked.
        until("rank 1 watching rank 0", || matches!(one.shared.peers()[0], Watch::Watching(_)));
        drop(zero);
        until("rank 0's leaving read", || matches!(one.shared.peers()[0], Watch::Blind));
        std::thread::sleep(GONE + 2 * TICK);
        assert!(!cancel.is_cancelled());
        assert_eq!(one.lost(), None);
    }

    #[test]
    fn a_rank_slow_to_answer_holds_up_no_other_check() {
        // Rank 0's port takes connections but nobody answers: the handshake waits its 2 s.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap().to_string();
        let me = Liveness::listen().unwrap();
        me.meet(1, &format!("{}\n{}", line([1; 16], &addr), me.introduction()));
        until("the watcher connecting to rank 0", || matches!(me.shared.peers()[0], Watch::Connecting));
        let start = Instant::now();
        assert_eq!(me.gone(1, false), None);
        assert!(start.elapsed() < HANDSHAKE / 4, "a check waited {:?} on another rank's handshake", start.elapsed());
        until("rank 0 given up as unwatchable", || matches!(me.shared.peers()[0], Watch::Blind));
        assert_eq!(me.lost(), None);
    }

    #[test]
    fn a_caller_without_the_token_is_hung_up_on() {
        let rank = Liveness::listen().unwrap();
        let addr = format!("127.0.0.1:{}", rank.port);
        let mut wrong = TcpStream::connect(&addr).unwrap();
        wrong.write_all(&[0u8; 16]).unwrap();
        let mut silent = TcpStream::connect(&addr).unwrap();
        for stream in [&mut wrong, &mut silent] {
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut byte = [0u8; 1];
            assert_eq!(stream.read(&mut byte).unwrap(), 0, "a stranger was answered");
        }
        assert!(rank.shared.kept.lock().unwrap().is_empty());
        // A hundred idle strangers do not hold up a rank's own handshake.
        let _idle: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(&addr).unwrap()).collect();
        assert!(connect(&addr, rank.token).is_some(), "a rank with the token was refused");
        assert_eq!(rank.shared.kept.lock().unwrap().len(), 1);
    }
}
