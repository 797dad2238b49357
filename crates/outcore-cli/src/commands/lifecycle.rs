//! The one order every command follows, written once: on every rank of a job (or in the one
//! process), set up and agree to go on; meet (the dashboard's ranks); run; gather the boards
//! and then the figures on rank 0, before rank 0 does anything alone; rank 0 finishes (writes
//! outputs, prints); every rank writes its side files last. The steps between ranks are
//! collectives that every rank reaches.

use outcore::{CancelToken, Result};

use crate::args::RunArgs;
use crate::ranks;
use crate::session::Session;

/// A command, as [`execute`] runs it.
pub(super) trait Command {
    /// What every rank holds once the setup succeeded on every rank.
    type Setup;
    /// What the runs produced, on every rank.
    type Outcome;
    /// The title of the memory plot.
    const TITLE: &'static str;

    /// Builds the session and everything that can fail on one rank before any work (the
    /// input, the plan, the output directory on rank 0).
    fn set_up(&self, run: &RunArgs, cancel: CancelToken) -> Result<(Session, Self::Setup)>;

    /// What rank 0 shares with the other ranks once all agreed (its output directory's path).
    fn share(&self, _setup: &Self::Setup) -> Vec<u8> {
        Vec::new()
    }

    /// The runs, on every rank; `shared` is rank 0's [`share`](Self::share).
    fn run(&self, session: &Session, setup: Self::Setup, shared: &[u8]) -> Result<Self::Outcome>;

    /// Brings every rank's figures to rank 0 (a collective every rank reaches); whether this
    /// rank finishes the command: rank 0, or the one process.
    fn gather(&self, _outcome: &mut Self::Outcome) -> Result<bool> {
        Ok(ranks::is_root())
    }

    /// On rank 0 (or the one process): commits the outputs and prints the summary.
    fn finish(&self, session: &Session, outcome: Self::Outcome) -> Result<()>;
}

/// Runs `command` through its steps, in the one order.
pub(super) fn execute<C: Command>(command: &C, run: &RunArgs, cancel: CancelToken) -> Result<()> {
    let ((session, setup), shared) = ranks::agree(command.set_up(run, cancel), |(_, setup)| command.share(setup))?;
    session.meet_ranks()?;
    let mut outcome = command.run(&session, setup, &shared)?;
    session.finish_progress();
    session.gather_boards()?;
    if command.gather(&mut outcome)? {
        command.finish(&session, outcome)?;
    }
    session.write_side_files(run, C::TITLE)
}
