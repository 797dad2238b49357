//! `outcore._core.FactorState`: outcore's [`FactorState`] for Python, pickled as its
//! checksummed bytes.

use std::path::PathBuf;

use numpy::{PyArray1, PyArray2};
use outcore::{FactorState, Input};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::convert::{memory_dict, to_numpy};
use crate::errors::to_py;
use crate::run::{Settings, run_detached};
use crate::stores::Source;

/// The exact state of a TSQR fit, grown by `update` (a pass over new rows only), combined by
/// `merge`, finished by `svd`; saved with `save` / `to_bytes` and pickled as those bytes.
#[pyclass(module = "outcore._core", name = "FactorState")]
pub(crate) struct State(FactorState);

#[pymethods]
impl State {
    /// A state of `cols` columns that has seen no rows.
    #[new]
    fn new(cols: usize) -> Self {
        Self(FactorState::new(cols))
    }

    /// Rows seen.
    #[getter]
    fn rows(&self) -> u64 {
        self.0.rows()
    }

    /// Columns.
    #[getter]
    fn cols(&self) -> usize {
        self.0.cols()
    }

    /// Adds the rows of `source` (any source the package reads) with one streamed pass over
    /// them; on any error the state is left as it was. Returns the engine's memory peaks.
    #[pyo3(signature = (source, *, memory_limit, workers, progress))]
    fn update<'py>(
        &mut self,
        py: Python<'py>,
        source: &Bound<'py, PyAny>,
        memory_limit: u64,
        workers: Option<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let source = Source::from_python(source)?;
        let settings = Settings::new(memory_limit, workers, progress)?;
        let matrix = source.matrix(py, true)?;
        let view = source.f64_view();
        let before = &self.0;
        let (grown, memory) = run_detached(py, &settings, &[&source], |engine, control, _| {
            let input: Input<'_> = view.map_or_else(|| (&matrix).into(), Into::into);
            let mut grown = before.clone();
            grown.update_with(engine, input, control)?;
            Ok(grown)
        })?;
        self.0 = grown;
        memory_dict(py, &memory)
    }

    /// Adds the rows `other` has seen.
    fn merge(&mut self, other: &State) -> PyResult<()> {
        self.0.merge(&other.0).map_err(to_py)
    }

    /// The SVD of the rows seen (centered on their means with `center`): a dict of `s`, `v`
    /// (n x k), `mean` and `variance` (per column, `ddof = 0`), and with `center`
    /// `total_variance` (`ddof = 1`).
    fn svd<'py>(&self, py: Python<'py>, center: bool) -> PyResult<Bound<'py, PyDict>> {
        let result = self.0.svd(center).map_err(to_py)?;
        let out = PyDict::new(py);
        out.set_item("s", PyArray1::from_slice(py, &result.s))?;
        let v = result.v_matrix().map(|v| to_numpy(py, v));
        out.set_item("v", v.unwrap_or_else(|| PyArray2::zeros(py, [self.0.cols(), 0], false)))?;
        if let Some(columns) = &result.columns {
            out.set_item("mean", PyArray1::from_slice(py, &columns.mean))?;
            out.set_item("variance", PyArray1::from_slice(py, &columns.variance))?;
        }
        if let Some(centered) = &result.centered {
            out.set_item("total_variance", centered.total_variance)?;
        }
        Ok(out)
    }

    /// The state as checksummed bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.to_bytes())
    }

    /// A state from `to_bytes`' bytes; others are refused with a ValueError saying why.
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> PyResult<Self> {
        FactorState::from_bytes(bytes).map(Self).map_err(to_py)
    }

    /// Writes the state to `path`, whole or not at all.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.0.save(path).map_err(to_py)
    }

    /// Reads a state `save` wrote; a damaged one is refused with a ValueError saying why.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        FactorState::load(path).map(Self).map_err(to_py)
    }

    /// Pickled as its bytes.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let rebuild = slf.get_type().getattr("from_bytes")?;
        Ok((rebuild, PyTuple::new(py, [slf.borrow().to_bytes(py)])?))
    }
}
