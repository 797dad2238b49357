//! `large-svd rsvd`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use outcore::Result;
use outcore::linalg::rsvd::{RsvdOptions, RsvdPlan};
use outcore::output::OutputDir;
use serde_json::json;

use crate::cli::{RsvdArgs, RunArgs};
use crate::common::{
    Session, commit_output, factor_store, open_matrix, peaks_line, print_header, svd_summary, usage_line, values_line,
    write_visualization,
};

pub fn run(args: &RsvdArgs, run: &RunArgs, cancel: Arc<AtomicBool>) -> Result<()> {
    let matrix = args.matrix();
    for (name, value) in [("--rows", args.rows), ("--cols", args.cols), ("--chunk", args.chunk)] {
        if value == 0 && args.input.is_none() {
            return Err(outcore::Error::invalid("matrix shape", format!("{name} is 0; it must be at least 1")));
        }
    }
    let a = open_matrix(&matrix)?;
    let options = RsvdOptions {
        k: args.k,
        oversamples: args.oversamples,
        power_iters: args.power_iters,
        method: args.method.parse()?,
        seed: args.seed,
        probes: args.probes,
        check_finite: !args.no_check_finite,
        ..RsvdOptions::default()
    };
    let output = args.output.as_ref().map(|p| OutputDir::create(p, args.overwrite)).transpose()?;
    let (session, plan) =
        Session::planned(run, cancel, |engine| RsvdPlan::new(&a, &options, engine), RsvdPlan::memory_needed)?;
    let engine = &session.engine;
    if let Some(path) = &run.visualize {
        write_visualization(
            path,
            &plan.graph()?.to_dot(&format!("randomized SVD of {} x {}, k = {}", a.rows(), a.cols(), args.k)),
        )?;
    }
    if !run.json {
        print_header("rsvd", &a, &session, &plan.summary());
    }
    let (u_grid, v_grid) = plan.factor_grids()?;
    let sinks = match &output {
        Some(out) => (Some(factor_store(out, "u.zarr", u_grid)?), Some(factor_store(out, "v.zarr", v_grid)?)),
        None => (None, None),
    };
    let result = plan.run(engine, sinks.0, sinks.1)?;
    session.finish_progress();
    let peaks = session.finish_memory(run, "randomized SVD memory")?;
    let mut summary = svd_summary("rsvd", &a, &result.svd, &session, &peaks);
    summary["k"] = json!(args.k);
    summary["oversamples"] = json!(args.oversamples);
    summary["power_iters"] = json!(plan.options().power_iters);
    summary["method"] = json!(options.method);
    summary["error_estimate"] = json!(result.error);
    summary["passes_over_input"] = json!(result.passes);
    if let Some(out) = output {
        commit_output(out, &result.svd.s, &mut summary)?;
    }
    if run.json {
        println!("{summary}");
    } else {
        println!("singular values: {}", values_line(&result.svd.s, 10));
        println!(
            "error estimate: ||A - U S V^T|| <= {:.4e} (probability >= 1 - {:.0e}); Frobenius about {:.4e} ({:.2}% of sigma_1)",
            result.error.spectral_bound,
            result.error.failure_probability,
            result.error.frobenius,
            100.0 * result.error.frobenius / result.svd.s.first().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE)
        );
        println!("{}", usage_line(&summary, &format!(", {} passes over A", result.passes)));
        println!("{}", peaks_line(&peaks));
        if let Some(path) = &args.output {
            println!(
                "wrote {} (u.zarr, s.zarr, v.zarr, summary.json; V holds right singular vectors as columns)",
                path.display()
            );
        }
    }
    Ok(())
}
