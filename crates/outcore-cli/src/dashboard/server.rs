//! The dashboard's HTTP server: std::net, GET and HEAD only, relative routes, Server-Sent
//! Events for the live page.
//!
//! One thread reads every connection's request head without blocking: a client has
//! [`HEAD_TIMEOUT`] to send it whole, at most [`MAX_PENDING`] heads are awaited at once (the
//! oldest dropped for a newer one, at most [`MAX_PENDING_PER_CLIENT`] per address), and the
//! token and the Host header are checked there. Only a request that passes takes one of the
//! [`MAX_CONNECTIONS`] serving threads, so idle, slow or tokenless clients never keep the
//! token holder out; event streams take at most [`MAX_STREAMS`] of them, so requests always
//! have room.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use outcore::{Error, Knob, Result};

use super::board::{Board, Cursor, Share};
use super::ranks::Peers;
use super::view;

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
/// How often a live page is sent what changed: at most 10 times a second.
const PUSH_INTERVAL: Duration = Duration::from_millis(100);
/// A comment line keeps idle event streams open through proxies.
const KEEPALIVE: Duration = Duration::from_secs(2);
/// A client that reads nothing this long is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the end of a command waits for its live pages to get the final state.
const FAREWELL: Duration = Duration::from_secs(2);

/// Who the server is for.
#[derive(Clone, Debug)]
pub(super) enum Access {
    /// The user's browser: loopback, unless `allow_remote`, which requires a random token. On
    /// loopback the Host header must name loopback or one of `allowed_hosts` (a proxy's name):
    /// a page of another site cannot reach the dashboard by rebinding its name to 127.0.0.1.
    User { allow_remote: bool, allowed_hosts: Vec<String> },
    /// Rank 0 of the job, asking another rank for its board: any address, always a token.
    Peer,
}

/// A running dashboard server; dropping it stops it.
pub(super) struct Server {
    url: String,
    port: u16,
    token: Option<String>,
    stop: Arc<AtomicBool>,
    /// Set when the command has ended: live pages get the final state and `end`.
    closing: Arc<AtomicBool>,
    /// Live pages connected.
    streams: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `board`, with the other ranks' `peers`, at `addr` (`host:port`), for `access`.
    pub(super) fn start(board: Arc<Board>, peers: Arc<Peers>, addr: &str, access: Access) -> Result<Self> {
        let bad = |why: String| Error::invalid(Knob::Program("--dashboard"), why);
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| {
                bad(format!(
                    "{addr:?} is not an address to serve on ({e}); give HOST:PORT, e.g. 127.0.0.1:8787 \
                     (--dashboard takes the word after it: write it after the command, or as --dashboard=ADDR)"
                ))
            })?
            .collect();
        let Some(&first) = addrs.first() else {
            return Err(bad(format!("{addr:?} names no address; give HOST:PORT, e.g. 127.0.0.1:8787")));
        };
        let remote = addrs.iter().any(|a| !a.ip().is_loopback());
        if remote && matches!(access, Access::User { allow_remote: false, .. }) {
            return Err(bad(format!(
                "{addr} is reachable from other machines, and the dashboard has no other protection than a token: \
                 pass --dashboard-allow-remote to serve it there with a random token in its URL, or serve on 127.0.0.1"
            )));
        }
        let listener = TcpListener::bind(first).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => bad(format!(
                "{first} is in use (another dashboard, Dask's, or RStudio Server); pass --dashboard 127.0.0.1:0 to pick a free port"
            )),
            _ => bad(format!("cannot serve on {first}: {e}")),
        })?;
        let bound = listener.local_addr().map_err(|e| bad(format!("cannot serve on {first}: {e}")))?;
        listener.set_nonblocking(true).map_err(|e| bad(format!("cannot serve on {first}: {e}")))?;
        let token = (remote || matches!(access, Access::Peer)).then(random_token);
        // Behind a token, any Host will do (remote names are many); on loopback, these.
        let hosts = match &access {
            Access::User { allowed_hosts, .. } if token.is_none() => {
                let loopback = ["localhost", "127.0.0.1", "[::1]"].map(String::from);
                Some(loopback.into_iter().chain(allowed_hosts.iter().map(|h| h.to_ascii_lowercase())).collect())
            }
            _ => None,
        };
        let host = if bound.ip().is_unspecified() { "HOST".to_string() } else { bound.ip().to_string() };
        let host = if bound.is_ipv6() && host != "HOST" { format!("[{host}]") } else { host };
        let url = match &token {
            Some(t) => format!("http://{host}:{}/?token={t}", bound.port()),
            None => format!("http://{host}:{}/", bound.port()),
        };
        let (stop, closing) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let streams = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            board,
            peers,
            token: token.clone(),
            hosts,
            stop: stop.clone(),
            closing: closing.clone(),
            open: AtomicUsize::new(0),
            streams: streams.clone(),
        });
        let accept = std::thread::Builder::new()
            .name("outcore-dashboard".into())
            .spawn(move || accept_loop(&listener, &shared))
            .map_err(|e| bad(format!("cannot start the dashboard's thread: {e}")))?;
        Ok(Self { url, port: bound.port(), token, stop, closing, streams, accept: Some(accept) })
    }

    /// The URL to open (with its token, if any).
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// The port it serves on, and its token.
    pub(super) fn endpoint(&self) -> (u16, Option<&str>) {
        (self.port, self.token.as_deref())
    }
}

impl Drop for Server {
    /// Tells the live pages the command has ended (the final state, then an `end` event) and
    /// waits for them (at most [`FAREWELL`]) before stopping: without it a page watching to
    /// the end, with no `--dashboard-linger`, stayed at its last push and kept reconnecting.
    fn drop(&mut self) {
        self.closing.store(true, Ordering::Release);
        let until = Instant::now() + FAREWELL;
        while self.streams.load(Ordering::Acquire) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.accept.take() {
            let _ = thread.join();
        }
    }
}

struct Shared {
    board: Arc<Board>,
    peers: Arc<Peers>,
    token: Option<String>,
    /// The Host names accepted (lowercase, without the port); `None`: any.
    hosts: Option<Vec<String>>,
    stop: Arc<AtomicBool>,
    /// The command has ended (see [`Server`]'s drop).
    closing: Arc<AtomicBool>,
    /// Requests being served.
    open: AtomicUsize,
    /// Of those, event streams.
    streams: Arc<AtomicUsize>,
}

/// A connection whose request head is still arriving.
struct Pending {
    stream: TcpStream,
    client: IpAddr,
    head: Vec<u8>,
    since: Instant,
}

/// A request head, read whole.
struct Request {
    method: String,
    path: String,
    query: String,
    host: Option<String>,
}

impl Request {
    /// Parses `head` (up to the blank line); `None` if it is not HTTP.
    fn parse(head: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(head).ok()?;
        let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
        let mut parts = lines.next()?.split_whitespace();
        let (method, target) = (parts.next()?.to_string(), parts.next()?);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let host = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("host"))
            .map(|(_, value)| value.trim().to_ascii_lowercase());
        Some(Self { method, path: path.to_string(), query: query.to_string(), host })
    }

    /// Whether the Host header names one of `hosts` (a missing one: a client that is no
    /// browser, which rebinding cannot drive).
    fn host_allowed(&self, hosts: &[String]) -> bool {
        let Some(host) = &self.host else { return true };
        // The port goes: `[::1]:8787` -> `[::1]`, `name:8787` -> `name`.
        let name = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host.as_str(),
        };
        hosts.iter().any(|h| h == name)
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
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
                Some(Ok(true)) => {
                    busy = true;
                    if let Some(p) = pending.remove(i) {
                        dispatch(p, shared);
                    }
                }
                Some(Ok(false)) => i += 1,
                Some(Err(())) | None => {
                    pending.remove(i);
                }
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Reads what `p`'s client has sent: `Ok(true)` once the head is whole, `Ok(false)` while it
/// may still come, `Err` (or `None`) when the client is gone, too slow or sends too much.
fn read_head(p: &mut Pending) -> Option<std::result::Result<bool, ()>> {
    let mut buf = [0u8; 2048];
    loop {
        let room = HEAD_BYTES - p.head.len();
        if room == 0 {
            return Some(Err(()));
        }
        match (&p.stream).read(&mut buf[..room.min(2048)]) {
            Ok(0) => return None,
            Ok(n) => {
                // At most HEAD_BYTES per connection, allocated once (see PENDING_BYTES).
                p.head.reserve_exact(HEAD_BYTES - p.head.len());
                p.head.extend_from_slice(&buf[..n]);
                if p.head.windows(4).any(|w| w == b"\r\n\r\n") || p.head.windows(2).any(|w| w == b"\n\n") {
                    return Some(Ok(true));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Some(if p.since.elapsed() < HEAD_TIMEOUT { Ok(false) } else { Err(()) });
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
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
    let Some(request) = Request::parse(&p.head) else {
        let _ = respond(&stream, false, "400 Bad Request", "text/plain; charset=utf-8", b"not an HTTP request\n");
        return;
    };
    let head_only = request.method == "HEAD";
    if request.method != "GET" && !head_only {
        let _ = respond(&stream, false, "405 Method Not Allowed", "text/plain; charset=utf-8", b"GET and HEAD only\n");
        return;
    }
    if let Some(token) = &shared.token
        && super::board::query_value(&request.query, "token") != Some(token.as_str())
    {
        let body = b"this dashboard needs the token of its URL\n";
        let _ = respond(&stream, head_only, "403 Forbidden", "text/plain; charset=utf-8", body);
        return;
    }
    if let Some(hosts) = &shared.hosts
        && !request.host_allowed(hosts)
    {
        let name = request.host.as_deref().unwrap_or_default();
        let body = format!(
            "Host {name:?} is not this dashboard's (it serves localhost, 127.0.0.1 and [::1]); behind a proxy, \
             start the run with --dashboard-allow-host NAME\n"
        );
        let _ = respond(&stream, head_only, "403 Forbidden", "text/plain; charset=utf-8", body.as_bytes());
        return;
    }
    let stream_wanted = request.path == "/api/events" && !head_only;
    let Some(slot) = Slot::take(shared, stream_wanted) else {
        let _ = respond(
            &stream,
            head_only,
            "503 Service Unavailable",
            "text/plain; charset=utf-8",
            b"too many connections\n",
        );
        return;
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

/// Answers one request that passed the checks.
fn serve(stream: &TcpStream, request: &Request, shared: &Shared) -> std::io::Result<()> {
    let (board, query, head_only) = (&shared.board, request.query.as_str(), request.method == "HEAD");
    let reply = |status: &str, kind: &str, body: &[u8]| respond(stream, head_only, status, kind, body);
    match request.path.as_str() {
        "/" | "/index.html" => reply("200 OK", "text/html; charset=utf-8", view::page(None).as_bytes()),
        "/api/state.json" => {
            let share = query.contains("tasks=").then(|| Share::from_query(query));
            let (state, _) = view::combined(board, &shared.peers, Cursor::from_query(query), share, &mut Vec::new());
            reply("200 OK", "application/json; charset=utf-8", state.as_bytes())
        }
        "/api/events" if head_only => reply("200 OK", "text/event-stream; charset=utf-8", b""),
        "/api/events" => events(stream, shared),
        "/metrics" => reply("200 OK", "text/plain; version=0.0.4; charset=utf-8", board.metrics().as_bytes()),
        "/trace.json" => reply("200 OK", "application/json; charset=utf-8", board.trace_json().as_bytes()),
        "/favicon.ico" => reply("204 No Content", "image/x-icon", b""),
        _ => reply("404 Not Found", "text/plain; charset=utf-8", b"not found\n"),
    }
}

/// The live page's stream: what changed, at most every [`PUSH_INTERVAL`], while the client
/// stays and the server runs. Nothing is computed between changes (but the other ranks' states
/// are asked for while they run).
fn events(mut stream: &TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\nConnection: keep-alive\r\nX-Accel-Buffering: no\r\n\r\nretry: 1000\n\n",
    )?;
    let (mut cursor, mut peers) = (Cursor::default(), Vec::new());
    let mut sent: Option<u64> = None;
    let mut quiet = Instant::now();
    while !shared.stop.load(Ordering::Acquire) {
        let closing = shared.closing.load(Ordering::Acquire);
        let version = shared.board.version();
        // Other ranks that still run change without telling: they are asked at every push.
        if sent != Some(version) || (shared.peers.live() && !closing) {
            let (mut message, next) = view::combined(&shared.board, &shared.peers, cursor, None, &mut peers);
            message.insert_str(0, "data: ");
            message.push_str("\n\n");
            stream.write_all(message.as_bytes())?;
            (cursor, sent, quiet) = (next, Some(version), Instant::now());
        } else if closing {
            // The final state is sent: the page stops reconnecting and says the command ended.
            return stream.write_all(b"event: end\ndata: {}\n\n");
        } else if quiet.elapsed() >= KEEPALIVE {
            stream.write_all(b": keep-alive\n\n")?;
            quiet = Instant::now();
        }
        if client_gone(stream) {
            return Ok(());
        }
        std::thread::sleep(PUSH_INTERVAL);
    }
    Ok(())
}

/// Whether a live page's client closed its end: its place is given back at once, not at the
/// next failed write (two keep-alives later).
fn client_gone(stream: &TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(1)));
    matches!(stream.peek(&mut [0u8; 1]), Ok(0))
}

/// Sends a whole response (its head alone for a HEAD request) and closes.
fn respond(mut stream: &TcpStream, head_only: bool, status: &str, kind: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

/// 128 random bits from the kernel, in hex.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: the clock and the process id, hashed by std's randomly keyed hasher.
        use std::hash::{BuildHasher, Hasher};
        for half in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
