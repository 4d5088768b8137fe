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
use crate::router::session::PendingInvocation;
use crate::router::trie::UriTrie;
use crate::router::wire::{frame, AppPayload, Encoding};
use crate::router::{Flow, Router, ShardMsg};

/// One registration as seen from one shard.
#[derive(Clone, Debug)]
pub struct Registration {
    pub id: u64,
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
    /// Adds (or replaces, for the same pattern) a registration.
    pub fn insert(&mut self, reg: Registration) {
        if let Some(old) = self.trie.insert(reg.policy, &reg.uri, reg.id) {
            if old != reg.id {
                self.regs.remove(&old);
            }
        }
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
    /// The concrete procedure, sent in Details only for pattern-based registrations.
    pub procedure: Option<Arc<str>>,
    pub ser: Serializer,
    pub payload: AppPayload,
}

impl Router {
    /// REGISTER: claim the procedure in the realm, then announce it to every shard.
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
        let (realm, peer) = (session.realm, session.peer.clone());
        let claimed = self
            .realms
            .control(realm)
            .register(policy, procedure, self.shard, sid);
        let Some(id) = claimed else {
            self.reply_error(
                sid,
                codes::REGISTER,
                request,
                errors::PROCEDURE_ALREADY_EXISTS,
            );
            return Flow::Continue;
        };
        let uri: Arc<str> = Arc::from(procedure);
        self.local[realm].dealer.insert(Registration {
            id,
            policy,
            uri: uri.clone(),
            shard: self.shard,
            callee: sid,
        });
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.registrations.push(id);
        }
        let token = self.broadcast(|token| ShardMsg::RegUpdate {
            realm,
            id,
            policy,
            uri: uri.clone(),
            callee: Some(sid),
            token,
        });
        let reply = Message::Registered {
            request,
            registration: id,
        };
        self.reply_after(token, &peer, &reply);
        Flow::Continue
    }

    /// UNREGISTER.
    pub(crate) fn on_unregister(&mut self, sid: u64, request: u64, registration: u64) -> Flow {
        let owned = self.sessions.get_mut(&sid).and_then(|s| {
            let pos = s.registrations.iter().position(|&r| r == registration)?;
            s.registrations.swap_remove(pos);
            Some(s.realm)
        });
        let Some(realm) = owned else {
            self.reply_error(
                sid,
                codes::UNREGISTER,
                request,
                errors::NO_SUCH_REGISTRATION,
            );
            return Flow::Continue;
        };
        self.drop_registration(realm, registration);
        self.reply(
            sid,
            &Message::Unregistered {
                request,
                details: None,
            },
        );
        Flow::Continue
    }

    /// Removes registration `id` here, in the realm authority and on every other shard.
    pub(crate) fn drop_registration(&mut self, realm: usize, id: u64) {
        let Some(reg) = self.local[realm].dealer.regs.get(&id).cloned() else {
            return;
        };
        self.local[realm].dealer.remove(id);
        self.realms
            .control(realm)
            .unregister(reg.policy, &reg.uri, id);
        self.broadcast_no_ack(|| ShardMsg::RegUpdate {
            realm,
            id,
            policy: reg.policy,
            uri: reg.uri.clone(),
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
        let Some(session) = self.sessions.get(&sid) else {
            return Flow::Continue;
        };
        let (realm, enc) = (session.realm, session.peer.enc);
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

    /// A CALL arriving at the callee's shard: send the INVOCATION and remember the caller.
    pub(crate) fn on_invoke(&mut self, inv: Invoke) {
        let callee = self
            .sessions
            .get_mut(&inv.callee)
            .filter(|s| s.registrations.contains(&inv.registration));
        let Some(callee) = callee else {
            // The callee left or unregistered while the CALL was on its way.
            if let Some(err) = error_frame(
                inv.caller_enc,
                inv.caller_request,
                errors::NO_SUCH_PROCEDURE,
                "the callee left before the call reached it",
            ) {
                self.send_to_session(inv.caller_shard, inv.caller, err);
            }
            return;
        };
        if callee.invocations.len() >= self.limits.max_pending_invocations {
            // The callee is not keeping up: fail fast rather than queue without bound.
            if let Some(err) = error_frame(
                inv.caller_enc,
                inv.caller_request,
                errors::UNAVAILABLE,
                "the callee has too many calls in progress",
            ) {
                self.send_to_session(inv.caller_shard, inv.caller, err);
            }
            return;
        }
        let request = callee.invocation_id();
        callee.invocations.insert(
            request,
            PendingInvocation {
                caller_shard: inv.caller_shard,
                caller: inv.caller,
                caller_request: inv.caller_request,
                caller_enc: inv.caller_enc,
            },
        );
        let details = match &inv.procedure {
            Some(p) => Val::Dict(vec![(
                Cow::Borrowed("procedure"),
                Val::Str(Cow::Borrowed(p)),
            )]),
            None => Val::empty_dict(),
        };
        let (args, kwargs) = inv.payload.vals(inv.ser);
        let peer = callee.peer.clone();
        self.reply_peer(
            &peer,
            &Message::Invocation {
                request,
                registration: inv.registration,
                details,
                args,
                kwargs,
            },
        );
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

    /// Encodes `msg` in the caller's encoding and sends it to the caller, wherever it is.
    fn answer_caller(&mut self, pending: &PendingInvocation, msg: &Message<'_>) {
        match frame(pending.caller_enc, msg) {
            Ok(bytes) => self.send_to_session(pending.caller_shard, pending.caller, bytes),
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode the answer to a CALL");
                let err = error_frame(
                    pending.caller_enc,
                    pending.caller_request,
                    errors::INVALID_ARGUMENT,
                    "the callee's answer cannot be expressed in the caller's serializer",
                );
                if let Some(b) = err {
                    self.send_to_session(pending.caller_shard, pending.caller, b);
                }
            }
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
