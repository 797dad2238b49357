//! The roofline line: what the run computed and read, the process's CPU time, and the
//! machine's compute roof (faer's GEMM rate on the run's threads), from which the page gives
//! the run's rates against the roof and what bounds it.

use std::time::Instant;

use outcore::faer::linalg::matmul::matmul;
use outcore::faer::{Accum, Mat, Par};
use outcore::graph::Work;
use serde::Serialize;

/// The machine's roof for a run on `threads` threads, measured when the dashboard starts
/// (about 10 ms, before the run): zero when not measured. Only the compute roof: a
/// memory or disk rate would need buffers larger than the caches, or a cold cache, at the
/// run's expense.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct Roofs {
    /// Flop/s of faer's GEMM (n = 192, one thread each, all at once), summed over the threads.
    gemm: f64,
}

/// GEMM order of the probe: its two matrices (576 KiB) stay in a core's cache, as the blocked
/// kernels' tiles do.
const GEMM_N: usize = 192;
/// The probe's best of this many products.
const TRIES: usize = 6;

impl Roofs {
    /// Measures the roof of `threads` threads.
    pub(crate) fn measure(threads: usize) -> Self {
        let rates: Vec<f64> = std::thread::scope(|s| {
            let probes: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(gemm_rate)).collect();
            probes.into_iter().filter_map(|p| p.join().ok()).collect()
        });
        Self { gemm: rates.iter().sum() }
    }
}

/// One thread's GEMM flop/s, the best of [`TRIES`].
fn gemm_rate() -> f64 {
    let a = Mat::from_fn(GEMM_N, GEMM_N, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
    let mut c = Mat::<f64>::zeros(GEMM_N, GEMM_N);
    let best = (0..TRIES)
        .map(|_| {
            let start = Instant::now();
            matmul(c.as_mut(), Accum::Replace, a.as_ref(), std::hint::black_box(a.as_ref()), 1.0, Par::Seq);
            std::hint::black_box(&c);
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    2.0 * (GEMM_N as f64).powi(3) / best.as_secs_f64().max(1e-9)
}

/// What a state says for the roofline: totals so far (the page takes their rates over its
/// window) and the roofs.
#[derive(Serialize)]
pub(super) struct WorkView {
    flops: u64,
    read: u64,
    /// Seconds of CPU the process used (user and system).
    cpu: f64,
    roofs: Roofs,
}

impl WorkView {
    pub(super) fn new(done: Work, roofs: Roofs) -> Self {
        Self { flops: done.flops, read: done.read, cpu: cpu_seconds(), roofs }
    }
}

/// The process's CPU time, user and system (zero where it cannot be read).
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` to the pointer, which points to one.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return 0.0;
    }
    // SAFETY: getrusage returned 0, so it wrote the whole struct (zeroed before anyway).
    let usage = unsafe { usage.assume_init() };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roofs_are_measured_and_the_cpu_time_moves() {
        let start = Instant::now();
        let roofs = Roofs::measure(1);
        eprintln!("{roofs:?}, measured in {:?}", start.elapsed());
        // Any machine this runs on multiplies faster than 0.1 GFLOP/s, and none faster than
        // 1 TFLOP/s on one thread (the product is made, not optimized away).
        assert!(roofs.gemm > 1e8 && roofs.gemm < 1e12, "{roofs:?}");
        let before = cpu_seconds();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = cpu_seconds() - before;
        assert!(used > 0.05, "200 ms of spinning counted {used} s of CPU");
    }
}
