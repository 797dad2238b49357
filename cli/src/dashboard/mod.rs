//! The live dashboard (`--dashboard`) and the run report (`--report FILE.html`).
//!
//! A [`Board`] is one more consumer of the run's events, beside the progress bar and the memory
//! timeline; the [`Server`] shows it in the browser. The page is one embedded file (no CDN, no
//! version to pin) asking relative URLs, so it works behind jupyter-server-proxy:
//!
//! ```text
//!  run events ──▶ Board (bounded: TASK_CAP tasks, SAMPLE_CAP samples) ──▶ /api/state.json
//!                   │                                                 ──▶ /api/events (SSE, <= 10 Hz,
//!                   │                                                      only while a page is open)
//!                   │                                                 ──▶ /metrics, /trace.json
//!                   └──▶ --report FILE.html: the page with the whole state inlined
//! ```

mod board;
mod ranks;
mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outcore::storage::StorageError;
use outcore::{CancelToken, Error, Result};

use board::Cursor;
pub use board::{BOARD_BYTES, Board};
use ranks::Peers;
use server::{Access, Server};

/// The page, with `state` (the whole state as JSON) inlined for a report, or none to ask the
/// server.
pub fn page(state: Option<&str>) -> String {
    const PAGE: &str = include_str!("page.html");
    // `</` cannot end the inlined script early: JSON may write `<\/` for `</`.
    let data = state.map_or_else(|| "null".to_string(), |s| s.replace("</", "<\\/"));
    PAGE.replacen("/*STATE*/null", &data, 1)
}

/// `board`'s state after `cursor`, with the other ranks' after `peer_cursors` (as `"ranks"`),
/// and the cursor after it.
fn combined(board: &Board, peers: &Peers, cursor: Cursor, peer_cursors: &mut Vec<Option<Cursor>>) -> (String, Cursor) {
    let (mut state, next) = board.state_json(cursor);
    let others = peers.states(peer_cursors);
    if !others.is_empty() && state.ends_with('}') {
        state.pop();
        state.push_str(",\"ranks\":[");
        state.push_str(&others.join(","));
        state.push_str("]}");
    }
    (state, next)
}

/// A command's dashboard: the board its runs feed, and the server showing it, if asked for.
/// On another rank than 0 of an MPI job, the server is for rank 0 alone.
pub struct Dashboard {
    board: Arc<Board>,
    peers: Arc<Peers>,
    server: Option<Server>,
    /// Where `--report` goes.
    pub report: Option<PathBuf>,
}

impl Dashboard {
    /// A board for a command whose runs use up to `threads` workers, served at `--dashboard`
    /// if given.
    pub fn start(run: &crate::cli::RunArgs, threads: usize, started: Instant) -> Result<Self> {
        let title = std::env::args().map(|a| if a.contains(' ') { format!("{a:?}") } else { a }).collect::<Vec<_>>();
        let (rank, pid) = (crate::ranks::rank(), std::process::id());
        let name = match crate::ranks::in_job() {
            true => format!("rank {rank} ({}, pid {pid})", ranks::hostname()),
            false => format!("pid {pid}"),
        };
        let board = Arc::new(Board::new(title.join(" "), rank, name, threads, started));
        let peers = Arc::new(Peers::default());
        let server = match (rank, run.dashboard.as_deref()) {
            (0, Some(addr)) => {
                let access = Access::User { allow_remote: run.dashboard_allow_remote };
                Some(Server::start(board.clone(), peers.clone(), addr, access)?)
            }
            (0, None) => None,
            _ => Some(Server::start(board.clone(), peers.clone(), "0.0.0.0:0", Access::Peer)?),
        };
        if let Some(server) = server.as_ref().filter(|_| rank == 0) {
            eprintln!("dashboard: {}", server.url());
        }
        Ok(Self { board, peers, server, report: run.report.clone().filter(|_| rank == 0) })
    }

    /// The board, the sink of the command's runs.
    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// In an MPI job, on every rank: tells rank 0 where each other rank serves its board.
    pub fn meet_ranks(&self) -> Result<()> {
        let mine = match (&self.server, crate::ranks::rank()) {
            (Some(server), r) if r > 0 => match server.endpoint() {
                (port, Some(token)) => ranks::introduce(port, token),
                (_, None) => return Err(Error::Bug("a rank's board is served without a token".into())),
            },
            _ => Vec::new(),
        };
        if let Some(parts) = crate::ranks::gather(mine)? {
            self.peers.meet(&parts);
        }
        Ok(())
    }

    /// In an MPI job, on every rank, at the end: sends rank 0 each rank's final state.
    pub fn gather_ranks(&self) -> Result<()> {
        let (mine, _) = self.board.state_json(Cursor::default());
        if let Some(parts) = crate::ranks::gather(mine.into_bytes())? {
            self.peers.finish(parts);
            self.board.touch();
        }
        Ok(())
    }

    /// Writes the report to `path`: the page with the state so far inlined (every rank's, in
    /// an MPI job), readable offline.
    pub fn write_report(&self, path: &std::path::Path) -> Result<()> {
        let (state, _) = combined(&self.board, &self.peers, Cursor::default(), &mut Vec::new());
        std::fs::write(path, page(Some(&state))).map_err(|e| StorageError::io(path, e).into())
    }

    /// Keeps serving the finished command for `seconds`, or until `cancel` (Ctrl-C) (rank 0).
    pub fn linger(&self, seconds: f64, cancel: &CancelToken) {
        let Some(server) = self.server.as_ref().filter(|_| crate::ranks::is_root()) else { return };
        if seconds <= 0.0 {
            return;
        }
        eprintln!("dashboard: serving the finished run at {} for {seconds} s (Ctrl-C to stop)", server.url());
        let until = Instant::now() + Duration::from_secs_f64(seconds.min(1e9));
        while Instant::now() < until && !cancel.is_cancelled() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
