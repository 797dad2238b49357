//! `large-svd grow`: an exact fit grown by new rows, kept in a state file between runs.

use outcore::{CancelToken, ChunkedMatrix, Error, FactorState, Knob, Result, SvdOptions, SvdPlan};

use super::lifecycle::Command;
use crate::args::{GrowArgs, RunArgs};
use crate::inputs::open_matrix;
use crate::report::human::{peaks_line, print_header, usage_line, values_line};
use crate::report::summary::{Details, Summary};
use crate::session::Session;

/// The new rows and the state they grow (loaded, or new).
pub(super) struct Setup {
    a: ChunkedMatrix,
    state: FactorState,
}

impl Command for GrowArgs {
    type Setup = Setup;
    type Outcome = (FactorState, Summary, Vec<f64>);
    const TITLE: &'static str = "grow memory";

    fn set_up(&self, run: &RunArgs, cancel: CancelToken) -> Result<(Session, Setup)> {
        let a = open_matrix(&self.matrix)?;
        let state = self.starting_state(&a)?;
        // The pass over the new rows is a centered TSQR (one row: nothing to center).
        let options = SvdOptions::new().center(a.rows() > 1).check_finite(!self.matrix.no_check_finite);
        let (session, _) =
            Session::planned(run, cancel, |engine| SvdPlan::new(engine, &a, &options), SvdPlan::memory_needed)?;
        Ok((session, Setup { a, state }))
    }

    fn run(&self, session: &Session, setup: Setup, _: &[u8]) -> Result<Self::Outcome> {
        let Setup { a, mut state } = setup;
        if !session.json {
            print_header("grow", &a, &session.limit_text(), &format!("state {}", self.state.display()));
        }
        let stats = state.update_with(&session.engine, &a, &session.control)?;
        // With two rows or more, the PCA of every row seen; with one, its SVD.
        let svd = state.svd(state.rows() > 1)?;
        let ratio = match &svd.centered {
            Some(c) if c.total_variance > 0.0 => {
                svd.s.iter().map(|s| s * s / (state.rows() as f64 - 1.0) / c.total_variance).collect()
            }
            _ => Vec::new(),
        };
        let details = Details::Grow {
            state: self.state.clone(),
            rows_seen: state.rows(),
            rows_added: a.rows(),
            explained_variance_ratio: ratio.clone(),
        };
        let summary = session.summary(("grow", details), &a, (Some(&svd.s), &stats));
        Ok((state, summary, ratio))
    }

    fn finish(&self, session: &Session, outcome: Self::Outcome) -> Result<()> {
        let (state, summary, ratio) = outcome;
        // Written whole or not at all: a failed run leaves the old state as it was.
        state.save(&self.state)?;
        if session.json {
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            return Ok(());
        }
        let added = summary.shape[0];
        println!("rows seen: {} ({added} added now)", state.rows());
        if let Some(s) = &summary.singular_values {
            let what = if ratio.is_empty() { "singular values" } else { "singular values (centered)" };
            println!("{what}: {}", values_line(s, 10));
        }
        if !ratio.is_empty() {
            println!("explained variance ratio: {}", values_line(&ratio, 10));
        }
        println!("{}", usage_line(&summary, ""));
        println!("{}", peaks_line(&summary.memory.peaks));
        println!("state written: {}", self.state.display());
        Ok(())
    }
}

impl GrowArgs {
    /// The state to grow: a new one with `--new` (refusing to replace a file without
    /// `--overwrite`), else the file's, which must take the matrix's columns.
    fn starting_state(&self, a: &ChunkedMatrix) -> Result<FactorState> {
        let path = &self.state;
        let flag = Knob::Program("--state");
        if self.new {
            if path.exists() && !self.overwrite {
                let reason =
                    format!("{} exists; add --overwrite to start over, or drop --new to grow it", path.display());
                return Err(Error::invalid(flag, reason));
            }
            return Ok(FactorState::new(a.cols()));
        }
        if !path.exists() {
            let reason = format!("{} does not exist; add --new to start a state there", path.display());
            return Err(Error::invalid(flag, reason));
        }
        let state = FactorState::load(path)?;
        if state.cols() != a.cols() {
            let reason = format!(
                "{} holds a fit of {} columns and the matrix has {}: a state grows by rows of its own columns",
                path.display(),
                state.cols(),
                a.cols()
            );
            return Err(Error::invalid(flag, reason));
        }
        Ok(state)
    }
}
