#!/usr/bin/env python3
"""QR and least squares: outcore against Dask (`da.linalg.lstsq`, `da.linalg.qr`) on the store,
and numpy, statsmodels and scikit-learn in RAM, side by side in one run.

    python3 benches/lstsq.py --setup      # create benches/.pyvenv (outcore, Dask, statsmodels), run
    python3 benches/lstsq.py [--reps 3] [--only REGEX] [--large-svd PATH]
    python3 benches/lstsq.py --large 50000000 [--large-svd PATH] [--keep-large]

Data: the lesson's 2,000,000 x 100 uniform matrix X and 4 responses Y = X W + 1 + noise, each
written once as a zarr-python store with its defaults (zstd, chunks of 10,000 rows) and as a
.npy file. Workloads:
  * least squares of Y on X: numpy's `lstsq` (the reference), statsmodels' OLS (one fit per
    response) and scikit-learn's LinearRegression in RAM; `outcore.lstsq` on the arrays and on
    the stores; Dask's `lstsq` on the stores; outcore's TSQR values of X alone, the time lstsq
    is measured against (one pass over the same store);
  * R of X: numpy's `qr(mode="r")` in RAM (the reference), `outcore.qr(mode="r")` and Dask's
    `qr` (R computed, Q not) on the store; Q and R with Q written to a Zarr store by both; and
    the write alone, for the floor of writing Q: `large-svd generate` copying X's `.npy` file
    (in the page cache) to an uncompressed Zarr array, as `qr` writes Q (a release build,
    `--large-svd`, at 1 GiB: the mapped file's pages count in its RSS; its RSS is not the
    child's).

`--only REGEX` runs the scenarios whose names match (and each group's reference).

Each scenario is a child process (harness.py): loading in-RAM data is not timed, the work is;
peak RSS is the child's high-water mark, data included. The results compared are X's
coefficients, or R's diagonal (up to sign).

`--large ROWS` instead runs `large-svd` (a release build) on a ROWS x 100 zstd store and ROWS x 4
responses written by `large-svd generate` (larger than RAM at 50,000,000 rows: 40 GB), at a
256 MiB limit, the page cache dropped before each run (as root): TSQR values of X, then lstsq
of the responses on X. One run each; the stores are deleted afterwards unless --keep-large.
"""
import argparse
import json
import re
import shutil
import subprocess
import textwrap

import harness

DATA = harness.HERE / "data" / "python"
LIMIT = '"256MiB"'

# Each scenario's code sees the data's paths (without extension) as X and Y.
PATHS = "X, Y = DATA\n"

LSTSQ = {
    "numpy lstsq (RAM)": """
def setup():
    global a, b; a = np.load(X + ".npy"); b = np.load(Y + ".npy")
def work():
    return np.linalg.lstsq(a, b, rcond=None)[0]
""",
    "statsmodels OLS, 4 fits (RAM)": """
import statsmodels.api as sm
def setup():
    global a, b; a = np.load(X + ".npy"); b = np.load(Y + ".npy")
def work():
    return np.stack([sm.OLS(b[:, j], a).fit().params for j in range(b.shape[1])], axis=1)
""",
    "sklearn LinearRegression, no intercept (RAM)": """
from sklearn.linear_model import LinearRegression
def setup():
    global a, b; a = np.load(X + ".npy"); b = np.load(Y + ".npy")
def work():
    return LinearRegression(fit_intercept=False).fit(a, b).coef_.T
""",
    "outcore lstsq (RAM)": f"""
import outcore
def setup():
    global a, b; a = np.load(X + ".npy"); b = np.load(Y + ".npy")
def work():
    return outcore.lstsq(a, b, memory_limit={LIMIT})[0]
""",
    "outcore lstsq (Zarr)": f"""
import outcore
def setup(): pass
def work():
    return outcore.lstsq(X + ".zarr", Y + ".zarr", memory_limit={LIMIT})[0]
""",
    "outcore TSQR values of X (Zarr)": f"""
import outcore
def setup(): pass
def work():
    outcore.svd(X + ".zarr", compute_uv=False, memory_limit={LIMIT})
    return []
""",
    "dask lstsq (Zarr)": """
import dask.array as da
def setup(): pass
def work():
    return da.linalg.lstsq(da.from_zarr(X + ".zarr"), da.from_zarr(Y + ".zarr"))[0].compute(scheduler="threads")
""",
}

QR = {
    "numpy qr mode r (RAM)": """
def setup():
    global a; a = np.load(X + ".npy")
def work():
    return np.abs(np.diag(np.linalg.qr(a, mode="r")))
""",
    "outcore qr mode r (Zarr)": f"""
import outcore
def setup(): pass
def work():
    return np.abs(np.diag(outcore.qr(X + ".zarr", mode="r", memory_limit={LIMIT})))
""",
    "dask qr, R only (Zarr)": """
import dask.array as da
def setup(): pass
def work():
    return np.abs(np.diag(da.linalg.qr(da.from_zarr(X + ".zarr"))[1].compute(scheduler="threads")))
""",
    "outcore qr reduced, Q to Zarr": f"""
import os, shutil, tempfile, outcore
def setup():
    global out; out = tempfile.mkdtemp(dir=os.path.dirname(X))
def work():
    try:
        return np.abs(np.diag(outcore.qr(X + ".zarr", q_out=os.path.join(out, "q.zarr"), memory_limit={LIMIT})[1]))
    finally:
        shutil.rmtree(out)
""",
    "outcore write of X's size to Zarr (large-svd)": """
import os, shutil, subprocess, tempfile
def setup():
    global out; out = tempfile.mkdtemp(dir=os.path.dirname(X))
def work():
    try:
        copy = [LARGE_SVD, "generate", "--input", X + ".npy", "--output", os.path.join(out, "copy.zarr")]
        subprocess.run(copy + ["--memory-limit", "1GiB", "--json"], check=True, stdout=subprocess.DEVNULL)
        return []
    finally:
        shutil.rmtree(out)
""",
    "dask qr, Q to Zarr": """
import os, shutil, tempfile, dask, dask.array as da
def setup():
    global out; out = tempfile.mkdtemp(dir=os.path.dirname(X))
def work():
    try:
        q, r = da.linalg.qr(da.from_zarr(X + ".zarr"))
        stored = da.to_zarr(q, os.path.join(out, "q.zarr"), compute=False)
        _, r = dask.compute(stored, r, scheduler="threads")
        return np.abs(np.diag(r))
    finally:
        shutil.rmtree(out)
""",
}


def make_data():
    """X (the lesson's tall matrix, shared with python_pca.py) and Y, as stores and .npy files."""
    DATA.mkdir(parents=True, exist_ok=True)
    code = textwrap.dedent(
        """
        import os, sys, numpy as np, zarr
        x_path, y_path = (os.path.join(sys.argv[1], name) for name in ("tall", "responses"))
        if not os.path.exists(x_path + ".npy"):
            x = np.random.default_rng(0).random((2_000_000, 100))
            zarr.create_array(x_path + ".zarr", data=x, chunks=(10_000, 100), overwrite=True)
            np.save(x_path + ".npy", x)
        if not os.path.exists(y_path + ".npy"):
            x = np.load(x_path + ".npy", mmap_mode="r")
            rng = np.random.default_rng(1)
            w = rng.standard_normal((100, 4))
            y = np.vstack([x[i : i + 200_000] @ w for i in range(0, 2_000_000, 200_000)])
            y += 1.0 + 0.1 * rng.standard_normal(y.shape)
            zarr.create_array(y_path + ".zarr", data=y, chunks=(10_000, 4), overwrite=True)
            np.save(y_path + ".npy", y)
        """
    )
    subprocess.run([str(harness.python()), "-c", code, str(DATA)], check=True)
    return str(DATA / "tall"), str(DATA / "responses")


def large(rows, large_svd, keep):
    """TSQR values and lstsq of a ROWS x 100 store at 256 MiB, from a cold page cache."""
    x, y = DATA / f"large_{rows}_x.zarr", DATA / f"large_{rows}_y.zarr"
    for path, cols, seed in [(x, "100", "0"), (y, "4", "1")]:
        if not (path / "zarr.json").exists():
            shutil.rmtree(path, ignore_errors=True)
            args = ["generate", "--rows", str(rows), "--cols", cols, "--chunk-rows", "10000", "--seed", seed]
            subprocess.run([large_svd, *args, "--compression", "zstd", "--output", str(path), "--json"], check=True, stdout=subprocess.DEVNULL)
    size = sum(f.stat().st_size for f in x.rglob("*") if f.is_file())
    print(f"{rows:,} x 100 zstd store: {size / 1e9:.1f} GB; responses {rows:,} x 4", flush=True)
    runs = [
        ("outcore TSQR values of X", ["tsqr", "--input", str(x), "--values-only"]),
        ("outcore lstsq of 4 responses on X", ["lstsq", "--input", str(x), "--rhs", str(y)]),
    ]
    print("| run | time | peak RSS | read rate |\n|---|---|---|---|")
    for label, args in runs:
        dropped = drop_caches_or_warn()
        out = subprocess.run([large_svd, *args, "--memory-limit", "256MiB", "--json"], capture_output=True, text=True, check=True)
        summary = json.loads(out.stdout)
        seconds, rss = summary["wall_seconds"], summary["peak_rss_bytes"] / 2**20
        note = "" if dropped else " (page cache not dropped)"
        print(f"| {label}{note} | {seconds:.1f} s | {rss:.0f} MiB | {size / seconds / 1e6:.0f} MB/s |", flush=True)
    if not keep:
        shutil.rmtree(x, ignore_errors=True)
        shutil.rmtree(y, ignore_errors=True)


def drop_caches_or_warn():
    dropped = harness.drop_caches()
    if not dropped:
        print("!" * 20 + " the page cache cannot be dropped here (not root): runs start with whatever it holds", flush=True)
    return dropped


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", action="store_true", help="create benches/.pyvenv first")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--large", type=int, metavar="ROWS", help="the larger-than-RAM run instead")
    parser.add_argument("--large-svd", default=str(harness.ROOT / "target" / "release" / "large-svd"))
    parser.add_argument("--keep-large", action="store_true", help="keep the large stores for the next run")
    parser.add_argument("--only", metavar="REGEX", help="only the scenarios whose names match (and the references)")
    args = parser.parse_args()
    if args.large:
        return large(args.large, args.large_svd, args.keep_large)
    harness.ensure_venv(args.setup)
    workloads = [
        ("least squares, 2,000,000 x 100 and 4 responses", LSTSQ, "numpy lstsq (RAM)"),
        ("R of 2,000,000 x 100", QR, "numpy qr mode r (RAM)"),
    ]
    prelude = PATHS + f"LARGE_SVD = {str(args.large_svd)!r}\n"
    chosen = lambda name, ref: name == ref or not args.only or re.search(args.only, name)  # noqa: E731
    workloads = [
        (title, {name: prelude + code for name, code in group.items() if chosen(name, ref)}, ref)
        for title, group, ref in workloads
    ]
    harness.compare(workloads, args.reps, list(make_data()))


if __name__ == "__main__":
    main()
