//! Results written atomically: nothing appears under the final name unless the run succeeded.
//!
//! An [`OutputDir`] is built in a hidden sibling directory (`.NAME.partial-PID`, on the same
//! filesystem as the target) and renamed into place by [`OutputDir::commit`]. Dropped without a
//! commit (an error, a panic, Ctrl-C), it removes the partial directory. An existing target is
//! refused unless overwriting was asked for; then it is replaced only after the new result is
//! complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use outcore_storage::{StorageError, ZarrStore, store::write_matrix};
use zarrs::array::{ArrayBuilder, data_type};
use zarrs::filesystem::FilesystemStore;

use crate::{Error, Result};

/// A result directory under construction.
#[derive(Debug)]
pub struct OutputDir {
    target: PathBuf,
    partial: PathBuf,
    overwrite: bool,
    committed: bool,
}

impl OutputDir {
    /// Starts building `target`. Fails if it exists (unless `overwrite`) or its parent cannot be
    /// written, before any work is done.
    pub fn create(target: impl AsRef<Path>, overwrite: bool) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        let name = target
            .file_name()
            .ok_or_else(|| {
                Error::invalid("output path", format!("{} has no final component to create", target.display()))
            })?
            .to_string_lossy()
            .into_owned();
        if target.exists() && !overwrite {
            return Err(Error::invalid(
                "output path",
                format!("{} already exists; pass --overwrite to replace it, or choose another path", target.display()),
            ));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            let problem = if parent.exists() { "is not a directory" } else { "does not exist" };
            return Err(Error::invalid(
                "output path",
                format!(
                    "{} cannot be created: {} {problem}; create that directory or choose another path",
                    target.display(),
                    parent.display()
                ),
            ));
        }
        let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| StorageError::io(&partial, e))?;
        }
        // Named by the target the user gave; the error's hint says what to do.
        std::fs::create_dir(&partial).map_err(|e| StorageError::io(&target, e))?;
        Ok(Self { target, partial, overwrite, committed: false })
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
                    "output path",
                    format!("{} appeared while the run was going", self.target.display()),
                ));
            }
            let old = self.partial.with_file_name(format!(".replaced-{}", std::process::id()));
            std::fs::rename(&self.target, &old).map_err(|e| io(&self.target, e))?;
            std::fs::rename(&self.partial, &self.target).map_err(|e| io(&self.target, e))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&self.partial, &self.target).map_err(|e| io(&self.target, e))?;
        }
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.partial);
        }
    }
}

/// Writes a dense matrix as a 2-D float64 Zarr v3 array at `path`, in one chunk per `chunk_rows`.
pub fn write_matrix_zarr(path: &Path, m: faer::MatRef<'_, f64>, chunk_rows: usize) -> Result<()> {
    let (rows, cols) = m.shape();
    let grid = outcore_storage::ChunkGrid::new(rows, cols, chunk_rows.clamp(1, rows.max(1)), cols.max(1))?;
    let store = ZarrStore::create(path, grid, &outcore_storage::ZarrOptions::default())?;
    let data: Vec<f64> = (0..rows * cols).map(|i| m[(i / cols.max(1), i % cols.max(1))]).collect();
    write_matrix(&store, &data)?;
    Ok(())
}

/// Writes a vector as a 1-D float64 Zarr v3 array at `path` (for singular values).
pub fn write_vector_zarr(path: &Path, values: &[f64]) -> Result<()> {
    let err = |message: String| Error::from(StorageError::Zarr { path: path.to_path_buf(), message });
    std::fs::create_dir_all(path).map_err(|e| StorageError::io(path, e))?;
    let store = Arc::new(FilesystemStore::new(path).map_err(|e| err(e.to_string()))?);
    let n = values.len() as u64;
    let array = ArrayBuilder::new(vec![n], vec![n.max(1)], data_type::float64(), 0.0f64)
        .build(store, "/")
        .map_err(|e| err(e.to_string()))?;
    array.store_metadata().map_err(|e| err(e.to_string()))?;
    if !values.is_empty() {
        array.store_chunk(&[0], values).map_err(|e| err(e.to_string()))?;
    }
    Ok(())
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
        assert!(err.contains("already exists") && err.contains("--overwrite"), "{err}");
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
    fn a_missing_parent_is_refused_up_front() {
        let err = OutputDir::create("/nonexistent-outcore-dir/out", false).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
