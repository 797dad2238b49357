//! outcore's errors as Python exceptions.

use outcore::Error;
use outcore::storage::StorageError;
use pyo3::PyErr;
use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyboardInterrupt, PyMemoryError, PyOSError, PyRuntimeError, PyTypeError, PyValueError,
};

/// outcore's error as the Python exception a user expects: ValueError for bad arguments and
/// data, MemoryError for limits, OSError (FileNotFoundError) for storage, KeyboardInterrupt
/// for a cancelled run; the message is outcore's, which names the fix.
pub(crate) fn to_py(err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::InvalidArgument { .. } | Error::NonFinite { .. } | Error::StateFile { .. } => {
            PyValueError::new_err(message)
        }
        Error::Memory(_) => PyMemoryError::new_err(message),
        Error::Interrupted => PyKeyboardInterrupt::new_err(message),
        Error::Storage(e) => match e {
            StorageError::NotFound { .. } => PyFileNotFoundError::new_err(message),
            StorageError::UnsupportedDtype { .. } => PyTypeError::new_err(message),
            StorageError::NotTwoDimensional { .. } | StorageError::InvalidArgument { .. } => {
                PyValueError::new_err(message)
            }
            StorageError::ResourcesExhausted { .. }
            | StorageError::MemoryPaused { .. }
            | StorageError::MemoryTerminated { .. } => PyMemoryError::new_err(message),
            StorageError::Bug(_) => PyRuntimeError::new_err(message),
            _ => PyOSError::new_err(message),
        },
        _ => PyRuntimeError::new_err(message),
    }
}
