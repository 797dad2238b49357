//! `large-svd tsqr`.

use outcore::output::write_matrix_zarr;
use outcore::{CancelToken, Destination, Factor, Result, TsqrOptions, TsqrPlan};

use crate::cli::{RunArgs, TsqrArgs};
use crate::common::{
    Details, Session, SvdSummary, commit_output, create_output, factor_store, open_matrix, peaks_line, print_header,
    values_line, write_visualization, wrote_line,
};

pub fn run(args: &TsqrArgs, run: &RunArgs, cancel: CancelToken) -> Result<()> {
    let a = open_matrix(&args.matrix)?;
    // Without --output there is nowhere to put U and V: computing them would cost three more
    // passes and memory the size of the input, to throw away.
    let mut options = TsqrOptions::new()
        .vectors(!args.values_only && args.output.is_some())
        .check_finite(!args.matrix.no_check_finite);
    if let Some(f) = args.fan_in {
        options = options.fan_in(f);
    }
    if let Some(rows) = args.panel_rows {
        options = options.panel_rows(rows);
    }
    // Refuse a taken output path, or one over the input, before any work.
    let output = args.output.as_ref().map(|p| create_output(p, args.overwrite, &a, false)).transpose()?;
    let (session, plan) =
        Session::planned(run, cancel, |engine| TsqrPlan::new(&a, &options, engine), TsqrPlan::memory_needed)?;
    let engine = &session.engine;
    if let Some(path) = &run.visualize {
        write_visualization(path, &plan.to_dot(&format!("TSQR SVD of {} x {}", a.rows(), a.cols()))?)?;
    }
    if !run.json {
        print_header("tsqr", &a, &session, &plan.summary());
        if output.is_none() && !args.values_only {
            eprintln!("singular values only: pass --output DIR to compute and write U and V");
        }
    }
    let factor = match (&output, plan.factor_grid()) {
        (Some(out), Some(grid)) => {
            let name = if a.rows() >= a.cols() { "u.zarr" } else { "v.zarr" };
            factor_store(out, name, grid, &a)?
        }
        _ => Destination::Memory,
    };
    let svd = plan.run_with(engine, factor, &session.control)?;
    session.finish_progress();
    let details = Details::Tsqr { values_only: !options.vectors, panels: plan.panels().len(), fan_in: plan.fan_in() };
    let mut summary = SvdSummary::new("tsqr", &a, &svd, &session, details);
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
    if run.json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        println!("singular values: {}", values_line(&svd.s, 10));
        println!("{}", summary.usage_line(""));
        println!("{}", peaks_line(&summary.memory.peaks));
        if let Some(path) = &args.output {
            println!("{}", wrote_line(path));
        }
    }
    session.write_memory_files(run, "TSQR SVD memory")
}
