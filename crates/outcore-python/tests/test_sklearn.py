"""outcore's estimators as scikit-learn's: its own estimator checks, set_output and feature
names, and an ``import outcore`` that does not load scikit-learn."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.utils.estimator_checks import parametrize_with_checks

import outcore


@parametrize_with_checks(
    [outcore.PCA(), outcore.IncrementalPCA(), outcore.TruncatedSVD(), outcore.LinearRegression(), outcore.Ridge()]
)
def test_scikit_learns_estimator_checks(estimator, check):
    check(estimator)


def _frame(rows=200, cols=6, seed=0):
    X = np.random.default_rng(seed).standard_normal((rows, cols))
    return pd.DataFrame(X, columns=[f"gene{i}" for i in range(cols)])


def test_pca_keeps_feature_names_and_returns_frames_on_request():
    df = _frame()
    pca = outcore.PCA(2).set_output(transform="pandas").fit(df)
    assert list(pca.feature_names_in_) == list(df.columns) and pca.n_features_in_ == 6
    scores = pca.transform(df)
    assert isinstance(scores, pd.DataFrame) and list(scores.columns) == ["pca0", "pca1"]
    np.testing.assert_allclose(scores.to_numpy(), outcore.PCA(2).fit(df.to_numpy()).transform(df.to_numpy()))
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(outcore.PCA(2).fit_transform(df.to_numpy()), pd.DataFrame)
    # Columns in another order are refused, as scikit-learn refuses them.
    with pytest.raises(ValueError, match="feature names"):
        pca.transform(df[df.columns[::-1]])


@pytest.mark.parametrize("estimator", [outcore.PCA(2), outcore.TruncatedSVD(2)], ids=["PCA", "TruncatedSVD"])
def test_polars_frames_in_and_out(estimator):
    import polars as pl

    df = pl.from_pandas(_frame())
    model = estimator.set_output(transform="polars").fit(df)
    assert list(model.feature_names_in_) == df.columns
    scores = model.transform(df)
    prefix = type(estimator).__name__.lower()
    assert isinstance(scores, pl.DataFrame) and scores.columns == [f"{prefix}0", f"{prefix}1"]
    np.testing.assert_allclose(scores.to_numpy(), model.set_output(transform="default").transform(df))


def test_a_model_fitted_on_a_store_checks_the_feature_count(tmp_path):
    X = np.random.default_rng(1).standard_normal((300, 5))
    path = tmp_path / "x.npy"
    np.save(path, X)
    pca = outcore.PCA(3).fit(path)
    assert pca.n_features_in_ == 5 and not hasattr(pca, "feature_names_in_")
    with pytest.raises(ValueError, match="X has 4 features, but PCA is expecting 5 features as input"):
        pca.transform(X[:, :4])


def test_regressors_keep_feature_names():
    df = _frame(cols=3)
    y = df["gene0"] * 2.0 + 1.0
    model = outcore.LinearRegression().fit(df, y)
    assert list(model.feature_names_in_) == list(df.columns)
    assert model.score(df, y) == pytest.approx(1.0)


def test_import_outcore_does_not_load_scikit_learn():
    # A child process: the test's own interpreter has scikit-learn loaded already.
    code = "import sys, outcore; outcore.svd; assert 'sklearn' not in sys.modules; outcore.PCA; assert 'sklearn' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


#: The fixtures scikit-learn's own conftest gives its tests.
_CONFTEST = """
import numpy as np
import pytest


@pytest.fixture
def global_random_seed():
    return 42


@pytest.fixture(params=[np.float32, np.float64])
def global_dtype(request):
    return request.param
"""


def _run_ported(tmp_path, source, replacements, select):
    """scikit-learn's test file ``source`` with each ``(original, replacement)`` made, run in a
    child pytest on the cases ``select`` picks: their summary line, once none failed."""
    tmp_path.mkdir(exist_ok=True)
    text = source.read_text()
    for original, replacement in replacements:
        assert original in text, f"{source} no longer reads as expected ({original!r}): port it again"
        text = text.replace(original, replacement, 1)
    (tmp_path / source.name).write_text(text)
    (tmp_path / "conftest.py").write_text(_CONFTEST)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", select, str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0 and "failed" not in summary and "error" not in summary, result.stdout[-6000:]
    return summary


def test_scikit_learns_own_randomized_svd_tests_pass(tmp_path):
    """The installed scikit-learn's ``utils/tests/test_extmath.py`` with ``outcore.randomized_svd``
    in place of its own: every randomized_svd case passes, sparse input included, but
    ``..._power_iteration_normalizer``, left out: it asserts that ``"none"`` diverges; outcore
    re-orthonormalizes every pass, so it does not."""
    source = Path(sklearn.__file__).parent / "utils" / "tests" / "test_extmath.py"
    select = "randomized_svd and not power_iteration_normalizer"
    ours = [
        ("    randomized_svd,\n", ""),
        ("from sklearn.utils.extmath import (\n", "from outcore import randomized_svd\nfrom sklearn.utils.extmath import (\n"),
    ]
    summary = _run_ported(tmp_path, source, ours, select)
    assert int(summary.split(" passed")[0].split()[-1]) >= 130, summary


def test_scikit_learns_own_pca_tests_pass(tmp_path):
    """scikit-learn's ``test_pca.py`` (the installed version's), with ``outcore.PCA`` in place of
    its own, run whole in a child pytest, sparse input included: every case passes but the
    array-API cases scikit-learn itself skips here and ``test_sparse_pca_solver_error``, which
    asserts that ``svd_solver="randomized"`` and ``"full"`` refuse sparse input: outcore runs
    both (implicitly centered products; dense panels)."""
    source = Path(sklearn.__file__).parent / "decomposition" / "tests" / "test_pca.py"
    original = "from sklearn.decomposition import PCA\n"
    summary = _run_ported(tmp_path, source, [(original, "from outcore import PCA\n")], "not sparse_pca_solver_error")
    assert int(summary.split(" passed")[0].split()[-1]) >= 400, summary


def test_scikit_learns_own_truncated_svd_tests_pass(tmp_path):
    """scikit-learn's ``test_truncated_svd.py`` with ``outcore.TruncatedSVD`` in place of its
    own (its PCA stays scikit-learn's: one case compares the two), run whole: every case passes,
    sparse input included."""
    source = Path(sklearn.__file__).parent / "decomposition" / "tests" / "test_truncated_svd.py"
    ours = [("from sklearn.decomposition import PCA, TruncatedSVD\n", "from sklearn.decomposition import PCA\nfrom outcore import TruncatedSVD\n")]
    summary = _run_ported(tmp_path, source, ours, "")
    assert int(summary.split(" passed")[0].split()[-1]) >= 46, summary


def test_scikit_learns_own_incremental_pca_tests_pass(tmp_path):
    """scikit-learn's ``test_incremental_pca.py`` with ``outcore.IncrementalPCA`` in place of its
    own (its PCA stays scikit-learn's: the tests compare the two), run whole, sparse input
    included. ``test_incremental_pca_sparse`` ends by asserting that ``partial_fit`` refuses
    sparse input; outcore's takes it (exact, dense panels), so that ending asserts it works."""
    source = Path(sklearn.__file__).parent / "decomposition" / "tests" / "test_incremental_pca.py"
    refusal = """    with pytest.raises(
        TypeError,
        match=(
            "IncrementalPCA.partial_fit does not support "
            "sparse input. Either convert data to dense "
            "or use IncrementalPCA.fit to do so in batches."
        ),
    ):
        ipca.partial_fit(X_sparse)
"""
    works = "    assert ipca.partial_fit(X_sparse).n_samples_seen_ == 2 * X_sparse.shape[0]\n"
    ours = [
        ("from sklearn.decomposition import PCA, IncrementalPCA\n", "from sklearn.decomposition import PCA\nfrom outcore import IncrementalPCA\n"),
        (refusal, works),
    ]
    summary = _run_ported(tmp_path, source, ours, "")
    assert int(summary.split(" passed")[0].split()[-1]) >= 27, summary
