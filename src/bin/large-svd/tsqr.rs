//! `large-svd tsqr`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use outcore::output::{OutputDir, write_matrix_zarr};
use outcore::{Factor, Result, TsqrOptions, TsqrPlan};
use serde_json::json;

use crate::cli::{RunArgs, TsqrArgs};
use crate::common::{
    Session, commit_output, factor_store, open_matrix, peaks_line, print_header, svd_summary, usage_line, values_line,
    write_visualization,
};

pub fn run(args: &TsqrArgs, run: &RunArgs, cancel: Arc<AtomicBool>) -> Result<()> {
    let a = open_matrix(&args.matrix)?;
    // Without --output there is nowhere to put U and V: computing them would cost three more
    // passes and memory the size of the input, to throw away.
    let options = TsqrOptions {
        vectors: !args.values_only && args.output.is_some(),
        fan_in: args.fan_in,
        panel_rows: args.panel_rows,
        check_finite: !args.matrix.no_check_finite,
    };
    // Refuse a taken output path before any work.
    let output = args.output.as_ref().map(|p| OutputDir::create(p, args.overwrite)).transpose()?;
    let (session, plan) =
        Session::planned(run, cancel, |engine| TsqrPlan::new(&a, &options, engine), TsqrPlan::memory_needed)?;
    let engine = &session.engine;
    if let Some(path) = &run.visualize {
        write_visualization(path, &plan.graph()?.to_dot(&format!("TSQR SVD of {} x {}", a.rows(), a.cols())))?;
    }
    if !run.json {
        print_header("tsqr", &a, &session, &plan.summary());
        if output.is_none() && !args.values_only {
            eprintln!("singular values only: pass --output DIR to compute and write U and V");
        }
    }
    let sink = match (&output, plan.factor_grid()) {
        (Some(out), Some(grid)) => {
            let name = if a.rows() >= a.cols() { "u.zarr" } else { "v.zarr" };
            Some(factor_store(out, name, grid)?)
        }
        _ => None,
    };
    let svd = plan.run(engine, sink)?;
    session.finish_progress();
    let peaks = session.finish_memory(run, "TSQR SVD memory")?;
    let mut summary = svd_summary("tsqr", &a, &svd, &session, &peaks);
    summary["values_only"] = json!(!options.vectors);
    summary["panels"] = json!(plan.panels().len());
    summary["fan_in"] = json!(plan.fan_in());
    if let Some(out) = output {
        let small = match (&svd.u, &svd.v) {
            (Some(Factor::Dense(u)), _) => Some(("u.zarr", u)),
            (_, Some(Factor::Dense(v))) => Some(("v.zarr", v)),
            _ => None,
        };
        if let Some((name, m)) = small {
            write_matrix_zarr(&out.path().join(name), m.as_ref(), m.nrows())?;
        }
        commit_output(out, &svd.s, &mut summary)?;
    }
    if run.json {
        println!("{summary}");
    } else {
        println!("singular values: {}", values_line(&svd.s, 10));
        println!("{}", usage_line(&summary, ""));
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
