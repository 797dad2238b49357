#!/usr/bin/env python3
"""Hashes the results of a fixed set of small runs, to compare two builds bitwise.

    python3 scripts/behaviour.py --bin target/release/large-svd [--python PY] [--mpirun mpirun] \
        [--zarr-python PY] [--work DIR] [--only SUBSTRING] > hashes.txt
    diff before.txt after.txt

Prints one line per run, `<run name> <sha256>`, sorted by name (a run that failed prints
`<run name> FAILED`, its stderr goes to stderr and the script exits 1). Progress and notes go
to stderr. Every run takes under a second; the command-line runs 17-35 s in all on 2 cores.

Inputs (under --work, default a fresh temporary directory removed at the end):
  * .npy files written here with the standard library (random.Random, so the bits do not depend
    on numpy): float64 C order, float64 Fortran order, float32, big-endian float32, and a wide
    float64 matrix. `large-svd` reads a .npy in row panels of 8 MiB, so A (20011 x 150) is 3
    panels, the last one short.
  * Zarr v3 arrays written by `large-svd generate` (uncompressed, zstd, gzip, blosc-lz4 from the
    generator; zstd:3 and float32 converted from the .npy files); these runs are hashed too.
  * with --zarr-python (default: --python) an interpreter with numpy and zarr-python 3: stores
    written by zarr-python from A.npy (v3 default = zstd, v2 default, v2 Blosc-lz4, v3 sharded,
    v3 float32, v3 chunked in columns too).

What is hashed for a command-line run (always run with --json):
  * from the JSON on stdout, and from summary.json in --output, only these keys (results, never
    times, memory, paths, task or spill counters, nor plan figures such as panels and fan_in):
        tsqr:     dtype, shape, singular_values
        rsvd:     dtype, shape, singular_values,
                  error_estimate.{spectral_bound, frobenius, probes, failure_probability},
                  power_iters_run, passes_over_input
        means:    mean_of_means
        generate: shape, chunks
    serialized as canonical JSON (sorted keys, floats by repr: exact round trip);
  * for --output DIR (and the array `generate` writes): every file under it but summary.json,
    by sorted relative path, path and bytes; in Zarr metadata (zarr.json, .zarray, .zattrs)
    the work directory's path is replaced by `$WORK` (generate records its input's path).
For the Python package (--python): the arrays and numbers each call returns (U, s, Vt, the
error estimate; PCA's components_, singular_values_, explained_variance_(ratio_), mean_,
scale_, noise_variance_, total_variance_, n_components_, error_estimate_ and transform's
output), each hashed with its dtype, shape and tobytes() of the C-contiguous array.

Every run names its scheduler, workers and memory limit explicitly: the plan (and so the bits)
is a function of shape, chunking, options, limit and workers, never of the machine's CPUs.
"""

import argparse
import array
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

# Keys of the --json output (and summary.json) that are results; see the docstring.
KEEP = {
    "tsqr": ["dtype", "shape", "singular_values"],
    "rsvd": ["dtype", "shape", "singular_values", "error_estimate", "power_iters_run", "passes_over_input"],
    "means": ["mean_of_means"],
    "generate": ["shape", "chunks"],
}
ERROR_ESTIMATE_KEYS = ["spectral_bound", "frobenius", "probes", "failure_probability"]
ZARR_METADATA = ("zarr.json", ".zarray", ".zattrs", ".zgroup")

# Generated matrices: (rows, cols, chunk rows[, chunk cols]); no shape divides its chunks.
TALL = ["--rows", "10007", "--cols", "37", "--chunk-rows", "1000"]
WIDE = ["--rows", "23", "--cols", "5003", "--chunk-rows", "23", "--chunk-cols", "700"]
SQUARE = ["--rows", "1503", "--cols", "1201", "--chunk", "400"]  # rsvd's chunks are square
SQUARE_GEN = ["--rows", "1503", "--cols", "1201", "--chunk-rows", "400", "--chunk-cols", "400"]
SMALL = ["--rows", "203", "--cols", "151", "--chunk", "50"]  # Krylov space fills up early

# The .npy matrices written with the standard library.
A_SHAPE = (20011, 150)
W_SHAPE = (31, 4001)

T2 = ["--scheduler", "threads", "--workers", "2"]
SERIAL = ["--scheduler", "serial"]
MIB64 = ["--memory-limit", "64MiB"]


class Failed(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Hashing


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def results_of(doc, where):
    """The result fields of one --json object (or summary.json)."""
    command = doc.get("command")
    if command not in KEEP:
        raise Failed(f"{where}: unknown or missing command {command!r}")
    kept = {}
    for key in KEEP[command]:
        if key not in doc:
            raise Failed(f"{where}: the JSON has no {key!r} (keys: {sorted(doc)})")
        value = doc[key]
        if key == "error_estimate":
            missing = [k for k in ERROR_ESTIMATE_KEYS if k not in value]
            if missing:
                raise Failed(f"{where}: error_estimate lacks {missing}")
            value = {k: value[k] for k in ERROR_ESTIMATE_KEYS}
        kept[key] = value
    return {"command": command, **kept}


class Tree:
    """Hashes a directory: sorted relative paths, each path and its bytes."""

    def __init__(self, work):
        real = os.path.realpath(work)
        self.replace = sorted({os.path.abspath(work).encode(), real.encode()}, key=len, reverse=True)

    def normalize(self, data):
        for path in self.replace:
            data = data.replace(path, b"$WORK")
        return data

    def update(self, h, root, skip=("summary.json",)):
        if not os.path.isdir(root):
            raise Failed(f"{root} is not a directory")
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for f in filenames:
                rel = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
                if rel not in skip:
                    files.append(rel)
        if not files:
            raise Failed(f"{root} holds no files")
        for rel in sorted(files):
            with open(os.path.join(root, rel), "rb") as fh:
                data = fh.read()
            if os.path.basename(rel) in ZARR_METADATA:
                data = self.normalize(data)
            h.update(b"file\0" + rel.encode() + b"\0" + str(len(data)).encode() + b"\0")
            h.update(data)


# ---------------------------------------------------------------------------------------------
# Inputs written with the standard library


def npy_bytes(shape, values, descr, fortran=False):
    """A .npy file (format 1.0) as numpy's np.save writes it."""
    rows, cols = shape
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%d, %d), }" % (descr, fortran, rows, cols)
    pad = 64 - (10 + len(header) + 1) % 64
    header = (header + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + values.tobytes()


def little(a):
    if sys.byteorder != "little":
        a = array.array(a.typecode, a)
        a.byteswap()
    return a


def write_npy_inputs(inputs):
    m, n = A_SHAPE
    rng = random.Random(7)
    r = rng.random
    scale = [1.0 + (j % 7) for j in range(n)]
    offset = [0.25 * j for j in range(n)]
    a = array.array("d", [(r() - 0.5) * scale[j] + offset[j] for _ in range(m) for j in range(n)])
    a32 = array.array("f", a)  # rounded to nearest float32
    fortran = array.array("d", [a[i * n + j] for j in range(n) for i in range(m)])
    big32 = array.array("f", a32)
    if sys.byteorder == "little":
        big32.byteswap()
    wm, wn = W_SHAPE
    w = array.array("d", [rng.gauss(0.0, 1.0) for _ in range(wm * wn)])
    files = {
        "A.npy": npy_bytes(A_SHAPE, little(a), "<f8"),
        "A32.npy": npy_bytes(A_SHAPE, little(a32), "<f4"),
        "AF.npy": npy_bytes(A_SHAPE, little(fortran), "<f8", fortran=True),
        "A32BE.npy": npy_bytes(A_SHAPE, big32, ">f4"),
        "W.npy": npy_bytes(W_SHAPE, little(w), "<f8"),
    }
    for name, data in files.items():
        with open(os.path.join(inputs, name), "wb") as fh:
            fh.write(data)


ZARR_PYTHON_STORES = r"""
import os, sys
import numpy as np
import numcodecs
import zarr

inputs = sys.argv[1]
a = np.load(os.path.join(inputs, "A.npy"))
a32 = np.load(os.path.join(inputs, "A32.npy"))
stores = {
    "zp-v3-zstd": (a, (2000, 150), {}),
    "zp-v3-raw": (a, (2000, 150), {"compressors": None}),
    "zp-v2-zstd": (a, (2000, 150), {"zarr_format": 2}),
    "zp-v2-blosc-lz4": (a, (2000, 150), {"zarr_format": 2, "compressors": numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)}),
    "zp-v3-sharded": (a, (2000, 150), {"shards": (6000, 150)}),
    "zp-v3-zstd-f32": (a32, (2000, 150), {}),
    "zp-v3-colchunks": (a, (2000, 64), {}),
}
for name, (x, chunks, kw) in stores.items():
    z = zarr.create_array(os.path.join(inputs, name + ".zarr"), shape=x.shape, chunks=chunks, dtype=x.dtype, **kw)
    z[...] = x
print(zarr.__version__)
"""
ZP_STORES = ["zp-v3-zstd", "zp-v3-raw", "zp-v2-zstd", "zp-v2-blosc-lz4", "zp-v3-sharded", "zp-v3-zstd-f32", "zp-v3-colchunks"]


# ---------------------------------------------------------------------------------------------
# The Python package's runs (run by --python, in the work directory, prints `name sha` lines)

PYTHON_RUNS = r"""
import hashlib, json, os, sys, traceback
import numpy as np
import outcore

inputs = sys.argv[1]
work = os.path.dirname(os.path.abspath(inputs))
P = lambda name: os.path.join(inputs, name)
COMMON = dict(memory_limit="256MiB", n_jobs=2)  # 256 MiB: the package's default; .npy panels need > 64

def tree(h, root):
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        for f in filenames:
            files.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    for rel in sorted(files):
        with open(os.path.join(root, rel), "rb") as fh:
            data = fh.read()
        if os.path.basename(rel) in ("zarr.json", ".zarray", ".zattrs"):
            for w in sorted({work, os.path.realpath(work)}, key=len, reverse=True):
                data = data.replace(w.encode(), b"$WORK")
        h.update(b"file\0" + rel.encode() + b"\0" + str(len(data)).encode() + b"\0")
        h.update(data)

def feed(h, name, value):
    h.update(b"field\0" + name.encode() + b"\0")
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        h.update(f"ndarray {a.dtype.str} {a.shape}\0".encode())
        h.update(a.tobytes())
    elif isinstance(value, np.generic):
        h.update(f"scalar {value.dtype.str}\0".encode())
        h.update(value.tobytes())
    elif isinstance(value, dict):
        for k in sorted(value):
            feed(h, name + "." + k, value[k])
    elif value is None or isinstance(value, (bool, int, float, str)):
        h.update(b"json\0" + json.dumps(value).encode())
    else:
        raise TypeError(f"{name}: cannot hash {type(value).__name__}")

def svd_fields(r):
    U, s, Vt = r[:3]
    out = {"U": U, "s": s, "Vt": Vt}
    if len(r) > 3:
        out["error"] = r[3]
    return out

PCA_FIELDS = ["components_", "singular_values_", "explained_variance_", "explained_variance_ratio_",
              "mean_", "scale_", "noise_variance_", "total_variance_", "n_components_", "error_estimate_"]

def pca_fields(pca, X):
    out = {f: getattr(pca, f) for f in PCA_FIELDS}
    out["transform"] = pca.transform(X)
    return out

a64 = np.load(P("A.npy"))
a32 = np.load(P("A32.npy"))
w64 = np.load(P("W.npy"))
sources = {
    "ndarray-f64": lambda: a64,
    "ndarray-f32": lambda: a32,
    "ndarray-f64-fortran": lambda: np.asfortranarray(a64),
    "npy-path": lambda: P("A.npy"),
    "npy-f32-path": lambda: P("A32.npy"),
    "zarr-path": lambda: P("a-zstd3.zarr"),
    "zarr-f32-path": lambda: P("a32.zarr"),
}
try:
    import zarr
    if os.path.isdir(P("zp-v3-zstd.zarr")):
        sources["zarr-python-array"] = lambda: zarr.open_array(P("zp-v3-zstd.zarr"), mode="r")
except ImportError:
    zarr = None

cases = {}
for src, get in sources.items():
    cases[f"py/svd/{src}"] = lambda get=get: svd_fields(outcore.svd(get(), **COMMON))
    cases[f"py/randomized_svd/krylov/{src}"] = lambda get=get: svd_fields(
        outcore.randomized_svd(get(), 5, random_state=0, return_error=True, **COMMON))
    cases[f"py/pca/centered/{src}"] = lambda get=get: pca_fields(outcore.PCA(n_components=5, **COMMON).fit(get()), get())
    cases[f"py/pca/standardized/{src}"] = lambda get=get: pca_fields(
        outcore.PCA(n_components=5, standardize=True, **COMMON).fit(get()), get())
    cases[f"py/pca/randomized/{src}"] = lambda get=get: pca_fields(
        outcore.PCA(n_components=5, svd_solver="randomized", random_state=0, **COMMON).fit(get()), get())

def u_out():
    path = os.path.join(work, "py-u.zarr")
    U, s, Vt = outcore.svd(a64, u_out=path, **COMMON)
    h = {"s": s, "Vt": Vt, "U_is_path": U == path}
    return h, path

cases["py/svd/values-only/ndarray-f64"] = lambda: {"s": outcore.svd(a64, compute_uv=False, **COMMON)}
cases["py/svd/wide/ndarray-f64"] = lambda: svd_fields(outcore.svd(w64, **COMMON))
cases["py/svd/n_jobs1/ndarray-f64"] = lambda: svd_fields(outcore.svd(a64, memory_limit="256MiB", n_jobs=1))
cases["py/svd/u_out/ndarray-f64"] = u_out
cases["py/randomized_svd/subspace-q2/ndarray-f64"] = lambda: svd_fields(outcore.randomized_svd(
    a64, 5, n_iter=2, method="subspace", random_state=3, return_error=True, **COMMON))
cases["py/randomized_svd/krylov/wide-ndarray-f64"] = lambda: svd_fields(outcore.randomized_svd(
    w64, 4, random_state=1, return_error=True, **COMMON))
cases["py/pca/whiten/ndarray-f64"] = lambda: pca_fields(outcore.PCA(n_components=5, whiten=True, **COMMON).fit(a64), a64)
cases["py/pca/fraction-0.9/ndarray-f64"] = lambda: pca_fields(outcore.PCA(n_components=0.9, **COMMON).fit(a64), a64)
cases["py/pca/all/wide-ndarray-f64"] = lambda: pca_fields(outcore.PCA(**COMMON).fit(w64), w64)

failed = []
for name in sorted(cases):
    if len(sys.argv) > 2 and sys.argv[2] not in name:
        continue
    try:
        r = cases[name]()
        h = hashlib.sha256()
        if isinstance(r, tuple):
            r, directory = r
            tree(h, directory)
        for k in sorted(r):
            feed(h, k, r[k])
        print(name, h.hexdigest(), flush=True)
    except Exception:
        failed.append(name)
        print(f"FAILED {name}\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        print(name, "FAILED", flush=True)
sys.exit(1 if failed else 0)
"""


# ---------------------------------------------------------------------------------------------
# Running


class Runs:
    def __init__(self, opts, work):
        self.opts = opts
        self.work = work
        self.inputs = os.path.join(work, "inputs")
        self.outputs = os.path.join(work, "outputs")
        self.spill = os.path.join(work, "spill")
        for d in (self.inputs, self.outputs, self.spill):
            os.makedirs(d, exist_ok=True)
        self.tree = Tree(work)
        self.hashes = {}
        self.failed = []
        self.env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        self.env.pop("OUTCORE_INJECT_FAULTS", None)

    def wanted(self, name):
        return self.opts.only is None or self.opts.only in name

    def fail(self, name, message):
        self.failed.append(name)
        self.hashes[name] = "FAILED"
        print(f"FAILED {name}:\n{message.rstrip()}\n", file=sys.stderr, flush=True)

    def cli(self, name, argv, output=None, mpi=False, store=None, required=False):
        """Runs `large-svd argv --json` (under mpirun -np 2 if `mpi`), hashes its results, the
        files of `output` (an --output directory, added to argv) or of `store` (a Zarr array
        the command writes). `required`: an input of later runs (run even with --only)."""
        if not required and not self.wanted(name):
            return
        if mpi and not self.opts.mpirun:
            return
        cmd = [self.opts.bin] + argv + ["--json", "--spill-dir", self.spill]
        if output is not None:
            output = os.path.join(self.outputs, output)
            cmd += ["--output", output]
        if mpi:
            cmd = [self.opts.mpirun, "-np", "2", "--oversubscribe", "--bind-to", "none"] + cmd
        started = time.monotonic()
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, cwd=self.work, timeout=120)
        except subprocess.TimeoutExpired as e:
            self.fail(name, f"{' '.join(cmd)}\ntimed out after 120 s\n{(e.stderr or b'').decode(errors='replace')}")
            return
        seconds = time.monotonic() - started
        stderr = p.stderr.decode(errors="replace")
        if p.returncode != 0:
            self.fail(name, f"{' '.join(cmd)}\nexit {p.returncode}\n{stderr}")
            return
        try:
            doc = parse_json(p.stdout.decode(errors="replace"))
            h = hashlib.sha256()
            h.update(b"json\0" + canonical(results_of(doc, "--json")))
            if output is not None:
                with open(os.path.join(output, "summary.json")) as fh:
                    summary = json.load(fh)
                h.update(b"summary\0" + canonical(results_of(summary, "summary.json")))
                self.tree.update(h, output)
            if store is not None:
                self.tree.update(h, store)
        except (Failed, OSError, ValueError) as e:
            self.fail(name, f"{' '.join(cmd)}\n{e}\nstdout: {p.stdout.decode(errors='replace')[:2000]}\n{stderr}")
            return
        self.hashes[name] = h.hexdigest()
        memory = doc.get("memory") or {}
        print(
            f"{name}: {seconds:.2f} s, spills {memory.get('spill_count', '-')}, limit {memory.get('limit', '-')}",
            file=sys.stderr,
            flush=True,
        )
        return doc

    def python(self, name, interpreter, code, *args):
        """Runs `code` with `interpreter` in the work directory; returns its stdout, or None."""
        path = os.path.join(self.work, name + ".py")
        with open(path, "w") as fh:
            fh.write(code)
        try:
            p = subprocess.run([interpreter, path, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.work, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, 1, str(e)
        return p.stdout.decode(errors="replace"), p.returncode, p.stderr.decode(errors="replace")


def parse_json(text):
    text = text.strip()
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            return doc
    except ValueError:
        pass
    # mpirun may add lines of its own: take the one JSON object.
    docs = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                docs.append(json.loads(line))
            except ValueError:
                pass
    if len(docs) != 1:
        raise Failed(f"expected one JSON object on stdout, found {len(docs)}")
    return docs[0]


def o_direct_works(directory):
    flag = getattr(os, "O_DIRECT", None)
    if flag is None:
        return False
    path = os.path.join(directory, ".o_direct_probe")
    try:
        with open(path, "wb") as fh:
            fh.write(b"\0" * 4096)
        fd = os.open(path, os.O_RDONLY | flag)
        os.close(fd)
        return True
    except OSError:
        return False
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def all_runs(r):
    I = lambda name: os.path.join(r.inputs, name)
    mpi_note = "" if r.opts.mpirun else " (no --mpirun: MPI runs skipped)"
    print(f"work directory {r.work}{mpi_note}", file=sys.stderr)

    # -- inputs ---------------------------------------------------------------------------
    write_npy_inputs(r.inputs)
    for comp in ["none", "zstd", "gzip", "blosc-lz4"]:
        path = I(f"g-{comp}.zarr")
        r.cli(f"generate/tall-uniform/{comp}", ["generate"] + TALL + ["--seed", "11", "--compression", comp] + T2 + MIB64 + ["--output", path], store=path, required=True)
    path = I("g-normal-zstd.zarr")
    r.cli("generate/tall-normal/zstd/serial", ["generate"] + TALL + ["--seed", "12", "--distribution", "normal", "--compression", "zstd:5"] + SERIAL + MIB64 + ["--output", path], store=path, required=True)
    path = I("sq-zstd.zarr")
    r.cli("generate/square/zstd", ["generate"] + SQUARE_GEN + ["--seed", "13", "--compression", "zstd"] + T2 + MIB64 + ["--output", path], store=path, required=True)
    path = I("a-zstd3.zarr")
    r.cli("generate/from-npy-f64/zstd3", ["generate", "--input", I("A.npy"), "--compression", "zstd:3"] + T2 + MIB64 + ["--output", path], store=path, required=True)
    path = I("a32.zarr")
    r.cli("generate/from-npy-f32/none", ["generate", "--input", I("A32.npy"), "--compression", "none"] + T2 + MIB64 + ["--output", path], store=path, required=True)
    try:
        with open(os.path.join(path, "zarr.json")) as fh:
            dtype = json.load(fh).get("data_type")
        if dtype != "float32":
            r.fail("generate/from-npy-f32/none", f"a float32 .npy converted by generate gave data_type {dtype!r}, not float32")
    except OSError:
        pass

    zp = r.opts.zarr_python or r.opts.python
    zp_stores = []
    if zp:
        out, code, err = r.python("zarr_python_stores", zp, ZARR_PYTHON_STORES, r.inputs)
        if code != 0:
            if "No module named 'zarr'" in err or "No module named 'numcodecs'" in err:
                print(f"note: {zp} cannot import zarr-python: zarr-python stores skipped", file=sys.stderr)
            else:
                r.fail("inputs/zarr-python", f"{zp} writing the zarr-python stores failed:\n{err}")
        else:
            zp_stores = ZP_STORES
            print(f"zarr-python {out.strip()} stores written by {zp}", file=sys.stderr)
    else:
        print("note: no --python or --zarr-python: zarr-python stores skipped", file=sys.stderr)

    # -- TSQR on generated matrices -------------------------------------------------------
    for dist in ["uniform", "normal"]:
        gen = TALL + ["--seed", "1", "--distribution", dist]
        r.cli(f"tsqr/gen-tall-{dist}/values/threads2", ["tsqr"] + gen + ["--values-only"] + T2 + MIB64)
        r.cli(f"tsqr/gen-tall-{dist}/uv/threads2", ["tsqr"] + gen + T2 + MIB64, output=f"tsqr-gen-tall-{dist}-t2")
    gen = TALL + ["--seed", "1"]
    r.cli("tsqr/gen-tall-uniform/values/serial", ["tsqr"] + gen + ["--values-only"] + SERIAL + MIB64)
    r.cli("tsqr/gen-tall-uniform/uv/serial", ["tsqr"] + gen + SERIAL + MIB64, output="tsqr-gen-tall-serial")
    r.cli("tsqr/gen-tall-uniform/values/threads1", ["tsqr"] + gen + ["--values-only", "--scheduler", "threads", "--workers", "1"] + MIB64)
    r.cli("tsqr/gen-tall-uniform/values/auto-limit", ["tsqr"] + gen + ["--values-only", "--memory-limit", "auto"] + T2)
    r.cli("tsqr/gen-tall-uniform/uv/mpi2", ["tsqr"] + gen + ["--scheduler", "threads", "--workers", "1"] + MIB64, output="tsqr-gen-tall-mpi2", mpi=True)
    r.cli("tsqr/gen-tall-uniform/values/mpi2", ["tsqr"] + gen + ["--values-only", "--scheduler", "threads", "--workers", "1"] + MIB64, mpi=True)
    r.cli("tsqr/gen-tall-uniform/uv/fan-in2-panel-rows300", ["tsqr"] + gen + ["--fan-in", "2", "--panel-rows", "300"] + T2 + MIB64, output="tsqr-gen-tall-fan2")
    r.cli("tsqr/gen-tall-uniform/values/fan-in3-panel-rows300", ["tsqr"] + gen + ["--values-only", "--fan-in", "3", "--panel-rows", "300"] + T2 + MIB64)
    r.cli("tsqr/gen-tall-uniform/values/chunk-cols10", ["tsqr", "--rows", "10007", "--cols", "37", "--chunk-rows", "1000", "--chunk-cols", "10", "--seed", "1", "--values-only"] + T2 + MIB64)
    r.cli("tsqr/gen-tall-uniform/uv/chunk-cols10", ["tsqr", "--rows", "10007", "--cols", "37", "--chunk-rows", "1000", "--chunk-cols", "10", "--seed", "1"] + T2 + MIB64, output="tsqr-gen-tall-cc10")
    for dist in ["uniform", "normal"]:
        gen = WIDE + ["--seed", "2", "--distribution", dist]
        r.cli(f"tsqr/gen-wide-{dist}/values/threads2", ["tsqr"] + gen + ["--values-only"] + T2 + MIB64)
        r.cli(f"tsqr/gen-wide-{dist}/uv/threads2", ["tsqr"] + gen + T2 + MIB64, output=f"tsqr-gen-wide-{dist}-t2")
    gen = WIDE + ["--seed", "2"]
    r.cli("tsqr/gen-wide-uniform/uv/serial", ["tsqr"] + gen + SERIAL + MIB64, output="tsqr-gen-wide-serial")
    r.cli("tsqr/gen-wide-uniform/uv/mpi2", ["tsqr"] + gen + ["--scheduler", "threads", "--workers", "1"] + MIB64, output="tsqr-gen-wide-mpi2", mpi=True)

    # -- TSQR on every input kind ---------------------------------------------------------
    inputs = {
        "npy-f64": I("A.npy"),
        "npy-f64-fortran": I("AF.npy"),
        "npy-f32": I("A32.npy"),
        "npy-f32-bigendian": I("A32BE.npy"),
        "npy-wide-f64": I("W.npy"),
        "zarr-none": I("g-none.zarr"),
        "zarr-zstd": I("g-zstd.zarr"),
        "zarr-gzip": I("g-gzip.zarr"),
        "zarr-blosc-lz4": I("g-blosc-lz4.zarr"),
        "zarr-normal-zstd5": I("g-normal-zstd.zarr"),
        "zarr-from-npy-zstd3": I("a-zstd3.zarr"),
        "zarr-f32": I("a32.zarr"),
    }
    for name in zp_stores:
        inputs[name] = I(name + ".zarr")
    for kind, path in inputs.items():
        r.cli(f"tsqr/in-{kind}/values/threads2", ["tsqr", "--input", path, "--values-only"] + T2 + MIB64)
        r.cli(f"tsqr/in-{kind}/uv/threads2", ["tsqr", "--input", path] + T2 + MIB64, output=f"tsqr-in-{kind}")
    r.cli("tsqr/in-npy-f64/uv/serial", ["tsqr", "--input", I("A.npy")] + SERIAL + MIB64, output="tsqr-in-npy-f64-serial")
    r.cli("tsqr/in-zarr-zstd/uv/serial", ["tsqr", "--input", I("g-zstd.zarr")] + SERIAL + MIB64, output="tsqr-in-zarr-zstd-serial")
    r.cli("tsqr/in-zarr-none/values/no-check-finite", ["tsqr", "--input", I("g-none.zarr"), "--values-only", "--no-check-finite"] + T2 + MIB64)
    r.cli("tsqr/in-zarr-zstd/uv/mpi2", ["tsqr", "--input", I("g-zstd.zarr"), "--scheduler", "threads", "--workers", "1"] + MIB64, output="tsqr-in-zarr-zstd-mpi2", mpi=True)
    r.cli("tsqr/in-npy-f32/uv/mpi2", ["tsqr", "--input", I("A32.npy"), "--scheduler", "threads", "--workers", "1"] + MIB64, output="tsqr-in-npy-f32-mpi2", mpi=True)
    if "zp-v3-sharded" in zp_stores:
        r.cli("tsqr/in-zp-v3-sharded/uv/serial", ["tsqr", "--input", I("zp-v3-sharded.zarr")] + SERIAL + MIB64, output="tsqr-in-zp-sharded-serial")
    if o_direct_works(r.inputs):
        for kind in ["zarr-none", "zarr-zstd"]:
            r.cli(f"tsqr/in-{kind}/values/io-direct", ["tsqr", "--input", inputs[kind], "--values-only", "--io", "direct"] + T2 + MIB64)
        if "zp-v3-zstd" in zp_stores:
            r.cli("tsqr/in-zp-v3-zstd/uv/io-direct", ["tsqr", "--input", inputs["zp-v3-zstd"], "--io", "direct"] + T2 + MIB64, output="tsqr-in-zp-zstd-direct")
    else:
        print("note: O_DIRECT unavailable in the work directory: --io direct runs skipped", file=sys.stderr)

    # -- memory limits small enough to spill ----------------------------------------------
    spill = ["--memory-limit", "24MiB", "--accounting", "own", "--thresholds", "target=0.1"]
    r.cli("tsqr/gen-tall-uniform/uv/spill", ["tsqr"] + TALL + ["--seed", "1"] + T2 + spill, output="tsqr-gen-tall-spill")
    r.cli("tsqr/in-npy-f64/values/spill", ["tsqr", "--input", I("A.npy"), "--values-only"] + T2 + spill)
    r.cli("rsvd/gen-square-uniform/krylov/spill", ["rsvd"] + SQUARE + ["--seed", "5"] + T2 + spill)
    r.cli("rsvd/in-sq-zstd/subspace/uv/spill", ["rsvd", "--input", I("sq-zstd.zarr"), "--method", "subspace", "--seed", "5"] + T2 + spill, output="rsvd-sq-zstd-spill")
    r.cli("tsqr/gen-tall-uniform/uv/process-accounting-target0.1", ["tsqr"] + TALL + ["--seed", "1", "--memory-limit", "64MiB", "--thresholds", "target=0.1"] + T2, output="tsqr-gen-tall-proc-spill")

    # -- randomized SVD -------------------------------------------------------------------
    for dist in ["uniform", "normal"]:
        for method in ["krylov", "subspace"]:
            gen = SQUARE + ["--seed", "5", "--distribution", dist, "--method", method]
            r.cli(f"rsvd/gen-square-{dist}/{method}/values/threads2", ["rsvd"] + gen + T2 + MIB64)
            r.cli(f"rsvd/gen-square-{dist}/{method}/uv/threads2", ["rsvd"] + gen + T2 + MIB64, output=f"rsvd-gen-{dist}-{method}")
    gen = SQUARE + ["--seed", "5"]
    for method in ["krylov", "subspace"]:
        r.cli(f"rsvd/gen-square-uniform/{method}/uv/serial", ["rsvd"] + gen + ["--method", method] + SERIAL + MIB64, output=f"rsvd-gen-{method}-serial")
        r.cli(f"rsvd/gen-square-uniform/{method}/uv/mpi2", ["rsvd"] + gen + ["--method", method, "--scheduler", "threads", "--workers", "1"] + MIB64, output=f"rsvd-gen-{method}-mpi2", mpi=True)
    r.cli("rsvd/gen-square-uniform/subspace-q0/values", ["rsvd"] + gen + ["--method", "subspace", "--power-iters", "0"] + T2 + MIB64)
    r.cli("rsvd/gen-square-uniform/krylov-k9-p4-q2-probes5/uv", ["rsvd"] + gen + ["-k", "9", "--oversamples", "4", "--power-iters", "2", "--probes", "5"] + T2 + MIB64, output="rsvd-gen-k9")
    r.cli("rsvd/gen-small/krylov-fills-space/uv", ["rsvd"] + SMALL + ["--seed", "6", "--power-iters", "20"] + T2 + MIB64, output="rsvd-gen-small-fill")
    r.cli("rsvd/gen-tall/krylov/values", ["rsvd", "--rows", "10007", "--cols", "37", "--chunk", "1000", "--seed", "5"] + T2 + MIB64)
    for kind in ["npy-f64", "npy-f32", "zarr-zstd", "zarr-f32", "npy-wide-f64"] + [s for s in ["zp-v3-sharded", "zp-v2-blosc-lz4", "zp-v3-colchunks"] if s in zp_stores]:
        # A .npy's 6990-row panels and generate's 10000-row conversions need more than 64 MiB.
        limit = ["--memory-limit", "256MiB"] if kind in ("npy-f64", "npy-f32", "zarr-f32") else MIB64
        r.cli(f"rsvd/in-{kind}/krylov/uv", ["rsvd", "--input", inputs[kind], "--seed", "5"] + T2 + limit, output=f"rsvd-in-{kind}")
    r.cli("rsvd/in-npy-f64/subspace/values", ["rsvd", "--input", I("A.npy"), "--seed", "5", "--method", "subspace"] + T2 + MIB64)
    for method in ["krylov", "subspace"]:
        r.cli(f"rsvd/in-sq-zstd/{method}/uv", ["rsvd", "--input", I("sq-zstd.zarr"), "--seed", "5", "--method", method] + T2 + MIB64, output=f"rsvd-in-sq-zstd-{method}")
    r.cli("rsvd/in-sq-zstd/krylov/values/mpi2", ["rsvd", "--input", I("sq-zstd.zarr"), "--seed", "5", "--scheduler", "threads", "--workers", "1"] + MIB64, mpi=True)

    # -- means ----------------------------------------------------------------------------
    means = ["means", "--tasks", "20", "--n", "10000", "--repeat", "1", "--seed", "3"]
    r.cli("means/serial", means + SERIAL + MIB64)
    r.cli("means/threads2", means + T2 + MIB64)
    r.cli("means/mpi2", means + ["--scheduler", "serial"] + MIB64, mpi=True)

    # -- the Python package ---------------------------------------------------------------
    if r.opts.python:
        only = [] if r.opts.only is None else [r.opts.only]
        started = time.monotonic()
        out, code, err = r.python("python_runs", r.opts.python, PYTHON_RUNS, r.inputs, *only)
        lines = [l.split() for l in (out or "").splitlines() if l.strip()]
        for parts in lines:
            if len(parts) == 2:
                r.hashes[parts[0]] = parts[1]
                if parts[1] == "FAILED":
                    r.failed.append(parts[0])
        if code != 0 and not any(p[1] == "FAILED" for p in lines if len(p) == 2):
            r.fail("py", f"{r.opts.python} running the Python package's runs failed (exit {code}):\n{err}")
        elif err.strip():
            print(err.rstrip(), file=sys.stderr)  # the tracebacks of failed runs, warnings
        print(f"py: {len(lines)} runs in {time.monotonic() - started:.1f} s", file=sys.stderr)
    elif not r.opts.python:
        print("note: no --python: the Python package's runs skipped", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="the large-svd binary")
    parser.add_argument("--python", help="a Python with the outcore package (and numpy; zarr for its stores)")
    parser.add_argument("--zarr-python", help="a Python with numpy and zarr-python 3 to write the zarr-python input stores (default: --python)")
    parser.add_argument("--mpirun", help="mpirun, to run some runs as 2 MPI ranks (the binary built with --features mpi)")
    parser.add_argument("--work", help="directory for inputs and outputs (created, must be empty; kept); default a temporary one, removed")
    parser.add_argument("--only", help="run only the runs whose name contains this (inputs are always written)")
    opts = parser.parse_args()
    opts.bin = os.path.abspath(opts.bin)
    if not os.access(opts.bin, os.X_OK):
        parser.error(f"--bin {opts.bin} is not an executable")
    if opts.mpirun and os.sep not in opts.mpirun and shutil.which(opts.mpirun) is None:
        parser.error(f"--mpirun {opts.mpirun} is not on PATH")
    if opts.work:
        work = os.path.abspath(opts.work)
        os.makedirs(work, exist_ok=True)
        if os.listdir(work):
            parser.error(f"--work {work} is not empty")
        remove = False
    else:
        work = tempfile.mkdtemp(prefix="outcore-behaviour-")
        remove = True
    started = time.monotonic()
    try:
        runs = Runs(opts, work)
        all_runs(runs)
    finally:
        if remove:
            shutil.rmtree(work, ignore_errors=True)
    for name in sorted(runs.hashes):
        print(name, runs.hashes[name])
    print(f"{len(runs.hashes)} runs in {time.monotonic() - started:.1f} s", file=sys.stderr)
    if runs.failed:
        print(f"{len(runs.failed)} run(s) failed: {', '.join(sorted(set(runs.failed)))}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
