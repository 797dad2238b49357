//! `large-svd`: out-of-core SVD from the command line. See `large-svd --help`.

mod cli;
mod common;
mod demo;
mod generate;
mod means;
mod rsvd;
mod tsqr;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

use outcore::Error;

/// Makes glibc return large freed blocks to the OS at once. By default it raises its mmap
/// threshold after the first large free and then keeps freed blocks in its heaps: process RSS
/// then overstates what is in use, and the memory thresholds, which compare RSS, fire on memory
/// nobody holds. Large buffers are reused by the workers, so this costs little.
fn return_freed_memory_promptly() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 10);
    }
}

fn main() -> ExitCode {
    return_freed_memory_promptly();
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
        Some(cli::Command::Means(args)) => means::run(args, &cli.run, cancel),
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
