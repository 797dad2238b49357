//! Moving bytes between ranks: the [`Transport`] trait, and [`LocalCluster`], ranks as threads
//! of one process connected by channels.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use outcore_storage::Knob;

use crate::error::{Error, Result};

/// Moves messages between the ranks of a job. Messages between two ranks arrive in the order
/// they were sent. All calls of one run come from the thread that started the run, and a
/// transport carries one run at a time (the messages of two runs at once would mix).
pub trait Transport: Send + Sync {
    /// This rank, `0..ranks()`.
    fn rank(&self) -> usize;
    /// Ranks in the job.
    fn ranks(&self) -> usize;
    /// Sends `message` to rank `to`; may block until it is received. The transport owns the
    /// message: a send to a rank that died may have to keep it for good.
    fn send(&self, to: usize, message: Vec<u8>) -> Result<()>;
    /// Receives the next message from rank `from`, blocking until it arrives.
    fn receive(&self, from: usize) -> Result<Vec<u8>>;
    /// A rank whose process ended during the job, as this rank learned (a lost rank 0 cannot
    /// report the job's error). By default, none.
    fn lost_rank(&self) -> Option<usize> {
        None
    }
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
            return Err(Error::invalid(Knob::Ranks, "a job needs at least one rank"));
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

    fn send(&self, to: usize, message: Vec<u8>) -> Result<()> {
        let peer = self.to.get(to).ok_or_else(|| Error::Bug(format!("no rank {to} of {}", self.ranks)))?;
        peer.send(message).map_err(|_| Error::Cluster {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_that_ends_early_is_an_error_not_a_hang() {
        let mut ranks = LocalCluster::ranks(2).unwrap();
        let survivor = ranks.remove(0);
        drop(ranks);
        let err = survivor.receive(1).unwrap_err().to_string();
        assert!(err.contains("rank 1") && err.contains("ended"), "{err}");
    }
}
