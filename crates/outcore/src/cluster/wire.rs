//! The bytes ranks exchange: outcomes (a payload, or the error that replaced it) and blocks.

use std::collections::HashMap;

use outcore_storage::Message;

use crate::error::{Error, Result};
use crate::task::{Block, Key, TaskId};

const OK: u8 = 0;
const FAILED: u8 = 1;
const INTERRUPTED: u8 = 2;
/// Failed by a bug (an internal error), which the command line reports with its own exit code.
const BUG: u8 = 3;

/// `outcome` as bytes: the payload, or the error with the rank it came from (this one, `me`,
/// unless it came from another).
pub(crate) fn encode_outcome(outcome: &Result<Vec<u8>>, me: usize) -> Vec<u8> {
    match outcome {
        Ok(payload) => {
            let mut out = Vec::with_capacity(1 + payload.len());
            out.push(OK);
            out.extend_from_slice(payload);
            out
        }
        Err(e) => encode_error(e, me),
    }
}

/// `error` as an outcome, with the rank it came from (`me` unless it came from another).
pub(crate) fn encode_error(error: &Error, me: usize) -> Vec<u8> {
    // Knobs are marked in the text, so the rank that reports the error names them its way.
    let (rank, text, bug) = match error {
        Error::Interrupted => return vec![INTERRUPTED],
        Error::Cluster { rank, message, bug } => (*rank, message.marked(), *bug),
        Error::Bug(_) => (me, error.message().marked(), true),
        other => (me, other.message().marked(), false),
    };
    let mut out = vec![if bug { BUG } else { FAILED }];
    out.extend_from_slice(&(rank as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// `error`, raised on rank `me`, as it is passed on to other ranks.
pub(crate) fn relayed(error: &Error, me: usize) -> Error {
    match error {
        Error::Interrupted => Error::Interrupted,
        Error::Cluster { rank, message, bug } => Error::Cluster { rank: *rank, message: message.clone(), bug: *bug },
        other => Error::Cluster { rank: me, message: other.message(), bug: matches!(other, Error::Bug(_)) },
    }
}

/// The outcome `bytes` from rank `from` say: the payload, or the error sent in its place.
pub(crate) fn decode_outcome(bytes: &[u8], from: usize) -> Result<&[u8]> {
    match bytes.split_first() {
        Some((&OK, payload)) => Ok(payload),
        Some((&INTERRUPTED, _)) => Err(Error::Interrupted),
        Some((&kind @ (FAILED | BUG), rest)) if rest.len() >= 8 => {
            let (rank, text) = rest.split_at(8);
            let rank = u64::from_le_bytes(rank.try_into().unwrap_or_default()) as usize;
            let message = Message::from_marked(&String::from_utf8_lossy(text));
            Err(Error::Cluster { rank, message, bug: kind == BUG })
        }
        _ => Err(Error::Cluster {
            rank: from,
            message: format!("sent a malformed message of {} bytes", bytes.len()).into(),
            bug: true,
        }),
    }
}

/// Reads little-endian u64s and f64s off the front of a message.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    from: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], from: usize) -> Self {
        Self { bytes, from }
    }

    fn short(&self) -> Error {
        Error::Cluster { rank: self.from, message: "sent a message shorter than its header says".into(), bug: true }
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let (head, rest) = self.bytes.split_first_chunk::<8>().ok_or_else(|| self.short())?;
        self.bytes = rest;
        Ok(u64::from_le_bytes(*head))
    }

    pub(crate) fn usize(&mut self) -> Result<usize> {
        usize::try_from(self.u64()?).map_err(|_| self.short())
    }

    fn block(&mut self) -> Result<Block> {
        let (rows, cols) = (self.usize()?, self.usize()?);
        let len = rows.checked_mul(cols).filter(|&n| n.checked_mul(8).is_some_and(|b| b <= self.bytes.len()));
        let len = len.ok_or_else(|| self.short())?;
        let (data, rest) = self.bytes.split_at(len * 8);
        self.bytes = rest;
        let data = data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default())).collect();
        Ok(Block { data, rows, cols })
    }
}

fn put_output(out: &mut Vec<u8>, rows: usize, cols: usize, data: &[f64]) {
    out.reserve(16 + data.len() * 8);
    out.extend_from_slice(&(rows as u64).to_le_bytes());
    out.extend_from_slice(&(cols as u64).to_le_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Message `index` of a run's list: a block of `rows x cols` values.
pub(crate) fn encode_block(index: usize, rows: usize, cols: usize, data: &[f64]) -> Vec<u8> {
    let mut out = vec![OK];
    out.extend_from_slice(&(index as u64).to_le_bytes());
    put_output(&mut out, rows, cols, data);
    out
}

/// The block of message `index` from rank `from`, or the error sent in its place.
pub(crate) fn decode_block(bytes: &[u8], index: usize, from: usize) -> Result<Block> {
    let payload = decode_outcome(bytes, from)?;
    let mut r = Reader::new(payload, from);
    let got = r.usize()?;
    if got != index {
        return Err(Error::Bug(format!("rank {from} sent message {got} where message {index} was due")));
    }
    r.block()
}

/// A run's kept results.
pub(crate) fn encode_kept(kept: &HashMap<Key, Block>) -> Vec<u8> {
    let mut keys: Vec<&Key> = kept.keys().collect();
    keys.sort();
    let mut out = (keys.len() as u64).to_le_bytes().to_vec();
    for key in keys {
        let o = &kept[key];
        out.extend_from_slice(&(key.task.0 as u64).to_le_bytes());
        out.extend_from_slice(&(key.slot as u64).to_le_bytes());
        put_output(&mut out, o.rows, o.cols, &o.data);
    }
    out
}

/// The kept results rank `from` sent.
pub(crate) fn decode_kept(payload: &[u8], from: usize) -> Result<HashMap<Key, Block>> {
    let mut r = Reader::new(payload, from);
    let n = r.usize()?;
    let mut kept = HashMap::new();
    for _ in 0..n {
        let key = Key { task: TaskId(r.usize()?), slot: r.usize()? };
        kept.insert(key, r.block()?);
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use outcore_storage::Knob;

    use super::*;

    #[test]
    fn blocks_outcomes_and_results_round_trip() {
        let data = [1.5, -0.0, f64::MIN_POSITIVE, 3.0e300, 7.0, 8.0];
        let block = decode_block(&encode_block(4, 2, 3, &data), 4, 1).unwrap();
        assert_eq!((block.rows, block.cols), (2, 3));
        assert!(block.data.iter().zip(data).all(|(a, b)| a.to_bits() == b.to_bits()));
        let wrong = decode_block(&encode_block(4, 2, 3, &data), 5, 1).unwrap_err().to_string();
        assert!(wrong.contains("message 4 where message 5"), "{wrong}");
        let failed = encode_outcome(&Err(Error::invalid(Knob::Input, "chunk 3 is corrupt")), 2);
        let err = decode_block(&failed, 0, 1).unwrap_err();
        assert!(
            matches!(&err, Error::Cluster { rank: 2, message, bug: false } if message.to_string().contains("chunk 3 is corrupt")),
            "{err}"
        );
        let bug = decode_outcome(&encode_error(&Error::Bug("a kernel panicked".into()), 1), 1).unwrap_err();
        assert!(matches!(bug, Error::Cluster { rank: 1, bug: true, .. }), "a bug stays a bug: {bug:?}");
        // Passed on by another rank, the error keeps the rank it came from.
        let relayed = decode_outcome(&encode_outcome(&Err(err), 1), 1).unwrap_err();
        assert!(matches!(relayed, Error::Cluster { rank: 2, .. }));
        assert!(matches!(decode_outcome(&encode_outcome(&Err(Error::Interrupted), 0), 0), Err(Error::Interrupted)));
        assert!(decode_outcome(&[9, 9], 3).unwrap_err().to_string().contains("malformed"));
        let mut kept = HashMap::new();
        kept.insert(TaskId(7).out(1), Block { data: vec![1.0, 2.0], rows: 1, cols: 2 });
        kept.insert(TaskId(2).out(0), Block { data: vec![], rows: 0, cols: 5 });
        assert_eq!(decode_kept(&encode_kept(&kept), 0).unwrap(), kept);
        assert!(decode_kept(&encode_kept(&kept)[..20], 0).is_err(), "a truncated message is refused");
    }
}
