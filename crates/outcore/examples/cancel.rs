//! Cancelling a run: U of a 500,000 x 50 TSQR is streamed into a new Zarr array; halfway
//! through, the run's cancel token is set from its event stream. The run fails with
//! `Error::Interrupted` and leaves no array behind; the next run on the same engine, with its
//! own control, runs to the end and matches faer's dense SVD.
//!
//! `cargo run --release --example cancel`

use outcore::faer::Mat;
use outcore::{
    CancelToken, ChunkedMatrix, Destination, Distribution, Engine, Error, Event, RunControl, SvdOptions, SvdPlan,
};

fn main() -> outcore::Result<()> {
    let engine = Engine::new(64 << 20)?;
    let a = ChunkedMatrix::generated(Distribution::Normal, 9, 500_000, 50, 10_000, 50)?;
    let plan = SvdPlan::new(&engine, &a, &SvdOptions::new())?;
    let dir = std::env::temp_dir().join(format!("outcore-cancel-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| outcore::storage::StorageError::io(&dir, e))?;
    let u_path = dir.join("u.zarr");

    let cancel = CancelToken::new();
    let token = cancel.clone();
    let control = RunControl::new().cancel_token(cancel).events(move |event: &Event| {
        if let Event::TaskFinished { done, total, .. } = event
            && *done * 2 >= *total
        {
            token.cancel();
        }
    });
    match plan.run_with(&engine, Destination::Zarr(u_path.clone()), &control) {
        Err(Error::Interrupted) => println!("cancelled halfway: {}", Error::Interrupted),
        other => panic!("expected a cancellation, got {other:?}"),
    }
    assert!(!u_path.exists(), "a cancelled run left its output behind");
    let leftovers = std::fs::read_dir(&dir).map_err(|e| outcore::storage::StorageError::io(&dir, e))?.count();
    assert_eq!(leftovers, 0, "a cancelled run left partial files behind");
    assert_eq!(engine.memory_report().managed_accounted, 0, "a cancelled run kept memory");

    // The cancel belonged to that run: the engine carries on.
    let svd = plan.run_with(&engine, Destination::Zarr(u_path.clone()), &RunControl::default())?;
    assert!(u_path.exists());
    println!(
        "peak RSS before the dense check: {}",
        outcore::storage::format_size(outcore::storage::RssSource::Process.sample().peak)
    );
    let dense = a.to_dense()?;
    let reference = dense.singular_values().expect("faer's SVD");
    let tol = 64.0 * f64::EPSILON * (500_000f64).sqrt() * reference[0];
    assert!(svd.s.iter().zip(&reference).all(|(x, y)| (x - y).abs() <= tol));
    let (u, v) = svd.dense_vectors()?;
    let d = Mat::from_fn(50, 50, |i, j| if i == j { svd.s[i] } else { 0.0 });
    assert!((&dense - &u * d * v.transpose()).norm_l2() <= tol);
    println!("the next run finished: sigma_1..3 = {:.6?}; matches faer's dense SVD", &svd.s[..3]);
    std::fs::remove_dir_all(&dir).map_err(|e| outcore::storage::StorageError::io(&dir, e))?;
    Ok(())
}
