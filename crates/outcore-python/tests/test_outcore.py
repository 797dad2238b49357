"""outcore's Python package against numpy and scikit-learn: every input kind, f32 and f64,
shapes that do not divide the chunks, PCA's attributes, errors, the GIL and Ctrl-C.

Needs: pip install ./crates/outcore-python pytest scikit-learn "zarr>=3" "dask[array]" xarray
"""

import os
import signal
import subprocess
import sys
import threading
import time

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from sklearn.base import clone
from sklearn.decomposition import PCA as SkPCA
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.extmath import randomized_svd as sk_randomized_svd

import outcore

EPS = np.finfo(np.float64).eps


def tol(shape, norm, dtype=np.float64):
    """eps * sqrt(max(m, n)) * norm, with a constant for the algorithm."""
    eps = np.finfo(dtype).eps
    return 64 * eps * np.sqrt(max(shape)) * norm


def data(m, n, seed=0, offset=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, n)) * (1 + np.arange(n) % 7)
    return x + 100 * (np.arange(n) % 5 - 2) if offset else x


def check_svd(x, U, s, Vt, dtype=np.float64):
    ref = np.linalg.svd(x.astype(np.float64), compute_uv=False)
    t = tol(x.shape, ref[0], dtype)
    assert s.dtype == dtype and np.abs(s - ref).max() <= t
    assert U.dtype == dtype and Vt.dtype == dtype
    assert np.abs((U * s) @ Vt - x).max() <= t
    k = len(s)
    assert np.abs(Vt @ Vt.T - np.eye(k)).max() <= tol(x.shape, 1.0, dtype)
    # Deterministic signs: the entry of largest magnitude in each row of Vt is positive.
    assert (Vt[np.arange(k), np.abs(Vt).argmax(axis=1)] > 0).all()


# -- svd on every input kind ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1003, 7), (7, 1003), (250, 250), (513, 1)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_svd_of_numpy_arrays(shape, order):
    x = np.asarray(data(*shape), order=order)
    check_svd(x, *outcore.svd(x))
    assert np.allclose(outcore.svd(x, compute_uv=False), np.linalg.svd(x, compute_uv=False), rtol=0, atol=tol(shape, 1e4))


def test_svd_keeps_float32():
    x = data(2001, 13).astype(np.float32)
    check_svd(x, *outcore.svd(x), dtype=np.float32)


def test_svd_of_strided_views_and_memmaps(tmp_path):
    x = data(3001, 11)
    check_svd(x[::3, ::-1], *outcore.svd(x[::3, ::-1]))
    path = tmp_path / "x.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    check_svd(x, *outcore.svd(mm))
    check_svd(x, *outcore.svd(str(path)))


def zarr_array(tmp_path, x, chunks, name="x.zarr", **kw):
    z = zarr.create_array(str(tmp_path / name), shape=x.shape, chunks=chunks, dtype=x.dtype, **kw)
    z[...] = x
    return z


def test_svd_of_zarr_arrays(tmp_path):
    x = data(2503, 9)
    z = zarr_array(tmp_path, x, (400, 9))
    check_svd(x, *outcore.svd(z))  # a local zarr.Array: read by outcore from its directory
    check_svd(x, *outcore.svd(tmp_path / "x.zarr"))
    mem = zarr.create_array(zarr.storage.MemoryStore(), shape=x.shape, chunks=(300, 4), dtype=x.dtype)
    mem[...] = x
    check_svd(x, *outcore.svd(mem))  # in memory: read through zarr-python, block by block


def test_svd_of_dask_and_xarray(tmp_path):
    x = data(1999, 12)
    d = da.from_array(x, chunks=(333, 5))  # chunked in both dimensions
    check_svd(x, *outcore.svd(d))
    check_svd(x, *outcore.svd(xr.DataArray(d, dims=("time", "space"))))
    check_svd(x, *outcore.svd(xr.DataArray(x, dims=("time", "space"))))


def test_u_to_zarr(tmp_path):
    x = data(4001, 6)
    U, s, Vt = outcore.svd(x, u_out=tmp_path / "u.zarr")
    assert U == str(tmp_path / "u.zarr")
    check_svd(x, np.asarray(zarr.open_array(U, mode="r")), s, Vt)


# -- randomized_svd ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(701, 403), (403, 701), (60, 35)])
def test_randomized_svd_of_a_low_rank_matrix_is_exact(shape):
    rng = np.random.default_rng(1)
    m, n = shape
    x = rng.standard_normal((m, 8)) @ rng.standard_normal((8, n))
    U, s, Vt, err = outcore.randomized_svd(x, 8, random_state=3, return_error=True)
    ref = np.linalg.svd(x, compute_uv=False)
    t = tol(shape, ref[0])
    assert np.abs(s - ref[:8]).max() <= t
    assert np.abs((U * s) @ Vt - x).max() <= t
    assert err["frobenius"] <= t and err["probes"] == 10


def test_the_error_estimate_brackets_the_true_error_relative_to_sigma_1():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((600, 6)) @ rng.standard_normal((6, 300)) + 1e-3 * rng.standard_normal((600, 300))
    U, s, Vt, err = outcore.randomized_svd(x, 4, random_state=5, return_error=True)
    true = np.linalg.norm(x - (U * s) @ Vt, 2)
    assert err["spectral_lower_bound"] <= true * (1 + 1e-9) <= err["spectral_bound"] * (1 + 1e-9)
    assert err["relative_spectral_bound"] == pytest.approx(err["spectral_bound"] / s[0], rel=1e-12)
    assert err["relative_frobenius"] == pytest.approx(err["frobenius"] / s[0], rel=1e-12)


def test_randomized_u_to_zarr(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3001, 5)) @ rng.standard_normal((5, 200))
    U, s, Vt = outcore.randomized_svd(x, 5, random_state=1, u_out=tmp_path / "u.zarr")
    assert U == str(tmp_path / "u.zarr")
    U = np.asarray(zarr.open_array(U, mode="r"))
    assert U.shape == (3001, 5)
    assert np.abs((U * s) @ Vt - x).max() <= tol(x.shape, s[0])


def test_randomized_svd_agrees_with_scikit_learn():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((900, 300)) * np.exp(-np.arange(300) / 20)
    U, s, Vt = outcore.randomized_svd(x, 10, random_state=0)
    _, s_sk, _ = sk_randomized_svd(x, 10, random_state=0)
    ref = np.linalg.svd(x, compute_uv=False)[:10]
    # outcore's block Krylov default is at least as close to the truth as scikit-learn's.
    assert np.abs(s - ref).max() <= max(np.abs(s_sk - ref).max(), tol(x.shape, ref[0]))
    assert outcore.randomized_svd(x.astype(np.float32), 4, random_state=0)[1].dtype == np.float32
    # The same seed gives the same bits; k + oversampling capped at min(m, n).
    again = outcore.randomized_svd(x, 10, random_state=0)
    assert all(np.array_equal(a, b) for a, b in zip((U, s, Vt), again))
    assert outcore.randomized_svd(x[:12], 10, n_oversamples=10, random_state=0)[1].shape == (10,)


# -- PCA --------------------------------------------------------------------------------------


def assert_same_pca(ours, ref, rtol=1e-10):
    k = ref.n_components_
    assert ours.n_components_ == k
    # Relative to the largest: a rank-deficient centered matrix's last values are rounding.
    top = ref.explained_variance_[0]
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=rtol, atol=1e-13 * top)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=rtol, atol=1e-13)
    np.testing.assert_allclose(ours.singular_values_, ref.singular_values_, rtol=rtol, atol=1e-7 * ref.singular_values_[0])
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.noise_variance_, ref.noise_variance_, rtol=1e-8, atol=1e-13 * top)
    # The same components with the same signs (both flip on V: the entry of largest magnitude
    # in each component is positive); components of zero variance are arbitrary.
    live = ref.explained_variance_ > 1e-10 * top
    np.testing.assert_allclose(ours.components_[live], ref.components_[live], atol=1e-7)
    rows = np.arange(len(ours.components_))
    assert (ours.components_[rows, np.abs(ours.components_).argmax(axis=1)] > 0).all()


@pytest.mark.parametrize("shape", [(3001, 17), (301, 40), (40, 301)])
@pytest.mark.parametrize("k", [1, 5, None])
def test_pca_matches_scikit_learn(shape, k):
    x = data(*shape)
    ours = outcore.PCA(k).fit(x)
    ref = SkPCA(k, svd_solver="full").fit(x)
    assert_same_pca(ours, ref)
    signs = np.sign(np.sum(ours.components_ * ref.components_, axis=1))
    scale = np.abs(ref.transform(x)).max()
    np.testing.assert_allclose(ours.transform(x) * signs, ref.transform(x), atol=1e-9 * scale)
    np.testing.assert_allclose(ours.fit_transform(x) * signs, ref.fit_transform(x), atol=1e-9 * scale)
    back = ours.inverse_transform(ours.transform(x))
    np.testing.assert_allclose(back, ref.inverse_transform(ref.transform(x)), atol=1e-9 * np.abs(x).max())


def test_pca_is_more_accurate_than_scikit_learns_covariance_route():
    # sklearn's "auto" picks covariance_eigh for this tall shape, which squares the condition.
    x = data(5003, 37)
    exact = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2 / (len(x) - 1)
    ours = outcore.PCA(5).fit(x).explained_variance_
    auto = SkPCA(5).fit(x).explained_variance_
    assert np.abs(ours - exact[:5]).max() <= np.abs(auto - exact[:5]).max() + 1e-14
    assert np.abs(ours - exact[:5]).max() <= 1e-12


def test_pca_options():
    x = data(2000, 12)
    assert_same_pca(outcore.PCA(0.9).fit(x), SkPCA(0.9, svd_solver="full").fit(x))
    w, ref = outcore.PCA(4, whiten=True).fit(x), SkPCA(4, whiten=True, svd_solver="full").fit(x)
    signs = np.sign(np.sum(w.components_ * ref.components_, axis=1))
    np.testing.assert_allclose(w.transform(x) * signs, ref.transform(x), atol=1e-9)
    np.testing.assert_allclose(w.inverse_transform(w.transform(x)), ref.inverse_transform(ref.transform(x)), atol=1e-8)
    # standardize: as StandardScaler (ddof 0 there; outcore divides by the ddof-1 deviation,
    # so the variances differ by n/(n-1) and the components are the same).
    x[:, 5] = 0.1  # constant, and not exact in binary: its centered rounding must not be scaled up
    st = outcore.PCA(4, standardize=True).fit(x)
    assert st.scale_[5] == 1.0
    ref = make_pipeline(StandardScaler(), SkPCA(4, svd_solver="full")).fit(x)[-1]
    np.testing.assert_allclose(st.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-10)
    signs = np.sign(np.sum(st.components_ * ref.components_, axis=1))
    np.testing.assert_allclose(st.components_ * signs[:, None], ref.components_, atol=1e-9)


@pytest.mark.parametrize("solver", ["full", "randomized"])
@pytest.mark.parametrize("whiten", [False, True])
def test_pca_covariance_precision_and_likelihood_match_scikit_learn(solver, whiten):
    rng = np.random.default_rng(7)
    # Low rank plus noise, of a shape the chunks do not divide, its rows not a multiple of 8.
    # 157 columns: the randomized solver's Krylov space (5 x 15 columns) spans less than half.
    x = rng.standard_normal((1003, 5)) @ rng.standard_normal((5, 157)) + 0.1 * rng.standard_normal((1003, 157)) + 3.0
    ours = outcore.PCA(5, whiten=whiten, svd_solver=solver, random_state=0).fit(x)
    assert (ours.error_estimate_ is not None) == (solver == "randomized")
    ref = SkPCA(5, whiten=whiten, svd_solver="full").fit(x)
    # Rounding, eps sqrt(m) relative (times the condition for an inverse), for both solvers:
    # the randomized one's 4 Krylov iterations find a rank-5 signal this far above the noise
    # to rounding.
    tol = 100 * np.finfo(float).eps * np.sqrt(len(x))
    cov, precision = ref.get_covariance(), ref.get_precision()
    cond = np.linalg.cond(cov)
    np.testing.assert_allclose(ours.get_covariance(), cov, atol=tol * np.linalg.norm(cov, 2))
    np.testing.assert_allclose(ours.get_precision(), precision, atol=tol * cond * np.linalg.norm(precision, 2))
    np.testing.assert_allclose(ours.get_precision() @ ours.get_covariance(), np.eye(157), atol=tol * cond)
    np.testing.assert_allclose(ours.score_samples(x[:50]), ref.score_samples(x[:50]), rtol=tol * cond)
    assert ours.score(x) == pytest.approx(ref.score(x), rel=tol * cond)
    # cross_val_score ranks models by it, as with scikit-learn's PCA.
    assert np.isfinite(cross_val_score(outcore.PCA(5), x, cv=3)).all()
    with pytest.raises(ValueError, match="157 features"):
        ours.score_samples(x[:, :5])


@pytest.mark.parametrize("shape, rank", [((2000, 10), 3), ((1003, 37), 5), ((500, 60), 20)])
def test_pca_chooses_the_dimension_by_minkas_mle_as_scikit_learn(shape, rank):
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((shape[0], rank)) @ rng.standard_normal((rank, shape[1])) + 0.3 * rng.standard_normal(shape)
    ours, ref = outcore.PCA("mle").fit(x), SkPCA("mle", svd_solver="full").fit(x)
    assert ours.n_components_ == ref.n_components_ == rank
    assert_same_pca(ours, ref)
    # scikit-learn's rules and words.
    with pytest.raises(ValueError, match="n_components='mle' cannot be a string with svd_solver='randomized'"):
        outcore.PCA("mle", svd_solver="randomized").fit(x)
    with pytest.raises(ValueError, match="n_components='mle' is only supported if n_samples >= n_features"):
        outcore.PCA("mle").fit(x[: shape[1] - 1])


def test_pca_takes_scikit_learns_copy_and_never_writes_to_x():
    x = data(300, 12)
    before = x.copy()
    for copy in (True, False):
        model = outcore.PCA(3, copy=copy)
        assert model.get_params()["copy"] is copy and clone(model).copy is copy
        model.fit_transform(x)
        np.testing.assert_array_equal(x, before)
    assert repr(outcore.PCA(3, copy=False)) == "PCA(copy=False, n_components=3)"


def test_standardized_pca_likelihood_is_of_the_data_not_of_its_scaled_copy():
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((801, 4)) @ rng.standard_normal((4, 9)) + 0.2 * rng.standard_normal((801, 9))) * np.arange(1, 10) + 5
    st = outcore.PCA(3, standardize=True).fit(x)
    z = (x - st.mean_) / st.scale_
    ref = SkPCA(3, svd_solver="full").fit(z)
    d = st.scale_
    np.testing.assert_allclose(st.get_covariance(), d[:, None] * ref.get_covariance() * d[None, :], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(st.get_precision() @ st.get_covariance(), np.eye(9), atol=1e-9)
    # The density of x is that of z times the Jacobian 1 / prod(scale).
    np.testing.assert_allclose(st.score_samples(x[:20]), ref.score_samples(z[:20]) - np.log(d).sum(), rtol=1e-9)


def test_randomized_pca_centers_without_an_extra_pass():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2000, 6)) @ rng.standard_normal((6, 600)) + 50.0
    ours = outcore.PCA(6, svd_solver="randomized", random_state=0).fit(x)
    assert_same_pca(ours, SkPCA(6, svd_solver="full").fit(x), rtol=1e-8)
    assert ours.error_estimate_["frobenius"] <= 1e-8 * np.linalg.norm(x - x.mean(0), 2)


@pytest.mark.parametrize("kind", ["numpy-f32", "npy", "zarr", "dask", "xarray"])
def test_pca_inputs(tmp_path, kind):
    x = data(3007, 10)
    source = {
        "numpy-f32": lambda: x.astype(np.float32),
        "npy": lambda: (np.save(tmp_path / "x.npy", x), str(tmp_path / "x.npy"))[1],
        "zarr": lambda: zarr_array(tmp_path, x, (500, 10), compressors=zarr.codecs.ZstdCodec()),
        "dask": lambda: da.from_array(x, chunks=(700, 3)),
        "xarray": lambda: xr.DataArray(da.from_array(x, chunks=(700, 10)), dims=("sample", "feature")),
    }[kind]()
    ours = outcore.PCA(3).fit(source)
    rtol = 1e-5 if kind == "numpy-f32" else 1e-10
    ref = SkPCA(3, svd_solver="full").fit(x.astype(np.float32).astype(np.float64) if kind == "numpy-f32" else x)
    if kind == "numpy-f32":  # float32 results: single precision against the same data in f64
        for name in ("explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_"):
            np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=rtol, atol=1e-4)
        np.testing.assert_allclose(ours.components_, ref.components_, atol=1e-4)
    else:
        assert_same_pca(ours, ref, rtol=rtol)
    assert ours.components_.dtype == (np.float32 if kind == "numpy-f32" else np.float64)
    assert ours.transform(source).shape == (3007, 3)


def test_a_raising_progress_callback_stops_the_run(tmp_path):
    x = da.random.random((2_000_000, 20), chunks=(10_000, 20))  # made block by block: slow enough
    calls = []

    def progress(done, total):
        calls.append(done)
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        outcore.svd(x, u_out=tmp_path / "u.zarr", n_jobs=1, progress=progress)
    assert len(calls) == 1 and os.listdir(tmp_path) == []


def test_pca_in_scikit_learn_pipelines():
    x = data(500, 8)
    pca = outcore.PCA(3, random_state=0)
    twin = clone(pca)
    assert twin.get_params() == pca.get_params() and twin is not pca
    pipe = make_pipeline(StandardScaler(), outcore.PCA(2)).fit(x)
    assert pipe.transform(x).shape == (500, 2)
    assert list(pipe.get_feature_names_out()) == ["pca0", "pca1"]


# -- errors -----------------------------------------------------------------------------------


def test_errors_are_python_exceptions(tmp_path):
    x = data(200, 5)
    with pytest.raises(ValueError, match="2-D"):
        outcore.svd(np.zeros((3, 4, 5)))
    with pytest.raises(TypeError, match="real numbers"):
        outcore.svd(np.zeros((30, 4), dtype=complex))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        outcore.svd(tmp_path / "missing.zarr")
    bad = x.copy()
    bad[17, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        outcore.svd(bad)
    with pytest.raises(ValueError, match="row 17, column 3"):
        outcore.PCA(2).fit(x).transform(bad)
    with pytest.raises(MemoryError, match="memory_limit"):
        outcore.svd(data(20000, 300), memory_limit="1MiB")
    with pytest.raises(ValueError, match="n_components"):
        outcore.randomized_svd(x, 6)
    with pytest.raises(ValueError, match="svd_solver"):
        outcore.PCA(2, svd_solver="lobpcg").fit(x)
    with pytest.raises(ValueError, match="strictly less than min"):
        outcore.PCA(5, svd_solver="arpack").fit(x)
    with pytest.raises(ValueError, match="standardize"):
        outcore.PCA(2, svd_solver="randomized", standardize=True).fit(data(300, 200))
    with pytest.raises(ValueError, match="power_iteration_normalizer"):
        outcore.randomized_svd(x, 2, power_iteration_normalizer="Cholesky")
    with pytest.raises(ValueError, match="not fitted"):
        outcore.PCA(2).transform(x)
    with pytest.raises(ValueError, match="features"):
        outcore.PCA(2).fit(x).transform(data(10, 4))
    with pytest.raises(ValueError, match="memory_limit"):
        outcore.svd(x, memory_limit=-5)


def test_a_failing_source_raises_its_own_exception():
    x = data(1000, 4)

    def gone_after_row_500(block, block_info=None):
        r0 = block_info[0]["array-location"][0][0]
        if r0 >= 500:
            raise KeyError(f"block at row {r0} is gone")
        return block

    d = da.from_array(x, chunks=(100, 4)).map_blocks(gone_after_row_500, dtype=x.dtype)
    with pytest.raises(KeyError, match="is gone"):
        outcore.svd(d)
    assert outcore.svd(d[:500], compute_uv=False).shape == (4,)


# -- runtime ----------------------------------------------------------------------------------


def test_the_gil_is_released_and_progress_is_reported():
    x = data(400_000, 50)
    ticks, calls = [], []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    start = time.perf_counter()
    outcore.svd(x, compute_uv=True, n_jobs=1, progress=lambda done, total: calls.append((done, total)))
    elapsed = time.perf_counter() - start
    stop.set()
    t.join()
    during = [b - a for a, b in zip(ticks, ticks[1:]) if start <= a <= start + elapsed]
    assert len(during) > 10, f"the other thread ran {len(during)} times in {elapsed:.2f} s"
    assert calls and calls[-1][0] == calls[-1][1], calls[-5:]
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))


CHILD_INTERRUPT = """
import sys, time, dask.array as da, outcore
x = da.random.random((4_000_000, 100), chunks=(10_000, 100))  # made block by block as read
started = []
def progress(done, total):
    if not started:
        started.append(time.perf_counter())
        print("ready", flush=True)
try:
    outcore.svd(x, u_out=sys.argv[1], n_jobs=1, progress=progress)
except KeyboardInterrupt:
    print(f"interrupted {time.perf_counter() - started[0]:.3f}", flush=True)
    sys.exit(3)
print("finished", flush=True)
"""


def test_ctrl_c_interrupts_and_leaves_nothing(tmp_path):
    out = tmp_path / "u.zarr"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_INTERRUPT, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "ready"
    sent = time.perf_counter()
    child.send_signal(signal.SIGINT)
    line = child.stdout.readline().strip()
    child.wait(timeout=60)
    assert line.startswith("interrupted"), line
    assert child.returncode == 3
    print(f"Ctrl-C: {line}; {time.perf_counter() - sent:.3f} s from the signal to the exit")
    assert time.perf_counter() - sent < 5
    assert not out.exists() and os.listdir(tmp_path) == [], os.listdir(tmp_path)


CHILD_PCA = """
import json, sys, time
import numpy as np, outcore
def peak():
    # VmHWM: this process's own high-water mark (ru_maxrss would carry the forking parent's).
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
np.zeros(1)
# The estimator, and scikit-learn it builds on (about 110 MiB), loaded before the base: what is
# measured is what the data costs.
PCA = outcore.PCA
base = peak()
start = time.perf_counter()
pca = PCA(10, memory_limit=sys.argv[2]).fit(sys.argv[1])
seconds = time.perf_counter() - start
np.save(sys.argv[3], pca.explained_variance_)
print(json.dumps({"base": base, "peak": peak(), "seconds": seconds, "outcore_peak": pca.memory_["peak_managed"]}))
"""

CHILD_SKLEARN = """
import sys, numpy as np, zarr
from sklearn.decomposition import PCA
x = np.asarray(zarr.open_array(sys.argv[1], mode="r"))
np.save(sys.argv[2], PCA(10, svd_solver="full").fit(x).explained_variance_)
"""


def test_pca_of_the_lesson_matrix_in_little_memory(tmp_path):
    """The lesson's 2,000,000 x 100 matrix as a zarr-python store (default codecs): PCA in a
    child process whose peak RSS grows by at most the limit plus 32 MiB over the interpreter's
    (with scikit-learn loaded), explained variance equal to scikit-learn's (exact solver, another process) to 1e-10."""
    import json

    path = tmp_path / "lesson.zarr"
    z = zarr.create_array(str(path), shape=(2_000_000, 100), chunks=(10_000, 100), dtype="f8")
    rng = np.random.default_rng(5)
    for r in range(0, 2_000_000, 200_000):
        z[r : r + 200_000] = rng.random((200_000, 100)) + np.arange(100)
    ours, ref = tmp_path / "ours.npy", tmp_path / "ref.npy"
    run = subprocess.run(
        [sys.executable, "-c", CHILD_PCA, str(path), "64MiB", str(ours)], capture_output=True, text=True, check=True
    )
    m = json.loads(run.stdout)
    growth = m["peak"] - m["base"]
    print(f"PCA 2,000,000 x 100: {m['seconds']:.2f} s, peak RSS {m['peak'] / 2**20:.1f} MiB, +{growth / 2**20:.1f} MiB over the interpreter")
    assert growth <= (64 + 32) * 2**20, m
    subprocess.run([sys.executable, "-c", CHILD_SKLEARN, str(path), str(ref)], check=True)
    np.testing.assert_allclose(np.load(ours), np.load(ref), rtol=1e-10)


@pytest.mark.parametrize("doc, heading", [("README.md", "## Python"), ("docs/python.md", "## Example")])
def test_the_documented_example_runs(tmp_path, monkeypatch, doc, heading):
    """The Python example of the README and of docs/python.md, as written, in an empty directory."""
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "..", doc)) as f:
        text = f.read()
    section = text[text.index(heading + "\n") :]
    start = section.index("```python") + len("```python")
    code = section[start : section.index("```", start)]
    monkeypatch.chdir(tmp_path)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "MiB" in run.stdout and (tmp_path / "lesson.zarr").is_dir()
