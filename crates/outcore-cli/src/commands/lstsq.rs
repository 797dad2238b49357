//! `large-svd lstsq`: least squares `A X = B` in one pass over `[A | B]`, with a regression's
//! figures; X in the summary and in `x.zarr`.

use outcore::files::{OutputDir, write_matrix_zarr};
use outcore::{CancelToken, ChunkedMatrix, Error, Knob, LstsqOptions, LstsqPlan, LstsqResult, Result};

use super::lifecycle::Command;
use crate::args::{LstsqArgs, RunArgs};
use crate::graphviz::write_visualization;
use crate::inputs::{commit_output, create_output, open_matrix, open_path};
use crate::ranks;
use crate::report::human::{peaks_line, print_header, ranks_lines, usage_line, values_line};
use crate::report::summary::{Details, LstsqFields, Summary, rows_of};
use crate::session::Session;

/// What every rank has before the run.
pub(super) struct Setup {
    a: ChunkedMatrix,
    b: ChunkedMatrix,
    weights: Option<ChunkedMatrix>,
    output: Option<OutputDir>,
    plan: LstsqPlan<'static>,
}

/// What the run gave.
pub(super) struct Outcome {
    a: ChunkedMatrix,
    fit: LstsqResult,
    summary: Summary,
    output: Option<OutputDir>,
}

impl LstsqArgs {
    fn options(&self) -> LstsqOptions {
        let mut options = LstsqOptions::new()
            .fit_intercept(self.fit_intercept)
            .alpha(self.alpha)
            .check_finite(!self.matrix.no_check_finite);
        if let Some(r) = self.rcond {
            options = options.rcond(r);
        }
        if let Some(f) = self.fan_in {
            options = options.fan_in(f);
        }
        if let Some(rows) = self.panel_rows {
            options = options.panel_rows(rows);
        }
        options
    }

    /// B: `--rhs`, or with a generated A, generated too (the next seed).
    fn rhs(&self) -> Result<ChunkedMatrix> {
        match (&self.rhs, &self.matrix.input) {
            (Some(path), _) => open_path(path, self.matrix.io),
            (None, None) => {
                let m = &self.matrix;
                ChunkedMatrix::generated(m.distribution, m.seed ^ 1, m.rows, self.rhs_cols, m.chunk_rows, self.rhs_cols)
            }
            (None, Some(_)) => Err(Error::invalid(
                Knob::Rhs,
                "a matrix read from --input needs its right-hand sides: pass them as a Zarr array or .npy file",
            )),
        }
    }
}

impl Command for LstsqArgs {
    type Setup = Setup;
    type Outcome = Outcome;
    const TITLE: &'static str = "least squares memory";

    fn set_up(&self, run: &RunArgs, cancel: CancelToken) -> Result<(Session, Setup)> {
        let a = open_matrix(&self.matrix)?;
        let b = self.rhs()?;
        let weights = self.weights.as_ref().map(|p| open_path(p, self.matrix.io)).transpose()?;
        let options = self.options();
        let output = match &self.output {
            Some(p) if ranks::is_root() => {
                outcore::files::check_no_overlap(&b, p)?;
                if let Some(w) = &weights {
                    outcore::files::check_no_overlap(w, p)?;
                }
                Some(create_output(p, self.overwrite, &a, false)?)
            }
            _ => None,
        };
        let (session, plan) = Session::planned(
            run,
            cancel,
            |engine| match &weights {
                Some(w) => LstsqPlan::weighted(engine, &a, &b, w, &options),
                None => LstsqPlan::new(engine, &a, &b, &options),
            },
            |p, w| p.tsqr().memory_needed(w),
        )?;
        if let Some(file) = run.visualize.as_ref().filter(|_| ranks::is_root()) {
            let title = format!("least squares, {} x {} and {} right-hand sides", a.rows(), a.cols(), b.cols());
            write_visualization(file, &plan.tsqr().to_dot(&title)?)?;
        }
        Ok((session, Setup { a, b, weights, output, plan }))
    }

    fn run(&self, session: &Session, setup: Setup, _shared: &[u8]) -> Result<Outcome> {
        let Setup { a, b, weights, output, plan } = setup;
        if !session.json && ranks::is_root() {
            print_header("lstsq", &a, &session.limit_text(), &plan.tsqr().summary());
            eprintln!("right-hand sides: {} ({} columns)", b.describe(), b.cols());
            if let Some(w) = &weights {
                eprintln!("weights: {}", w.describe());
            }
        }
        let fit = plan.run_with(&session.engine, &session.control)?;
        let fields = LstsqFields {
            rhs: b.describe(),
            rhs_cols: b.cols(),
            weights: weights.as_ref().map(ChunkedMatrix::describe),
            fit_intercept: self.fit_intercept,
            alpha: self.alpha,
            rcond: self.rcond,
            panels: plan.tsqr().panels().len(),
            fan_in: plan.tsqr().fan_in(),
            x: rows_of(&fit.x),
            intercept: fit.intercept.clone(),
            rank: fit.rank,
            residuals: fit.residuals.clone(),
            rss: fit.rss.clone(),
            r2: fit.r2.clone(),
            df_resid: fit.df_resid,
            stderr: fit.stderr.as_ref().map(rows_of),
            intercept_stderr: fit.intercept_stderr.clone(),
            cov_unscaled: fit.cov_unscaled.as_ref().map(rows_of),
            scale: fit.scale.clone(),
        };
        let summary = session.summary(("lstsq", Details::Lstsq(Box::new(fields))), &a, (Some(&fit.s), &fit.stats));
        Ok(Outcome { a, fit, summary, output })
    }

    fn gather(&self, outcome: &mut Outcome) -> Result<bool> {
        outcome.summary.gather_ranks()
    }

    fn finish(&self, session: &Session, outcome: Outcome) -> Result<()> {
        let Outcome { a, fit, mut summary, output } = outcome;
        if let Some(out) = output {
            write_matrix_zarr(&out.path().join("x.zarr"), fit.x.as_ref(), fit.x.nrows(), a.store().dtype())?;
            commit_output(out, &mut summary)?;
        }
        if session.json {
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            return Ok(());
        }
        for j in 0..fit.x.ncols() {
            let x: Vec<f64> = fit.x.col(j).iter().copied().collect();
            let intercept = fit.intercept.as_ref().map_or_else(String::new, |c| format!("intercept {:.6}, ", c[j]));
            println!("b[{j}]: {intercept}R^2 {:.6}, rss {:.6e}, x = {}", fit.r2[j], fit.rss[j], values_line(&x, 10));
        }
        println!("rank {} of {}; singular values of A: {}", fit.rank, a.cols(), values_line(&fit.s, 5));
        println!("{}", usage_line(&summary, ""));
        println!("{}", peaks_line(&summary.memory.peaks));
        for line in ranks_lines(&summary) {
            println!("{line}");
        }
        if let Some(path) = &self.output {
            println!("wrote {} (x.zarr, s.zarr, summary.json; x is cols x rhs_cols)", path.display());
        }
        Ok(())
    }
}
