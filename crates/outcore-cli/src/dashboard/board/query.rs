//! What a client asks for in a state query: where its last update ended ([`Cursor`]) and how
//! much of the board it wants ([`Share`]).

use super::{MARK_CAP, TASK_CAP};

/// The value of `key` in a URL query (`a=1&b=2`), if present.
pub(crate) fn query_value<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Where a client's last update ended: the next task's and spill's or reload's sequence numbers,
/// the last sample's time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cursor {
    /// Sequence number of the first task not yet sent.
    pub next_task: u64,
    /// Sequence number of the first spill or reload not yet sent.
    pub next_mark: u64,
    /// Time (seconds) of the last sample sent; later ones are new.
    pub last_sample: f64,
}

/// How much of the board a state carries: at most `tasks` of the newest tasks (and as large a
/// part of its spills and reloads), and the memory
/// timeline or not. The other ranks of a job send their share, so that rank 0's combined state
/// stays as large as one board's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Share {
    /// Most tasks sent.
    pub tasks: usize,
    /// Whether the memory samples are sent.
    pub timeline: bool,
}

impl Share {
    /// Each rank's part of one board's worth in a job of `ranks`: rank 0 alone sends samples
    /// (the page draws rank 0's timeline).
    pub(crate) fn of_rank(rank: usize, ranks: usize) -> Self {
        Self { tasks: TASK_CAP / ranks.max(1), timeline: rank == 0 }
    }

    /// The share a state query asks for, `tasks=N&timeline=0` (the whole board where absent).
    pub(crate) fn from_query(query: &str) -> Self {
        let value = |key: &str| query_value(query, key);
        Self {
            tasks: value("tasks").and_then(|v| v.parse().ok()).map_or(TASK_CAP, |n: usize| n.min(TASK_CAP)),
            timeline: value("timeline") != Some("0"),
        }
    }

    /// Most spills and reloads sent: the same part of those kept as of the tasks.
    pub(crate) fn marks(&self) -> usize {
        self.tasks * MARK_CAP / TASK_CAP
    }

    /// The query asking for this share.
    pub(crate) fn query(&self) -> String {
        format!("tasks={}&timeline={}", self.tasks, u8::from(self.timeline))
    }
}

impl Default for Cursor {
    /// Everything: no task sent yet, no sample (samples are at 0 s or later).
    fn default() -> Self {
        Self { next_task: 0, next_mark: 0, last_sample: -1.0 }
    }
}

impl Cursor {
    /// The cursor of a state query, `from=N&marks_from=M&after=T` (the start where absent).
    pub(crate) fn from_query(query: &str) -> Self {
        let value = |key: &str| query_value(query, key);
        Self {
            next_task: value("from").and_then(|v| v.parse().ok()).unwrap_or(0),
            next_mark: value("marks_from").and_then(|v| v.parse().ok()).unwrap_or(0),
            last_sample: value("after").and_then(|v| v.parse().ok()).unwrap_or(-1.0),
        }
    }

    /// The query that asks for what comes after this cursor.
    pub(crate) fn query(&self) -> String {
        format!("from={}&marks_from={}&after={}", self.next_task, self.next_mark, self.last_sample)
    }
}
