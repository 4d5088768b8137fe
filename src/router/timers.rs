//! Call timeouts of one shard: a binary heap keyed by deadline, driven by the shard's timer task.
//!
//! One heap per shard instead of a timer (or task) per call: starting a timeout is a push, and the
//! shard looks only at the earliest deadline. A call answered before its deadline leaves its entry
//! in the heap; the entry is discarded when it comes due and the invocation is no longer pending,
//! so answering costs nothing extra. So that long timeouts on calls answered quickly cannot grow
//! the heap without bound, it is pruned of answered calls whenever it has doubled since the last
//! pruning: the heap stays within about twice the calls actually pending, at amortised O(log n).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Entries allowed beyond twice the last pruned size before pruning again.
const PRUNE_SLACK: usize = 1024;

/// A timeout that has come due: the invocation it guards, if still pending, ends with
/// `wamp.error.timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Due {
    /// Milliseconds since the heap was created.
    pub at_ms: u64,
    pub callee: u64,
    pub invocation: u64,
    /// The caller's request id, so that a reused invocation id cannot be mistaken for this one.
    pub caller_request: u64,
}

/// The pending call timeouts of one shard.
pub struct CallTimers {
    epoch: Instant,
    heap: BinaryHeap<Reverse<Due>>,
    /// The heap's length after the last pruning.
    pruned_to: usize,
}

impl Default for CallTimers {
    fn default() -> Self {
        CallTimers {
            epoch: Instant::now(),
            heap: BinaryHeap::new(),
            pruned_to: 0,
        }
    }
}

impl CallTimers {
    /// Milliseconds since this heap was created.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Arms a timeout of `ms` milliseconds for INVOCATION `invocation` of `callee`.
    pub fn start(&mut self, ms: u64, callee: u64, invocation: u64, caller_request: u64) {
        self.start_at(
            self.now_ms().saturating_add(ms),
            callee,
            invocation,
            caller_request,
        );
    }

    /// Arms a timeout due at `at_ms` (milliseconds on this heap's clock).
    pub fn start_at(&mut self, at_ms: u64, callee: u64, invocation: u64, caller_request: u64) {
        self.heap.push(Reverse(Due {
            at_ms,
            callee,
            invocation,
            caller_request,
        }));
    }

    /// True when the heap has grown enough since the last pruning that pruning pays for itself.
    pub fn wants_pruning(&self) -> bool {
        self.heap.len() > 2 * self.pruned_to + PRUNE_SLACK
    }

    /// Drops the timeouts whose calls have ended (`live` says which have not).
    pub fn prune(&mut self, mut live: impl FnMut(&Due) -> bool) {
        self.heap.retain(|Reverse(d)| live(d));
        self.pruned_to = self.heap.len();
    }

    /// The earliest timeout due at or before `now_ms`, taken off the heap.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<Due> {
        if self.heap.peek()?.0.at_ms > now_ms {
            return None;
        }
        self.heap.pop().map(|Reverse(d)| d)
    }

    /// Timeouts armed and not yet come due (answered calls included).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no timeout is armed.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_come_due_in_deadline_order_and_not_before() {
        let mut t = CallTimers::default();
        t.start_at(30, 1, 1, 1);
        t.start_at(10, 2, 5, 2);
        t.start_at(20, 1, 2, 3);
        assert_eq!(t.pop_due(9), None);
        assert_eq!(t.pop_due(25).map(|d| d.invocation), Some(5));
        assert_eq!(t.pop_due(25).map(|d| d.invocation), Some(2));
        assert_eq!(t.pop_due(25), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(u64::MAX).map(|d| d.callee), Some(1));
        assert!(t.is_empty());
    }

    #[test]
    fn pruning_keeps_live_timeouts_and_bounds_the_heap() {
        let mut t = CallTimers::default();
        for i in 0..(PRUNE_SLACK as u64 + 10) {
            t.start_at(1_000_000, 1, i, i);
        }
        assert!(t.wants_pruning());
        t.prune(|d| d.invocation % 100 == 0);
        assert_eq!(t.len(), (PRUNE_SLACK + 10).div_ceil(100));
        assert!(!t.wants_pruning());
        assert_eq!(t.pop_due(u64::MAX).map(|d| d.invocation), Some(0));
    }
}
