//! Shard-to-shard channels: one bounded lock-free ring per (source, destination) pair, drained in
//! batches, with at most one cross-thread wake-up per batch.
//!
//! A cross-thread wake costs microseconds on this class of machine (an eventfd write plus a context
//! switch), while pushing onto a ring costs nanoseconds, so producers buffer what they have for each
//! destination during one loop turn ([`Outgoing`]), push it all, and ring the doorbell once. The
//! destination clears its `notified` flag before it looks at its rings, so a wake can never be lost:
//! either the consumer sees the message when it looks, or the producer sees the flag cleared and wakes it.
//!
//! Each ring has exactly one producer thread (the source shard) and one consumer thread, which keeps
//! per-pair FIFO order: control updates sent by one shard are applied everywhere in the order sent.
//! New connections come from acceptor threads through a separate unbounded queue, since they are rare.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;

use atomic_waker::AtomicWaker;
use crossbeam::queue::{ArrayQueue, SegQueue};

/// Default capacity of one ring.
pub const RING_CAPACITY: usize = 8192;

/// The inbound side of one shard.
pub struct Inbox<T, C> {
    /// `rings[src]` carries messages from shard `src`.
    rings: Vec<ArrayQueue<T>>,
    /// Connections handed over by acceptor threads.
    conns: SegQueue<C>,
    waker: AtomicWaker,
    notified: AtomicBool,
    /// Wake-ups actually sent to this shard (a notify while one is on its way costs nothing).
    wakes: AtomicU64,
}

/// All inboxes of all shards; shared by every shard thread and the acceptors.
pub struct Mesh<T, C> {
    inboxes: Vec<Inbox<T, C>>,
}

impl<T: Send, C: Send> Mesh<T, C> {
    /// A mesh for `shards` shards whose rings hold `capacity` messages each.
    pub fn new(shards: usize, capacity: usize) -> Self {
        let inboxes = (0..shards)
            .map(|_| Inbox {
                rings: (0..shards).map(|_| ArrayQueue::new(capacity)).collect(),
                conns: SegQueue::new(),
                waker: AtomicWaker::new(),
                notified: AtomicBool::new(false),
                wakes: AtomicU64::new(0),
            })
            .collect();
        Mesh { inboxes }
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    /// Wakes shard `dst` unless a wake-up is already on its way.
    pub fn notify(&self, dst: usize) {
        let inbox = &self.inboxes[dst];
        if !inbox.notified.swap(true, Ordering::SeqCst) {
            inbox.wakes.fetch_add(1, Ordering::Relaxed);
            inbox.waker.wake();
        }
    }

    /// Wake-ups sent to shard `dst` so far.
    pub fn wakes(&self, dst: usize) -> u64 {
        self.inboxes[dst].wakes.load(Ordering::Relaxed)
    }

    /// Hands a new connection to shard `dst` (called from acceptor threads).
    pub fn push_conn(&self, dst: usize, conn: C) {
        self.inboxes[dst].conns.push(conn);
        self.notify(dst);
    }

    /// Pushes as many of `batch` as fit into the ring `src → dst`, oldest first; what does not fit stays
    /// in `batch`. Returns how many were pushed. Does not wake the destination.
    pub fn push_batch(&self, src: usize, dst: usize, batch: &mut VecDeque<T>) -> usize {
        let ring = &self.inboxes[dst].rings[src];
        let mut pushed = 0;
        while let Some(msg) = batch.pop_front() {
            if let Err(msg) = ring.push(msg) {
                batch.push_front(msg);
                break;
            }
            pushed += 1;
        }
        pushed
    }

    /// Waits until shard `me` has something in its inbox. Must be awaited from shard `me`'s thread.
    pub async fn ready(&self, me: usize) {
        let inbox = &self.inboxes[me];
        poll_fn(|cx| {
            inbox.waker.register(cx.waker());
            // A notify without a message (shutdown, a retry of a full ring) must wake us too.
            if inbox.notified.swap(false, Ordering::SeqCst) {
                return Poll::Ready(());
            }
            if !inbox.conns.is_empty() || inbox.rings.iter().any(|r| !r.is_empty()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Takes up to `budget` messages off shard `me`'s rings, round-robin over sources so that one busy
    /// shard cannot starve the others.
    pub fn drain(&self, me: usize, budget: usize, out: &mut Vec<(usize, T)>) {
        let inbox = &self.inboxes[me];
        let mut taken = 0;
        loop {
            let mut progressed = false;
            for (src, ring) in inbox.rings.iter().enumerate() {
                // Take a run from each ring before moving on: fewer passes, same fairness bound.
                for _ in 0..64 {
                    match ring.pop() {
                        Some(m) => {
                            out.push((src, m));
                            taken += 1;
                            progressed = true;
                        }
                        None => break,
                    }
                }
                if taken >= budget {
                    return;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Takes the next connection handed to shard `me`.
    pub fn pop_conn(&self, me: usize) -> Option<C> {
        self.inboxes[me].conns.pop()
    }
}

/// Per-shard staging of messages for other shards during one loop turn.
pub struct Outgoing<T> {
    me: usize,
    queues: Vec<VecDeque<T>>,
    dirty: Vec<usize>,
}

impl<T: Send> Outgoing<T> {
    /// Staging for shard `me` of a mesh with `shards` shards.
    pub fn new(me: usize, shards: usize) -> Self {
        Outgoing {
            me,
            queues: (0..shards).map(|_| VecDeque::new()).collect(),
            dirty: Vec::new(),
        }
    }

    /// Stages `msg` for shard `dst`.
    pub fn send(&mut self, dst: usize, msg: T) {
        let q = &mut self.queues[dst];
        if q.is_empty() {
            self.dirty.push(dst);
        }
        q.push_back(msg);
    }

    /// True when nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.dirty.is_empty()
    }

    /// Pushes everything staged into the rings and wakes each destination once. Messages that did not
    /// fit (a full ring: the destination is overloaded) stay staged; returns true if any did.
    pub fn flush<C: Send>(&mut self, mesh: &Mesh<T, C>) -> bool {
        let mut left = Vec::new();
        for dst in std::mem::take(&mut self.dirty) {
            let q = &mut self.queues[dst];
            if mesh.push_batch(self.me, dst, q) > 0 {
                mesh.notify(dst);
            }
            if !q.is_empty() {
                left.push(dst);
            }
        }
        let backlog = !left.is_empty();
        self.dirty = left;
        backlog
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn batches_keep_fifo_order_and_overflow_stays_staged() {
        let mesh: Mesh<u32, ()> = Mesh::new(2, 4);
        let mut out = Outgoing::new(0, 2);
        for i in 0..6 {
            out.send(1, i);
        }
        assert!(out.flush(&mesh), "two messages cannot fit a ring of 4");
        let mut got = Vec::new();
        mesh.drain(1, 100, &mut got);
        assert_eq!(got, vec![(0, 0), (0, 1), (0, 2), (0, 3)]);
        assert!(!out.flush(&mesh));
        got.clear();
        mesh.drain(1, 100, &mut got);
        assert_eq!(got, vec![(0, 4), (0, 5)]);
    }

    #[test]
    fn cross_thread_handoff_delivers_everything() {
        let mesh: Arc<Mesh<u64, ()>> = Arc::new(Mesh::new(2, 1024));
        let m2 = mesh.clone();
        let producer = std::thread::spawn(move || {
            let mut out = Outgoing::new(0, 2);
            for i in 0..100_000u64 {
                out.send(1, i);
                if i % 100 == 99 {
                    while out.flush(&m2) {
                        std::thread::yield_now();
                    }
                }
            }
            while out.flush(&m2) {
                std::thread::yield_now();
            }
        });
        let mut next = 0u64;
        let mut buf = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while next < 100_000 && std::time::Instant::now() < deadline {
            buf.clear();
            mesh.drain(1, 1000, &mut buf);
            for (src, v) in buf.drain(..) {
                assert_eq!(src, 0);
                assert_eq!(v, next);
                next += 1;
            }
        }
        producer.join().unwrap();
        assert_eq!(next, 100_000);
    }
}
