//! Runs across ranks (threads of this process joined by `LocalCluster`) give the bits of one
//! process, refuse together, and fail together.

use outcore_testkit as common;

use std::sync::Arc;

use common::{engine, matrix, row_major};
use faer::Mat;
use outcore::cluster::{LocalCluster, Transport};
use outcore::storage::{ChunkStore, FaultPlan, FaultyStore, MemoryStore};
use outcore::{
    ChunkedMatrix, Destination, Error, LstsqOptions, LstsqPlan, QrMode, QrOptions, QrPlan, RandomizedSvdOptions,
    RandomizedSvdPlan, RunControl, Scheduler, SvdOptions, SvdPlan,
};

const LIMIT: u64 = 64 << 20;

/// 1,037 x 23 (chunks of 100 rows: the last is short), deterministic values with a spread of
/// singular values.
fn tall() -> ChunkedMatrix {
    let (m, n) = (1037, 23);
    let data: Vec<f64> = (0..m * n)
        .map(|i| {
            let (r, c) = (i / n, i % n);
            ((r * 7919 + c * 104_729) % 1009) as f64 / 1009.0 - 0.5 + if r % 97 == c { 3.0 } else { 0.0 }
        })
        .collect();
    matrix(&data, m, n, 100, n)
}

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn mat_bits(m: &Mat<f64>) -> Vec<u64> {
    bits(&row_major(m))
}

fn store_bits(store: &Arc<dyn ChunkStore>) -> Vec<u64> {
    mat_bits(&ChunkedMatrix::from_store(store.clone()).to_dense().unwrap())
}

/// Runs `job(rank's transport)` on `ranks` threads, one per rank; returns their results, rank 0
/// first.
fn on_ranks<T: Send>(ranks: usize, job: impl Fn(Arc<dyn Transport>) -> T + Sync) -> Vec<T> {
    let transports = LocalCluster::ranks(ranks).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = transports.into_iter().map(|t| s.spawn(|| job(t))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

struct Tsqr {
    tasks: usize,
    s: Vec<u64>,
    v: Vec<u64>,
    u: Vec<u64>,
}

fn tsqr(
    a: &ChunkedMatrix,
    options: &SvdOptions,
    workers: usize,
    control: &RunControl,
    u: &Arc<dyn ChunkStore>,
) -> outcore::Result<Tsqr> {
    let engine = engine(LIMIT, Scheduler::Threads { workers });
    let plan = SvdPlan::new(&engine, a, options)?;
    let svd = plan.run_with(&engine, Destination::Store(u.clone()), control)?;
    let Some(outcore::Factor::Dense(v)) = &svd.v else { panic!("V should be in RAM") };
    Ok(Tsqr { tasks: svd.stats.tasks, s: bits(&svd.s), v: mat_bits(v), u: Vec::new() })
}

#[test]
fn tsqr_on_one_two_and_three_ranks_gives_the_bits_of_one_process() {
    let a = tall();
    // A fan-in of 3 over 11 panels: rank boundaries fall inside the tree's nodes.
    let options = SvdOptions::new().fan_in(3);
    let grid = SvdPlan::new(&engine(LIMIT, Scheduler::Serial), &a, &options).unwrap().factor_grid().unwrap();
    let u_threads: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new(grid));
    let mut threads = tsqr(&a, &options, 2, &RunControl::new(), &u_threads).unwrap();
    threads.u = store_bits(&u_threads);
    for ranks in 1..=3 {
        let u: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new(grid));
        let results = on_ranks(ranks, |t| tsqr(&a, &options, 1, &RunControl::new().cluster(t), &u).unwrap());
        for (rank, r) in results.iter().enumerate() {
            assert_eq!(r.s, threads.s, "{ranks} ranks, rank {rank}: singular values differ from one process");
            assert_eq!(r.v, threads.v, "{ranks} ranks, rank {rank}: V differs from one process");
        }
        assert_eq!(store_bits(&u), threads.u, "{ranks} ranks: U written by the ranks differs from one process");
        // The work was shared: every rank ran some tasks, together each task once.
        assert_eq!(results.iter().map(|r| r.tasks).sum::<usize>(), threads.tasks);
        assert!(results.iter().all(|r| r.tasks > 0 && (ranks == 1 || r.tasks < threads.tasks)));
    }
    // Values only, where panels are sized for speed rather than by chunks.
    let values = SvdOptions::new().vectors(false);
    let one = {
        let e = engine(LIMIT, Scheduler::Threads { workers: 2 });
        SvdPlan::new(&e, &a, &values).unwrap().run(&e).unwrap().s
    };
    let three = on_ranks(3, |t| {
        let e = engine(LIMIT, Scheduler::Serial);
        let control = RunControl::new().cluster(t);
        SvdPlan::new(&e, &a, &values).unwrap().run_with(&e, Destination::Memory, &control).unwrap().s
    });
    assert!(three.iter().all(|s| bits(s) == bits(&one)));
}

#[test]
fn qr_on_two_and_three_ranks_gives_the_bits_of_one_process() {
    let a = tall();
    for mode in [QrMode::Reduced, QrMode::R] {
        let options = QrOptions::new().mode(mode).fan_in(3);
        let grid = QrPlan::new(&engine(LIMIT, Scheduler::Serial), &a, &options).unwrap().q_grid();
        let run = |control: &RunControl, workers: usize, q: Option<&Arc<dyn ChunkStore>>| {
            let e = engine(LIMIT, Scheduler::Threads { workers });
            let destination = q.map_or(Destination::Memory, |q| Destination::Store(q.clone()));
            mat_bits(&QrPlan::new(&e, &a, &options).unwrap().run_with(&e, destination, control).unwrap().r)
        };
        let new_q = || grid.map(|g| -> Arc<dyn ChunkStore> { Arc::new(MemoryStore::new(g)) });
        let one_q = new_q();
        let one = run(&RunControl::new(), 2, one_q.as_ref());
        for ranks in [2, 3] {
            let q = new_q();
            let results = on_ranks(ranks, |t| run(&RunControl::new().cluster(t), 1, q.as_ref()));
            assert!(results.iter().all(|r| *r == one), "{mode:?} on {ranks} ranks: R differs from one process");
            if let (Some(q), Some(one_q)) = (&q, &one_q) {
                assert_eq!(store_bits(q), store_bits(one_q), "{ranks} ranks: Q differs from one process");
            }
        }
    }
}

#[test]
fn lstsq_on_two_and_three_ranks_gives_the_bits_of_one_process() {
    let a = tall();
    let m = a.rows();
    let b = matrix(&(0..m * 2).map(|i| ((i * 31 % 97) as f64) / 97.0).collect::<Vec<_>>(), m, 2, 64, 2);
    for options in [LstsqOptions::new().fan_in(3), LstsqOptions::new().fan_in(3).fit_intercept(true)] {
        let run = |control: &RunControl, workers: usize| {
            let e = engine(LIMIT, Scheduler::Threads { workers });
            let fit = LstsqPlan::new(&e, &a, &b, &options).unwrap().run_with(&e, control).unwrap();
            let figures = [fit.s, fit.rss, fit.intercept.unwrap_or_default(), fit.intercept_stderr.unwrap_or_default()];
            (mat_bits(&fit.x), figures.map(|f| bits(&f)), fit.stderr.map(|m| mat_bits(&m)), fit.rank)
        };
        let one = run(&RunControl::new(), 2);
        assert_eq!(one.3, 23);
        for ranks in [2, 3] {
            let results = on_ranks(ranks, |t| run(&RunControl::new().cluster(t), 1));
            assert!(results.iter().all(|r| *r == one), "{ranks} ranks: the fit differs from one process");
        }
    }
}

#[test]
fn rsvd_across_ranks_gives_the_bits_of_one_process() {
    // Chunked in both dimensions, shapes not dividing the chunks; k + p presses on min(m, n).
    let (m, n) = (733, 61);
    let data: Vec<f64> = (0..m * n).map(|i| (((i * 2_654_435_761) % 10_007) as f64 / 10_007.0) - 0.5).collect();
    let a = matrix(&data, m, n, 50, 20);
    let options = RandomizedSvdOptions::new(12).oversamples(40).power_iters(2).seed(5);
    let run = |control: &RunControl, workers: usize, stores: &(Arc<dyn ChunkStore>, Arc<dyn ChunkStore>)| {
        let e = engine(LIMIT, Scheduler::Threads { workers });
        let plan = RandomizedSvdPlan::new(&e, &a, &options).unwrap();
        let r = plan
            .run_with(&e, Destination::Store(stores.0.clone()), Destination::Store(stores.1.clone()), control)
            .unwrap();
        (bits(&r.svd.s), r.error.spectral_bound.to_bits())
    };
    let grids = {
        let e = engine(LIMIT, Scheduler::Serial);
        RandomizedSvdPlan::new(&e, &a, &options).unwrap().factor_grids().unwrap()
    };
    let new_stores = || -> (Arc<dyn ChunkStore>, Arc<dyn ChunkStore>) {
        (Arc::new(MemoryStore::new(grids.0)), Arc::new(MemoryStore::new(grids.1)))
    };
    let one_stores = new_stores();
    let one = run(&RunControl::new(), 2, &one_stores);
    for ranks in [2, 3] {
        let stores = new_stores();
        let results = on_ranks(ranks, |t| run(&RunControl::new().cluster(t), 1, &stores));
        assert!(results.iter().all(|r| *r == one), "{ranks} ranks: s or the error estimate differ from one process");
        assert_eq!(store_bits(&stores.0), store_bits(&one_stores.0), "{ranks} ranks: U differs");
        assert_eq!(store_bits(&stores.1), store_bits(&one_stores.1), "{ranks} ranks: V differs");
    }
}

#[test]
fn ranks_given_different_work_refuse_before_any() {
    let a = tall();
    let outcomes = on_ranks(3, |t| {
        let rows = if t.rank() == 1 { 200 } else { 100 };
        let e = engine(LIMIT, Scheduler::Serial);
        let plan = SvdPlan::new(&e, &a, &SvdOptions::new().vectors(false).panel_rows(rows)).unwrap();
        plan.run_with(&e, Destination::Memory, &RunControl::new().cluster(t)).map(|r| r.stats.tasks)
    });
    for outcome in outcomes {
        let err = outcome.unwrap_err().to_string();
        assert!(err.contains("rank 1 of 3 planned a different computation"), "{err}");
    }
}

#[test]
fn one_ranks_failure_ends_every_rank_with_its_message() {
    let a = tall();
    let source = a.store().clone();
    let outcomes = on_ranks(3, |t| {
        // Rank 2 cannot read its second chunk.
        let store: Arc<dyn ChunkStore> =
            if t.rank() == 2 { Arc::new(FaultyStore::new(source.clone(), FaultPlan::read(2))) } else { source.clone() };
        let a = ChunkedMatrix::from_store(store);
        let e = engine(LIMIT, Scheduler::Threads { workers: 2 });
        let plan = SvdPlan::new(&e, &a, &SvdOptions::new().vectors(false).fan_in(2)).unwrap();
        let result = plan.run_with(&e, Destination::Memory, &RunControl::new().cluster(t)).map(|r| r.s);
        (result, e.memory_report().managed)
    });
    for (rank, (outcome, managed)) in outcomes.into_iter().enumerate() {
        let err = outcome.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("injected fault"), "rank {rank}: {text}");
        if rank != 2 {
            assert!(matches!(err, Error::Cluster { rank: 2, .. }), "rank {rank}: {err:?}");
        }
        assert_eq!(managed, 0, "rank {rank} kept blocks after the failed run");
    }
}

#[test]
fn a_destination_the_ranks_cannot_share_is_refused() {
    let a = tall();
    let outcomes = on_ranks(2, |t| {
        let e = engine(LIMIT, Scheduler::Serial);
        let plan = SvdPlan::new(&e, &a, &SvdOptions::new()).unwrap();
        plan.run_with(&e, Destination::Memory, &RunControl::new().cluster(t)).map(|_| ())
    });
    for outcome in outcomes {
        let err = outcome.unwrap_err().to_string();
        assert!(err.contains("rank by rank") && err.contains("Destination::Store"), "{err}");
    }
}

#[test]
fn a_step_before_the_run_failing_on_one_rank_fails_every_rank_without_waiting() {
    let a = tall();
    let grid = SvdPlan::new(&engine(LIMIT, Scheduler::Serial), &a, &SvdOptions::new()).unwrap().factor_grid().unwrap();
    let u: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new(grid));
    let outcomes = on_ranks(3, |t| {
        let rank = t.rank();
        let e = engine(LIMIT, Scheduler::Serial);
        let plan = SvdPlan::new(&e, &a, &SvdOptions::new()).unwrap();
        // Rank 1 alone gives a destination the ranks cannot share.
        let destination = if rank == 1 { Destination::Memory } else { Destination::Store(u.clone()) };
        plan.run_with(&e, destination, &RunControl::new().cluster(t)).map(|_| ())
    });
    for (rank, outcome) in outcomes.into_iter().enumerate() {
        let err = outcome.unwrap_err();
        assert!(err.to_string().contains("rank by rank"), "rank {rank}: {err}");
        if rank != 1 {
            assert!(matches!(err, Error::Cluster { rank: 1, .. }), "rank {rank}: {err:?}");
        }
    }
}

#[test]
fn ranks_given_different_seeds_refuse_too() {
    let a = tall();
    let outcomes = on_ranks(3, |t| {
        let seed = if t.rank() == 2 { 8 } else { 7 };
        let e = engine(LIMIT, Scheduler::Serial);
        let plan = RandomizedSvdPlan::new(&e, &a, &RandomizedSvdOptions::new(3).seed(seed)).unwrap();
        let (ug, vg) = plan.factor_grids().unwrap();
        let (u, v): (Arc<dyn ChunkStore>, Arc<dyn ChunkStore>) =
            (Arc::new(MemoryStore::new(ug)), Arc::new(MemoryStore::new(vg)));
        plan.run_with(&e, Destination::Store(u), Destination::Store(v), &RunControl::new().cluster(t)).map(|_| ())
    });
    for outcome in outcomes {
        let err = outcome.unwrap_err().to_string();
        assert!(err.contains("rank 2 of 3 planned a different computation"), "{err}");
    }
}
