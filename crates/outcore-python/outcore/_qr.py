"""The QR family: numpy's ``qr`` and ``lstsq``, scipy's ``qr_multiply``, and ``lq``, by TSQR."""

import numbers
import os

import numpy as np

from . import _as_rhs, _as_source, _core, _memory, _out, _workers


def qr(a, mode="reduced", *, memory_limit=None, n_jobs=None, q_out=None, progress=None):
    """The QR factorization of a tall ``a`` (at least as many rows as columns) by TSQR, as
    numpy's ``qr``: ``mode="reduced"`` returns ``(Q, R)`` (Q m x n, streamed in a second pass;
    ``q_out`` writes it to a new Zarr array at that path and returns the path in its place),
    ``mode="r"`` returns ``R`` alone from one pass. R's diagonal is non-negative, so the result
    is the same whatever the chunking or the number of workers. ``mode="complete"`` returns an
    m x m Q (Q's columns completed by an orthonormal basis of the rest) and an m x n R where
    that Q fits ``memory_limit``, and is refused otherwise; ``"raw"`` is refused (outcore keeps
    its Householder factors internal: see ``qr_multiply`` to apply Q).
    """
    if mode not in ("reduced", "r", "complete"):
        raise ValueError(f"mode={mode!r} is not offered (outcore keeps its Householder factors internal: qr_multiply applies Q); use 'reduced', 'r' or 'complete'")
    if q_out is not None and mode != "reduced":
        raise ValueError(f"q_out: mode={mode!r} writes no Q to a store; use mode='reduced'")
    src = _as_source(a)
    limit = _memory(memory_limit)
    m, n = src.shape
    if m < n:
        raise ValueError(f"a is {m} x {n}, wide: outcore factors it through its transpose as A = L Q, with lq(a)")
    if mode == "complete":
        if m * m * 8 > limit:
            raise ValueError(
                f"mode='complete' gives an m x m Q, {m} x {m} here ({m * m * 8 / 2**30:.1f} GiB), more than memory_limit "
                f"({limit / 2**30:.1f} GiB); use mode='reduced' (Q m x n: the same factorization A = Q R without the "
                "columns A does not need) or raise memory_limit"
            )
    r = _core.qr(
        src.tall_handle,
        transpose=False,
        reduced=mode != "r",
        rhs=None,
        q_times=None,
        memory_limit=limit,
        workers=_workers(n_jobs),
        q_out=None if q_out is None else os.fspath(q_out),
        progress=progress,
    )
    R = r["r"].astype(src.out_dtype)
    if mode == "r":
        return R
    q = _out(r["q"], src.out_dtype)
    if mode == "complete":
        # The rest of an orthonormal basis: the last m - n columns of a complete Q of Q.
        rest = np.linalg.qr(q, mode="complete")[0][:, q.shape[1] :]
        return np.hstack([q, rest.astype(q.dtype)]), np.vstack([R, np.zeros((q.shape[0] - R.shape[0], R.shape[1]), R.dtype)])
    return q, R


def lq(a, mode="reduced", *, memory_limit=None, n_jobs=None, q_out=None, progress=None):
    """The LQ factorization ``a = L @ Q`` of a wide ``a`` (at least as many columns as rows),
    through the TSQR of ``a.T`` (``a.T = Q.T @ L.T``), read in place: ``mode="reduced"`` returns
    ``(L, Q)`` (L m x m lower triangular with a non-negative diagonal, Q m x n with orthonormal
    rows, a transposed view of the n x m ``Q.T`` streamed in a second pass; ``q_out`` writes
    ``Q.T`` to a new Zarr array at that path, chunked along ``a``'s columns, and returns the path
    in Q's place), ``mode="l"`` returns ``L`` alone from one pass.
    """
    if mode not in ("reduced", "l"):
        raise ValueError(f"mode must be 'reduced' (L and Q) or 'l' (L alone), got {mode!r}")
    if q_out is not None and mode != "reduced":
        raise ValueError("q_out: mode='l' computes no Q to write; use mode='reduced'")
    src = _as_source(a)
    m, n = src.shape
    if m > n:
        raise ValueError(f"a is {m} x {n}, tall: its factorization is qr(a) (A = Q R); lq takes a wide matrix")
    r = _core.qr(
        src.tall_handle,
        transpose=True,
        reduced=mode == "reduced",
        rhs=None,
        q_times=None,
        memory_limit=_memory(memory_limit),
        workers=_workers(n_jobs),
        q_out=None if q_out is None else os.fspath(q_out),
        progress=progress,
    )
    L = np.ascontiguousarray(r["r"].T).astype(src.out_dtype)
    if mode == "l":
        return L
    qt = _out(r["q"], src.out_dtype)
    return L, (qt if isinstance(qt, str) else qt.T)


def qr_multiply(a, c, mode="right", *, memory_limit=None, n_jobs=None, out=None, progress=None):
    """Q of the QR of a tall ``a`` applied to ``c`` without forming Q, as scipy's
    ``qr_multiply``: returns ``(CQ, R)``.

    ``mode="right"``: ``c @ Q`` for ``c`` of ``a``'s rows as columns (``p x m``, or 1-D of
    length m), from one pass over ``a`` and ``c.T`` side by side (a numpy, zarr or dask array,
    read transposed in place: for a store holding ``B = c.T``, ``Q.T @ B`` is
    ``qr_multiply(a, dask.array.from_zarr(path).T)[0].T``): ``p x n``.
    ``mode="left"``: ``Q @ c`` for a small ``c`` (``n x p``, or 1-D of length n, in memory),
    streamed out in a second pass (``out`` writes it to a new Zarr array at that path and
    returns the path in its place): ``m x p``. R (``n x n``) has a non-negative diagonal; Q is
    that of ``qr(a)``.
    """
    if mode not in ("left", "right"):
        raise ValueError(f"mode must be 'left' (Q @ c) or 'right' (c @ Q), got {mode!r}")
    src = _as_source(a)
    m, n = src.shape
    settings = dict(memory_limit=_memory(memory_limit), workers=_workers(n_jobs), progress=progress)
    if mode == "right":
        if out is not None:
            raise ValueError("out: mode='right' gives a small p x n result, returned in memory; out is for mode='left'")
        if isinstance(c, (str, os.PathLike)):
            raise ValueError("c: mode='right' takes c as an array (p x m); for a store holding c.T, pass dask.array.from_zarr(path).T")
        flat = getattr(c, "ndim", None) == 1 or (not hasattr(c, "ndim") and np.ndim(c) == 1)
        rhs, _ = _as_rhs(c if flat else c.T if hasattr(c, "T") else np.asarray(c).T)
        if rhs.shape[0] != m:
            raise ValueError(f"c has {rhs.shape[0]} columns and a {m} rows: c @ Q needs a column of c per row of a")
        r = _core.qr(src.tall_handle, transpose=False, reduced=False, rhs=rhs.handle, q_times=None, q_out=None, **settings)
        cq = r["qt_b"].T.astype(src.out_dtype)
        return (cq[0] if flat else cq), r["r"].astype(src.out_dtype)
    c = np.asarray(c, dtype=np.float64)
    flat = c.ndim == 1
    c2 = c[:, None] if flat else c
    if c2.ndim != 2 or c2.shape[0] != n or c2.shape[1] == 0:
        raise ValueError(f"c has shape {c.shape}; Q @ c needs a row of c per column of a ({n}), and a column at least")
    r = _core.qr(src.tall_handle, transpose=False, reduced=True, rhs=None, q_times=np.ascontiguousarray(c2), q_out=None if out is None else os.fspath(out), **settings)
    qc = _out(r["q"], src.out_dtype)
    if flat and not isinstance(qc, str):
        qc = qc[:, 0]
    return qc, r["r"].astype(src.out_dtype)


def lstsq(a, b, rcond=None, *, memory_limit=None, n_jobs=None, progress=None):
    """The least-squares solution of ``a @ x = b``, as numpy's ``lstsq``: ``(x, residuals,
    rank, s)``, from one pass over ``a`` and ``b`` side by side (never ``a.T @ a``).

    ``b`` (1-D or 2-D, any source ``a`` may be, chunked like ``a`` or not) has ``a``'s rows. A
    rank-deficient or wide ``a`` gets the minimum-norm solution; ``rcond`` is numpy's cutoff
    (``None``: machine epsilon times ``max(m, n)``; outside (0, 1), machine epsilon, as
    LAPACK's). ``residuals`` are the squared residual
    norms when ``a`` has full column rank and more rows than columns, else empty.
    """
    if rcond is not None and not (isinstance(rcond, numbers.Real) and np.isfinite(rcond)):
        raise ValueError(f"rcond must be None or a finite number, got {rcond!r}")
    src = _as_source(a)
    rhs, flat = _as_rhs(b)
    r = _fit(src, rhs, None, rcond=rcond, fit_intercept=False, alpha=0.0, memory_limit=memory_limit, n_jobs=n_jobs, progress=progress)
    dtype = src.out_dtype if rhs.out_dtype == src.out_dtype else np.float64
    x = r["x"].astype(dtype)
    residuals = r["residuals"].astype(dtype)
    return (x[:, 0] if flat else x), residuals, int(r["rank"]), r["s"].astype(dtype)


def _fit(src, rhs, weights, **settings):
    """The core's least-squares fit of ``rhs`` on ``src`` (rows weighted by ``weights``, a
    column source, unless ``None``): a dict of numpy arrays."""
    if rhs.shape[0] != src.shape[0]:
        raise ValueError(f"b has {rhs.shape[0]} rows and a has {src.shape[0]}: each row of b goes with a row of a")
    if rhs.shape[1] == 0:
        raise ValueError("b has no columns")
    return _core.lstsq(
        src.tall_handle,
        rhs.handle,
        weights=None if weights is None else weights.handle,
        rcond=settings["rcond"],
        fit_intercept=settings["fit_intercept"],
        alpha=float(settings["alpha"]),
        memory_limit=_memory(settings["memory_limit"]),
        workers=_workers(settings["n_jobs"]),
        progress=settings["progress"],
    )
