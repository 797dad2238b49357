#!/usr/bin/env python3
"""The performance tables and plots of docs/benchmarks.md, regenerated in one run on this machine.

    python3 benches/perf.py --setup      # create benches/.perfvenv (Dask, zarr, psutil), then run all
    python3 benches/perf.py [--reps 3] [--only stores,rsvd,kernels,rows,large]

Sections (each alternates outcore and Dask within every repetition, so a shared machine's drift
hits both alike; times are medians, ratios are medians of per-repetition ratios outcore / Dask):
  stores   the lesson's 2,000,000 x 100 matrix (chunks 10000 x 100) written by zarr-python in
           users' formats (v3 uncompressed, v3 and v2 defaults (zstd), v2 Blosc-lz4 as zarr 2.x
           wrote, v3 sharded, v3 float32): TSQR values and U to Zarr, outcore against
           `da.linalg.svd(da.from_zarr(...))`.
  rsvd     the 10000 x 10000 matrix (chunks 2000 x 2000): outcore's defaults against Dask's
           `svd_compressed(k=5, n_power_iter=4)` on the zstd store, and q = 0 on the
           uncompressed one against Dask's threads.
  kernels  `cargo bench --bench gemm`: faer's GEMM rate, the physical anchor, and TSQR's rates
           as fractions of it.
  rows     TSQR values of generated matrices from 2M to 20M rows, outcore and Dask.
  large    a 50,000,000 x 100 zarr-python-default store (40 GB, larger than RAM): page cache
           dropped before each run where permitted, the disk's read rates (one reader, two,
           two with direct I/O), outcore's TSQR values buffered and with `--io direct`, and U, at
           256 MiB, Dask's values, and the floors: disk (bytes / best read rate) and compute
           (the 2M store's time from the page cache, scaled by rows).

Writes docs/perf/tables.md, docs/perf/results.json and the plots docs/perf/rows.svg and
docs/perf/kernels.svg. Data goes to benches/data/perf (kept for the next run; the large store
is deleted after its section unless --keep-large).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".perfvenv"
DATA = HERE / "data" / "perf"
OUT = ROOT / "docs" / "perf"
sys.path.insert(0, str(HERE))
from compare_dask import machine, run  # noqa: E402  (one child runner and RSS sampler for both scripts)
from harness import drop_caches  # noqa: E402

CHUNK = 10_000
COLS = 100

# (name, label, zarr.create_array keyword arguments as source text)
STORES = [
    ("v3_raw", "v3 uncompressed", "compressors=None"),
    ("v3_zstd", "v3 default (zstd)", ""),
    ("v2_zstd", "v2 default (zstd)", "zarr_format=2"),
    ("v2_blosc", "v2 Blosc-lz4 (zarr 2.x default)", "zarr_format=2, compressors=numcodecs.Blosc(cname='lz4', clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)"),
    ("v3_sharded", "v3 sharded (shards of 100000 rows)", "shards=(100000, 100)"),
    ("v3_zstd_f32", "v3 default (zstd), float32", "dtype='f4'"),
]

WRITE = """
import sys, numpy as np, numcodecs, zarr
path, rows, cols, chunk_rows, chunk_cols = sys.argv[1], *map(int, sys.argv[2:6])
kwargs = eval("dict(" + sys.argv[6] + ")", {"numcodecs": numcodecs, "zarr": zarr})
dtype = kwargs.pop("dtype", "f8")
z = zarr.create_array(path, shape=(rows, cols), chunks=(chunk_rows, chunk_cols), dtype=dtype, **kwargs)
rng = np.random.default_rng(0)
step = max(chunk_rows, (1 << 27) // (8 * cols) // chunk_rows * chunk_rows)
for r0 in range(0, rows, step):
    n = min(step, rows - r0)
    z[r0:r0 + n] = rng.random((n, cols)).astype(dtype)
"""

DASK = """
import sys, time, json, shutil
import dask, dask.array as da
dask.config.set(scheduler="threads")
kind, src = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if kind == "generated":
    X = da.random.random((int(src), 100), chunks=(10000, 100))
else:
    X = da.from_zarr(src)
if kind == "rsvd":
    u, s, v = da.linalg.svd_compressed(X, k=5, n_power_iter=int(sys.argv[3]), seed=0)
    s = s.compute()
elif kind == "u":
    out = sys.argv[3]
    u, s, v = da.linalg.svd(X)
    _, s, v = dask.compute(u.to_zarr(out, compute=False, overwrite=True), s, v)
else:
    u, s, v = da.linalg.svd(X)
    s = s.compute()
print(json.dumps({"wall_seconds": time.perf_counter() - t0, "singular_values": [float(x) for x in s[:5]]}))
"""


def sh(cmd, **kw):
    print("+ " + " ".join("<script>" if "\n" in str(c) else str(c) for c in cmd), flush=True)
    return subprocess.run(list(map(str, cmd)), check=True, **kw)


def setup():
    if not (VENV / "bin" / "python").exists():
        sh([sys.executable, "-m", "venv", VENV])
    sh([VENV / "bin" / "pip", "install", "--quiet", "dask[array,distributed]", "zarr>=3", "numcodecs", "psutil"])
    return str(VENV / "bin" / "python")


def write_store(python, path, rows, cols, chunk_rows, chunk_cols, kwargs):
    if (path / "zarr.json").exists() or (path / ".zarray").exists():
        return
    # Written under a temporary name and renamed when complete: zarr writes its metadata
    # first, so an interrupted write must not pass for a store (its missing chunks read as 0).
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sh([python, "-c", WRITE, partial, rows, cols, chunk_rows, chunk_cols, kwargs])
    partial.rename(path)
    print(f"wrote {path} ({du(path) / 1e9:.2f} GB) in {time.perf_counter() - t0:.0f} s", flush=True)


def du(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class Results:
    """Samples per scenario: {key: [(seconds, peak bytes, json), ...]}."""

    def __init__(self):
        self.samples = {}

    def add(self, key, seconds, rss, out):
        self.samples.setdefault(key, []).append((seconds, rss, out))
        print(f"  {key:60s} {seconds:8.2f} s  {rss / 2**20:8.1f} MiB", flush=True)

    def t(self, key):
        return statistics.median(s[0] for s in self.samples[key])

    def rss(self, key):
        return statistics.median(s[1] for s in self.samples[key])

    def ratio(self, a, b):
        """Median of per-repetition ratios a / b."""
        return statistics.median(x[0] / y[0] for x, y in zip(self.samples[a], self.samples[b]))

    def has(self, *keys):
        return all(k in self.samples for k in keys)


def outcore(res, key, cmd, env):
    wall, sampled, out = run([str(c) for c in cmd], env)
    res.add(key, out.get("wall_seconds", wall), out.get("peak_rss_bytes") or sampled, out)
    return out


def dask(res, key, python, args, env):
    wall, sampled, out = run([python, "-c", DASK, *map(str, args)], env)
    res.add(key, out.get("wall_seconds", wall), sampled, out)
    return out


def stores(args, python, env, res, tables):
    rows = args.tall_rows
    paths = {name: DATA / f"tall_{rows}_{name}.zarr" for name, _, _ in STORES}
    for name, _, kwargs in STORES:
        write_store(python, paths[name], rows, COLS, CHUNK, COLS, kwargs)
    tmp = DATA / "out"
    for rep in range(args.reps):
        print(f"stores: repetition {rep + 1} of {args.reps}", flush=True)
        for name, _, _ in STORES:
            p = paths[name]
            outcore(res, f"stores/{name}/outcore 64", [args.large_svd, "tsqr", "--input", p, "--values-only", "--memory-limit", "64MiB", "--json"], env)
            dask(res, f"stores/{name}/dask values", python, ["values", p], env)
            outcore(res, f"stores/{name}/outcore 256", [args.large_svd, "tsqr", "--input", p, "--values-only", "--memory-limit", "256MiB", "--json"], env)
            shutil.rmtree(tmp, ignore_errors=True)
            outcore(res, f"stores/{name}/outcore U", [args.large_svd, "tsqr", "--input", p, "--output", tmp, "--memory-limit", "256MiB", "--json"], env)
            shutil.rmtree(tmp, ignore_errors=True)
            dask(res, f"stores/{name}/dask U", python, ["u", p, tmp], env)
            shutil.rmtree(tmp, ignore_errors=True)
    s0 = res.samples[f"stores/{STORES[0][0]}/outcore 256"][-1][2]["singular_values"][:5]
    d0 = res.samples[f"stores/{STORES[0][0]}/dask values"][-1][2]["singular_values"][:5]
    agree = max(abs(a - b) / abs(b) for a, b in zip(s0, d0))
    lines = [
        f"TSQR of {rows:,} x {COLS} (chunks {CHUNK} x {COLS}) from zarr-python stores; {args.reps} repetitions, medians; "
        f"ratio = outcore / Dask (median of per-repetition ratios); vs raw = outcore's time / its time on the uncompressed store. "
        f"Top singular values agree with Dask's to {agree:.1e} (relative).",
        "",
        "| store | size GB | outcore values 64 MiB | 256 MiB | vs raw (256) | Dask values | ratio (256) | outcore U 256 MiB | Dask U | ratio U | outcore peak RSS (64 / 256 / U) | Dask peak RSS (values / U) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    raw = f"stores/{STORES[0][0]}/outcore 256"
    for name, label, _ in STORES:
        k = f"stores/{name}/"
        lines.append(
            f"| {label} | {du(paths[name]) / 1e9:.2f} | {res.t(k + 'outcore 64'):.2f} s | {res.t(k + 'outcore 256'):.2f} s | "
            f"{res.ratio(k + 'outcore 256', raw):.2f} | {res.t(k + 'dask values'):.2f} s | "
            f"**{res.ratio(k + 'outcore 256', k + 'dask values'):.2f}** | {res.t(k + 'outcore U'):.2f} s | {res.t(k + 'dask U'):.2f} s | "
            f"**{res.ratio(k + 'outcore U', k + 'dask U'):.2f}** | {res.rss(k + 'outcore 64') / 2**20:.0f} / {res.rss(k + 'outcore 256') / 2**20:.0f} / "
            f"{res.rss(k + 'outcore U') / 2**20:.0f} MiB | {res.rss(k + 'dask values') / 2**20:.0f} / {res.rss(k + 'dask U') / 2**20:.0f} MiB |"
        )
    tables["stores"] = lines


def rsvd(args, python, env, res, tables):
    n = args.square
    paths = {"raw": DATA / f"square_{n}_raw.zarr", "zstd": DATA / f"square_{n}_zstd.zarr"}
    write_store(python, paths["raw"], n, n, 2000, 2000, "compressors=None")
    write_store(python, paths["zstd"], n, n, 2000, 2000, "")
    for rep in range(args.reps):
        print(f"rsvd: repetition {rep + 1} of {args.reps}", flush=True)
        dask(res, "rsvd/zstd/dask q4", python, ["rsvd", paths["zstd"], 4], env)
        outcore(res, "rsvd/zstd/outcore default", [args.large_svd, "rsvd", "--input", paths["zstd"], "--json"], env)
        dask(res, "rsvd/raw/dask q0", python, ["rsvd", paths["raw"], 0], env)
        outcore(res, "rsvd/raw/outcore q0", [args.large_svd, "rsvd", "--input", paths["raw"], "--method", "subspace", "--power-iters", "0", "--json"], env)
        outcore(res, "rsvd/raw/outcore default", [args.large_svd, "rsvd", "--input", paths["raw"], "--json"], env)
    lines = [
        f"Randomized SVD, k = 5, of the {n} x {n} uniform matrix (chunks 2000 x 2000) from zarr-python stores; {args.reps} repetitions, medians.",
        "",
        "| store | run | time | peak RSS | outcore / Dask |",
        "|---|---|---|---|---|",
    ]
    for store, key, label, base in [
        ("zstd", "dask q4", "Dask `svd_compressed(n_power_iter=4)`", None),
        ("zstd", "outcore default", "outcore defaults (Krylov, q = 4)", "dask q4"),
        ("raw", "dask q0", "Dask `svd_compressed` (q = 0), threads", None),
        ("raw", "outcore q0", "outcore, Dask's method (subspace, q = 0)", "dask q0"),
        ("raw", "outcore default", "outcore defaults (Krylov, q = 4)", "dask q0"),
    ]:
        k = f"rsvd/{store}/{key}"
        ratio = "-"
        if base:
            r = res.ratio(k, f"rsvd/{store}/{base}")
            ratio = f"**{r:.3f}** ({1 / r:.1f}x faster)" if r < 1 else f"**{r:.2f}** (slower)"
        lines.append(f"| {store} | {label} | {res.t(k):.2f} s | {res.rss(k) / 2**20:.0f} MiB | {ratio} |")
    tables["rsvd"] = lines


def kernels(args, res, tables):
    proc = subprocess.run(["cargo", "bench", "-p", "outcore-cli", "--bench", "gemm", "--", "--reps", str(max(3, args.reps))],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    rows = [l for l in proc.stdout.splitlines() if l.startswith("|")]
    print("\n".join(rows), flush=True)
    rates = {}
    for l in rows[2:]:
        cells = [c.strip() for c in l.strip("|").split("|")]
        rates[cells[0]] = float(cells[1])
    res.samples["kernels"] = [(0, 0, rates)]
    gemm = next(v for k, v in rates.items() if k.startswith("GEMM") and "all cores" in k)
    lines = [f"Effective GFLOP/s (`cargo bench --bench gemm`, medians); the fraction is of faer's GEMM on all {os.cpu_count()} cores ({gemm:.1f} GFLOP/s)."]
    lines += ["", "| kernel | GFLOP/s | of GEMM |", "|---|---|---|"]
    lines += [f"| {k} | {v:.1f} | {100 * v / gemm:.0f}% |" for k, v in rates.items()]
    # TSQR from the stores of the other sections, as rates of the same flop count.
    for key, label, m in [
        ("stores/v3_raw/outcore 256", f"TSQR values of {args.tall_rows:,} x 100, v3 uncompressed store, 256 MiB", args.tall_rows),
        ("stores/v3_zstd/outcore 256", f"TSQR values of {args.tall_rows:,} x 100, v3 zstd store, 256 MiB", args.tall_rows),
        ("large/outcore buffered", f"TSQR values of {args.large_rows:,} x 100, zstd store larger than RAM, 256 MiB", args.large_rows),
    ]:
        if res.has(key):
            rate = qr_flops(m) / res.t(key) / 1e9
            rates[label] = rate
            lines.append(f"| {label} | {rate:.1f} | {100 * rate / gemm:.0f}% |")
    tables["kernels"] = lines
    svg_bars(OUT / "kernels.svg", "Effective GFLOP/s (line: faer GEMM, all cores)", rates, gemm)


def qr_flops(m, n=COLS):
    return 2.0 * m * n * n - 2.0 * n ** 3 / 3.0


def rows_section(args, python, env, res, tables):
    sizes = [int(r) for r in args.rows_list.split(",")]
    for rep in range(args.rows_reps):
        for r in sizes:
            outcore(res, f"rows/{r}/outcore", [args.large_svd, "tsqr", "--rows", r, "--values-only", "--memory-limit", "64MiB", "--json"], env)
            dask(res, f"rows/{r}/dask", python, ["generated", r], env)
    lines = [f"TSQR values of generated uniform matrices (chunks 10000 x 100), outcore at 64 MiB and Dask threads; {args.rows_reps} repetition(s)." , "",
             "| rows | outcore | Dask | ratio | outcore peak RSS | Dask peak RSS |", "|---|---|---|---|---|---|"]
    for r in sizes:
        k = f"rows/{r}/"
        lines.append(f"| {r:,} | {res.t(k + 'outcore'):.2f} s | {res.t(k + 'dask'):.2f} s | **{res.ratio(k + 'outcore', k + 'dask'):.3f}** | "
                     f"{res.rss(k + 'outcore') / 2**20:.0f} MiB | {res.rss(k + 'dask') / 2**20:.0f} MiB |")
    tables["rows"] = lines


def read_rate(files, readers, direct):
    """Reads every file once with `readers` threads (O_DIRECT if asked); returns (bytes, seconds)."""
    import mmap
    from concurrent.futures import ThreadPoolExecutor

    def worker(part):
        buf = mmap.mmap(-1, 16 << 20)  # page-aligned, as O_DIRECT needs
        total = 0
        for f in part:
            fd = os.open(f, os.O_RDONLY | (os.O_DIRECT if direct else 0))
            try:
                while True:
                    n = os.readv(fd, [buf])
                    total += n
                    if n < len(buf):
                        break
            finally:
                os.close(fd)
        return total

    parts = [files[i::readers] for i in range(readers)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(readers) as pool:
        total = sum(pool.map(worker, parts))
    return total, time.perf_counter() - t0


def large(args, python, env, res, tables):
    rows = args.large_rows
    path = DATA / f"tall_{rows}_zstd.zarr"
    need = rows * COLS * 8
    free = shutil.disk_usage(DATA.parent if DATA.exists() else HERE).free
    if not (path / "zarr.json").exists() and free < need * 1.05:
        msg = f"SKIPPED: the {rows:,} x {COLS} store needs about {need / 1e9:.0f} GB; {free / 1e9:.0f} GB are free"
        print("!" * 20 + " " + msg, flush=True)
        tables["large"] = [msg]
        return
    write_store(python, path, rows, COLS, CHUNK, COLS, "")
    size = du(path)
    files = sorted(str(f) for f in path.rglob("*") if f.is_file() and f.name != "zarr.json")
    dropped = drop_caches()
    if not dropped:
        print("!" * 20 + " the page cache cannot be dropped here (not root): runs start with whatever it holds", flush=True)
    rates = {}
    for readers, direct in [(1, False), (2, False), (2, True)]:
        drop_caches()
        total, secs = read_rate(files, readers, direct)
        key = f"{readers} reader{'s' if readers > 1 else ''}{', direct I/O' if direct else ', buffered'}"
        rates[key] = total / secs
        print(f"  read {total / 1e9:.1f} GB with {key}: {secs:.1f} s = {total / secs / 1e6:.0f} MB/s", flush=True)
    res.samples["large/read rates"] = [(0, 0, rates)]
    for mode in ["buffered", "direct"]:
        drop_caches()
        outcore(res, f"large/outcore {mode}", [args.large_svd, "tsqr", "--input", path, "--values-only", "--memory-limit", "256MiB", "--io", mode, "--json"], env)
    u_dir = DATA / "large_out"
    shutil.rmtree(u_dir, ignore_errors=True)
    free = shutil.disk_usage(DATA).free
    u_note = ""
    if free > need * 1.1:
        drop_caches()
        outcore(res, "large/outcore U", [args.large_svd, "tsqr", "--input", path, "--output", u_dir, "--memory-limit", "256MiB", "--json"], env)
        shutil.rmtree(u_dir, ignore_errors=True)
    else:
        u_note = f"U not run: writing it needs about {need / 1e9:.0f} GB and {free / 1e9:.0f} GB are free."
        print("!" * 20 + " " + u_note, flush=True)
    if not args.no_large_dask:
        drop_caches()
        dask(res, "large/dask", python, ["values", path], env)
    # Floors: the disk's best read rate over the store, and the compute of the same store
    # format from the page cache (the 2M store's 256 MiB time, process start included)
    # scaled by rows.
    disk_floor = size / max(rates.values())
    compute_key = "stores/v3_zstd/outcore 256"
    compute_floor = res.t(compute_key) * rows / args.tall_rows if res.has(compute_key) else None
    floor = max(disk_floor, compute_floor or 0)
    lines = [
        f"{rows:,} x {COLS} float64, zarr-python defaults (zstd, chunks {CHUNK} x {COLS}), {size / 1e9:.1f} GB on disk, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM; page cache "
        f"{'dropped before each run' if dropped else 'NOT dropped (not permitted)'}; one run each.",
        "",
        "| read | rate |", "|---|---|",
    ]
    lines += [f"| {k} | {v / 1e6:.0f} MB/s |" for k, v in rates.items()]
    lines += ["", f"Disk floor: {disk_floor:.1f} s (the store at the best rate). "
              + (f"Compute floor: {compute_floor:.1f} s (the {args.tall_rows:,}-row zstd store from the page cache at 256 MiB, x {rows // args.tall_rows})."
                 if compute_floor else "Compute floor: not measured (run the stores section)."), ""]
    lines += ["| run | time | peak RSS | / max(floors) |", "|---|---|---|---|"]
    for key, label in [("large/outcore buffered", "outcore TSQR values, 256 MiB, buffered reads"),
                       ("large/outcore direct", "outcore TSQR values, 256 MiB, `--io direct`"),
                       ("large/outcore U", "outcore TSQR with U to Zarr, 256 MiB"),
                       ("large/dask", "Dask `da.linalg.svd` values, threads")]:
        if res.has(key):
            # The floors are of reading and factoring; U also writes the store's size again.
            ratio = "-" if key.endswith(" U") else f"{res.t(key) / floor:.2f}"
            lines.append(f"| {label} | {res.t(key):.1f} s | {res.rss(key) / 2**20:.0f} MiB | {ratio} |")
    if u_note:
        lines += ["", u_note]
    tables["large"] = lines
    if not args.keep_large:
        shutil.rmtree(path, ignore_errors=True)


def svg_bars(path, title, values, line):
    """A horizontal bar chart of `values` (label -> number) with a vertical line at `line`."""
    width, left, bar, gap = 900, 470, 22, 8
    top = 40
    height = top + len(values) * (bar + gap) + 30
    vmax = max(max(values.values()), line) * 1.1
    x = lambda v: left + (width - left - 20) * v / vmax  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="15">{esc(title)}</text>']
    for i, (label, v) in enumerate(values.items()):
        y = top + i * (bar + gap)
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{esc(label)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{x(v) - left:.1f}" height="{bar}" fill="#4c78a8"/>')
        out.append(f'<text x="{x(v) + 4:.1f}" y="{y + 15}">{v:.1f}</text>')
    out.append(f'<line x1="{x(line):.1f}" x2="{x(line):.1f}" y1="{top - 6}" y2="{height - 24}" stroke="#e45756" stroke-width="2"/>')
    out.append("</svg>")
    path.write_text("\n".join(out))


def svg_lines(path, title, series, points):
    """Log-log seconds against rows: `series` (label -> [(rows, s)]) as lines, `points`
    (label -> (rows, s)) as marks."""
    import math
    width, height, left, right, top, bottom = 760, 440, 70, 230, 40, 50
    xs = [r for s in series.values() for r, _ in s] + [r for r, _ in points.values()]
    ys = [t for s in series.values() for _, t in s] + [t for _, t in points.values()]
    lx0, lx1 = math.log10(min(xs) / 1.3), math.log10(max(xs) * 1.3)
    ly0, ly1 = math.log10(min(ys) / 1.5), math.log10(max(ys) * 1.5)
    px = lambda r: left + (width - left - right) * (math.log10(r) - lx0) / (lx1 - lx0)  # noqa: E731
    py = lambda t: height - bottom - (height - top - bottom) * (math.log10(t) - ly0) / (ly1 - ly0)  # noqa: E731
    colors = ["#4c78a8", "#e45756", "#54a24b", "#f58518", "#b279a2", "#72b7b2"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="15">{esc(title)}</text>',
           f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
           f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">rows (x 100 columns), log scale</text>',
           f'<text x="16" y="{(top + height - bottom) / 2}" transform="rotate(-90 16 {(top + height - bottom) / 2})" text-anchor="middle">seconds, log scale</text>']
    for e in range(int(math.floor(lx0)), int(math.ceil(lx1)) + 1):
        for m in (1, 2, 5):
            r = m * 10 ** e
            if lx0 <= math.log10(r) <= lx1:
                out.append(f'<text x="{px(r):.1f}" y="{height - bottom + 16}" text-anchor="middle">{r / 1e6:g}M</text>')
    for e in range(int(math.floor(ly0)), int(math.ceil(ly1)) + 1):
        for m in (1, 2, 5):
            t = m * 10.0 ** e
            if ly0 <= math.log10(t) <= ly1:
                out.append(f'<line x1="{left - 4}" x2="{width - right}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#ddd"/>')
                out.append(f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    legend = 0
    for i, (label, pts) in enumerate(series.items()):
        c = colors[i % len(colors)]
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{" ".join(f"{px(r):.1f},{py(t):.1f}" for r, t in pts)}"/>')
        out += [f'<circle cx="{px(r):.1f}" cy="{py(t):.1f}" r="3" fill="{c}"/>' for r, t in pts]
        out.append(f'<text x="{width - right + 10}" y="{top + 16 * legend + 10}" fill="{c}">{esc(label)}</text>')
        legend += 1
    for i, (label, (r, t)) in enumerate(points.items()):
        c = colors[(len(series) + i) % len(colors)]
        out.append(f'<rect x="{px(r) - 4:.1f}" y="{py(t) - 4:.1f}" width="8" height="8" fill="{c}"/>')
        out.append(f'<text x="{width - right + 10}" y="{top + 16 * legend + 10}" fill="{c}">&#9632; {esc(label)}</text>')
        legend += 1
    out.append("</svg>")
    path.write_text("\n".join(out))


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", action="store_true", help="create benches/.perfvenv with Dask, zarr and psutil, and use it")
    ap.add_argument("--python", help="a Python with dask[array], zarr>=3 and psutil (default: benches/.perfvenv)")
    ap.add_argument("--large-svd", default=str(ROOT / "target/release/large-svd"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="stores,rsvd,rows,large,kernels")
    ap.add_argument("--tall-rows", type=int, default=2_000_000)
    ap.add_argument("--square", type=int, default=10_000)
    ap.add_argument("--rows-list", default="2000000,5000000,10000000,20000000")
    ap.add_argument("--rows-reps", type=int, default=1)
    ap.add_argument("--large-rows", type=int, default=50_000_000)
    ap.add_argument("--no-large-dask", action="store_true", help="skip Dask on the large store (about 6 minutes)")
    ap.add_argument("--keep-large", action="store_true", help="keep the large store for the next run")
    args = ap.parse_args()
    python = args.python or (setup() if args.setup else str(VENV / "bin" / "python"))
    probe = subprocess.run([python, "-c", "import dask.array, zarr, numcodecs, psutil"], capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"{python} lacks dask[array], zarr, numcodecs or psutil: run with --setup\n{probe.stderr[-500:]}")
    try:
        import psutil  # noqa: F401
    except ImportError:
        # Peak RSS of Dask's process trees is sampled with psutil: run under the venv's Python.
        if os.path.abspath(sys.executable) != os.path.abspath(python):
            os.execv(python, [python, __file__, "--python", python, *[a for a in sys.argv[1:] if a != "--setup"]])
        sys.exit("psutil is missing")
    print("building the release binary ...", flush=True)
    sh(["cargo", "build", "--release", "--bin", "large-svd"], cwd=ROOT)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    OUT.mkdir(parents=True, exist_ok=True)
    only = args.only.split(",")
    res, tables = Results(), {}
    started = time.time()
    for name in ["stores", "rsvd", "rows", "large", "kernels"]:
        if name not in only:
            continue
        print(f"== {name}", flush=True)
        if name == "kernels":
            kernels(args, res, tables)
        else:
            {"stores": stores, "rsvd": rsvd, "rows": rows_section, "large": large}[name](args, python, env, res, tables)
    if "rows" in tables:
        series = {
            "outcore, generated, 64 MiB": [(r, res.t(f"rows/{r}/outcore")) for r in map(int, args.rows_list.split(","))],
            "Dask threads, generated": [(r, res.t(f"rows/{r}/dask")) for r in map(int, args.rows_list.split(","))],
        }
        points = {label: (args.large_rows, res.t(key)) for key, label in [
            ("large/outcore direct", "outcore, zstd store > RAM, direct"),
            ("large/outcore buffered", "outcore, zstd store > RAM, buffered"),
            ("large/dask", "Dask, zstd store > RAM")] if res.has(key)}
        svg_lines(OUT / "rows.svg", "TSQR values: time against rows", series, points)
    text = [f"# Performance, measured by `python3 benches/perf.py` on {time.strftime('%Y-%m-%d')}", "",
            f"Machine: {machine()}. The whole run took {(time.time() - started) / 60:.0f} minutes.", ""]
    for name in ["stores", "rsvd", "kernels", "rows", "large"]:
        if name in tables:
            text += [f"## {name}", "", *tables[name], ""]
    (OUT / "tables.md").write_text("\n".join(text))
    (OUT / "results.json").write_text(json.dumps({k: [[s[0], s[1]] for s in v] for k, v in res.samples.items()
                                                  if not k.startswith(("kernels", "large/read"))} | {
        "kernels": res.samples.get("kernels", [(0, 0, {})])[0][2], "large/read rates": res.samples.get("large/read rates", [(0, 0, {})])[0][2]}, indent=1))
    print("\n".join(text))
    print(f"wrote {OUT / 'tables.md'}, {OUT / 'results.json'} and the plots in {OUT}")


if __name__ == "__main__":
    main()
