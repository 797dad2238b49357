//! `large-svd rsvd`: the randomized SVD (top k) of a matrix chunked any way, with an error
//! estimate.

use std::sync::Arc;

use outcore::files::OutputDir;
use outcore::storage::{ChunkGrid, MemoryStore};
use outcore::{
    CancelToken, ChunkedMatrix, Destination, RandomizedSvdOptions, RandomizedSvdPlan, RandomizedSvdResult, Result,
};

use super::lifecycle::Command;
use crate::args::{RsvdArgs, RunArgs};
use crate::graphviz::write_visualization;
use crate::inputs::{commit_output, create_output, factor_store, open_matrix, output_share, shared_factor};
use crate::ranks;
use crate::report::human::{peaks_line, print_header, ranks_lines, usage_line, values_line, wrote_line};
use crate::report::json;
use crate::report::summary::{Details, Summary};
use crate::session::Session;

/// What every rank has before the run: rank 0 alone holds the output directory and the arrays
/// of U and V it created there.
pub(super) struct Setup {
    a: ChunkedMatrix,
    options: RandomizedSvdOptions,
    output: Option<OutputDir>,
    created: Option<(Destination<'static>, Destination<'static>)>,
    plan: RandomizedSvdPlan<'static>,
}

/// What the run gave.
pub(super) struct Outcome {
    result: RandomizedSvdResult,
    summary: Summary,
    output: Option<OutputDir>,
}

/// Where U or V goes on a rank that did not create it: the array rank 0 created in its output
/// directory, or RAM (on a rank of a job, a store of its own: each rank writes only its rows,
/// and nothing gathers them).
fn destination(shared: &[u8], name: &str, grid: ChunkGrid) -> Result<Destination<'static>> {
    match shared {
        [_, ..] => shared_factor(shared, name),
        [] if ranks::count() > 1 => Ok(Destination::Store(Arc::new(MemoryStore::new(grid)))),
        [] => Ok(Destination::Memory),
    }
}

impl Command for RsvdArgs {
    type Setup = Setup;
    type Outcome = Outcome;
    const TITLE: &'static str = "randomized SVD memory";

    fn set_up(&self, run: &RunArgs, cancel: CancelToken) -> Result<(Session, Setup)> {
        let a = open_matrix(&self.matrix())?;
        let options = RandomizedSvdOptions::new(self.k)
            .oversamples(self.oversamples)
            .power_iters(self.power_iters)
            .method(self.method)
            .seed(self.seed)
            .probes(self.probes)
            .check_finite(!self.no_check_finite);
        let output = match &self.output {
            Some(p) if ranks::is_root() => Some(create_output(p, self.overwrite, &a, false)?),
            _ => None,
        };
        let (session, plan) = Session::planned(
            run,
            cancel,
            |engine| RandomizedSvdPlan::new(engine, &a, &options),
            RandomizedSvdPlan::memory_needed,
        )?;
        if let Some(file) = run.visualize.as_ref().filter(|_| ranks::is_root()) {
            let title = format!("randomized SVD of {} x {}, k = {}", a.rows(), a.cols(), self.k);
            write_visualization(file, &plan.to_dot(&title)?)?;
        }
        let (u_grid, v_grid) = plan.factor_grids()?;
        let created = match &output {
            Some(out) => Some((factor_store(out, "u.zarr", u_grid, &a)?, factor_store(out, "v.zarr", v_grid, &a)?)),
            None => None,
        };
        Ok((session, Setup { a, options, output, created, plan }))
    }

    fn share(&self, setup: &Setup) -> Vec<u8> {
        output_share(setup.output.as_ref())
    }

    fn run(&self, session: &Session, setup: Setup, shared: &[u8]) -> Result<Outcome> {
        let Setup { a, options, output, created, plan } = setup;
        let (u_grid, v_grid) = plan.factor_grids()?;
        let factors = match created {
            Some(created) => Ok(created),
            None => destination(shared, "u.zarr", u_grid).and_then(|u| Ok((u, destination(shared, "v.zarr", v_grid)?))),
        };
        let ((u, v), _) = ranks::agree(factors, |_| Vec::new())?;
        if !session.json && ranks::is_root() {
            print_header("rsvd", &a, &session.limit_text(), &plan.summary());
        }
        let result = plan.run_with(&session.engine, u, v, &session.control)?;
        let details = Details::Rsvd {
            k: self.k,
            oversamples: self.oversamples,
            power_iters: plan.options().power_iters,
            power_iters_run: plan.iterations(),
            method: json::method(options.method),
            error_estimate: (&result.error).into(),
            passes_over_input: result.passes,
        };
        let summary = session.summary(("rsvd", details), &a, (Some(&result.svd.s), &result.svd.stats));
        Ok(Outcome { result, summary, output })
    }

    fn gather(&self, outcome: &mut Outcome) -> Result<bool> {
        outcome.summary.gather_ranks()
    }

    fn finish(&self, session: &Session, outcome: Outcome) -> Result<()> {
        let Outcome { result, mut summary, output } = outcome;
        if let Some(out) = output {
            commit_output(out, &mut summary)?;
        }
        if session.json {
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            return Ok(());
        }
        let (s, error) = (&result.svd.s, &result.error);
        println!("singular values: {}", values_line(s, 10));
        println!(
            "error estimate: {:.4e} <= ||A - U S V^T|| <= {:.4e} ({:.2}% of sigma_1, probability >= 1 - {:.0e}); Frobenius about {:.4e} ({:.2}% of sigma_1)",
            error.spectral_lower_bound,
            error.spectral_bound,
            100.0 * error.relative_spectral_bound,
            error.failure_probability,
            error.frobenius,
            100.0 * error.relative_frobenius
        );
        println!("{}", usage_line(&summary, &format!(", {} passes over A", result.passes)));
        println!("{}", peaks_line(&summary.memory.peaks));
        for line in ranks_lines(&summary) {
            println!("{line}");
        }
        if let Some(path) = &self.output {
            println!("{}", wrote_line(path));
        }
        Ok(())
    }
}
