//! outcore's matrices and reports as Python objects.

use numpy::{IntoPyArray, PyArray2};
use outcore::MemoryReport;
use outcore::faer::Mat;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A faer matrix as a new numpy array.
pub(crate) fn to_numpy<'py>(py: Python<'py>, m: &Mat<f64>) -> Bound<'py, PyArray2<f64>> {
    numpy::ndarray::Array2::from_shape_fn(m.shape(), |(i, j)| m[(i, j)]).into_pyarray(py)
}

/// The engine's memory peaks as a dict: `limit`, `peak_managed`, `peak_spilled`, `peak_process`.
pub(crate) fn memory_dict<'py>(py: Python<'py>, memory: &MemoryReport) -> PyResult<Bound<'py, PyDict>> {
    let report = PyDict::new(py);
    report.set_item("limit", memory.limit)?;
    report.set_item("peak_managed", memory.peak_managed)?;
    report.set_item("peak_spilled", memory.peak_spilled)?;
    report.set_item("peak_process", memory.peak_process)?;
    Ok(report)
}
