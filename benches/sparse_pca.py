#!/usr/bin/env python3
"""PCA(50) of a sparse 1,000,000 x 20,000 matrix at 1% density: outcore against scikit-learn's
PCA(svd_solver="arpack") and scanpy's sc.pp.pca, side by side in one run.

    python3 benches/sparse_pca.py --setup      # create benches/.pyvenv, add scanpy, run
    python3 benches/sparse_pca.py [--reps 3] [--rows 1000000]

The matrix stands for single-cell counts: 20 cell types, each with its own expression profile
over the genes (column means that differ), 200 nonzeros per row drawn with repeats summed,
gamma-distributed values; written once as a SciPy .npz (CSR, int32 indices). Every scenario
loads it into RAM untimed (its peak RSS includes the matrix, 2.4 GB at full size) and fits
PCA(50) on the same CSR matrix; its total variance is computed untimed too. The result of each
scenario is its rank-50 error, ``total variance - sum(explained_variance_)``; the table's last
column is that error's excess over scikit-learn's ARPACK (converged: the best rank-50 error).
"""
import argparse
import subprocess
import textwrap

import harness

DATA = harness.HERE / "data" / "sparse"

COMMON = """
import scipy.sparse as sp
from sklearn.utils.sparsefuncs import mean_variance_axis
def load():
    global X, total
    X = sp.load_npz(DATA[0])
    total = float(mean_variance_axis(X, axis=0)[1].sum()) * X.shape[0] / (X.shape[0] - 1)
"""

SCENARIOS = {
    "sklearn PCA arpack": """
from sklearn.decomposition import PCA
def setup():
    load()
def work():
    return [total - PCA(50, svd_solver="arpack", random_state=0).fit(X).explained_variance_.sum()]
""",
    "outcore PCA": """
from outcore import PCA
def setup():
    load()
def work():
    return [total - PCA(50, random_state=0).fit(X).explained_variance_.sum()]
""",
    "scanpy sc.pp.pca": """
import anndata, scanpy as sc
def setup():
    global adata
    load()
    adata = anndata.AnnData(X)
def work():
    sc.pp.pca(adata, n_comps=50, random_state=0)
    return [total - adata.uns["pca"]["variance"].sum()]
""",
}


def make_data(rows):
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"cells_{rows}x20000.npz"
    code = textwrap.dedent(
        """
        import sys, numpy as np, scipy.sparse as sp
        path, rows, cols, per_row, types = sys.argv[1], int(sys.argv[2]), 20_000, 200, 20
        rng = np.random.default_rng(0)
        profile = rng.gamma(0.5, 2.0, (types, cols))  # each type's mean expression per gene
        cum = np.cumsum(profile / profile.sum(axis=1, keepdims=True), axis=1)
        blocks = []
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            kind = rng.integers(0, types, n)
            picks = np.empty((n, per_row), dtype=np.int64)
            for t in range(types):
                mine = kind == t
                picks[mine] = np.searchsorted(cum[t], rng.random((mine.sum(), per_row)))
            values = rng.gamma(2.0, 1.0, (n, per_row))
            r = np.repeat(np.arange(n), per_row)
            block = sp.coo_matrix((values.ravel(), (r, np.minimum(picks.ravel(), cols - 1))), shape=(n, cols)).tocsr()
            block.sum_duplicates()
            blocks.append(block)
        X = sp.vstack(blocks, format="csr")
        X.indices = X.indices.astype(np.int32)
        X.indptr = X.indptr.astype(np.int64)
        sp.save_npz(path, X, compressed=False)
        print(X.shape, X.nnz)
        """
    )
    if not path.exists():
        subprocess.run([str(harness.python()), "-c", code, str(path), str(rows)], check=True)
    return str(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", action="store_true", help="create benches/.pyvenv first")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    harness.ensure_venv(args.setup, extra=["scanpy"])
    data = make_data(args.rows)
    group = {name: COMMON + code for name, code in SCENARIOS.items()}
    harness.compare([(f"PCA(50) of {args.rows} x 20000 sparse, 1%", group, "sklearn PCA arpack")], args.reps, [data])


if __name__ == "__main__":
    main()
