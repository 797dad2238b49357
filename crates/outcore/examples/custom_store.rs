//! A store of your own: a matrix computed on demand, entry (i, j) = 1 / (i + j + 1) (a
//! Hilbert-like matrix, 100,000 x 30, never held whole), factored under a 32 MiB engine and
//! checked against faer's dense SVD of the same matrix.
//!
//! `cargo run --release --example custom_store`

use std::sync::Arc;

use outcore::faer::Mat;
use outcore::storage::{ChunkGrid, ChunkIndex, ChunkStore, StorageResult};
use outcore::{ChunkedMatrix, Engine, SvdOptions};

/// The whole store: its grid, and how to read a chunk (row-major, trimmed at the edges).
#[derive(Debug)]
struct Hilbert(ChunkGrid);

impl ChunkStore for Hilbert {
    fn grid(&self) -> ChunkGrid {
        self.0
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let e = self.0.extent(index)?;
        out.clear();
        out.extend((e.row0..e.row0 + e.rows).flat_map(|i| (e.col0..e.col0 + e.cols).map(move |j| entry(i, j))));
        Ok(())
    }
}

fn entry(i: usize, j: usize) -> f64 {
    1.0 / (i + j + 1) as f64
}

fn main() -> outcore::Result<()> {
    let (m, n) = (100_000, 30);
    let a = ChunkedMatrix::from_store(Arc::new(Hilbert(ChunkGrid::new(m, n, 7_000, n)?)));
    let engine = Engine::new(32 << 20)?;
    let svd = outcore::svd(&engine, &a, &SvdOptions::new().vectors(false))?;
    println!("{}: sigma_1..3 = {:.6e}, {:.6e}, {:.6e}", a.describe(), svd.s[0], svd.s[1], svd.s[2]);

    // faer's dense SVD of the same matrix, in RAM, for the check.
    let dense = Mat::from_fn(m, n, entry);
    let reference = dense.singular_values().expect("faer's SVD");
    let tol = 64.0 * f64::EPSILON * (m as f64).sqrt() * reference[0];
    let worst = svd.s.iter().zip(&reference).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(worst <= tol, "singular values differ by {worst:e} (tolerance {tol:e})");
    println!("matches faer's dense SVD (largest difference {worst:.1e}, tolerance {tol:.1e})");
    Ok(())
}
