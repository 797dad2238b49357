#!/usr/bin/env python3
"""What the live dashboard costs a run: the same `large-svd` command without a dashboard, with
one nobody watches, with one a bare client watches (reading /api/events, as a page does), and
with the page itself open in headless Chromium, alternating in each repetition so drift on a
shared machine hits all alike.

    python3 benches/dashboard_overhead.py [--reps 7] [--modes plain,unwatched,watched,browser,floor]
        [--large-svd PATH] [-- ARGS...]

ARGS default to the lesson's TSQR (`tsqr --rows 2000000 --memory-limit 64MiB`), the same on
20,000,000 rows in chunks of 2,000 (10,000 panels: the page's stream at its cap), and an rSVD
(`rsvd --memory-limit 256MiB`). Times are the run's own `wall_seconds` (JSON summary); the table
gives medians and the median of per-repetition ratios to the plain run. The goal: under 3%. The
browser mode starts Chromium first (`tests/browser/live.cjs`, playwright-core from
`--playwright`, default .ci/node/node_modules), lets it settle, then starts the run, and gives
the page's median time per render (goal: under 16 ms, one frame) and the share of the machine's
CPU the browser used while the run ran (its processes' CPU seconds over wall seconds times
cores: what it took from the run, less noisy than the ratio of times on a shared machine). Its
floor, mode `floor`: the same browser opening the server's /metrics, plain text with no script,
at the same moment. The other modes need only the standard library.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = [
    ["tsqr", "--rows", "2000000", "--memory-limit", "64MiB"],
    ["tsqr", "--rows", "20000000", "--chunk-rows", "2000", "--memory-limit", "64MiB"],
    ["rsvd", "--memory-limit", "256MiB"],
]
NAMES = {
    "plain": "plain",
    "unwatched": "dashboard, unwatched",
    "watched": "watched (SSE)",
    "browser": "watched (Chromium)",
    "floor": "/metrics open in Chromium",
}
SETTLE = 4.0
# Opens the URL read from stdin (after saying "ready"), leaves it open until stdin closes.
OPEN_ONLY = """
const { chromium } = require("playwright-core");
(async () => {
  const browser = await chromium.launch({ executablePath: process.argv[2], args: ["--no-sandbox", "--disable-gpu"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  process.stderr.write("ready\\n");
  let text = "";
  process.stdin.on("data", (d) => { text += d; if (text.includes("\\n")) page.goto(text.trim()); });
  process.stdin.on("end", async () => {
    await browser.close();
    process.stdout.write(JSON.stringify({ render_ms: [] }));
  });
})();
"""
LIVE = ROOT / "crates/outcore-cli/tests/browser/live.cjs"


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


def browser(modules, chromium, floor):
    """Headless Chromium, up and waiting for the URL on its stdin: live.cjs for the page, or
    (`floor`) OPEN_ONLY for a page of plain text, the least any page costs to open."""
    env = dict(os.environ, NODE_PATH=str(modules))
    script = ["-e", OPEN_ONLY] if floor else [str(LIVE)]
    page = subprocess.Popen(
        ["node", *script, "-", chromium], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )
    if page.stderr.readline().strip() != "ready":
        sys.exit(f"the browser did not start: {page.stderr.read()}")
    # Chromium works for about 3 s after it starts (0.8 s of CPU here), then idles (0.03 s in
    # 14 s): a user's browser is already running when they open the page.
    time.sleep(SETTLE)
    return page


def tree_cpu(root):
    """CPU seconds (user and system) of process `root` and all its descendants (Linux /proc)."""
    parent, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in cpu:
        p = pid
        while p > 1 and p != root:
            p = parent.get(p, 1)
        total += cpu[pid] if p == root else 0.0
    return total


def dashboard_url(child):
    line = child.stderr.readline()
    while line and not line.startswith("dashboard: "):
        line = child.stderr.readline()
    return line.split()[1]


def run(binary, args, mode, a):
    """One run: its wall_seconds, and what its watcher saw: pushes and bytes a bare client got,
    or the page's render times (ms) and the CPU seconds the browser used while the run ran."""
    cmd = [binary, *args, "--json"]
    if mode != "plain":
        cmd += ["--dashboard", "127.0.0.1:0"]
    page = browser(a.playwright, a.chromium, mode == "floor") if mode in ("browser", "floor") else None
    before = tree_cpu(page.pid) if page else 0.0
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pushes, stop, renders, browser_cpu = [], threading.Event(), [], None
    if mode == "watched":
        reader = threading.Thread(target=watch, args=(dashboard_url(child), stop, pushes), daemon=True)
        reader.start()
    if page:
        page.stdin.write(dashboard_url(child) + ("metrics" if mode == "floor" else "") + "\n")
        page.stdin.flush()
    out, err = child.communicate(timeout=3600)
    if page:
        browser_cpu = tree_cpu(page.pid) - before
    stop.set()
    if page:
        # OPEN_ONLY closes its browser when its stdin closes; live.cjs once the page showed the end.
        seen, why = page.communicate(timeout=600)
        if page.returncode != 0:
            sys.exit(f"the page failed: {why}")
        renders = json.loads(seen)["render_ms"]
    if child.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err}")
    return json.loads(out)["wall_seconds"], len(pushes), sum(pushes), renders, browser_cpu


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--modes", default="plain,unwatched,watched,browser")
    p.add_argument("--large-svd", default=str(ROOT / "target/release/large-svd"))
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--playwright", default=str(ROOT / ".ci/node/node_modules"))
    p.add_argument("args", nargs="*", help="one workload's arguments (after --)")
    a = p.parse_args()
    if not Path(a.large_svd).exists():
        subprocess.run(["cargo", "build", "--release", "--bin", "large-svd"], cwd=ROOT, check=True)
    workloads = [a.args] if a.args else WORKLOADS
    modes = a.modes.split(",")
    if modes[0] != "plain" or not set(modes) <= set(NAMES):
        sys.exit(f"--modes: plain first, then any of {', '.join(NAMES)}")
    others = modes[1:]
    print(f"{a.reps} repetitions, modes alternating in each; times are the runs' wall_seconds")
    print("| workload | " + " | ".join(NAMES[m] for m in modes) + " | " + " | ".join(f"ratio {m}" for m in others)
          + " | SSE pushes | page's render, median | browser's CPU, share of the machine |")
    print("|---" * (len(modes) + len(others) + 4) + "|")
    for args in workloads:
        times = {m: [] for m in modes}
        pushes, renders, shares = [], [], []
        for rep in range(a.reps):
            order = modes[rep % len(modes) :] + modes[: rep % len(modes)]
            for m in order:
                t, n, size, ms, cpu = run(a.large_svd, args, m, a)
                times[m].append(t)
                if m == "browser":
                    shares.append(cpu / (t * os.cpu_count()))
                if m == "watched":
                    pushes.append((n, size))
                renders += ms
        ratio = lambda m: statistics.median(x / y for x, y in zip(times[m], times["plain"]))
        n, size = sorted(pushes)[len(pushes) // 2] if pushes else (0, 0)
        render = f"{statistics.median(renders):.1f} ms of {len(renders)}" if renders else "-"
        share = f"{100 * statistics.median(shares):.1f}%" if shares else "-"
        print(
            f"| `{' '.join(args)}` | " + " | ".join(f"{statistics.median(times[m]):.3f} s" for m in modes) + " | "
            + " | ".join(f"{ratio(m):.3f}" for m in others) + f" | {n} ({size / 1024:.0f} KiB) | {render} | {share} |"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
