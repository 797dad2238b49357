//! Output directories that appear atomically, and output paths that never overlap the input.

use std::path::{Path, PathBuf};

#[cfg(feature = "zarr")]
use outcore_storage::{ChunkGrid, ChunkStore, Dtype, ZarrOptions, ZarrStore};
use outcore_storage::{Knob, Message, StorageError};

use crate::error::{Error, Result};
use crate::matrix::ChunkedMatrix;

/// Refuses an output at, inside or around the input's own files.
pub fn check_no_overlap(input: &ChunkedMatrix, output: &Path) -> Result<()> {
    let Some(source) = input.store().location() else { return Ok(()) };
    if overlap(source, output) {
        return Err(Error::invalid(
            Knob::Destination,
            format!(
                "{} would overwrite the input {} (it is the same path, inside it, or contains it); choose an output elsewhere",
                output.display(),
                source.display()
            ),
        ));
    }
    Ok(())
}

/// Whether `a` and `b` are the same path or one lies inside the other, once resolved (`./x`
/// and `x`, links in existing parents).
pub(crate) fn overlap(a: &Path, b: &Path) -> bool {
    let absolute = |p: &Path| -> PathBuf {
        // The longest existing ancestor, resolved, then the rest as given.
        let mut existing = p.to_path_buf();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name().map(ToOwned::to_owned), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent.to_path_buf() };
                }
                _ => break,
            }
        }
        let mut resolved = existing.canonicalize().unwrap_or(existing);
        resolved.extend(rest.iter().rev());
        resolved
    };
    let (a, b) = (absolute(a), absolute(b));
    a.starts_with(&b) || b.starts_with(&a)
}

/// A result directory under construction.
#[derive(Debug)]
pub struct OutputDir {
    target: PathBuf,
    partial: PathBuf,
    overwrite: bool,
    committed: bool,
    leftovers: Vec<PathBuf>,
}

impl OutputDir {
    /// Starts building the directory `target`. Fails if it exists (unless `overwrite`) or its
    /// parent cannot be written, before any work is done.
    pub fn create(target: impl AsRef<Path>, overwrite: bool) -> Result<Self> {
        Self::create_as(target, Some(overwrite), true)
    }

    /// As [`create`](Self::create), for a Zarr array: the partial path is left for
    /// the array's creation to make, so the array is the output itself.
    pub fn create_for_array(target: impl AsRef<Path>, overwrite: bool) -> Result<Self> {
        Self::create_as(target, Some(overwrite), false)
    }

    /// As [`create_for_array`](Self::create_for_array) for a caller that offers no way to
    /// overwrite ([`Destination::Zarr`](crate::Destination)): an existing path is refused with
    /// a fix the caller can apply.
    #[cfg(feature = "zarr")]
    pub(crate) fn create_new_array(target: impl AsRef<Path>) -> Result<Self> {
        Self::create_as(target, None, false)
    }

    /// As [`create`](Self::create); `overwrite` is `None` where the caller has no such
    /// option; with `make_dir` false the partial path is left for the caller to create (a
    /// Zarr array creates its own directory).
    fn create_as(target: impl AsRef<Path>, overwrite: Option<bool>, make_dir: bool) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        let name = target
            .file_name()
            .ok_or_else(|| {
                Error::invalid(Knob::Destination, format!("{} has no final component to create", target.display()))
            })?
            .to_string_lossy()
            .into_owned();
        // Zarr names its files by UTF-8 paths: refused now, not after the work.
        if target.to_str().is_none() {
            return Err(Error::invalid(
                Knob::Destination,
                format!(
                    "{} is not valid UTF-8, which Zarr needs for its paths; choose a name in UTF-8",
                    target.display()
                ),
            ));
        }
        if target.exists() && overwrite != Some(true) {
            let exists = Message::new().text(format!("{} already exists; ", target.display()));
            let message = match overwrite {
                Some(_) => exists.text("set ").knob(Knob::Overwrite).text(" to replace it, or choose another path"),
                None => exists.text("remove it or choose another path"),
            };
            return Err(Error::invalid(Knob::Destination, message));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            let problem = if parent.exists() { "is not a directory" } else { "does not exist" };
            return Err(Error::invalid(
                Knob::Destination,
                format!(
                    "{} cannot be created: {} {problem}; create that directory or choose another path",
                    target.display(),
                    parent.display()
                ),
            ));
        }
        // Partial outputs of runs that were killed (named by their process) go first.
        let prefix = format!(".{name}.partial-");
        let leftovers = outcore_storage::remove_leftovers(&parent, &prefix);
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let partial = parent.join(format!("{prefix}{}-{serial}", outcore_storage::process_tag()));
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| StorageError::io(&partial, e))?;
        }
        if make_dir {
            // Named by the target the user gave; the error's hint says what to do.
            std::fs::create_dir(&partial).map_err(|e| StorageError::io(&target, e))?;
        } else {
            // Check now that the parent takes new entries, not after the run.
            std::fs::create_dir(&partial)
                .and_then(|()| std::fs::remove_dir(&partial))
                .map_err(|e| StorageError::io(&target, e))?;
        }
        Ok(Self { target, partial, overwrite: overwrite == Some(true), committed: false, leftovers })
    }

    /// Partial outputs of earlier runs that were killed before they could clean up, removed
    /// when this one was created.
    pub fn leftovers_removed(&self) -> &[PathBuf] {
        &self.leftovers
    }

    /// Where to write the result's files until it is committed.
    pub fn path(&self) -> &Path {
        &self.partial
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the finished result into place; returns its final path.
    pub fn commit(mut self) -> Result<PathBuf> {
        let io = |path: &Path, e| Error::from(StorageError::io(path, e));
        if self.target.exists() {
            if !self.overwrite {
                return Err(Error::invalid(
                    Knob::Destination,
                    format!("{} appeared while the run was going", self.target.display()),
                ));
            }
            let mut old = self.partial.clone().into_os_string();
            old.push(".replaced");
            let old = PathBuf::from(old);
            std::fs::rename(&self.target, &old).map_err(|e| io(&self.target, e))?;
            if let Err(e) = std::fs::rename(&self.partial, &self.target) {
                // Put the old result back rather than leave nothing under its name.
                let _ = std::fs::rename(&old, &self.target);
                return Err(io(&self.target, e));
            }
            // The replaced result: a directory, or a plain file the new one took the name of.
            let _ = if old.is_dir() { std::fs::remove_dir_all(&old) } else { std::fs::remove_file(&old) };
        } else {
            std::fs::rename(&self.partial, &self.target).map_err(|e| io(&self.target, e))?;
        }
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed && self.partial.exists() {
            let _ = std::fs::remove_dir_all(&self.partial);
        }
    }
}

#[cfg(feature = "zarr")]
/// Writes a dense matrix as a 2-D Zarr v3 array of `dtype` at `path` (with the default
/// checksum), in chunks of `chunk_rows` rows.
pub fn write_matrix_zarr(path: &Path, m: faer::MatRef<'_, f64>, chunk_rows: usize, dtype: Dtype) -> Result<()> {
    let (rows, cols) = m.shape();
    let grid = ChunkGrid::new(rows, cols, chunk_rows.clamp(1, rows.max(1)), cols.max(1))?;
    let store = ZarrStore::create(path, grid, &ZarrOptions { dtype, ..ZarrOptions::default() })?;
    for index in grid.indices() {
        let e = grid.extent(index)?;
        let chunk: Vec<f64> =
            (0..e.len()).map(|i| m[(e.row0 + i / e.cols.max(1), e.col0 + i % e.cols.max(1))]).collect();
        store.write_chunk(index, &chunk)?;
    }
    Ok(())
}

#[cfg(feature = "zarr")]
/// Writes singular values as a 1-D Zarr v3 array of `dtype` at `path`, with the checksum U and
/// V carry.
pub fn write_vector_zarr(path: &Path, values: &[f64], dtype: Dtype) -> Result<()> {
    Ok(ZarrStore::write_vector(path, values, &ZarrOptions { dtype, ..ZarrOptions::default() })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_appears_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        {
            let out = OutputDir::create(&target, false).unwrap();
            std::fs::write(out.path().join("x"), "partial").unwrap();
        }
        assert!(!target.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the partial directory was not removed");
        let out = OutputDir::create(&target, false).unwrap();
        std::fs::write(out.path().join("x"), "done").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read_to_string(target.join("x")).unwrap(), "done");
    }

    #[test]
    fn existing_targets_need_overwrite_and_are_replaced_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("x"), "old").unwrap();
        let err = OutputDir::create(&target, false).unwrap_err().to_string();
        assert!(err.contains("already exists") && err.contains("`overwrite`"), "{err}");
        let out = OutputDir::create(&target, true).unwrap();
        std::fs::write(out.path().join("x"), "new").unwrap();
        drop(out);
        assert_eq!(
            std::fs::read_to_string(target.join("x")).unwrap(),
            "old",
            "an abandoned run must keep the old result"
        );
        let out = OutputDir::create(&target, true).unwrap();
        std::fs::write(out.path().join("x"), "new").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read_to_string(target.join("x")).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    #[cfg(feature = "zarr")]
    fn a_caller_without_overwrite_is_told_to_remove_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("u.zarr");
        std::fs::create_dir(&target).unwrap();
        let err = OutputDir::create_new_array(&target).unwrap_err().to_string();
        assert!(err.contains("already exists; remove it") && !err.contains("overwrite"), "{err}");
    }

    #[test]
    #[cfg(unix)]
    fn a_path_zarr_cannot_name_is_refused_before_any_work() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(std::ffi::OsStr::from_bytes(b"out-\xff"));
        let err = OutputDir::create(&target, false).unwrap_err().to_string();
        assert!(err.contains("not valid UTF-8"), "{err}");
        #[cfg(feature = "zarr")]
        {
            let err = OutputDir::create_new_array(&target).unwrap_err().to_string();
            assert!(err.contains("not valid UTF-8"), "{err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing may be created");
    }

    #[test]
    fn a_missing_parent_is_refused_up_front() {
        let err = OutputDir::create("/nonexistent-outcore-dir/out", false).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
