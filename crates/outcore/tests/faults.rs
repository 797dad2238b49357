//! Fault injection sweeps: every read of the input, every write of U, every spill and every
//! reload fails in turn. Each run either succeeds with the right answer (a lost spill is
//! recomputed from its lineage) or fails with a typed I/O error, and no spill file survives.

use outcore_testkit as common;

use std::sync::Arc;

use common::*;
use outcore::storage::Thresholds;
use outcore::storage::{ChunkGrid, ChunkStore, FaultPlan, FaultyStore, MemoryStore, StorageError, read_matrix};
use outcore::{ChunkedMatrix, Destination, Distribution, Engine, Error, RunControl, Scheduler, SvdOptions, SvdPlan};

const ROWS: usize = 3000;
const COLS: usize = 40;
const CHUNK: usize = 500;

struct Outcome {
    result: Result<(Vec<f64>, Vec<f64>, outcore::RunStats), Error>,
    reads: u64,
    writes: u64,
    spills: u64,
    reloads: u64,
}

fn input() -> Arc<dyn ChunkStore> {
    let a = ChunkedMatrix::generated(Distribution::Normal, 21, ROWS, COLS, CHUNK, COLS).unwrap();
    let grid = ChunkGrid::new(ROWS, COLS, CHUNK, COLS).unwrap();
    Arc::new(MemoryStore::from_row_major(grid, &row_major(&a.to_dense().unwrap())).unwrap())
}

/// An engine whose limit is tight enough that a TSQR's tree factors spill.
fn spilling_engine(spill_dir: &std::path::Path, spills: FaultPlan, scheduler: Scheduler) -> Engine {
    // Only the target threshold: the sweeps count spills, which the others would change.
    let thresholds = Thresholds { spill: None, pause: None, terminate: None, ..Thresholds::default() };
    Engine::builder()
        .memory_limit(700 << 10)
        .thresholds(thresholds)
        .spill_dir(spill_dir)
        .spill_faults(spills)
        .scheduler(scheduler)
        .build()
        .unwrap()
}

/// One TSQR with vectors under a limit tight enough that tree factors spill.
fn run(
    source: &Arc<dyn ChunkStore>,
    reads: FaultPlan,
    writes: FaultPlan,
    spills: FaultPlan,
    scheduler: Scheduler,
) -> Outcome {
    let spill_parent = tempfile::tempdir().unwrap();
    let engine = spilling_engine(spill_parent.path(), spills, scheduler);
    let faulty_input = Arc::new(FaultyStore::new(source.clone(), reads));
    let a = ChunkedMatrix::from_store(faulty_input.clone());
    let options = SvdOptions::new().fan_in(3);
    let plan = SvdPlan::new(&engine, &a, &options).unwrap();
    let grid = plan.factor_grid().unwrap();
    let sink = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new(grid)), writes));
    let result = plan.run_with(&engine, Destination::Store(sink.clone()), &RunControl::default()).and_then(|svd| {
        let u = read_matrix(sink.as_ref())?;
        Ok((svd.s, u, svd.stats))
    });
    let report = engine.memory_report();
    drop(engine);
    assert_eq!(std::fs::read_dir(spill_parent.path()).unwrap().count(), 0, "spill files outlived the run");
    let (r, _) = faulty_input.calls();
    let (_, w) = sink.calls();
    Outcome { result, reads: r, writes: w, spills: report.spill_count, reloads: report.reload_count }
}

fn injected(err: &Error) -> bool {
    matches!(err, Error::Storage(StorageError::Io { .. })) && err.to_string().contains("injected fault")
}

#[test]
fn every_single_fault_fails_cleanly_or_is_recovered() {
    let source = input();
    let none = FaultPlan::default();
    let clean = run(&source, none, none, none, Scheduler::Serial);
    let (s, u, stats) = clean.result.unwrap();
    assert_eq!(stats.recomputed, 0);
    eprintln!(
        "clean run: {} reads, {} writes, {} spills, {} reloads",
        clean.reads, clean.writes, clean.spills, clean.reloads
    );
    assert!(
        clean.spills > 0 && clean.reloads > 0,
        "the run must spill and reload to test them: {} / {}",
        clean.spills,
        clean.reloads
    );
    for n in 1..=clean.reads {
        let out = run(&source, FaultPlan::read(n), none, none, Scheduler::Serial);
        let err = out.result.err().unwrap_or_else(|| panic!("read fault {n} went unnoticed"));
        assert!(injected(&err), "read fault {n}: {err}");
    }
    for n in 1..=clean.writes {
        let out = run(&source, none, FaultPlan::write(n), none, Scheduler::Serial);
        let err = out.result.err().unwrap_or_else(|| panic!("write fault {n} went unnoticed"));
        assert!(injected(&err), "write fault {n}: {err}");
    }
    for n in 1..=clean.spills {
        let out = run(&source, none, none, FaultPlan::write(n), Scheduler::Serial);
        let err = out.result.err().unwrap_or_else(|| panic!("spill fault {n} went unnoticed"));
        assert!(injected(&err), "spill fault {n}: {err}");
    }
    for n in 1..=clean.reloads {
        let out = run(&source, none, none, FaultPlan::read(n), Scheduler::Serial);
        let (s2, u2, stats) = out.result.unwrap_or_else(|e| panic!("reload fault {n} was not recovered: {e}"));
        assert!(stats.recomputed >= 1, "reload fault {n}");
        assert_eq!((&s2, &u2), (&s, &u), "reload fault {n}: the recomputed result differs");
    }
}

#[test]
fn lost_spills_are_recomputed_under_threads_too() {
    let source = input();
    let none = FaultPlan::default();
    let (s, u, _) = run(&source, none, none, none, Scheduler::Threads { workers: 2 }).result.unwrap();
    // Every reload fails: every spilled intermediate is recomputed from its lineage.
    let all = FaultPlan { persistent: true, ..FaultPlan::read(1) };
    let out = run(&source, none, none, all, Scheduler::Threads { workers: 2 });
    let (s2, u2, stats) = out.result.unwrap();
    assert!(stats.recomputed >= 1);
    assert_eq!((s2, u2), (s, u));
}

#[test]
fn a_full_disk_while_spilling_says_so() {
    let source = input();
    let none = FaultPlan::default();
    let full = FaultPlan { disk_full: true, persistent: true, ..FaultPlan::write(1) };
    let err = run(&source, none, none, full, Scheduler::Serial).result.unwrap_err().to_string();
    assert!(err.contains("disk is full") && err.contains("`spill_dir`"), "{err}");
}

/// A caller's store that gives one value too few for one chunk.
#[derive(Debug)]
struct ShortChunk(Arc<dyn ChunkStore>);

impl ChunkStore for ShortChunk {
    fn grid(&self) -> ChunkGrid {
        self.0.grid()
    }

    fn read_chunk_into(
        &self,
        index: outcore::storage::ChunkIndex,
        out: &mut Vec<f64>,
    ) -> outcore::storage::StorageResult<()> {
        self.0.read_chunk_into(index, out)?;
        if index.row == 2 {
            out.pop();
        }
        Ok(())
    }
}

#[test]
fn a_store_that_breaks_its_contract_is_blamed_not_outcore() {
    let a = ChunkedMatrix::from_store(Arc::new(ShortChunk(input())));
    let engine = Engine::new(64 << 20).unwrap();
    // Streamed (values only) and cached (with U, the input fitting the limit) reads alike.
    for options in [SvdOptions::new().vectors(false), SvdOptions::new()] {
        let err = outcore::svd(&engine, &a, &options).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Storage(StorageError::Source { .. })), "{text}");
        assert!(text.contains("chunk (2, 0) of a store of type") && text.contains("returned 19999 values"), "{text}");
        assert!(text.contains("500 x 40 = 20000") && !text.contains("bug"), "{text}");
    }
}

#[test]
fn a_panicking_event_sink_is_blamed_not_outcore() {
    let a = ChunkedMatrix::from_store(input());
    for scheduler in [Scheduler::Serial, Scheduler::Threads { workers: 2 }] {
        let engine = Engine::builder().memory_limit(64 << 20).scheduler(scheduler).build().unwrap();
        let control = RunControl::new().events(|event: &outcore::Event| {
            if let outcore::Event::TaskFinished { done: 3, .. } = event {
                panic!("the sink's own bug");
            }
        });
        let plan = SvdPlan::new(&engine, &a, &SvdOptions::new().vectors(false)).unwrap();
        let err = plan.run_with(&engine, Destination::Memory, &control).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{scheduler:?}: {text}");
        assert!(text.contains("invalid `events`: the event sink panicked (the sink's own bug)"), "{text}");
        assert!(!text.contains("bug in outcore"), "{text}");
        // The engine carries on.
        let svd = outcore::svd(&engine, &a, &SvdOptions::new().vectors(false)).unwrap();
        assert_eq!(svd.s.len(), COLS);
    }
}

#[test]
fn spills_and_reloads_say_which_worker_did_them_and_how_long_they_took() {
    let a = ChunkedMatrix::from_store(input());
    for (scheduler, workers) in [(Scheduler::Serial, 1), (Scheduler::Threads { workers: 2 }, 2)] {
        let spill_dir = tempfile::tempdir().unwrap();
        let engine = spilling_engine(spill_dir.path(), FaultPlan::default(), scheduler);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let control = RunControl::new().events(move |event: &outcore::Event| match event {
            outcore::Event::Spilled { worker, took, .. } => log.lock().unwrap().push(("spill", *worker, *took)),
            outcore::Event::Reloaded { worker, took, .. } => log.lock().unwrap().push(("reload", *worker, *took)),
            _ => {}
        });
        let plan = SvdPlan::new(&engine, &a, &SvdOptions::new().fan_in(3)).unwrap();
        let grid = plan.factor_grid().unwrap();
        plan.run_with(&engine, Destination::Store(Arc::new(MemoryStore::new(grid))), &control).unwrap();
        let seen = seen.lock().unwrap();
        for kind in ["spill", "reload"] {
            let of_kind: Vec<_> = seen.iter().filter(|(k, ..)| *k == kind).collect();
            assert!(!of_kind.is_empty(), "{scheduler:?}: no {kind}: {seen:?}");
            // Named by the worker that made room for its task or read its input; a reload
            // outside every task (the results copied out for the caller) is no worker's.
            assert!(of_kind.iter().any(|(_, w, _)| w.is_some()), "{scheduler:?}: {seen:?}");
            assert!(of_kind.iter().all(|(_, w, _)| w.is_none_or(|w| w < workers)), "{scheduler:?}: {seen:?}");
            assert!(of_kind.iter().any(|(_, _, took)| !took.is_zero()), "{scheduler:?}: {seen:?}");
        }
    }
}
