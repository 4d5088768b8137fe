//! Where each caller's calls are pending on this shard, so that a CANCEL and a caller's departure
//! find that caller's invocations without looking at every session of the shard.
//!
//! A CANCEL names (caller, request) and a departure names a caller, while pending invocations live
//! with their callee (a YIELD names the callee's INVOCATION id). The index maps the first onto the
//! second: one flat table keyed by (caller, request), so a call costs one insert when the
//! INVOCATION is queued and one removal when it ends, a single hash probe each (a table per caller
//! cost a second probe on both, on every call). A caller's departure walks the table once; it
//! is only told to shards when the caller still had calls in flight.

use std::collections::hash_map::Entry;

use ahash::AHashMap;

/// One pending invocation: the callee session and the INVOCATION id it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub callee: u64,
    pub invocation: u64,
}

/// Pending invocations of this shard by (caller, the caller's request id). Keyed hashing: request
/// ids may be chosen by the client (when the sequence rule is relaxed).
#[derive(Default, Debug)]
pub struct CallIndex {
    calls: AHashMap<(u64, u64), Slot>,
}

impl CallIndex {
    #[inline]
    pub fn insert(&mut self, caller: u64, request: u64, slot: Slot) {
        self.calls.insert((caller, request), slot);
    }

    /// Forgets call `request` of `caller` if it still points at `slot` (a lenient client may reuse
    /// a request id while the first call is pending: the newer call keeps the entry).
    #[inline]
    pub fn remove(&mut self, caller: u64, request: u64, slot: Slot) {
        if let Entry::Occupied(e) = self.calls.entry((caller, request)) {
            if *e.get() == slot {
                e.remove();
            }
        }
    }

    /// Where call `request` of `caller` is pending on this shard.
    pub fn find(&self, caller: u64, request: u64) -> Option<Slot> {
        self.calls.get(&(caller, request)).copied()
    }

    /// Every pending invocation of `caller` on this shard, forgetting them.
    pub fn take_caller(&mut self, caller: u64) -> Vec<Slot> {
        let mut out = Vec::new();
        if self.calls.is_empty() {
            return out;
        }
        self.calls.retain(|&(c, _), slot| {
            if c == caller {
                out.push(*slot);
            }
            c != caller
        });
        out
    }

    /// Shrinks the table when it is far larger than what is pending (each second), so that a
    /// burst of calls leaves no memory behind.
    pub fn sweep(&mut self) {
        let len = self.calls.len();
        if self.calls.capacity() > 64 && len < self.calls.capacity() / 4 {
            self.calls.shrink_to(len * 2);
        }
    }

    /// Number of pending invocations indexed (for the consistency report).
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(callee: u64, invocation: u64) -> Slot {
        Slot { callee, invocation }
    }

    #[test]
    fn finds_removes_and_takes_by_caller() {
        let mut ix = CallIndex::default();
        ix.insert(1, 10, slot(100, 1));
        ix.insert(1, 11, slot(101, 1));
        ix.insert(2, 10, slot(100, 2));
        assert_eq!(ix.find(1, 11), Some(slot(101, 1)));
        assert_eq!(ix.find(2, 11), None);
        ix.remove(1, 11, slot(999, 1));
        assert_eq!(ix.find(1, 11), Some(slot(101, 1)), "another slot: kept");
        ix.remove(1, 11, slot(101, 1));
        assert_eq!(ix.find(1, 11), None);
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.take_caller(1), vec![slot(100, 1)]);
        assert_eq!(ix.take_caller(1), Vec::new());
        ix.remove(2, 10, slot(100, 2));
        assert!(ix.is_empty());
    }

    #[test]
    fn a_burst_of_calls_leaves_no_large_map_behind() {
        let mut ix = CallIndex::default();
        for r in 1..=1000 {
            ix.insert(7, r, slot(1, r));
        }
        for r in 2..=1000 {
            ix.remove(7, r, slot(1, r));
        }
        ix.sweep();
        assert_eq!(ix.find(7, 1), Some(slot(1, 1)));
        assert!(ix.calls.capacity() < 64, "shrunk");
    }
}
