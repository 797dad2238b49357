//! Where a command's matrix comes from and where its results go: the input (a store, or the
//! generated matrix), output directories, the arrays of the large factors, and what rank 0
//! shares of them with the other ranks of a job.

use std::path::Path;
use std::sync::Arc;

use outcore::files::{OutputDir, check_no_overlap, write_vector_zarr};
use outcore::storage::{ChunkGrid, FaultyStore, ReadMode, StorageError, ZarrOptions, ZarrStore};
use outcore::{ChunkedMatrix, Destination, Error, Result};

use crate::args::MatrixArgs;
use crate::faults::InjectedFaults;
use crate::report::summary::Summary;

/// The matrix the command works on, from `--input` or generated.
pub(crate) fn open_matrix(args: &MatrixArgs) -> Result<ChunkedMatrix> {
    if let Some(path) = &args.input {
        return open_path(path, args.io);
    }
    let chunk_cols = args.chunk_cols.unwrap_or(args.cols);
    ChunkedMatrix::generated(args.distribution, args.seed, args.rows, args.cols, args.chunk_rows, chunk_cols)
}

/// A matrix from a Zarr array or `.npy` file (the input, or a least-squares command's
/// right-hand sides), failing as `OUTCORE_INJECT_FAULTS` says.
pub(crate) fn open_path(path: &Path, io: ReadMode) -> Result<ChunkedMatrix> {
    let matrix = ChunkedMatrix::open_with(path, io)?;
    Ok(match InjectedFaults::from_env()?.input {
        Some(plan) => ChunkedMatrix::from_store(Arc::new(FaultyStore::new(matrix.store().clone(), plan))),
        None => matrix,
    })
}

/// Starts the output `path` for results computed from `input`, refusing one over the input,
/// and says which partial outputs of killed runs it removed on the way: a directory of results
/// ([`OutputDir::create`]), or with `array` a Zarr array ([`OutputDir::create_for_array`]).
pub(crate) fn create_output(path: &Path, overwrite: bool, input: &ChunkedMatrix, array: bool) -> Result<OutputDir> {
    check_no_overlap(input, path)?;
    let out = if array { OutputDir::create_for_array(path, overwrite)? } else { OutputDir::create(path, overwrite)? };
    notice_leftovers(out.leftovers_removed(), "partial output", "partial outputs");
    Ok(out)
}

/// Tells on stderr what leftovers of killed runs were removed (rank 0 alone, under MPI).
pub(crate) fn notice_leftovers(removed: &[std::path::PathBuf], one: &str, many: &str) {
    if let Some(first) = removed.first().filter(|_| crate::ranks::is_root()) {
        let what = if removed.len() == 1 { one } else { many };
        eprintln!("note: removed {} {what} left by killed runs (e.g. {})", removed.len(), first.display());
    }
}

/// Creates the Zarr array `name` in `out` for a factor (U or V) of `a` with `grid`, in `a`'s
/// precision, failing as `OUTCORE_INJECT_FAULTS` says: the destination of a run writing into
/// `out`.
pub(crate) fn factor_store(
    out: &OutputDir,
    name: &str,
    grid: ChunkGrid,
    a: &ChunkedMatrix,
) -> Result<Destination<'static>> {
    let options = ZarrOptions { dtype: a.store().dtype(), ..ZarrOptions::default() };
    let store = Arc::new(ZarrStore::create(out.path().join(name), grid, &options)?);
    Ok(Destination::Store(InjectedFaults::from_env()?.output(store)))
}

/// What rank 0 shares with the other ranks of an MPI job before a run: the path of its partial
/// output directory, where they open the factor arrays it created (empty without one).
pub(crate) fn output_share(output: Option<&OutputDir>) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    // Absolute: ranks need not share a working directory.
    let absolute = |o: &OutputDir| std::fs::canonicalize(o.path()).unwrap_or_else(|_| o.path().to_path_buf());
    output.map(|o| absolute(o).as_os_str().as_bytes().to_vec()).unwrap_or_default()
}

/// On a rank other than 0: the factor array `name` rank 0 created in its partial output
/// directory `shared` (on storage every rank sees), opened to write this rank's rows.
pub(crate) fn shared_factor(shared: &[u8], name: &str) -> Result<Destination<'static>> {
    use std::os::unix::ffi::OsStrExt;
    let dir = Path::new(std::ffi::OsStr::from_bytes(shared));
    let store = Arc::new(ZarrStore::open(dir.join(name))?);
    Ok(Destination::Store(InjectedFaults::from_env()?.output(store)))
}

/// Completes an `--output` directory: writes `s.zarr` (where the command has singular values)
/// and `summary.json` (with the output's final path in `summary`), then moves the directory
/// into place.
pub(crate) fn commit_output(out: OutputDir, summary: &mut Summary) -> Result<()> {
    if let Some(s) = &summary.singular_values {
        write_vector_zarr(&out.path().join("s.zarr"), s, summary.dtype())?;
    }
    summary.output = Some(out.target().to_path_buf());
    let path = out.path().join("summary.json");
    let text = serde_json::to_string_pretty(summary).map_err(|e| Error::Bug(format!("summary: {e}")))?;
    std::fs::write(&path, text).map_err(|e| StorageError::io(&path, e))?;
    out.commit().map(drop)
}
