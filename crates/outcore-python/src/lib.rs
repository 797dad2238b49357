//! `outcore._core`: the Rust half of the `outcore` Python package. The Python half
//! (`outcore/__init__.py`) gives it scikit-learn's names; this module runs outcore's engine on
//! a source handed over from Python:
//!
//! * a 2-D numpy array of float64 or float32 (any strides, a memmap too): read in place, never
//!   copied whole (`stores::ArrayStore`);
//! * a path to a Zarr array or a `.npy` file: read by outcore itself, without Python;
//! * `(read, (rows, cols), (chunk_rows, chunk_cols))`: a callable returning the block
//!   `[r0:r1, c0:c1]` as an array (a `zarr.Array`, a Dask or xarray array, anything sliceable),
//!   called chunk by chunk from outcore's workers (`stores::CallbackStore`).
//!
//! Every run releases the GIL; the calling thread wakes every 50 ms to deliver progress and
//! Python's signals, so Ctrl-C cancels the run (its outputs removed) within a chunk's time.

mod convert;
mod errors;
mod project;
mod run;
mod sparse;
mod state;
mod stores;

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use outcore::faer::Mat;
use outcore::{
    Destination, Factor, Input, LstsqOptions, LstsqPlan, MemoryReport, QrMode, QrOptions, QrPlan, RandomizedMethod,
    RandomizedSvdOptions, RandomizedSvdPlan, RunStats, SvdOptions, SvdPlan, SvdResult,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{memory_dict, to_numpy};
use crate::run::{Settings, run_detached};
use crate::stores::Source;

/// `bytes` from a size such as "64MiB", "1.5GB" or "1000000".
#[pyfunction]
fn parse_size(text: &str) -> PyResult<u64> {
    outcore::storage::parse_size(text).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// `((rows, cols), "float64" | "float32")` of a Zarr array or `.npy` file, from outcore's own
/// reader (the one every run uses), so Python never parses the metadata itself.
#[pyfunction]
fn matrix_info(path: PathBuf) -> PyResult<((usize, usize), &'static str)> {
    let matrix = outcore::ChunkedMatrix::open(&path).map_err(errors::to_py)?;
    let dtype = match matrix.store().dtype() {
        outcore::storage::Dtype::F32 => "float32",
        _ => "float64",
    };
    Ok((matrix.shape(), dtype))
}

/// The exact SVD by TSQR (tall, or wide through its transpose). Returns a dict: `s`, `u`
/// (`None`, an array, or the Zarr path it was written to), `v` (n x k, not transposed), with
/// `center` the `mean`, `scale` and `total_variance`, and the run's `tasks`, `seconds` and
/// `memory` (the engine's peaks).
#[pyfunction]
#[pyo3(signature = (source, *, compute_uv, center, standardize, memory_limit, workers, u_out, progress))]
#[allow(clippy::too_many_arguments)]
fn tsqr<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    compute_uv: bool,
    center: bool,
    standardize: bool,
    memory_limit: u64,
    workers: Option<usize>,
    u_out: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let source = Source::from_python(source)?;
    let options = SvdOptions::new().vectors(compute_uv).center(center).standardize(standardize);
    let settings = Settings::new(memory_limit, workers, progress)?;
    let matrix = source.matrix(py, true)?;
    let view = source.f64_view();
    let (result, memory) = run_detached(py, &settings, &[&source], |engine, control, _| {
        let factor = u_out.clone().map_or(Destination::Memory, Destination::Zarr);
        let input: Input<'_> = view.map_or_else(|| (&matrix).into(), Into::into);
        SvdPlan::new(engine, input, &options)?.run_with(engine, factor, control)
    })?;
    svd_dict(py, &result, matrix.shape(), &memory)
}

/// The top-k SVD by the randomized method (block Krylov or subspace iteration), with the error
/// estimate. Returns the dict of [`tsqr`] plus `error` (`spectral_bound`,
/// `spectral_lower_bound`, `frobenius`, the bound and estimate also `relative_` to sigma_1,
/// `probes`, `failure_probability`) and `passes`; with `column_moments`, the input's
/// `column_mean` and `column_variance` (`ddof = 0`) from the first pass.
#[pyfunction]
#[pyo3(signature = (source, k, *, oversamples, power_iters, krylov, seed, center, column_moments=false, memory_limit, workers, u_out, progress))]
#[allow(clippy::too_many_arguments)]
fn rsvd<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    k: usize,
    oversamples: usize,
    power_iters: usize,
    krylov: bool,
    seed: u64,
    center: bool,
    column_moments: bool,
    memory_limit: u64,
    workers: Option<usize>,
    u_out: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let source = Source::from_python(source)?;
    let method = if krylov { RandomizedMethod::Krylov } else { RandomizedMethod::Subspace };
    let options = RandomizedSvdOptions::new(k)
        .oversamples(oversamples)
        .power_iters(power_iters)
        .method(method)
        .seed(seed)
        .center(center)
        .column_moments(column_moments);
    let settings = Settings::new(memory_limit, workers, progress)?;
    let matrix = source.matrix(py, false)?;
    let view = source.f64_view();
    let (result, memory) = run_detached(py, &settings, &[&source], |engine, control, _| {
        let u = u_out.clone().map_or(Destination::Memory, Destination::Zarr);
        let input: Input<'_> = view.map_or_else(|| (&matrix).into(), Into::into);
        RandomizedSvdPlan::new(engine, input, &options)?.run_with(engine, u, Destination::Memory, control)
    })?;
    let out = svd_dict(py, &result.svd, matrix.shape(), &memory)?;
    let error = PyDict::new(py);
    error.set_item("spectral_bound", result.error.spectral_bound)?;
    error.set_item("spectral_lower_bound", result.error.spectral_lower_bound)?;
    error.set_item("relative_spectral_bound", result.error.relative_spectral_bound)?;
    error.set_item("frobenius", result.error.frobenius)?;
    error.set_item("relative_frobenius", result.error.relative_frobenius)?;
    error.set_item("probes", result.error.probes)?;
    error.set_item("failure_probability", result.error.failure_probability)?;
    out.set_item("error", error)?;
    out.set_item("passes", result.passes)?;
    Ok(out)
}

/// The QR of a tall `source` by TSQR, R's diagonal non-negative; with `rhs` (a source of its
/// rows), `Q^T rhs` from the same pass; with `q_times` (`n x p`), `Q q_times` in Q's place.
/// With `transpose`, factors the source's transpose (an LQ of a wide source). Returns a dict:
/// `r` (n x n), `q` (with `reduced`: an array, or the Zarr path it was written to; else
/// `None`), `qt_b` (or `None`), and the run's `tasks`, `seconds` and `memory`.
#[pyfunction]
#[pyo3(signature = (source, *, transpose, reduced, rhs, q_times, memory_limit, workers, q_out, progress))]
#[allow(clippy::too_many_arguments)]
fn qr<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    transpose: bool,
    reduced: bool,
    rhs: Option<&Bound<'py, PyAny>>,
    q_times: Option<PyReadonlyArray2<'py, f64>>,
    memory_limit: u64,
    workers: Option<usize>,
    q_out: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let source = Source::from_python(source)?;
    let b = rhs.map(Source::from_python).transpose()?;
    let mut options = QrOptions::new().mode(if reduced { QrMode::Reduced } else { QrMode::R });
    if let Some(c) = &q_times {
        let c = c.as_array();
        options = options.q_times(Mat::from_fn(c.nrows(), c.ncols(), |i, j| c[(i, j)]));
    }
    let settings = Settings::new(memory_limit, workers, progress)?;
    let matrix = source.matrix(py, true)?;
    let matrix = if transpose { matrix.t() } else { matrix };
    let b_matrix = b.as_ref().map(|b| b.matrix(py, true)).transpose()?;
    let view = source.f64_view().map(|v| if transpose { v.transpose() } else { v });
    let b_view = b.as_ref().and_then(Source::f64_view);
    let sources: Vec<&Source> = [&source].into_iter().chain(&b).collect();
    let (result, memory) = run_detached(py, &settings, &sources, |engine, control, _| {
        let q = q_out.clone().map_or(Destination::Memory, Destination::Zarr);
        let input: Input<'_> = view.map_or_else(|| (&matrix).into(), Into::into);
        let plan = match &b_matrix {
            Some(b_matrix) => {
                let b_input: Input<'_> = b_view.map_or_else(|| b_matrix.into(), Into::into);
                QrPlan::with_qt(engine, input, b_input, &options)?
            }
            None => QrPlan::new(engine, input, &options)?,
        };
        plan.run_with(engine, q, control)
    })?;
    let out = PyDict::new(py);
    out.set_item("r", to_numpy(py, &result.r))?;
    out.set_item("q", factor(py, result.q.as_ref())?)?;
    out.set_item("qt_b", result.qt_b.as_ref().map(|m| to_numpy(py, m)))?;
    run_figures(&out, &result.stats, &memory)?;
    Ok(out)
}

/// Least squares `a X = b` in one pass over `[a | b]` (numpy's `lstsq`), and a regression's
/// figures; with `weights` (a column of `a`'s rows), weighted least squares. Returns a dict: `x` (n x p), `residuals`, `rank`, `s`, `intercept`, `rss`, `r2`,
/// `stderr`, `intercept_stderr`, `cov_unscaled`, `scale`, `df_resid` (as `LstsqResult`), and
/// the run's figures.
#[pyfunction]
#[pyo3(signature = (a, b, *, weights, rcond, fit_intercept, alpha, memory_limit, workers, progress))]
#[allow(clippy::too_many_arguments)]
fn lstsq<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    weights: Option<&Bound<'py, PyAny>>,
    rcond: Option<f64>,
    fit_intercept: bool,
    alpha: f64,
    memory_limit: u64,
    workers: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (a, b) = (Source::from_python(a)?, Source::from_python(b)?);
    let w = weights.map(Source::from_python).transpose()?;
    let mut options = LstsqOptions::new().fit_intercept(fit_intercept).alpha(alpha);
    if let Some(r) = rcond {
        options = options.rcond(r);
    }
    let settings = Settings::new(memory_limit, workers, progress)?;
    let (a_matrix, b_matrix) = (a.matrix(py, true)?, b.matrix(py, true)?);
    let w_matrix = w.as_ref().map(|w| w.matrix(py, true)).transpose()?;
    let (a_view, b_view, w_view) = (a.f64_view(), b.f64_view(), w.as_ref().and_then(Source::f64_view));
    let sources: Vec<&Source> = [&a, &b].into_iter().chain(&w).collect();
    let (fit, memory) = run_detached(py, &settings, &sources, |engine, control, _| {
        let a_input: Input<'_> = a_view.map_or_else(|| (&a_matrix).into(), Into::into);
        let b_input: Input<'_> = b_view.map_or_else(|| (&b_matrix).into(), Into::into);
        let plan = match &w_matrix {
            Some(w_matrix) => {
                let w_input: Input<'_> = w_view.map_or_else(|| w_matrix.into(), Into::into);
                LstsqPlan::weighted(engine, a_input, b_input, w_input, &options)?
            }
            None => LstsqPlan::new(engine, a_input, b_input, &options)?,
        };
        plan.run_with(engine, control)
    })?;
    let out = PyDict::new(py);
    out.set_item("x", to_numpy(py, &fit.x))?;
    out.set_item("residuals", PyArray1::from_slice(py, &fit.residuals))?;
    out.set_item("rank", fit.rank)?;
    out.set_item("s", PyArray1::from_slice(py, &fit.s))?;
    out.set_item("intercept", fit.intercept.as_ref().map(|c| PyArray1::from_slice(py, c)))?;
    out.set_item("rss", PyArray1::from_slice(py, &fit.rss))?;
    out.set_item("r2", PyArray1::from_slice(py, &fit.r2))?;
    out.set_item("stderr", fit.stderr.as_ref().map(|m| to_numpy(py, m)))?;
    out.set_item("intercept_stderr", fit.intercept_stderr.as_ref().map(|c| PyArray1::from_slice(py, c)))?;
    out.set_item("cov_unscaled", fit.cov_unscaled.as_ref().map(|m| to_numpy(py, m)))?;
    out.set_item("scale", fit.scale.as_ref().map(|c| PyArray1::from_slice(py, c)))?;
    out.set_item("df_resid", fit.df_resid)?;
    run_figures(&out, &fit.stats, &memory)?;
    Ok(out)
}

/// PCA's scores of `source`, streamed: `(X - mean) / scale @ components.T`, an `m x k` array.
/// Chunks of numpy arrays are about 4 MiB, at most 1024 columns; other sources keep theirs.
#[pyfunction]
#[pyo3(signature = (source, mean, scale, components, *, workers))]
fn transform<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    mean: PyReadonlyArray1<'py, f64>,
    scale: Option<PyReadonlyArray1<'py, f64>>,
    components: PyReadonlyArray2<'py, f64>,
    workers: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let source = Source::from_python(source)?;
    let matrix = source.matrix(py, false)?;
    let settings = Settings::new(outcore::Engine::DEFAULT_MEMORY_LIMIT, workers, None)?;
    let (mean, components) = (mean.as_slice()?, components.as_array());
    let scale = scale.as_ref().map(|s| s.as_slice()).transpose()?;
    let k = components.nrows();
    let components = Mat::<f64>::from_fn(k, components.ncols(), |i, j| components[(i, j)]);
    let threads = settings.threads();
    let (scores, _) = run_detached(py, &settings, &[&source], |_, _, token| {
        let p = project::Projection { mean, scale, components: components.as_ref() };
        project::project(matrix.store().as_ref(), &p, threads, token)
    })?;
    let m = matrix.rows();
    numpy::ndarray::Array2::from_shape_vec((m, k), scores)
        .map(|a| a.into_pyarray(py))
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// A result as a dict of numpy arrays.
fn svd_dict<'py>(
    py: Python<'py>,
    result: &SvdResult,
    shape: (usize, usize),
    memory: &MemoryReport,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("shape", shape)?;
    out.set_item("s", PyArray1::from_slice(py, &result.s))?;
    out.set_item("u", factor(py, result.u.as_ref())?)?;
    out.set_item("v", factor(py, result.v.as_ref())?)?;
    if let Some(c) = &result.centered {
        out.set_item("mean", PyArray1::from_slice(py, &c.mean))?;
        out.set_item("scale", c.scale.as_ref().map(|s| PyArray1::from_slice(py, s)))?;
        out.set_item("total_variance", c.total_variance)?;
    }
    if let Some(c) = &result.columns {
        out.set_item("column_mean", PyArray1::from_slice(py, &c.mean))?;
        out.set_item("column_variance", PyArray1::from_slice(py, &c.variance))?;
    }
    run_figures(&out, &result.stats, memory)?;
    Ok(out)
}

/// A run's `tasks`, `seconds` and `memory` (the engine's peaks), into `out`.
fn run_figures(out: &Bound<'_, PyDict>, stats: &RunStats, memory: &MemoryReport) -> PyResult<()> {
    out.set_item("tasks", stats.tasks)?;
    out.set_item("seconds", stats.wall_seconds)?;
    out.set_item("memory", memory_dict(out.py(), memory)?)
}

/// A factor as a numpy array, the path of the Zarr array it was written to, or `None`.
fn factor<'py>(py: Python<'py>, factor: Option<&Factor>) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(match factor {
        None => None,
        Some(Factor::Dense(m)) => Some(to_numpy(py, m).into_any()),
        Some(Factor::Stored(store)) => match store.location() {
            Some(path) => Some(path.to_string_lossy().into_pyobject(py)?.into_any()),
            None => Some(to_numpy(py, &Factor::Stored(store.clone()).to_dense().map_err(errors::to_py)?).into_any()),
        },
        Some(other) => {
            return Err(PyRuntimeError::new_err(format!("a factor of an unexpected kind came back: {other:?}")));
        }
    })
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parse_size, m)?)?;
    m.add_function(wrap_pyfunction!(matrix_info, m)?)?;
    m.add_function(wrap_pyfunction!(tsqr, m)?)?;
    m.add_function(wrap_pyfunction!(rsvd, m)?)?;
    m.add_function(wrap_pyfunction!(qr, m)?)?;
    m.add_function(wrap_pyfunction!(lstsq, m)?)?;
    m.add_function(wrap_pyfunction!(transform, m)?)?;
    m.add_class::<state::State>()?;
    m.add("DEFAULT_MEMORY_LIMIT", outcore::Engine::DEFAULT_MEMORY_LIMIT)?;
    Ok(())
}
