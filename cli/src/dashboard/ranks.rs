//! The other ranks of an MPI job, as rank 0's dashboard shows them: each rank is a worker.
//!
//! Every other rank keeps its own board and serves it to rank 0 alone (any address, a random
//! token it sends rank 0 over MPI, never printed). Rank 0 asks them for their state while a page
//! watches; at the end each rank sends its final state over MPI, which rank 0 keeps for the
//! report and the linger, when the other ranks are gone.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use super::board::Cursor;

/// How long rank 0 waits for another rank's state.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// Another rank, as rank 0 reaches it.
#[derive(Debug)]
struct Peer {
    rank: usize,
    /// host:port and token of its board's server.
    addr: String,
    token: String,
    /// Its state at the end of the command, once sent.
    last: Option<String>,
}

/// The other ranks (none outside an MPI job).
#[derive(Debug, Default)]
pub struct Peers {
    list: Mutex<Vec<Peer>>,
}

/// What a rank sends rank 0 when the job starts: where its board is served.
pub fn introduce(port: u16, token: &str) -> Vec<u8> {
    format!("{}\n{port}\n{token}", hostname()).into_bytes()
}

impl Peers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Peer>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// On rank 0: the introductions gathered from every rank (rank 0's own, empty, first).
    pub fn meet(&self, parts: &[Vec<u8>]) {
        let me = hostname();
        let mut list = self.lock();
        for (rank, part) in parts.iter().enumerate().skip(1) {
            let text = String::from_utf8_lossy(part);
            let mut lines = text.lines();
            let (Some(host), Some(port), Some(token)) = (lines.next(), lines.next(), lines.next()) else { continue };
            // A rank on this machine is reached over loopback.
            let host = if host == me { "127.0.0.1" } else { host };
            list.push(Peer { rank, addr: format!("{host}:{port}"), token: token.to_string(), last: None });
        }
    }

    /// On rank 0: every rank's final state, gathered at the end (rank 0's own first).
    pub fn finish(&self, parts: Vec<Vec<u8>>) {
        let mut list = self.lock();
        for (rank, part) in parts.into_iter().enumerate().skip(1) {
            if let Some(peer) = list.iter_mut().find(|p| p.rank == rank) {
                peer.last = Some(String::from_utf8_lossy(&part).into_owned());
            }
        }
    }

    /// Whether some rank still runs (its state is asked for, not kept).
    pub fn live(&self) -> bool {
        self.lock().iter().any(|p| p.last.is_none())
    }

    /// The states of the other ranks after `cursors` (one per rank, grown as needed), as JSON
    /// values, and the cursors after them. A final state goes only to a client whose cursor
    /// for that rank has not passed it; a rank that does not answer is named as unreachable.
    pub fn states(&self, cursors: &mut Vec<Option<Cursor>>) -> Vec<String> {
        let list = self.lock();
        cursors.resize(list.len(), Some(Cursor::default()));
        let mut states = Vec::new();
        for (peer, cursor) in list.iter().zip(cursors.iter_mut()) {
            let Some(at) = *cursor else { continue };
            let state = match &peer.last {
                Some(last) => {
                    // Sent whole, once: the client keeps what it has seen.
                    *cursor = None;
                    Ok(last.clone())
                }
                None => fetch(&peer.addr, &format!("/api/state.json?{}&token={}", at.query(), peer.token)),
            };
            match state {
                Ok(text) => {
                    if peer.last.is_none() {
                        *cursor = Some(advance(&text, at));
                    }
                    states.push(text);
                }
                Err(e) => states.push(
                    serde_json::json!({"rank": peer.rank, "unreachable": format!("{} ({e})", peer.addr)}).to_string(),
                ),
            }
        }
        states
    }
}

/// The cursor after a state: its stream's end and its last sample.
fn advance(state: &str, at: Cursor) -> Cursor {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(state) else { return at };
    let tasks = v["stream"]["tasks"].as_array().map_or(0, Vec::len) as u64;
    let from = v["stream"]["from"].as_u64().unwrap_or(at.next_task);
    let last = v["timeline"].as_array().and_then(|t| t.last()).and_then(|p| p[0].as_f64());
    // The sample times sent are rounded; the next query asks from just past the last one.
    Cursor { next_task: from + tasks, last_sample: last.map_or(at.last_sample, |t| t as f32 + 5e-5) }
}

/// GET `path` from `addr`: the body of a 200 answer.
fn fetch(addr: &str, path: &str) -> std::io::Result<String> {
    use std::net::ToSocketAddrs;
    let target = addr.to_socket_addrs()?.next().ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&target, PEER_TIMEOUT)?;
    stream.set_read_timeout(Some(PEER_TIMEOUT))?;
    stream.set_write_timeout(Some(PEER_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    // A board's state is bounded (see BOARD_BYTES): so is what is read.
    stream.take(super::BOARD_BYTES).read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("no answer"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(head.lines().next().unwrap_or("").to_string()));
    }
    Ok(body.to_string())
}

/// This machine's name (`localhost` where unknown).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "localhost".into(), |h| h.trim().to_string())
}
