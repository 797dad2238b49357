"""What outcore's estimators take from scikit-learn: its base classes and its validation, so
parameters, cloning, ``set_output``, feature names, messages and the HTML repr are
scikit-learn's own. scikit-learn is required for the estimators (``pip install
outcore[sklearn]``) and imported only when one is first used; outcore's functions need numpy
alone."""

import os

import numpy as np

try:
    from sklearn.base import (  # noqa: F401  (re-exported to the estimators' modules)
        BaseEstimator,
        ClassNamePrefixFeaturesOutMixin,
        MultiOutputMixin,
        RegressorMixin,
        TransformerMixin,
    )
    from sklearn.utils.validation import check_is_fitted, validate_data  # noqa: F401
except ImportError as error:  # pragma: no cover (the test environment has scikit-learn)
    raise ImportError(
        "outcore's estimators (PCA, LinearRegression, Ridge) build on scikit-learn's base classes: "
        "pip install 'outcore[sklearn]' (or scikit-learn>=1.6); outcore.svd, randomized_svd, qr and lstsq need numpy only"
    ) from error

from . import _as_source, _core, _workers

#: What scikit-learn's estimators accept as the dtype of data held in memory.
FLOATS = [np.float64, np.float32]


def out_of_core(X):
    """Whether ``X`` is a source outcore reads itself, block by block (a path, a memory-mapped
    file, a Zarr, Dask or xarray array, an h5py dataset, a netCDF4 variable, an AnnData), which
    scikit-learn's validation would read whole into memory (an extra pass over the disk, or
    more memory than there is)."""
    if isinstance(X, (str, os.PathLike, np.memmap)):
        return True
    module = type(X).__module__ or ""
    return module.startswith(("zarr", "dask", "xarray", "h5py", "netCDF4", "anndata")) and hasattr(X, "shape")


def checked_source(estimator, X, *, reset, min_samples=1, min_features=1):
    """``X`` validated as scikit-learn validates it, as an outcore source. Data in memory goes
    through ``validate_data`` (2-D, real numbers, the feature count and names against the
    fit's); a source read out of core only has its shape checked. NaN and infinity are found
    by outcore as it reads, without a pass of their own, and named by row and column."""
    if not out_of_core(X):
        X = validate_data(
            estimator,
            X,
            reset=reset,
            accept_sparse=("csr", "csc"),
            dtype=FLOATS,
            ensure_min_samples=min_samples,
            ensure_min_features=min_features,
            ensure_all_finite=False,
        )
        return _as_source(X)
    source = _as_source(X)
    m, n = source.shape
    if reset:
        estimator.n_features_in_ = n
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif n != estimator.n_features_in_:
        raise ValueError(
            f"X has {n} features, but {type(estimator).__name__} is expecting {estimator.n_features_in_} features as input."
        )
    for count, least, what in ((m, min_samples, "sample(s)"), (n, min_features, "feature(s)")):
        if count < least:
            raise ValueError(
                f"Found array with {count} {what} (shape={source.shape}) while a minimum of {least} is required by "
                f"{type(estimator).__name__}."
            )
    return source


def project(estimator, src, mean, scale, components):
    """``(X - mean) / scale @ components.T`` for the source ``src``, streamed chunk by chunk on
    the estimator's threads (float64); for a sparse matrix, by scipy's sparse product with the
    mean subtracted after it (``X @ C.T - mean @ C.T``: the centered matrix is never formed)."""
    if src.sparse is not None:
        c = np.asarray(components, dtype=np.float64)
        mean = np.asarray(mean, dtype=np.float64)
        if scale is not None:
            c = c / np.asarray(scale, dtype=np.float64)
        return np.asarray(src.sparse @ c.T, dtype=np.float64) - mean @ c.T
    return _core.transform(
        src.handle,
        np.ascontiguousarray(mean, dtype=np.float64),
        None if scale is None else np.ascontiguousarray(scale, dtype=np.float64),
        np.ascontiguousarray(components, dtype=np.float64),
        workers=_workers(estimator.n_jobs),
    )
