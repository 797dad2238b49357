"""outcore.dask against the single-process results: the same SVD and PCA, to rounding, from a
dask array's blocks factored where they lie, on Dask's threads and on a LocalCluster of two
worker processes."""

import dask.array as da
import distributed
import numpy as np
import pytest

import outcore
import outcore.dask


def _data(m=4003, n=23, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, n)) @ np.diag(0.8 ** np.arange(n)) @ rng.standard_normal((n, n)) + 30.0


def _tol(X):
    return 64 * np.finfo(np.float64).eps * np.sqrt(max(X.shape)) * np.linalg.norm(X, 2)


def _check(X, x):
    """outcore.dask's SVD and PCA of the dask array x against outcore's of the numpy X."""
    U, s, Vt = outcore.dask.svd(x)
    Ur, sr, Vtr = outcore.svd(X)
    np.testing.assert_allclose(s, sr, rtol=0, atol=_tol(X))
    np.testing.assert_allclose(Vt[:5], Vtr[:5], rtol=0, atol=_tol(X) / (sr[4] - sr[5]) * 10)
    U = U.compute()
    np.testing.assert_allclose((U * s) @ Vt, X, rtol=0, atol=_tol(X))
    pca = outcore.dask.PCA(5).fit(x)
    ref = outcore.PCA(5, svd_solver="full").fit(X)
    np.testing.assert_allclose(pca.explained_variance_, ref.explained_variance_, rtol=1e-12)
    np.testing.assert_allclose(pca.mean_, ref.mean_, rtol=1e-13)
    np.testing.assert_allclose(np.abs(pca.components_), np.abs(ref.components_), atol=1e-10)
    scores = pca.transform(x)
    assert isinstance(scores, da.Array) and scores.chunks[0] == x.chunks[0]
    np.testing.assert_allclose(np.abs(scores.compute()), np.abs(ref.transform(X)), atol=1e-9 * np.abs(ref.transform(X)).max())


def test_on_dasks_threads_the_same_results_as_one_process():
    X = _data()
    _check(X, da.from_array(X, chunks=(700, 23)))


def test_on_a_local_cluster_of_two_workers_the_same_results():
    X = _data(seed=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            _check(X, da.from_array(X, chunks=(500, 23)))


def test_column_chunks_are_rechunked_with_a_warning_or_refused_with_the_fix():
    X = _data(1001, 9, seed=2)
    with pytest.warns(UserWarning, match="rechunked to full-width row blocks"):
        s = outcore.dask.svd(da.from_array(X, chunks=(300, 4)), compute_uv=False)
    np.testing.assert_allclose(s, outcore.svd(X, compute_uv=False), rtol=0, atol=_tol(X))
    huge = da.zeros((200_000, 1000), chunks=(200_000, 100))
    with pytest.raises(ValueError, match=r"rechunk it by rows first, e.g. x.rechunk\(\{0: "):
        outcore.dask.svd(huge)
    with pytest.raises(TypeError, match="2-D dask array"):
        outcore.dask.svd(X)
    with pytest.raises(ValueError, match="wide"):
        outcore.dask.svd(da.from_array(X.T, chunks=(9, 1001)))
