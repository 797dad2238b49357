"""outcore: the SVD, PCA, QR and least squares of matrices larger than RAM, with numpy's and
scikit-learn's names.

    import outcore
    U, s, Vt = outcore.svd(X)                          # exact (TSQR), tall or wide
    U, s, Vt = outcore.randomized_svd(X, 10)           # top 10, with an error estimate
    pca = outcore.PCA(n_components=5).fit(X)           # centered without copying X
    scores = pca.transform(X)
    svd = outcore.TruncatedSVD(5).fit(X)               # scikit-learn's, not centered
    ipca = outcore.IncrementalPCA(5).partial_fit(X1).partial_fit(X2)  # exact PCA of X1 and X2
    Q, R = outcore.qr(X)                               # numpy's qr, tall X
    L, Q = outcore.lq(X)                               # wide X = L Q, through X.T's QR
    QtB, R = outcore.qr_multiply(X, B.T)               # scipy's: B.T @ Q, never forming Q
    x, residuals, rank, s = outcore.lstsq(X, y)        # numpy's lstsq, one pass over [X | y]
    model = outcore.LinearRegression().fit(X, y)       # scikit-learn's, with standard errors

``X`` may be a numpy array (float64 or float32, any layout, a memmap: read in place), a
scipy.sparse matrix (CSR and CSC read in place; the randomized SVD and PCA multiply by its
nonzeros, TSQR reads it as dense panels), a path
to a Zarr array or a ``.npy`` file (read by outcore, without Python), a ``zarr.Array``, a
``dask.array.Array`` (streamed block by block, never computed whole) or an
``xarray.DataArray``. The work runs in outcore's engine under ``memory_limit`` (its own
memory: the interpreter's and your arrays do not count), with the GIL released; Ctrl-C stops
it within a chunk's time and leaves nothing behind. Arrays are read in place while a call runs:
do not write to them from another thread meanwhile.
"""

import numbers
import os
import warnings

import numpy as np

from . import _core

__all__ = [
    "svd",
    "randomized_svd",
    "qr",
    "qr_multiply",
    "lq",
    "lstsq",
    "PCA",
    "IncrementalPCA",
    "TruncatedSVD",
    "FactorState",
    "LinearRegression",
    "Ridge",
    "DEFAULT_MEMORY_LIMIT",
]

#: The memory limit used when none is given: 256 MiB of outcore's own memory.
DEFAULT_MEMORY_LIMIT = _core.DEFAULT_MEMORY_LIMIT

#: The exact state of a TSQR fit: ``FactorState(n_features)``, grown by ``update(source, ...)``
#: (one pass over the new rows only), combined by ``merge``, finished by ``svd(center)``;
#: ``save`` / ``load`` and ``to_bytes`` / ``from_bytes`` keep it (versioned, checksummed), and
#: it pickles as those bytes. ``IncrementalPCA`` is built on it.
FactorState = _core.FactorState


# ---------------------------------------------------------------------------------------------
# Sources


class _Source:
    """What outcore reads: the object handed to the Rust core, its shape and dtype; for a
    scipy.sparse matrix, the matrix too (CSR or CSC, canonical)."""

    def __init__(self, handle, shape, dtype, sparse=None):
        self.handle = handle
        self.shape = tuple(int(x) for x in shape)
        self.dtype = np.dtype(dtype)
        self.sparse = sparse
        self.keep = None  # what must live while the source is read (an open file)

    @property
    def tall_handle(self):
        """The handle for TSQR, which reads the tall side's rows as dense panels: a sparse
        matrix goes as CSR when tall and as CSC when wide (a copy if it is the other)."""
        if self.sparse is None:
            return self.handle
        want = "csr" if self.shape[0] >= self.shape[1] else "csc"
        return _sparse_handle(self.sparse if self.sparse.format == want else self.sparse.asformat(want))

    @property
    def out_dtype(self):
        """float32 in, float32 out; everything else comes back as float64."""
        return np.float32 if self.dtype == np.float32 else np.float64


def _blocks(read, shape, chunks, dtype):
    def block(r0, r1, c0, c1):
        return np.ascontiguousarray(read(r0, r1, c0, c1), dtype=np.float64)

    return _Source((block, tuple(shape), tuple(int(c) for c in chunks)), shape, dtype)


def _local_zarr_path(z):
    """The directory of a zarr.Array in a local store, or None."""
    store = getattr(z, "store", None)
    root = getattr(store, "root", None)  # zarr 3 LocalStore
    if root is None:
        root = getattr(store, "path", None)  # zarr 2 DirectoryStore
    if root is None or not os.path.isdir(str(root)):
        return None
    path = os.path.join(str(root), getattr(z, "path", "") or "")
    return path if os.path.isdir(path) else None


def _check_real(dtype, what="an array"):
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"cannot factor {what} of {dtype}; pass real numbers (float64 or float32)")


def _sparse_handle(X):
    """A CSR or CSC matrix's arrays as the Rust core reads them in place: indices of one integer
    type, float64 values (float32 or integer values are widened: a copy of ``data`` only)."""
    index = np.int64 if np.int64 in (X.indptr.dtype, X.indices.dtype) else np.int32
    arrays = (np.ascontiguousarray(a, dtype=index) for a in (X.indptr, X.indices))
    return (X.format, *arrays, np.ascontiguousarray(X.data, dtype=np.float64), tuple(int(x) for x in X.shape))


def _sparse_source(X):
    """A scipy.sparse matrix or array: CSR and CSC read in place, other formats as CSR (a copy);
    unsorted or repeated indices sorted and summed in a copy (scipy's ``sum_duplicates``)."""
    _check_2d(X.ndim)
    _check_real(X.dtype, "a sparse matrix")
    if X.format not in ("csr", "csc"):
        from scipy.sparse import SparseEfficiencyWarning

        # scikit-learn's warning, in its words.
        message = f"Calculating SVD of a {type(X).__name__} is expensive. CSR format is more efficient."
        warnings.warn(message, SparseEfficiencyWarning, stacklevel=3)
        X = X.tocsr()
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return _Source(_sparse_handle(X), X.shape, X.dtype if X.dtype == np.float32 else np.float64, sparse=X)


#: File name endings read through h5py: HDF5, NetCDF4 (HDF5 underneath) and AnnData.
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".nc", ".nc4", ".h5ad")


def _not_a_matrix(where, shape):
    return ValueError(
        f"{where} has shape {shape}, not a matrix; reshape it (time x space for an EOF analysis) and pass the array"
    )


def _lazy_source(X, chunks, read=None):
    """A 2-D array read from its file block by block (an h5py dataset, a netCDF4 variable, an
    xarray variable not yet loaded): panels of whole rows, a multiple of the file's own chunk
    rows, about 8 MiB. Masked values (netCDF4's fill values) are read as NaN, which outcore
    refuses, naming the row and column."""
    _check_2d(X.ndim)
    dtype = np.dtype(X.dtype)
    _check_real(dtype)
    m, n = X.shape
    own = int(chunks[0]) if chunks else 1
    rows = max(own, (8 << 20) // (8 * max(n, 1)) // own * own)
    read = read or (lambda r0, r1, c0, c1: np.ma.filled(np.ma.asarray(X[r0:r1, c0:c1], dtype=np.float64), np.nan))
    return _blocks(read, (m, n), (min(rows, max(m, 1)), max(n, 1)), dtype)


def _hdf5_source(path):
    """``file.h5:/group/dataset``, ``file.nc:variable`` or ``cells.h5ad`` (its ``X``, or
    ``cells.h5ad:/layers/counts``), opened with h5py. A dense dataset is read block by block;
    a sparse AnnData matrix (a group of ``data``, ``indices`` and ``indptr``) is read into
    memory, its nonzeros only (as anndata reads it)."""
    try:
        import h5py
    except ImportError as error:
        raise ImportError(f"reading {path} needs h5py: pip install h5py") from error
    file, _, name = path.partition(":") if not os.path.exists(path) else (path, "", "")
    if not name:
        if not file.endswith(".h5ad"):
            raise ValueError(f"{file}: name the dataset or variable to read, as {file}:/group/dataset or {file}:variable")
        name = "X"
    if file.lower().endswith((".nc", ".nc4")):
        return _netcdf_source(file, name)
    try:
        h5 = h5py.File(file, "r")
    except OSError as error:
        raise OSError(f"{file} cannot be read as HDF5: {error}") from error
    try:
        if name not in h5:
            choices = []
            h5.visititems(lambda key, item: choices.append(key) if isinstance(item, h5py.Dataset) else None)
            raise KeyError(f"{file} has no {name!r}; its datasets: {', '.join(choices[:20]) or 'none'}")
        item = h5[name]
        encoding = item.attrs.get("encoding-type", b"")
        encoding = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
        if isinstance(item, h5py.Group) and encoding in ("csr_matrix", "csc_matrix"):
            from scipy import sparse

            kind = sparse.csr_matrix if encoding == "csr_matrix" else sparse.csc_matrix
            shape = tuple(int(x) for x in item.attrs["shape"])
            X = kind((item["data"][...], item["indices"][...], item["indptr"][...]), shape=shape)
            h5.close()
            return _sparse_source(X)
        if not isinstance(item, h5py.Dataset):
            raise ValueError(f"{file}:{name} is a group, not a dataset; name a 2-D dataset in it")
        if item.ndim != 2:
            raise _not_a_matrix(f"{file}:{name}", item.shape)
        source = _lazy_source(item, item.chunks)
    except BaseException:
        h5.close()
        raise
    source.keep = h5  # the file stays open while the source lives
    return source


def _netcdf_source(file, name):
    """A NetCDF4 variable, ``file.nc:variable`` (or ``:/group/variable``), opened with
    netCDF4-python, which applies the file's fill values (read as NaN, and refused) and
    scaling."""
    try:
        import netCDF4
    except ImportError as error:
        raise ImportError(f"reading {file} needs netCDF4: pip install netCDF4") from error
    try:
        ds = netCDF4.Dataset(file)
    except OSError as error:
        raise OSError(f"{file} cannot be read as NetCDF: {error}") from error
    try:
        try:
            variable = ds[name.lstrip("/")]
        except (KeyError, IndexError):
            names = ", ".join(ds.variables)
            raise KeyError(f"{file} has no variable {name!r}; its variables: {names or 'none'}") from None
        if variable.ndim != 2:
            raise _not_a_matrix(f"{file}:{name}", variable.shape)
        source = _as_source(variable)
    except BaseException:
        ds.close()
        raise
    source.keep = ds  # the file stays open while the source lives
    return source


def _as_source(X):
    if isinstance(X, (str, os.PathLike)):
        path = os.fspath(X)
        if path.partition(":")[0].lower().endswith(_HDF5_SUFFIXES) or path.lower().endswith(_HDF5_SUFFIXES):
            return _hdf5_source(path)
        shape, dtype = _core.matrix_info(path)
        return _Source(path, shape, dtype)
    module = type(X).__module__ or ""
    if module.startswith("scipy.sparse"):
        return _sparse_source(X)
    if module.startswith("anndata"):
        return _as_source(X.X)
    if module.startswith("h5py"):
        return _lazy_source(X, X.chunks)
    if module.startswith("netCDF4"):
        chunking = X.chunking()
        return _lazy_source(X, None if chunking == "contiguous" else chunking)
    if module.startswith("xarray"):
        if X.chunks is not None or X.variable._in_memory:  # Dask, or numpy: .data reads nothing
            return _as_source(X.data)
        chunks = X.encoding.get("chunksizes")
        return _lazy_source(X, chunks, lambda r0, r1, c0, c1: np.asarray(X[r0:r1, c0:c1].values, dtype=np.float64))
    if module.startswith("dask") and hasattr(X, "chunksize"):
        _check_2d(X.ndim)
        return _blocks(lambda r0, r1, c0, c1: X[r0:r1, c0:c1].compute(scheduler="synchronous"), X.shape, X.chunksize, X.dtype)
    if module.startswith("zarr") and hasattr(X, "chunks"):
        _check_2d(X.ndim)
        path = _local_zarr_path(X)
        if path is not None and np.dtype(X.dtype) in (np.float64, np.float32):
            return _Source(path, X.shape, X.dtype)
        return _blocks(lambda r0, r1, c0, c1: X[r0:r1, c0:c1], X.shape, X.chunks, X.dtype)
    array = np.asarray(X)
    _check_2d(array.ndim)
    if array.dtype not in (np.float64, np.float32):
        _check_real(array.dtype)
        array = array.astype(np.float64)
    elif not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return _Source(array, array.shape, array.dtype)


def _as_rhs(y):
    """Right-hand sides: ``(source, one_dimensional)``, a 1-D ``y`` seen as one column."""
    if isinstance(y, (str, os.PathLike)):
        return _as_source(y), False
    module = type(y).__module__ or ""
    if module.startswith("xarray"):
        return _as_rhs(y.data)
    ndim = getattr(y, "ndim", None)
    if ndim is None:
        y = np.asarray(y)
        ndim = y.ndim
    if ndim != 1:
        return _as_source(y), False
    if module.startswith("dask") or isinstance(y, np.ndarray):
        return _as_source(y[:, None]), True
    if module.startswith("zarr") and hasattr(y, "chunks"):
        return _blocks(lambda r0, r1, c0, c1: np.asarray(y[r0:r1])[:, None], (y.shape[0], 1), (y.chunks[0], 1), y.dtype), True
    return _as_source(np.asarray(y)[:, None]), True


def _check_2d(ndim):
    if ndim != 2:
        raise ValueError(f"expected a 2-D matrix (rows x columns), got {ndim} dimension(s); reshape it first")


# ---------------------------------------------------------------------------------------------
# Arguments


def _memory(limit):
    if limit is None:
        return DEFAULT_MEMORY_LIMIT
    if isinstance(limit, str):
        return _core.parse_size(limit)
    if isinstance(limit, numbers.Integral) and limit > 0:
        return int(limit)
    raise ValueError(f"memory_limit must be a positive number of bytes or a size such as '64MiB', got {limit!r}")


def _workers(n_jobs):
    if n_jobs is None:
        return None
    if n_jobs == -1:
        return os.cpu_count() or 1
    if isinstance(n_jobs, numbers.Integral) and n_jobs >= 1:
        return int(n_jobs)
    raise ValueError(f"n_jobs must be a positive integer, -1 (every core) or None, got {n_jobs!r}")


def _seed(random_state):
    if random_state is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(random_state, numbers.Integral):
        return int(random_state) & (2**64 - 1)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    raise ValueError(f"random_state must be None, an int, a RandomState or a Generator, got {random_state!r}")


def _iterations(n_iter, normalizer):
    # outcore re-orthonormalizes every pass with QR, the most accurate choice, whatever is asked.
    if normalizer not in ("auto", "QR", "LU", "none"):
        raise ValueError(f"power_iteration_normalizer must be 'auto', 'QR', 'LU' or 'none', got {normalizer!r}")
    if isinstance(n_iter, str):
        if n_iter != "auto":
            raise ValueError(f"n_iter must be 'auto' or a non-negative integer, got {n_iter!r}")
        return 4  # outcore's default: 4 block Krylov iterations
    if isinstance(n_iter, numbers.Integral) and n_iter >= 0:
        return int(n_iter)
    raise ValueError(f"n_iter must be 'auto' or a non-negative integer, got {n_iter!r}")


def _method(method):
    if method not in ("krylov", "subspace"):
        raise ValueError(f"method must be 'krylov' or 'subspace', got {method!r}")
    return method == "krylov"


def _out(a, dtype):
    return a if a is None or isinstance(a, str) else np.asarray(a, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Functions


def svd(X, *, compute_uv=True, memory_limit=None, n_jobs=None, u_out=None, progress=None):
    """The exact thin SVD of ``X`` by TSQR, streamed chunk by chunk: ``(U, s, Vt)``, or ``s``.

    Works for tall and wide matrices in any chunking (``U`` is m x k, ``Vt`` k x n, k =
    min(m, n)). Singular vector signs are deterministic: the largest entry of each row of
    ``Vt`` is positive. ``u_out`` (tall input) writes U to a new Zarr array at that path and
    returns the path in its place. ``progress(done, total)`` is called as tasks finish.
    """
    src = _as_source(X)
    m, n = src.shape
    if u_out is not None and m < n:
        raise ValueError("u_out: U of a wide matrix is m x m and returned in memory; u_out is for tall matrices")
    r = _core.tsqr(
        src.tall_handle,
        compute_uv=bool(compute_uv),
        center=False,
        standardize=False,
        memory_limit=_memory(memory_limit),
        workers=_workers(n_jobs),
        u_out=None if u_out is None else os.fspath(u_out),
        progress=progress,
    )
    s = r["s"].astype(src.out_dtype)
    if not compute_uv:
        return s
    u, v = _flip_wide(src.shape, r["u"], r["v"])
    return _out(u, src.out_dtype), s, np.ascontiguousarray(v.T, dtype=src.out_dtype)


def _flip_wide(shape, u, v):
    """One sign rule for every shape (scikit-learn's ``svd_flip(u_based_decision=False)``): the
    entry of largest magnitude in each column of V is positive. outcore's TSQR decides on the
    tall problem's small factor, which for a wide matrix is U, so wide results are flipped here
    (both factors are in memory then)."""
    if shape[0] >= shape[1] or u is None or v is None:
        return u, v
    signs = _signs(v)
    return u * signs, v * signs


def _signs(x):
    """The sign of the entry of largest magnitude in each column of ``x`` (1 for a zero column):
    scikit-learn's ``svd_flip`` multiplies both factors by these."""
    signs = np.sign(x[np.abs(x).argmax(axis=0), np.arange(x.shape[1])])
    signs[signs == 0] = 1
    return signs


def randomized_svd(
    M,
    n_components,
    *,
    n_oversamples=10,
    n_iter="auto",
    power_iteration_normalizer="auto",
    transpose="auto",
    flip_sign=True,
    random_state=None,
    svd_lapack_driver="gesdd",
    method="krylov",
    memory_limit=None,
    n_jobs=None,
    u_out=None,
    progress=None,
    return_error=False,
):
    """The top ``n_components`` singular triplets of ``M``: ``(U, s, Vt)``, as scikit-learn's
    ``randomized_svd`` (its signature, then outcore's own keywords), streamed over ``M`` in a
    few passes.

    ``n_iter="auto"`` runs outcore's default, 4 block Krylov iterations (``method="krylov"``),
    which are more accurate than subspace iteration for the same passes; ``method="subspace"``
    is scikit-learn's algorithm. Every pass is re-orthonormalized by QR, whatever
    ``power_iteration_normalizer`` says (``"LU"`` and ``"none"`` are accepted and get QR's
    accuracy). ``transpose`` and ``svd_lapack_driver`` are accepted and have nothing to choose:
    outcore orients the problem itself and factors the small matrix with faer. Oversampling is
    capped so ``n_components + n_oversamples`` stays within ``min(m, n)``. Signs with
    ``flip_sign=True``, as scikit-learn's: the entry of largest magnitude in each column of
    ``U`` is positive (in each row of ``Vt`` when ``U`` goes to ``u_out`` or
    ``flip_sign=False``). With ``return_error=True`` a fourth value is returned: the
    a-posteriori estimate of ``||M - U diag(s) Vt||`` (``spectral_lower_bound`` and
    ``spectral_bound`` around its spectral norm, ``frobenius``, the bound and the estimate also
    ``relative_`` to the largest singular value, ``probes``, ``failure_probability``).
    """
    if transpose not in ("auto", True, False):
        raise ValueError(f"transpose must be 'auto', True or False, got {transpose!r}")
    if svd_lapack_driver not in ("gesdd", "gesvd"):
        raise ValueError(f"svd_lapack_driver must be 'gesdd' or 'gesvd', got {svd_lapack_driver!r}")
    src = _as_source(M)
    k = _components(n_components, src.shape)
    r = _core.rsvd(
        src.handle,
        k,
        oversamples=_oversamples(n_oversamples, k, src.shape),
        power_iters=_iterations(n_iter, power_iteration_normalizer),
        krylov=_method(method),
        seed=_seed(random_state),
        center=False,
        memory_limit=_memory(memory_limit),
        workers=_workers(n_jobs),
        u_out=None if u_out is None else os.fspath(u_out),
        progress=progress,
    )
    u, v = r["u"], r["v"]
    if flip_sign and u is not None and not isinstance(u, str):
        signs = _signs(u)  # scikit-learn's svd_flip(u_based_decision=True)
        u, v = u * signs, v * signs
    result = (_out(u, src.out_dtype), r["s"].astype(src.out_dtype), np.ascontiguousarray(v.T, dtype=src.out_dtype))
    return result + (r["error"],) if return_error else result


def _components(n_components, shape):
    limit = min(shape)
    if not isinstance(n_components, numbers.Integral) or not 1 <= n_components <= limit:
        raise ValueError(f"n_components must be an integer in 1..{limit} (min of the shape {shape}), got {n_components!r}")
    return int(n_components)


#: The narrow side of sparse data beyond which no exact solver is chosen for it unasked: TSQR
#: would make its panels dense (an ``n x n`` factor of 8 MB at this size, growing as ``n^2``).
_SPARSE_EXACT = 1000


def _sparse_too_wide(src):
    """Whether ``src`` is sparse with both sides beyond ``_SPARSE_EXACT``."""
    return src.sparse is not None and min(src.shape) > _SPARSE_EXACT


def _exact_is_cheaper(k, oversamples, iterations, src):
    """Whether TSQR's one exact pass costs less than ``iterations`` block Krylov iterations of
    ``k + oversamples`` columns: when their Krylov space would span half of the ``min(m, n)``
    dimensions or more. The randomized SVD then makes ``2 iterations + 2`` passes and keeps a
    basis of that many columns between them, about the matrix's size (docs/python.md). Never
    for sparse data too wide to be made dense in panels."""
    return 2 * (iterations + 1) * (k + oversamples) >= min(src.shape) and not _sparse_too_wide(src)


def _oversamples(p, k, shape):
    if not isinstance(p, numbers.Integral) or p < 0:
        raise ValueError(f"n_oversamples must be a non-negative integer, got {p!r}")
    return int(min(p, min(shape) - k))


# The QR family needs the helpers above (a circular import, resolved by coming last).
from ._qr import lq, lstsq, qr, qr_multiply  # noqa: E402


def __getattr__(name):
    """The estimators, imported when first used: they build on scikit-learn (see ``_base``),
    which ``import outcore`` does not load."""
    if name == "PCA":
        from ._pca import PCA

        return PCA
    if name == "IncrementalPCA":
        from ._incremental_pca import IncrementalPCA

        return IncrementalPCA
    if name == "TruncatedSVD":
        from ._truncated_svd import TruncatedSVD

        return TruncatedSVD
    if name in ("LinearRegression", "Ridge"):
        from . import _linear

        return getattr(_linear, name)
    raise AttributeError(f"module 'outcore' has no attribute {name!r}")
