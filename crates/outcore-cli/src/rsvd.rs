//! `large-svd rsvd`.

use std::sync::Arc;

use outcore::files::OutputDir;
use outcore::storage::{ChunkGrid, MemoryStore};
use outcore::{CancelToken, ChunkedMatrix, Destination, RandomizedSvdOptions, RandomizedSvdPlan, Result};

use crate::cli::{RsvdArgs, RunArgs};
use crate::common::{
    Details, Session, SvdSummary, commit_output, create_output, factor_store, method_name, open_matrix, output_share,
    peaks_line, print_header, ranks_lines, shared_factor, values_line, write_visualization, wrote_line,
};
use crate::ranks;

/// What every rank has before the run: rank 0 alone holds the output directory and the arrays
/// of U and V it created there.
struct Prepared {
    a: ChunkedMatrix,
    options: RandomizedSvdOptions,
    output: Option<OutputDir>,
    created: Option<(Destination<'static>, Destination<'static>)>,
    session: Session,
    plan: RandomizedSvdPlan<'static>,
}

fn prepare(args: &RsvdArgs, run: &RunArgs, cancel: CancelToken) -> Result<Prepared> {
    let matrix = args.matrix();
    for (name, value) in [("--rows", args.rows), ("--cols", args.cols), ("--chunk", args.chunk)] {
        if value == 0 && args.input.is_none() {
            return Err(outcore::Error::invalid("matrix shape", format!("{name} is 0; it must be at least 1")));
        }
    }
    let a = open_matrix(&matrix)?;
    let options = RandomizedSvdOptions::new(args.k)
        .oversamples(args.oversamples)
        .power_iters(args.power_iters)
        .method(args.method.parse()?)
        .seed(args.seed)
        .probes(args.probes)
        .check_finite(!args.no_check_finite);
    let output = match &args.output {
        Some(p) if ranks::is_root() => Some(create_output(p, args.overwrite, &a, false)?),
        _ => None,
    };
    let (session, plan) = Session::planned(
        run,
        cancel,
        |engine| RandomizedSvdPlan::new(engine, &a, &options),
        RandomizedSvdPlan::memory_needed,
    )?;
    if let Some(path) = run.visualize.as_ref().filter(|_| ranks::is_root()) {
        let title = format!("randomized SVD of {} x {}, k = {}", a.rows(), a.cols(), args.k);
        write_visualization(path, &plan.to_dot(&title)?)?;
    }
    let (u_grid, v_grid) = plan.factor_grids()?;
    let created = match &output {
        Some(out) => Some((factor_store(out, "u.zarr", u_grid, &a)?, factor_store(out, "v.zarr", v_grid, &a)?)),
        None => None,
    };
    Ok(Prepared { a, options, output, created, session, plan })
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

pub fn run(args: &RsvdArgs, run: &RunArgs, cancel: CancelToken) -> Result<()> {
    let (Prepared { a, options, output, created, session, plan }, shared) =
        ranks::agree(prepare(args, run, cancel), |p| output_share(p.output.as_ref()))?;
    session.meet_ranks()?;
    let engine = &session.engine;
    let (u_grid, v_grid) = plan.factor_grids()?;
    let factors = match created {
        Some(created) => Ok(created),
        None => destination(&shared, "u.zarr", u_grid).and_then(|u| Ok((u, destination(&shared, "v.zarr", v_grid)?))),
    };
    let ((u, v), _) = ranks::agree(factors, |_| Vec::new())?;
    if !run.json && ranks::is_root() {
        print_header("rsvd", &a, &session, &plan.summary());
    }
    let result = plan.run_with(engine, u, v, &session.control)?;
    session.finish_progress();
    let details = Details::Rsvd {
        k: args.k,
        oversamples: args.oversamples,
        power_iters: plan.options().power_iters,
        power_iters_run: plan.iterations(),
        method: method_name(options.method),
        error_estimate: (&result.error).into(),
        passes_over_input: result.passes,
    };
    let mut summary = SvdSummary::new("rsvd", &a, &result.svd, &session, details);
    session.gather_boards()?;
    if !summary.gather_ranks()? {
        return session.write_side_files(run, "randomized SVD memory");
    }
    if let Some(out) = output {
        commit_output(out, &mut summary)?;
    }
    if run.json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        println!("singular values: {}", values_line(&result.svd.s, 10));
        println!(
            "error estimate: ||A - U S V^T|| <= {:.4e} (probability >= 1 - {:.0e}); Frobenius about {:.4e} ({:.2}% of sigma_1)",
            result.error.spectral_bound,
            result.error.failure_probability,
            result.error.frobenius,
            100.0 * result.error.frobenius / result.svd.s.first().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE)
        );
        println!("{}", summary.usage_line(&format!(", {} passes over A", result.passes)));
        println!("{}", peaks_line(&summary.memory.peaks));
        for line in ranks_lines(&summary) {
            println!("{line}");
        }
        if let Some(path) = &args.output {
            println!("{}", wrote_line(path));
        }
    }
    session.write_side_files(run, "randomized SVD memory")
}
