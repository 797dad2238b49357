//! The board as Prometheus text and as a Chrome trace.

use std::fmt::Write as _;

use super::state::ProcessIo;
use super::{Board, IoKind, IoMark, StageState, TaskRect, ThreadState};

impl Board {
    /// The figures in Prometheus' text format.
    pub(crate) fn metrics(&self) -> String {
        let io = ProcessIo::read();
        let inner = self.lock();
        let w = inner.worker(&self.name, self.threads, io);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP outcore_{name} {help}\n# TYPE outcore_{name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "outcore_{name}{labels} {value}");
            }
        };
        let one = |v: u64| [(String::new(), v as f64)];
        // Prometheus' conventions: counters end in _total; the parts of one whole under one
        // name, so that sum() adds them up (the process memory is a whole of its own).
        metric("tasks_done_total", "counter", "Tasks finished.", &one(inner.done));
        metric("tasks", "gauge", "Tasks in the runs begun so far.", &one(inner.total));
        metric("running", "gauge", "1 while a run goes on.", &one(u64::from(inner.running)));
        metric("process_memory_bytes", "gauge", "The process's memory (resident set).", &one(w.process));
        let memory: Vec<(String, f64)> = [
            ("managed", w.managed),
            ("unmanaged_old", w.unmanaged_old),
            ("unmanaged_recent", w.unmanaged_recent),
            ("host", w.host),
            ("spilled", w.spilled),
        ]
        .iter()
        .map(|(c, v)| (format!("{{category=\"{c}\"}}"), *v as f64))
        .collect();
        metric(
            "memory_bytes",
            "gauge",
            "Memory by Dask's categories, the process's parts and the bytes in spill files.",
            &memory,
        );
        metric("memory_limit_bytes", "gauge", "The memory limit.", &one(w.limit));
        let thresholds: Vec<(String, f64)> =
            [("target", w.thresholds.target), ("spill", w.thresholds.spill), ("pause", w.thresholds.pause)]
                .into_iter()
                .chain([("terminate", w.thresholds.terminate)])
                .filter_map(|(n, v)| v.map(|v| (format!("{{threshold=\"{n}\"}}"), v)))
                .collect();
        metric("threshold_ratio", "gauge", "Thresholds as fractions of the limit.", &thresholds);
        metric("spills_total", "counter", "Blocks written to spill files.", &one(w.spills));
        metric("reloads_total", "counter", "Blocks read back from spill files.", &one(w.reloads));
        metric("waits_for_memory_total", "counter", "Times a task waited for memory.", &one(inner.waits));
        metric("read_bytes_total", "counter", "Bytes the process read (rchar).", &one(w.read_bytes));
        metric("written_bytes_total", "counter", "Bytes the process wrote (wchar).", &one(w.written_bytes));
        let (flops, decoded) = (inner.work.flops, inner.work.read);
        metric("flops_total", "counter", "Flops of the finished tasks (textbook counts).", &one(flops));
        metric("input_bytes_total", "counter", "Bytes of input the finished tasks read, decoded.", &one(decoded));
        let stage_rows = |f: fn(&StageState) -> u64| -> Vec<(String, f64)> {
            inner.stages.iter().map(|s| (format!("{{stage=\"{}\"}}", s.name), f(s) as f64)).collect()
        };
        metric("stage_tasks_done_total", "counter", "Tasks finished per stage.", &stage_rows(|s| s.done));
        metric("stage_tasks", "gauge", "Tasks per stage.", &stage_rows(|s| s.total));
        let busy = inner.threads.iter().filter(|t| t.state == ThreadState::Running).count() as u64;
        metric("threads_busy", "gauge", "Threads running a task.", &one(busy));
        out
    }

    /// The kept tasks as a Chrome trace (for Perfetto or chrome://tracing): one track per
    /// thread, one slice per task, named by stage, and one per spill or reload (on a track of
    /// its own when no task's thread did it).
    pub(crate) fn trace_json(&self) -> String {
        let inner = self.lock();
        let (tasks, marks, threads, dropped) =
            (inner.tasks.clone(), inner.marks.clone(), inner.threads.len(), inner.first_seq);
        let names: Vec<&str> = inner.stages.iter().map(|s| s.name).collect();
        drop(inner);
        let mut out = String::with_capacity(96 * (tasks.len() + marks.len() + threads) + 256);
        out.push_str("{\"traceEvents\":[");
        let outside = marks.iter().any(|m| m.0.is_none()).then_some(threads);
        for (t, name) in
            (0..threads).map(|t| (t, format!("worker thread {t}"))).chain(outside.map(|t| (t, "outside tasks".into())))
        {
            let _ = write!(
                out,
                "{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":{t},\"args\":{{\"name\":\"{name}\"}}}},"
            );
        }
        let micros = |start: f64, end: f64| ((start * 1e6).round(), ((end - start) * 1e6).round());
        for TaskRect(thread, stage, start, end, ..) in tasks {
            let name = names.get(usize::from(stage)).copied().unwrap_or("task");
            let (ts, dur) = micros(start, end);
            let _ = write!(
                out,
                "{{\"name\":\"{name}\",\"cat\":\"{name}\",\"ph\":\"X\",\"pid\":1,\"tid\":{thread},\"ts\":{ts},\"dur\":{dur}}},"
            );
        }
        for IoMark(thread, kind, start, end, bytes) in marks {
            let name = match kind {
                IoKind::Spill => "spill",
                IoKind::Reload => "reload",
            };
            let (tid, (ts, dur)) = (thread.map_or(threads, usize::from), micros(start, end));
            let _ = write!(
                out,
                "{{\"name\":\"{name}\",\"cat\":\"io\",\"ph\":\"X\",\"pid\":1,\"tid\":{tid},\"ts\":{ts},\"dur\":{dur},\"args\":{{\"bytes\":{bytes}}}}},"
            );
        }
        if out.ends_with(',') {
            out.pop();
        }
        let title = serde_json::to_string(&self.title).unwrap_or_else(|_| "\"\"".into());
        let _ = write!(
            out,
            "],\"displayTimeUnit\":\"ms\",\"otherData\":{{\"title\":{title},\"dropped_tasks\":{dropped}}}}}"
        );
        out
    }
}
