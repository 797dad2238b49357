//! The library's values as this program writes them in JSON: serializable counterparts made by
//! hand (only the binary knows its wire format; the library derives no `Serialize`). Field
//! names and order are the `--json` output's, an API boundary.

use outcore::storage::{Dtype, MemoryPeaks, MemorySample};
use outcore::{Accounting, ErrorEstimate, MemoryReport, RandomizedMethod, Thresholds};
use serde::Serialize;

/// [`Thresholds`].
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct ThresholdsJson {
    pub target: Option<f64>,
    pub spill: Option<f64>,
    pub pause: Option<f64>,
    pub terminate: Option<f64>,
}

impl From<Thresholds> for ThresholdsJson {
    fn from(t: Thresholds) -> Self {
        Self { target: t.target, spill: t.spill, pause: t.pause, terminate: t.terminate }
    }
}

/// [`Accounting`]'s name.
pub(crate) fn accounting(a: Accounting) -> &'static str {
    match a {
        Accounting::Own => "own",
        _ => "process",
    }
}

/// [`Dtype`]'s name.
pub(crate) fn dtype(d: Dtype) -> &'static str {
    match d {
        Dtype::F32 => "f32",
        _ => "f64",
    }
}

/// [`RandomizedMethod`]'s name.
pub(crate) fn method(m: RandomizedMethod) -> &'static str {
    match m {
        RandomizedMethod::Krylov => "krylov",
        _ => "subspace",
    }
}

/// [`MemoryReport`].
#[derive(Clone, Debug, Serialize)]
pub(crate) struct MemoryReportJson {
    pub limit: u64,
    pub thresholds: ThresholdsJson,
    pub accounting: &'static str,
    pub process: u64,
    pub host: u64,
    pub managed: u64,
    pub unmanaged: u64,
    pub unmanaged_old: u64,
    pub unmanaged_recent: u64,
    pub spilled: u64,
    pub managed_accounted: u64,
    pub reserved: u64,
    pub resident_chunks: usize,
    pub spilled_chunks: usize,
    pub peak_process: u64,
    pub peak_managed: u64,
    pub peak_spilled: u64,
    pub spill_count: u64,
    pub reload_count: u64,
}

impl From<&MemoryReport> for MemoryReportJson {
    fn from(r: &MemoryReport) -> Self {
        Self {
            limit: r.limit,
            thresholds: r.thresholds.into(),
            accounting: accounting(r.accounting),
            process: r.process,
            host: r.host,
            managed: r.managed,
            unmanaged: r.unmanaged,
            unmanaged_old: r.unmanaged_old,
            unmanaged_recent: r.unmanaged_recent,
            spilled: r.spilled,
            managed_accounted: r.managed_accounted,
            reserved: r.reserved,
            resident_chunks: r.resident_chunks,
            spilled_chunks: r.spilled_chunks,
            peak_process: r.peak_process,
            peak_managed: r.peak_managed,
            peak_spilled: r.peak_spilled,
            spill_count: r.spill_count,
            reload_count: r.reload_count,
        }
    }
}

/// [`MemoryPeaks`].
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct MemoryPeaksJson {
    pub process: u64,
    pub managed: u64,
    pub unmanaged: u64,
    pub unmanaged_recent: u64,
    pub spilled: u64,
}

impl From<&MemoryPeaks> for MemoryPeaksJson {
    fn from(p: &MemoryPeaks) -> Self {
        Self {
            process: p.process,
            managed: p.managed,
            unmanaged: p.unmanaged,
            unmanaged_recent: p.unmanaged_recent,
            spilled: p.spilled,
        }
    }
}

/// [`MemorySample`], one line of a JSON-lines memory timeline.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct MemorySampleJson {
    pub seconds: f64,
    pub report: MemoryReportJson,
}

impl From<&MemorySample> for MemorySampleJson {
    fn from(s: &MemorySample) -> Self {
        Self { seconds: s.seconds, report: (&s.report).into() }
    }
}

/// [`ErrorEstimate`].
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct ErrorEstimateJson {
    pub spectral_bound: f64,
    pub spectral_lower_bound: f64,
    pub relative_spectral_bound: f64,
    pub frobenius: f64,
    pub relative_frobenius: f64,
    pub probes: usize,
    pub failure_probability: f64,
}

impl From<&ErrorEstimate> for ErrorEstimateJson {
    fn from(e: &ErrorEstimate) -> Self {
        Self {
            spectral_bound: e.spectral_bound,
            spectral_lower_bound: e.spectral_lower_bound,
            relative_spectral_bound: e.relative_spectral_bound,
            frobenius: e.frobenius,
            relative_frobenius: e.relative_frobenius,
            probes: e.probes,
            failure_probability: e.failure_probability,
        }
    }
}
