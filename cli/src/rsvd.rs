//! `large-svd rsvd`.

use outcore::{CancelToken, Destination, Result, RsvdOptions, RsvdPlan};

use crate::cli::{RsvdArgs, RunArgs};
use crate::common::{
    Details, Session, SvdSummary, commit_output, create_output, factor_store, open_matrix, peaks_line, print_header,
    values_line, write_visualization, wrote_line,
};

pub fn run(args: &RsvdArgs, run: &RunArgs, cancel: CancelToken) -> Result<()> {
    let matrix = args.matrix();
    for (name, value) in [("--rows", args.rows), ("--cols", args.cols), ("--chunk", args.chunk)] {
        if value == 0 && args.input.is_none() {
            return Err(outcore::Error::invalid("matrix shape", format!("{name} is 0; it must be at least 1")));
        }
    }
    let a = open_matrix(&matrix)?;
    let options = RsvdOptions::new(args.k)
        .oversamples(args.oversamples)
        .power_iters(args.power_iters)
        .method(args.method.parse()?)
        .seed(args.seed)
        .probes(args.probes)
        .check_finite(!args.no_check_finite);
    let output = args.output.as_ref().map(|p| create_output(p, args.overwrite, &a, false)).transpose()?;
    let (session, plan) =
        Session::planned(run, cancel, |engine| RsvdPlan::new(&a, &options, engine), RsvdPlan::memory_needed)?;
    let engine = &session.engine;
    if let Some(path) = &run.visualize {
        let title = format!("randomized SVD of {} x {}, k = {}", a.rows(), a.cols(), args.k);
        write_visualization(path, &plan.to_dot(&title)?)?;
    }
    if !run.json {
        print_header("rsvd", &a, &session, &plan.summary());
    }
    let (u_grid, v_grid) = plan.factor_grids()?;
    let (u, v) = match &output {
        Some(out) => (factor_store(out, "u.zarr", u_grid, &a)?, factor_store(out, "v.zarr", v_grid, &a)?),
        None => (Destination::Memory, Destination::Memory),
    };
    let result = plan.run_with(engine, u, v, &session.control)?;
    session.finish_progress();
    let details = Details::Rsvd {
        k: args.k,
        oversamples: args.oversamples,
        power_iters: plan.options().power_iters,
        power_iters_run: plan.iterations(),
        method: options.method,
        error_estimate: result.error,
        passes_over_input: result.passes,
    };
    let mut summary = SvdSummary::new("rsvd", &a, &result.svd, &session, details);
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
        if let Some(path) = &args.output {
            println!("{}", wrote_line(path));
        }
    }
    session.write_memory_files(run, "randomized SVD memory")
}
