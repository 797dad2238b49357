//! What Python hands over to read: a numpy array (read in place), a path (read by outcore), or
//! a callable returning blocks.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use numpy::{PyArray2, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use outcore::ChunkedMatrix;
use outcore::faer::MatRef;
use outcore::storage::{ChunkGrid, ChunkIndex, ChunkStore, StorageError, StorageResult};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::errors::to_py;
use crate::sparse::SparseArrays;

/// Element types read from numpy arrays.
#[derive(Clone, Copy, Debug)]
enum Element {
    F64,
    F32,
}

/// A numpy array's memory: its base pointer, element type, shape and byte strides.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    ptr: *const u8,
    element: Element,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

/// A caller's numpy array, read in place chunk by chunk.
#[derive(Debug)]
pub(crate) struct ArrayStore {
    grid: ChunkGrid,
    layout: Layout,
    /// Keeps the array (and so its memory) alive while any handle to this store exists.
    _owner: Py<PyAny>,
}

// SAFETY: the pointer is only read, and the memory it points to belongs to the numpy array
// `_owner` keeps alive (numpy does not move or free an array's data while it is referenced);
// f32 and f64 reads from any thread are sound. Python code mutating the array during a run
// changes what is read, as with numpy's own GIL-releasing functions, but cannot free it.
unsafe impl Send for ArrayStore {}
// SAFETY: as above; nothing is written through the pointer.
unsafe impl Sync for ArrayStore {}

impl ChunkStore for ArrayStore {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let e = self.grid.extent(index)?;
        let l = self.layout;
        out.clear();
        out.reserve(e.len());
        for i in e.row0..e.row0 + e.rows {
            // SAFETY: i < rows and every j < cols (the grid has the array's shape), so each
            // offset lies inside the array numpy described; reads are unaligned-safe.
            let row = unsafe { l.ptr.offset(i as isize * l.row_stride) };
            match l.element {
                Element::F64 => out.extend((e.col0..e.col0 + e.cols).map(|j| {
                    // SAFETY: j < cols, so the element lies in row i of the array; the read
                    // is unaligned-safe.
                    unsafe { row.offset(j as isize * l.col_stride).cast::<f64>().read_unaligned() }
                })),
                Element::F32 => out.extend((e.col0..e.col0 + e.cols).map(|j| {
                    // SAFETY: as above, for a float32 element.
                    f64::from(unsafe { row.offset(j as isize * l.col_stride).cast::<f32>().read_unaligned() })
                })),
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("a {} x {} numpy array of {:?}", self.layout.rows, self.layout.cols, self.layout.element)
    }
}

/// A matrix read through a Python callable `read(r0, r1, c0, c1)` returning that block as a
/// C-contiguous float64 array, called from outcore's workers with the GIL taken for each chunk.
#[derive(Debug)]
pub(crate) struct CallbackStore {
    grid: ChunkGrid,
    read: Py<PyAny>,
    /// The first exception the callable raised, re-raised as it was when the run fails.
    error: Mutex<Option<PyErr>>,
}

impl CallbackStore {
    fn fail(&self, index: ChunkIndex, err: PyErr) -> StorageError {
        let message = Python::attach(|py| err.value(py).repr().map(|r| r.to_string()).unwrap_or_default());
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(err);
        StorageError::Source { store: self.describe(), index, message }
    }
}

impl ChunkStore for CallbackStore {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let e = self.grid.extent(index)?;
        let read = Python::attach(|py| -> PyResult<()> {
            let block = self.read.call1(py, (e.row0, e.row0 + e.rows, e.col0, e.col0 + e.cols))?;
            let block = block.bind(py).cast::<PyArray2<f64>>()?.try_readonly()?;
            if !block.is_c_contiguous() {
                return Err(PyValueError::new_err("the source returned a block that is not C-contiguous"));
            }
            let shape = block.shape();
            if shape != [e.rows, e.cols] {
                return Err(PyValueError::new_err(format!(
                    "the source returned a block of shape {shape:?} for rows {}..{}, columns {}..{}",
                    e.row0,
                    e.row0 + e.rows,
                    e.col0,
                    e.col0 + e.cols
                )));
            }
            out.clear();
            out.extend_from_slice(block.as_slice()?);
            Ok(())
        });
        read.map_err(|err| self.fail(index, err))
    }

    fn describe(&self) -> String {
        let (r, c) = self.grid.shape();
        let (cr, cc) = self.grid.chunk_shape();
        format!("a {r} x {c} Python source in {cr} x {cc} blocks")
    }
}

/// A source as Python handed it over.
pub(crate) enum Source {
    Array { layout: Layout, owner: Py<PyAny> },
    Path(PathBuf),
    Callback(Arc<CallbackStore>),
    Sparse(SparseArrays),
}

impl Source {
    /// A numpy array, a path (`str` or `os.PathLike`), `(read, (rows, cols), (chunk_rows,
    /// chunk_cols))`, or a sparse matrix's `(format, indptr, indices, data, (rows, cols))`.
    pub(crate) fn from_python(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(array) = obj.cast::<PyUntypedArray>() {
            return Self::array(array);
        }
        if let Ok(tuple) = obj.cast::<PyTuple>() {
            if tuple.len() == 5 {
                return SparseArrays::from_python(obj).map(Self::Sparse);
            }
            let (read, (rows, cols), (cr, cc)): (Py<PyAny>, (usize, usize), (usize, usize)) = tuple.extract()?;
            let grid = ChunkGrid::new(rows, cols, cr, cc).map_err(|e| PyValueError::new_err(e.to_string()))?;
            return Ok(Self::Callback(Arc::new(CallbackStore { grid, read, error: Mutex::new(None) })));
        }
        match obj.extract::<PathBuf>() {
            Ok(path) => Ok(Self::Path(path)),
            Err(_) => Err(PyTypeError::new_err(format!(
                "cannot read a {} as a matrix: pass a numpy array, a path to a Zarr array or .npy file, or a (read, shape, chunks) source",
                obj.get_type().name()?
            ))),
        }
    }

    fn array(array: &Bound<'_, PyUntypedArray>) -> PyResult<Self> {
        let py = array.py();
        if array.ndim() != 2 {
            return Err(PyValueError::new_err(format!(
                "expected a 2-D array (rows x columns), got {} dimension(s); reshape it first",
                array.ndim()
            )));
        }
        let dtype = array.dtype();
        let element = if dtype.is_equiv_to(&numpy::dtype::<f64>(py)) {
            Element::F64
        } else if dtype.is_equiv_to(&numpy::dtype::<f32>(py)) {
            Element::F32
        } else {
            return Err(PyTypeError::new_err(format!(
                "arrays of {dtype} are not read in place; pass float64 or float32 (convert with .astype('float64'))"
            )));
        };
        let (shape, strides) = (array.shape(), array.strides());
        // SAFETY: `array` is a live ndarray (the GIL is held), so its C struct is readable; the
        // data pointer of an ndarray of any element type is its `data` field.
        let ptr = unsafe { (*array.as_array_ptr()).fields.data }.cast::<u8>().cast_const();
        let layout =
            Layout { ptr, element, rows: shape[0], cols: shape[1], row_stride: strides[0], col_stride: strides[1] };
        Ok(Self::Array { layout, owner: array.clone().into_any().unbind() })
    }

    /// The source as a matrix, chunked for TSQR (`tall_panels`) or the randomized SVD where
    /// the chunking is outcore's choice (arrays), as given otherwise.
    pub(crate) fn matrix(&self, py: Python<'_>, tall_panels: bool) -> PyResult<ChunkedMatrix> {
        match self {
            Self::Array { layout, owner } => {
                let (m, n) = (layout.rows, layout.cols);
                let (cr, cc) = if tall_panels {
                    outcore::SvdPlan::chunk_shape(m, n)
                } else {
                    outcore::RandomizedSvdPlan::chunk_shape(m, n)
                };
                let grid = ChunkGrid::new(m, n, cr, cc).map_err(|e| PyValueError::new_err(e.to_string()))?;
                let store = ArrayStore { grid, layout: *layout, _owner: owner.clone_ref(py) };
                Ok(ChunkedMatrix::from_store(Arc::new(store)))
            }
            Self::Path(path) => ChunkedMatrix::open(path).map_err(to_py),
            Self::Callback(store) => Ok(ChunkedMatrix::from_store(store.clone())),
            // TSQR reads rows of the stored matrix as dense panels: CSR when tall, CSC when wide.
            Self::Sparse(arrays) => arrays.matrix(py, tall_panels),
        }
    }

    /// A float64 array whose strides are whole elements, as a faer view: outcore's borrowed
    /// path copies windows of it straight into each task's panel, faster than going through chunks
    /// (docs/decisions.md).
    pub(crate) fn f64_view(&self) -> Option<MatRef<'_, f64>> {
        let Self::Array { layout: l, .. } = self else { return None };
        let size = size_of::<f64>() as isize;
        let aligned = (l.ptr as usize).is_multiple_of(align_of::<f64>());
        if !matches!(l.element, Element::F64) || !aligned || l.row_stride % size != 0 || l.col_stride % size != 0 {
            return None;
        }
        // SAFETY: numpy describes `rows x cols` f64 elements at these (whole-element) strides
        // from an aligned pointer, and `owner` keeps the array alive as long as `self`.
        Some(unsafe {
            MatRef::from_raw_parts(l.ptr.cast::<f64>(), l.rows, l.cols, l.row_stride / size, l.col_stride / size)
        })
    }

    /// The exception a callable source raised, if it did.
    pub(crate) fn raised(&self) -> Option<PyErr> {
        match self {
            Self::Callback(store) => store.error.lock().unwrap_or_else(|p| p.into_inner()).take(),
            _ => None,
        }
    }
}
