//! The library's errors in this program's terms: each knob an error names ([`Knob`]) is called
//! by the flag that sets it, in one table; an error's text is never rewritten.

use outcore::storage::StorageError;
use outcore::{Error, Knob};

/// How this program names `knob` in messages: its flag, or the API name in backticks for a
/// knob no flag sets.
pub(crate) fn flag(knob: Knob) -> String {
    let flag = match knob {
        Knob::MemoryLimit => "--memory-limit",
        Knob::Workers => "--workers",
        Knob::Scheduler => "--scheduler",
        Knob::Accounting => "--accounting",
        Knob::Thresholds => "--thresholds",
        Knob::SpillDir => "--spill-dir",
        Knob::ReadMode => "--io",
        Knob::CheckFinite => "--no-check-finite",
        Knob::Overwrite => "--overwrite",
        Knob::Destination => "--output",
        Knob::Input => "--input",
        Knob::Rhs => "--rhs",
        Knob::Weights => "--weights",
        Knob::Rcond => "--rcond",
        Knob::Alpha => "--alpha",
        Knob::Mode => "--mode",
        Knob::QTimes => "--q-times",
        Knob::FanIn => "--fan-in",
        Knob::PanelRows => "--panel-rows",
        Knob::K => "-k",
        Knob::Oversamples => "--oversamples",
        Knob::PowerIters => "--power-iters",
        Knob::Probes => "--probes",
        Knob::Method => "--method",
        Knob::Distribution => "--distribution",
        Knob::Program(name) => name,
        other => return other.quoted(),
    };
    flag.to_string()
}

/// `error`'s message with this program's flags.
pub(crate) fn message(error: &Error) -> String {
    error.render(&flag)
}

/// A storage error's message with this program's flags.
pub(crate) fn storage_message(error: &StorageError) -> String {
    error.render(&flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_flags_not_api_names() {
        let e = Error::invalid(
            Knob::K,
            outcore::Message::new().text("lower ").knob(Knob::K).text(" or ").knob(Knob::Oversamples),
        );
        assert_eq!(message(&e), "invalid -k: lower -k or --oversamples");
        assert_eq!(e.to_string(), "invalid `k`: lower `k` or `oversamples`");
        let e = Error::invalid(Knob::Program("--memory-plot"), "x.svg cannot be written");
        assert_eq!(message(&e), "invalid --memory-plot: x.svg cannot be written");
        let exhausted: Error =
            StorageError::ResourcesExhausted { requested: 1 << 20, limit: 4 << 20, in_use: 4 << 20 }.into();
        assert!(message(&exhausted).contains("raise --memory-limit to at least 5.0 MiB"), "{}", message(&exhausted));
    }
}
