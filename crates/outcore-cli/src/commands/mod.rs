//! The commands, one file each (`means` a folder with its workload), all run through the one
//! lifecycle (`lifecycle`).

mod demo;
mod generate;
mod grow;
mod lifecycle;
mod lstsq;
mod means;
mod qr;
mod rsvd;
mod tsqr;

use outcore::{CancelToken, Result};

use crate::args::{Command as Args, RunArgs};
use lifecycle::execute;

/// Runs the command `args` names (the demo without one).
pub(crate) fn dispatch(args: Option<&Args>, run: &RunArgs, cancel: CancelToken) -> Result<()> {
    match args {
        None => execute(&demo::Demo, &demo::run_args(run), cancel),
        Some(Args::Tsqr(args)) => execute(args, run, cancel),
        Some(Args::Rsvd(args)) => execute(args, run, cancel),
        Some(Args::Qr(args)) => execute(args, run, cancel),
        Some(Args::Lstsq(args)) => execute(args, run, cancel),
        Some(Args::Grow(args)) => execute(args, run, cancel),
        Some(Args::Generate(args)) => execute(args, run, cancel),
        Some(Args::Means(args)) => execute(args, run, cancel),
    }
}
