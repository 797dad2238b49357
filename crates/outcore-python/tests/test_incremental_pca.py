"""outcore.IncrementalPCA and outcore.FactorState: any sequence of partial_fit calls is the PCA
of all the rows to rounding, the state survives pickling and files, and damage is refused."""

import pickle

import numpy as np
import pytest
import zarr
from sklearn.decomposition import PCA as SkPCA
from sklearn.decomposition import IncrementalPCA as SkIncrementalPCA

import outcore


def _data(m=1003, n=17, seed=0):
    rng = np.random.default_rng(seed)
    # Columns far from zero, a decaying spectrum.
    return rng.standard_normal((m, n)) @ np.diag(0.7 ** np.arange(n)) @ rng.standard_normal((n, n)) + 100.0


def _rel(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max()


def _difference(model, ref):
    """The largest relative difference of the fitted attributes from scikit-learn's exact PCA
    (components up to sign)."""
    return max(
        _rel(model.explained_variance_, ref.explained_variance_),
        _rel(model.explained_variance_ratio_, ref.explained_variance_ratio_),
        _rel(model.singular_values_, ref.singular_values_),
        _rel(np.abs(model.components_), np.abs(ref.components_)),
        _rel(model.mean_, ref.mean_),
        _rel(model.noise_variance_, ref.noise_variance_),
    )


@pytest.mark.parametrize("sizes", [[1003], [100] * 10 + [3], [17, 1, 2, 500, 483], [600] + [1] * 403])
def test_any_sequence_of_batches_is_the_pca_of_all_rows(sizes):
    X = _data()
    model = outcore.IncrementalPCA(6)
    start = 0
    for size in sizes:
        model.partial_fit(X[start : start + size])
        start += size
    assert start == len(X) and model.n_samples_seen_ == len(X)
    ref = SkPCA(6, svd_solver="full").fit(X)
    assert _difference(model, ref) <= 1e-10
    np.testing.assert_allclose(model.var_, X.var(axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.abs(model.transform(X)), np.abs(ref.transform(X)), atol=1e-9 * np.abs(ref.transform(X)).max())
    # fit reads X in one pass, whatever batch_size: the same model to rounding.
    whole = outcore.IncrementalPCA(6, batch_size=50).fit(X)
    assert whole.batch_size_ == 50 and _difference(whole, ref) <= 1e-10


def test_scikit_learns_incremental_pca_differs_by_more():
    X = _data(seed=3)
    ref = SkPCA(6, svd_solver="full").fit(X)
    ours = outcore.IncrementalPCA(6, batch_size=100).fit(X)
    theirs = SkIncrementalPCA(6, batch_size=100).fit(X)
    assert _difference(ours, ref) <= 1e-10 < 1e-3 < _difference(theirs, ref)


def test_batches_from_stores_and_memory_mix(tmp_path):
    X = _data(2000, 9, seed=5)
    store = zarr.open_array(tmp_path / "x.zarr", mode="w", shape=(1500, 9), chunks=(256, 9), dtype="f8")
    store[:] = X[:1500]
    model = outcore.IncrementalPCA(4, memory_limit="16MiB").partial_fit(store).partial_fit(X[1500:])
    assert _difference(model, SkPCA(4, svd_solver="full").fit(X)) <= 1e-10


def test_the_state_pickles_saves_and_refuses_damage(tmp_path):
    X = _data(500, 8, seed=7)
    model = outcore.IncrementalPCA(3).partial_fit(X[:300])
    again = pickle.loads(pickle.dumps(model))
    model.partial_fit(X[300:])
    again.partial_fit(X[300:])
    np.testing.assert_array_equal(again.components_, model.components_)  # the same bits
    state = model.state_
    assert (state.rows, state.cols) == (500, 8)
    state.save(tmp_path / "fit.state")
    loaded = outcore.FactorState.load(tmp_path / "fit.state")
    assert loaded.to_bytes() == state.to_bytes()
    np.testing.assert_array_equal(loaded.svd(True)["s"], state.svd(True)["s"])
    damaged = bytearray(state.to_bytes())
    damaged[60] ^= 4
    with pytest.raises(ValueError, match="checksum does not match"):
        outcore.FactorState.from_bytes(bytes(damaged))
    (tmp_path / "short.state").write_bytes(state.to_bytes()[:-10])
    with pytest.raises(ValueError, match="short.state is not a usable outcore state"):
        outcore.FactorState.load(tmp_path / "short.state")
    with pytest.raises(ValueError, match="9 columns and the state 8"):
        state.update(np.ones((4, 9)), memory_limit=1 << 26, workers=None, progress=None)
    assert state.rows == 500  # unchanged by the refused update


def test_two_states_merge_into_the_fit_of_both():
    X = _data(800, 6, seed=9)
    a, b = outcore.FactorState(6), outcore.FactorState(6)
    settings = dict(memory_limit=1 << 26, workers=None, progress=None)
    a.update(X[:350], **settings)
    b.update(X[350:], **settings)
    a.merge(b)
    ref = SkPCA(6, svd_solver="full").fit(X)
    np.testing.assert_allclose(a.svd(True)["s"], ref.singular_values_, rtol=1e-12)
    np.testing.assert_allclose(a.svd(True)["total_variance"], ref.explained_variance_.sum(), rtol=1e-12)


def test_a_first_batch_of_one_row_is_kept_until_there_are_two():
    X = _data(50, 4, seed=2)
    model = outcore.IncrementalPCA(1)
    with pytest.raises(ValueError, match="seen 1 sample"):
        model.partial_fit(X[:1])
    model.partial_fit(X[1:])
    assert model.n_samples_seen_ == 50
    assert _difference(model, SkPCA(1, svd_solver="full").fit(X)) <= 1e-10


def test_pca_grows_by_partial_fit_too_and_fit_starts_afresh():
    X = _data(900, 12, seed=11)
    model = outcore.PCA(0.95)
    for start in range(0, 900, 250):
        model.partial_fit(X[start : start + 250])
    ref = SkPCA(0.95, svd_solver="full").fit(X)
    assert model.n_components_ == ref.n_components_ and model.n_samples_ == 900
    assert _difference(model, ref) <= 1e-10
    with pytest.raises(ValueError, match="standardize=True needs every row"):
        outcore.PCA(2, standardize=True).partial_fit(X)
    model.fit(X[:300])
    assert not hasattr(model, "state_") and model.n_samples_ == 300
    assert _difference(model.partial_fit(X[300:]), ref) > 0  # a new state: 600 rows
    assert model.n_samples_ == 600
