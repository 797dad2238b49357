#!/usr/bin/env python3
"""outcore's Python package against scikit-learn, dask-ml and Dask, side by side in one run.

    python3 benches/python_pca.py --setup       # create benches/.pyvenv (outcore, sklearn, dask-ml), run
    python3 benches/python_pca.py [--reps 3]

Workloads (the lesson's matrices, written once as zarr-python stores with its defaults):
  * PCA(10) of the 2,000,000 x 100 uniform matrix: in RAM (scikit-learn's auto and full
    solvers, outcore on the numpy array) and from the Zarr store (outcore, dask-ml's PCA with
    its tsqr solver, `da.linalg.svd` of the centered array);
  * TruncatedSVD(10) of the same matrix: scikit-learn's arpack (the reference: exact to
    rounding) and randomized (n_iter 5) solvers in RAM, outcore's randomized solver on the numpy
    array and from the store (its Krylov space would span more than half of the 100 columns, so
    it runs the exact TSQR);
  * the top 5 of the 10000 x 10000 matrix: scikit-learn's `randomized_svd` in RAM, outcore on
    the numpy array and on the store, Dask's `svd_compressed` on the store (n_power_iter 4);
    and TruncatedSVD(5) of it: scikit-learn's arpack (the reference) and randomized solvers in
    RAM, outcore's randomized solver (5 block Krylov iterations) in RAM and from the store.

Each scenario is a child process: loading in-RAM data is not timed, the fit is (in-process
wall time); peak RSS is the child's high-water mark (VmHWM), data included. Scenarios alternate
within each repetition; the table has medians and, per workload, the ratio to its reference.
Explained variance is compared with scikit-learn's exact solver on the same data.
"""
import argparse
import subprocess
import textwrap

import harness

DATA = harness.HERE / "data" / "python"

# Each scenario's code sees the stores' paths (without extension) as TALL and SQUARE.
PATHS = "TALL, SQUARE = DATA\n"

TALL_PCA = {
    "sklearn PCA auto (RAM)": """
from sklearn.decomposition import PCA
def setup():
    global X; X = np.load(TALL + ".npy")
def work():
    return PCA(10).fit(X).explained_variance_
""",
    "sklearn PCA full (RAM)": """
from sklearn.decomposition import PCA
def setup():
    global X; X = np.load(TALL + ".npy")
def work():
    return PCA(10, svd_solver="full").fit(X).explained_variance_
""",
    "outcore PCA (RAM)": """
from outcore import PCA
def setup():
    global X; X = np.load(TALL + ".npy")
def work():
    return PCA(10, memory_limit="128MiB").fit(X).explained_variance_
""",
    "outcore PCA (Zarr)": """
from outcore import PCA
def setup(): pass
def work():
    return PCA(10, memory_limit="128MiB").fit(TALL + ".zarr").explained_variance_
""",
    "dask-ml PCA tsqr (Zarr)": """
import dask, dask.array as da
from dask_ml.decomposition import PCA
def setup(): pass
def work():
    with dask.config.set(scheduler="threads"):
        return PCA(10, svd_solver="tsqr").fit(da.from_zarr(TALL + ".zarr")).explained_variance_
""",
    "dask da.linalg.svd centered (Zarr)": """
import dask, dask.array as da
def setup(): pass
def work():
    X = da.from_zarr(TALL + ".zarr")
    s = da.linalg.svd(X - X.mean(axis=0))[1]
    return (s[:10] ** 2 / (X.shape[0] - 1)).compute(scheduler="threads")
""",
}

def truncated_svd(data, k, limit, outcore_runs=""):
    """TruncatedSVD(k) of the matrix at ``data`` (TALL or SQUARE): scikit-learn's arpack and
    randomized solvers in RAM, outcore's randomized solver in RAM and from the Zarr store."""
    load = f"def setup():\n    global X; X = np.load({data} + '.npy')\n"
    fit = "def work():\n    return TruncatedSVD({args}).fit({X}).singular_values_\n"
    sklearn = "from sklearn.decomposition import TruncatedSVD\n"
    ours = "from outcore import TruncatedSVD\n"
    mine = f"{k}, random_state=0, memory_limit='{limit}'"
    return {
        "sklearn TruncatedSVD arpack (RAM)": sklearn + load + fit.format(args=f"{k}, algorithm='arpack', random_state=0", X="X"),
        "sklearn TruncatedSVD randomized (RAM)": sklearn + load + fit.format(args=f"{k}, random_state=0", X="X"),
        f"outcore TruncatedSVD randomized{outcore_runs} (RAM)": ours + load + fit.format(args=mine, X="X"),
        f"outcore TruncatedSVD randomized{outcore_runs} (Zarr)": ours
        + "def setup(): pass\n"
        + fit.format(args=mine, X=f"{data} + '.zarr'"),
    }


# 2 x (5 + 1) x (10 + 10) Krylov columns >= 100: outcore runs its exact TSQR instead.
TALL_TSVD = truncated_svd("TALL", 10, "128MiB", ", runs TSQR")
SQUARE_TSVD = truncated_svd("SQUARE", 5, "256MiB")

SQUARE_K5 = {
    "sklearn randomized_svd (RAM)": """
from sklearn.utils.extmath import randomized_svd
def setup():
    global X; X = np.load(SQUARE + ".npy")
def work():
    return randomized_svd(X, 5, random_state=0)[1]
""",
    "outcore randomized_svd (RAM)": """
import outcore
def setup():
    global X; X = np.load(SQUARE + ".npy")
def work():
    return outcore.randomized_svd(X, 5, random_state=0, memory_limit="128MiB")[1]
""",
    "outcore randomized_svd (Zarr)": """
import outcore
def setup(): pass
def work():
    return outcore.randomized_svd(SQUARE + ".zarr", 5, random_state=0, memory_limit="256MiB")[1]
""",
    "dask svd_compressed q=4 (Zarr)": """
import dask.array as da
def setup(): pass
def work():
    return da.linalg.svd_compressed(da.from_zarr(SQUARE + ".zarr"), 5, n_power_iter=4, seed=0)[1].compute(scheduler="threads")
""",
}


def make_data():
    DATA.mkdir(parents=True, exist_ok=True)
    code = textwrap.dedent(
        """
        import os, sys, numpy as np, zarr
        for name, shape, chunks in [("tall", (2_000_000, 100), (10_000, 100)), ("square", (10_000, 10_000), (2_000, 2_000))]:
            path = os.path.join(sys.argv[1], name)
            if os.path.exists(path + ".npy"):
                continue
            rng = np.random.default_rng(0)
            x = rng.random(shape)
            z = zarr.create_array(path + ".zarr", shape=shape, chunks=chunks, dtype="f8", overwrite=True)
            z[...] = x
            np.save(path + ".npy", x)
        """
    )
    subprocess.run([str(harness.python()), "-c", code, str(DATA)], check=True)
    return str(DATA / "tall"), str(DATA / "square")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", action="store_true", help="create benches/.pyvenv first")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", default="", help="run the workloads whose title contains this, e.g. TruncatedSVD")
    args = parser.parse_args()
    harness.ensure_venv(args.setup)
    tall, square = make_data()
    workloads = [
        ("PCA(10) of 2,000,000 x 100", TALL_PCA, "sklearn PCA full (RAM)"),
        ("TruncatedSVD(10) of 2,000,000 x 100", TALL_TSVD, "sklearn TruncatedSVD arpack (RAM)"),
        ("top 5 of 10000 x 10000", SQUARE_K5, "sklearn randomized_svd (RAM)"),
        ("TruncatedSVD(5) of 10000 x 10000", SQUARE_TSVD, "sklearn TruncatedSVD arpack (RAM)"),
    ]
    workloads = [
        (title, {name: PATHS + code for name, code in group.items()}, ref)
        for title, group, ref in workloads
        if args.only in title
    ]
    harness.compare(workloads, args.reps, [tall, square])


if __name__ == "__main__":
    main()
