//! Per-stream sequence accounting: lost, duplicated and out-of-order messages.
//!
//! A stream is expected to carry 0, 1, 2, ... in order. A jump forward marks
//! the skipped numbers as missing (provisionally lost); a missing number that
//! shows up later is counted out-of-order (and no longer lost); any other
//! number seen before is a duplicate. Numbers never received by the end are
//! lost (`finish`). Memory is bounded: at most `MAX_GAPS` missing ranges are
//! remembered; when more appear, the oldest range is given up on (stays lost,
//! and a late arrival from it is counted as a duplicate).

const MAX_GAPS: usize = 1024;

#[derive(Clone, Debug, Default)]
pub struct SeqTracker {
    /// Next number expected in order.
    next: u64,
    /// Missing ranges [start, end), sorted, disjoint, all < `next`.
    gaps: Vec<(u64, u64)>,
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
}

impl SeqTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one arrival; returns false for a duplicate (not a new delivery).
    pub fn record(&mut self, seq: u64) -> bool {
        if seq == self.next {
            self.next += 1;
            self.received += 1;
            return true;
        }
        if seq > self.next {
            self.lost += seq - self.next;
            if self.gaps.len() == MAX_GAPS {
                self.gaps.remove(0);
            }
            self.gaps.push((self.next, seq));
            self.next = seq + 1;
            self.received += 1;
            return true;
        }
        // seq < next: late (was missing) or duplicate.
        let i = self.gaps.partition_point(|&(_, end)| end <= seq);
        if i < self.gaps.len() && self.gaps[i].0 <= seq {
            let (start, end) = self.gaps[i];
            match (seq == start, seq + 1 == end) {
                (true, true) => {
                    self.gaps.remove(i);
                }
                (true, false) => self.gaps[i].0 = seq + 1,
                (false, true) => self.gaps[i].1 = seq,
                (false, false) => {
                    self.gaps[i].1 = seq;
                    self.gaps.insert(i + 1, (seq + 1, end));
                    if self.gaps.len() > MAX_GAPS {
                        self.gaps.remove(0);
                    }
                }
            }
            self.lost -= 1;
            self.out_of_order += 1;
            self.received += 1;
            true
        } else {
            self.duplicated += 1;
            false
        }
    }

    /// The stream is over and `total` numbers (0..total) were sent: the ones
    /// after the last received are lost too. Returns the number added.
    pub fn finish(&mut self, total: u64) -> u64 {
        if total > self.next {
            let tail = total - self.next;
            self.lost += tail;
            self.next = total;
            tail
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[u64], total: u64) -> SeqTracker {
        let mut t = SeqTracker::new();
        for &s in seqs {
            t.record(s);
        }
        t.finish(total);
        t
    }

    #[test]
    fn in_order() {
        let t = run(&[0, 1, 2, 3], 4);
        assert_eq!(
            (t.received, t.lost, t.duplicated, t.out_of_order),
            (4, 0, 0, 0)
        );
    }

    #[test]
    fn gap_is_lost() {
        let t = run(&[0, 1, 4, 5], 6);
        assert_eq!(
            (t.received, t.lost, t.duplicated, t.out_of_order),
            (4, 2, 0, 0)
        );
    }

    #[test]
    fn tail_is_lost() {
        let t = run(&[0, 1], 5);
        assert_eq!(t.lost, 3);
        let t = run(&[], 3);
        assert_eq!(t.lost, 3);
    }

    #[test]
    fn late_arrival_is_out_of_order_not_lost() {
        let t = run(&[0, 2, 1, 3], 4);
        assert_eq!(
            (t.received, t.lost, t.duplicated, t.out_of_order),
            (4, 0, 0, 1)
        );
        // Middle of a longer gap, then the rest of it.
        let t = run(&[0, 5, 3, 1, 2, 4, 6], 7);
        assert_eq!(
            (t.received, t.lost, t.duplicated, t.out_of_order),
            (7, 0, 0, 4)
        );
        // Partly filled gap.
        let t = run(&[0, 5, 3], 6);
        assert_eq!(
            (t.received, t.lost, t.duplicated, t.out_of_order),
            (3, 3, 0, 1)
        );
    }

    #[test]
    fn duplicates() {
        let t = run(&[0, 1, 1, 2, 0, 2], 3);
        assert_eq!(
            (t.received, t.lost, t.duplicated, t.out_of_order),
            (3, 0, 3, 0)
        );
        // A late arrival seen twice: once out-of-order, then duplicate.
        let t = run(&[0, 2, 1, 1], 3);
        assert_eq!(
            (t.received, t.lost, t.duplicated, t.out_of_order),
            (3, 0, 1, 1)
        );
        // Starting late: 0..3 missing, a repeat of 3 is a duplicate.
        let t = run(&[3, 3], 4);
        assert_eq!(
            (t.received, t.lost, t.duplicated, t.out_of_order),
            (1, 3, 1, 0)
        );
    }

    #[test]
    fn accounting_identity_random() {
        // received + lost == total and received - out_of_order == in-order arrivals.
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let total = rng.u64(1..300);
            let mut seqs: Vec<u64> = (0..total).filter(|_| rng.u8(0..10) > 1).collect();
            // Some swaps and some duplicates.
            for _ in 0..rng.usize(0..10) {
                if seqs.len() > 1 {
                    let a = rng.usize(0..seqs.len());
                    let b = rng.usize(0..seqs.len());
                    seqs.swap(a, b);
                }
            }
            let dups = rng.usize(0..5);
            for _ in 0..dups {
                if !seqs.is_empty() {
                    let s = seqs[rng.usize(0..seqs.len())];
                    let at = rng.usize(0..=seqs.len());
                    seqs.insert(at, s);
                }
            }
            let unique: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
            let t = run(&seqs, total);
            assert_eq!(t.received, unique.len() as u64);
            assert_eq!(t.received + t.lost, total);
            assert_eq!(t.duplicated, (seqs.len() - unique.len()) as u64);
        }
    }

    #[test]
    fn bounded_memory() {
        let mut t = SeqTracker::new();
        for i in 0..10_000u64 {
            t.record(i * 2 + 1);
        }
        assert!(t.gaps.len() <= MAX_GAPS);
        assert_eq!(t.lost, 10_000);
    }
}
