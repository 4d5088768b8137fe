//! The Dealer: registrations and the CALL → INVOCATION → YIELD → RESULT path.
//!
//! Every shard holds a replica of a realm's registrations (procedure pattern → callee shard and
//! session), so a CALL is routed from the caller's shard without a lock. The INVOCATION is built on the
//! callee's shard in the callee's encoding; the callee's shard remembers where the caller is, and when
//! the YIELD (or ERROR) comes back it builds the RESULT in the *caller's* encoding and hands the
//! finished frame back — so each message is encoded exactly once, by the shard that has the payload.

use std::borrow::Cow;
use std::sync::Arc;

use ahash::AHashMap;
use bytes::Bytes;

use crate::protocol::codes;
use crate::protocol::errors;
use crate::protocol::uri::{self, MatchPolicy};
use crate::protocol::{Message, Serializer, Val};
use crate::router::authority::Grant;
use crate::router::session::{HeldRegistration, PendingInvocation};
use crate::router::trie::UriTrie;
use crate::router::wire::{frame, AppPayload, Encoding, FrameError};
use crate::router::{reserved_uri, BarrierOutcome, Flow, Router, ShardMsg};

/// One registration as seen from one shard.
#[derive(Clone, Debug)]
pub struct Registration {
    pub id: u64,
    /// The authority's revision of `id`: between two ids for one pattern, the higher is the live one.
    pub rev: u64,
    pub policy: MatchPolicy,
    pub uri: Arc<str>,
    pub shard: usize,
    pub callee: u64,
}

/// A shard's replica of one realm's registrations.
#[derive(Default)]
pub struct Dealer {
    trie: UriTrie<u64>,
    regs: AHashMap<u64, Registration>,
}

impl Dealer {
    /// Adds a registration, replacing an older one for the same pattern (the authority retired it);
    /// an update older than what the replica holds is stale and ignored.
    pub fn insert(&mut self, reg: Registration) {
        if let Some(&old) = self.trie.get(reg.policy, &reg.uri) {
            if self.regs.get(&old).is_some_and(|o| o.rev > reg.rev) {
                return;
            }
            if old != reg.id {
                self.regs.remove(&old);
            }
        }
        self.trie.insert(reg.policy, &reg.uri, reg.id);
        self.regs.insert(reg.id, reg);
    }

    /// Removes registration `id` (a no-op if a newer registration took its pattern).
    pub fn remove(&mut self, id: u64) {
        if let Some(reg) = self.regs.remove(&id) {
            if self.trie.get(reg.policy, &reg.uri) == Some(&id) {
                self.trie.remove(reg.policy, &reg.uri);
            }
        }
    }

    /// The registration a CALL to `procedure` goes to: exact, else longest prefix, else wildcard.
    pub fn route(&self, procedure: &str) -> Option<&Registration> {
        let (_, _, id) = self.trie.best_match(procedure)?;
        self.regs.get(id)
    }

    /// Every registration of this replica.
    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.regs.values()
    }

    /// Number of registrations in this replica.
    pub fn len(&self) -> usize {
        self.regs.len()
    }

    /// True when the replica holds no registration.
    pub fn is_empty(&self) -> bool {
        self.regs.is_empty()
    }
}

/// A CALL on its way to the callee's shard.
pub struct Invoke {
    pub realm: usize,
    pub registration: u64,
    pub callee: u64,
    pub caller_shard: usize,
    pub caller: u64,
    pub caller_request: u64,
    pub caller_enc: Encoding,
    pub caller_max_frame: usize,
    /// The concrete procedure, sent in Details only for pattern-based registrations.
    pub procedure: Option<Arc<str>>,
    pub ser: Serializer,
    pub payload: AppPayload,
}

impl Invoke {
    /// Answers the caller with an ERROR for its CALL, wherever the caller is.
    fn fail(&self, r: &mut Router, error: &str, text: &str) {
        if let Some(err) = error_frame(self.caller_enc, self.caller_request, error, text) {
            r.send_to_session(self.caller_shard, self.caller, err);
        }
    }
}

impl Router {
    /// REGISTER: claim the procedure in the realm, then announce it to every shard. Calls reach the
    /// callee only after its REGISTERED has been queued (calls that arrive from other shards before
    /// this shard has heard every acknowledgement wait for it).
    pub(crate) fn on_register(
        &mut self,
        sid: u64,
        request: u64,
        options: &Val<'_>,
        procedure: &str,
    ) -> Flow {
        let Some(policy) = self.match_policy(sid, codes::REGISTER, request, options) else {
            return Flow::Continue;
        };
        if let Some(invoke) = options.get("invoke").and_then(|v| v.as_str()) {
            if invoke != "single" {
                self.reply_error(sid, codes::REGISTER, request, errors::INVALID_ARGUMENT);
                return Flow::Continue;
            }
        }
        if !uri::is_valid_pattern(procedure, policy, false)
            || procedure.len() > self.limits.max_uri_len
            || reserved_uri(procedure)
        {
            self.reply_error(sid, codes::REGISTER, request, errors::INVALID_URI);
            return Flow::Continue;
        }
        let Some(session) = self.sessions.get(&sid) else {
            return Flow::Continue;
        };
        if session.registrations.len() >= self.limits.max_registrations {
            self.reply_error(sid, codes::REGISTER, request, errors::UNAVAILABLE);
            return Flow::Continue;
        }
        let realm = session.realm;
        let claimed = self
            .realms
            .authority(realm)
            .register(policy, procedure, self.shard, sid);
        let Some(grant) = claimed else {
            self.reply_error(
                sid,
                codes::REGISTER,
                request,
                errors::PROCEDURE_ALREADY_EXISTS,
            );
            return Flow::Continue;
        };
        let uri: Arc<str> = Arc::from(procedure);
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.registrations.push(HeldRegistration {
                id: grant.id,
                policy,
                uri: uri.clone(),
            });
        }
        let token = self.broadcast(|token| ShardMsg::RegUpdate {
            realm,
            grant,
            policy,
            uri: uri.clone(),
            callee: Some(sid),
            token,
        });
        let reg = Registration {
            id: grant.id,
            rev: grant.rev,
            policy,
            uri,
            shard: self.shard,
            callee: sid,
        };
        if token != 0 {
            self.unconfirmed.insert(grant.id, Vec::new());
        }
        self.after_barrier(
            token,
            Box::new(move |r, outcome| match outcome {
                BarrierOutcome::Done => r.confirm_registered(realm, reg, request),
                BarrierOutcome::TimedOut => r.abandon_register(realm, reg.id, sid, request),
            }),
        );
        Flow::Continue
    }

    /// Every shard knows the registration: route this shard's calls to it, queue REGISTERED, then
    /// the calls that reached it early. Nothing happens if the callee left or unregistered meanwhile.
    fn confirm_registered(&mut self, realm: usize, reg: Registration, request: u64) {
        let early = self.unconfirmed.remove(&reg.id).unwrap_or_default();
        let (id, sid) = (reg.id, reg.callee);
        if !self
            .sessions
            .get(&sid)
            .is_some_and(|s| s.holds_registration(id))
        {
            for inv in early {
                inv.fail(self, errors::NO_SUCH_PROCEDURE, "the callee left");
            }
            return;
        }
        let (policy, uri) = (reg.policy, reg.uri.clone());
        self.local[realm].dealer.insert(reg);
        self.reply(
            sid,
            &Message::Registered {
                request,
                registration: id,
            },
        );
        self.meta_registered(realm, sid, id, policy, uri);
        for inv in early {
            self.on_invoke(inv);
        }
    }

    /// Another shard never acknowledged the registration: it is undone and the callee told so.
    fn abandon_register(&mut self, realm: usize, id: u64, sid: u64, request: u64) {
        let early = self.unconfirmed.remove(&id).unwrap_or_default();
        for inv in early {
            inv.fail(
                self,
                errors::UNAVAILABLE,
                "the registration was not confirmed",
            );
        }
        let held = self.sessions.get_mut(&sid).and_then(|s| {
            let pos = s.registrations.iter().position(|r| r.id == id)?;
            Some(s.registrations.swap_remove(pos))
        });
        if let Some(held) = held {
            self.drop_registration(realm, &held);
            self.reply_error_text(
                sid,
                codes::REGISTER,
                request,
                errors::UNAVAILABLE,
                "a router shard did not confirm the registration in time",
            );
        }
    }

    /// UNREGISTER.
    pub(crate) fn on_unregister(&mut self, sid: u64, request: u64, registration: u64) -> Flow {
        let owned = self.sessions.get_mut(&sid).and_then(|s| {
            let pos = s.registrations.iter().position(|r| r.id == registration)?;
            Some((s.realm, s.registrations.swap_remove(pos)))
        });
        let Some((realm, held)) = owned else {
            self.reply_error(
                sid,
                codes::UNREGISTER,
                request,
                errors::NO_SUCH_REGISTRATION,
            );
            return Flow::Continue;
        };
        self.drop_registration(realm, &held);
        self.reply(
            sid,
            &Message::Unregistered {
                request,
                details: None,
            },
        );
        self.meta_unregistered(realm, sid, held.id);
        Flow::Continue
    }

    /// Retires a registration here, in the realm authority and on every other shard. Works from
    /// what the session holds, so a procedure is freed even if this replica never had the entry.
    pub(crate) fn drop_registration(&mut self, realm: usize, held: &HeldRegistration) {
        self.local[realm].dealer.remove(held.id);
        self.realms
            .authority(realm)
            .unregister(held.policy, &held.uri, held.id);
        let grant = Grant {
            id: held.id,
            rev: 0,
        };
        self.broadcast_no_ack(|| ShardMsg::RegUpdate {
            realm,
            grant,
            policy: held.policy,
            uri: held.uri.clone(),
            callee: None,
            token: 0,
        });
    }

    /// CALL: route to the callee's shard (possibly this one).
    pub(crate) fn on_call(
        &mut self,
        sid: u64,
        request: u64,
        procedure: &str,
        payload: AppPayload,
    ) -> Flow {
        if !uri::is_valid_uri(procedure, false) || procedure.len() > self.limits.max_uri_len {
            self.reply_error(sid, codes::CALL, request, errors::INVALID_URI);
            return Flow::Continue;
        }
        if crate::router::meta::is_meta_procedure(procedure) {
            return self.on_meta_call(sid, request, procedure, payload);
        }
        let Some(session) = self.sessions.get(&sid) else {
            return Flow::Continue;
        };
        let (realm, enc) = (session.realm, session.peer.enc);
        let caller_max_frame = session.peer.outbox.max_frame();
        let Some(reg) = self.local[realm].dealer.route(procedure) else {
            self.reply_error(sid, codes::CALL, request, errors::NO_SUCH_PROCEDURE);
            return Flow::Continue;
        };
        let inv = Invoke {
            realm,
            registration: reg.id,
            callee: reg.callee,
            caller_shard: self.shard,
            caller: sid,
            caller_request: request,
            caller_enc: enc,
            caller_max_frame,
            procedure: (reg.policy != MatchPolicy::Exact).then(|| Arc::from(procedure)),
            ser: enc.ser,
            payload,
        };
        let shard = reg.shard;
        if shard == self.shard {
            self.on_invoke(inv);
        } else {
            self.out.send(shard, ShardMsg::Invoke(Box::new(inv)));
        }
        Flow::Continue
    }

    /// A CALL arriving at the callee's shard: send the INVOCATION and remember the caller. Every path
    /// out of here either queues the INVOCATION with its pending slot taken, or answers the caller.
    pub(crate) fn on_invoke(&mut self, inv: Invoke) {
        if let Some(early) = self.unconfirmed.get_mut(&inv.registration) {
            // Reached this shard before every shard acknowledged the registration: the callee must
            // see REGISTERED first.
            if early.len() < self.limits.max_pending_invocations {
                early.push(inv);
            } else {
                inv.fail(
                    self,
                    errors::UNAVAILABLE,
                    "the callee has too many calls in progress",
                );
            }
            return;
        }
        let callee = self
            .sessions
            .get(&inv.callee)
            .filter(|s| s.holds_registration(inv.registration));
        let Some(callee) = callee else {
            // The callee left or unregistered while the CALL was on its way.
            inv.fail(
                self,
                errors::NO_SUCH_PROCEDURE,
                "the callee left before the call reached it",
            );
            return;
        };
        if callee.invocations.len() >= self.limits.max_pending_invocations {
            // The callee is not keeping up: fail fast rather than queue without bound.
            inv.fail(
                self,
                errors::UNAVAILABLE,
                "the callee has too many calls in progress",
            );
            return;
        }
        let peer = callee.peer.clone();
        let request = callee.next_invocation_peek();
        let details = match &inv.procedure {
            Some(p) => Val::Dict(vec![(
                Cow::Borrowed("procedure"),
                Val::Str(Cow::Borrowed(p)),
            )]),
            None => Val::empty_dict(),
        };
        let (args, kwargs) = inv.payload.vals(inv.ser);
        let framed = frame(
            peer.enc,
            &Message::Invocation {
                request,
                registration: inv.registration,
                details,
                args,
                kwargs,
            },
        );
        let bytes = match framed {
            Ok(b) if b.len() <= peer.outbox.max_frame() => b,
            Ok(_) | Err(FrameError::TooLarge(_)) => {
                inv.fail(
                    self,
                    errors::PAYLOAD_SIZE_EXCEEDED,
                    "the call is too large for the callee",
                );
                return;
            }
            Err(FrameError::Codec(e)) => {
                let text = format!("the call cannot be expressed in the callee's serializer: {e}");
                inv.fail(self, errors::INVALID_ARGUMENT, &text);
                return;
            }
        };
        let callee = self.sessions.get_mut(&inv.callee).expect("checked above");
        let taken = callee.invocation_id();
        debug_assert_eq!(taken, request);
        callee.invocations.insert(
            request,
            PendingInvocation {
                caller_shard: inv.caller_shard,
                caller: inv.caller,
                caller_request: inv.caller_request,
                caller_enc: inv.caller_enc,
                caller_max_frame: inv.caller_max_frame,
            },
        );
        self.push(&peer, bytes);
    }

    /// True if the router ever sent session `sid` an INVOCATION with this request id.
    pub(crate) fn invocation_was_sent(&self, sid: u64, request: u64) -> bool {
        self.sessions
            .get(&sid)
            .is_some_and(|s| s.invocation_was_sent(request))
    }

    /// YIELD: the callee's answer becomes the caller's RESULT.
    pub(crate) fn on_yield(&mut self, sid: u64, request: u64, payload: AppPayload) -> Flow {
        let Some((pending, ser)) = self.take_invocation(sid, request) else {
            return Flow::Continue;
        };
        let (args, kwargs) = payload.vals(ser);
        let msg = Message::Result {
            request: pending.caller_request,
            details: Val::empty_dict(),
            args,
            kwargs,
        };
        self.answer_caller(&pending, &msg);
        Flow::Continue
    }

    /// ERROR for an INVOCATION: forwarded to the caller as an ERROR for its CALL.
    pub(crate) fn on_invocation_error(
        &mut self,
        sid: u64,
        request: u64,
        details: &Val<'_>,
        error: &str,
        payload: AppPayload,
    ) -> Flow {
        let Some((pending, ser)) = self.take_invocation(sid, request) else {
            return Flow::Continue;
        };
        let (args, kwargs) = payload.vals(ser);
        let msg = Message::Error {
            request_type: codes::CALL,
            request: pending.caller_request,
            details: if details.is_dict() {
                details.clone()
            } else {
                Val::empty_dict()
            },
            error: Cow::Borrowed(error),
            args,
            kwargs,
        };
        self.answer_caller(&pending, &msg);
        Flow::Continue
    }

    /// Takes the pending invocation `request` of callee `sid`, with the callee's serializer (the one
    /// its answer's payload is in). None for an unknown id: an answer that lost a race (the caller
    /// left, say), with nothing left to do.
    fn take_invocation(
        &mut self,
        sid: u64,
        request: u64,
    ) -> Option<(PendingInvocation, Serializer)> {
        let session = self.sessions.get_mut(&sid)?;
        let pending = session.invocations.remove(&request)?;
        Some((pending, session.peer.enc.ser))
    }

    /// Encodes `msg` in the caller's encoding and sends it to the caller, wherever it is. An answer
    /// the caller could not take (too large, or not expressible in its serializer) becomes an ERROR,
    /// so the caller is never left waiting.
    fn answer_caller(&mut self, pending: &PendingInvocation, msg: &Message<'_>) {
        let (error, text) = match frame(pending.caller_enc, msg) {
            Ok(bytes) if bytes.len() <= pending.caller_max_frame => {
                self.send_to_session(pending.caller_shard, pending.caller, bytes);
                return;
            }
            Ok(_) | Err(FrameError::TooLarge(_)) => (
                errors::PAYLOAD_SIZE_EXCEEDED,
                "the callee's answer is too large for the caller".to_string(),
            ),
            Err(FrameError::Codec(e)) => (
                errors::INVALID_ARGUMENT,
                format!("the callee's answer cannot be expressed in the caller's serializer: {e}"),
            ),
        };
        tracing::debug!(caller = pending.caller, "{text}");
        if let Some(b) = error_frame(pending.caller_enc, pending.caller_request, error, &text) {
            self.send_to_session(pending.caller_shard, pending.caller, b);
        }
    }

    /// Fails every call that `invocations` (of a callee that is leaving) still owed an answer.
    pub(crate) fn fail_invocations(
        &mut self,
        invocations: impl IntoIterator<Item = PendingInvocation>,
    ) {
        for p in invocations {
            if let Some(b) = error_frame(
                p.caller_enc,
                p.caller_request,
                errors::CANCELED,
                "the callee left before answering",
            ) {
                self.send_to_session(p.caller_shard, p.caller, b);
            }
        }
    }
}

/// An ERROR for a CALL, with a human-readable message as its only argument.
fn error_frame(enc: Encoding, request: u64, error: &str, text: &str) -> Option<Bytes> {
    let msg = Message::Error {
        request_type: codes::CALL,
        request,
        details: Val::empty_dict(),
        error: Cow::Borrowed(error),
        args: Some(Val::List(vec![Val::Str(Cow::Borrowed(text))])),
        kwargs: None,
    };
    frame(enc, &msg).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: u64, rev: u64, shard: usize, callee: u64) -> Registration {
        Registration {
            id,
            rev,
            policy: MatchPolicy::Exact,
            uri: Arc::from("p"),
            shard,
            callee,
        }
    }

    /// B's callee registered X and unregistered; A's callee then registered Y. B's late "add X"
    /// must not take the procedure from Y, and B's "remove X" must not remove Y.
    #[test]
    fn a_late_registration_of_a_retired_id_is_ignored() {
        let mut a = Dealer::default();
        a.insert(reg(20, 5, 0, 1));
        a.insert(reg(10, 3, 1, 2));
        a.remove(10);
        assert_eq!(a.route("p").map(|r| r.id), Some(20));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn a_newer_registration_replaces_an_older_one() {
        let mut a = Dealer::default();
        a.insert(reg(10, 3, 1, 2));
        a.insert(reg(20, 5, 0, 1));
        assert_eq!(a.route("p").map(|r| (r.id, r.callee)), Some((20, 1)));
        a.remove(10);
        assert_eq!(a.route("p").map(|r| r.id), Some(20));
        a.remove(20);
        assert!(a.route("p").is_none() && a.is_empty());
    }
}
