//! Running a child process and measuring it from outside: wall time and peak RSS (`wait4`).
//! Shared by the tests and the benches.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What a finished child did.
pub struct Measured {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Wall-clock seconds from spawn to exit.
    pub wall: f64,
    /// Peak resident set size in bytes, from the kernel's accounting of the child (`wait4`).
    pub peak_rss: u64,
    /// This process's own peak RSS when the child was spawned. Linux folds the spawning
    /// process's high-water mark into the child's at `exec` (`posix_spawn` shares the address
    /// space until then), so `peak_rss` is the child's own only when it exceeds this.
    pub parent_peak: u64,
    /// Everything it printed on stdout.
    pub stdout: Vec<u8>,
    /// Everything it printed on stderr.
    pub stderr: Vec<u8>,
}

/// Runs `program` with `args` to completion.
pub fn run_measured(program: &str, args: &[String]) -> Measured {
    let parent_peak = own_peak_rss();
    let start = Instant::now();
    #[expect(clippy::zombie_processes, reason = "reaped below by libc::wait4, which also returns its rusage")]
    let mut child =
        Command::new(program).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).map(|_| bytes).unwrap_or_default()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let mut status = 0;
    // SAFETY: rusage is plain data, for which all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 reaps our own child (nothing else waits for it) into valid pointers.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    Measured {
        code: std::process::ExitStatus::from_raw(status).code(),
        wall: start.elapsed().as_secs_f64(),
        peak_rss: usage.ru_maxrss as u64 * 1024,
        parent_peak,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// This process's peak RSS (`VmHWM`), 0 where unknown.
pub fn own_peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

impl Measured {
    /// The child's peak RSS, or a panic if the measurement is dominated by the parent's.
    pub fn own_peak_rss(&self) -> u64 {
        assert!(
            self.peak_rss > self.parent_peak,
            "the child's measured peak ({} KiB) does not exceed the spawning process's own ({} KiB): measure from a smaller parent",
            self.peak_rss >> 10,
            self.parent_peak >> 10
        );
        self.peak_rss
    }
}

/// The value after `flag` among a bench's arguments.
pub fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned()
}

/// The value of `--reps N` among a bench's arguments, or `default`.
pub fn reps(args: &[String], default: usize) -> usize {
    flag_value(args, "--reps").and_then(|r| r.parse().ok()).unwrap_or(default)
}

/// The row counts of `--rows A,B,...` among a bench's arguments, or those of `default`.
pub fn rows(args: &[String], default: &str) -> Vec<usize> {
    flag_value(args, "--rows")
        .unwrap_or_else(|| default.into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect()
}
