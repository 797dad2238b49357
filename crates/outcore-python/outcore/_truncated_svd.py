"""``outcore.TruncatedSVD``: scikit-learn's TruncatedSVD (latent semantic analysis), out of core."""

import numbers

import numpy as np

from . import _core, _exact_is_cheaper, _iterations, _memory, _oversamples, _seed, _workers
from ._base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    check_is_fitted,
    checked_source,
    project,
)


class TruncatedSVD(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """The top ``n_components`` singular triplets of a matrix of any size, not centered, with
    scikit-learn's interface.

    ``algorithm``:

    * ``"randomized"`` (the default): outcore's randomized SVD, ``n_iter`` block Krylov
      iterations (more accurate than scikit-learn's subspace iterations for the same passes over
      ``X``); the first pass also gathers the column means and variances, so the explained
      variance costs no pass of its own. ``error_estimate_`` holds the estimate of the
      residual's norm.
    * ``"arpack"``: the exact top ``n_components`` (fewer than ``min(n_samples, n_features)``,
      as ARPACK's), from one pass of outcore's TSQR (an ``outcore.FactorState`` of the rows):
      ``tol`` has nothing to stop early.
      ``"randomized"`` runs it too where its Krylov space, ``(n_iter + 1) (n_components +
      n_oversamples)`` columns, would span half the ``min(n_samples, n_features)`` dimensions
      or more: the exact answer then costs less than the approximate one (``2 n_iter + 2``
      passes, and a basis about the matrix's size kept between them).

    Sparse input (scipy.sparse CSR or CSC) is read in place: ``"randomized"`` multiplies by its
    nonzeros only; ``"arpack"`` reads it as dense panels, one at a time.

    ``fit_transform`` returns ``X @ components_.T`` (a second pass, streamed), as scikit-learn's
    does, and sets ``explained_variance_`` to the variances of its columns. ``fit`` alone makes
    no second pass: its ``explained_variance_`` is that of the factorization's scores ``U S``
    (exact with ``"arpack"``; with ``"randomized"``, ``X @ components_.T``'s to the
    factorization's accuracy). ``memory_limit`` bounds outcore's own memory; ``n_jobs`` sets its
    threads; ``transform`` streams the data chunk by chunk.
    """

    def __init__(
        self,
        n_components=2,
        *,
        algorithm="randomized",
        n_iter=5,
        n_oversamples=10,
        power_iteration_normalizer="auto",
        random_state=None,
        tol=0.0,
        memory_limit=None,
        n_jobs=None,
        progress=None,
    ):
        self.n_components = n_components
        self.algorithm = algorithm
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state
        self.tol = tol
        self.memory_limit = memory_limit
        self.n_jobs = n_jobs
        self.progress = progress

    def fit(self, X, y=None):
        """Fits the model to ``X`` (any source ``outcore.svd`` accepts); returns ``self``."""
        self._fit(checked_source(self, X, reset=True, min_samples=2, min_features=2))
        return self

    def fit_transform(self, X, y=None):
        """``fit(X)``, then ``X @ components_.T`` (streamed), whose column variances become
        ``explained_variance_``, as scikit-learn's."""
        src = checked_source(self, X, reset=True, min_samples=2, min_features=2)
        self._fit(src)
        scores = self._project(src)
        variance = np.var(scores, axis=0, dtype=np.float64)
        self.explained_variance_ = variance.astype(src.out_dtype)
        self.explained_variance_ratio_ = self._ratio(variance).astype(src.out_dtype)
        return scores

    def _fit(self, src):
        m, n = src.shape
        k = self._checked_components(m, n)
        common = dict(memory_limit=_memory(self.memory_limit), workers=_workers(self.n_jobs), u_out=None, progress=self.progress)
        if not (isinstance(self.tol, numbers.Real) and self.tol >= 0):
            raise ValueError(f"tol must be a number of 0 or more, got {self.tol!r}")
        oversamples = _oversamples(self.n_oversamples, k, src.shape)
        iterations = _iterations(self.n_iter, self.power_iteration_normalizer)
        if self.algorithm == "arpack" or _exact_is_cheaper(k, oversamples, iterations, src):
            # One pass: the state of the rows (their means and centered factor), whose SVD
            # uncentered is X's; the variances along V come from the centered one.
            state = _core.FactorState(n)
            memory = state.update(src.tall_handle, memory_limit=common["memory_limit"], workers=common["workers"], progress=self.progress)
            plain, centered = state.svd(False), state.svd(True)
            s, v = plain["s"][:k], plain["v"][:, :k]
            variance = np.sum((centered["s"][:, None] * (centered["v"].T @ v)) ** 2, axis=0) / m
            self._total_variance = float(centered["total_variance"]) * (m - 1) / m
            self.error_estimate_ = None
            r = {"memory": memory}
        else:
            r = _core.rsvd(
                src.handle,
                k,
                oversamples=oversamples,
                power_iters=iterations,
                krylov=True,
                seed=_seed(self.random_state),
                center=False,
                column_moments=True,
                **common,
            )
            s, v = r["s"], r["v"]
            variance = np.maximum(s**2 / m - (r["column_mean"] @ v) ** 2, 0.0)
            self._total_variance = float(np.sum(r["column_variance"]))
            self.error_estimate_ = r["error"]
        self.components_ = np.ascontiguousarray(v.T, dtype=src.out_dtype)
        self.singular_values_ = s.astype(src.out_dtype)
        self.explained_variance_ = variance.astype(src.out_dtype)
        self.explained_variance_ratio_ = self._ratio(variance).astype(src.out_dtype)
        self.memory_ = r["memory"]

    def _checked_components(self, m, n):
        """``n_components`` checked against the data and the algorithm, with scikit-learn's words."""
        k = self.n_components
        if self.algorithm not in ("arpack", "randomized"):
            raise ValueError(f"algorithm must be 'arpack' or 'randomized', got {self.algorithm!r}")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"n_components must be an integer of 1 or more, got {k!r}")
        limit = min(m, n)
        if self.algorithm == "arpack" and k >= limit:
            raise ValueError(
                f"n_components={k} must be strictly less than min(n_samples, n_features)={limit} with "
                "algorithm='arpack'"
            )
        if k > n:
            raise ValueError(f"n_components({k}) must be <= n_features({n}).")
        if k > m:
            raise ValueError(f"n_components({k}) must be <= n_samples({m}): a rank-{m} matrix has {m} singular values.")
        return int(k)

    def _ratio(self, variance):
        total = self._total_variance
        return variance / total if total > 0 else np.zeros_like(variance)

    def _project(self, src):
        scores = project(self, src, np.zeros(src.shape[1]), None, self.components_)
        return scores.astype(src.out_dtype, copy=False)

    def transform(self, X):
        """``X @ components_.T``, streamed chunk by chunk."""
        check_is_fitted(self)
        return self._project(checked_source(self, X, reset=False))

    def inverse_transform(self, X):
        """Data back from scores: ``X @ components_``."""
        check_is_fitted(self)
        return np.asarray(X) @ self.components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):
        """The output columns (``get_feature_names_out`` names them ``truncatedsvd0``, ...)."""
        return self.components_.shape[0]
