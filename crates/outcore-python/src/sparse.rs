//! A scipy.sparse CSR or CSC matrix, its numpy arrays read in place.

use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use outcore::ChunkedMatrix;
use outcore::storage::{Csr, CsrArrays, CsrParts, CsrStore};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::errors::to_py;

/// A contiguous 1-D numpy array's memory: base pointer and length.
#[derive(Clone, Copy, Debug)]
struct Raw {
    ptr: *const u8,
    len: usize,
}

/// The arrays of a sparse matrix as Python handed them over: `indptr` and `indices` of one
/// integer type (int32 or int64, as scipy keeps them), `data` of float64, all C-contiguous.
#[derive(Debug)]
pub(crate) struct SparseArrays {
    /// Compressed by columns (CSC): the CSR arrays of the transpose.
    by_columns: bool,
    shape: (usize, usize),
    arrays: Lent,
}

/// A hold on the three arrays: where they are, and references keeping them alive.
#[derive(Debug)]
struct Lent {
    /// int64 indices (else int32).
    wide: bool,
    indptr: Raw,
    indices: Raw,
    data: Raw,
    owners: [Py<PyAny>; 3],
}

// SAFETY: the pointers are only read, and the memory they point to belongs to the numpy arrays
// `owners` keeps alive (numpy does not move or free an array's data while it is referenced).
// Python code mutating the arrays during a run changes what is read (the store checked them
// when it was made), as with numpy's own GIL-releasing functions, but cannot free them.
unsafe impl Send for Lent {}
// SAFETY: as above; nothing is written through the pointers.
unsafe impl Sync for Lent {}

impl Lent {
    /// One of the arrays as a slice living as long as the hold.
    ///
    /// # Safety
    /// `raw` must be one of this hold's arrays and `T` its element type.
    unsafe fn slice<T>(&self, raw: Raw) -> &[T] {
        if raw.len == 0 {
            return &[];
        }
        // SAFETY: `raw` is the aligned start of a C-contiguous array of `len` elements of type
        // `T` (checked in `from_python`), kept alive by `owners` as long as `self`.
        unsafe { std::slice::from_raw_parts(raw.ptr.cast::<T>(), raw.len) }
    }
}

impl CsrArrays for Lent {
    fn csr(&self) -> CsrParts<'_> {
        // SAFETY: data is float64, and indptr and indices int64 when `wide`, else int32.
        unsafe {
            let data = self.slice::<f64>(self.data);
            if self.wide {
                CsrParts::I64(Csr { indptr: self.slice(self.indptr), indices: self.slice(self.indices), data })
            } else {
                CsrParts::I32(Csr { indptr: self.slice(self.indptr), indices: self.slice(self.indices), data })
            }
        }
    }
}

/// What Python hands over for a sparse matrix: `(format, indptr, indices, data, (rows, cols))`.
type Handed<'py> = (String, Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, (usize, usize));

impl SparseArrays {
    /// `(format, indptr, indices, data, (rows, cols))`, `format` `"csr"` or `"csc"`.
    pub(crate) fn from_python(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (format, indptr, indices, data, shape): Handed<'_> = obj.extract()?;
        let py = obj.py();
        let raw = |array: &Bound<'_, PyAny>, what: &str| -> PyResult<(Raw, &'static str)> {
            let array = array.cast::<PyUntypedArray>()?;
            let dtype = array.dtype();
            let kind = [
                ("int32", numpy::dtype::<i32>(py)),
                ("int64", numpy::dtype::<i64>(py)),
                ("float64", numpy::dtype::<f64>(py)),
            ]
            .into_iter()
            .find(|(_, d)| dtype.is_equiv_to(d))
            .map_or("another type", |(name, _)| name);
            if array.ndim() != 1 || !array.is_c_contiguous() {
                return Err(PyTypeError::new_err(format!("the sparse matrix's {what} must be a contiguous 1-D array")));
            }
            // SAFETY: `array` is a live ndarray (the GIL is held), so its C struct is readable.
            let ptr = unsafe { (*array.as_array_ptr()).fields.data }.cast::<u8>().cast_const();
            let size = if kind == "int32" { 4 } else { 8 };
            if !(ptr as usize).is_multiple_of(size) {
                return Err(PyTypeError::new_err(format!("the sparse matrix's {what} is not aligned")));
            }
            Ok((Raw { ptr, len: array.len() }, kind))
        };
        let (indptr_raw, indptr_type) = raw(&indptr, "indptr")?;
        let (indices_raw, indices_type) = raw(&indices, "indices")?;
        let (data_raw, data_type) = raw(&data, "data")?;
        let wide = match (indptr_type, indices_type) {
            ("int32", "int32") => false,
            ("int64", "int64") => true,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "a sparse matrix's indptr and indices must both be int32 or both int64, got {indptr_type} and {indices_type}"
                )));
            }
        };
        if data_type != "float64" {
            return Err(PyTypeError::new_err(format!("a sparse matrix's data must be float64 here, got {data_type}")));
        }
        let by_columns = match format.as_str() {
            "csr" => false,
            "csc" => true,
            other => return Err(PyTypeError::new_err(format!("unknown sparse format {other:?}: pass CSR or CSC"))),
        };
        let owners = [indptr.unbind(), indices.unbind(), data.unbind()];
        let arrays = Lent { wide, indptr: indptr_raw, indices: indices_raw, data: data_raw, owners };
        Ok(Self { by_columns, shape, arrays })
    }

    /// Nonzeros stored, as the arrays' lengths say (for sizing chunks).
    fn nnz(&self) -> usize {
        self.arrays.indices.len.min(self.arrays.data.len)
    }

    /// The matrix (checked), its stored rows in chunks TSQR reads as dense panels
    /// (`tall_panels`), else in the randomized SVD's chunks for sparse matrices.
    pub(crate) fn matrix(&self, py: Python<'_>, tall_panels: bool) -> PyResult<ChunkedMatrix> {
        let (rows, cols) = if self.by_columns { (self.shape.1, self.shape.0) } else { self.shape };
        let chunks = if tall_panels {
            outcore::SvdPlan::chunk_shape(rows, cols)
        } else {
            outcore::RandomizedSvdPlan::sparse_chunk_shape(rows, cols, self.nnz())
        };
        let lent = Lent { owners: self.arrays.owners.each_ref().map(|o| o.clone_ref(py)), ..self.arrays };
        let store = CsrStore::new(rows, cols, chunks, Box::new(lent)).map_err(|e| to_py(e.into()))?;
        let matrix = ChunkedMatrix::from_csr(store);
        Ok(if self.by_columns { matrix.t() } else { matrix })
    }
}
