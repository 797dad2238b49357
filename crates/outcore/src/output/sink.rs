//! A destination opened before any work: the store the run writes, and what makes it final.

use std::sync::Arc;

use faer::Mat;
use outcore_storage::{ChunkGrid, ChunkStore, Knob};
#[cfg(feature = "zarr")]
use outcore_storage::{ZarrOptions, ZarrStore};

use super::Destination;
#[cfg(feature = "zarr")]
use super::dir::OutputDir;
use super::dir::check_no_overlap;
use super::factor::Factor;
use crate::error::{Error, Result};
use crate::matrix::ChunkedMatrix;
use crate::matrix::borrowed::{Lease, MatSink};
use crate::run::RunControl;

/// Refuses a destination for `name` that the ranks of a distributed run cannot share: each rank
/// writes its own rows, so all must write one store that every rank opened.
pub(crate) fn check_shareable(destination: &Destination<'_>, control: &RunControl, name: &str) -> Result<()> {
    if control.distributed() && !matches!(destination, Destination::Store(_)) {
        return Err(Error::invalid(
            Knob::Destination,
            format!(
                "a run across ranks writes {name} rank by rank, each rank its own rows, so {name} needs a store on shared storage that every rank opened (`Destination::Store`); memory, a caller's matrix or a Zarr array one rank creates cannot be shared"
            ),
        ));
    }
    Ok(())
}

/// Refuses destinations of U and V that would overwrite each other.
pub(crate) fn check_apart(u: &Destination<'_>, v: &Destination<'_>) -> Result<()> {
    #[cfg(feature = "zarr")]
    if let (Destination::Zarr(a), Destination::Zarr(b)) = (u, v)
        && super::dir::overlap(a, b)
    {
        let (a, b) = (a.display(), b.display());
        return Err(Error::invalid(Knob::Destination, format!("U ({a}) and V ({b}) would overwrite each other")));
    }
    let _ = (u, v);
    Ok(())
}

/// A destination opened before any work: the store the run writes, and what makes it final.
/// It cannot outlive the borrow of a caller's matrix it writes into.
pub(crate) struct Sink<'a> {
    pub(crate) store: Arc<dyn ChunkStore>,
    kind: SinkKind<'a>,
}

enum SinkKind<'a> {
    /// The lease first: fields drop in order, so the view goes before the matrix does.
    Owned {
        lease: Lease<'static>,
        matrix: Mat<f64>,
    },
    Caller {
        lease: Lease<'a>,
    },
    #[cfg(feature = "zarr")]
    Zarr {
        out: OutputDir,
    },
    Store,
}

impl<'a> Sink<'a> {
    /// Opens `destination` for a factor of `grid` (chunked as the run writes it), computed from
    /// `input`; `name` says which factor, for messages.
    pub(crate) fn open(
        destination: Destination<'a>,
        grid: ChunkGrid,
        input: &ChunkedMatrix,
        name: &str,
    ) -> Result<Self> {
        let (rows, cols) = grid.shape();
        let chunk_rows = grid.chunk_shape().0;
        let (store, kind): (Arc<dyn ChunkStore>, SinkKind<'a>) = match destination {
            Destination::Memory => {
                let mut matrix = Mat::<f64>::zeros(rows, cols);
                // SAFETY: the lease points into the matrix's heap buffer, which does not move
                // when the matrix does; both go into `SinkKind::Owned`, where the lease drops
                // first, and `finish` ends it before handing the matrix out.
                let (store, lease) = unsafe { MatSink::lend_unbounded(matrix.as_mut(), chunk_rows)? };
                (store, SinkKind::Owned { lease, matrix })
            }
            Destination::Into(dst) => {
                if dst.shape() != (rows, cols) {
                    return Err(Error::invalid(
                        Knob::Destination,
                        format!(
                            "{name} is {rows} x {cols}; the matrix given for it is {} x {}",
                            dst.nrows(),
                            dst.ncols()
                        ),
                    ));
                }
                let (store, lease) = MatSink::lend(dst, chunk_rows)?;
                (store, SinkKind::Caller { lease })
            }
            #[cfg(feature = "zarr")]
            Destination::Zarr(path) => {
                check_no_overlap(input, &path)?;
                let out = OutputDir::create_new_array(&path)?;
                // Kept in the input's precision: float32 in, float32 out.
                let options = ZarrOptions { dtype: input.store().dtype(), ..ZarrOptions::default() };
                let store = Arc::new(ZarrStore::create(out.path(), grid, &options)?);
                (store, SinkKind::Zarr { out })
            }
            Destination::Store(store) => {
                if store.grid() != grid {
                    return Err(Error::invalid(
                        Knob::Destination,
                        format!("{name}: {} has grid {}, the plan writes {grid}", store.describe(), store.grid()),
                    ));
                }
                if let Some(path) = store.location() {
                    check_no_overlap(input, path)?;
                }
                (store, SinkKind::Store)
            }
        };
        Ok(Self { store, kind })
    }

    /// The run succeeded: makes both factors final, or neither (a Zarr array the first one
    /// committed is removed again if the second cannot be).
    pub(crate) fn finish_pair(first: Self, second: Self) -> Result<(Factor, Factor)> {
        let created: Option<std::path::PathBuf> = match &first.kind {
            #[cfg(feature = "zarr")]
            SinkKind::Zarr { out } => Some(out.target().to_path_buf()),
            _ => None,
        };
        let first = first.finish()?;
        match second.finish() {
            Ok(second) => Ok((first, second)),
            Err(e) => {
                if let Some(path) = created {
                    drop(first);
                    let _ = std::fs::remove_dir_all(path);
                }
                Err(e)
            }
        }
    }

    /// The run succeeded: makes the factor final (commits a Zarr array) and returns it.
    pub(crate) fn finish(self) -> Result<Factor> {
        let (rows, cols) = self.store.grid().shape();
        match self.kind {
            SinkKind::Owned { lease, matrix } => {
                drop(lease);
                Ok(Factor::Dense(matrix))
            }
            SinkKind::Caller { lease } => {
                drop(lease);
                Ok(Factor::Written { rows, cols })
            }
            #[cfg(feature = "zarr")]
            SinkKind::Zarr { out } => {
                drop(self.store);
                let path = out.commit()?;
                Ok(Factor::Stored(Arc::new(ZarrStore::open(path)?)))
            }
            SinkKind::Store => Ok(Factor::Stored(self.store)),
        }
    }
}
