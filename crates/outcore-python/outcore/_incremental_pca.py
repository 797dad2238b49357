"""``outcore.IncrementalPCA``: scikit-learn's IncrementalPCA, exact."""

import numbers

from ._base import checked_source
from ._pca import PCA


class IncrementalPCA(PCA):
    """Principal component analysis fitted batch by batch, with scikit-learn's interface, and
    exact: after any sequence of ``partial_fit`` calls it is ``PCA().fit`` of all the rows seen,
    to rounding (scikit-learn's is an approximation that depends on the batches).

    Each ``partial_fit`` makes one streamed pass over its batch (any source ``outcore.svd``
    accepts) and merges it into an ``n_features x n_features`` state (``state_``, an
    ``outcore.FactorState``: picklable, or saved with its ``save``); the rows seen before are
    not read again. ``fit`` reads ``X`` in one pass, whatever ``batch_size`` (kept as
    ``batch_size_``, as scikit-learn's: outcore streams by chunks, so it bounds no memory).
    ``memory_limit`` bounds outcore's own memory; ``n_jobs`` sets its threads.
    """

    def __init__(self, n_components=None, *, whiten=False, copy=True, batch_size=None, memory_limit=None, n_jobs=None):
        self.n_components = n_components
        self.whiten = whiten
        self.copy = copy
        self.batch_size = batch_size
        self.memory_limit = memory_limit
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        """Fits the model to ``X`` from scratch, in one pass; returns ``self``."""
        for attribute in ("components_", "state_", "n_samples_seen_"):
            self.__dict__.pop(attribute, None)
        src = checked_source(self, X, reset=True)
        if self.batch_size is not None and not (isinstance(self.batch_size, numbers.Integral) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be None or a positive integer, got {self.batch_size!r}")
        self.batch_size_ = 5 * src.shape[1] if self.batch_size is None else int(self.batch_size)
        return self._grow(src, first=True)

    def partial_fit(self, X, y=None, check_input=True):
        """Adds the rows of ``X`` to the fit (one pass over them); returns ``self``."""
        first = not hasattr(self, "state_")
        return self._grow(checked_source(self, X, reset=first), first=first)

    def fit_transform(self, X, y=None):
        """``fit(X)``, then the scores of ``X`` (a second pass)."""
        return self.fit(X).transform(X)

    def _grow(self, src, first):
        m, n = src.shape
        k = self.n_components
        if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1):
            raise ValueError(f"n_components must be None or an integer of 1 or more, got {k!r}")
        if k is not None and k > n:
            raise ValueError(
                f"n_components={k!r} invalid for n_features={n}, need more rows than columns for IncrementalPCA processing"
            )
        if k is not None and k > m and first:
            raise ValueError(
                f"n_components={k} must be less or equal to the batch number of samples {m} for the first partial_fit call."
            )
        wanted = (min(m, n) if first else self.n_components_) if k is None else k
        if not first and wanted != self.n_components_:
            raise ValueError(
                f"Number of input features has changed from {self.n_components_} to {wanted} between calls to "
                "partial_fit! Try setting n_components to a fixed value."
            )
        self._grow_state(src, first, None)
        self.n_samples_seen_ = self.state_.rows
        self.n_components_ = wanted
        self.var_ = self._from_state(src.out_dtype, wanted)["variance"].astype(src.out_dtype)
        return self
