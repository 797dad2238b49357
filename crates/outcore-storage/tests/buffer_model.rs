//! Property test: random pin/unpin/insert/register/remove/evict/reserve sequences against a
//! simple model. Checks contents on every pin, exact accounting after every step, that pinned
//! blocks are never evicted, and that failures happen only when the request truly cannot fit.

use std::collections::HashMap;
use std::sync::Arc;

use outcore_storage::{
    BlockId, BlockState, BufferConfig, BufferManager, ChunkGrid, ChunkIndex, ChunkStore, MemoryStore, Pinned,
    Reservation, StorageError, Thresholds,
};
use proptest::prelude::*;

const LIMIT: u64 = 64 << 10;

#[derive(Clone, Debug)]
enum Op {
    Insert { rows: usize, cols: usize, seed: u32 },
    Register { chunk: usize },
    Pin { pick: usize },
    Unpin { pick: usize },
    Remove { pick: usize },
    Evict { bytes: u64 },
    Reserve { bytes: u64 },
    Release { pick: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1usize..40, 1usize..60, any::<u32>()).prop_map(|(rows, cols, seed)| Op::Insert { rows, cols, seed }),
        2 => (0usize..12).prop_map(|chunk| Op::Register { chunk }),
        5 => any::<usize>().prop_map(|pick| Op::Pin { pick }),
        4 => any::<usize>().prop_map(|pick| Op::Unpin { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        1 => (0u64..LIMIT).prop_map(|bytes| Op::Evict { bytes }),
        1 => (0u64..LIMIT / 2).prop_map(|bytes| Op::Reserve { bytes }),
        1 => any::<usize>().prop_map(|pick| Op::Release { pick }),
    ]
}

fn values(n: usize, seed: u32) -> Vec<f64> {
    (0..n).map(|i| f64::from(seed) * 1e-3 + i as f64).collect()
}

struct Model {
    blocks: HashMap<BlockId, Vec<f64>>,
    order: Vec<BlockId>,
    pins: Vec<Pinned>,
    reservations: Vec<Reservation>,
}

impl Model {
    fn pinned_bytes(&self, manager: &BufferManager) -> u64 {
        let mut ids: Vec<BlockId> = self.pins.iter().map(Pinned::id).collect();
        ids.sort();
        ids.dedup();
        ids.iter().filter_map(|&id| manager.block_info(id)).map(|i| i.bytes).sum()
    }

    fn reserved_bytes(&self) -> u64 {
        self.reservations.iter().map(Reservation::bytes).sum()
    }
}

fn check_failure_is_legitimate(err: StorageError, requested: u64, model: &Model, manager: &BufferManager) {
    match err {
        StorageError::ResourcesExhausted { .. } => {
            let unavoidable = model.pinned_bytes(manager) + model.reserved_bytes() + requested;
            assert!(unavoidable > LIMIT, "refused {requested} B although only {unavoidable} B were unavoidable");
        }
        other => panic!("unexpected error {other}"),
    }
}

fn run(ops: Vec<Op>) {
    let thresholds = Thresholds { spill: None, pause: None, terminate: None, ..Thresholds::default() };
    let manager = BufferManager::new(BufferConfig::new(LIMIT).with_thresholds(thresholds)).unwrap();
    let grid = ChunkGrid::new(30, 40, 10, 10).unwrap();
    let source: Vec<f64> = (0..1200).map(|i| (i as f64).sqrt()).collect();
    let store: Arc<dyn ChunkStore> = Arc::new(MemoryStore::from_row_major(grid, &source).unwrap());
    let mut model = Model { blocks: HashMap::new(), order: Vec::new(), pins: Vec::new(), reservations: Vec::new() };

    for op in ops {
        match op {
            Op::Insert { rows, cols, seed } => {
                let bytes = (rows * cols * 8) as u64;
                match manager.reserve(bytes) {
                    Ok(mut r) => {
                        let data = values(rows * cols, seed);
                        let id = manager.insert(&mut r, data.clone(), rows, cols).unwrap();
                        assert_eq!(r.bytes(), 0);
                        model.blocks.insert(id, data);
                        model.order.push(id);
                    }
                    Err(e) => check_failure_is_legitimate(e, bytes, &model, &manager),
                }
            }
            Op::Register { chunk } => {
                let index = ChunkIndex::new(chunk / 4, chunk % 4);
                let id = manager.register(store.clone(), index).unwrap();
                model.blocks.insert(id, store.read_chunk(index).unwrap());
                model.order.push(id);
            }
            Op::Pin { pick } if !model.order.is_empty() => {
                let id = model.order[pick % model.order.len()];
                let bytes = manager.block_info(id).unwrap().bytes;
                let already_pinned = model.pins.iter().any(|p| p.id() == id);
                match manager.pin(id) {
                    Ok(p) => {
                        assert_eq!(p.data(), model.blocks[&id].as_slice(), "contents of {id:?}");
                        model.pins.push(p);
                    }
                    Err(e) => {
                        assert!(!already_pinned, "pinning an already pinned block cannot need memory");
                        // A reload also needs an LZ4 frame buffer (1.1x + 20 B) and an 8 KiB I/O buffer.
                        check_failure_is_legitimate(e, bytes * 21 / 10 + 8300, &model, &manager);
                    }
                }
            }
            Op::Unpin { pick } if !model.pins.is_empty() => {
                let i = pick % model.pins.len();
                drop(model.pins.swap_remove(i));
            }
            Op::Remove { pick } if !model.order.is_empty() => {
                let id = model.order.remove(pick % model.order.len());
                manager.remove(id).unwrap();
                model.blocks.remove(&id);
            }
            Op::Evict { bytes } => {
                manager.evict(bytes).unwrap();
            }
            Op::Reserve { bytes } => match manager.reserve(bytes) {
                Ok(r) => model.reservations.push(r),
                Err(e) => check_failure_is_legitimate(e, bytes, &model, &manager),
            },
            Op::Release { pick } if !model.reservations.is_empty() => {
                let i = pick % model.reservations.len();
                drop(model.reservations.swap_remove(i));
            }
            _ => {}
        }

        // Pinned blocks are in RAM, whatever happened.
        for p in &model.pins {
            let info = manager.block_info(p.id()).expect("a pinned block exists");
            assert_eq!(info.state, BlockState::InMemory, "pinned block {:?} left memory", p.id());
        }
        // Accounting is exact: managed = bytes of blocks in RAM + reservations.
        let live: Vec<BlockId> = {
            let mut ids: Vec<BlockId> = model.order.clone();
            ids.extend(model.pins.iter().map(Pinned::id));
            ids.sort();
            ids.dedup();
            ids
        };
        let in_memory: u64 = live
            .iter()
            .filter_map(|&id| manager.block_info(id))
            .filter(|i| i.state == BlockState::InMemory)
            .map(|i| i.bytes)
            .sum();
        let spilled =
            live.iter().filter_map(|&id| manager.block_info(id)).filter(|i| i.state == BlockState::Spilled).count();
        let report = manager.report();
        assert_eq!(report.managed_accounted, in_memory + model.reserved_bytes());
        assert_eq!(report.reserved, model.reserved_bytes());
        assert_eq!(report.spilled_chunks, spilled);
        assert!(report.managed_accounted <= LIMIT, "managed {} over the limit", report.managed_accounted);
    }

    // Everything left still reads back correctly, and removing it all empties the spill dir.
    model.pins.clear();
    model.reservations.clear();
    for &id in &model.order {
        assert_eq!(manager.pin(id).unwrap().data(), model.blocks[&id].as_slice());
    }
    for id in model.order.drain(..) {
        manager.remove(id).unwrap();
    }
    let report = manager.report();
    assert_eq!((report.managed_accounted, report.spilled, report.spilled_chunks), (0, 0, 0));
    if let Some(dir) = manager.spill_dir() {
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "spill files left in {}", dir.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn buffer_manager_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops);
    }
}
