//! Faults to inject, for the reliability tests: a testing hook of the binary, read from the
//! `OUTCORE_INJECT_FAULTS` environment variable (unset in normal use).

use std::sync::Arc;

use outcore::storage::{ChunkStore, FaultPlan, FaultyStore};
use outcore::{Error, Knob, Result};

/// Faults to inject, from the `OUTCORE_INJECT_FAULTS` environment variable: a testing hook for
/// the reliability tests, e.g. `input:read=3; output:write=2; spill:read=1,persistent` (see
/// [`FaultPlan`] for the part after the colon). Unset in normal use.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InjectedFaults {
    /// Faults of reads of the input matrix.
    pub input: Option<FaultPlan>,
    /// Faults of writes of the output arrays.
    pub output: Option<FaultPlan>,
    /// Faults of spill writes and reloads.
    pub spill: Option<FaultPlan>,
}

impl InjectedFaults {
    /// Reads `OUTCORE_INJECT_FAULTS`.
    pub(crate) fn from_env() -> Result<Self> {
        let Ok(text) = std::env::var("OUTCORE_INJECT_FAULTS") else { return Ok(Self::default()) };
        let mut faults = Self::default();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                Error::invalid(
                    Knob::Program("OUTCORE_INJECT_FAULTS"),
                    format!("{part:?} is not input:PLAN, output:PLAN or spill:PLAN"),
                )
            };
            let (target, plan) = part.split_once(':').ok_or_else(bad)?;
            let plan: FaultPlan = plan.parse()?;
            match target.trim() {
                "input" => faults.input = Some(plan),
                "output" => faults.output = Some(plan),
                "spill" => faults.spill = Some(plan),
                _ => return Err(bad()),
            }
        }
        Ok(faults)
    }

    /// `store`, failing as the output plan says.
    pub(crate) fn output(&self, store: Arc<dyn ChunkStore>) -> Arc<dyn ChunkStore> {
        match self.output {
            Some(plan) => Arc::new(FaultyStore::new(store, plan)),
            None => store,
        }
    }
}
