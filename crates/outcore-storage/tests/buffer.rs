//! The buffer manager under pressure: 10x over the limit, threads, thresholds, faults.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use outcore_storage::{
    Accounting, Admission, BlockId, BlockState, BufferConfig, BufferManager, ChunkGrid, ChunkIndex, ChunkStore,
    FaultPlan, FaultyStore, MemoryStore, Reservation, RssSource, StorageError, StorageResult, Thresholds,
};

const MIB: u64 = 1 << 20;

fn chunk_values(i: usize, n: usize) -> Vec<f64> {
    (0..n).map(|j| (i * 1_000_003 + j) as f64 * 1e-3).collect()
}

/// Only the target threshold: the hard limit on managed bytes is what these tests look at.
fn managed_only() -> Thresholds {
    Thresholds { spill: None, pause: None, terminate: None, ..Thresholds::default() }
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn ten_times_the_limit_of_dirty_chunks_round_trips_through_spill_files() {
    let spill_parent = tempfile::tempdir().unwrap();
    let config = BufferConfig::new(4 * MIB).with_thresholds(managed_only()).with_spill_parent(spill_parent.path());
    let manager = BufferManager::new(config).unwrap();
    let n = 64 * 1024; // 512 KiB per chunk, 80 chunks = 40 MiB
    let mut ids = Vec::new();
    for i in 0..80 {
        let mut r = manager.reserve((n * 8) as u64).unwrap();
        ids.push(manager.insert(&mut r, chunk_values(i, n), 256, 256).unwrap());
        assert!(manager.report().managed_accounted <= 4 * MIB);
    }
    let after_writes = manager.report();
    assert!(after_writes.spill_count >= 70, "{after_writes}");
    for (i, &id) in ids.iter().enumerate().rev() {
        assert_eq!(manager.pin(id).unwrap().data(), chunk_values(i, n).as_slice(), "chunk {i}");
    }
    let report = manager.report();
    assert!(report.reload_count > 0 && report.peak_managed <= 4 * MIB, "{report}");
    let dir = manager.spill_dir().expect("spilled, so a spill directory exists");
    assert!(dir.starts_with(spill_parent.path()));
    for id in ids {
        manager.remove(id).unwrap();
    }
    assert_eq!(files_in(&dir), 0, "spill files remain after every block was removed");
    assert_eq!(manager.report().spilled, 0);
    drop(manager);
    assert!(!dir.exists(), "spill directory outlived the manager");
}

#[test]
fn two_threads_share_one_pool_without_losing_data() {
    let config = BufferConfig::new(2 * MIB).with_thresholds(managed_only());
    let manager = BufferManager::new(config).unwrap();
    let n = 16 * 1024; // 128 KiB per chunk
    std::thread::scope(|s| {
        for t in 0..2 {
            let manager = manager.clone();
            s.spawn(move || {
                let mut ids: Vec<(usize, BlockId)> = Vec::new();
                for i in 0..60 {
                    let key = t * 1000 + i;
                    let mut r = manager.reserve((n * 8) as u64).unwrap();
                    ids.push((key, manager.insert(&mut r, chunk_values(key, n), 128, 128).unwrap()));
                    if i % 3 == 2 {
                        let (k, id) = ids[i / 2];
                        assert_eq!(manager.pin(id).unwrap().data(), chunk_values(k, n).as_slice());
                    }
                }
                for (k, id) in ids {
                    assert_eq!(manager.pin(id).unwrap().data(), chunk_values(k, n).as_slice());
                    manager.remove(id).unwrap();
                }
            });
        }
    });
    let report = manager.report();
    assert_eq!((report.managed_accounted, report.spilled_chunks), (0, 0), "{report}");
    assert!(report.spill_count > 0 && report.peak_managed <= 2 * MIB, "{report}");
}

#[test]
fn a_request_that_can_never_fit_is_refused_with_the_sizes() {
    let manager = BufferManager::new(BufferConfig::new(MIB).with_thresholds(managed_only())).unwrap();
    let err = manager.reserve(3 * MIB).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StorageError::ResourcesExhausted { requested, .. } if requested == 3 * MIB), "{text}");
    assert!(text.contains("3.0 MiB") && text.contains("1.0 MiB") && text.contains("`memory_limit`"), "{text}");

    // Everything pinned: the next request fails at once instead of waiting forever.
    let mut r = manager.reserve(800 << 10).unwrap();
    let id = manager.insert(&mut r, vec![1.0; 100 << 10], 100, 1024).unwrap();
    let _pin = manager.pin(id).unwrap();
    let err = manager.reserve(300 << 10).unwrap_err();
    assert!(matches!(err, StorageError::ResourcesExhausted { in_use, .. } if in_use == 800 << 10), "{err}");
}

#[test]
fn clean_chunks_are_dropped_not_spilled_and_reread_on_pin() {
    let grid = ChunkGrid::new(512, 512, 128, 512).unwrap(); // 4 chunks of 512 KiB
    let data: Vec<f64> = (0..512 * 512).map(|i| i as f64).collect();
    let store: Arc<dyn ChunkStore> = Arc::new(MemoryStore::from_row_major(grid, &data).unwrap());
    let manager = BufferManager::new(BufferConfig::new(MIB).with_thresholds(managed_only())).unwrap();
    let ids: Vec<BlockId> = grid.indices().map(|i| manager.register(store.clone(), i).unwrap()).collect();
    for round in 0..2 {
        for (c, &id) in ids.iter().enumerate() {
            let pin = manager.pin(id).unwrap();
            assert_eq!(pin.data(), &data[c * 128 * 512..(c + 1) * 128 * 512], "round {round} chunk {c}");
        }
    }
    let report = manager.report();
    assert_eq!(report.spill_count, 0, "clean chunks must never be spilled");
    assert!(ids.iter().any(|&id| manager.block_info(id).unwrap().state == BlockState::NotLoaded));
}

fn granted(admission: Admission) -> Reservation {
    match admission {
        Admission::Granted(r) => r,
        Admission::Wait(_) => panic!("expected the admission to be granted"),
    }
}

/// Admits `bytes`, waiting for releases as a scheduler does; returns the time it waited.
fn admit_waiting(manager: &BufferManager, bytes: u64) -> (Reservation, Duration) {
    let start = std::time::Instant::now();
    loop {
        match manager.admit(bytes).unwrap() {
            Admission::Granted(r) => return (r, start.elapsed()),
            Admission::Wait(epoch) => manager.wait_for_release(epoch, Duration::from_secs(10)),
        }
    }
}

#[test]
fn pause_threshold_makes_tasks_wait_while_work_runs_and_fails_when_none_does() {
    let (rss, handle) = RssSource::manual(0);
    let config = BufferConfig::new(100 * MIB).with_rss(rss).with_accounting(Accounting::Process);
    let manager = BufferManager::new(config).unwrap();
    assert!(manager.may_start_task().unwrap());
    handle.store(85 * MIB, Ordering::SeqCst);
    assert!(!manager.may_start_task().unwrap(), "85% is above the 80% pause threshold");

    // With nothing running, waiting would never end: a typed error instead of a hang.
    let err = manager.admit(MIB).unwrap_err();
    assert!(matches!(err, StorageError::MemoryPaused { .. }), "{err}");
    assert!(err.to_string().contains("pause threshold") && err.to_string().contains("process memory"), "{err}");

    // With a task running, a new one waits; it starts once memory falls and the task ends.
    handle.store(0, Ordering::SeqCst);
    let running = granted(manager.admit(MIB).unwrap());
    handle.store(85 * MIB, Ordering::SeqCst);
    assert!(matches!(manager.admit(MIB).unwrap(), Admission::Wait(_)));
    let waited = std::thread::scope(|s| {
        let waiter = s.spawn(|| admit_waiting(&manager, MIB).1);
        std::thread::sleep(Duration::from_millis(60));
        handle.store(50 * MIB, Ordering::SeqCst);
        drop(running);
        waiter.join().unwrap()
    });
    assert!(waited >= Duration::from_millis(50) && waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn admission_waits_for_running_work_in_any_engine_and_fails_when_nothing_will_be_released() {
    let manager = BufferManager::new(BufferConfig::new(MIB).with_thresholds(managed_only())).unwrap();
    let other_engine = manager.clone();
    let running = granted(manager.admit(700 << 10).unwrap());
    let Admission::Wait(epoch) = other_engine.admit(700 << 10).unwrap() else { panic!("must wait") };
    drop(running);
    let start = std::time::Instant::now();
    other_engine.wait_for_release(epoch, Duration::from_secs(10));
    assert!(start.elapsed() < Duration::from_secs(1), "the release happened before the wait: no waiting");
    let second = granted(other_engine.admit(700 << 10).unwrap());
    drop(second);

    // A worker's cache comes free by itself (idle workers give it up): wait, not fail.
    let mut cache = manager.reserve_cache(700 << 10).unwrap();
    assert!(matches!(manager.admit(700 << 10).unwrap(), Admission::Wait(_)));
    cache.shrink(u64::MAX);
    drop(granted(manager.admit(700 << 10).unwrap()));

    // A plain reservation is held until its holder lets go: with nothing running, fail at once.
    let held = manager.reserve(700 << 10).unwrap();
    let err = manager.admit(700 << 10).unwrap_err();
    assert!(matches!(err, StorageError::ResourcesExhausted { .. }), "{err}");
    drop(held);
    assert_eq!(manager.report().managed_accounted, 0);
}

#[test]
fn own_accounting_ignores_the_host_and_reports_it_on_its_own_line() {
    // The host holds 64 MiB; the pool's limit is 4 MiB and only its own bytes count.
    let host: Vec<u8> = vec![1; 64 << 20];
    let manager = BufferManager::new(BufferConfig::new(4 * MIB)).unwrap();
    let mut r = manager.reserve(2 * MIB).unwrap();
    let id = manager.insert(&mut r, vec![0.5; 2 * 128 * 1024], 256, 1024).unwrap();
    assert!(manager.may_start_task().unwrap(), "the host's memory is not the pool's");
    assert_eq!(manager.worker_memory(), 2 * MIB);
    let report = manager.report();
    assert_eq!(report.process, report.host + report.managed + report.unmanaged_old + report.unmanaged_recent);
    if std::path::Path::new("/proc/self/status").exists() {
        assert!(report.host > 0 && report.managed == 2 * MIB, "{report}");
    }
    assert!(report.to_string().contains("not counted against the limit"), "{report}");
    manager.remove(id).unwrap();
    assert_eq!(host.iter().map(|&b| u64::from(b)).sum::<u64>(), 64 << 20);
}

#[test]
fn spill_threshold_evicts_unpinned_blocks_and_keeps_pinned_ones() {
    let (rss, handle) = RssSource::manual(0);
    let config = BufferConfig::new(100 * MIB).with_rss(rss).with_accounting(Accounting::Process);
    let manager = BufferManager::new(config).unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut r = manager.reserve(MIB).unwrap();
        ids.push(manager.insert(&mut r, chunk_values(i, 128 * 1024), 128, 1024).unwrap());
    }
    let pinned = manager.pin(ids[1]).unwrap();
    handle.store(75 * MIB, Ordering::SeqCst); // above spill (70%), below pause (80%)
    assert!(manager.may_start_task().unwrap());
    for (i, &id) in ids.iter().enumerate() {
        let expected = if i == 1 { BlockState::InMemory } else { BlockState::Spilled };
        assert_eq!(manager.block_info(id).unwrap().state, expected, "block {i}");
    }
    drop(pinned);
}

#[test]
fn terminate_threshold_stops_with_the_memory_categories() {
    let (rss, handle) = RssSource::manual(10 * MIB);
    let config = BufferConfig::new(100 * MIB).with_rss(rss).with_accounting(Accounting::Process);
    let manager = BufferManager::new(config).unwrap();
    let _r = manager.reserve(MIB).unwrap();
    handle.store(96 * MIB, Ordering::SeqCst);
    let err = manager.reserve(MIB).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StorageError::MemoryTerminated { .. }), "{text}");
    for word in ["terminate threshold", "process", "managed", "unmanaged recent", "spilled"] {
        assert!(text.contains(word), "{text:?} lacks {word}");
    }
    assert!(manager.may_start_task().is_err());
}

#[test]
fn report_categories_add_up_and_print() {
    let manager = BufferManager::new(BufferConfig::new(64 * MIB).with_thresholds(managed_only())).unwrap();
    let mut r = manager.reserve(2 * MIB).unwrap();
    let _id = manager.insert(&mut r, vec![0.5; 128 * 1024], 128, 1024).unwrap();
    let report = manager.report();
    assert_eq!(report.process, report.host + report.managed + report.unmanaged_old + report.unmanaged_recent);
    assert_eq!(report.managed_accounted, 2 * MIB);
    let text = report.to_string();
    assert!(text.contains("unmanaged recent") && text.contains("limit 64.0 MiB"), "{text}");
    assert!(manager.to_string().starts_with("lru(used: 2.0 MiB, limit: 64.0 MiB, spilled: 0 chunks)"));
}

#[test]
fn spill_write_failure_is_typed_and_keeps_the_block() {
    for persistent in [false, true] {
        let spill_parent = tempfile::tempdir().unwrap();
        let config = BufferConfig::new(MIB).with_thresholds(managed_only()).with_spill_parent(spill_parent.path());
        let manager =
            BufferManager::with_spill_faults(config, FaultPlan { persistent, ..FaultPlan::write(1) }).unwrap();
        let mut r = manager.reserve(512 << 10).unwrap();
        let a = manager.insert(&mut r, chunk_values(1, 64 << 10), 64, 1024).unwrap();
        let err = manager.reserve(512 << 10).unwrap_err();
        assert!(err.to_string().contains("injected fault: write call 1"), "{err}");
        assert_eq!(manager.block_info(a).unwrap().state, BlockState::InMemory);
        assert_eq!(manager.pin(a).unwrap().data(), chunk_values(1, 64 << 10).as_slice());
        let dir = manager.spill_dir().unwrap();
        assert_eq!(files_in(&dir), 0, "a failed spill left a file behind");
        // A retry succeeds when the fault was a glitch, fails again when the disk stays bad.
        assert_eq!(manager.reserve(512 << 10).is_ok(), !persistent);
    }
}

#[test]
fn reload_and_clean_read_failures_are_typed_and_retryable() {
    let config = BufferConfig::new(MIB).with_thresholds(managed_only());
    let manager = BufferManager::with_spill_faults(config, FaultPlan::read(1)).unwrap();
    let mut r = manager.reserve(512 << 10).unwrap();
    let a = manager.insert(&mut r, chunk_values(2, 64 << 10), 64, 1024).unwrap();
    manager.evict(u64::MAX).unwrap();
    assert!(manager.pin(a).unwrap_err().to_string().contains("injected fault: read call 1"));
    assert_eq!(manager.block_info(a).unwrap().state, BlockState::Spilled);
    assert_eq!(manager.pin(a).unwrap().data(), chunk_values(2, 64 << 10).as_slice());

    let grid = ChunkGrid::new(4, 4, 2, 2).unwrap();
    let store: Arc<dyn ChunkStore> = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new(grid)), FaultPlan::read(1)));
    let id = manager.register(store, ChunkIndex::new(1, 1)).unwrap();
    assert!(matches!(manager.pin(id), Err(StorageError::Io { .. })));
    assert_eq!(manager.block_info(id).unwrap().state, BlockState::NotLoaded);
    assert_eq!(manager.pin(id).unwrap().data(), &[0.0; 4]);
}

/// A store whose reads say they started, wait until told to go on, then fail: lets a test act
/// on a block while it loads.
#[derive(Debug)]
struct GatedStore {
    grid: ChunkGrid,
    started: Mutex<mpsc::Sender<()>>,
    go: Mutex<mpsc::Receiver<()>>,
}

impl ChunkStore for GatedStore {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn read_chunk_into(&self, _: ChunkIndex, _: &mut Vec<f64>) -> StorageResult<()> {
        self.started.lock().unwrap().send(()).unwrap();
        self.go.lock().unwrap().recv().unwrap();
        Err(StorageError::io("gated store", std::io::Error::other("the read failed")))
    }

    fn write_chunk(&self, _: ChunkIndex, _: &[f64]) -> StorageResult<()> {
        Err(StorageError::Bug("the gated store is read-only".into()))
    }

    fn describe(&self) -> String {
        "gated store".into()
    }
}

#[test]
fn a_block_removed_while_its_load_fails_is_removed() {
    let manager = BufferManager::new(BufferConfig::new(MIB).with_thresholds(managed_only())).unwrap();
    let (started_tx, started) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let grid = ChunkGrid::new(4, 4, 4, 4).unwrap();
    let store = Arc::new(GatedStore { grid, started: Mutex::new(started_tx), go: Mutex::new(go_rx) });
    let id = manager.register(store, ChunkIndex::new(0, 0)).unwrap();
    std::thread::scope(|s| {
        let pinning = s.spawn(|| manager.pin(id).map(drop));
        started.recv().unwrap();
        assert_eq!(manager.block_info(id).unwrap().state, BlockState::Busy);
        // Asked while the block loads: done once it is idle again.
        manager.remove(id).unwrap();
        assert!(manager.block_info(id).is_some());
        go.send(()).unwrap();
        assert!(matches!(pinning.join().unwrap(), Err(StorageError::Io { .. })));
    });
    assert_eq!(manager.block_info(id), None, "the failed load kept a block whose removal was asked");
    assert_eq!(manager.report().managed_accounted, 0);
}

#[test]
fn pin_with_takes_load_memory_from_the_task_budget() {
    let grid = ChunkGrid::new(256, 512, 256, 512).unwrap(); // one 1 MiB chunk
    let store: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new(grid));
    let manager = BufferManager::new(BufferConfig::new(2 * MIB).with_thresholds(managed_only())).unwrap();
    let id = manager.register(store, ChunkIndex::new(0, 0)).unwrap();
    let mut budget = manager.reserve(2 * MIB).unwrap();
    let pin = manager.pin_with(id, &mut budget).unwrap();
    assert_eq!(budget.bytes(), MIB, "the load consumed the chunk's bytes from the budget");
    assert_eq!(manager.report().managed_accounted, 2 * MIB);
    drop(pin);
}

#[test]
fn a_budget_of_another_pool_is_refused() {
    let a = BufferManager::new(BufferConfig::new(2 * MIB)).unwrap();
    let b = BufferManager::new(BufferConfig::new(2 * MIB)).unwrap();
    let grid = ChunkGrid::new(256, 512, 256, 512).unwrap();
    let id = a.register(Arc::new(MemoryStore::new(grid)), ChunkIndex::new(0, 0)).unwrap();
    let mut foreign = b.reserve(MIB).unwrap();
    assert!(matches!(a.pin_with(id, &mut foreign), Err(StorageError::Bug(_))));
    drop(foreign);
    assert_eq!((a.report().managed_accounted, b.report().managed_accounted), (0, 0));
}

#[test]
fn streaming_reads_keep_their_budget_and_evict_block_frees_one_block() {
    let grid = ChunkGrid::new(512, 256, 128, 256).unwrap(); // 4 chunks of 256 KiB
    let store: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new(grid));
    let manager = BufferManager::new(BufferConfig::new(4 * MIB).with_thresholds(managed_only())).unwrap();
    let ids: Vec<BlockId> = grid.indices().map(|i| manager.register(store.clone(), i).unwrap()).collect();
    let mut budget = manager.reserve(256 << 10).unwrap();
    for &id in &ids {
        drop(manager.pin_with(id, &mut budget).unwrap());
        assert_eq!(budget.bytes(), 0);
        assert!(manager.drop_clean_into(id, &mut budget).unwrap());
        assert_eq!(budget.bytes(), 256 << 10, "the chunk's bytes came back to the budget");
        assert_eq!(manager.block_info(id).unwrap().state, BlockState::NotLoaded);
    }
    assert_eq!(manager.report().managed_accounted, 256 << 10);

    // A dirty block is never dropped this way; evict_block spills it instead.
    let mut r = manager.reserve(MIB).unwrap();
    let dirty = manager.insert(&mut r, vec![3.0; 128 * 1024], 128, 1024).unwrap();
    assert!(!manager.drop_clean_into(dirty, &mut budget).unwrap());
    let pin = manager.pin(dirty).unwrap();
    assert_eq!(manager.evict_block(dirty).unwrap(), 0, "a pinned block stays");
    drop(pin);
    assert_eq!(manager.evict_block(dirty).unwrap(), MIB);
    assert_eq!(manager.block_info(dirty).unwrap().state, BlockState::Spilled);
    assert_eq!(manager.pin(dirty).unwrap().data(), &[3.0; 128 * 1024][..]);
}

#[test]
fn the_spill_directory_is_removed_when_a_panic_unwinds() {
    let parent = tempfile::tempdir().unwrap();
    let path = parent.path().to_path_buf();
    let result = std::thread::spawn(move || {
        let config = BufferConfig::new(MIB).with_thresholds(managed_only()).with_spill_parent(&path);
        let manager = BufferManager::new(config).unwrap();
        for i in 0..4 {
            let mut r = manager.reserve(512 << 10).unwrap();
            manager.insert(&mut r, chunk_values(i, 64 << 10), 64, 1024).unwrap();
        }
        assert!(manager.spill_dir().is_some_and(|d| files_in(&d) > 0));
        panic!("simulated failure mid-run");
    })
    .join();
    assert!(result.is_err());
    assert_eq!(files_in(parent.path()), 0, "the spill directory outlived the panic");
}

#[test]
fn reservations_leave_room_for_unmanaged_memory_under_the_terminate_threshold() {
    // 29 MiB of the process is unmanaged; 40 MiB are reserved and in use, so RSS reads 69 MiB.
    // Of a 100 MiB limit, managed memory may then reach 95 - 29 = 66 MiB.
    let (rss, handle) = RssSource::manual(29 * MIB);
    let config = BufferConfig::new(100 * MIB).with_rss(rss).with_accounting(Accounting::Process);
    let manager = BufferManager::new(config).unwrap();
    let _a = manager.reserve(40 * MIB).unwrap();
    handle.store(69 * MIB, Ordering::SeqCst);
    let err = manager.reserve(30 * MIB).unwrap_err();
    assert!(matches!(err, StorageError::ResourcesExhausted { .. }), "{err}");
    let _b = manager.reserve(20 * MIB).unwrap();
}
