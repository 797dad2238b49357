//! `large-svd means`: the lesson's scheduler comparison, `tasks` x mean(normal(n)) then the
//! mean of means (the workload: `workload`), under each scheduler.

mod workload;

use std::time::Instant;

use outcore::{CancelToken, Engine, Error, Result, RunControl, Scheduler};
use serde_json::{Value, json};

use super::lifecycle::Command;
use crate::args::{MeansArgs, RunArgs};
use crate::ranks;
use crate::report::human::peaks_line;
use crate::report::json::MemoryPeaksJson;
use crate::session::Session;
use crate::system::peak_rss;
use workload::run_means;

/// What the lesson measured with Dask on this machine kind (docs/benchmarks.md): its
/// `processes` scheduler starts a pool in each `compute`; its `distributed` rows time computes
/// on a cluster already started.
const DASK: [(&str, f64); 10] = [
    ("serial", 0.140),
    ("mt_1", 0.181),
    ("mt_2", 0.163),
    ("mt_4", 0.168),
    ("processes_1", 0.550),
    ("processes_2", 0.915),
    ("processes_4", 1.805),
    ("distributed_1", 0.768),
    ("distributed_2", 1.135),
    ("distributed_4", 0.726),
];

struct Measured {
    name: String,
    median: f64,
    mean_of_means: f64,
    /// For rows run as an MPI job: the whole job's wall time, launch and MPI start included.
    launch: Option<f64>,
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
            Measured { name: name.clone(), median: t[t.len() / 2], mean_of_means, launch: None }
        })
        .collect())
}

/// The rows measured, and the scheduling overhead per task.
pub(super) struct Outcome {
    rows: Vec<Measured>,
    /// `--scheduler` was given: its scheduler alone was measured.
    named: bool,
    /// The first configuration compared, the one the overhead was measured on.
    first: String,
    overhead: f64,
}

impl Command for MeansArgs {
    /// Whether `--scheduler` was given.
    type Setup = bool;
    type Outcome = Outcome;
    const TITLE: &'static str = "means memory";

    fn set_up(&self, run: &RunArgs, cancel: CancelToken) -> Result<(Session, bool)> {
        // One session: one memory budget and sampler for every scheduler compared (the tasks
        // hold a few KiB each, so `auto` gives the smallest automatic limit).
        Ok((Session::new(run, cancel, |_| Ok(0))?, run.scheduler.is_some()))
    }

    fn run(&self, session: &Session, named: bool, _: &[u8]) -> Result<Outcome> {
        let configs: Vec<(String, Scheduler)> = match self.compared(session, named) {
            Some(one) => vec![one],
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
        let rows = measure(&engines, self, self.n, &session.control)?;
        // Scheduling overhead: the same graph with empty tasks (n = 0), per task.
        let overhead = measure(&engines[..1], self, 0, &session.control)?[0].median / (self.tasks + 1) as f64;
        Ok(Outcome { rows, named, first: configs[0].0.clone(), overhead })
    }

    fn finish(&self, session: &Session, outcome: Outcome) -> Result<()> {
        let Outcome { mut rows, named, first, overhead } = outcome;
        let mut notes = Vec::new();
        if !named && !ranks::in_job() {
            rows.extend(jobs::measure(self, &mut notes)?);
        }
        if rows.windows(2).any(|w| w[0].mean_of_means.to_bits() != w[1].mean_of_means.to_bits()) {
            return Err(Error::Bug("schedulers disagree on the mean of means".into()));
        }
        let serial = rows.iter().find(|r| r.name == "serial").map(|r| r.median);
        let (_, peaks) = session.memory();
        if session.json {
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
                        "job_wall_seconds": r.launch,
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "command": "means",
                    "tasks": self.tasks,
                    "n": self.n,
                    "repeat": self.repeat,
                    "mean_of_means": rows[0].mean_of_means,
                    "results": table,
                    "notes": notes,
                    "overhead_seconds_per_task": overhead,
                    "peak_rss_bytes": peak_rss(),
                    "memory": session.memory_summary(),
                })
            );
            return Ok(());
        }
        println!(
            "{} x mean(normal({})), median of {} runs; mean of means {:.6e} under every scheduler",
            self.tasks, self.n, self.repeat, rows[0].mean_of_means
        );
        println!(
            "| scheduler | outcore median | speed-up vs serial | Dask (this machine kind) | Dask / outcore | whole MPI job |"
        );
        println!("|---|---|---|---|---|---|");
        for r in &rows {
            let dask = DASK.iter().find(|d| d.0 == r.name).map(|d| d.1);
            println!(
                "| {} | {:.1} ms | {} | {} | {} | {} |",
                r.name,
                r.median * 1e3,
                serial.map_or("-".into(), |s| format!("{:.2}x", s / r.median)),
                dask.map_or("-".into(), |d| format!("{:.0} ms", d * 1e3)),
                dask.map_or("-".into(), |d| format!("{:.1}x", d / r.median)),
                r.launch.map_or("-".into(), |w| format!("{:.0} ms", w * 1e3)),
            );
        }
        for note in &notes {
            println!("{note}");
        }
        println!("scheduling overhead: {:.1} µs per task ({first} scheduler, tasks with n = 0)", overhead * 1e6);
        println!("{}", peaks_line(&MemoryPeaksJson::from(&peaks)));
        Ok(())
    }
}

impl MeansArgs {
    /// The one configuration compared when it is not the lesson's whole comparison: a rank of
    /// an MPI job (started by the comparison's job rows, or by hand) runs one worker, as a Dask
    /// worker process with one thread; a named scheduler runs the session's.
    fn compared(&self, session: &Session, named: bool) -> Option<(String, Scheduler)> {
        if ranks::in_job() {
            return Some((format!("ranks_{}", ranks::count()), Scheduler::Serial));
        }
        named.then(|| {
            let s = session.engine.scheduler();
            let name = match s {
                Scheduler::Serial => "serial".to_string(),
                Scheduler::Threads { workers } => format!("mt_{workers}"),
            };
            (name, s)
        })
    }
}

mod jobs {
    use super::Measured;
    use crate::args::MeansArgs;
    use outcore::Result;

    /// Without MPI there are no such rows; a note says how to get them.
    #[cfg(not(feature = "mpi"))]
    pub(super) fn measure(_: &MeansArgs, notes: &mut Vec<String>) -> Result<Vec<Measured>> {
        notes.push(
            "processes and distributed rows: build with `--features mpi` (and install Open MPI) to measure them".into(),
        );
        Ok(Vec::new())
    }

    /// Runs each job and reads its row; with no `mpirun` on PATH, a note says so instead.
    #[cfg(feature = "mpi")]
    pub(super) fn measure(args: &MeansArgs, notes: &mut Vec<String>) -> Result<Vec<Measured>> {
        use outcore::{Error, Knob};
        // ob1 with one transport: shared memory between processes of one node ("processes"), or
        // TCP over loopback as between machines ("distributed").
        const TRANSPORTS: [(&str, &[&str]); 2] = [
            ("processes", &["--mca", "pml", "ob1", "--mca", "btl", "self,vader"]),
            ("distributed", &["--mca", "pml", "ob1", "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo"]),
        ];
        let exe = std::env::current_exe().map_err(|e| Error::Bug(format!("cannot find this program: {e}")))?;
        let mut rows = Vec::new();
        for (kind, transport) in TRANSPORTS {
            for ranks in [1, 2, 4] {
                let started = std::time::Instant::now();
                let spawned = std::process::Command::new("mpirun")
                    .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
                    .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
                    .args(["--oversubscribe", "--bind-to", "none", "-np", &ranks.to_string()])
                    .args(transport)
                    .arg(&exe)
                    .args(["means", "--json", "--memory-limit", "64MiB"])
                    .args(["--tasks", &args.tasks.to_string(), "--n", &args.n.to_string()])
                    .args(["--repeat", &args.repeat.to_string(), "--seed", &args.seed.to_string()])
                    .output();
                let out = match spawned {
                    Ok(out) => out,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        notes.push(
                            "processes and distributed rows: no `mpirun` on PATH (install Open MPI's openmpi-bin)"
                                .into(),
                        );
                        return Ok(rows);
                    }
                    Err(e) => return Err(Error::Bug(format!("cannot start mpirun: {e}"))),
                };
                let wall = started.elapsed().as_secs_f64();
                let failed = || {
                    Error::invalid(
                        Knob::Program("mpirun"),
                        format!(
                            "the {kind} job of {ranks} ranks failed (exit {:?}): {}",
                            out.status.code(),
                            String::from_utf8_lossy(&out.stderr).trim()
                        ),
                    )
                };
                if !out.status.success() {
                    return Err(failed());
                }
                let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| failed())?;
                let row = &json["results"][0];
                let (Some(median), Some(mean)) = (row["median_seconds"].as_f64(), json["mean_of_means"].as_f64())
                else {
                    return Err(failed());
                };
                rows.push(Measured {
                    name: format!("{kind}_{ranks}"),
                    median,
                    mean_of_means: mean,
                    launch: Some(wall),
                });
            }
        }
        Ok(rows)
    }
}
