//! Runs across the ranks of a job: every rank runs the same plan and graph on its own share of
//! the rows, and only the blocks that cross ranks travel.
//!
//! SPMD, as MPI programs are: each rank (a process under `mpirun`/`srun`, or a thread of a
//! [`LocalCluster`]) builds the *same* task graph the threads scheduler runs. A task that reads
//! or writes a row block ([`Operation::row_block`](crate::graph::Operation::row_block)) runs on
//! the rank that owns that block (ranks own contiguous ranges of row blocks); any other task
//! runs where its first input was made, so a reduction node runs on the rank of its first child
//! and the root where the first row block is (rank 0 unless there are fewer blocks than ranks). An output read on another rank is sent there, point to point, by the
//! calling thread of each rank while its workers compute. Because the graph and every kernel are
//! those of one process, **results are bitwise identical to the threads scheduler** for any
//! number of ranks (MPI's own reductions would choose their own bracketing; they are not used).
//!
//! The messages of a run form one list, the same on every rank, ordered by the task that makes
//! each block: each rank walks it, sending what it makes and receiving what it reads, with
//! blocking sends and receives. A block is made only from blocks earlier in the list, so the walk
//! cannot deadlock. A run starts with a handshake (every rank must have built the same graph: the
//! same input shape, options and plan) and ends with one (rank 0 learns that every rank finished,
//! then sends every rank the run's kept results). A rank that fails sends its error in place of
//! the blocks it owes, so every rank ends with the same error and none waits forever.
//!
//! Steps around a run that can fail on one rank (opening the input, creating the output) are
//! agreed with [`agree`] first, and a run's own setup is part of its handshake, so a rank never
//! waits for one that gave up. Messages between ranks are not counted in the memory limit: one
//! block (and its encoding) at a time per rank, while it is sent or received.
//!
//! A transport moves bytes between ranks: [`LocalCluster`] (threads of one process, for tests
//! and for trying a layout) or, with the `mpi` feature, [`MpiWorld`] (MPI's world
//! communicator). Give one to a run with [`RunControl::cluster`](crate::RunControl::cluster).

#[cfg(feature = "mpi")]
mod mpi;
pub(crate) mod placement;
pub(crate) mod wire;

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

#[cfg(feature = "mpi")]
pub use mpi::MpiWorld;

use crate::{Error, Result};

/// Moves messages between the ranks of a job. Messages between two ranks arrive in the order
/// they were sent. All calls of one run come from the thread that started the run, and a
/// transport carries one run at a time (the messages of two runs at once would mix).
pub trait Transport: Send + Sync {
    /// This rank, `0..ranks()`.
    fn rank(&self) -> usize;
    /// Ranks in the job.
    fn ranks(&self) -> usize;
    /// Sends `message` to rank `to`; may block until it is received.
    fn send(&self, to: usize, message: &[u8]) -> Result<()>;
    /// Receives the next message from rank `from`, blocking until it arrives.
    fn receive(&self, from: usize) -> Result<Vec<u8>>;
}

/// Ranks as threads of one process, connected by channels: each element of
/// [`LocalCluster::ranks`] is one rank's transport. Runs on them give the same bits as one
/// process; tests use them to check distributed plans without an MPI library.
pub struct LocalCluster {
    rank: usize,
    ranks: usize,
    to: Vec<Sender<Vec<u8>>>,
    from: Vec<Mutex<Receiver<Vec<u8>>>>,
}

impl LocalCluster {
    /// The transports of `ranks` connected ranks (at least 1), rank 0 first.
    pub fn ranks(ranks: usize) -> Result<Vec<Arc<dyn Transport>>> {
        if ranks == 0 {
            return Err(Error::invalid("ranks", "a job needs at least one rank"));
        }
        // channels[from][to]
        let mut senders: Vec<Vec<Option<Sender<Vec<u8>>>>> = (0..ranks).map(|_| Vec::new()).collect();
        let mut receivers: Vec<Vec<Option<Receiver<Vec<u8>>>>> =
            (0..ranks).map(|_| (0..ranks).map(|_| None).collect()).collect();
        for (from, row) in senders.iter_mut().enumerate() {
            for receiving in receivers.iter_mut() {
                let (tx, rx) = channel();
                row.push(Some(tx));
                receiving[from] = Some(rx);
            }
        }
        Ok((0..ranks)
            .map(|rank| {
                let to = senders[rank].iter_mut().filter_map(Option::take).collect();
                let from = receivers[rank].iter_mut().filter_map(Option::take).map(Mutex::new).collect();
                Arc::new(Self { rank, ranks, to, from }) as Arc<dyn Transport>
            })
            .collect())
    }
}

impl Transport for LocalCluster {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.ranks
    }

    fn send(&self, to: usize, message: &[u8]) -> Result<()> {
        let peer = self.to.get(to).ok_or_else(|| Error::Bug(format!("no rank {to} of {}", self.ranks)))?;
        peer.send(message.to_vec()).map_err(|_| Error::Cluster {
            rank: to,
            message: "the rank ended before the run did (its thread stopped)".into(),
            bug: false,
        })
    }

    fn receive(&self, from: usize) -> Result<Vec<u8>> {
        let peer = self.from.get(from).ok_or_else(|| Error::Bug(format!("no rank {from} of {}", self.ranks)))?;
        let peer = peer.lock().unwrap_or_else(|p| p.into_inner());
        peer.recv().map_err(|_| Error::Cluster {
            rank: from,
            message: "the rank ended before the run did (its thread stopped)".into(),
            bug: false,
        })
    }
}

/// Every rank's `outcome` of a step taken before a run (opening the input, planning, creating
/// the output), agreed: all ranks go on with rank 0's payload if every rank succeeded, and all
/// fail with the lowest failing rank's error otherwise, so no rank waits for one that gave up.
/// Rank 0's payload lets it share what only it made (an output directory's path).
pub fn agree(transport: &dyn Transport, outcome: std::result::Result<Vec<u8>, &Error>) -> Result<Vec<u8>> {
    let mine = match outcome {
        Ok(payload) => wire::encode_outcome(&Ok(payload), transport.rank()),
        Err(e) => wire::encode_error(e, transport.rank()),
    };
    let agreed = settle(transport, mine, |agreed, from, theirs| match theirs {
        _ if wire::decode_outcome(&agreed, 0).is_err() => agreed,
        Err(e) => wire::encode_error(&e, from),
        Ok(theirs) if wire::decode_outcome(&theirs, from).is_err() => theirs,
        Ok(_) => agreed,
    })?;
    wire::decode_outcome(&agreed, 0).map(<[u8]>::to_vec)
}

/// Every rank's `digest` of what it is about to run, or the error its setup met, compared on
/// rank 0: all go on if every rank is ready and the digests match, all fail (before any work)
/// with the lowest failing rank's error, or refuse if one rank planned something else.
pub(crate) fn check_same(transport: &dyn Transport, digest: u64, setup: std::result::Result<(), &Error>) -> Result<()> {
    let ranks = transport.ranks();
    let mine = match setup {
        Ok(()) => wire::encode_outcome(&Ok(digest.to_le_bytes().to_vec()), transport.rank()),
        Err(e) => wire::encode_error(e, transport.rank()),
    };
    let verdict = settle(transport, mine, |verdict, from, theirs| {
        let Ok(ours) = wire::decode_outcome(&verdict, 0) else { return verdict };
        match theirs {
            Err(e) => wire::encode_error(&e, from),
            Ok(theirs) => match wire::decode_outcome(&theirs, from) {
                Err(_) => theirs,
                Ok(digest) if digest == ours => verdict,
                Ok(_) => wire::encode_error(
                    &Error::invalid(
                        "ranks",
                        format!(
                            "rank {from} of {ranks} planned a different computation from rank 0's (another input shape, chunking, dtype, option or memory limit; with `memory_limit` or `workers` chosen automatically, ranks on different machines may choose differently); give every rank the same arguments"
                        ),
                    ),
                    0,
                ),
            },
        }
    })?;
    wire::decode_outcome(&verdict, 0).map(drop)
}

/// Rank 0 folds every rank's message (its own `mine` first, then rank 1's, 2's, ...) with
/// `fold(verdict, from, theirs)` and sends the verdict to every rank; every rank returns it.
/// Rank 0 hears and answers every rank whatever fails; a send that fails is its error.
fn settle(
    transport: &dyn Transport,
    mine: Vec<u8>,
    mut fold: impl FnMut(Vec<u8>, usize, Result<Vec<u8>>) -> Vec<u8>,
) -> Result<Vec<u8>> {
    if transport.rank() != 0 {
        transport.send(0, &mine)?;
        return transport.receive(0);
    }
    let mut verdict = mine;
    for from in 1..transport.ranks() {
        verdict = fold(verdict, from, transport.receive(from));
    }
    let mut unsent = Ok(());
    for to in 1..transport.ranks() {
        if let Err(e) = transport.send(to, &verdict) {
            unsent = unsent.and(Err(e));
        }
    }
    unsent.map(|()| verdict)
}

/// Environment variables by which launchers say how many tasks they started, in the order
/// read: Open MPI's `mpirun`, PMI-1/2 launchers (MPICH's hydra, `srun --mpi=pmi2`), Slurm's
/// `srun` (set for the job step, not for a batch script itself, which is one process).
const TASK_COUNTS: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"];

/// Variables present only in a process some launcher started as one of its tasks.
const LAUNCHED: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMIX_RANK", "SLURM_STEP_NUM_TASKS"];

/// The number of tasks the launcher that started this process says it started, and the
/// variable that says it; `None` when no launcher started this process (a plain run). PMIx
/// launchers name no count: 1 then, and the world's size says the rest.
pub fn launcher_tasks() -> Option<(&'static str, usize)> {
    if !LAUNCHED.iter().any(|v| std::env::var_os(v).is_some()) {
        return None;
    }
    let counted = TASK_COUNTS.iter().find_map(|v| std::env::var(v).ok().and_then(|n| n.parse().ok()).map(|n| (*v, n)));
    Some(counted.unwrap_or(("PMIX_RANK", 1)))
}

/// Rank 0 receives every rank's `part` (its own first); other ranks send theirs and get `None`.
pub fn gather(transport: &dyn Transport, part: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>> {
    let (me, ranks) = (transport.rank(), transport.ranks());
    if me != 0 {
        transport.send(0, &part)?;
        return Ok(None);
    }
    let mut parts = vec![part];
    for from in 1..ranks {
        parts.push(transport.receive(from)?);
    }
    Ok(Some(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ranks_exchange_in_order_and_agree() {
        let ranks = LocalCluster::ranks(3).unwrap();
        std::thread::scope(|s| {
            let handles: Vec<_> = ranks
                .iter()
                .map(|t| {
                    s.spawn(move || {
                        let me = t.rank();
                        for to in (0..3).filter(|&r| r != me) {
                            t.send(to, &[me as u8, 1]).unwrap();
                            t.send(to, &[me as u8, 2]).unwrap();
                        }
                        for from in (0..3).filter(|&r| r != me) {
                            assert_eq!(t.receive(from).unwrap(), vec![from as u8, 1]);
                            assert_eq!(t.receive(from).unwrap(), vec![from as u8, 2]);
                        }
                        let failure = Error::invalid("input", "rank 2 cannot read it");
                        let outcome = if me == 2 { Err(&failure) } else { Ok(vec![me as u8]) };
                        let agreed = agree(&**t, outcome).unwrap_err().to_string();
                        assert!(agreed.contains("rank 2 cannot read it"), "{agreed}");
                        let ok = agree(&**t, Ok(vec![me as u8 + 7])).unwrap();
                        assert_eq!(ok, vec![7], "every rank goes on with rank 0's payload");
                        gather(&**t, vec![me as u8]).unwrap()
                    })
                })
                .collect();
            let gathered: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(gathered[0], Some(vec![vec![0], vec![1], vec![2]]));
            assert_eq!(gathered[1], None);
        });
    }

    #[test]
    fn a_rank_that_ends_early_is_an_error_not_a_hang() {
        let mut ranks = LocalCluster::ranks(2).unwrap();
        let survivor = ranks.remove(0);
        drop(ranks);
        let err = survivor.receive(1).unwrap_err().to_string();
        assert!(err.contains("rank 1") && err.contains("ended"), "{err}");
    }
}
