"""What the Python benchmarks share: a virtual environment with outcore built from this
checkout, each scenario in a child process (loading data untimed, the work timed in-process,
peak RSS the child's high-water mark, data included), scenarios alternating within every
repetition, and a table of medians with ratios to a reference per workload.

A scenario is Python source defining ``setup()`` (untimed) and ``work()`` (timed), which
returns a list of numbers to compare with the reference's. The child gets the data paths
as ``DATA`` (a list of strings).
"""
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

PRELUDE = """
import json, sys, time
import numpy as np
def peak_mib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM:"))
DATA = sys.argv[1:]
"""

RUNNER = """
setup()
start = time.perf_counter()
result = work()
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib(), "result": [float(x) for x in np.ravel(result)]}))
"""

PACKAGES = ["numpy", "scikit-learn", "dask[array,distributed]", "dask-ml", "zarr>=3", "statsmodels"]


def drop_caches():
    """Drops the page cache (needs root); False where not permitted."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def python():
    """The benchmarks' interpreter."""
    return VENV / "bin" / "python"


def setup_venv(extra=()):
    """Creates benches/.pyvenv with the peers (and ``extra`` packages) and outcore built from
    this checkout."""
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "pip"), "install", "--quiet"]
    subprocess.run(pip + PACKAGES + list(extra), check=True)
    # Built in this checkout's target directory, so its compiled dependencies are reused.
    env = {**os.environ, "CARGO_TARGET_DIR": str(ROOT / "target")}
    subprocess.run(pip + [str(ROOT / "crates" / "outcore-python")], check=True, env=env)


def ensure_venv(setup, extra=()):
    """Creates benches/.pyvenv when asked or missing; adds ``extra`` packages it lacks."""
    if setup or not python().exists():
        setup_venv(extra)
        return
    for package in extra:
        if subprocess.run([str(python()), "-c", f"import {package}"], capture_output=True).returncode != 0:
            subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", package], check=True)


def run(code, data):
    """Runs one scenario in a child: its seconds, peak RSS and result, or the error it ended on."""
    out = subprocess.run(
        [str(python()), "-c", PRELUDE + textwrap.dedent(code) + RUNNER, *data], capture_output=True, text=True
    )
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines() or ["exit code %d" % out.returncode]
        return {"error": lines[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(workloads, reps, data):
    """Runs every workload ``(title, {name: code}, reference)`` ``reps`` times, scenarios
    alternating (reversed every other repetition), and prints a table per workload: median time
    and peak RSS, the time against the reference's, and the largest relative difference of the
    results from the reference's."""
    # Keyed by workload and name: two workloads may have scenarios of the same name.
    results = {(title, name): [] for title, group, _ in workloads for name in group}
    for rep in range(reps):
        for title, group, _ in workloads:
            names = list(group)
            for name in names if rep % 2 == 0 else reversed(names):
                r = run(group[name], data)
                results[title, name].append(r)
                print(f"rep {rep + 1} {name}: {r.get('seconds', r.get('error'))}", file=sys.stderr, flush=True)
    print(f"\nmedians of {reps} (time of the work; peak RSS of the process, data included)\n")
    for title, group, reference in workloads:
        ok = {n: [r for r in results[title, n] if "seconds" in r] for n in group}
        if not ok[reference]:
            print(f"{title}: the reference {reference} failed: {results[title, reference][0].get('error')}\n")
            continue
        ref_time = statistics.median(r["seconds"] for r in ok[reference])
        ref_values = ok[reference][0]["result"]
        print(f"| {title} | time | peak RSS | time vs {reference} | max rel. diff of results |")
        print("|---|---|---|---|---|")
        for name in group:
            if not ok[name]:
                print(f"| {name} | failed: {results[title, name][0].get('error')} | | | |")
                continue
            t = statistics.median(r["seconds"] for r in ok[name])
            rss = statistics.median(r["peak_mib"] for r in ok[name])
            values = ok[name][0]["result"]
            scale = max(abs(b) for b in ref_values) if ref_values else 1.0
            diff = max((abs(a - b) / scale for a, b in zip(values, ref_values)), default=0.0)
            diff_text = f"{diff:.1e}" if len(values) == len(ref_values) else "-"
            print(f"| {name} | {t:.2f} s | {rss:.0f} MiB | {t / ref_time:.2f} | {diff_text} |")
        print()
