//! Progressive call invocations: a CALL with `progress: true` opens a stream, and further CALLs
//! with the same request id go to the same callee as INVOCATIONs with the same request id, until a
//! CALL without `progress` closes it.
//!
//! The caller's shard remembers where each open stream goes (only for progressive calls, so plain
//! calls pay a single emptiness check). The callee's shard finds the invocation of a chunk in its
//! index of pending invocations by caller (`router/inflight.rs`). A chunk for a call that has ended meanwhile is dropped, as the spec's
//! watermark rule asks: the caller gets that call's one final answer anyway.

use ahash::AHashMap;

use crate::protocol::errors;
use crate::protocol::features::ClientFeatures;
use crate::protocol::{Message, Val};
use crate::router::dealer::Invoke;
use crate::router::passthru;
use crate::router::wire::{frame, AppPayload};
use crate::router::{Conn, Flow, Router, ShardMsg};

/// Where an open progressive call goes.
#[derive(Clone, Copy, Debug)]
pub struct Stream {
    pub realm: usize,
    pub shard: usize,
    pub callee: u64,
    pub registration: u64,
}

/// Open progressive calls of one shard's callers, by (caller, request id).
pub type Streams = AHashMap<(u64, u64), Stream>;

/// True when a CALL's Options ask for a progressive invocation.
pub(crate) fn wants_progress(options: &Val<'_>) -> bool {
    !options.is_empty_dict() && options.get("progress").and_then(|v| v.as_bool()) == Some(true)
}

impl Router {
    /// A CALL that is no new request: a chunk of an open progressive call, or one for a call that
    /// has ended (dropped). None for anything else, which takes the ordinary CALL path.
    pub(crate) fn call_continuation(
        &mut self,
        conn: &mut Conn,
        sid: u64,
        msg: &Message<'_>,
        bytes: &bytes::Bytes,
    ) -> Option<Flow> {
        let Message::Call {
            request,
            options,
            args,
            kwargs,
            ..
        } = msg
        else {
            return None;
        };
        let open = !self.streams.is_empty() && self.streams.contains_key(&(sid, *request));
        if !open {
            return self.progressive_start_check(conn, sid, *request, options);
        }
        if let Err(e) = msg.check_options() {
            return Some(self.violation(conn, &e.to_string()));
        }
        let progress = wants_progress(options);
        let stream = if progress {
            self.streams[&(sid, *request)]
        } else {
            self.close_stream(sid, *request)
        };
        let payload = AppPayload::from_frame(bytes, args, kwargs).with_passthru(options);
        self.send_chunk(sid, *request, stream, progress, payload);
        Some(Flow::Continue)
    }

    /// A CALL with `progress` that opens no stream: a protocol violation from a caller that did not
    /// announce the feature, dropped when its request id is not new (its call has ended).
    fn progressive_start_check(
        &mut self,
        conn: &mut Conn,
        sid: u64,
        request: u64,
        options: &Val<'_>,
    ) -> Option<Flow> {
        if !wants_progress(options) {
            return None;
        }
        let session = self.sessions.get(&sid)?;
        if !session
            .features
            .has(ClientFeatures::CALLER_PROGRESSIVE_INVOCATIONS)
        {
            return Some(self.violation(
                conn,
                "CALL with progress from a caller that did not announce progressive_call_invocations",
            ));
        }
        (request <= session.last_request).then_some(Flow::Continue)
    }

    /// Sends one chunk of an open progressive call to its callee's shard.
    fn send_chunk(
        &mut self,
        sid: u64,
        request: u64,
        stream: Stream,
        progress: bool,
        payload: AppPayload,
    ) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let enc = session.peer.enc;
        let inv = Invoke {
            realm: stream.realm,
            registration: stream.registration,
            callee: stream.callee,
            caller_shard: self.shard,
            caller: sid,
            caller_request: request,
            caller_enc: enc,
            caller_max_frame: session.peer.outbox.max_frame(),
            procedure: None,
            ser: enc.ser,
            payload,
            receive_progress: false,
            timeout_ms: 0,
            disclosed: None,
            progress,
            route: Default::default(),
            continuation: true,
            caller_ppt: false,
        };
        if stream.shard == self.shard {
            self.on_invoke(inv);
        } else {
            self.out.send(stream.shard, ShardMsg::Invoke(Box::new(inv)));
        }
    }

    /// Remembers where a new progressive call went.
    pub(crate) fn open_stream(&mut self, sid: u64, request: u64, stream: Stream) {
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.open_streams += 1;
        }
        self.streams.insert((sid, request), stream);
    }

    /// The caller sent the last chunk of a stream.
    fn close_stream(&mut self, sid: u64, request: u64) -> Stream {
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.open_streams = s.open_streams.saturating_sub(1);
        }
        self.streams.remove(&(sid, request)).expect("open")
    }

    /// Forgets the open streams of a caller that left.
    pub(crate) fn close_streams_of(&mut self, sid: u64) {
        if !self.streams.is_empty() {
            self.streams.retain(|&(s, _), _| s != sid);
        }
    }

    /// A chunk reaching the callee's shard: an INVOCATION with the request id of the call's first
    /// one. Dropped when that invocation has ended.
    pub(crate) fn on_chunk(&mut self, inv: Invoke) {
        let Some(callee) = self.sessions.get(&inv.callee) else {
            return;
        };
        let found = self
            .inflight
            .find(inv.caller, inv.caller_request)
            .filter(|slot| {
                slot.callee == inv.callee && callee.invocations.contains_key(&slot.invocation)
            })
            .map(|slot| slot.invocation);
        let Some(request) = found else {
            return;
        };
        if passthru::unreadable_for(&inv.payload, callee.features) {
            // As for the call's first INVOCATION: an application error, never a chunk it cannot read.
            let text = "a chunk of the call is in payload passthru mode, which the callee did not announce";
            self.fail_stream(inv.callee, request, errors::FEATURE_NOT_SUPPORTED, text);
            return;
        }
        let peer = callee.peer.clone();
        let details = chunk_details(&inv);
        let (args, kwargs) = inv.payload.vals(inv.ser);
        let msg = Message::Invocation {
            request,
            registration: inv.registration,
            details,
            args,
            kwargs,
        };
        match frame(peer.enc, &msg) {
            Ok(b) if b.len() <= peer.outbox.max_frame() => self.push(&peer, b),
            _ => self.fail_stream(
                inv.callee,
                request,
                errors::PAYLOAD_SIZE_EXCEEDED,
                "a chunk of the call is too large for the callee (or not expressible in its serializer)",
            ),
        }
    }
}

/// INVOCATION.Details of a chunk: `progress` while more follow, and the chunk's passthru attributes.
fn chunk_details(inv: &Invoke) -> Val<'_> {
    if !inv.progress && inv.payload.ppt.is_none() {
        return Val::empty_dict();
    }
    let mut d = Vec::new();
    if inv.progress {
        d.push((std::borrow::Cow::Borrowed("progress"), Val::Bool(true)));
    }
    inv.payload.append_passthru(&mut d);
    Val::Dict(d)
}
