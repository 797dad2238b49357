//! The MPI job this process is a rank of, if any (`--features mpi`, started by `mpirun` or
//! `srun`): steps before and after a run are agreed among the ranks, rank 0 alone writes the
//! small outputs and prints, and every rank ends with the same outcome.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use outcore::cluster::Transport;
use outcore::{Error, Result};

/// This process's transport while it is a rank of a job.
static CLUSTER: Mutex<Option<Arc<dyn Transport>>> = Mutex::new(None);

/// This process's rank, kept after it leaves the job (for the final message).
static RANK: AtomicUsize = AtomicUsize::new(0);

/// What the MPI library holds in each rank, in bytes (see [`measure_footprint`]).
static FOOTPRINT: AtomicU64 = AtomicU64::new(0);

/// Joins the job that launched this process, if a launcher did (`mpirun`, `srun`), its waits
/// for other ranks ended by `cancel`; a plain start stays one process. Refuses a launcher's
/// task started alone (see `outcore::cluster::MpiWorld::join`) and a launcher when the binary
/// was built without MPI.
pub(crate) fn join(cancel: &outcore::CancelToken) -> Result<()> {
    #[cfg(feature = "mpi")]
    if outcore::cluster::launcher_tasks().is_some() {
        // A signal (cancel) ends waits for other ranks, which a dead rank leaves unanswered.
        let world: Arc<dyn Transport> = Arc::new(outcore::cluster::MpiWorld::join()?.stop_on(cancel.clone()));
        RANK.store(world.rank(), Ordering::Relaxed);
        *CLUSTER.lock().unwrap_or_else(|p| p.into_inner()) = Some(world);
    }
    #[cfg(not(feature = "mpi"))]
    let _ = cancel;
    #[cfg(not(feature = "mpi"))]
    if let Some((variable, tasks)) = outcore::cluster::launcher_tasks().filter(|&(_, tasks)| tasks > 1) {
        return Err(Error::invalid(
            outcore::Knob::Ranks,
            format!(
                "a launcher started {tasks} tasks ({variable}={tasks}) but this large-svd was built without MPI, so each would compute alone; build it with `cargo build --release --features mpi -p outcore-cli`"
            ),
        ));
    }
    Ok(())
}

/// Leaves the job: waits for every rank to come here (rank 0 after its dashboard's linger),
/// then MPI is finalized once nothing else holds the transport. The wait, unlike
/// `MPI_Finalize`, ends on a signal, and a rank stopped by one exits without finalizing: a
/// rank waiting out rank 0's linger inside `MPI_Finalize` ignored the launcher's SIGTERM. The
/// wait's outcome is not looked at: every rank has already said how its command ended.
pub(crate) fn leave() {
    let cluster = CLUSTER.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(transport) = cluster {
        let _ = outcore::cluster::agree(&*transport, Ok(Vec::new()));
    }
}

/// The job's transport, if this process is a rank of one.
pub(crate) fn cluster() -> Option<Arc<dyn Transport>> {
    CLUSTER.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Whether this process is a rank of a job (of one rank, too).
pub(crate) fn in_job() -> bool {
    cluster().is_some()
}

/// This rank (0 without a job).
pub(crate) fn rank() -> usize {
    RANK.load(Ordering::Relaxed)
}

/// Whether this process prints and writes the small outputs: rank 0, or the only process.
pub(crate) fn is_root() -> bool {
    rank() == 0
}

/// Ranks in the job (1 without one).
pub(crate) fn count() -> usize {
    cluster().map_or(1, |t| t.ranks())
}

/// `step`'s outcome, agreed among the ranks (see `outcore::cluster::agree`): every rank goes
/// on with its value and rank 0's `share` of it, or every rank fails with the lowest failing
/// rank's error (rank 0 keeps its own as it was), which only rank 0 prints.
pub(crate) fn agree<T>(step: Result<T>, share: impl FnOnce(&T) -> Vec<u8>) -> Result<(T, Vec<u8>)> {
    let Some(transport) = cluster() else { return step.map(|value| (value, Vec::new())) };
    let agreed = outcore::cluster::agree(&*transport, step.as_ref().map(share));
    match (step, agreed) {
        (Ok(value), Ok(shared)) => Ok((value, shared)),
        (Err(own), _) if transport.rank() == 0 => Err(own),
        (_, Err(agreed)) => Err(agreed),
        (Err(_), Ok(_)) => Err(Error::Bug("the ranks agreed on a step that failed here".into())),
    }
}

/// Rank 0 gets every rank's `part` (its own first); other ranks send theirs and get `None`.
/// Without a job: `Some([part])`.
pub(crate) fn gather(part: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>> {
    match cluster() {
        Some(transport) => outcore::cluster::gather(&*transport, part),
        None => Ok(Some(vec![part])),
    }
}

/// Whether this rank reports `error`: rank 0 reports every error; other ranks only their own,
/// not those of other ranks, which rank 0 reports for the whole job, unless rank 0's process
/// ended (then each rank that saw it says so).
pub(crate) fn reports(error: &Error) -> bool {
    is_root() || !matches!(error, Error::Cluster { .. }) || cluster().and_then(|t| t.lost_rank()) == Some(0)
}

/// This rank's file for `path` (a memory timeline or plot): `path` itself on rank 0 (or without
/// a job), `NAME.rankR.EXT` beside it on rank R.
pub(crate) fn own_path(path: &std::path::Path) -> std::path::PathBuf {
    let r = rank();
    if r == 0 {
        return path.to_path_buf();
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.rank{r}.{}", ext.to_string_lossy()),
        None => format!("{stem}.rank{r}"),
    };
    path.with_file_name(name)
}

/// The least a rank reserves for the MPI library (8-13 MiB measured with Open MPI 4.1 on
/// machines of two kinds, margin included): with this floor, a job's plans are the same from
/// run to run, so a limit the plan accepts or suggests is accepted again.
const FOOTPRINT_FLOOR: u64 = 16 << 20;

/// Steps of the reservation above the floor, so that the noise of a measurement seldom moves it.
const FOOTPRINT_STEP: u64 = 4 << 20;

/// Measures what joining the job cost this process (the MPI library's code and buffers): the
/// growth of the resident set from `before` (read before joining) across the join and the
/// first exchange, the largest of the ranks', with a margin of a quarter (at least 2 MiB) for
/// buffers the first runs add, reserved as at least [`FOOTPRINT_FLOOR`], rounded up to a
/// [`FOOTPRINT_STEP`]. Plans count it beside the process overhead, so a limit they accept
/// holds under MPI too; the largest is agreed so that every rank plans alike. Nothing without
/// a job.
pub(crate) fn measure_footprint(before: u64) -> Result<()> {
    if !in_job() {
        return Ok(());
    }
    let mine = outcore::storage::RssSource::Process.current().saturating_sub(before);
    let read = |b: &[u8]| b.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let largest = gather(mine.to_le_bytes().to_vec())?.map(|parts| parts.iter().filter_map(|p| read(p)).max());
    let (_, agreed) = agree(Ok(()), |()| largest.flatten().unwrap_or(mine).to_le_bytes().to_vec())?;
    FOOTPRINT.store(reservation(read(&agreed).unwrap_or(mine)), Ordering::Relaxed);
    Ok(())
}

/// What a rank reserves for a measured footprint (see [`measure_footprint`]).
fn reservation(measured: u64) -> u64 {
    let with_margin = measured + (measured / 4).max(2 << 20);
    with_margin.div_ceil(FOOTPRINT_STEP).saturating_mul(FOOTPRINT_STEP).max(FOOTPRINT_FLOOR)
}

/// What the MPI library holds in this rank, with its margin (0 without a job).
pub(crate) fn footprint() -> u64 {
    FOOTPRINT.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reservation_is_the_same_for_measurements_near_each_other() {
        const MIB: u64 = 1 << 20;
        // The measurements of two kinds of machine, run to run: one reservation.
        for measured in [7 * MIB + MIB / 2, 8 * MIB, 10 * MIB, 10 * MIB + 3 * MIB / 4] {
            assert_eq!(reservation(measured), FOOTPRINT_FLOOR, "{measured}");
        }
        // Above the floor, in steps, never below the measurement and its margin.
        assert_eq!(reservation(13 * MIB), 20 * MIB);
        assert_eq!(reservation(16 * MIB), 20 * MIB);
        assert_eq!(reservation(17 * MIB), 24 * MIB);
        assert_eq!(reservation(0), FOOTPRINT_FLOOR);
    }
}
