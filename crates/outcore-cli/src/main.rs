//! `large-svd`: out-of-core SVD from the command line. See `large-svd --help`.

mod args;
mod commands;
mod dashboard;
mod faults;
mod graphviz;
mod inputs;
mod ranks;
mod report;
mod session;
mod system;
mod timeline;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use outcore::{CancelToken, Error, Knob};

use crate::report::flags;

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

/// Exit code of an internal error (a bug), apart from the user's errors (1).
const EXIT_BUG: u8 = 70;

/// The first termination signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP cancel the run: it stops within a block's time, removes
/// its partial output and spill files, and the process exits with 128 + the signal. A second
/// signal exits at once; what it leaves behind is named by this process's id, and the next
/// run in the same directories removes it.
fn handle_signals(cancel: CancelToken) {
    let signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]);
    let spawned = signals.and_then(|mut signals| {
        std::thread::Builder::new().name("outcore-signals".into()).spawn(move || {
            for signal in signals.forever() {
                if SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                    cancel.cancel();
                    // Not eprintln!: with stderr closed (a pipe whose reader quit) it would
                    // panic this thread, and the next signal would find no one listening.
                    // Under MPI, rank 0 speaks for the job.
                    if ranks::is_root() {
                        let _ = writeln!(
                            std::io::stderr(),
                            "\nlarge-svd: stopping and cleaning up (signal again to quit at once)"
                        );
                    }
                } else {
                    std::process::exit(128 + signal);
                }
            }
        })
    });
    if let Err(e) = spawned {
        eprintln!("warning: cannot handle Ctrl-C ({e}); a signal will stop the run without cleanup");
    }
}

/// Lets a closed pipe end the process quietly, as it does other command-line tools
/// (`large-svd ... | head`), instead of a panic at the next print. What a run leaves behind then
/// is named by its process id and removed by the next run.
fn quiet_on_closed_pipes() {
    // SAFETY: restoring the default disposition of SIGPIPE, before any threads start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The demo and `generate` run in one process: refused on several ranks, where each rank would
/// write the same files.
fn one_process_commands(cli: &args::Cli) -> outcore::Result<()> {
    let name = match &cli.command {
        None => "the demo",
        Some(args::Command::Generate(_)) => "`large-svd generate`",
        Some(args::Command::Grow(_)) => "`large-svd grow`",
        Some(_) => return Ok(()),
    };
    if ranks::count() > 1 {
        return Err(Error::invalid(
            Knob::Ranks,
            format!("{name} runs in one process; start it without mpirun or srun (tsqr, rsvd and means run on ranks)"),
        ));
    }
    Ok(())
}

/// The kind of `error` in `--json`'s error object: what a script branches on.
fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::Storage(_) => "storage",
        Error::Memory(_) => "memory",
        Error::Cluster { .. } => "cluster",
        Error::InvalidArgument { .. } => "invalid_argument",
        Error::NoConvergence { .. } => "no_convergence",
        Error::NonFinite { .. } => "non_finite",
        Error::Interrupted => "interrupted",
        Error::StateFile { .. } => "state_file",
        _ => "bug",
    }
}

/// With `--json`, a failed run still prints one JSON object on stdout, so a script that parses
/// stdout gets what went wrong: `{"error": true, "kind", "message", "exit_code"}`.
fn print_json_error(kind: &str, message: &str, exit_code: u8) {
    let object = serde_json::json!({ "error": true, "kind": kind, "message": message, "exit_code": exit_code });
    let _ = writeln!(std::io::stdout(), "{object}");
}

/// The command line, parsed; on a usage error, `--json` (if given) gets its JSON object too.
fn parse_command_line() -> args::Cli {
    args::Cli::try_parse().unwrap_or_else(|e| {
        let wants_json = std::env::args_os().skip(1).any(|a| a == "--json");
        if wants_json && e.use_stderr() {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
            print_json_error("usage", first, u8::try_from(e.exit_code()).unwrap_or(2));
        }
        e.exit()
    })
}

/// Says on stderr what went wrong (under MPI, once, by the rank that reports it): the message
/// and the exit code.
fn report_failure(error: &Error) -> (String, u8) {
    if let Error::Interrupted = error {
        let message = "interrupted; no output was written and spill files were removed".to_string();
        if ranks::is_root() {
            eprintln!("large-svd: {message}");
        }
        // A rank told by another that the job was interrupted exits as if by Ctrl-C.
        let signal = match SIGNAL.load(Ordering::SeqCst) {
            0 => SIGINT,
            signal => signal,
        };
        return (message, u8::try_from(128 + signal).unwrap_or(130));
    }
    let message = flags::message(error);
    // Under MPI, an error of another rank is reported once, by rank 0.
    if ranks::reports(error) {
        // One write: under mpirun, the launcher's own lines cannot cut into it.
        let line = format!("large-svd: error: {message}\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    let code = if matches!(error, Error::Bug(_) | Error::Cluster { bug: true, .. }) { EXIT_BUG } else { 1 };
    (message, code)
}

fn main() -> ExitCode {
    return_freed_memory_promptly();
    quiet_on_closed_pipes();
    let cli = parse_command_line();
    let cancel = CancelToken::new();
    handle_signals(cancel.clone());
    let before = outcore::storage::RssSource::Process.current();
    let result = ranks::join(&cancel)
        .and_then(|()| ranks::agree(one_process_commands(&cli), |()| Vec::new()).map(drop))
        .and_then(|()| ranks::measure_footprint(before))
        .and_then(|()| commands::dispatch(cli.command.as_ref(), &cli.run, cancel));
    let code = match &result {
        Ok(()) => 0,
        Err(e) => {
            let (message, code) = report_failure(e);
            if cli.run.json && ranks::is_root() {
                print_json_error(error_kind(e), &message, code);
            }
            code
        }
    };
    // After the message: leaving synchronizes the ranks (MPI_Finalize), so no rank exits, and
    // has mpirun abort the job, before rank 0 has said what went wrong.
    ranks::leave();
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds no run of the command line reaches on purpose (a dense SVD that does not
    /// converge, a bug here or on another rank) get their `--json` kind and exit code; the
    /// others are checked on real runs (`tests/reliability.rs`).
    #[test]
    fn kinds_no_run_reaches_on_purpose_have_their_json_kind_and_exit_code() {
        let damaged = Error::StateFile { what: "fit.state".into(), reason: "its checksum does not match".into() };
        let cases = [
            (Error::NoConvergence { rows: 3, cols: 2 }, "no_convergence", 1, "did not converge"),
            (Error::Bug("an invariant broke".into()), "bug", EXIT_BUG, "an invariant broke"),
            (
                Error::Cluster { rank: 1, message: "an invariant broke".into(), bug: true },
                "cluster",
                EXIT_BUG,
                "an invariant broke",
            ),
            (damaged, "state_file", 1, "fit.state is not a usable outcore state: its checksum"),
        ];
        for (error, kind, code, says) in cases {
            assert_eq!(error_kind(&error), kind);
            let (message, exit) = report_failure(&error);
            assert_eq!(exit, code, "{message}");
            assert!(message.contains(says), "{message}");
        }
    }
}
