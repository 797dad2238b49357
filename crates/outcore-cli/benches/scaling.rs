//! TSQR values-only on 2M, 8M and 20M rows (x 100) from a Zarr store on disk: time per row
//! and peak RSS, which should stay flat while the matrix grows tenfold.
//!
//! `cargo bench --bench scaling [-- --rows 2000000,8000000,20000000] [--dir DIR] [--warm]`
//!
//! Each matrix is written with `large-svd generate` (16 GB for 20M rows: `--dir` must have room),
//! its chunk files are then evicted from the page cache (fdatasync + POSIX_FADV_DONTNEED) so the
//! SVD reads them from disk (`--warm` skips that), and it is deleted afterwards.

use std::path::{Path, PathBuf};

use serde_json::Value;

use outcore_testkit::child;

fn evict_from_page_cache(dir: &Path) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            bytes += evict_from_page_cache(&path)?;
            continue;
        }
        let file = std::fs::File::open(&path)?;
        file.sync_data()?;
        // SAFETY: posix_fadvise only advises the kernel about this open file descriptor.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        bytes += file.metadata()?.len();
    }
    Ok(bytes)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows = child::rows(&args, "2000000,8000000,20000000");
    let warm = args.iter().any(|a| a == "--warm");
    let base = child::flag_value(&args, "--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-scaling"));
    std::fs::create_dir_all(&base).expect("scaling directory");
    let large_svd = env!("CARGO_BIN_EXE_large-svd");
    println!("| rows x 100 | on disk | generate s | SVD wall s | ns per row | peak RSS MiB | page cache |");
    println!("|---|---|---|---|---|---|---|");
    for m in rows {
        let dir = tempfile::tempdir_in(&base).expect("temporary directory");
        let path = dir.path().join("x.zarr");
        let p = path.to_string_lossy().into_owned();
        let generate: Vec<String> =
            ["generate", "--rows", &m.to_string(), "--cols", "100", "--chunk-rows", "10000", "--json", "--output", &p]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let g = child::run_measured(large_svd, &generate);
        assert_eq!(g.code, Some(0), "{}", String::from_utf8_lossy(&g.stderr));
        let on_disk = if warm { 0 } else { evict_from_page_cache(&path).expect("evict") };
        let svd: Vec<String> = ["tsqr", "--input", &p, "--values-only", "--memory-limit", "64MiB", "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = child::run_measured(large_svd, &svd);
        assert_eq!(r.code, Some(0), "{}", String::from_utf8_lossy(&r.stderr));
        let v: Value = serde_json::from_slice(&r.stdout).expect("json");
        assert_eq!(v["singular_values"].as_array().map(Vec::len), Some(100));
        println!(
            "| {m} | {:.1} GB | {:.1} | {:.2} | {:.0} | {:.1} | {} |",
            (m * 100 * 8) as f64 / 1e9,
            g.wall,
            r.wall,
            r.wall * 1e9 / m as f64,
            r.own_peak_rss() as f64 / 1048576.0,
            if warm { "warm".to_string() } else { format!("cold ({:.1} GB evicted)", on_disk as f64 / 1e9) }
        );
    }
}
