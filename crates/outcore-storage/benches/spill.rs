//! Spill and reload throughput of the buffer manager on this machine.
//!
//! `cargo bench -p outcore-storage --bench spill [-- --reps N]`
//!
//! 640 MiB of dirty 8 MiB chunks go through a 64 MiB budget: each batch is inserted, then
//! evicted (spilled) and timed; afterwards every chunk is pinned back (reloaded) and timed.
//! Incompressible (random doubles) and compressible data (doubles on a coarse grid, like
//! quantized measurements), with LZ4 on and off. Medians over the repetitions.

use std::time::Instant;

use outcore_storage::{BlockId, BufferConfig, BufferManager, Thresholds};

const CHUNK_VALUES: usize = 1 << 20; // 8 MiB
const CHUNKS: usize = 80; // 640 MiB
const LIMIT: u64 = 64 << 20;

fn data(kind: &str, chunk: usize) -> Vec<f64> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ chunk as u64;
    (0..CHUNK_VALUES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            if kind == "random" { u } else { (u * 64.0).floor() / 8.0 }
        })
        .collect()
}

fn run(kind: &str, compress: bool) -> (f64, f64, f64) {
    let mut config = BufferConfig::new(LIMIT).with_thresholds(Thresholds {
        spill: None,
        pause: None,
        terminate: None,
        ..Thresholds::default()
    });
    config.compress_spills = compress;
    let manager = BufferManager::new(config).expect("manager");
    let mut ids: Vec<BlockId> = Vec::new();
    let mut spill_seconds = 0.0;
    for batch in (0..CHUNKS).collect::<Vec<_>>().chunks(4) {
        for &c in batch {
            let values = data(kind, c);
            let mut r = manager.reserve((CHUNK_VALUES * 8) as u64).expect("reserve");
            ids.push(manager.insert(&mut r, values, 1024, 1024).expect("insert"));
        }
        let t = Instant::now();
        manager.evict(u64::MAX).expect("spill");
        spill_seconds += t.elapsed().as_secs_f64();
    }
    let report = manager.report();
    let ratio = report.spilled as f64 / (CHUNKS * CHUNK_VALUES * 8) as f64;
    let mut reload_seconds = 0.0;
    for &id in &ids {
        let t = Instant::now();
        let pinned = manager.pin(id).expect("reload");
        reload_seconds += t.elapsed().as_secs_f64();
        std::hint::black_box(pinned.data()[0]);
        drop(pinned);
        manager.remove(id).expect("remove");
    }
    let mib = (CHUNKS * CHUNK_VALUES * 8) as f64 / (1 << 20) as f64;
    (mib / spill_seconds, mib / reload_seconds, ratio)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(3usize);
    println!("| data | LZ4 | spill MiB/s | reload MiB/s | bytes on disk / bytes |");
    println!("|---|---|---|---|---|");
    for kind in ["random", "compressible"] {
        for compress in [true, false] {
            let mut spill = Vec::new();
            let mut reload = Vec::new();
            let mut ratio = 0.0;
            for _ in 0..reps {
                let (s, r, q) = run(kind, compress);
                spill.push(s);
                reload.push(r);
                ratio = q;
            }
            spill.sort_by(f64::total_cmp);
            reload.sort_by(f64::total_cmp);
            println!(
                "| {kind} | {} | {:.0} | {:.0} | {:.3} |",
                if compress { "on" } else { "off" },
                spill[reps / 2],
                reload[reps / 2],
                ratio
            );
        }
    }
}
