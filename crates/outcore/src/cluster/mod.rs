//! Runs across the ranks of a job: every rank runs the same plan and graph on its own share of
//! the rows, and only the blocks that cross ranks travel.
//!
//! SPMD, as MPI programs are: each rank (a process under `mpirun`/`srun`, or a thread of a
//! [`LocalCluster`]) builds the *same* task graph the threads scheduler runs. A task that reads
//! or writes a row block ([`Operation::row_block`](crate::graph::Operation::row_block)) runs on
//! the rank that owns that block (ranks own contiguous ranges of row blocks); any other task
//! runs where its first input was made, so a reduction node runs on the rank of its first child
//! and the root where the first row block is (rank 0 unless there are fewer blocks than ranks).
//! An output read on another rank is sent there, point to point, by the calling thread of each
//! rank while its workers compute. Because the graph and every kernel are
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
//! and for trying a layout) or, with the `mpi` feature, `MpiWorld` (MPI's world
//! communicator). Give one to a run with [`RunControl::cluster`](crate::RunControl::cluster).

mod collective;
mod launch;
// Plain TCP: its tests run without MPI too.
#[cfg(any(feature = "mpi", test))]
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
mod liveness;
#[cfg(feature = "mpi")]
mod mpi;
pub(crate) mod placement;
pub(crate) mod rank;
mod transport;
pub(crate) mod wire;

pub(crate) use collective::check_same;
pub use collective::{agree, gather};
pub use launch::launcher_tasks;
#[cfg(feature = "mpi")]
pub use mpi::MpiWorld;
pub use transport::{LocalCluster, Transport};
