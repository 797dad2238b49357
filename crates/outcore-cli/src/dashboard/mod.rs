//! The live dashboard (`--dashboard`) and the run report (`--report FILE.html`).
//!
//! A [`Board`] is one more consumer of the run's events, beside the progress bar and the memory
//! timeline; the [`Server`] shows it in the browser. The page is one embedded file (no CDN, no
//! version to pin) asking relative URLs, so it works behind jupyter-server-proxy:
//!
//! ```text
//!  run events ──▶ Board (bounded: TASK_CAP tasks, SAMPLE_CAP samples) ──▶ /api/state.json
//!                   │                                                 ──▶ /api/events (SSE, <= 2 Hz,
//!                   │                                                      only while a page is open)
//!                   │                                                 ──▶ /metrics, /trace.json
//!                   └──▶ --report FILE.html: the page with the whole state inlined
//! ```

mod board;
mod intake;
mod ranks;
mod routes;
mod server;
mod view;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outcore::storage::StorageError;
use outcore::{CancelToken, Error, Result};

pub(crate) use board::Board;
use board::Roofs;
use board::{BOARD_BYTES, Cursor, RANK_BYTES, Share};
use ranks::Peers;
use server::{Access, Server};

/// The most a process's dashboard holds: its board, the request heads its server awaits, and
/// on rank 0 more for each other rank of a job.
pub(crate) fn held_bytes() -> u64 {
    let others = if crate::ranks::is_root() { crate::ranks::count() - 1 } else { 0 };
    BOARD_BYTES + intake::PENDING_BYTES + others as u64 * RANK_BYTES
}

/// A command's dashboard: the board its runs feed, and the server showing it, if asked for.
/// On another rank than 0 of an MPI job, the server is for rank 0 alone.
pub(crate) struct Dashboard {
    board: Arc<Board>,
    peers: Arc<Peers>,
    server: Option<Server>,
    /// Where `--report` goes.
    pub report: Option<PathBuf>,
}

impl Dashboard {
    /// A board for a command whose runs use up to `threads` workers, served at `--dashboard`
    /// if given.
    pub(crate) fn start(run: &crate::args::RunArgs, threads: usize, started: Instant) -> Result<Self> {
        let title = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .map(|a| if a.contains(' ') { format!("{a:?}") } else { a })
            .collect::<Vec<_>>();
        let (rank, pid) = (crate::ranks::rank(), std::process::id());
        let name = match crate::ranks::in_job() {
            true => format!("rank {rank} ({}, pid {pid})", ranks::hostname()),
            false => format!("pid {pid}"),
        };
        // The roofs only where someone will see them.
        let shown = run.dashboard.is_some() || run.report.is_some();
        let roofs = if shown { Roofs::measure(threads) } else { Roofs::default() };
        let board = Arc::new(Board::new(title.join(" "), rank, name, threads, roofs, started));
        let peers = Arc::new(Peers::default());
        let server = match (rank, run.dashboard.as_deref()) {
            (0, Some(addr)) => {
                let access = Access::User {
                    allow_remote: run.dashboard_allow_remote,
                    allowed_hosts: run.dashboard_allow_host.clone(),
                };
                Some(Server::start(board.clone(), peers.clone(), addr, access)?)
            }
            (0, None) | (_, None) => None,
            (_, Some(_)) => Some(Server::start(board.clone(), peers.clone(), "0.0.0.0:0", Access::Peer)?),
        };
        if let Some(server) = server.as_ref().filter(|_| rank == 0) {
            eprintln!("dashboard: {}", server.url());
        }
        Ok(Self { board, peers, server, report: run.report.clone().filter(|_| rank == 0) })
    }

    /// The board, the sink of the command's runs.
    pub(crate) fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// In an MPI job, on every rank: tells rank 0 where each other rank serves its board.
    pub(crate) fn meet_ranks(&self) -> Result<()> {
        // Rank 0 and, without --dashboard, every rank: nothing to reach.
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

    /// Marks the command done: its runs are over.
    pub(crate) fn close(&self) {
        self.board.close();
    }

    /// In an MPI job, on every rank, once the runs are over and before rank 0 does anything
    /// alone: sends rank 0 each rank's final state (its share), then waits until rank 0 has
    /// them all, so that no rank's board goes away while rank 0 still asks for it.
    pub(crate) fn gather_ranks(&self) -> Result<()> {
        self.board.close();
        let share = Share::of_rank(crate::ranks::rank(), crate::ranks::count());
        let (mine, _) = self.board.state_json(Cursor::default(), share);
        if let Some(parts) = crate::ranks::gather(mine.into_bytes())? {
            self.peers.finish(parts);
            self.board.touch();
        }
        crate::ranks::agree(Ok(()), |()| Vec::new()).map(drop)
    }

    /// Writes the report to `path`: the page with the state so far inlined (every rank's, in
    /// an MPI job), readable offline.
    pub(crate) fn write_report(&self, path: &std::path::Path) -> Result<()> {
        let (state, _) = view::combined(&self.board, &self.peers, Cursor::default(), None, &mut Vec::new());
        std::fs::write(path, view::page(Some(&state))).map_err(|e| StorageError::io(path, e).into())
    }

    /// Keeps serving the finished command for `seconds`, or until `cancel` (Ctrl-C) (rank 0).
    pub(crate) fn linger(&self, seconds: f64, cancel: &CancelToken) {
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
