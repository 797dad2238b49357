"""``outcore.LinearRegression`` and ``outcore.Ridge``: scikit-learn's linear models, fitted in
one pass over ``[X | y]`` out of core, with the standard errors statsmodels reports."""

import numbers
import os

import numpy as np

from . import _as_rhs, _as_source
from ._qr import _fit
from ._base import (
    FLOATS,
    BaseEstimator,
    MultiOutputMixin,
    RegressorMixin,
    check_is_fitted,
    checked_source,
    out_of_core,
    project,
    validate_data,
)


class _Linear(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """What LinearRegression and Ridge share: fit and predict (``score`` is scikit-learn's
    R^2 of ``predict``), for one target or several."""

    _alpha = 0.0

    def fit(self, X, y, sample_weight=None):
        """Fits ``y`` (1-D, or 2-D for several targets) on ``X``, any source ``outcore.svd``
        accepts, both read once side by side; returns ``self``. ``sample_weight`` (a number,
        or one per row: an array, or a source as ``y`` may be) weighs each row's squared
        residual, as scikit-learn's, and makes the standard errors statsmodels' ``WLS``'s."""
        alpha = self._alpha_checked()
        # An intercept is a mean: it needs two samples.
        least = 2 if self.fit_intercept else 1
        if out_of_core(X) or out_of_core(y):
            src = checked_source(self, X, reset=True, min_samples=least)
        else:
            # NaN and infinity: found by outcore as it reads, named by row and column.
            X, y = validate_data(
                self, X, y, accept_sparse=("csr", "csc"), dtype=FLOATS, multi_output=True, y_numeric=True, ensure_all_finite=False, ensure_min_samples=least
            )
            src = _as_source(X)
        rhs, flat = _as_rhs(y)
        r = _fit(
            src,
            rhs,
            _sample_weight(sample_weight, src.shape[0]),
            rcond=None,
            fit_intercept=bool(self.fit_intercept),
            alpha=alpha,
            memory_limit=self.memory_limit,
            n_jobs=self.n_jobs,
            progress=self.progress,
        )
        coef = r["x"].T  # n_targets x n_features
        intercept = r["intercept"]
        self.coef_ = coef[0] if flat else np.ascontiguousarray(coef)
        # As scikit-learn: 0.0 without an intercept, else a float per target (one for 1-D y).
        self.intercept_ = 0.0 if intercept is None else (float(intercept[0]) if flat else intercept)
        self.rank_ = int(r["rank"])
        self.singular_ = r["s"]
        self.rss_ = r["rss"][0] if flat else r["rss"]
        self.df_resid_ = float(r["df_resid"])
        stderr = r["stderr"]
        self.stderr_ = None if stderr is None else (stderr[:, 0] if flat else np.ascontiguousarray(stderr.T))
        c = r["intercept_stderr"]
        self.intercept_stderr_ = None if c is None else (float(c[0]) if flat else c)
        unscaled, scale = r["cov_unscaled"], r["scale"]
        if unscaled is None:
            self.coef_cov_ = None
        else:
            cov = scale[:, None, None] * unscaled[None, :, :]
            self.coef_cov_ = cov[0] if flat else cov
        self.memory_ = r["memory"]
        return self

    def predict(self, X):
        """``X @ coef_.T + intercept_``, streamed over ``X`` chunk by chunk."""
        check_is_fitted(self)
        src = checked_source(self, X, reset=False)
        coef = np.atleast_2d(np.asarray(self.coef_, dtype=np.float64))
        scores = project(self, src, np.zeros(self.n_features_in_), None, coef)
        scores += np.asarray(self.intercept_, dtype=np.float64)
        return scores[:, 0] if np.ndim(self.coef_) == 1 else scores

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR or CSC, read by TSQR as dense panels
        return tags

    def _alpha_checked(self):
        alpha = self._alpha
        if not (isinstance(alpha, numbers.Real) and np.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a finite number of 0 or more, got {alpha!r}")
        return float(alpha)


def _sample_weight_array(sample_weight, rows):
    """``sample_weight`` held in memory as one float per row, checked as scikit-learn checks it."""
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(rows, float(w))
    if w.shape != (rows,):
        raise ValueError(f"sample_weight has shape {w.shape}; give one weight per row of X, shape ({rows},)")
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight holds NaN or infinity: give finite weights")
    if np.any(w < 0):
        raise ValueError(f"sample_weight holds negative values (row {int(np.argmax(w < 0))}): a weight is at least 0")
    if not np.any(w > 0):
        raise ValueError("Sample weights must contain at least one non-zero number: every row weighs 0, so none counts")
    return w


def _sample_weight(sample_weight, rows):
    """The weights as a column source for the core, or ``None`` (every row weighs 1); a source
    that is not held in memory (a store, a dask array) is read beside ``X``, checked there."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (str, os.PathLike)) or not isinstance(sample_weight, (numbers.Real, list, tuple, np.ndarray)):
        source, _ = _as_rhs(sample_weight)
        if source.shape != (rows, 1):
            raise ValueError(f"sample_weight has shape {source.shape}; give one weight per row of X ({rows})")
        return source
    source, _ = _as_rhs(_sample_weight_array(sample_weight, rows))
    return source


class LinearRegression(_Linear):
    """Ordinary least squares, as scikit-learn's ``LinearRegression``, fitted out of core.

    ``fit(X, y)`` reads ``X`` and ``y`` once, side by side, and reduces them by TSQR (never
    forming ``X.T @ X``, which squares the condition number); the intercept centers the
    columns in the same pass. Attributes as scikit-learn's (``coef_``, ``intercept_``,
    ``rank_``, ``singular_``, ``n_features_in_``), plus statsmodels' figures: ``stderr_`` (the
    coefficients' standard errors, statsmodels' ``bse``; ``None`` when ``X`` is rank-deficient),
    ``intercept_stderr_``, ``coef_cov_`` (the coefficients' covariance, statsmodels'
    ``cov_params()`` without the intercept's row: n_features x n_features, per target for 2-D
    ``y``), ``rss_`` (residual sum of squares), ``df_resid_``, and ``memory_``.
    """

    def __init__(self, *, fit_intercept=True, memory_limit=None, n_jobs=None, progress=None):
        self.fit_intercept = fit_intercept
        self.memory_limit = memory_limit
        self.n_jobs = n_jobs
        self.progress = progress


class Ridge(_Linear):
    """Ridge regression, as scikit-learn's ``Ridge``: minimizes ``||y - X w||^2 + alpha ||w||^2``
    (the intercept not penalized), fitted out of core in one pass (``sqrt(alpha) I`` is stacked
    below the TSQR's R). Attributes as :class:`LinearRegression`'s, without standard errors.
    """

    def __init__(self, alpha=1.0, *, fit_intercept=True, memory_limit=None, n_jobs=None, progress=None):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.memory_limit = memory_limit
        self.n_jobs = n_jobs
        self.progress = progress

    @property
    def _alpha(self):
        return self.alpha
