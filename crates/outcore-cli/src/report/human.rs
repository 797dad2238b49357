//! The human summaries: the header on stderr, the lines of figures on stdout.

use std::path::Path;

use outcore::ChunkedMatrix;
use outcore::storage::format_size;

use super::json::MemoryPeaksJson;
use super::summary::{RankFigures, Summary};

/// The human summary's header on stderr: the input, its size, the memory limit and the plan.
pub(crate) fn print_header(command: &str, a: &ChunkedMatrix, limit: &str, plan_summary: &str) {
    eprintln!("large-svd {command}: {}", a.describe());
    eprintln!("matrix {} x {} ({}), memory limit {}", a.rows(), a.cols(), format_size(a.store().grid().bytes()), limit);
    eprintln!("{plan_summary}");
}

/// Prints the top singular values, ten to a line at most.
pub(crate) fn values_line(s: &[f64], count: usize) -> String {
    let shown: Vec<String> = s.iter().take(count).map(|x| format!("{x:.6}")).collect();
    let more = if s.len() > count { format!(" ... ({} in all)", s.len()) } else { String::new() };
    format!("{}{more}", shown.join("  "))
}

/// The line every human SVD summary ends its figures with: time, peak RSS and the pool's
/// limit, managed peak and spills.
pub(crate) fn usage_line(summary: &Summary, extra: &str) -> String {
    format!(
        "time {:.2} s{extra}, peak RSS {} (memory limit {} of {} memory, peak managed {}, {} spills), {} tasks on {} {}",
        summary.wall_seconds,
        format_size(summary.peak_rss_bytes),
        format_size(summary.memory.limit),
        summary.memory.accounting,
        format_size(summary.memory.peak_managed),
        summary.memory.spill_count,
        summary.tasks,
        summary.workers,
        if summary.workers == 1 { "worker" } else { "workers" },
    )
}

/// The peak of each memory category, for human summaries.
pub(crate) fn peaks_line(peaks: &MemoryPeaksJson) -> String {
    format!(
        "memory peaks: process {}, managed {}, unmanaged {}, unmanaged recent {}, spilled {}",
        format_size(peaks.process),
        format_size(peaks.managed),
        format_size(peaks.unmanaged),
        format_size(peaks.unmanaged_recent),
        format_size(peaks.spilled)
    )
}

/// Lines saying each rank's share and the job's total, for human summaries of MPI runs (none
/// otherwise).
pub(crate) fn ranks_lines(summary: &Summary) -> Vec<String> {
    let Some(ranks) = &summary.ranks else { return Vec::new() };
    let managed = |f: &RankFigures| f.memory.get("peak_managed").and_then(serde_json::Value::as_u64).unwrap_or(0);
    let mut lines: Vec<String> = ranks
        .iter()
        .map(|f| {
            format!(
                "rank {}: {} tasks, {:.2} s, peak RSS {}, peak managed {}",
                f.rank,
                f.tasks,
                f.wall_seconds,
                format_size(f.peak_rss_bytes),
                format_size(managed(f))
            )
        })
        .collect();
    lines.push(format!(
        "all {} ranks: {} tasks, peak RSS {} and peak managed {} summed over ranks (the limit is per rank)",
        ranks.len(),
        summary.tasks,
        format_size(ranks.iter().map(|f| f.peak_rss_bytes).sum()),
        format_size(ranks.iter().map(managed).sum())
    ));
    lines
}

/// What an SVD command's `--output` directory holds, once committed.
pub(crate) fn wrote_line(path: &Path) -> String {
    format!(
        "wrote {} (u.zarr, s.zarr, v.zarr, summary.json; V holds right singular vectors as columns)",
        path.display()
    )
}
