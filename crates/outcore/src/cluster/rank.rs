//! One rank's side of a run across ranks: the walk of the run's messages, and the exchange
//! that ends it. The run loop runs this rank's tasks on its workers meanwhile and offers the
//! walk what it needs through [`RankRun`].

use std::collections::HashMap;

use outcore_storage::Reservation;

use super::placement::Placement;
use super::transport::Transport;
use super::wire;
use crate::error::{Error, Result, panic_message};
use crate::task::{Block, Key};

/// What the message walk needs of the run it is part of (the run loop implements it).
pub(crate) trait RankRun: Sync {
    /// Output `key`, made by a task here, encoded as message `index` once made, with the
    /// memory it holds until sent; this read of the block is then done.
    fn made(&self, key: Key, index: usize) -> Result<(Vec<u8>, Reservation)>;
    /// Stores a block received from another rank and releases the tasks that waited for it.
    fn arrived(&self, key: Key, block: Block) -> Result<()>;
    /// Fails the run with `error` (the first error is the run's).
    fn fail(&self, error: Error);
    /// The run's error, taken out.
    fn take_failure(&self) -> Option<Error>;
    /// The run's error, or its kept outputs, read now.
    fn outcome(&self) -> Result<HashMap<Key, Block>>;
}

/// Walks the run's messages in order, every one of them whatever fails: sends each block this
/// rank makes for another once made (or the run's error in its place), and stores each block
/// received for a task here. A panic copying a block out (a lost spill recomputed here runs a
/// kernel) fails the run like a worker's.
pub(crate) fn walk(transport: &dyn Transport, placement: &Placement, run: &dyn RankRun) {
    let me = placement.me;
    for (index, m) in placement.messages.iter().enumerate() {
        if m.from == me {
            let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.made(m.key, index)))
                .unwrap_or_else(|panic| {
                    Err(Error::Bug(format!("copying a block to send panicked: {}", panic_message(&*panic))))
                });
            let (message, _budget) = match made {
                Ok((message, budget)) => (message, Some(budget)),
                Err(e) => {
                    let message = wire::encode_error(&e, me);
                    run.fail(e);
                    (message, None)
                }
            };
            if let Err(e) = transport.send(m.to, message) {
                run.fail(e);
            }
        } else if m.to == me {
            let arrived = transport
                .receive(m.from)
                .and_then(|bytes| wire::decode_block(&bytes, index, m.from))
                .and_then(|block| run.arrived(m.key, block));
            if let Err(e) = arrived {
                run.fail(e);
            }
        }
    }
}

/// Ends the run across ranks once this rank's workers and walk are done: every rank's outcome
/// goes to rank 0, which collects the kept outputs and sends them (or the first error) to every
/// rank.
pub(crate) fn conclude(
    transport: &dyn Transport,
    placement: &Placement,
    run: &dyn RankRun,
) -> Result<HashMap<Key, Block>> {
    let (me, ranks) = (placement.me, placement.ranks);
    let failed = run.take_failure();
    if me != 0 {
        let status =
            failed.as_ref().map_or_else(|| wire::encode_outcome(&Ok(Vec::new()), me), |e| wire::encode_error(e, me));
        transport.send(0, status)?;
        return wire::decode_kept(wire::decode_outcome(&transport.receive(0)?, 0)?, 0);
    }
    // Rank 0: its own error first, else the lowest rank's; being interrupted is reported only
    // when nothing else went wrong. Every rank is heard and answered, whatever fails.
    let mut verdict = failed;
    for from in 1..ranks {
        let theirs = transport.receive(from).and_then(|bytes| wire::decode_outcome(&bytes, from).map(drop));
        match (&verdict, theirs) {
            (_, Ok(())) => {}
            (None | Some(Error::Interrupted), Err(e)) => verdict = Some(e),
            (Some(_), Err(_)) => {}
        }
    }
    let kept = match verdict {
        Some(e) => Err(e),
        None => run.outcome(),
    };
    let message = match &kept {
        Ok(kept) => wire::encode_outcome(&Ok(wire::encode_kept(kept)), 0),
        Err(e) => wire::encode_error(e, 0),
    };
    let mut unsent = None;
    for to in 1..ranks {
        if let Err(e) = transport.send(to, message.clone()) {
            unsent.get_or_insert(e);
        }
    }
    match unsent {
        Some(e) if kept.is_ok() => Err(e),
        _ => kept,
    }
}
