//! Settings named in error messages as data, so that each interface calls them by its own
//! names: the Rust API by its field and parameter names ([`Knob::api_name`], what `Display`
//! prints), the command line by its flags, the Python package by its keywords.
//!
//! A message that names a setting is a [`Message`] (text and knobs), or is written by a
//! function that takes the namer; `render` on an error calls it with the caller's names.

use std::fmt;

/// A setting a caller can change, or an argument it gives, as errors name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Knob {
    /// The memory limit of an engine (its pool).
    MemoryLimit,
    /// Worker threads.
    Workers,
    /// How tasks are run (serial or threads).
    Scheduler,
    /// What the memory limit counts.
    Accounting,
    /// Dask's memory thresholds.
    Thresholds,
    /// Where spill files go.
    SpillDir,
    /// A shared memory pool.
    MemoryPool,
    /// How chunk files are read (buffered or direct I/O).
    ReadMode,
    /// The scan of the input for NaN and infinity (named as the way to skip it).
    CheckFinite,
    /// Replacing an existing output.
    Overwrite,
    /// Where a factor is written.
    Destination,
    /// The matrix given.
    Input,
    /// The right-hand sides of a least-squares problem (`B` in `A X = B`).
    Rhs,
    /// Row weights of a weighted least-squares problem.
    Weights,
    /// The cutoff below which singular values count as zero (relative to the largest).
    Rcond,
    /// The ridge penalty of a regression.
    Alpha,
    /// Whether singular vectors are computed.
    Vectors,
    /// Centering the columns (a PCA).
    Center,
    /// Factors stacked per reduction node.
    FanIn,
    /// Rows per panel.
    PanelRows,
    /// Singular values wanted.
    K,
    /// Extra sketch columns.
    Oversamples,
    /// Power (or Krylov) iterations.
    PowerIters,
    /// Probes of the error estimate.
    Probes,
    /// The randomized method.
    Method,
    /// What a factorization returns (a QR's mode).
    Mode,
    /// The matrix `C` whose product `Q C` a QR writes in place of Q.
    QTimes,
    /// The distribution of a generated matrix.
    Distribution,
    /// The ranks of a job.
    Ranks,
    /// The caller's event sink (`RunControl::events`).
    Events,
    /// A setting of the program that embeds the engine, as that program names it (a command
    /// line's flag, an environment variable): its own checks travel with the engine's errors.
    Program(&'static str),
}

impl Knob {
    /// The name the Rust API gives it (a field, option or parameter name).
    pub fn api_name(self) -> &'static str {
        match self {
            Self::MemoryLimit => "memory_limit",
            Self::Workers => "workers",
            Self::Scheduler => "scheduler",
            Self::Accounting => "accounting",
            Self::Thresholds => "thresholds",
            Self::SpillDir => "spill_dir",
            Self::MemoryPool => "memory_pool",
            Self::ReadMode => "read_mode",
            Self::CheckFinite => "check_finite = false",
            Self::Overwrite => "overwrite",
            Self::Destination => "destination",
            Self::Input => "input",
            Self::Rhs => "b",
            Self::Weights => "weights",
            Self::Rcond => "rcond",
            Self::Alpha => "alpha",
            Self::Vectors => "vectors",
            Self::Center => "center",
            Self::FanIn => "fan_in",
            Self::PanelRows => "panel_rows",
            Self::K => "k",
            Self::Oversamples => "oversamples",
            Self::PowerIters => "power_iters",
            Self::Probes => "probes",
            Self::Method => "method",
            Self::Mode => "mode",
            Self::QTimes => "q_times",
            Self::Distribution => "distribution",
            Self::Events => "events",
            Self::Ranks => "ranks",
            Self::Program(name) => name,
        }
    }

    /// The API name in backticks, as messages print it by default.
    pub fn quoted(self) -> String {
        format!("`{}`", self.api_name())
    }
}

/// How an interface names a knob in messages.
pub type Namer<'a> = &'a dyn Fn(Knob) -> String;

/// Text that names knobs as data. Built with [`Message::new`] and [`Message::text`] /
/// [`Message::knob`]; plain strings convert into it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message(Vec<Part>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Knob(Knob),
}

impl Message {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// The message followed by `text`.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.0.push(Part::Text(text.into()));
        self
    }

    /// The message followed by a reference to `knob`.
    pub fn knob(mut self, knob: Knob) -> Self {
        self.0.push(Part::Knob(knob));
        self
    }

    /// The message with each knob named by `name`.
    pub fn render(&self, name: Namer<'_>) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Knob(knob) => out.push_str(&name(*knob)),
            }
        }
        out
    }
}

/// Marks around a knob's API name in a message's marked form ([`Message::marked`]).
const MARK: (char, char) = ('\u{1}', '\u{2}');

impl Message {
    /// The message as text with each knob marked by its API name: how it travels between the
    /// ranks of a job ([`from_marked`](Self::from_marked) reads it back).
    pub fn marked(&self) -> String {
        self.render(&|k| format!("{}{}{}", MARK.0, k.api_name(), MARK.1))
    }

    /// Reads back a message from its [`marked`](Self::marked) form. A mark that names no knob
    /// of the library (a setting of the embedding program, named as it names it) becomes text.
    pub fn from_marked(text: &str) -> Self {
        let mut message = Self::new();
        let mut rest = text;
        while let Some((before, after)) = rest.split_once(MARK.0) {
            let Some((name, tail)) = after.split_once(MARK.1) else { break };
            message = match Knob::named(name) {
                Some(knob) => message.text(before).knob(knob),
                None => message.text(before).text(name),
            };
            rest = tail;
        }
        message.text(rest)
    }
}

impl Knob {
    /// The library's knob whose API name is `name`.
    fn named(name: &str) -> Option<Self> {
        const ALL: [Knob; 30] = [
            Knob::MemoryLimit,
            Knob::Workers,
            Knob::Scheduler,
            Knob::Accounting,
            Knob::Thresholds,
            Knob::SpillDir,
            Knob::MemoryPool,
            Knob::ReadMode,
            Knob::CheckFinite,
            Knob::Overwrite,
            Knob::Destination,
            Knob::Input,
            Knob::Rhs,
            Knob::Weights,
            Knob::Rcond,
            Knob::Alpha,
            Knob::Vectors,
            Knob::Center,
            Knob::FanIn,
            Knob::PanelRows,
            Knob::K,
            Knob::Oversamples,
            Knob::PowerIters,
            Knob::Probes,
            Knob::Method,
            Knob::Mode,
            Knob::QTimes,
            Knob::Distribution,
            Knob::Ranks,
            Knob::Events,
        ];
        ALL.into_iter().find(|k| k.api_name() == name)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&Knob::quoted))
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::new().text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::new().text(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_knobs_as_their_reader_calls_them() {
        let m = Message::new().text("lower ").knob(Knob::K).text(" or ").knob(Knob::Oversamples);
        assert_eq!(m.to_string(), "lower `k` or `oversamples`");
        let flags = |k: Knob| match k {
            Knob::K => "-k".to_string(),
            Knob::Program(flag) => flag.to_string(),
            k => format!("--{}", k.api_name()),
        };
        assert_eq!(m.render(&flags), "lower -k or --oversamples");
        let sent = m.clone().text(", or ").knob(Knob::Program("--flag")).text(".");
        let received = Message::from_marked(&sent.marked());
        assert_eq!(received.render(&flags), sent.render(&flags));
        assert_eq!(received.render(&flags), "lower -k or --oversamples, or --flag.");
    }
}
