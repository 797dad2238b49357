"""outcore on a Dask cluster: each task factors one row block where a worker holds it, with
outcore's engine under its own memory limit (Dask counts it as the worker's unmanaged memory);
only ``n x n`` states travel, merged in a tree; U and the scores are computed block by block
where the blocks live, and come back as dask arrays.

    import dask.array as da, outcore.dask
    from distributed import Client
    client = Client(...)                       # LocalCluster, dask-jobqueue, dask-mpi, ...
    x = da.from_zarr("big.zarr")
    U, s, Vt = outcore.dask.svd(x)             # exact; U a dask array, s and Vt numpy
    pca = outcore.dask.PCA(10).fit(x)          # exact PCA; pca.transform(x) is a dask array

Without a client, Dask's default scheduler runs the same graph in this process. The results
are those of ``outcore.svd`` and ``outcore.PCA`` on the whole array, to rounding.
"""

import warnings

import numpy as np

from . import FactorState, _memory

#: Largest row block (bytes) a column-chunked array is rechunked into with a warning; beyond
#: it the array is refused with the rechunk that fits.
MAX_BLOCK_BYTES = 1 << 30

#: States merged per node of the reduction tree.
FAN_IN = 8


def _rows(x):
    """``x`` (a 2-D dask array) chunked by rows only: full-width blocks. A column-chunked array
    is rechunked with a warning where the full-width blocks stay under ``MAX_BLOCK_BYTES``,
    else refused with a rechunk that fits."""
    import dask.array as da

    if not isinstance(x, da.Array) or x.ndim != 2:
        raise TypeError(f"outcore.dask takes a 2-D dask array, got {type(x).__name__}")
    if x.numblocks[1] == 1:
        return x
    itemsize = np.dtype(x.dtype).itemsize
    widest = max(x.chunks[0]) * x.shape[1] * itemsize
    if widest > MAX_BLOCK_BYTES:
        rows = max(1, MAX_BLOCK_BYTES // 4 // (x.shape[1] * itemsize))
        raise ValueError(
            f"x is chunked in {x.numblocks[1]} column blocks; its full-width row blocks would hold "
            f"{widest / 2**20:.0f} MiB each: rechunk it by rows first, e.g. x.rechunk({{0: {rows}, 1: -1}})"
        )
    warnings.warn(
        f"x is chunked in {x.numblocks[1]} column blocks: rechunked to full-width row blocks (outcore.dask "
        "factors whole rows); rechunk it with x.rechunk({1: -1}) to choose the rows yourself",
        stacklevel=3,
    )
    return x.rechunk({1: -1})


def _state_of(block, memory_limit):
    """The state of one row block, computed where it lies."""
    state = FactorState(block.shape[1])
    if block.shape[0]:
        state.update(np.asarray(block), memory_limit=memory_limit, workers=None, progress=None)
    return state


def _merged(*states):
    """The states merged, in order, into a new one (the inputs are left as they are: Dask may
    hand the same result to another task)."""
    merged = FactorState.from_bytes(states[0].to_bytes())
    for other in states[1:]:
        merged.merge(other)
    return merged


def fit_state(x, *, memory_limit=None):
    """The ``FactorState`` of every row of the dask array ``x``, computed on the blocks where
    they lie and merged in a tree of ``FAN_IN`` states per node: a ``dask.delayed`` object
    (``.compute()`` it, or pass it to ``client.compute``)."""
    from dask import delayed

    x = _rows(x)
    limit = _memory(memory_limit)
    parts = [delayed(_state_of, pure=True)(block, limit) for block in x.to_delayed()[:, 0]]
    while len(parts) > 1:
        parts = [delayed(_merged, pure=True)(*parts[i : i + FAN_IN]) for i in range(0, len(parts), FAN_IN)]
    return parts[0]


def svd(x, *, compute_uv=True, memory_limit=None):
    """The exact thin SVD of the dask array ``x`` (at least as many rows as columns): ``(U, s,
    Vt)`` with U a dask array chunked as ``x``'s rows (``x`` applied to ``V / s`` block by block,
    where the blocks live), or ``s`` alone. Signs as ``outcore.svd``'s: the entry of largest
    magnitude in each row of ``Vt`` positive. ``memory_limit`` bounds each task's engine."""
    x = _rows(x)
    m, n = x.shape
    if m < n:
        raise ValueError(f"x is {m} x {n}, wide: outcore.dask.svd takes a tall array (factor x.T and swap U and V)")
    r = fit_state(x, memory_limit=memory_limit).compute().svd(False)
    s, v = r["s"][:n], r["v"][:, :n]
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    if not compute_uv:
        return s.astype(dtype)
    # U = X V S^-1, with no division by a zero singular value (its column of U is 0).
    scale = np.divide(v, s, out=np.zeros_like(v), where=s > s[0] * n * np.finfo(np.float64).eps)
    u = x.map_blocks(_times, scale, dtype=dtype, chunks=(x.chunks[0], (len(s),)))
    return u, s.astype(dtype), np.ascontiguousarray(v.T, dtype=dtype)


def _times(block, matrix, offset=None):
    """``(block - offset) @ matrix`` in float64, returned in the block's float dtype."""
    data = np.asarray(block, dtype=np.float64)
    if offset is not None:
        data = data - offset
    out = data @ matrix
    return out.astype(np.float32 if block.dtype == np.float32 else np.float64, copy=False)


def __getattr__(name):
    """``PCA``, built on scikit-learn, imported when first used."""
    if name == "PCA":
        from ._dask_pca import PCA

        return PCA
    raise AttributeError(f"module 'outcore.dask' has no attribute {name!r}")


__all__ = ["svd", "fit_state", "FAN_IN", "MAX_BLOCK_BYTES"]  # and PCA, imported when first used
