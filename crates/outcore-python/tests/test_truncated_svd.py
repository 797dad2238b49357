"""outcore.TruncatedSVD against dense references: the exact top components of the uncentered
matrix, its explained variance without a pass of its own, from stores as from memory."""

import numpy as np
import pytest
import zarr

import outcore


def _data(m, n, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, n)) @ np.diag(0.8 ** np.arange(n)) @ rng.standard_normal((n, n)) + offset


def _reference(X, k):
    """The top k of X's SVD, signs as scikit-learn's svd_flip(u_based_decision=False), and the
    explained variance and ratio by their definitions."""
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    vt = vt[:k] * np.sign(vt[:k][np.arange(k), np.abs(vt[:k]).argmax(axis=1)])[:, None]
    variance = np.var(X @ vt.T, axis=0)
    return s[:k], vt, variance, variance / np.var(X, axis=0).sum()


def _tol(X, cond=1.0):
    return 64 * np.finfo(np.float64).eps * np.sqrt(max(X.shape)) * np.linalg.norm(X, 2) * cond


# Shapes no chunk divides, one pressing against min(m, n), wide and tall; columns far from zero.
# "randomized" runs outcore's randomized SVD on the last (its Krylov space spans less than half
# of min(m, n)), TSQR on the others.
@pytest.mark.parametrize("shape, k", [((1037, 23), 5), ((301, 40), 39), ((37, 211), 9), ((1501, 403), 5)])
@pytest.mark.parametrize("algorithm", ["arpack", "randomized"])
def test_the_top_components_and_their_variance_match_dense_references(shape, k, algorithm):
    X = _data(*shape, offset=50.0)
    if algorithm == "arpack" and k >= min(shape):
        k = min(shape) - 1
    s, vt, variance, ratio = _reference(X, k)
    model = outcore.TruncatedSVD(k, algorithm=algorithm, n_iter=8, random_state=0)
    scores = model.fit_transform(X)
    assert (model.error_estimate_ is not None) == (algorithm == "randomized" and shape == (1501, 403))
    # Singular values to eps * sqrt(max(m, n)) * ||X||; the vectors of the leading, well
    # separated ones (gap >= 20% of sigma_1 here) to the same over the gap.
    np.testing.assert_allclose(model.singular_values_, s, rtol=0, atol=_tol(X))
    lead = min(k, 3)
    np.testing.assert_allclose(model.components_[:lead], vt[:lead], rtol=0, atol=_tol(X) / (s[0] * 0.2) * 10)
    np.testing.assert_allclose(scores, X @ model.components_.T, rtol=0, atol=_tol(X))
    np.testing.assert_allclose(model.explained_variance_, np.var(scores, axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.explained_variance_ratio_, np.var(scores, axis=0) / np.var(X, axis=0).sum(), rtol=1e-12)
    # fit alone (no pass for the scores) gives the same variances: exact for "arpack", to the
    # factorization's accuracy (converged here) for "randomized".
    fitted = outcore.TruncatedSVD(k, algorithm=algorithm, n_iter=8, random_state=0).fit(X)
    np.testing.assert_allclose(fitted.explained_variance_, variance, rtol=1e-9, atol=_tol(X) * s[0] / X.shape[0])
    np.testing.assert_allclose(fitted.explained_variance_ratio_, ratio, rtol=1e-9, atol=1e-12)


def test_a_store_gives_what_memory_gives(tmp_path):
    X = _data(2003, 31, seed=3, offset=-7.0)
    store = zarr.open_array(tmp_path / "x.zarr", mode="w", shape=X.shape, chunks=(250, 31), dtype="f8")
    store[:] = X
    for algorithm in ("arpack", "randomized"):
        from_memory = outcore.TruncatedSVD(4, algorithm=algorithm, random_state=1).fit(X)
        from_store = outcore.TruncatedSVD(4, algorithm=algorithm, random_state=1, memory_limit="32MiB").fit(store)
        np.testing.assert_allclose(from_store.singular_values_, from_memory.singular_values_, rtol=1e-12)
        np.testing.assert_allclose(from_store.components_, from_memory.components_, atol=1e-10)
        np.testing.assert_allclose(from_store.explained_variance_ratio_, from_memory.explained_variance_ratio_, rtol=1e-10)
        np.testing.assert_allclose(from_store.transform(store), from_memory.transform(X), atol=_tol(X))


def test_float32_is_kept_and_bad_settings_are_refused():
    X = _data(120, 12, seed=5).astype(np.float32)
    model = outcore.TruncatedSVD(3).fit(X)
    assert model.components_.dtype == model.singular_values_.dtype == model.transform(X).dtype == np.float32
    assert model.get_feature_names_out().tolist() == ["truncatedsvd0", "truncatedsvd1", "truncatedsvd2"]
    with pytest.raises(ValueError, match="strictly less than min"):
        outcore.TruncatedSVD(12, algorithm="arpack").fit(X)
    with pytest.raises(ValueError, match=r"n_components\(13\) must be <= n_features\(12\)"):
        outcore.TruncatedSVD(13).fit(X)
    with pytest.raises(ValueError, match="algorithm must be"):
        outcore.TruncatedSVD(2, algorithm="lobpcg").fit(X)
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        outcore.TruncatedSVD(1).fit(X[:, :1])
