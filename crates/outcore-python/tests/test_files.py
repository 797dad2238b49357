"""Where scientists keep big matrices: HDF5 and NetCDF4 datasets (files written here by h5py,
netCDF4-python and xarray; paths, h5py datasets, netCDF4 variables, xarray DataArrays not
loaded), AnnData objects and ``.h5ad`` files (dense and sparse ``X``), each against the same
matrix in memory; and the mistakes, each a typed error that names the place."""

import anndata
import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr

import outcore


def _matrix(m=1_003, n=37, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, n)) + 10.0 * rng.random(n)


def _close(a, b, scale):
    np.testing.assert_allclose(a, b, rtol=0, atol=64 * np.finfo(float).eps * np.sqrt(max(1_003, 37)) * scale)


@pytest.fixture
def h5(tmp_path):
    X = _matrix()
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("/results/x", data=X, chunks=(100, 37), compression="gzip", shuffle=True)
        f.create_dataset("/results/x32", data=X.astype(np.float32), chunks=(64, 8))
        f.create_dataset("/cube", data=np.zeros((4, 5, 6)))
        f.create_dataset("/names", data=np.array([[b"a", b"b"]] * 3))
    return path, X


def test_hdf5_datasets_by_path_and_by_h5py_match_the_matrix_in_memory(h5):
    path, X = h5
    want = outcore.PCA(5, svd_solver="full").fit(X)
    scale = np.linalg.norm(X - X.mean(axis=0))
    for source in (f"{path}:/results/x", h5py.File(path)["/results/x"]):
        got = outcore.PCA(5, svd_solver="full").fit(source)
        _close(got.singular_values_, want.singular_values_, scale)
        _close(got.mean_, want.mean_, np.abs(X).max())
    s32 = outcore.svd(f"{path}:/results/x32", compute_uv=False)
    assert s32.dtype == np.float32
    np.testing.assert_allclose(s32, np.linalg.svd(X.astype(np.float32).astype(np.float64), compute_uv=False), rtol=1e-5)


def test_netcdf4_variables_by_path_netcdf4_and_xarray_match_the_matrix_in_memory(tmp_path):
    X = _matrix(seed=1)
    path = tmp_path / "eof.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", X.shape[0])
        ds.createDimension("space", X.shape[1])
        var = ds.createVariable("sst", "f8", ("time", "space"), zlib=True, chunksizes=(128, 37))
        var[:] = X
    want = np.linalg.svd(X, compute_uv=False)
    scale = np.linalg.norm(X)
    _close(outcore.svd(f"{path}:sst", compute_uv=False), want, scale)
    with netCDF4.Dataset(path) as ds:
        _close(outcore.svd(ds["sst"], compute_uv=False), want, scale)
    with xr.open_dataset(path) as ds:
        lazy = ds["sst"]
        assert not lazy.variable._in_memory
        _close(outcore.randomized_svd(lazy, 3, random_state=0)[1], want[:3], scale * 1e3)
        assert not lazy.variable._in_memory, "the DataArray was read block by block, never loaded whole"


def test_a_fill_value_is_refused_as_nan_naming_the_row_and_column(tmp_path):
    path = tmp_path / "gaps.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("t", 50)
        ds.createDimension("x", 4)
        var = ds.createVariable("v", "f4", ("t", "x"), fill_value=-999.0)
        values = np.ones((50, 4), dtype=np.float32)
        values[17, 2] = -999.0
        var[:] = values
    with pytest.raises(ValueError, match="row 17, column 2"):
        outcore.svd(f"{path}:v")
    with pytest.raises(KeyError, match="has no variable 'w'; its variables: v"):
        outcore.svd(f"{path}:w")


@pytest.mark.parametrize("sparse_x", [False, True], ids=["dense", "sparse"])
def test_anndata_objects_and_h5ad_files(tmp_path, sparse_x):
    from scipy import sparse

    X = _matrix(400, 30, seed=2)
    X[X < 8.0] = 0.0  # a count-like matrix, mostly zeros
    adata = anndata.AnnData(sparse.csr_matrix(X) if sparse_x else X)
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    want = outcore.PCA(4, svd_solver="full").fit(X).singular_values_
    for source in (adata, path, f"{path}:X"):
        got = outcore.PCA(4, svd_solver="full").fit(source)
        _close(got.singular_values_, want, np.linalg.norm(X))
        assert got.transform(source).shape == (400, 4)


def test_mistakes_in_files_are_typed_errors_naming_the_place(h5, tmp_path):
    path, _ = h5
    with pytest.raises(KeyError, match=r"has no 'results/y'; its datasets: cube, names, results/x"):
        outcore.svd(f"{path}:results/y")
    with pytest.raises(ValueError, match=r"has shape \(4, 5, 6\), not a matrix; reshape it"):
        outcore.svd(f"{path}:/cube")
    with pytest.raises(TypeError, match="cannot factor an array of \\|S1"):
        outcore.svd(f"{path}:/names")
    with pytest.raises(ValueError, match="is a group, not a dataset"):
        outcore.svd(f"{path}:/results")
    with pytest.raises(ValueError, match="name the dataset or variable"):
        outcore.svd(path)
    not_hdf5 = tmp_path / "text.h5"
    not_hdf5.write_text("not HDF5")
    with pytest.raises(OSError, match="text.h5"):
        outcore.svd(f"{not_hdf5}:x")
