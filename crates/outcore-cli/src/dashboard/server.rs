//! The dashboard's HTTP server: std::net, GET and HEAD only, relative routes, Server-Sent
//! Events for the live page. It binds, names its URL (with a token where one is needed) and
//! stops; `intake` takes its connections and checks them, `routes` answers them.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use outcore::{Error, Knob, Result};

use super::board::Board;
use super::intake::accept_loop;
use super::ranks::Peers;
use super::routes::Shared;

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
