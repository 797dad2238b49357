"""``outcore.PCA``: scikit-learn's PCA, computed out of core, centered without a copy."""

import math
import numbers

import numpy as np

from . import (
    _core,
    _flip_wide,
    _iterations,
    _memory,
    _oversamples,
    _seed,
    _exact_is_cheaper,
    _sparse_too_wide,
    _workers,
)
from ._base import (
    FLOATS,
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    check_is_fitted,
    checked_source,
    project,
    validate_data,
)


class PCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Principal component analysis of a matrix of any size, with scikit-learn's interface.

    The data is centered (and with ``standardize=True`` scaled to unit variance) implicitly:
    the centered matrix is never formed. ``svd_solver``:

    * ``"tsqr"`` (also ``"full"``, ``"covariance_eigh"`` and ``"arpack"``): the exact SVD of the
      centered matrix in one pass (TSQR, panels merged with their means), all singular values
      (``"arpack"`` keeps scikit-learn's rules for ``n_components``: at most ``min(m, n) - 1``);
    * ``"randomized"``: the top ``n_components`` by outcore's randomized SVD, every pass
      corrected for the means by a rank-one term (no extra pass); ``error_estimate_`` holds the
      estimate of the residual's norm. Where its Krylov space, ``(iterated_power + 1)
      (n_components + n_oversamples)`` columns, would span half the ``min(n_samples,
      n_features)`` dimensions or more, TSQR runs instead: the exact answer from one pass, for
      less than the randomized one costs;
    * ``"auto"``: scikit-learn's choice, ``_fit_svd_solver`` naming it: ``covariance_eigh`` for
      tall data (at most 1000 features and 10 times as many samples), ``full`` for small data
      and for a fractional ``n_components`` or ``"mle"`` (Minka's choice of dimension, which
      needs every variance), both run by TSQR; ``randomized`` when ``n_components`` is below
      80% of ``min(m, n)``.

    Sparse input (scipy.sparse CSR or CSC, read in place): ``"auto"`` means ``"arpack"``, as in
    scikit-learn. The exact solvers read it as dense panels, one at a time; where both sides
    have more than 1000 entries, ``"arpack"`` runs the randomized solver instead, multiplying
    by the nonzeros only (so does ``"randomized"``, which scikit-learn refuses on sparse input),
    centered implicitly. ``transform`` multiplies by the nonzeros too.

    ``partial_fit`` (outcore's own) adds rows to an exact fit of every row seen, one pass over
    each batch (as ``IncrementalPCA``, with ``n_components`` as this class reads it).

    ``copy`` is scikit-learn's parameter, accepted as given: outcore never writes to ``X``
    (it centers implicitly), so there is no copy to avoid. ``iterated_power="auto"`` runs 4
    block Krylov iterations. ``memory_limit`` bounds outcore's
    own memory; ``n_jobs`` sets its threads. ``transform`` streams the data chunk by chunk.
    """

    def __init__(
        self,
        n_components=None,
        *,
        copy=True,
        whiten=False,
        standardize=False,
        svd_solver="auto",
        n_oversamples=10,
        iterated_power="auto",
        power_iteration_normalizer="auto",
        random_state=None,
        memory_limit=None,
        n_jobs=None,
        progress=None,
    ):
        self.n_components = n_components
        self.copy = copy
        self.whiten = whiten
        self.standardize = standardize
        self.svd_solver = svd_solver
        self.n_oversamples = n_oversamples
        self.iterated_power = iterated_power
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state
        self.memory_limit = memory_limit
        self.n_jobs = n_jobs
        self.progress = progress

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Fits the model to ``X`` (any source ``outcore.svd`` accepts); returns ``self``."""
        self._fit(X)
        return self

    def _fit(self, X):
        """Fits the model; the scores ``U S`` (whitened: ``U sqrt(n_samples - 1)``) where the
        factorization made U (the randomized solver), else ``None``."""
        src = checked_source(self, X, reset=True, min_samples=2)
        m, n = src.shape
        solver, wanted = self._negotiate(m, n, src.sparse is not None)  # checked before any pass over X
        common = dict(memory_limit=_memory(self.memory_limit), workers=_workers(self.n_jobs), u_out=None, progress=self.progress)
        # Sparse data too wide for dense panels takes the randomized route for "arpack".
        exact = solver != "randomized" and not (solver == "arpack" and _sparse_too_wide(src))
        if not exact:
            if self.standardize:
                raise ValueError(
                    "standardize=True needs svd_solver='tsqr' (exact, one pass); the randomized solver centers only"
                )
            oversamples = _oversamples(self.n_oversamples, wanted, src.shape)
            iterations = _iterations(self.iterated_power, self.power_iteration_normalizer)
            exact = _exact_is_cheaper(wanted, oversamples, iterations, src)
        if exact:
            r = _core.tsqr(src.tall_handle, compute_uv=True, center=True, standardize=bool(self.standardize), **common)
            self.error_estimate_ = None
        else:
            r = _core.rsvd(
                src.handle,
                wanted,
                oversamples=oversamples,
                power_iters=iterations,
                krylov=True,
                seed=_seed(self.random_state),
                center=True,
                **common,
            )
            self.error_estimate_ = r["error"]
        s, (u, v) = r["s"], _flip_wide(src.shape, r["u"], r["v"])
        self.__dict__.pop("state_", None)  # a fit starts afresh: partial fits before it are gone
        self._fit_svd_solver = solver
        k = self._take(s, v, r["mean"], r.get("scale"), float(r["total_variance"]), (m, n), wanted, src.out_dtype)
        self.n_samples_ = m
        self.memory_ = r["memory"]
        if u is None:
            return None
        u = np.asarray(u[:, :k], dtype=np.float64)
        return (u * math.sqrt(m - 1) if self.whiten else u * s[:k]).astype(src.out_dtype, copy=False)

    def partial_fit(self, X, y=None):
        """Adds the rows of ``X`` to the fit (outcore's own: scikit-learn's PCA has none), which
        is then ``fit`` of every row seen, exactly: one pass over ``X`` merged into the
        ``n_features x n_features`` state ``state_`` (an ``outcore.FactorState``), the rows
        seen before never read again. Centered only (``standardize=True`` needs every row at
        once: ``fit``); the components come from the exact SVD whatever ``svd_solver``."""
        first = not hasattr(self, "state_")
        src = checked_source(self, X, reset=first)
        if self.standardize:
            raise ValueError("partial_fit centers only: standardize=True needs every row at once; use fit")
        self._grow_state(src, first, self.progress)
        self._fit_svd_solver = "full"
        self._from_state(src.out_dtype)
        self.n_samples_ = self.state_.rows
        return self

    def _grow_state(self, src, first, progress):
        """Adds the rows of ``src`` to ``state_`` (a new one when ``first``), one pass over them."""
        state = _core.FactorState(src.shape[1]) if first else self.state_
        self.memory_ = state.update(src.tall_handle, memory_limit=_memory(self.memory_limit), workers=_workers(self.n_jobs), progress=progress)
        self.state_ = state

    def _from_state(self, dtype, wanted=None):
        """Sets the fitted attributes from ``state_``'s exact SVD: ``wanted`` components, or as
        many as ``n_components`` says for the rows seen; returns the state's SVD (a dict)."""
        seen, n = self.state_.rows, self.state_.cols
        if seen < 2:
            raise ValueError(
                f"{type(self).__name__} has seen {seen} sample (kept): a variance needs 2 at least; call partial_fit "
                "with more rows"
            )
        if wanted is None:
            wanted = self._negotiate(seen, n)[1]
        r = self.state_.svd(True)
        limit = min(seen, n)
        self._take(r["s"][:limit], r["v"][:, :limit], r["mean"], None, float(r["total_variance"]), (seen, n), wanted, dtype)
        self.error_estimate_ = None
        return r

    def _take(self, s, v, mean, scale, total, shape, wanted, dtype):
        """Sets the fitted attributes from the SVD ``s``, ``v`` (n x k) of the centered (and
        scaled) ``shape`` data of total variance ``total``, keeping ``wanted`` components (a
        count, a fraction of the variance, or ``"mle"``); returns their count."""
        m, n = shape
        variance = s**2 / (m - 1)
        ratio = variance / total if total > 0 else np.zeros_like(variance)
        if wanted == "mle":
            k = _infer_dimension(variance, m)
        elif isinstance(wanted, float):
            k = min(int(np.searchsorted(np.cumsum(ratio), wanted, side="right") + 1), len(ratio))
        else:
            k = wanted
        self.n_components_ = k
        self.mean_ = mean.astype(dtype)
        self.scale_ = None if scale is None else scale.astype(dtype)
        self.components_ = np.ascontiguousarray(v[:, :k].T, dtype=dtype)
        self.singular_values_ = s[:k].astype(dtype)
        self.explained_variance_ = variance[:k].astype(dtype)
        self.explained_variance_ratio_ = ratio[:k].astype(dtype)
        rest = min(m, n) - k
        self.noise_variance_ = float((total - variance[:k].sum()) / rest) if rest > 0 else 0.0
        self.total_variance_ = total
        return k

    def _negotiate(self, m, n, sparse=False):
        """The route, named as scikit-learn names it (or ``"tsqr"``), and ``n_components``
        checked for it, by scikit-learn's rules and with its messages. Every route but
        ``"randomized"`` runs outcore's exact TSQR (``"arpack"`` too: the exact top
        ``n_components``, where ARPACK iterates to a tolerance)."""
        solver, k, limit = self.svd_solver, self.n_components, min(m, n)
        if solver not in _SOLVERS:
            raise ValueError(f"svd_solver must be one of {sorted(_SOLVERS)}, got {solver!r}")
        if solver == "auto" and sparse:
            solver = "arpack"  # as scikit-learn, for sparse input
        if k is None:
            k = limit - 1 if solver == "arpack" else limit
        elif isinstance(k, bool) or not (isinstance(k, numbers.Real) or (isinstance(k, str) and k == "mle")):
            raise ValueError(
                f"n_components must be None, an integer of 0 or more, a fraction in (0, 1) or 'mle', got {k!r}"
            )
        if solver == "auto":
            if n <= 1000 and m >= 10 * n:
                solver = "covariance_eigh"
            elif max(m, n) <= 500 or k == "mle":
                solver = "full"
            elif isinstance(k, numbers.Integral) and 1 <= k < 0.8 * limit:
                solver = "randomized"
            else:
                solver = "full"
        if solver in ("arpack", "randomized"):
            if isinstance(k, str):
                raise ValueError(f"n_components={k!r} cannot be a string with svd_solver='{solver}'")
            if not (isinstance(k, numbers.Integral) and 1 <= k <= limit):
                raise ValueError(
                    f"n_components={k!r} must be between 1 and min(n_samples, n_features)={limit!r} with "
                    f"svd_solver='{solver}'"
                )
            if solver == "arpack" and k == limit:
                raise ValueError(
                    f"n_components={k!r} must be strictly less than min(n_samples, n_features)={limit!r} with "
                    "svd_solver='arpack'"
                )
            return solver, int(k)
        if k == "mle":
            if m < n:
                raise ValueError("n_components='mle' is only supported if n_samples >= n_features")
            return solver, k
        if isinstance(k, numbers.Integral):
            if not 0 <= k <= limit:
                raise ValueError(
                    f"n_components={k} must be between 0 and min(n_samples, n_features)={limit} with "
                    f"svd_solver={solver!r}"
                )
            return solver, int(k)
        if not 0 < k < 1:
            raise ValueError(f"n_components={k!r}: a fraction of the variance must lie in (0, 1)")
        return solver, float(k)

    # -- using the fit ---------------------------------------------------------------------

    def transform(self, X):
        """The scores of ``X`` (n_samples x n_components), streamed chunk by chunk."""
        check_is_fitted(self)
        src = checked_source(self, X, reset=False)
        if self.n_components_ == 0:
            return np.zeros((src.shape[0], 0), dtype=src.out_dtype)
        scores = project(self, src, self.mean_, self.scale_, self.components_)
        if self.whiten:
            # As scikit-learn: components of (nearly) zero variance are not blown up.
            scores /= np.maximum(np.sqrt(self.explained_variance_.astype(np.float64)), np.finfo(np.float64).eps)
        return scores.astype(src.out_dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def fit_transform(self, X, y=None):
        """``fit(X)`` and the scores of ``X``: ``U S`` of the same factorization with the
        randomized solver (no second pass, and the scores' variances are
        ``explained_variance_`` to rounding, as scikit-learn's), else ``transform(X)`` (the
        exact solver keeps no U: a second pass over ``X``)."""
        scores = self._fit(X)
        return self.transform(X) if scores is None else scores

    def inverse_transform(self, X):
        """Data back from scores: ``X @ components_ * scale_ + mean_`` (whitening undone)."""
        check_is_fitted(self)
        X = np.asarray(X)
        components = self.components_
        if self.whiten:
            components = np.sqrt(self.explained_variance_)[:, None] * components
        data = X @ components
        if self.scale_ is not None:
            data *= self.scale_
        return data + self.mean_

    # -- the probabilistic model (Tipping and Bishop), as scikit-learn's ---------------------

    def get_covariance(self):
        """The data's covariance under the fitted model: ``components_.T @ diag(explained_variance_
        - noise_variance_) @ components_ + noise_variance_ * I`` (scaled back by ``scale_`` with
        ``standardize=True``)."""
        check_is_fitted(self)
        components, gain = self._model()
        cov = (components.T * gain) @ components
        cov.flat[:: len(cov) + 1] += self.noise_variance_
        return self._unstandardized(cov, 1)

    def get_precision(self):
        """The inverse of ``get_covariance()``, by the matrix inversion lemma (a k x k inverse)."""
        check_is_fitted(self)
        n = self.components_.shape[1]
        if self.n_components_ == 0:
            return self._unstandardized(np.eye(n) / self.noise_variance_, -1)
        if self.noise_variance_ == 0.0:
            return np.linalg.inv(self.get_covariance().astype(np.float64)).astype(self.components_.dtype, copy=False)
        components, gain = self._model()
        small = components @ components.T / self.noise_variance_
        small.flat[:: len(small) + 1] += 1.0 / gain
        precision = components.T @ np.linalg.inv(small) @ components
        precision /= -(self.noise_variance_**2)
        precision.flat[:: len(precision) + 1] += 1.0 / self.noise_variance_
        return self._unstandardized(precision, -1)

    def score_samples(self, X):
        """The log-likelihood of each sample of ``X`` under the fitted model. ``X`` is read into
        memory (as scikit-learn does)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=FLOATS)
        centered = X.astype(np.float64) - self.mean_.astype(np.float64)
        precision = self.get_precision().astype(np.float64)
        sign, logdet = np.linalg.slogdet(precision)
        logdet = logdet if sign > 0 else -np.inf
        log_like = -0.5 * np.sum(centered * (centered @ precision), axis=1)
        log_like -= 0.5 * (X.shape[1] * np.log(2.0 * np.pi) - logdet)
        return log_like.astype(X.dtype if X.dtype == np.float32 else np.float64, copy=False)

    def score(self, X, y=None):
        """The mean log-likelihood of the samples of ``X`` (``cross_val_score`` uses it)."""
        return float(np.mean(self.score_samples(X)))

    def _model(self):
        """The components (scaled by the explained variance's root when whitening, as
        scikit-learn does) and the variance each explains above the noise (none below it)."""
        components = self.components_.astype(np.float64)
        variance = self.explained_variance_.astype(np.float64)
        if self.whiten:
            components = components * np.sqrt(variance[:, None])
        return components, np.where(variance > self.noise_variance_, variance - self.noise_variance_, 0.0)

    def _unstandardized(self, matrix, power):
        """``matrix`` of the standardized data as one of the data: ``D^p M D^p`` with ``D`` the
        scales (``power`` 1 for a covariance, -1 for a precision)."""
        if self.scale_ is not None:
            d = self.scale_.astype(np.float64) ** power
            matrix = d[:, None] * matrix * d[None, :]
        return matrix.astype(self.components_.dtype, copy=False)

    @property
    def _n_features_out(self):
        """The output columns (``get_feature_names_out`` names them ``pca0``, ``pca1``, ...)."""
        return self.n_components_


#: The values of ``svd_solver``: scikit-learn's, and outcore's name for its exact solver.
_SOLVERS = {"auto", "full", "covariance_eigh", "arpack", "randomized", "tsqr"}


def _infer_dimension(spectrum, n_samples):
    """Minka's choice of dimension ("Automatic choice of dimensionality for PCA", NIPS 2000):
    the rank in ``1..n-1`` of the highest Laplace-approximated evidence, as scikit-learn's
    ``_infer_dimension``, the sum over pairs done by numpy per rank."""
    spectrum = np.asarray(spectrum, dtype=np.float64)
    n = len(spectrum)
    best, best_ll = 0, -np.inf
    for rank in range(1, n):
        ll = _assess_dimension(spectrum, rank, n_samples)
        if ll > best_ll:
            best, best_ll = rank, ll
    return best


def _assess_dimension(spectrum, rank, n_samples):
    """The log-likelihood of ``rank`` given the variances ``spectrum`` of ``n_samples`` samples."""
    n = len(spectrum)
    eps = 1e-15
    if spectrum[rank - 1] < eps:
        return -np.inf
    i = np.arange(1, rank + 1)
    pu = -rank * math.log(2.0) + sum(math.lgamma((n - k + 1) / 2.0) for k in i) - math.log(math.pi) * np.sum(n - i + 1) / 2.0
    pl = -np.sum(np.log(spectrum[:rank])) * n_samples / 2.0
    v = max(eps, np.sum(spectrum[rank:]) / (n - rank))
    pv = -math.log(v) * n_samples * (n - rank) / 2.0
    m = n * rank - rank * (rank + 1.0) / 2.0
    pp = math.log(2.0 * math.pi) * (m + rank) / 2.0
    # Pairs i < j, i < rank: log((s_i - s_j) (1 / s'_j - 1 / s'_i)) + log(n_samples), with s' the
    # spectrum whose tail beyond the rank is replaced by its mean v.
    flat = spectrum.copy()
    flat[rank:] = v
    later = np.arange(n)[None, :] > np.arange(rank)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.log((spectrum[:rank, None] - spectrum[None, :]) * (1.0 / flat[None, :] - 1.0 / flat[:rank, None]))
    pa = np.sum(terms[later]) + np.count_nonzero(later) * math.log(n_samples)
    return pu + pl + pv + pp - pa / 2.0 - rank * math.log(n_samples) / 2.0
