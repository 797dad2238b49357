//! How the dashboard's server takes connections: one thread reads every connection's request
//! head without blocking (a client has [`HEAD_TIMEOUT`] to send it whole; at most
//! [`MAX_PENDING`] heads are awaited at once, the oldest dropped for a newer one, at most
//! [`MAX_PENDING_PER_CLIENT`] per address) and checks the token and the Host header there.
//! Only a request that passes takes one of the [`MAX_CONNECTIONS`] serving threads, so idle,
//! slow or tokenless clients never keep the token holder out; event streams take at most
//! [`MAX_STREAMS`] of them, so requests always have room.

use std::collections::VecDeque;
use std::io::Read;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::routes::{Request, Shared, respond, serve};

/// Requests served at once; more are answered 503.
pub(super) const MAX_CONNECTIONS: usize = 8;
/// Of those, event streams (live pages): the rest stay free for requests.
const MAX_STREAMS: usize = 6;
/// Request heads awaited at once; a newer connection drops the oldest.
const MAX_PENDING: usize = 64;
/// Request heads awaited at once from one address.
const MAX_PENDING_PER_CLIENT: usize = 16;
/// A client has this long to send its whole request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest request head read.
const HEAD_BYTES: usize = 16 << 10;
/// What the request heads awaited at once may hold (counted in the dashboard's overhead).
pub(super) const PENDING_BYTES: u64 = (MAX_PENDING * HEAD_BYTES) as u64;
/// A client that reads nothing this long is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection whose request head is still arriving.
struct Pending {
    stream: TcpStream,
    client: IpAddr,
    head: Vec<u8>,
    since: Instant,
}

/// Takes connections and reads their request heads until the server stops: a whole head goes
/// to [`dispatch`], a gone, slow or oversized one is dropped.
pub(super) fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    while !shared.stop.load(Ordering::Acquire) {
        let mut busy = false;
        while let Ok((stream, peer)) = listener.accept() {
            busy = true;
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let client = peer.ip();
            if pending.iter().filter(|p| p.client == client).count() >= MAX_PENDING_PER_CLIENT
                && let Some(i) = pending.iter().position(|p| p.client == client)
            {
                pending.remove(i);
            }
            if pending.len() >= MAX_PENDING {
                pending.pop_front();
            }
            pending.push_back(Pending { stream, client, head: Vec::new(), since: Instant::now() });
        }
        let mut i = 0;
        while i < pending.len() {
            match read_head(&mut pending[i]) {
                Head::Whole => {
                    busy = true;
                    if let Some(p) = pending.remove(i) {
                        dispatch(p, shared);
                    }
                }
                Head::Partial => i += 1,
                Head::Dropped => {
                    pending.remove(i);
                }
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Where a connection's request head stands.
enum Head {
    /// Arrived to its blank line.
    Whole,
    /// Still arriving, within [`HEAD_TIMEOUT`].
    Partial,
    /// The client is gone, too slow, or sent more than [`HEAD_BYTES`]: the connection goes.
    Dropped,
}

/// Reads what `p`'s client has sent so far.
fn read_head(p: &mut Pending) -> Head {
    let mut buf = [0u8; 2048];
    loop {
        let room = HEAD_BYTES - p.head.len();
        if room == 0 {
            return Head::Dropped;
        }
        match (&p.stream).read(&mut buf[..room.min(2048)]) {
            Ok(0) => return Head::Dropped,
            Ok(n) => {
                // At most HEAD_BYTES per connection, allocated once (see PENDING_BYTES).
                p.head.reserve_exact(HEAD_BYTES - p.head.len());
                p.head.extend_from_slice(&buf[..n]);
                if p.head.windows(4).any(|w| w == b"\r\n\r\n") || p.head.windows(2).any(|w| w == b"\n\n") {
                    return Head::Whole;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return if p.since.elapsed() < HEAD_TIMEOUT { Head::Partial } else { Head::Dropped };
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Head::Dropped,
        }
    }
}

/// Answers a whole request head: refusals at once, on this thread (a few hundred bytes, which
/// a socket's buffer takes without blocking); the rest on a serving thread of its own.
fn dispatch(p: Pending, shared: &Arc<Shared>) {
    let stream = p.stream;
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let refuse = |head_only: bool, status: &str, body: &[u8]| {
        let _ = respond(&stream, head_only, status, "text/plain; charset=utf-8", body);
    };
    let Some(request) = Request::parse(&p.head) else {
        return refuse(false, "400 Bad Request", b"not an HTTP request\n");
    };
    let head_only = request.method == "HEAD";
    if request.method != "GET" && !head_only {
        return refuse(false, "405 Method Not Allowed", b"GET and HEAD only\n");
    }
    if let Some(token) = &shared.token
        && super::board::query_value(&request.query, "token") != Some(token.as_str())
    {
        return refuse(head_only, "403 Forbidden", b"this dashboard needs the token of its URL\n");
    }
    if let Some(hosts) = &shared.hosts
        && !request.host_allowed(hosts)
    {
        let name = request.host.as_deref().unwrap_or_default();
        let body = format!(
            "Host {name:?} is not this dashboard's (it serves localhost, 127.0.0.1 and [::1]); behind a proxy, \
             start the run with --dashboard-allow-host NAME\n"
        );
        return refuse(head_only, "403 Forbidden", body.as_bytes());
    }
    let stream_wanted = request.path == "/api/events" && !head_only;
    let Some(slot) = Slot::take(shared, stream_wanted) else {
        return refuse(head_only, "503 Service Unavailable", b"too many connections\n");
    };
    let spawned = std::thread::Builder::new().name("outcore-dashboard-client".into()).spawn(move || {
        let _ = serve(&stream, &request, &slot.shared);
    });
    // Not spawned: the closure, and with it the slot, was dropped.
    drop(spawned);
}

/// A request's place among the [`MAX_CONNECTIONS`] (and an event stream's among the
/// [`MAX_STREAMS`]): given back however the request ends.
struct Slot {
    shared: Arc<Shared>,
    stream: bool,
}

impl Slot {
    fn take(shared: &Arc<Shared>, stream: bool) -> Option<Self> {
        if shared.open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if stream && shared.streams.fetch_add(1, Ordering::AcqRel) >= MAX_STREAMS {
            shared.streams.fetch_sub(1, Ordering::AcqRel);
            shared.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self { shared: shared.clone(), stream })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.stream {
            self.shared.streams.fetch_sub(1, Ordering::AcqRel);
        }
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
    }
}
