//! `large-svd qr`: the QR of a tall matrix, R in the summary (its diagonal) and in `r.zarr`,
//! Q in `q.zarr` (or `Q C` in `qc.zarr`), `Q^T B` in the summary and `qtb.zarr`; of a wide
//! one, the LQ `A = L Q` through the QR of its transpose, L in `l.zarr`, `Q^T` in `qt.zarr`.

use outcore::files::{OutputDir, write_matrix_zarr};
use outcore::{
    CancelToken, ChunkedMatrix, Destination, Error, Knob, Message, QrMode, QrOptions, QrPlan, QrResult, Result,
};

use super::lifecycle::Command;
use crate::args::{QrArgs, RunArgs};
use crate::graphviz::write_visualization;
use crate::inputs::{commit_output, create_output, factor_store, open_matrix, open_path, output_share, shared_factor};
use crate::ranks;
use crate::report::human::{peaks_line, print_header, ranks_lines, usage_line, values_line};
use crate::report::summary::{Details, Summary, rows_of};
use crate::session::Session;

/// What every rank has before the run: rank 0 alone holds the output directory and the Q
/// array it created there. `a` is the matrix factored: the input, or its transpose for an LQ.
pub(super) struct Setup {
    a: ChunkedMatrix,
    b: Option<ChunkedMatrix>,
    lq: bool,
    output: Option<OutputDir>,
    q: Option<Destination<'static>>,
    plan: QrPlan<'static>,
}

/// What the run gave.
pub(super) struct Outcome {
    a: ChunkedMatrix,
    lq: bool,
    qr: QrResult,
    summary: Summary,
    output: Option<OutputDir>,
}

impl QrArgs {
    /// Q is computed only where it can be written: mode reduced with `--output`.
    fn options(&self) -> Result<QrOptions> {
        let mode = if self.output.is_some() { self.mode } else { QrMode::R };
        let mut options = QrOptions::new().mode(mode).check_finite(!self.matrix.no_check_finite);
        if let Some(path) = &self.q_times {
            if self.output.is_none() {
                let reason = Message::new()
                    .knob(Knob::QTimes)
                    .text(" writes Q C to the output directory, as qc.zarr: pass ")
                    .knob(Knob::Destination)
                    .text(" DIR");
                return Err(Error::invalid(Knob::QTimes, reason));
            }
            options = options.q_times(open_path(path, self.matrix.io)?.to_dense()?);
        }
        if let Some(f) = self.fan_in {
            options = options.fan_in(f);
        }
        if let Some(rows) = self.panel_rows {
            options = options.panel_rows(rows);
        }
        Ok(options)
    }

    /// Q's array in the output: `Q C` with `--q-times`, `Q^T` of an LQ.
    fn q_name(&self, lq: bool) -> &'static str {
        match (lq, self.q_times.is_some()) {
            (true, _) => "qt.zarr",
            (false, true) => "qc.zarr",
            (false, false) => "q.zarr",
        }
    }

    /// The matrix to factor: the input, or for a wide one (an LQ) its transpose, which takes
    /// neither `--rhs` nor `--q-times`.
    fn factored(&self, input: ChunkedMatrix) -> Result<(ChunkedMatrix, bool)> {
        if input.rows() >= input.cols() {
            return Ok((input, false));
        }
        if self.rhs.is_some() || self.q_times.is_some() {
            let (m, n) = input.shape();
            let reason = format!(
                "the matrix is {m} x {n}, wide, so qr factors it as A = L Q (an LQ, through the QR of its transpose), whose Q is not applied here: leave out --rhs and --q-times"
            );
            return Err(Error::invalid(Knob::Input, reason));
        }
        Ok((input.t(), true))
    }
}

impl Command for QrArgs {
    type Setup = Setup;
    type Outcome = Outcome;
    const TITLE: &'static str = "QR memory";

    fn set_up(&self, run: &RunArgs, cancel: CancelToken) -> Result<(Session, Setup)> {
        let (a, lq) = self.factored(open_matrix(&self.matrix)?)?;
        let b = self.rhs.as_ref().map(|p| open_path(p, self.matrix.io)).transpose()?;
        let options = self.options()?;
        let output = match &self.output {
            Some(p) if ranks::is_root() => {
                if let Some(b) = &b {
                    outcore::files::check_no_overlap(b, p)?;
                }
                Some(create_output(p, self.overwrite, &a, false)?)
            }
            _ => None,
        };
        let (session, plan) = Session::planned(
            run,
            cancel,
            |engine| match &b {
                Some(b) => QrPlan::with_qt(engine, &a, b, &options),
                None => QrPlan::new(engine, &a, &options),
            },
            |p, w| p.tsqr().memory_needed(w),
        )?;
        if let Some(file) = run.visualize.as_ref().filter(|_| ranks::is_root()) {
            let title = match lq {
                true => format!("LQ of {} x {} (the QR of its transpose)", a.cols(), a.rows()),
                false => format!("QR of {} x {}", a.rows(), a.cols()),
            };
            write_visualization(file, &plan.tsqr().to_dot(&title)?)?;
        }
        let q = match (&output, plan.q_grid()) {
            (Some(out), Some(grid)) => Some(factor_store(out, self.q_name(lq), grid, &a)?),
            _ => None,
        };
        Ok((session, Setup { a, b, lq, output, q, plan }))
    }

    fn share(&self, setup: &Setup) -> Vec<u8> {
        output_share(setup.output.as_ref())
    }

    fn run(&self, session: &Session, setup: Setup, shared: &[u8]) -> Result<Outcome> {
        let Setup { a, b, lq, output, q, plan } = setup;
        // Once rank 0 created Q's array, the other ranks open it for their rows.
        let q = match q {
            Some(created) => Ok(created),
            None if plan.q_grid().is_some() => shared_factor(shared, self.q_name(lq)),
            None => Ok(Destination::Memory),
        };
        let (q, _) = ranks::agree(q, |_| Vec::new())?;
        if !session.json && ranks::is_root() {
            print_header("qr", &a, &session.limit_text(), &plan.tsqr().summary());
            if lq {
                eprintln!("a wide matrix: A = L Q, through the QR of its transpose (L = R^T)");
            }
            if self.output.is_none() && self.mode == QrMode::Reduced {
                eprintln!("R only: pass --output DIR to compute and write Q");
            }
            if let Some(b) = &b {
                eprintln!("Q^T B of {} ({} columns)", b.describe(), b.cols());
            }
        }
        let qr = plan.run_with(&session.engine, q, &session.control)?;
        let details = Details::Qr {
            factorization: if lq { "lq" } else { "qr" },
            mode: if plan.mode() == QrMode::R { "r" } else { "reduced" },
            panels: plan.tsqr().panels().len(),
            fan_in: plan.tsqr().fan_in(),
            r_diagonal: (0..qr.r.nrows()).map(|i| qr.r[(i, i)]).collect(),
            qt_b: qr.qt_b.as_ref().map(rows_of),
        };
        let summary = session.summary(("qr", details), &a, (None, &qr.stats));
        Ok(Outcome { a, lq, qr, summary, output })
    }

    fn gather(&self, outcome: &mut Outcome) -> Result<bool> {
        outcome.summary.gather_ranks()
    }

    fn finish(&self, session: &Session, outcome: Outcome) -> Result<()> {
        let Outcome { a, lq, qr, mut summary, output } = outcome;
        if let Some(out) = output {
            let dtype = a.store().dtype();
            match lq {
                true => write_matrix_zarr(&out.path().join("l.zarr"), qr.r.transpose(), qr.r.nrows(), dtype)?,
                false => write_matrix_zarr(&out.path().join("r.zarr"), qr.r.as_ref(), qr.r.nrows(), dtype)?,
            }
            if let Some(qt_b) = &qr.qt_b {
                write_matrix_zarr(&out.path().join("qtb.zarr"), qt_b.as_ref(), qt_b.nrows(), a.store().dtype())?;
            }
            commit_output(out, &mut summary)?;
        }
        if session.json {
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
        } else {
            let diagonal: Vec<f64> = (0..qr.r.nrows()).map(|i| qr.r[(i, i)]).collect();
            println!("{}'s diagonal: {}", if lq { "L" } else { "R" }, values_line(&diagonal, 10));
            if let Some(qt_b) = &qr.qt_b {
                for j in 0..qt_b.ncols() {
                    let column: Vec<f64> = qt_b.col(j).iter().copied().collect();
                    println!("Q^T b[{j}]: {}", values_line(&column, 10));
                }
            }
            println!("{}", usage_line(&summary, ""));
            println!("{}", peaks_line(&summary.memory.peaks));
            for line in ranks_lines(&summary) {
                println!("{line}");
            }
            if let Some(path) = &self.output {
                let q = if qr.q.is_some() { format!("{}, ", self.q_name(lq)) } else { String::new() };
                let qt_b = if qr.qt_b.is_some() { "qtb.zarr, " } else { "" };
                let r = if lq { "l.zarr" } else { "r.zarr" };
                println!("wrote {} ({q}{qt_b}{r}, summary.json)", path.display());
            }
        }
        Ok(())
    }
}
