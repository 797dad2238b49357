//! The other ranks of an MPI job, as rank 0's dashboard shows them: each rank is a worker.
//!
//! Every other rank keeps its own board and serves it to rank 0 alone (any address, a random
//! token it sends rank 0 over MPI, never printed). Rank 0 asks them for their state while a page
//! watches; at the end each rank sends its final state over MPI, which rank 0 keeps for the
//! report and the linger, when the other ranks are gone.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::board::{Cursor, Share};

/// How long rank 0 waits for another rank's state.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// Another rank, as rank 0 reaches it.
#[derive(Clone, Debug)]
struct Peer {
    rank: usize,
    /// host:port and token of its board's server (none without `--dashboard`: only the report
    /// asks for the ranks' states, at the end, over MPI).
    addr: Option<(String, String)>,
    /// Its state at the end of the command, once sent.
    last: Option<Arc<str>>,
}

/// The other ranks (none outside an MPI job).
#[derive(Debug, Default)]
pub(super) struct Peers {
    list: Mutex<Vec<Peer>>,
    /// The job's ranks, for each rank's share of a state.
    ranks: std::sync::atomic::AtomicUsize,
}

/// What a rank sends rank 0 when the job starts: where its board is served.
pub(super) fn introduce(port: u16, token: &str) -> Vec<u8> {
    format!("{}\n{port}\n{token}", hostname()).into_bytes()
}

impl Peers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Peer>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The job's ranks (1 outside a job, or before the ranks met).
    pub(super) fn ranks(&self) -> usize {
        self.ranks.load(std::sync::atomic::Ordering::Acquire).max(1)
    }

    /// On rank 0: the introductions gathered from every rank (rank 0's own, empty, first);
    /// empty ones from ranks that serve nothing.
    pub(super) fn meet(&self, parts: &[Vec<u8>]) {
        let me = hostname();
        let mut list = self.lock();
        self.ranks.store(parts.len(), std::sync::atomic::Ordering::Release);
        for (rank, part) in parts.iter().enumerate().skip(1) {
            let text = String::from_utf8_lossy(part);
            let mut lines = text.lines();
            let addr = match (lines.next(), lines.next(), lines.next()) {
                (Some(host), Some(port), Some(token)) => {
                    // A rank on this machine is reached over loopback.
                    let host = if host == me { "127.0.0.1" } else { host };
                    Some((format!("{host}:{port}"), token.to_string()))
                }
                _ => None,
            };
            list.push(Peer { rank, addr, last: None });
        }
    }

    /// On rank 0: every rank's final state, gathered at the end (rank 0's own first).
    pub(super) fn finish(&self, parts: Vec<Vec<u8>>) {
        let mut list = self.lock();
        self.ranks.store(parts.len(), std::sync::atomic::Ordering::Release);
        for (rank, part) in parts.into_iter().enumerate().skip(1) {
            let last = Some(String::from_utf8_lossy(&part).into());
            match list.iter_mut().find(|p| p.rank == rank) {
                Some(peer) => peer.last = last,
                None => list.push(Peer { rank, addr: None, last }),
            }
        }
    }

    /// The final state of `rank`, once sent.
    fn last_of(&self, rank: usize) -> Option<Arc<str>> {
        self.lock().iter().find(|p| p.rank == rank).and_then(|p| p.last.clone())
    }

    /// Whether some rank still runs (its state is asked for, not kept).
    pub(super) fn live(&self) -> bool {
        self.lock().iter().any(|p| p.last.is_none() && p.addr.is_some())
    }

    /// Appends to `out` the states of the other ranks after `cursors` (one per rank, grown as
    /// needed), each a JSON value followed by a comma; moves the cursors past them. A final
    /// state goes once to each client (the page keeps what it has seen); a rank that does not
    /// answer with a state is named as unreachable. The list is not locked while ranks are
    /// asked, and one answer at a time is held.
    pub(super) fn append_states(&self, out: &mut String, cursors: &mut Vec<Option<Cursor>>) {
        let list: Vec<Peer> = self.lock().clone();
        cursors.resize(list.len(), Some(Cursor::default()));
        let share = Share::of_rank(1, self.ranks());
        for (peer, cursor) in list.iter().zip(cursors.iter_mut()) {
            let Some(at) = *cursor else { continue };
            match (&peer.last, &peer.addr) {
                (Some(last), _) => {
                    *cursor = None;
                    out.push_str(last);
                }
                (None, Some((addr, token))) => {
                    let path = format!("/api/state.json?{}&{}&token={token}", at.query(), share.query());
                    match fetch(addr, &path).and_then(|text| Ok((advance(&text)?, text))) {
                        Ok((next, text)) => {
                            *cursor = Some(next);
                            out.push_str(&text);
                        }
                        // Gone since the list was read: its final state came first, if all went well.
                        Err(e) => match self.last_of(peer.rank) {
                            Some(last) => {
                                *cursor = None;
                                out.push_str(&last);
                            }
                            None => out.push_str(&unreachable(peer.rank, &format!("{addr} ({e})"))),
                        },
                    }
                }
                (None, None) => continue,
            }
            out.push(',');
        }
    }
}

/// What stands for a rank's state when it cannot be had.
fn unreachable(rank: usize, why: &str) -> String {
    serde_json::json!({"rank": rank, "unreachable": why}).to_string()
}

/// The cursor after a rank's state (which carries no samples): its stream's ends. A body that
/// is not a state is an error.
fn advance(state: &str) -> std::io::Result<Cursor> {
    let v: serde_json::Value =
        serde_json::from_str(state).map_err(|e| std::io::Error::other(format!("not a state: {e}")))?;
    let (Some(tasks), Some(from)) = (v["stream"]["tasks"].as_array(), v["stream"]["from"].as_u64()) else {
        return Err(std::io::Error::other("not a state: no task stream"));
    };
    let marks = v["stream"]["marks"].as_array().map_or(0, Vec::len) as u64;
    let next_mark = v["stream"]["marks_from"].as_u64().unwrap_or(0) + marks;
    Ok(Cursor { next_task: from + tasks.len() as u64, next_mark, ..Cursor::default() })
}

/// GET `path` from `addr`: the body of a 200 answer.
fn fetch(addr: &str, path: &str) -> std::io::Result<String> {
    use std::net::ToSocketAddrs;
    let target = addr.to_socket_addrs()?.next().ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&target, PEER_TIMEOUT)?;
    stream.set_read_timeout(Some(PEER_TIMEOUT))?;
    stream.set_write_timeout(Some(PEER_TIMEOUT))?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut text = String::new();
    // A board's state is bounded (see BOARD_BYTES): so is what is read.
    stream.take(super::board::BOARD_BYTES).read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("no answer"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(head.lines().next().unwrap_or("").to_string()));
    }
    Ok(body.to_string())
}

/// This machine's name (`localhost` where unknown).
pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "localhost".into(), |h| h.trim().to_string())
}
