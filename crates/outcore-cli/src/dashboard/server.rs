//! The dashboard's HTTP server: std::net, GET only, a thread per connection (at most
//! [`MAX_CONNECTIONS`]), relative routes, Server-Sent Events for the live page.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use outcore::{Error, Knob, Result};

use super::board::{Board, Cursor, Share};
use super::ranks::Peers;
use super::view;

/// Connections served at once; more are answered 503 and closed.
pub(super) const MAX_CONNECTIONS: usize = 8;
/// How often a live page is sent what changed: at most 10 times a second.
const PUSH_INTERVAL: Duration = Duration::from_millis(100);
/// A comment line keeps idle event streams open through proxies, and finds closed ones.
const KEEPALIVE: Duration = Duration::from_secs(2);
/// A client that has not sent its whole request head, or reads nothing, this long is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Who the server is for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Access {
    /// The user's browser: loopback, unless `allow_remote`, which requires a random token.
    User { allow_remote: bool },
    /// Rank 0 of the job, asking another rank for its board: any address, always a token.
    Peer,
}

/// A running dashboard server; dropping it stops it.
pub(super) struct Server {
    url: String,
    port: u16,
    token: Option<String>,
    stop: Arc<AtomicBool>,
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
        if remote && matches!(access, Access::User { allow_remote: false }) {
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
        let host = if bound.ip().is_unspecified() { "HOST".to_string() } else { bound.ip().to_string() };
        let host = if bound.is_ipv6() && host != "HOST" { format!("[{host}]") } else { host };
        let url = match &token {
            Some(t) => format!("http://{host}:{}/?token={t}", bound.port()),
            None => format!("http://{host}:{}/", bound.port()),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let shared =
            Arc::new(Shared { board, peers, token: token.clone(), stop: stop.clone(), open: AtomicUsize::new(0) });
        let accept = std::thread::Builder::new()
            .name("outcore-dashboard".into())
            .spawn(move || accept_loop(&listener, &shared))
            .map_err(|e| bad(format!("cannot start the dashboard's thread: {e}")))?;
        Ok(Self { url, port: bound.port(), token, stop, accept: Some(accept) })
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
    fn drop(&mut self) {
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
    stop: Arc<AtomicBool>,
    open: AtomicUsize,
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_nodelay(true);
                let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
                if shared.open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    shared.open.fetch_sub(1, Ordering::AcqRel);
                    // The request head is read first (briefly), or closing with it unread would
                    // reset the connection before the client reads the answer.
                    let head =
                        Head { stream: &stream, until: Instant::now() + Duration::from_millis(200), left: 16 << 10 };
                    let mut reader = BufReader::new(head);
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                        line.clear();
                    }
                    let _ = respond(&stream, "503 Service Unavailable", "text/plain", b"too many connections\n");
                    continue;
                }
                let slot = Slot(shared.clone());
                let spawned = std::thread::Builder::new().name("outcore-dashboard-client".into()).spawn(move || {
                    let _ = serve(&stream, &slot.0);
                });
                // Not spawned: the closure, and with it the slot, was dropped.
                drop(spawned);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

/// A connection's place among the [`MAX_CONNECTIONS`]: given back however the connection ends.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request's reader: every read within one deadline for the whole request head, and at most
/// 16 KiB of it, so that a slow or endless client holds a connection no longer and no more.
struct Head<'a> {
    stream: &'a TcpStream,
    until: Instant,
    left: usize,
}

impl std::io::Read for Head<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let remaining = self.until.saturating_duration_since(Instant::now());
        if remaining.is_zero() || self.left == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "request head too slow or too long"));
        }
        self.stream.set_read_timeout(Some(remaining))?;
        let most = buf.len().min(self.left);
        let n = std::io::Read::read(&mut self.stream, &mut buf[..most])?;
        self.left -= n;
        Ok(n)
    }
}

/// Answers one request.
fn serve(stream: &TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(Head { stream, until: Instant::now() + IO_TIMEOUT, left: 16 << 10 });
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return respond(stream, "405 Method Not Allowed", "text/plain", b"GET only\n");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if let Some(token) = &shared.token {
        let given = super::board::query_value(query, "token");
        if given != Some(token.as_str()) {
            return respond(stream, "403 Forbidden", "text/plain", b"this dashboard needs the token of its URL\n");
        }
    }
    // The headers, read to the blank line (at most 64) and ignored. Host is not checked:
    // jupyter-server-proxy passes on the browser's (the hub's name).
    for _ in 0..64 {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let board = &shared.board;
    match path {
        "/" | "/index.html" => respond(stream, "200 OK", "text/html; charset=utf-8", view::page(None).as_bytes()),
        "/api/state.json" => {
            let share = query.contains("tasks=").then(|| Share::from_query(query));
            let (state, _) = view::combined(board, &shared.peers, Cursor::from_query(query), share, &mut Vec::new());
            respond(stream, "200 OK", "application/json", state.as_bytes())
        }
        "/api/events" => events(stream, shared),
        "/metrics" => respond(stream, "200 OK", "text/plain; version=0.0.4", board.metrics().as_bytes()),
        "/trace.json" => respond(stream, "200 OK", "application/json", board.trace_json().as_bytes()),
        "/favicon.ico" => respond(stream, "204 No Content", "image/x-icon", b""),
        _ => respond(stream, "404 Not Found", "text/plain", b"not found\n"),
    }
}

/// The live page's stream: what changed, at most every [`PUSH_INTERVAL`], while the client
/// stays and the server runs. Nothing is computed between changes (but the other ranks' states
/// are asked for while they run).
fn events(mut stream: &TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: keep-alive\r\nX-Accel-Buffering: no\r\n\r\nretry: 1000\n\n",
    )?;
    let (mut cursor, mut peers) = (Cursor::default(), Vec::new());
    let mut sent: Option<u64> = None;
    let mut quiet = Instant::now();
    while !shared.stop.load(Ordering::Acquire) {
        let version = shared.board.version();
        // Other ranks that still run change without telling: they are asked at every push.
        if sent != Some(version) || shared.peers.live() {
            let (mut message, next) = view::combined(&shared.board, &shared.peers, cursor, None, &mut peers);
            message.insert_str(0, "data: ");
            message.push_str("\n\n");
            stream.write_all(message.as_bytes())?;
            (cursor, sent, quiet) = (next, Some(version), Instant::now());
        } else if quiet.elapsed() >= KEEPALIVE {
            stream.write_all(b": keep-alive\n\n")?;
            quiet = Instant::now();
        }
        std::thread::sleep(PUSH_INTERVAL);
    }
    Ok(())
}

fn respond(mut stream: &TcpStream, status: &str, kind: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// 128 random bits from the kernel, in hex.
fn random_token() -> String {
    use std::io::Read;
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
