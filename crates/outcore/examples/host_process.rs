//! outcore inside a host that holds a lot of memory: the host allocates and touches 2 GiB
//! before the run and another 2 GiB (on a thread of its own) during it. The engine's limit,
//! 16 MiB (a TSQR with U of 600,000 x 50, 229 MiB, which spills alone), counts only what
//! outcore holds, so the job runs as it does alone: same plan, same spills, bitwise the same
//! singular values. Then they are checked against faer's dense SVD.
//!
//! `cargo run --release --example host_process [HOST_MIB]` (default 2048)

use outcore::faer::{Mat, MatRef};
use outcore::{ChunkedMatrix, Destination, Distribution, Engine, RunControl, SvdOptions, SvdPlan, SvdResult};

const ROWS: usize = 600_000;
const COLS: usize = 50;

fn main() -> outcore::Result<()> {
    let host_mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2048);
    let engine = Engine::new(16 << 20)?;
    let a = ChunkedMatrix::generated(Distribution::Normal, 3, ROWS, COLS, 10_000, COLS)?;
    let out = std::env::temp_dir().join(format!("outcore-host-example-{}", std::process::id()));
    std::fs::create_dir_all(&out).map_err(|e| outcore::storage::StorageError::io(&out, e))?;

    // Alone.
    let (alone, alone_spills) = job(&engine, &a, &out.join("alone-u.zarr"))?;

    // With the host holding memory before and during the run.
    let before = touched(host_mib << 20);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let grower = std::thread::spawn(move || {
        let during = touched(host_mib << 20);
        rx.recv().ok(); // hold it until the run is over
        during.len()
    });
    let (hosted, hosted_spills) = job(&engine, &a, &out.join("hosted-u.zarr"))?;
    let report = engine.memory_report();
    tx.send(()).ok();
    let during = grower.join().expect("the host thread");
    println!("host held {} MiB before the run and {} MiB more during it", before.len() >> 20, during >> 20);
    println!("{report}");
    drop(before);

    assert_eq!(hosted_spills, alone_spills, "the host's memory made outcore spill");
    let same = alone.s.iter().zip(&hosted.s).all(|(x, y)| x.to_bits() == y.to_bits());
    assert!(same, "the host's memory changed the result");
    println!("alone and hosted: {alone_spills} spills each, singular values bitwise equal");

    println!(
        "peak RSS before the dense check: {} (the host's 2 x {host_mib} MiB included)",
        outcore::storage::format_size(outcore::storage::RssSource::Process.sample().peak)
    );
    let dense = a.to_dense()?;
    check(dense.as_ref(), &hosted)?;
    println!("sigma_1..3 = {:.6?}; matches faer's dense SVD", &hosted.s[..3]);
    std::fs::remove_dir_all(&out).map_err(|e| outcore::storage::StorageError::io(&out, e))?;
    Ok(())
}

/// The TSQR SVD with U into a new Zarr array; the spills it made.
fn job(engine: &Engine, a: &ChunkedMatrix, u: &std::path::Path) -> outcore::Result<(SvdResult, u64)> {
    let spills = engine.memory_report().spill_count;
    let plan = SvdPlan::new(engine, a, &SvdOptions::new())?;
    let svd = plan.run_with(engine, Destination::Zarr(u.to_path_buf()), &RunControl::default())?;
    Ok((svd, engine.memory_report().spill_count - spills))
}

/// `bytes` of memory, every page written.
fn touched(bytes: usize) -> Vec<u8> {
    let mut v = vec![0u8; bytes];
    for page in v.chunks_mut(4096) {
        page[0] = 1;
    }
    v
}

fn check(a: MatRef<'_, f64>, svd: &SvdResult) -> outcore::Result<()> {
    let reference = a.singular_values().expect("faer's SVD");
    let tol = 64.0 * f64::EPSILON * (a.nrows() as f64).sqrt() * reference[0];
    assert!(svd.s.iter().zip(&reference).all(|(x, y)| (x - y).abs() <= tol));
    let (u, v) = svd.dense_vectors()?;
    let d = Mat::from_fn(COLS, COLS, |i, j| if i == j { svd.s[i] } else { 0.0 });
    assert!((a - &u * d * v.transpose()).norm_l2() <= tol);
    Ok(())
}
