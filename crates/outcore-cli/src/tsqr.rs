//! `large-svd tsqr`.

use outcore::files::{OutputDir, write_matrix_zarr};
use outcore::{CancelToken, ChunkedMatrix, Destination, Factor, Result, SvdOptions, SvdPlan};

use crate::cli::{RunArgs, TsqrArgs};
use crate::common::{
    Details, Session, SvdSummary, commit_output, create_output, factor_store, open_matrix, output_share, peaks_line,
    print_header, ranks_lines, shared_factor, values_line, write_visualization, wrote_line,
};
use crate::ranks;

/// What every rank has before the run: rank 0 alone holds the output directory and the large
/// factor's array it created there.
struct Prepared {
    a: ChunkedMatrix,
    options: SvdOptions,
    output: Option<OutputDir>,
    factor: Option<Destination<'static>>,
    session: Session,
    plan: SvdPlan<'static>,
}

/// The array of the large factor: U for tall input, V for wide.
fn factor_name(a: &ChunkedMatrix) -> &'static str {
    if a.rows() >= a.cols() { "u.zarr" } else { "v.zarr" }
}

fn prepare(args: &TsqrArgs, run: &RunArgs, cancel: CancelToken) -> Result<Prepared> {
    let a = open_matrix(&args.matrix)?;
    // Without --output there is nowhere to put U and V: computing them would cost three more
    // passes and memory the size of the input, to throw away.
    let mut options = SvdOptions::new()
        .vectors(!args.values_only && args.output.is_some())
        .check_finite(!args.matrix.no_check_finite);
    if let Some(f) = args.fan_in {
        options = options.fan_in(f);
    }
    if let Some(rows) = args.panel_rows {
        options = options.panel_rows(rows);
    }
    // Refuse a taken output path, or one over the input, before any work.
    let output = match &args.output {
        Some(p) if ranks::is_root() => Some(create_output(p, args.overwrite, &a, false)?),
        _ => None,
    };
    let (session, plan) =
        Session::planned(run, cancel, |engine| SvdPlan::new(engine, &a, &options), SvdPlan::memory_needed)?;
    if let Some(path) = run.visualize.as_ref().filter(|_| ranks::is_root()) {
        write_visualization(path, &plan.to_dot(&format!("TSQR SVD of {} x {}", a.rows(), a.cols()))?)?;
    }
    let factor = match (&output, plan.factor_grid()) {
        (Some(out), Some(grid)) => Some(factor_store(out, factor_name(&a), grid, &a)?),
        _ => None,
    };
    Ok(Prepared { a, options, output, factor, session, plan })
}

pub fn run(args: &TsqrArgs, run: &RunArgs, cancel: CancelToken) -> Result<()> {
    let (Prepared { a, options, output, factor, session, plan }, shared) =
        ranks::agree(prepare(args, run, cancel), |p| output_share(p.output.as_ref()))?;
    session.meet_ranks()?;
    let engine = &session.engine;
    // Once rank 0 created the large factor's array, the other ranks open it for their rows.
    let factor = match factor {
        Some(created) => Ok(created),
        None if plan.factor_grid().is_some() => shared_factor(&shared, factor_name(&a)),
        None => Ok(Destination::Memory),
    };
    let (factor, _) = ranks::agree(factor, |_| Vec::new())?;
    if !run.json && ranks::is_root() {
        print_header("tsqr", &a, &session, &plan.summary());
        if args.output.is_none() && !args.values_only {
            eprintln!("singular values only: pass --output DIR to compute and write U and V");
        }
    }
    let svd = plan.run_with(engine, factor, &session.control)?;
    session.finish_progress();
    let details = Details::Tsqr { values_only: !options.vectors, panels: plan.panels().len(), fan_in: plan.fan_in() };
    let mut summary = SvdSummary::new("tsqr", &a, &svd, &session, details);
    session.gather_boards()?;
    if !summary.gather_ranks()? {
        return session.write_side_files(run, "TSQR SVD memory");
    }
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
        for line in ranks_lines(&summary) {
            println!("{line}");
        }
        if let Some(path) = &args.output {
            println!("{}", wrote_line(path));
        }
    }
    session.write_side_files(run, "TSQR SVD memory")
}
