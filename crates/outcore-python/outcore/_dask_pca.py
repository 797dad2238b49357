"""``outcore.dask.PCA``: the exact PCA of a dask array on its cluster (see ``outcore.dask``)."""

import numpy as np

from ._pca import PCA as _Base
from .dask import _rows, _times, fit_state


class PCA(_Base):
    """``outcore.PCA`` whose ``fit`` takes a dask array and runs on its cluster: the exact
    PCA of every row, from states of the row blocks merged in a tree; ``transform`` and
    ``fit_transform`` return dask arrays, computed block by block where the blocks live.
    ``standardize`` and ``svd_solver`` other than the exact ones are refused."""

    def fit(self, X, y=None):
        X = _rows(X)
        if self.standardize:
            raise ValueError("outcore.dask.PCA centers only; standardize=True needs outcore.PCA")
        if self.svd_solver == "randomized":
            raise ValueError("outcore.dask.PCA is exact (TSQR); use svd_solver='auto', 'full' or 'tsqr'")
        self.n_features_in_ = X.shape[1]
        self.state_ = fit_state(X, memory_limit=self.memory_limit).compute()
        self._fit_svd_solver = "full"
        self._from_state(np.float32 if X.dtype == np.float32 else np.float64)
        self.n_samples_ = self.state_.rows
        return self

    def transform(self, X):
        X = _rows(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but PCA is expecting {self.n_features_in_} features as input.")
        components = self.components_.astype(np.float64).T
        if self.whiten:
            components = components / np.maximum(np.sqrt(self.explained_variance_.astype(np.float64)), np.finfo(np.float64).eps)
        k = components.shape[1]
        return X.map_blocks(
            _times, components, self.mean_.astype(np.float64), dtype=self.components_.dtype, chunks=(X.chunks[0], (k,))
        )

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def partial_fit(self, X, y=None):
        raise NotImplementedError("outcore.dask.PCA fits a whole dask array; grow a fit with outcore.PCA.partial_fit")
