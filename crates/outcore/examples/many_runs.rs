//! A host running many jobs on one engine, as a service does: a TSQR and a randomized SVD in
//! turn, RUNS times each, on four worker threads. The engine keeps its worker threads between
//! runs: after the first runs no thread is started, the engine holds nothing between runs,
//! the process's memory stays within a few MiB of where it settled (what moves is glibc's
//! per-thread caches of freed memory), and every result is bitwise the first.
//!
//! `cargo run --release --example many_runs [RUNS]` (default 100)

use std::collections::BTreeSet;

use outcore::storage::{RssSource, format_size};
use outcore::{ChunkedMatrix, Distribution, Engine, RandomizedSvdOptions, Scheduler, SvdOptions};

/// Runs after which the engine's threads and the allocator's caches have settled.
const SETTLE: usize = 10;

fn main() -> outcore::Result<()> {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100).max(SETTLE);
    let engine = Engine::builder().memory_limit(64 << 20).scheduler(Scheduler::Threads { workers: 4 }).build()?;
    let tall = ChunkedMatrix::generated(Distribution::Normal, 1, 40_000, 40, 5_000, 40)?;
    let wide = ChunkedMatrix::generated(Distribution::Uniform, 2, 1_500, 1_000, 500, 500)?;
    let job = || -> outcore::Result<Vec<f64>> {
        let mut s = outcore::svd(&engine, &tall, &SvdOptions::new().vectors(false))?.s;
        s.extend(outcore::randomized_svd(&engine, &wide, &RandomizedSvdOptions::new(5))?.svd.s);
        Ok(s)
    };
    let first = job()?;
    let (mut settled, mut threads) = (0, BTreeSet::new());
    let mut most = 0;
    for run in 1..=runs {
        let s = job()?;
        assert!(s.iter().zip(&first).all(|(x, y)| x.to_bits() == y.to_bits()), "run {run} changed the result");
        let rss = RssSource::Process.sample().rss;
        if run == SETTLE {
            (settled, threads) = (rss, live_threads());
        } else if run > SETTLE {
            most = most.max(rss);
            assert_eq!(engine.memory_report().managed, 0, "the engine held memory between runs");
            let now = live_threads();
            assert_eq!(now, threads, "run {run} started threads: the engine did not keep its workers");
        }
    }
    println!(
        "{runs} runs of each: {} threads throughout; memory between runs {} after run {SETTLE}, at most {} after",
        threads.len(),
        format_size(settled),
        format_size(most)
    );
    let growth = most.saturating_sub(settled);
    assert!(growth <= 16 << 20, "memory between runs grew by {} after run {SETTLE}", format_size(growth));
    println!(
        "no thread started, memory between runs settled (+{} after run {SETTLE}, 16 MiB allowed), every result bitwise the first",
        format_size(growth)
    );
    Ok(())
}

/// The process's threads (their ids), where the system lists them.
fn live_threads() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}
