"""scipy.sparse input: read in place, multiplied by its nonzeros (the randomized SVD, PCA's
randomized route, transform) or read as dense panels (TSQR), against the same matrix dense;
bad arrays refused with the row named; a matrix far larger than RAM dense fitted in little
memory, measured in a child process."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import sparse

import outcore


def _sparse(m, n, density, seed=0, fmt="csr"):
    """A random sparse matrix whose columns have different scales and means, with row ``m // 2``
    and column ``n // 3`` empty; and the same matrix dense."""
    rng = np.random.default_rng(seed)
    X = sparse.random(m, n, density=density, format="lil", random_state=seed, dtype=np.float64)
    X = X.multiply(1.0 + 10.0 * rng.random(n)).tolil()
    X[m // 2, :] = 0.0
    X[:, n // 3] = 0.0
    X = X.asformat(fmt)
    return X, X.toarray()


def _aligned(a, b):
    """``a`` with each row's sign made that of ``b``'s (singular vectors are unique to a sign)."""
    return a * np.sign(np.sum(a * b, axis=1))[:, None]


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("shape", [(301, 47), (47, 301), (53, 53)])
def test_exact_pca_of_sparse_input_matches_the_dense_matrix(fmt, shape):
    X, D = _sparse(*shape, density=0.1, fmt=fmt)
    k = min(shape) - 1  # pressing against min(m, n)
    pca = outcore.PCA(k, svd_solver="arpack").fit(X)
    dense = outcore.PCA(k, svd_solver="arpack").fit(D)
    assert pca._fit_svd_solver == "arpack"
    scale = np.linalg.norm(D - D.mean(axis=0))
    tol = 64 * np.finfo(float).eps * np.sqrt(max(shape)) * scale
    np.testing.assert_allclose(pca.singular_values_, dense.singular_values_, rtol=0, atol=tol)
    np.testing.assert_allclose(pca.mean_, D.mean(axis=0), rtol=1e-13, atol=1e-13)
    # The components of well-separated values, and the scores through them.
    top = 5
    np.testing.assert_allclose(_aligned(pca.components_[:top], dense.components_[:top]), dense.components_[:top], atol=1e-8)
    scores, want = pca.transform(X)[:, :top], dense.transform(D)[:, :top]
    np.testing.assert_allclose(scores * np.sign(np.sum(scores * want, axis=0)), want, atol=1e-8 * scale)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_randomized_pca_of_sparse_input_is_exact_where_its_krylov_space_is_full(fmt):
    # 400 x 30: 2 iterations of 5 + 10 columns span all 30; the solver would take TSQR instead
    # (cheaper), so the check runs outcore.randomized_svd on the centered products itself.
    X, D = _sparse(400, 30, density=0.2, fmt=fmt)
    U, s, Vt, error = outcore.randomized_svd(X, 5, n_oversamples=10, n_iter=2, random_state=0, return_error=True)
    want = np.linalg.svd(D, compute_uv=False)
    np.testing.assert_allclose(s, want[:5], rtol=1e-12)
    # The residual's norm is the sixth value: the estimate brackets it.
    assert error["spectral_lower_bound"] <= want[5] * (1 + 1e-9) and want[5] <= error["spectral_bound"]
    # PCA's randomized route on a sparse matrix of rank 8 (centered, 9): exact at rank 10.
    rng = np.random.default_rng(3)
    basis = sparse.random(8, 2_000, density=0.05, random_state=4)
    weights = sparse.random(1_500, 8, density=0.4, random_state=5)
    X = (weights @ basis).asformat(fmt)
    D = X.toarray()
    pca = outcore.PCA(10, svd_solver="randomized", random_state=int(rng.integers(1000))).fit(X)
    assert pca._fit_svd_solver == "randomized" and pca.error_estimate_ is not None
    want = np.linalg.svd(D - D.mean(axis=0), compute_uv=False)[:10]
    scale = np.linalg.norm(want)
    np.testing.assert_allclose(pca.singular_values_, want, rtol=0, atol=1e-12 * scale)
    scores = pca.fit_transform(X)
    np.testing.assert_allclose(np.linalg.norm(scores, axis=0), want, rtol=0, atol=1e-12 * scale)


def test_truncated_svd_and_linear_regression_take_sparse_input():
    X, D = _sparse(500, 40, density=0.1, seed=5)
    for algorithm in ("arpack", "randomized"):
        svd = outcore.TruncatedSVD(4, algorithm=algorithm, n_iter=10, random_state=0).fit(X)
        np.testing.assert_allclose(svd.singular_values_, np.linalg.svd(D, compute_uv=False)[:4], rtol=1e-10)
        np.testing.assert_allclose(svd.transform(X), svd.transform(D), atol=1e-10)
    y = D @ np.arange(40.0) + 3.0
    model = outcore.LinearRegression().fit(X, y)
    np.testing.assert_allclose(model.coef_, np.arange(40.0) * (D.any(axis=0)), atol=1e-8)
    np.testing.assert_allclose(model.predict(X), y, atol=1e-8)


def test_incremental_pca_grows_exactly_on_sparse_batches():
    X, D = _sparse(600, 25, density=0.2, seed=7)
    ipca = outcore.IncrementalPCA(5)
    for rows in (slice(0, 250), slice(250, 251), slice(251, 600)):
        ipca.partial_fit(X[rows])
    dense = outcore.PCA(5, svd_solver="full").fit(D)
    np.testing.assert_allclose(ipca.singular_values_, dense.singular_values_, rtol=1e-12)
    assert ipca.n_samples_seen_ == 600


def test_float32_sparse_input_gives_float32_results():
    X, D = _sparse(200, 20, density=0.2, seed=2)
    pca = outcore.PCA(3).fit(X.astype(np.float32))
    assert pca.components_.dtype == np.float32 and pca.transform(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(pca.singular_values_, outcore.PCA(3).fit(D).singular_values_, rtol=1e-5)


def test_unsorted_and_repeated_indices_are_summed_in_a_copy():
    # Row 0: column 2 twice (1 + 2) and column 0 after it.
    X = sparse.csr_matrix((np.array([1.0, 2.0, 5.0, 4.0]), np.array([2, 2, 0, 1]), np.array([0, 3, 4])), shape=(2, 3))
    before = X.indices.copy()
    s = outcore.randomized_svd(X, 2, random_state=0)[1]
    np.testing.assert_allclose(s, np.linalg.svd(np.array([[5.0, 0, 3], [0, 4, 0]]), compute_uv=False), rtol=1e-12)
    np.testing.assert_array_equal(X.indices, before)  # the caller's matrix is untouched


def test_bad_sparse_arrays_are_refused_naming_the_row():
    def csr(data, indices, indptr, shape=(2, 3)):
        return sparse.csr_matrix((np.array(data), np.array(indices), np.array(indptr)), shape=shape)

    with pytest.raises(ValueError, match="row 1, column 2: the value is NaN"):
        outcore.randomized_svd(csr([1.0, np.nan], [0, 2], [0, 1, 2]), 1)
    with pytest.raises(ValueError, match="row 0, column 0: the value is inf"):
        outcore.PCA(1, svd_solver="arpack").fit(csr([np.inf, 1.0], [0, 2], [0, 1, 2]))
    # scipy checks little when it builds a matrix: indices past the columns reach outcore.
    bad = csr([1.0, 1.0], [0, 1], [0, 1, 2])
    bad.indices[1] = 7
    with pytest.raises(ValueError, match="row 1: column index 7 is out of range for 3 columns"):
        outcore.randomized_svd(bad, 1)
    with pytest.raises(TypeError, match="sparse matrix of complex128"):
        outcore.randomized_svd(csr([1j, 1.0], [0, 2], [0, 1, 2]), 1)


def test_a_sparse_matrix_larger_than_ram_dense_is_fitted_in_little_memory(tmp_path):
    """200,000 x 50,000 with 1,000,000 nonzeros: 80 GB dense, 12 MB sparse. PCA's randomized
    route (and transform) in a child process, whose peak RSS is measured."""
    code = """
import resource, numpy as np, scipy.sparse as sp, outcore
rng = np.random.default_rng(0)
rows, cols = rng.integers(0, 200_000, 1_000_000), rng.integers(0, 50_000, 1_000_000)
X = sp.csr_matrix((rng.standard_normal(1_000_000), (rows, cols)), shape=(200_000, 50_000))
pca = outcore.PCA(5, svd_solver="arpack", random_state=0).fit(X)
scores = pca.transform(X)
assert pca._fit_svd_solver == "arpack" and pca.error_estimate_ is not None and scores.shape == (200_000, 5)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    peak = int(result.stdout.split()[-1])
    assert peak < 1 << 30, f"peak RSS {peak / 2**20:.0f} MiB"
