//! Where each caller's calls are pending on this shard, so that a CANCEL and a caller's departure
//! find that caller's invocations without looking at every session of the shard.
//!
//! A CANCEL names (caller, request) and a departure names a caller, while pending invocations live
//! with their callee (a YIELD names the callee's INVOCATION id). The index maps the first onto the
//! second. Per call it costs one insert when the INVOCATION is queued and one removal when the call
//! ends; a caller's map is kept while it is empty (a caller with one call at a time allocates
//! nothing per call) and dropped by [`CallIndex::sweep`] once it stays empty.
//!
//! One flat table keyed by (caller, request) would save a probe per call (about 35 instructions
//! of ~8 200), but a departing caller would then walk every pending invocation of the shard:
//! sessions that leave with a call in flight, one after another, could keep a shard busy walking.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use ahash::AHashMap;

/// One pending invocation: the callee session and the INVOCATION id it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub callee: u64,
    pub invocation: u64,
}

/// Hashes a session id with one multiplication. Session ids are drawn at random by the router, never
/// chosen by a client, so the keyed hash that guards maps with client-chosen keys (request ids: the
/// inner maps) buys nothing here, and this map is touched twice per call.
#[derive(Default, Clone, Copy)]
struct SessionIdHasher(u64);

impl Hasher for SessionIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        // The table indexes by the low bits: fold the well-mixed high bits of the product in.
        self.0 ^ (self.0 >> 29)
    }
}

type BySession<V> = HashMap<u64, V, BuildHasherDefault<SessionIdHasher>>;

/// Pending invocations of this shard by caller, then by the caller's request id.
#[derive(Default, Debug)]
pub struct CallIndex {
    by_caller: BySession<AHashMap<u64, Slot>>,
}

impl CallIndex {
    #[inline]
    pub fn insert(&mut self, caller: u64, request: u64, slot: Slot) {
        self.by_caller
            .entry(caller)
            .or_default()
            .insert(request, slot);
    }

    /// Forgets call `request` of `caller` if it still points at `slot` (a lenient client may reuse
    /// a request id while the first call is pending: the newer call keeps the entry).
    #[inline]
    pub fn remove(&mut self, caller: u64, request: u64, slot: Slot) {
        let Some(calls) = self.by_caller.get_mut(&caller) else {
            return;
        };
        if let Entry::Occupied(e) = calls.entry(request) {
            if *e.get() == slot {
                e.remove();
            }
        }
    }

    /// Where call `request` of `caller` is pending on this shard.
    pub fn find(&self, caller: u64, request: u64) -> Option<Slot> {
        self.by_caller.get(&caller)?.get(&request).copied()
    }

    /// Every pending invocation of `caller` on this shard, forgetting them.
    pub fn take_caller(&mut self, caller: u64) -> Vec<Slot> {
        self.by_caller
            .remove(&caller)
            .map(|calls| calls.into_values().collect())
            .unwrap_or_default()
    }

    /// Drops the maps of callers with nothing pending and shrinks those far larger than what is
    /// pending (each second), so that callers which came and went, or a burst of calls, leave no
    /// memory behind.
    pub fn sweep(&mut self) {
        self.by_caller.retain(|_, calls| {
            let len = calls.len();
            if calls.capacity() > 64 && len < calls.capacity() / 4 {
                calls.shrink_to(len * 2);
            }
            !calls.is_empty()
        });
    }

    /// Number of pending invocations indexed (for the consistency report).
    pub fn len(&self) -> usize {
        self.by_caller.values().map(|calls| calls.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        assert_eq!(ix.by_caller.len(), 1, "an empty map is kept until swept");
        ix.sweep();
        assert!(ix.by_caller.is_empty());
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
        assert!(ix.by_caller[&7].capacity() < 64, "shrunk");
    }
}
