//! Steps every rank takes together around a run: agreeing to go on (or to fail together),
//! comparing what each is about to run, and gathering a part from each on rank 0.

use super::transport::Transport;
use super::wire;
use outcore_storage::{Knob, Message};

use crate::error::{Error, Result};

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
                        Knob::Ranks,
                        Message::new()
                            .text(format!(
                                "rank {from} of {ranks} planned a different computation from rank 0's (another input shape, chunking, dtype, option or memory limit; with "
                            ))
                            .knob(Knob::MemoryLimit)
                            .text(" or ")
                            .knob(Knob::Workers)
                            .text(" chosen automatically, ranks on different machines may choose differently); give every rank the same arguments"),
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
        transport.send(0, mine)?;
        return transport.receive(0);
    }
    let mut verdict = mine;
    for from in 1..transport.ranks() {
        verdict = fold(verdict, from, transport.receive(from));
    }
    let mut unsent = Ok(());
    for to in 1..transport.ranks() {
        if let Err(e) = transport.send(to, verdict.clone()) {
            unsent = unsent.and(Err(e));
        }
    }
    unsent.map(|()| verdict)
}

/// Rank 0 receives every rank's `part` (its own first); other ranks send theirs and get `None`.
pub fn gather(transport: &dyn Transport, part: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>> {
    let (me, ranks) = (transport.rank(), transport.ranks());
    if me != 0 {
        transport.send(0, part)?;
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
    use crate::cluster::transport::LocalCluster;

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
                            t.send(to, vec![me as u8, 1]).unwrap();
                            t.send(to, vec![me as u8, 2]).unwrap();
                        }
                        for from in (0..3).filter(|&r| r != me) {
                            assert_eq!(t.receive(from).unwrap(), vec![from as u8, 1]);
                            assert_eq!(t.receive(from).unwrap(), vec![from as u8, 2]);
                        }
                        let failure = Error::invalid(Knob::Input, "rank 2 cannot read it");
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
}
