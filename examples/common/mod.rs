//! What the examples share.

/// This process's peak resident set size so far, from the kernel (`VmHWM`; Linux only).
pub fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or_else(|| "unknown (no /proc/self/status)".into(), |kib| format!("{:.1} MiB", kib as f64 / 1024.0))
}
