//! `large-svd tsqr`: the exact SVD of a tall-and-skinny (or short-and-fat) matrix.

use outcore::files::{OutputDir, write_matrix_zarr};
use outcore::{CancelToken, ChunkedMatrix, Destination, Factor, Result, SvdOptions, SvdPlan, SvdResult};

use super::lifecycle::Command;
use crate::args::{RunArgs, TsqrArgs};
use crate::graphviz::write_visualization;
use crate::inputs::{commit_output, create_output, factor_store, open_matrix, output_share, shared_factor};
use crate::ranks;
use crate::report::human::{peaks_line, print_header, ranks_lines, usage_line, values_line, wrote_line};
use crate::report::summary::{Details, Summary};
use crate::session::Session;

/// What every rank has before the run: rank 0 alone holds the output directory and the large
/// factor's array it created there.
pub(super) struct Setup {
    a: ChunkedMatrix,
    options: SvdOptions,
    output: Option<OutputDir>,
    factor: Option<Destination<'static>>,
    plan: SvdPlan<'static>,
}

/// What the run gave.
pub(super) struct Outcome {
    a: ChunkedMatrix,
    svd: SvdResult,
    summary: Summary,
    output: Option<OutputDir>,
}

/// The array of the large factor: U for tall input, V for wide.
fn factor_name(a: &ChunkedMatrix) -> &'static str {
    if a.rows() >= a.cols() { "u.zarr" } else { "v.zarr" }
}

impl Command for TsqrArgs {
    type Setup = Setup;
    type Outcome = Outcome;
    const TITLE: &'static str = "TSQR SVD memory";

    fn set_up(&self, run: &RunArgs, cancel: CancelToken) -> Result<(Session, Setup)> {
        let a = open_matrix(&self.matrix)?;
        // Without --output there is nowhere to put U and V: computing them would cost three
        // more passes and memory the size of the input, to throw away.
        let mut options = SvdOptions::new()
            .vectors(!self.values_only && self.output.is_some())
            .check_finite(!self.matrix.no_check_finite);
        if let Some(f) = self.fan_in {
            options = options.fan_in(f);
        }
        if let Some(rows) = self.panel_rows {
            options = options.panel_rows(rows);
        }
        // Refuse a taken output path, or one over the input, before any work.
        let output = match &self.output {
            Some(p) if ranks::is_root() => Some(create_output(p, self.overwrite, &a, false)?),
            _ => None,
        };
        let (session, plan) =
            Session::planned(run, cancel, |engine| SvdPlan::new(engine, &a, &options), SvdPlan::memory_needed)?;
        if let Some(file) = run.visualize.as_ref().filter(|_| ranks::is_root()) {
            write_visualization(file, &plan.to_dot(&format!("TSQR SVD of {} x {}", a.rows(), a.cols()))?)?;
        }
        let factor = match (&output, plan.factor_grid()) {
            (Some(out), Some(grid)) => Some(factor_store(out, factor_name(&a), grid, &a)?),
            _ => None,
        };
        Ok((session, Setup { a, options, output, factor, plan }))
    }

    fn share(&self, setup: &Setup) -> Vec<u8> {
        output_share(setup.output.as_ref())
    }

    fn run(&self, session: &Session, setup: Setup, shared: &[u8]) -> Result<Outcome> {
        let Setup { a, options, output, factor, plan } = setup;
        // Once rank 0 created the large factor's array, the other ranks open it for their rows.
        let factor = match factor {
            Some(created) => Ok(created),
            None if plan.factor_grid().is_some() => shared_factor(shared, factor_name(&a)),
            None => Ok(Destination::Memory),
        };
        let (factor, _) = ranks::agree(factor, |_| Vec::new())?;
        if !session.json && ranks::is_root() {
            print_header("tsqr", &a, &session.limit_text(), &plan.summary());
            if self.output.is_none() && !self.values_only {
                eprintln!("singular values only: pass --output DIR to compute and write U and V");
            }
        }
        let svd = plan.run_with(&session.engine, factor, &session.control)?;
        let details =
            Details::Tsqr { values_only: !options.vectors, panels: plan.panels().len(), fan_in: plan.fan_in() };
        let summary = session.summary(("tsqr", details), &a, (Some(&svd.s), &svd.stats));
        Ok(Outcome { a, svd, summary, output })
    }

    fn gather(&self, outcome: &mut Outcome) -> Result<bool> {
        outcome.summary.gather_ranks()
    }

    fn finish(&self, session: &Session, outcome: Outcome) -> Result<()> {
        let Outcome { a, svd, mut summary, output } = outcome;
        if let Some(out) = output {
            let small = match (&svd.u, &svd.v) {
                (Some(Factor::Dense(u)), _) => Some(("u.zarr", u)),
                (_, Some(Factor::Dense(v))) => Some(("v.zarr", v)),
                _ => None,
            };
            if let Some((name, m)) = small {
                write_matrix_zarr(&out.path().join(name), m.as_ref(), m.nrows(), a.store().dtype())?;
            }
            commit_output(out, &mut summary)?;
        }
        if session.json {
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
        } else {
            println!("singular values: {}", values_line(&svd.s, 10));
            println!("{}", usage_line(&summary, ""));
            println!("{}", peaks_line(&summary.memory.peaks));
            for line in ranks_lines(&summary) {
                println!("{line}");
            }
            if let Some(path) = &self.output {
                println!("{}", wrote_line(path));
            }
        }
        Ok(())
    }
}
