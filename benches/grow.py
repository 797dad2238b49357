#!/usr/bin/env python3
"""What growing an exact fit costs: `large-svd grow` adding 10% more rows to a saved state,
against refitting every row, side by side in one run.

    python3 benches/grow.py [--reps 5] [--rows 2000000] [--large-svd PATH]

Data, written once by `large-svd generate` (zstd, chunks of 10,000 rows x 100 columns) under
benches/data/grow: the base (ROWS x 100), the new rows (ROWS / 10), and all of them (1.1 ROWS,
what a refit reads). A state of the base is made once. Each repetition, in alternating order:

  * append: a copy of the base's state grown by the new rows (`grow --state`);
  * refit: a new state of all the rows (`grow --new`), what a fit without a state costs.

Each is a whole `large-svd` process (a release build), timed from outside; the table has the
medians and the median of the per-repetition ratios. The floor of the ratio is the share of
the rows the append reads, 1/11 (0.091): both are one pass over their rows.
"""
import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "grow"


def run(binary, *args):
    start = time.perf_counter()
    subprocess.run([binary, *map(str, args)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--large-svd", default=str(HERE.parent / "target" / "release" / "large-svd"))
    args = parser.parse_args()
    binary, rows = args.large_svd, args.rows
    DATA.mkdir(parents=True, exist_ok=True)
    stores = {"base": (rows, 0), "new": (rows // 10, 1), "all": (rows + rows // 10, 2)}
    for name, (count, seed) in stores.items():
        path = DATA / f"{name}-{count}.zarr"
        if not path.exists():
            run(binary, "generate", "--rows", count, "--cols", 100, "--seed", seed, "--compression", "zstd", "--output", path)
    path = {name: DATA / f"{name}-{count}.zarr" for name, (count, _) in stores.items()}
    base_state = DATA / "base.state"
    run(binary, "grow", "--new", "--overwrite", "--state", base_state, "--input", path["base"])
    times = {"append": [], "refit": []}

    def append():
        shutil.copyfile(base_state, DATA / "append.state")
        return run(binary, "grow", "--state", DATA / "append.state", "--input", path["new"])

    def refit():
        return run(binary, "grow", "--new", "--overwrite", "--state", DATA / "refit.state", "--input", path["all"])

    for rep in range(args.reps):
        order = [("append", append), ("refit", refit)]
        for name, work in order if rep % 2 == 0 else reversed(order):
            times[name].append(work())
            print(f"rep {rep + 1} {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    ratios = [a / r for a, r in zip(times["append"], times["refit"])]
    print(f"\n{args.reps} repetitions, whole processes, medians\n")
    print("| run | rows read | time |")
    print("|---|---|---|")
    print(f"| refit: a new state of all {rows + rows // 10:,} rows | {rows + rows // 10:,} | {statistics.median(times['refit']):.2f} s |")
    print(f"| append: the base's state grown by {rows // 10:,} rows | {rows // 10:,} | {statistics.median(times['append']):.2f} s |")
    print(f"\nappend / refit: median {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}); floor {1 / 11:.3f}")


if __name__ == "__main__":
    main()
