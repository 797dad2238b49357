#!/usr/bin/env python3
"""outcore's Python package against scikit-learn, dask-ml and Dask, side by side in one run.

    python3 benches/python_pca.py --setup       # create benches/.pyvenv (outcore, sklearn, dask-ml), run
    python3 benches/python_pca.py [--reps 3]

Workloads (the lesson's matrices, written once as zarr-python stores with its defaults):
  * PCA(10) of the 2,000,000 x 100 uniform matrix: in RAM (scikit-learn's auto and full
    solvers, outcore on the numpy array) and from the Zarr store (outcore, dask-ml's PCA with
    its tsqr solver, `da.linalg.svd` of the centered array);
  * the top 5 of the 10000 x 10000 matrix: scikit-learn's `randomized_svd` in RAM, outcore on
    the numpy array and on the store, Dask's `svd_compressed` on the store (n_power_iter 4).

Each scenario is a child process: loading in-RAM data is not timed, the fit is (in-process
wall time); peak RSS is the child's high-water mark (VmHWM), data included. Scenarios alternate
within each repetition; the table has medians and, per workload, the ratio to its reference.
Explained variance is compared with scikit-learn's exact solver on the same data.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".pyvenv"
DATA = HERE / "data" / "python"

PRELUDE = """
import json, sys, time
import numpy as np
def peak_mib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM:"))
TALL, SQUARE = sys.argv[1], sys.argv[2]
"""

RUNNER = """
setup()
start = time.perf_counter()
result = work()
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib(), "result": [float(x) for x in result]}))
"""

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
import outcore
def setup():
    global X; X = np.load(TALL + ".npy")
def work():
    return outcore.PCA(10, memory_limit="128MiB").fit(X).explained_variance_
""",
    "outcore PCA (Zarr)": """
import outcore
def setup(): pass
def work():
    return outcore.PCA(10, memory_limit="128MiB").fit(TALL + ".zarr").explained_variance_
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


def python():
    return VENV / "bin" / "python"


def setup_venv():
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "pip"), "install", "--quiet"]
    subprocess.run(pip + ["numpy", "scikit-learn", "dask[array]", "dask-ml", "zarr>=3"], check=True)
    subprocess.run(pip + [str(ROOT / "crates" / "outcore-python")], check=True)


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
    subprocess.run([str(python()), "-c", code, str(DATA)], check=True)
    return str(DATA / "tall"), str(DATA / "square")


def run(code, tall, square):
    out = subprocess.run(
        [str(python()), "-c", PRELUDE + textwrap.dedent(code) + RUNNER, tall, square], capture_output=True, text=True
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", action="store_true", help="create benches/.pyvenv first")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.setup or not python().exists():
        setup_venv()
    tall, square = make_data()
    workloads = [("PCA(10) of 2,000,000 x 100", TALL_PCA, "sklearn PCA full (RAM)"), ("top 5 of 10000 x 10000", SQUARE_K5, "sklearn randomized_svd (RAM)")]
    results = {name: [] for _, group, _ in workloads for name in group}
    for rep in range(args.reps):
        for _, group, _ in workloads:
            names = list(group)
            for name in names if rep % 2 == 0 else reversed(names):
                r = run(group[name], tall, square)
                results[name].append(r)
                print(f"rep {rep + 1} {name}: {r.get('seconds', r.get('error'))}", file=sys.stderr, flush=True)
    print(f"\nmedians of {args.reps} (time of the fit; peak RSS of the process, data included)\n")
    for title, group, reference in workloads:
        ok = {n: [r for r in results[n] if "seconds" in r] for n in group}
        ref_time = statistics.median(r["seconds"] for r in ok[reference])
        ref_values = ok[reference][0]["result"]
        print(f"| {title} | time | peak RSS | time vs {reference} | max rel. diff of values |")
        print("|---|---|---|---|---|")
        for name in group:
            if not ok[name]:
                print(f"| {name} | failed: {results[name][0].get('error')} | | | |")
                continue
            t = statistics.median(r["seconds"] for r in ok[name])
            rss = statistics.median(r["peak_mib"] for r in ok[name])
            values = ok[name][0]["result"]
            diff = max(abs(a - b) / abs(b) for a, b in zip(values, ref_values))
            print(f"| {name} | {t:.2f} s | {rss:.0f} MiB | {t / ref_time:.2f} | {diff:.1e} |")
        print()


if __name__ == "__main__":
    main()
