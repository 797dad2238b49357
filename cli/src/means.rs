//! `large-svd means`: the lesson's scheduler comparison.

use std::time::Instant;

use outcore::{CancelToken, Engine, Error, Result, RunControl, Scheduler};
use serde_json::{Value, json};

use crate::cli::{MeansArgs, RunArgs};
use crate::common::{MemorySummary, Session, peak_rss, peaks_line};
use crate::workload::run_means;

/// What the lesson measured with Dask on this machine kind (`../shared/notes/dask-reference.md`).
const DASK: [(&str, f64); 4] = [("serial", 0.140), ("mt_1", 0.181), ("mt_2", 0.163), ("mt_4", 0.168)];

struct Measured {
    name: String,
    median: f64,
    mean_of_means: f64,
}

/// Runs every configuration `repeat` times, alternating between them so drift on a shared
/// machine hits all alike; returns the median time of each.
fn measure(configs: &[(String, Engine)], args: &MeansArgs, n: usize, control: &RunControl) -> Result<Vec<Measured>> {
    let mut times = vec![Vec::with_capacity(args.repeat); configs.len()];
    let mut values = vec![f64::NAN; configs.len()];
    for _ in 0..args.repeat.max(1) {
        for (i, (name, engine)) in configs.iter().enumerate() {
            let start = Instant::now();
            let (mean, _) = run_means(engine, args.tasks, n, args.seed, control)?;
            times[i].push(start.elapsed().as_secs_f64());
            if !values[i].is_nan() && values[i].to_bits() != mean.to_bits() {
                return Err(Error::Bug(format!("{name}: repeated runs disagree ({} vs {mean})", values[i])));
            }
            values[i] = mean;
        }
    }
    Ok(configs
        .iter()
        .zip(times)
        .zip(values)
        .map(|(((name, _), mut t), mean_of_means)| {
            t.sort_by(f64::total_cmp);
            Measured { name: name.clone(), median: t[t.len() / 2], mean_of_means }
        })
        .collect())
}

pub fn run(args: &MeansArgs, run: &RunArgs, cancel: CancelToken) -> Result<()> {
    if args.tasks == 0 {
        return Err(Error::invalid("--tasks", "0 tasks compute nothing; give 1 or more"));
    }
    if args.repeat == 0 {
        return Err(Error::invalid("--repeat", "0 repetitions measure nothing; give 1 or more"));
    }
    // One session: one memory budget and sampler for every scheduler compared (the tasks hold
    // a few KiB each, so `auto` gives the smallest automatic limit).
    let session = Session::new(run, cancel, |_| Ok(0))?;
    let configs: Vec<(String, Scheduler)> = match &run.scheduler {
        Some(_) => {
            // The one the session was built with.
            let s = session.engine.scheduler();
            let name = match s {
                Scheduler::Serial => "serial".to_string(),
                Scheduler::Threads { workers } => format!("mt_{workers}"),
            };
            vec![(name, s)]
        }
        None => {
            // The lesson's comparison: serial, then threads with 1, 2 and 4 workers.
            let mut v = vec![("serial".to_string(), Scheduler::Serial)];
            v.extend([1, 2, 4].map(|w| (format!("mt_{w}"), Scheduler::Threads { workers: w })));
            v
        }
    };
    let engines: Vec<(String, Engine)> = configs
        .iter()
        .map(|(name, s)| Ok((name.clone(), session.engine.with_scheduler(*s)?)))
        .collect::<Result<_>>()?;
    let rows = measure(&engines, args, args.n, &session.control)?;
    if rows.windows(2).any(|w| w[0].mean_of_means.to_bits() != w[1].mean_of_means.to_bits()) {
        return Err(Error::Bug("schedulers disagree on the mean of means".into()));
    }
    // Scheduling overhead: the same graph with empty tasks (n = 0), per task.
    let overhead = measure(&engines[..1], args, 0, &session.control)?[0].median / (args.tasks + 1) as f64;
    let serial = rows.iter().find(|r| r.name == "serial").map(|r| r.median);
    session.finish_progress();
    let (_, peaks) = session.memory();
    if run.json {
        let table: Vec<Value> = rows
            .iter()
            .map(|r| {
                let dask = DASK.iter().find(|d| d.0 == r.name).map(|d| d.1);
                json!({
                    "scheduler": r.name,
                    "median_seconds": r.median,
                    "speedup_vs_serial": serial.map(|s| s / r.median),
                    "dask_median_seconds": dask,
                    "dask_over_outcore": dask.map(|d| d / r.median),
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "command": "means",
                "tasks": args.tasks,
                "n": args.n,
                "repeat": args.repeat,
                "mean_of_means": rows[0].mean_of_means,
                "results": table,
                "overhead_seconds_per_task": overhead,
                "peak_rss_bytes": peak_rss(),
                "memory": MemorySummary::new(session.engine.memory_report(), peaks),
            })
        );
    } else {
        println!(
            "{} x mean(normal({})), median of {} runs; mean of means {:.6e} under every scheduler",
            args.tasks, args.n, args.repeat, rows[0].mean_of_means
        );
        println!("| scheduler | outcore median | speed-up vs serial | Dask (this machine kind) | Dask / outcore |");
        println!("|---|---|---|---|---|");
        for r in &rows {
            let dask = DASK.iter().find(|d| d.0 == r.name).map(|d| d.1);
            println!(
                "| {} | {:.1} ms | {} | {} | {} |",
                r.name,
                r.median * 1e3,
                serial.map_or("-".into(), |s| format!("{:.2}x", s / r.median)),
                dask.map_or("-".into(), |d| format!("{:.0} ms", d * 1e3)),
                dask.map_or("-".into(), |d| format!("{:.1}x", d / r.median)),
            );
        }
        println!(
            "scheduling overhead: {:.1} µs per task ({} scheduler, tasks with n = 0)",
            overhead * 1e6,
            configs[0].0
        );
        println!("{}", peaks_line(&peaks));
    }
    session.write_memory_files(run, "means memory")
}
