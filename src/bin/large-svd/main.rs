//! `large-svd`: out-of-core SVD from the command line. See `large-svd --help`.

mod cli;
mod common;
mod demo;
mod generate;
mod rsvd;
mod tsqr;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

use outcore::Error;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let cancel = Arc::new(AtomicBool::new(false));
    let handler_flag = cancel.clone();
    // Ctrl-C stops the run at the next task boundary; cleanup happens as the run unwinds.
    if let Err(e) = ctrlc::set_handler(move || handler_flag.store(true, Ordering::SeqCst)) {
        eprintln!("warning: cannot install the Ctrl-C handler ({e}); Ctrl-C will stop without cleanup");
    }
    let result = match &cli.command {
        None => demo::run(&cli.run, cancel),
        Some(cli::Command::Tsqr(args)) => tsqr::run(args, &cli.run, cancel),
        Some(cli::Command::Rsvd(args)) => rsvd::run(args, &cli.run, cancel),
        Some(cli::Command::Generate(args)) => generate::run(args, &cli.run, cancel),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Interrupted) => {
            eprintln!("large-svd: interrupted; no output was written and spill files were removed");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("large-svd: error: {e}");
            ExitCode::FAILURE
        }
    }
}
