//! A session as the routing state sees it: who it is, how it wants its bytes, and the bounded queue its
//! connection's writer drains.
//!
//! The queue holds finished frames (`Bytes`, often shared by many sessions) and is bounded in bytes:
//! when a subscriber cannot keep up, the queue overflows and the session is closed instead of the
//! router's memory growing without bound. Everything queued during one loop turn is written by one
//! write call, because the writer task only runs after the task that queued has yielded.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

use ahash::AHashMap;
use bytes::Bytes;
use smallvec::SmallVec;

use crate::config::SlowConsumerPolicy;
use crate::router::wire::Encoding;

/// Why an outbox stopped accepting frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Still open.
    No,
    /// Close after what is queued has been written (ABORT, GOODBYE, WebSocket close).
    Graceful,
    /// The queue hit its byte bound: drop what is queued and close at once.
    Overflow,
    /// The connection failed or the peer went away.
    Gone,
}

struct OutboxState {
    queue: VecDeque<Bytes>,
    bytes: usize,
    waker: Option<Waker>,
    closed: Closed,
    /// Frames refused because they exceeded what the peer said it accepts.
    oversized: u64,
}

/// The outbound queue of one connection.
pub struct Outbox {
    state: RefCell<OutboxState>,
    limit_bytes: usize,
    limit_msgs: usize,
    /// What a full queue means for EVENTs (set from the realm at HELLO).
    policy: Cell<SlowConsumerPolicy>,
    /// EVENTs dropped under the `drop` policy.
    dropped: Cell<u64>,
    /// Largest frame the peer accepts (RawSocket negotiates it; WebSocket peers take our maximum).
    max_frame: usize,
}

/// Outcome of queueing a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The session is closing or closed; the frame was dropped.
    Closed,
    /// This push overflowed the queue; the session is now being closed.
    Overflowed,
    /// The queue is full and the realm's policy drops EVENTs: this one was dropped.
    Dropped,
    /// The frame is larger than the peer accepts and was dropped.
    TooLarge,
}

impl Outbox {
    /// A queue bounded at `limit_bytes` and `limit_msgs` for a peer that accepts frames up to
    /// `max_frame` bytes.
    pub fn new(limit_bytes: usize, limit_msgs: usize, max_frame: usize) -> Self {
        Outbox {
            limit_msgs,
            policy: Cell::new(SlowConsumerPolicy::Disconnect),
            dropped: Cell::new(0),
            state: RefCell::new(OutboxState {
                queue: VecDeque::new(),
                bytes: 0,
                waker: None,
                closed: Closed::No,
                oversized: 0,
            }),
            limit_bytes,
            max_frame,
        }
    }

    /// The largest frame the peer accepts, transport header included.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Sets what a full queue means for EVENTs.
    pub fn set_policy(&self, policy: SlowConsumerPolicy) {
        self.policy.set(policy);
    }

    /// EVENTs dropped so far under the `drop` policy.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Queues an EVENT: under the `drop` policy a full queue drops it instead of closing.
    pub fn push_event(&self, frame: Bytes) -> Push {
        if self.policy.get() == SlowConsumerPolicy::Drop && self.is_full_for(frame.len()) {
            self.dropped.set(self.dropped.get() + 1);
            return Push::Dropped;
        }
        self.push(frame)
    }

    fn is_full_for(&self, len: usize) -> bool {
        let st = self.state.borrow();
        st.bytes + len > self.limit_bytes || st.queue.len() >= self.limit_msgs
    }

    /// Queues one finished frame for writing; a full queue closes the session.
    pub fn push(&self, frame: Bytes) -> Push {
        let mut st = self.state.borrow_mut();
        if st.closed != Closed::No {
            return Push::Closed;
        }
        if frame.len() > self.max_frame {
            st.oversized += 1;
            return Push::TooLarge;
        }
        if st.bytes + frame.len() > self.limit_bytes || st.queue.len() >= self.limit_msgs {
            st.closed = Closed::Overflow;
            st.queue.clear();
            st.bytes = 0;
            if let Some(w) = st.waker.take() {
                w.wake();
            }
            return Push::Overflowed;
        }
        st.bytes += frame.len();
        st.queue.push_back(frame);
        if st.queue.len() == 1 {
            if let Some(w) = st.waker.take() {
                w.wake();
            }
        }
        Push::Queued
    }

    /// Queues a last frame (if any) and closes once everything queued is written.
    pub fn close(&self, last: Option<Bytes>) {
        if let Some(frame) = last {
            self.push(frame);
        }
        let mut st = self.state.borrow_mut();
        if st.closed == Closed::No {
            st.closed = Closed::Graceful;
        }
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }

    /// Marks the connection dead: nothing more will be written.
    pub fn fail(&self) {
        let mut st = self.state.borrow_mut();
        st.closed = Closed::Gone;
        st.queue.clear();
        st.bytes = 0;
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }

    /// The close state.
    pub fn closed(&self) -> Closed {
        self.state.borrow().closed
    }

    /// Takes everything queued (tests look at what a session was sent).
    #[cfg(test)]
    pub fn take_queued(&self) -> Vec<Bytes> {
        let mut st = self.state.borrow_mut();
        st.bytes = 0;
        st.queue.drain(..).collect()
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.state.borrow().bytes
    }

    /// Waits for frames and appends them to `buf` (at most about `max_batch` bytes, but always at least
    /// one frame). Returns `Ok(())` when `buf` has data to write and `Err(state)` when the writer must stop.
    pub async fn fill(&self, buf: &mut Vec<u8>, max_batch: usize) -> Result<(), Closed> {
        poll_fn(|cx| {
            let mut st = self.state.borrow_mut();
            match st.closed {
                Closed::Overflow | Closed::Gone => return Poll::Ready(Err(st.closed)),
                Closed::Graceful if st.queue.is_empty() => {
                    return Poll::Ready(Err(Closed::Graceful))
                }
                _ => {}
            }
            if st.queue.is_empty() {
                st.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            while let Some(frame) = st.queue.pop_front() {
                st.bytes -= frame.len();
                buf.extend_from_slice(&frame);
                if buf.len() >= max_batch {
                    break;
                }
            }
            Poll::Ready(Ok(()))
        })
        .await
    }
}

/// What other sessions' routing needs to reach one session: shared by the session table, the broker's
/// subscriber lists and the connection's writer.
pub struct Peer {
    /// The session id; 0 until WELCOME.
    pub id: std::cell::Cell<u64>,
    pub enc: Encoding,
    pub outbox: Outbox,
    /// The router said GOODBYE (shutdown) and waits for the client's GOODBYE in reply.
    pub goodbye_sent: Cell<bool>,
    /// A request of this session waits for the dynamic authorizer: what the session sends next
    /// queues behind it (a flag here, so the plain path tests one bit and looks nothing up).
    pub parked: Cell<bool>,
}

/// An INVOCATION this shard sent to one of its callees and is waiting on.
pub struct PendingInvocation {
    pub caller_shard: usize,
    pub caller: u64,
    pub caller_request: u64,
    pub caller_enc: Encoding,
    /// The largest frame the caller accepts: a RESULT or ERROR longer than that is replaced by
    /// `wamp.error.payload_size_exceeded`.
    pub caller_max_frame: usize,
    /// The caller asked for progressive results: a YIELD with `progress` becomes a RESULT with
    /// `progress` and the call stays pending; without it such YIELDs are dropped.
    pub receive_progress: bool,
    /// When the INVOCATION was queued (the router's batch clock, µs), for the call-latency
    /// histogram.
    pub invoked: u64,
    /// The caller announced payload passthru mode: a YIELD in that mode may become its RESULT.
    pub caller_ppt: bool,
    /// The callee whose `least_loaded` count on the caller's shard this call raised; 0 if none.
    pub counted: u64,
    /// The call itself, kept (shared registration with several callees) so that a callee's
    /// `wamp.error.unavailable` can move it to another callee.
    pub retry: Option<Box<crate::router::dealer::Invoke>>,
}

/// A registration a session holds, with what is needed to retire it even if this shard's replica
/// has not (or no longer) got it.
#[derive(Clone, Debug)]
pub struct HeldRegistration {
    pub id: u64,
    pub policy: crate::protocol::uri::MatchPolicy,
    pub uri: std::sync::Arc<str>,
}

/// Who a session is, as authentication decided when it joined. Shared (`Arc`) so that calls and
/// events that disclose their sender carry it to other shards without copying strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub authid: std::sync::Arc<str>,
    pub authrole: std::sync::Arc<str>,
    pub authmethod: std::sync::Arc<str>,
    pub authprovider: std::sync::Arc<str>,
}

impl Identity {
    /// The identity of an anonymous session.
    pub fn anonymous(session: u64, role: &str) -> Self {
        Identity {
            authid: format!("anonymous-{session}").into(),
            authrole: role.into(),
            authmethod: "anonymous".into(),
            authprovider: "static".into(),
        }
    }
}

/// The routing state of one established session.
pub struct Session {
    pub peer: std::rc::Rc<Peer>,
    pub realm: usize,
    /// Who the session is (fixed for its life: a reload of the rules does not change it).
    pub identity: std::sync::Arc<Identity>,
    /// The advanced features the client announced in HELLO.
    pub features: crate::protocol::features::ClientFeatures,
    /// Subscriptions this session holds (ids).
    pub subscriptions: SmallVec<[u64; 4]>,
    /// Registrations this session holds.
    pub registrations: SmallVec<[HeldRegistration; 2]>,
    /// Invocations sent to this session as callee, by INVOCATION request id.
    pub invocations: AHashMap<u64, PendingInvocation>,
    /// Router-scope request id counter for INVOCATIONs to this session.
    pub next_invocation: u64,
    /// The INVOCATION counter has wrapped past 2^53 at least once.
    pub invocations_wrapped: bool,
    /// The last session-scope request id the client used (they must count up by one).
    pub last_request: u64,
    /// Calls this session made that have not had their final answer yet (bounded by
    /// `Limits::max_calls_per_caller`; non-zero means CANCEL and departure must reach the callees).
    pub calls_in_flight: usize,
    /// Progressive calls whose last chunk this session has not sent yet (bounded like
    /// `calls_in_flight`: a stream outlives its call when the callee answers early).
    pub open_streams: usize,
}

impl Session {
    /// A fresh session of `peer` in realm `realm`.
    pub fn new(
        peer: std::rc::Rc<Peer>,
        realm: usize,
        identity: std::sync::Arc<Identity>,
        features: crate::protocol::features::ClientFeatures,
    ) -> Self {
        Session {
            peer,
            realm,
            identity,
            features,
            subscriptions: SmallVec::new(),
            registrations: SmallVec::new(),
            invocations: AHashMap::new(),
            next_invocation: 0,
            invocations_wrapped: false,
            last_request: 0,
            calls_in_flight: 0,
            open_streams: 0,
        }
    }

    /// The next INVOCATION request id (router scope: sequential per session, from 1, back to 1 after
    /// 2^53 as the spec asks).
    pub fn invocation_id(&mut self) -> u64 {
        if self.next_invocation >= crate::router::ids::MAX_ID {
            self.next_invocation = 0;
            self.invocations_wrapped = true;
        }
        self.next_invocation += 1;
        self.next_invocation
    }

    /// The id [`Session::invocation_id`] will hand out next, without taking it (an INVOCATION that
    /// turns out too large for the callee must not use up an id).
    pub fn next_invocation_peek(&self) -> u64 {
        if self.next_invocation >= crate::router::ids::MAX_ID {
            1
        } else {
            self.next_invocation + 1
        }
    }

    /// True if the router has sent this session an INVOCATION with request id `request` (answered or
    /// not). A YIELD or ERROR for any other id is a protocol violation.
    pub fn invocation_was_sent(&self, request: u64) -> bool {
        self.invocations_wrapped || (1..=self.next_invocation).contains(&request)
    }

    /// True if the session holds registration `id`.
    pub fn holds_registration(&self, id: u64) -> bool {
        self.registrations.iter().any(|r| r.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_policy_drops_events_but_never_results() {
        let ob = Outbox::new(100, 1000, 1000);
        ob.set_policy(SlowConsumerPolicy::Drop);
        assert_eq!(ob.push_event(Bytes::from(vec![0u8; 60])), Push::Queued);
        assert_eq!(ob.push_event(Bytes::from(vec![0u8; 60])), Push::Dropped);
        assert_eq!(ob.dropped(), 1);
        assert_eq!(ob.closed(), Closed::No);
        // A RESULT that does not fit closes the session instead of vanishing.
        assert_eq!(ob.push(Bytes::from(vec![0u8; 60])), Push::Overflowed);
        assert_eq!(ob.closed(), Closed::Overflow);
    }

    #[test]
    fn message_count_bound_applies_too() {
        let ob = Outbox::new(1 << 20, 2, 1000);
        assert_eq!(ob.push(Bytes::from_static(b"a")), Push::Queued);
        assert_eq!(ob.push(Bytes::from_static(b"b")), Push::Queued);
        assert_eq!(ob.push(Bytes::from_static(b"c")), Push::Overflowed);
    }

    #[test]
    fn overflow_closes_and_drops_queue() {
        let ob = Outbox::new(100, 1000, 1000);
        assert_eq!(ob.push(Bytes::from(vec![0u8; 60])), Push::Queued);
        assert_eq!(ob.push(Bytes::from(vec![0u8; 60])), Push::Overflowed);
        assert_eq!(ob.closed(), Closed::Overflow);
        assert_eq!(ob.queued_bytes(), 0);
        assert_eq!(ob.push(Bytes::from_static(b"x")), Push::Closed);
    }

    #[test]
    fn oversized_frames_are_refused_not_fatal() {
        let ob = Outbox::new(10_000, 1000, 10);
        assert_eq!(ob.push(Bytes::from(vec![0u8; 11])), Push::TooLarge);
        assert_eq!(ob.push(Bytes::from(vec![0u8; 10])), Push::Queued);
        assert_eq!(ob.closed(), Closed::No);
    }
}
