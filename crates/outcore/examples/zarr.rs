//! Zarr in, Zarr out: write a 100,000 x 40 matrix to a Zarr array, factor it by TSQR under a
//! 64 MiB engine with U streamed into a new Zarr array (it appears only if the run succeeds),
//! and check the result against faer's dense SVD.
//!
//! `cargo run --release --example zarr [DIR]`

use std::sync::Arc;

use outcore::faer::Mat;
use outcore::storage::{ChunkGrid, ZarrOptions, ZarrStore};
use outcore::{ChunkedMatrix, Destination, Distribution, Engine, Factor, RunControl, SvdOptions, SvdPlan};

fn main() -> outcore::Result<()> {
    let dir = std::env::args().nth(1).map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let work = dir.join(format!("outcore-zarr-example-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| outcore::storage::StorageError::io(&work, e))?;
    let engine = Engine::new(64 << 20)?;

    // A matrix on disk: 100,000 x 40 in chunks of 7,000 rows (any Zarr v2/v3 array works).
    let input = work.join("a.zarr");
    let generated = ChunkedMatrix::generated(Distribution::Normal, 7, 100_000, 40, 7_000, 40)?;
    let store = Arc::new(ZarrStore::create(&input, ChunkGrid::new(100_000, 40, 7_000, 40)?, &ZarrOptions::default())?);
    outcore::copy_matrix(&engine, &generated, store, &RunControl::default())?;

    // Its SVD, U into a new Zarr array.
    let a = ChunkedMatrix::open(&input)?;
    let plan = SvdPlan::new(&engine, &a, &SvdOptions::new())?;
    println!("{}", plan.summary());
    let svd = plan.run_with(&engine, Destination::Zarr(work.join("u.zarr")), &RunControl::default())?;
    let Some(Factor::Stored(u)) = &svd.u else { unreachable!("U was sent to a Zarr array") };
    println!("U written to {} ({:?})", u.describe(), u.grid().shape());

    println!(
        "peak RSS before the dense check: {} (A is 31 MiB on disk)",
        outcore::storage::format_size(outcore::storage::RssSource::Process.sample().peak)
    );
    // Check against faer, reading everything back (small enough here).
    let dense = a.to_dense()?;
    let (u, v) = svd.dense_vectors()?;
    let reference = dense.singular_values().expect("faer's SVD");
    let tol = 64.0 * f64::EPSILON * (100_000f64).sqrt() * reference[0];
    assert!(svd.s.iter().zip(&reference).all(|(x, y)| (x - y).abs() <= tol));
    let d = Mat::from_fn(40, 40, |i, j| if i == j { svd.s[i] } else { 0.0 });
    assert!((&dense - &u * d * v.transpose()).norm_l2() <= tol);
    println!("sigma_1..3 = {:.6?}; matches faer's dense SVD", &svd.s[..3]);
    std::fs::remove_dir_all(&work).map_err(|e| outcore::storage::StorageError::io(&work, e))?;
    Ok(())
}
