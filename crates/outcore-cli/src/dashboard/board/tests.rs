//! The board's bounds.

use std::sync::Arc;

use outcore::graph::Stage;

use super::*;
use crate::dashboard::intake::MAX_CONNECTIONS;

/// A board at its caps, with the longest numbers: what [`BOARD_BYTES`] and [`RANK_BYTES`]
/// must cover.
#[test]
fn a_full_board_and_a_state_per_connection_fit_the_bytes_counted_for_them() {
    let start = Instant::now();
    let name = "rank 1023 (a-long-host-name.cluster.example.org, pid 4194304)".to_string();
    let board =
        Board::new("large-svd tsqr --rows 50000000 --dashboard".into(), 1023, name, 64, Roofs::default(), start);
    let stages: Arc<[Stage]> =
        (0..8).map(|i| Stage { name: "Q back-propagation", tasks: 1 << 30, after: vec![i] }).collect();
    board.event(&Event::RunStarted { tasks: 1 << 40, workers: 64, stages: stages.clone(), at: start });
    // A rank's fixed rows: its state without tasks or samples.
    let (fixed, _) = board.state_json(Cursor::default(), Share::of_rank(1, 1 << 20));
    let late = start + std::time::Duration::from_secs(86_400 * 30);
    // The largest bytes reserved, the highest task numbers.
    let (reserved, scratch, at) = (u64::MAX / 4, u64::MAX / 4, late);
    board.event(&Event::TaskStarted { worker: 63, task: 0, stage: "Q back-propagation", reserved, scratch, at });
    for task in (1 << 40)..(1 << 40) + TASK_CAP + 10 {
        board.event(&Event::TaskFinished {
            worker: 63,
            task,
            stage: "Q back-propagation",
            started: late - std::time::Duration::from_nanos(123_456_789),
            finished: late,
            done: task,
            total: 1 << 40,
            work: outcore::graph::Work { flops: u64::MAX / 2, read: u64::MAX / 2 },
        });
    }
    for i in 0..MARK_CAP + 10 {
        let (bytes, worker, took, at) = (u64::MAX / 2, Some(63), std::time::Duration::from_nanos(123_456_789), late);
        board.event(&match i % 2 {
            0 => Event::Spilled { bytes, disk_bytes: bytes, worker, took, at },
            _ => Event::Reloaded { bytes, worker, took, at },
        });
    }
    let mut report = outcore::Engine::new(64 << 20).expect("an engine").memory_report();
    for field in [&mut report.limit, &mut report.process, &mut report.managed, &mut report.unmanaged_old] {
        *field = u64::MAX / 2;
    }
    (report.unmanaged_recent, report.host, report.spilled) = (u64::MAX / 2, u64::MAX / 2, u64::MAX / 2);
    for i in 0..SAMPLE_CAP {
        let at = late + std::time::Duration::from_nanos(123_456_789 * i as u64);
        board.event(&Event::Memory { report: Box::new(report.clone()), at });
    }
    let kept = board.lock().tasks.len();
    assert_eq!((kept, board.lock().marks.len()), (TASK_CAP, MARK_CAP));
    assert_eq!(board.lock().samples.len(), SAMPLE_CAP, "full, not yet thinned");
    let (state, _) = board.state_json(Cursor::default(), Share::of_rank(0, 1));
    let trace = board.trace_json();
    let buffers = board.lock().bytes();
    // A state is made from copies of the tasks, samples and rows, as large as the buffers.
    let connection = buffers + state.len().max(trace.len()) as u64;
    // The other ranks' final states hold one board's tasks between them.
    let total = buffers + MAX_CONNECTIONS as u64 * connection + state.len() as u64;
    eprintln!(
        "a full board: {buffers} B of buffers, a state of {} B, a trace of {} B, {total} B in all; a rank's rows {} B",
        state.len(),
        trace.len(),
        fixed.len()
    );
    assert!(total <= BOARD_BYTES, "{total} > {BOARD_BYTES}");
    assert!((MAX_CONNECTIONS as u64 + 1) * fixed.len() as u64 <= RANK_BYTES, "{fixed}");
    serde_json::from_str::<serde_json::Value>(&trace).expect("the trace is JSON");
}
