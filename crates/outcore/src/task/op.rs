//! What a task does: the trait each algorithm's op enum implements.

use std::fmt;

/// What a task does; implemented by each algorithm's op enum.
pub trait Operation: fmt::Debug + Send + Sync {
    /// The stage the op belongs to ("panel QR", "R reduction", ...), for pictures and progress.
    fn stage(&self) -> &'static str;
    /// A short label, e.g. `qr panel 17`.
    fn label(&self) -> String;
    /// The row block of the input this op reads or the output it writes, if any: in a run
    /// across ranks ([`cluster`](crate::cluster)) it runs on the rank owning that block; ops
    /// without one run where their first input was made.
    fn row_block(&self) -> Option<usize> {
        None
    }
}
