//! Least-recently-used order of the chunks that may leave memory.

use std::collections::BTreeMap;

use super::BlockId;

/// Unpinned resident blocks ordered by when they were last unpinned (oldest first).
///
/// Each entry is keyed by a tick taken from a counter, so removing a block given its tick and
/// finding the oldest are both O(log n).
#[derive(Debug, Default)]
pub(crate) struct Lru {
    order: BTreeMap<u64, BlockId>,
    next_tick: u64,
}

impl Lru {
    /// Makes `id` the most recently used; returns its tick.
    pub(crate) fn push(&mut self, id: BlockId) -> u64 {
        let tick = self.next_tick;
        self.next_tick += 1;
        self.order.insert(tick, id);
        tick
    }

    /// Removes the entry with `tick`.
    pub(crate) fn remove(&mut self, tick: u64) {
        self.order.remove(&tick);
    }

    /// Removes and returns the least recently used block.
    pub(crate) fn pop_oldest(&mut self) -> Option<BlockId> {
        self.order.pop_first().map(|(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_order_of_use() {
        let mut lru = Lru::default();
        let a = lru.push(BlockId(1));
        lru.push(BlockId(2));
        lru.push(BlockId(3));
        lru.remove(a);
        lru.push(BlockId(1));
        assert_eq!(lru.pop_oldest(), Some(BlockId(2)));
        assert_eq!(lru.pop_oldest(), Some(BlockId(3)));
        assert_eq!(lru.pop_oldest(), Some(BlockId(1)));
        assert_eq!(lru.pop_oldest(), None);
    }
}
