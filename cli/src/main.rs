//! `large-svd`: out-of-core SVD from the command line. See `large-svd --help`.

mod cli;
mod common;
mod demo;
mod generate;
mod means;
mod rsvd;
mod timeline;
mod tsqr;
mod workload;

use std::process::ExitCode;

use clap::Parser;

use outcore::{CancelToken, Error};

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

/// The library names what to change by its API names; here they are this program's flags.
const FLAGS: [(&str, &str); 14] = [
    ("`memory_limit`", "--memory-limit"),
    ("`check_finite = false`", "--no-check-finite"),
    ("`spill_dir`", "--spill-dir"),
    ("`overwrite`", "--overwrite"),
    ("`workers`", "--workers"),
    ("`k`", "-k"),
    ("`oversamples`", "--oversamples"),
    ("`power_iters`", "--power-iters"),
    ("`probes`", "--probes"),
    ("`method`", "--method"),
    ("`fan_in`", "--fan-in"),
    ("`panel_rows`", "--panel-rows"),
    ("`destination`", "--output"),
    ("`accounting`", "--accounting"),
];

/// `error`'s message in this program's terms.
fn message(error: &Error) -> String {
    FLAGS.iter().fold(error.to_string(), |text, (api, flag)| text.replace(api, flag))
}

/// Exit code of an internal error (a bug), apart from the user's errors (1).
const EXIT_BUG: u8 = 70;

fn main() -> ExitCode {
    return_freed_memory_promptly();
    let cli = cli::Cli::parse();
    let cancel = CancelToken::new();
    let handler_token = cancel.clone();
    // Ctrl-C stops the run at the next task boundary; cleanup happens as the run unwinds.
    if let Err(e) = ctrlc::set_handler(move || handler_token.cancel()) {
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
        Err(e @ Error::Bug(_)) => {
            eprintln!("large-svd: error: {}", message(&e));
            ExitCode::from(EXIT_BUG)
        }
        Err(e) => {
            eprintln!("large-svd: error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}
