"""outcore's QR, least squares and linear models against numpy, scikit-learn and the textbook
formulas: tall, rank-deficient and wide matrices, 1-D and 2-D targets, every input kind.

Needs: pip install ./crates/outcore-python pytest scikit-learn (and its scipy) "zarr>=3" "dask[array]" xarray
"""

import dask.array as da
import numpy as np
import pytest
import scipy.linalg
import xarray as xr
import zarr
from sklearn.base import clone, is_regressor
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import Ridge as SkRidge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import outcore


def tol(shape, norm, dtype=np.float64):
    """eps * sqrt(max(m, n)) * norm, with a constant for the algorithm."""
    return 64 * np.finfo(dtype).eps * np.sqrt(max(shape)) * norm


def regression(m, n, targets=None, seed=0):
    """Columns far from zero at different scales, targets linear in them plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, n)) * (1 + np.arange(n)) + 50 * (np.arange(n) % 3)
    w = rng.standard_normal((n, targets or 1))
    y = x @ w + 7 + 0.5 * rng.standard_normal((m, targets or 1))
    return x, (y[:, 0] if targets is None else y)


def signed_r(x):
    """numpy's R with a non-negative diagonal."""
    r = np.linalg.qr(x, mode="r")
    return r * np.where(np.diag(r) < 0, -1.0, 1.0)[:, None]


@pytest.mark.parametrize("shape", [(3001, 9), (40, 40), (41, 40), (700, 1)])
def test_qr_matches_numpy(shape):
    x, _ = regression(*shape)
    q, r = outcore.qr(x)
    cond = np.linalg.cond(x)
    assert q.shape == shape and r.shape == (shape[1], shape[1])
    assert np.abs(q @ r - x).max() <= tol(shape, np.abs(x).max() * shape[1])
    assert np.abs(q.T @ q - np.eye(shape[1])).max() <= tol(shape, 1.0)
    assert (np.diag(r) >= 0).all() and np.allclose(np.tril(r, -1), 0)
    assert np.abs(r - signed_r(x)).max() <= tol(shape, np.linalg.norm(x, 2)) * cond
    r_only = outcore.qr(x, mode="r")
    assert np.abs(r_only - r).max() <= tol(shape, np.linalg.norm(x, 2)) * cond


def test_qr_of_other_sources_and_to_zarr(tmp_path):
    x, _ = regression(1234, 5)
    zarr.create_array(tmp_path / "x.zarr", data=x, chunks=(100, 5))
    np.save(tmp_path / "x.npy", x)
    reference = outcore.qr(x, mode="r")
    for source in [str(tmp_path / "x.zarr"), str(tmp_path / "x.npy"), da.from_array(x, chunks=(300, 5)), xr.DataArray(x)]:
        assert np.abs(outcore.qr(source, mode="r") - reference).max() <= tol(x.shape, np.linalg.norm(x, 2))
    path, r = outcore.qr(x, q_out=tmp_path / "q.zarr")
    q = zarr.open_array(path)[:]
    assert np.abs(q @ r - x).max() <= tol(x.shape, np.abs(x).max() * 5)
    q32, r32 = outcore.qr(x.astype(np.float32))
    assert q32.dtype == np.float32 and r32.dtype == np.float32


def test_qr_refuses_what_it_does_not_offer():
    x, _ = regression(100, 4)
    with pytest.raises(ValueError, match="qr_multiply"):
        outcore.qr(x, mode="raw")
    with pytest.raises(ValueError, match="wide.*lq"):
        outcore.qr(x.T)
    # A complete Q is m x m: 20,000 rows make 3 GiB, over a 64 MiB limit.
    with pytest.raises(ValueError, match="20000 x 20000.*reduced"):
        outcore.qr(np.ones((20_000, 3)), mode="complete", memory_limit="64MiB")


@pytest.mark.parametrize("shape", [(7, 1203), (40, 40)])
def test_lq_factors_a_wide_matrix_through_its_transpose(shape, tmp_path):
    x, _ = regression(*shape[::-1])
    x = np.ascontiguousarray(x.T)
    m, n = shape
    l, q = outcore.lq(x)
    assert l.shape == (m, m) and q.shape == (m, n)
    assert np.allclose(np.triu(l, 1), 0) and (np.diag(l) >= 0).all()
    assert np.abs(l @ q - x).max() <= tol(shape, np.abs(x).max() * m)
    assert np.abs(q @ q.T - np.eye(m)).max() <= tol(shape, 1.0)
    # numpy's R of x.T, signs fixed, is L.T.
    assert np.abs(l.T - signed_r(x.T)).max() <= tol(shape, np.linalg.norm(x, 2)) * np.linalg.cond(x)
    assert np.abs(outcore.lq(x, mode="l") - l).max() <= tol(shape, np.linalg.norm(x, 2)) * np.linalg.cond(x)
    _, path = outcore.lq(zarr.create_array(tmp_path / "x.zarr", data=x, chunks=(m, 100)), q_out=tmp_path / "qt.zarr")
    assert np.abs(zarr.open_array(path)[:] - q.T).max() <= tol(shape, 1.0)
    with pytest.raises(ValueError, match="qr"):
        outcore.lq(np.ones((5, 2)))


def test_qr_complete_extends_q_to_an_orthogonal_basis():
    x, _ = regression(300, 7)
    q, r = outcore.qr(x, mode="complete")
    q_reduced, r_reduced = outcore.qr(x)
    assert q.shape == (300, 300) and r.shape == (300, 7)
    assert np.array_equal(q[:, :7], q_reduced) and np.array_equal(r[:7], r_reduced) and not r[7:].any()
    assert np.abs(q.T @ q - np.eye(300)).max() <= tol(q.shape, 1.0)
    assert np.abs(q @ r - x).max() <= tol(x.shape, np.abs(x).max() * 7)


@pytest.mark.parametrize("shape", [(3001, 9), (12, 12), (700, 1)])
def test_qr_multiply_applies_q_without_forming_it(shape, tmp_path):
    x, _ = regression(*shape)
    m, n = shape
    q, r = outcore.qr(x)
    rng = np.random.default_rng(4)
    c_right, c_left = rng.standard_normal((3, m)), rng.standard_normal((n, 2))
    cq, r_right = outcore.qr_multiply(x, c_right)
    assert cq.shape == (3, n) and np.allclose(r_right, r, rtol=1e-10, atol=tol(shape, np.abs(r).max()))
    assert np.abs(cq - c_right @ q).max() <= tol(shape, np.abs(c_right).sum(axis=1).max())
    # 1-D, as scipy's; c.T from a store or dask array, read beside a.
    v, _ = outcore.qr_multiply(x, c_right[0])
    assert v.shape == (n,) and np.allclose(v, cq[0], rtol=1e-12, atol=1e-12)
    zarr.create_array(tmp_path / "b.zarr", data=np.ascontiguousarray(c_right.T), chunks=(250, 3))
    stored = outcore.qr_multiply(x, da.from_zarr(str(tmp_path / "b.zarr")).T)[0]
    assert np.allclose(stored, cq, rtol=1e-10, atol=tol(shape, 1.0))
    with pytest.raises(ValueError, match="from_zarr"):
        outcore.qr_multiply(x, str(tmp_path / "b.zarr"))
    qc, _ = outcore.qr_multiply(x, c_left, mode="left")
    assert qc.shape == (m, 2) and np.abs(qc - q @ c_left).max() <= tol(shape, np.abs(c_left).sum(axis=0).max())
    path, _ = outcore.qr_multiply(x, c_left, mode="left", out=tmp_path / "qc.zarr")
    assert np.array_equal(zarr.open_array(path)[:], qc)
    # scipy's: the same product up to the signs of Q's columns, which scipy does not fix.
    cq_scipy, r_scipy = scipy.linalg.qr_multiply(x, c_right, mode="right")
    signs = np.sign(np.diag(r_scipy))
    assert np.allclose(cq_scipy * signs, cq, rtol=1e-8, atol=tol(shape, np.abs(c_right).sum(axis=1).max()) * 1e3)
    for bad, words in [((c_right, "left"), "row of c per column"), ((c_right[:, 1:], "right"), "column of c per row"), ((c_left, "middle"), "'left'")]:
        with pytest.raises(ValueError, match=words):
            outcore.qr_multiply(x, bad[0], mode=bad[1])


@pytest.mark.parametrize("shape", [(2001, 6), (50, 50), (7, 30)])
@pytest.mark.parametrize("targets", [None, 3])
def test_lstsq_matches_numpy(shape, targets):
    x, y = regression(*shape, targets=targets)
    if shape[0] > shape[1]:
        x[:, -1] = 2 * x[:, 0]  # rank-deficient: the minimum-norm solution
    ours = outcore.lstsq(x, y)
    ref = np.linalg.lstsq(x, y, rcond=None)
    assert ours[0].shape == ref[0].shape and ours[1].shape == ref[1].shape and ours[2] == ref[2]
    s = ref[3]
    kappa = s[0] / s[ref[2] - 1]
    scale = np.linalg.norm(ref[0]) + kappa * np.linalg.norm(y) / s[0]
    assert np.abs(ours[0] - ref[0]).max() <= tol(shape, kappa * scale)
    assert np.abs(ours[3] - s).max() <= tol(shape, s[0])


def test_lstsq_of_full_rank_reports_numpys_residuals_and_takes_any_source(tmp_path):
    x, y = regression(3000, 4, targets=2)
    ref = np.linalg.lstsq(x, y, rcond=None)
    zarr.create_array(tmp_path / "y.zarr", data=y, chunks=(700, 2))
    for b in [y, str(tmp_path / "y.zarr"), da.from_array(y, chunks=(500, 1)), zarr.open_array(tmp_path / "y.zarr")]:
        sol, residuals, rank, _ = outcore.lstsq(x, b)
        assert rank == 4 and np.allclose(residuals, ref[1], rtol=1e-10)
        assert np.abs(sol - ref[0]).max() <= 1e-10
    one = outcore.lstsq(x, y[:, 0])
    assert one[0].shape == (4,) and one[1].shape == (1,)
    assert outcore.lstsq(x, da.from_array(y[:, 0], chunks=300))[0].shape == (4,)
    q = np.linalg.qr(x)[0] * np.array([1.0, 1e-3, 1e-6, 1e-9])
    for rcond in [1e-10, 1e-7, 1e-4, 0.1, 0.0, -1.0, 2.0]:
        assert outcore.lstsq(q, y, rcond=rcond)[2] == np.linalg.lstsq(q, y, rcond=rcond)[2], rcond


def test_lstsq_refuses_bad_input():
    x, y = regression(100, 3)
    with pytest.raises(ValueError, match="99 rows"):
        outcore.lstsq(x, y[:99])
    with pytest.raises(ValueError, match="rcond"):
        outcore.lstsq(x, y, rcond=float("nan"))
    y = y.copy()
    y[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        outcore.lstsq(x, y)


@pytest.mark.parametrize("targets", [None, 2])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_linear_regression_matches_scikit_learn_and_the_textbook_errors(targets, fit_intercept):
    x, y = regression(5003, 5, targets=targets)
    ours = outcore.LinearRegression(fit_intercept=fit_intercept).fit(x, y)
    ref = SkLinearRegression(fit_intercept=fit_intercept).fit(x, y)
    assert ours.coef_.shape == ref.coef_.shape and np.shape(ours.intercept_) == np.shape(ref.intercept_)
    assert np.allclose(ours.coef_, ref.coef_, rtol=1e-10, atol=1e-10)
    assert np.allclose(ours.intercept_, ref.intercept_, rtol=1e-10, atol=1e-9)
    assert np.allclose(ours.predict(x), ref.predict(x), rtol=1e-10, atol=1e-8)
    assert abs(ours.score(x, y) - ref.score(x, y)) <= 1e-12
    assert ours.rank_ == 5 and ours.n_features_in_ == 5
    # statsmodels' bse: sqrt(sigma^2 diag((X^T X)^-1)) on [1 | X] with an intercept.
    design = np.hstack([np.ones((5003, 1)), x]) if fit_intercept else x
    inverse = np.linalg.inv(design.T @ design)
    y2 = y.reshape(5003, -1)
    residual = y2 - design @ np.linalg.lstsq(design, y2, rcond=None)[0]
    sigma2 = (residual**2).sum(axis=0) / (5003 - design.shape[1])
    se = np.sqrt(np.outer(sigma2, np.diag(inverse)))  # targets x columns
    slopes = se[:, 1:] if fit_intercept else se
    assert np.allclose(np.reshape(ours.stderr_, slopes.shape), slopes, rtol=1e-8)
    if fit_intercept:
        assert np.allclose(ours.intercept_stderr_, se[:, 0] if targets else se[0, 0], rtol=1e-8)
    else:
        assert ours.intercept_stderr_ is None
    assert ours.df_resid_ == 5003 - design.shape[1]
    # statsmodels' cov_params(), the slopes' block: sigma^2 (X^T X)^-1.
    k = 1 if fit_intercept else 0
    cov = sigma2[:, None, None] * inverse[None, k:, k:]
    assert np.allclose(np.reshape(ours.coef_cov_, cov.shape), cov, rtol=1e-8, atol=1e-12 * np.abs(cov).max())


@pytest.mark.parametrize("alpha", [0.1, 10.0, 1e4])
def test_ridge_matches_scikit_learn(alpha):
    x, y = regression(4001, 6, targets=2)
    ours = outcore.Ridge(alpha=alpha).fit(x, y)
    ref = SkRidge(alpha=alpha).fit(x, y)
    assert np.allclose(ours.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    assert np.allclose(ours.intercept_, ref.intercept_, rtol=1e-9)
    assert ours.stderr_ is None


def test_linear_models_behave_as_scikit_learn_estimators(tmp_path):
    x, y = regression(1000, 3)
    model = outcore.Ridge(alpha=2.0, fit_intercept=False)
    assert is_regressor(model) and clone(model).get_params() == model.get_params()
    assert repr(model) == "Ridge(alpha=2.0, fit_intercept=False)"
    pipe = make_pipeline(StandardScaler(), outcore.LinearRegression()).fit(x, y)
    ref = make_pipeline(StandardScaler(), SkLinearRegression()).fit(x, y)
    assert np.allclose(pipe.predict(x), ref.predict(x), rtol=1e-10)
    with pytest.raises(Exception, match="not fitted"):
        outcore.LinearRegression().predict(x)
    for bad, words in [(-np.ones(1000), "negative"), (np.ones(999), "one weight per row"), (np.full(1000, np.nan), "NaN")]:
        with pytest.raises(ValueError, match=words):
            outcore.LinearRegression().fit(x, y, sample_weight=bad)
    with pytest.raises(ValueError, match="alpha"):
        outcore.Ridge(alpha=-1.0).fit(x, y)
    np.save(tmp_path / "x.npy", x)
    fitted = outcore.LinearRegression().fit(str(tmp_path / "x.npy"), y)
    assert np.allclose(fitted.predict(str(tmp_path / "x.npy")), fitted.predict(x), rtol=1e-12)


@pytest.mark.parametrize("model", ["linear", "ridge"])
def test_sample_weight_matches_scikit_learn_and_weighted_least_squares(model, tmp_path):
    x, y = regression(3001, 5, targets=2)
    w = np.random.default_rng(3).uniform(0, 4, 3001)
    w[::17] = 0.0
    ours_cls, ref_cls = (outcore.LinearRegression, SkLinearRegression) if model == "linear" else (outcore.Ridge, SkRidge)
    ours = ours_cls().fit(x, y, sample_weight=w)
    ref = ref_cls().fit(x, y, sample_weight=w)
    assert np.allclose(ours.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    assert np.allclose(ours.intercept_, ref.intercept_, rtol=1e-9)
    assert np.isclose(ours.score(x, y, sample_weight=w), ref.score(x, y, sample_weight=w), rtol=1e-12)
    # The weights from a store, read beside X: the same fit.
    np.save(tmp_path / "w.npy", w)
    stored = ours_cls().fit(x, y, sample_weight=str(tmp_path / "w.npy"))
    assert np.allclose(stored.coef_, ours.coef_, rtol=1e-12)
    # A number weighs every row alike (for ridge, against the penalty).
    same = ref_cls().fit(x, y, sample_weight=np.full(3001, 2.0))
    assert np.allclose(ours_cls().fit(x, y, sample_weight=2.0).coef_, same.coef_, rtol=1e-9, atol=1e-12)
    if model == "linear":
        # statsmodels' WLS: sigma^2 (X^T W X)^-1 with sigma^2 the weighted rss over n - p - 1.
        design = np.hstack([np.ones((3001, 1)), x])
        cov = np.linalg.inv(design.T @ (w[:, None] * design))
        residual = y - design @ np.vstack([ref.intercept_, ref.coef_.T])
        sigma2 = (w[:, None] * residual**2).sum(axis=0) / (3001 - 6)
        se = np.sqrt(np.outer(sigma2, np.diag(cov)))
        assert np.allclose(ours.stderr_, se[:, 1:], rtol=1e-6)
        assert np.allclose(ours.intercept_stderr_, se[:, 0], rtol=1e-6)
        assert ours.df_resid_ == 3001 - 6
