//! What the dashboard's server answers: the routes, the live pages' event streams, and the
//! request and shared state they read. Requests reach them only through `intake`'s checks.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::board::{Board, Cursor, Share};
use super::ranks::Peers;
use super::view;

/// How often a live page is sent what changed: at most twice a second, as Dask's worker and
/// memory plots update (a browser on the machine of the run takes its CPU from the run).
const PUSH_INTERVAL: Duration = Duration::from_millis(500);
/// How often a live page's stream checks whether its client left or the command ended.
const TICK: Duration = Duration::from_millis(50);
/// A comment line keeps idle event streams open through proxies.
const KEEPALIVE: Duration = Duration::from_secs(2);

/// What the server's threads share.
pub(super) struct Shared {
    pub(super) board: Arc<Board>,
    pub(super) peers: Arc<Peers>,
    pub(super) token: Option<String>,
    /// The Host names accepted (lowercase, without the port); `None`: any.
    pub(super) hosts: Option<Vec<String>>,
    pub(super) stop: Arc<AtomicBool>,
    /// The command has ended (see the server's drop).
    pub(super) closing: Arc<AtomicBool>,
    /// Requests being served.
    pub(super) open: AtomicUsize,
    /// Of those, event streams.
    pub(super) streams: Arc<AtomicUsize>,
}

/// A request head, read whole.
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) host: Option<String>,
}

impl Request {
    /// Parses `head` (up to the blank line); `None` if it is not HTTP.
    pub(super) fn parse(head: &[u8]) -> Option<Self> {
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
    pub(super) fn host_allowed(&self, hosts: &[String]) -> bool {
        let Some(host) = &self.host else { return true };
        // The port goes: `[::1]:8787` -> `[::1]`, `name:8787` -> `name`.
        let name = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host.as_str(),
        };
        hosts.iter().any(|h| h == name)
    }
}

/// Answers one request that passed the checks.
pub(super) fn serve(stream: &TcpStream, request: &Request, shared: &Shared) -> std::io::Result<()> {
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

/// The live page's stream: what changed, at most every [`PUSH_INTERVAL`] (the final state at
/// once), while the client stays and the server runs. Nothing is computed between changes (but
/// the other ranks' states are asked for while they run).
fn events(mut stream: &TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\nConnection: keep-alive\r\nX-Accel-Buffering: no\r\n\r\nretry: 1000\n\n",
    )?;
    let (mut cursor, mut peers) = (Cursor::default(), Vec::new());
    let mut sent: Option<u64> = None;
    let (mut quiet, mut pushed) = (Instant::now(), None::<Instant>);
    while !shared.stop.load(Ordering::Acquire) {
        let closing = shared.closing.load(Ordering::Acquire);
        let due = closing || pushed.is_none_or(|at| at.elapsed() >= PUSH_INTERVAL);
        let version = shared.board.version();
        // Other ranks that still run change without telling: they are asked at every push.
        if due && (sent != Some(version) || (shared.peers.live() && !closing)) {
            let (mut message, next) = view::combined(&shared.board, &shared.peers, cursor, None, &mut peers);
            message.insert_str(0, "data: ");
            message.push_str("\n\n");
            stream.write_all(message.as_bytes())?;
            (cursor, sent, quiet, pushed) = (next, Some(version), Instant::now(), Some(Instant::now()));
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
        std::thread::sleep(TICK);
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
pub(super) fn respond(
    mut stream: &TcpStream,
    head_only: bool,
    status: &str,
    kind: &str,
    body: &[u8],
) -> std::io::Result<()> {
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
