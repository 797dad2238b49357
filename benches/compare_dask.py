#!/usr/bin/env python3
"""outcore and Dask side by side on the seed lesson's workloads, in one run on this machine.

    python3 benches/compare_dask.py --setup          # create benches/.venv with Dask, then run
    python3 benches/compare_dask.py [--reps 3] [--only tsqr,rsvd,means] [--large-svd PATH]

Each repetition runs every scenario once, alternating Dask and outcore, so drift on a shared
machine hits both alike. The table gives median wall time and median peak RSS per scenario and
the ratios outcore / Dask. Wall time is measured from outside around each child process. Peak
RSS: Dask's is the whole process tree (workers included) sampled every 10 ms with psutil, as in
the lesson's Dask scripts; outcore's is the kernel's high-water mark of its process (VmHWM, printed in
its JSON), cross-checked against the same psutil sampling.

Without Dask installed the script says so and runs outcore alone.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv"

DASK_TSQR = """
import dask.array as da
def work():
    X = da.random.random((2000000, 100), chunks=(10000, 100))
    u, s, v = da.linalg.svd(X)
    return s.compute()
"""
DASK_RSVD = """
import dask.array as da
def work():
    X = da.random.random((10000, 10000), chunks=(2000, 2000))
    u, s, v = da.linalg.svd_compressed(X, k=5, seed=0)
    return s.compute()
"""
# As in the lesson's Dask script for the schedulers: warm-up, then the median of 5 runs in-process.
DASK_MEANS = """
import numpy as np
from dask import delayed
def calc_mean(i, n):
    return np.mean(np.random.normal(size=n))
def work():
    if scheduler == "serial":
        return [calc_mean(i, 100000) for i in range(100)]
    return dask.compute([delayed(calc_mean)(i, 100000) for i in range(100)], scheduler="threads", num_workers=2)
REPS = 5
"""
DASK_RUNNER = """
import sys, time, json, statistics
import dask
scheduler = sys.argv[1]
client = None
if scheduler == "distributed":
    from dask.distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
elif scheduler == "threads":
    dask.config.set(scheduler="threads")
REPS = 1
exec(sys.argv[2])
if REPS > 1:
    work()
times = []
for _ in range(REPS):
    t0 = time.perf_counter()
    work()
    times.append(time.perf_counter() - t0)
print(json.dumps({"wall_seconds": statistics.median(times)}))
if client:
    client.close(); cluster.close()
"""


def tree_peak_rss(proc, stop, out):
    """Peak RSS of a process and its children, sampled every 10 ms (needs psutil)."""
    import psutil
    peak = 0
    try:
        me = psutil.Process(proc.pid)
    except psutil.Error:
        out.append(0)
        return
    while not stop.is_set():
        try:
            procs = [me] + me.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in procs))
        except psutil.Error:
            pass
        time.sleep(0.01)
    out.append(peak)


def run(cmd, env=None):
    """Runs cmd, returns (wall seconds, sampled peak tree RSS, parsed JSON of its last stdout line)."""
    stop, out = threading.Event(), []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = None
    try:
        import psutil  # noqa: F401
        sampler = threading.Thread(target=tree_peak_rss, args=(proc, stop, out))
        sampler.start()
    except ImportError:
        pass
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    if sampler:
        sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-2000:]}")
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    return wall, (out[0] if out else 0), (json.loads(lines[-1]) if lines else {})


def have_dask(python):
    probe = subprocess.run([python, "-c", "import dask, dask.array, distributed, psutil, numpy"], capture_output=True)
    return probe.returncode == 0


def setup():
    print(f"creating {VENV} with dask[array,distributed], psutil ...", flush=True)
    subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    pip = VENV / "bin" / "pip"
    subprocess.check_call([str(pip), "install", "--quiet", "dask[array,distributed]", "psutil"])
    return str(VENV / "bin" / "python")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", action="store_true", help="create benches/.venv with Dask and use it")
    ap.add_argument("--python", help="Python with Dask (default: benches/.venv if present, else this one)")
    ap.add_argument("--large-svd", default=str(ROOT / "target/release/large-svd"), help="the outcore binary")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="tsqr,rsvd,means", help="comma-separated workloads")
    args = ap.parse_args()

    python = args.python or (setup() if args.setup else (str(VENV / "bin/python") if (VENV / "bin/python").exists() else sys.executable))
    dask_ok = have_dask(python)
    try:
        import psutil  # noqa: F401
    except ImportError:
        if dask_ok and os.path.abspath(python) != os.path.abspath(sys.executable):
            # Sample peak RSS with the Dask environment's psutil: run this script under it.
            os.execv(python, [python, __file__, "--python", python, *[a for a in sys.argv[1:] if a not in ("--setup",)]])
        print("psutil is not available: peak RSS of Dask runs cannot be sampled (use --setup).")
    if not dask_ok:
        print(f"Dask is NOT available in {python}: outcore runs alone (use --setup, or --python with dask[array,distributed] and psutil).")
    if not Path(args.large_svd).exists():
        print(f"building {args.large_svd} ...", flush=True)
        subprocess.check_call(["cargo", "build", "--release", "--bin", "large-svd"], cwd=ROOT)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

    outcore = args.large_svd
    only = set(args.only.split(","))
    scenarios = []  # (workload, name, kind, command)
    if "tsqr" in only:
        scenarios += [
            ("tsqr: svd of 2,000,000 x 100, values", "Dask threads", "dask", [python, "-c", DASK_RUNNER, "threads", DASK_TSQR]),
            ("tsqr: svd of 2,000,000 x 100, values", "Dask distributed (2 workers)", "dask", [python, "-c", DASK_RUNNER, "distributed", DASK_TSQR]),
            ("tsqr: svd of 2,000,000 x 100, values", "outcore threads (64 MiB limit)", "outcore", [outcore, "tsqr", "--values-only", "--memory-limit", "64MiB", "--json"]),
        ]
    if "rsvd" in only:
        scenarios += [
            ("rsvd: svd_compressed 10000 x 10000, k=5", "Dask threads (q=0)", "dask", [python, "-c", DASK_RUNNER, "threads", DASK_RSVD]),
            ("rsvd: svd_compressed 10000 x 10000, k=5", "Dask distributed (q=0)", "dask", [python, "-c", DASK_RUNNER, "distributed", DASK_RSVD]),
            ("rsvd: svd_compressed 10000 x 10000, k=5", "outcore, Dask's defaults (q=0)", "outcore", [outcore, "rsvd", "--method", "subspace", "--power-iters", "0", "--memory-limit", "128MiB", "--json"]),
            ("rsvd: svd_compressed 10000 x 10000, k=5", "outcore, its defaults (Krylov q=4)", "outcore", [outcore, "rsvd", "--memory-limit", "128MiB", "--json"]),
        ]
    if "means" in only:
        # Warm medians of 5 in-process, both sides (as the lesson's %%timeit).
        scenarios += [
            ("means: 100 x mean(normal(100000)), serial", "Dask serial (numpy loop)", "dask", [python, "-c", DASK_RUNNER, "serial", DASK_MEANS]),
            ("means: 100 x mean(normal(100000)), serial", "outcore serial", "outcore", [outcore, "means", "--scheduler", "serial", "--repeat", "5", "--json"]),
            ("means: 100 x mean(normal(100000)), 2 threads", "Dask threads (2)", "dask", [python, "-c", DASK_RUNNER, "threads", DASK_MEANS]),
            ("means: 100 x mean(normal(100000)), 2 threads", "outcore threads (2)", "outcore", [outcore, "means", "--scheduler", "threads", "--workers", "2", "--repeat", "5", "--json"]),
        ]
    if not dask_ok:
        scenarios = [s for s in scenarios if s[2] != "dask"]

    samples = {i: [] for i in range(len(scenarios))}
    for rep in range(args.reps):
        for i, (workload, name, kind, cmd) in enumerate(scenarios):
            wall, sampled, out = run(cmd, env)
            inner = out.get("wall_seconds")
            if kind == "outcore" and workload.startswith("means"):
                inner = out["results"][0]["median_seconds"]
            rss = out.get("peak_rss_bytes") or sampled
            samples[i].append((wall, inner, rss, sampled, out))
            print(f"rep {rep} {name:38s} wall {wall:7.2f} s  inside {inner or 0:7.3f} s  peak RSS {rss / 2**20:7.1f} MiB (sampled {sampled / 2**20:.1f})", flush=True)

    print()
    print(f"machine: {machine()}; {args.reps} repetitions, medians; Dask {'available' if dask_ok else 'UNAVAILABLE'}")
    print("| workload | run | median wall s (process) | median s (computation) | median peak RSS MiB | outcore / Dask: time | RSS |")
    print("|---|---|---|---|---|---|---|")
    base = {}
    for i, (workload, name, kind, _) in enumerate(scenarios):
        wall = statistics.median(s[0] for s in samples[i])
        inner = statistics.median((s[1] or s[0]) for s in samples[i])
        rss = statistics.median(s[2] for s in samples[i])
        if kind == "dask" and workload not in base and "distributed" not in name:
            base[workload] = (inner, rss)
        ratio_t, ratio_r = "-", "-"
        if kind == "outcore" and workload in base:
            ratio_t = f"{inner / base[workload][0]:.3f} ({base[workload][0] / inner:.1f}x faster)"
            ratio_r = f"{rss / base[workload][1]:.3f}" if base[workload][1] else "-"
        print(f"| {workload} | {name} | {wall:.2f} | {inner:.3f} | {rss / 2**20:.1f} | {ratio_t} | {ratio_r} |")
    for i, (workload, name, kind, _) in enumerate(scenarios):
        out = samples[i][-1][4]
        if workload.startswith("rsvd") and kind == "outcore":
            print(f"{name}: singular values {[round(x, 3) for x in out['singular_values']]}, passes {out['passes_over_input']}")


def machine():
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = "unknown CPU"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM"


if __name__ == "__main__":
    main()
