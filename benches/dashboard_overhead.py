#!/usr/bin/env python3
"""What the live dashboard costs a run: the same `large-svd` command without a dashboard, with
one nobody watches, and with one a page watches (a client reading /api/events, as the browser
does), alternating in each repetition so drift on a shared machine hits all three alike.

    python3 benches/dashboard_overhead.py [--reps 7] [--large-svd PATH] [-- ARGS...]

ARGS default to the lesson's TSQR (`tsqr --rows 2000000 --memory-limit 64MiB`) and an rSVD
(`rsvd --memory-limit 256MiB`). Times are the run's own `wall_seconds` (JSON summary); the table
gives medians and the median of per-repetition ratios to the plain run. The goal: under 3%.
Only the standard library is needed.
"""
import argparse
import json
import statistics
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = [
    ["tsqr", "--rows", "2000000", "--memory-limit", "64MiB"],
    ["rsvd", "--memory-limit", "256MiB"],
]


def watch(url, stop, counts):
    """Reads the event stream as a page would, until the run ends."""
    try:
        with urllib.request.urlopen(url + "api/events", timeout=60) as stream:
            for line in stream:
                if line.startswith(b"data: "):
                    counts.append(len(line))
                if stop.is_set():
                    return
    except OSError:
        pass


def run(binary, args, mode):
    """One run: its wall_seconds, and how many pushes and bytes a watching client got."""
    cmd = [binary, *args, "--json"]
    if mode != "plain":
        cmd += ["--dashboard", "127.0.0.1:0"]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pushes, stop, reader = [], threading.Event(), None
    if mode == "watched":
        line = child.stderr.readline()
        while line and not line.startswith("dashboard: "):
            line = child.stderr.readline()
        url = line.split()[1]
        reader = threading.Thread(target=watch, args=(url, stop, pushes), daemon=True)
        reader.start()
    out, err = child.communicate(timeout=3600)
    stop.set()
    if child.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err}")
    return json.loads(out)["wall_seconds"], len(pushes), sum(pushes)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--large-svd", default=str(ROOT / "target/release/large-svd"))
    p.add_argument("args", nargs="*", help="one workload's arguments (after --)")
    a = p.parse_args()
    if not Path(a.large_svd).exists():
        subprocess.run(["cargo", "build", "--release", "--bin", "large-svd"], cwd=ROOT, check=True)
    workloads = [a.args] if a.args else WORKLOADS
    modes = ["plain", "unwatched", "watched"]
    print(f"{a.reps} repetitions, modes alternating in each; times are the runs' wall_seconds")
    print("| workload | plain | dashboard, unwatched | dashboard, watched (SSE) | ratio unwatched | ratio watched | pushes |")
    print("|---|---|---|---|---|---|---|")
    for args in workloads:
        times = {m: [] for m in modes}
        pushes = []
        for rep in range(a.reps):
            order = modes[rep % 3 :] + modes[: rep % 3]
            for m in order:
                t, n, size = run(a.large_svd, args, m)
                times[m].append(t)
                if m == "watched":
                    pushes.append((n, size))
        ratio = lambda m: statistics.median(x / y for x, y in zip(times[m], times["plain"]))
        med = {m: statistics.median(times[m]) for m in modes}
        n, size = pushes[len(pushes) // 2]
        print(
            f"| `{' '.join(args)}` | {med['plain']:.3f} s | {med['unwatched']:.3f} s | {med['watched']:.3f} s "
            f"| {ratio('unwatched'):.3f} | {ratio('watched'):.3f} | {n} ({size / 1024:.0f} KiB) |"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
