//! The Dealer: registrations and the CALL → INVOCATION → YIELD → RESULT path.
//!
//! Every shard holds a replica of a realm's registrations (procedure pattern → callee shard and
//! session), so a CALL is routed from the caller's shard without a lock. The INVOCATION is built on the
//! callee's shard in the callee's encoding; the callee's shard remembers where the caller is, and when
//! the YIELD (or ERROR) comes back it builds the RESULT in the *caller's* encoding and hands the
//! finished frame back — so each message is encoded exactly once, by the shard that has the payload.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;

use ahash::AHashMap;
use bytes::Bytes;
use smallvec::SmallVec;

use crate::protocol::codes;
use crate::protocol::errors;
use crate::protocol::features::ClientFeatures;
use crate::protocol::passthru::Passthru;
use crate::protocol::uri::{self, MatchPolicy};
use crate::protocol::{Message, Serializer, Val};
use crate::router::authority::{Grant, InvokePolicy, Refusal};
use crate::router::inflight::Slot;
use crate::router::passthru;
use crate::router::progressive::Stream;
use crate::router::routing::{jump, rkey_hash, CallRoute, Loads};
use crate::router::session::{HeldRegistration, Identity, PendingInvocation};
use crate::router::trie::UriTrie;
use crate::router::wire::{frame, AppPayload, Encoding, FrameError};
use crate::router::{reserved_uri, BarrierOutcome, Flow, Router, ShardMsg};

/// One callee of a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Callee {
    pub shard: usize,
    pub session: u64,
    /// Position in registration order, as the realm's authority decided it.
    pub order: u64,
    /// The callee asked (`disclose_caller`) to be told who calls it.
    pub disclose_caller: bool,
}

/// One registration as seen from one shard, with all its callees (on every shard).
#[derive(Clone, Debug)]
pub struct Registration {
    pub id: u64,
    /// The authority's revision of `id`: between two ids for one pattern, the higher is the live one.
    pub rev: u64,
    pub policy: MatchPolicy,
    pub uri: Arc<str>,
    pub invoke: InvokePolicy,
    /// Sorted by registration order.
    pub callees: SmallVec<[Callee; 1]>,
    /// Round-robin position of this shard's callers.
    turn: Cell<usize>,
}

impl Registration {
    /// A registration as one update describes it: one callee.
    pub fn one(
        id: u64,
        rev: u64,
        policy: MatchPolicy,
        uri: Arc<str>,
        invoke: InvokePolicy,
        callee: Callee,
    ) -> Self {
        Registration {
            id,
            rev,
            policy,
            uri,
            invoke,
            callees: smallvec::smallvec![callee],
            turn: Cell::new(0),
        }
    }

    /// The callee the next call goes to. Round-robin rotates over the whole callee set (every
    /// shard's callees) per caller shard, so callees on all shards get an equal share of the calls
    /// made from each shard.
    pub fn pick(&self) -> &Callee {
        let n = self.callees.len();
        match self.invoke {
            InvokePolicy::Single | InvokePolicy::First => &self.callees[0],
            InvokePolicy::Last => &self.callees[n - 1],
            InvokePolicy::Random => &self.callees[fastrand::usize(..n)],
            // Without the caller shard's loads (the router's own calls), least_loaded rotates.
            InvokePolicy::RoundRobin | InvokePolicy::LeastLoaded => {
                let t = self.turn.get() % n;
                self.turn.set(t + 1);
                &self.callees[t]
            }
        }
    }

    /// The callee a CALL goes to: by its `rkey` when it has one (sharded registration: the same
    /// key reaches the same callee from every shard, since every replica orders the callees as
    /// the authority did), else by the policy, `least_loaded` reading this shard's `loads`.
    pub fn pick_with(&self, rkey: Option<u64>, loads: &Loads) -> &Callee {
        match (rkey, self.invoke) {
            (Some(key), _) => &self.callees[jump(key, self.callees.len())],
            (None, InvokePolicy::LeastLoaded) => self.least_loaded(loads),
            (None, _) => self.pick(),
        }
    }

    /// The callee with the fewest calls in flight from this shard; ties are broken by rotating
    /// the starting point, so equally loaded callees take turns.
    fn least_loaded(&self, loads: &Loads) -> &Callee {
        let n = self.callees.len();
        let start = self.turn.get() % n;
        self.turn.set(start + 1);
        (0..n)
            .map(|i| &self.callees[(start + i) % n])
            .min_by_key(|c| loads.of(c.session))
            .expect("a registration has a callee")
    }

    /// Where a call rerouted away from `from` goes next: no callee it tried before; `first` and
    /// `last` keep to registration order, `random` draws, the others take the next one after
    /// `from` in registration order (wrapping around).
    pub fn next_callee(&self, from: u64, tried: &[u64]) -> Option<&Callee> {
        let untried = |c: &&Callee| !tried.contains(&c.session);
        match self.invoke {
            InvokePolicy::Single => None,
            InvokePolicy::First => self.callees.iter().find(untried),
            InvokePolicy::Last => self.callees.iter().rev().find(untried),
            InvokePolicy::Random => {
                let left: SmallVec<[&Callee; 4]> = self.callees.iter().filter(untried).collect();
                (!left.is_empty()).then(|| left[fastrand::usize(..left.len())])
            }
            InvokePolicy::RoundRobin | InvokePolicy::LeastLoaded => {
                let n = self.callees.len();
                let at = self.callees.iter().position(|c| c.session == from);
                let start = at.map_or(0, |i| i + 1);
                (0..n).map(|i| &self.callees[(start + i) % n]).find(untried)
            }
        }
    }

    fn add(&mut self, callee: Callee) {
        self.callees.retain(|c| c.session != callee.session);
        let pos = self.callees.partition_point(|c| c.order < callee.order);
        self.callees.insert(pos, callee);
    }
}

/// A shard's replica of one realm's registrations.
#[derive(Default)]
pub struct Dealer {
    trie: UriTrie<u64>,
    regs: AHashMap<u64, Registration>,
}

impl Dealer {
    /// Adds the callee of `reg` to its registration, replacing an older registration for the same
    /// pattern (the authority retired it); an update older than what the replica holds is stale and
    /// ignored.
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
        match self.regs.get_mut(&reg.id) {
            Some(held) => {
                for c in reg.callees {
                    held.add(c);
                }
            }
            None => {
                self.regs.insert(reg.id, reg);
            }
        }
    }

    /// Removes callee `session` of registration `id`, and the registration with its last callee
    /// (a no-op if a newer registration took its pattern).
    pub fn remove(&mut self, id: u64, session: u64) {
        let Some(reg) = self.regs.get_mut(&id) else {
            return;
        };
        reg.callees.retain(|c| c.session != session);
        if !reg.callees.is_empty() {
            return;
        }
        let reg = self.regs.remove(&id).expect("present");
        if self.trie.get(reg.policy, &reg.uri) == Some(&id) {
            self.trie.remove(reg.policy, &reg.uri);
        }
    }

    /// The registration a CALL to `procedure` goes to: exact, else longest prefix, else wildcard.
    pub fn route(&self, procedure: &str) -> Option<&Registration> {
        let (_, _, id) = self.trie.best_match(procedure)?;
        self.regs.get(id)
    }

    /// Registration `id`, if this replica holds it.
    pub fn get(&self, id: u64) -> Option<&Registration> {
        self.regs.get(&id)
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
    /// The caller asked for progressive results.
    pub receive_progress: bool,
    /// `CALL.Options.timeout` in milliseconds; 0 means none.
    pub timeout_ms: u64,
    /// Who the caller is, when the caller or the registration asked for disclosure.
    pub disclosed: Option<(u64, Arc<Identity>)>,
    /// A progressive call invocation: more chunks follow.
    pub progress: bool,
    /// A further chunk of a progressive call (not a new call).
    pub continuation: bool,
    /// The caller announced payload passthru mode (it may receive a RESULT in that mode).
    pub caller_ppt: bool,
    /// `least_loaded` accounting and rerouting; empty for a plain call.
    pub route: CallRoute,
}

/// What a CALL's options ask of the router. Read only when the options are not empty, so a plain
/// call pays one length check.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct CallOptions {
    pub receive_progress: bool,
    pub disclose_me: bool,
    pub timeout_ms: u64,
    pub progress: bool,
    /// Hash of `rkey` (sharded registration).
    pub rkey: Option<u64>,
}

impl CallOptions {
    pub(crate) fn read(options: &Val<'_>) -> Self {
        if options.is_empty_dict() {
            return Self::default();
        }
        let flag = |k: &str| options.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
        CallOptions {
            receive_progress: flag("receive_progress"),
            disclose_me: flag("disclose_me"),
            progress: flag("progress"),
            timeout_ms: options.get("timeout").and_then(|v| v.as_u64()).unwrap_or(0),
            rkey: options
                .get("rkey")
                .and_then(|v| v.as_str().map(|k| rkey_hash(&k))),
        }
    }
}

/// Whether a caller with this identity may have itself disclosed to callees. Everyone may today;
/// this is where per-role rules decide once roles carry such a permission.
pub(crate) fn may_disclose_caller(_who: &Identity) -> bool {
    true
}

impl Invoke {
    /// Answers the caller with an ERROR for its CALL, wherever the caller is.
    pub(crate) fn fail(&self, r: &mut Router, error: &str, text: &str) {
        r.unload(self.caller_shard, self.route.counted);
        let err = error_frame(self.caller_enc, self.caller_request, error, text);
        r.finish_call(self.caller_shard, self.caller, err);
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
        let disclose_caller = options
            .get("disclose_caller")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let named = options.get("invoke");
        let named = named
            .as_ref()
            .filter(|v| !v.is_null())
            .and_then(|v| v.as_str());
        let Some(invoke) = InvokePolicy::from_option(named.as_deref()) else {
            self.reply_error(sid, codes::REGISTER, request, errors::INVALID_ARGUMENT);
            return Flow::Continue;
        };
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
        if session
            .registrations
            .iter()
            .any(|r| r.policy == policy && &*r.uri == procedure)
        {
            // Already one of its callees: a session is not a callee of one procedure twice.
            self.reply_error(
                sid,
                codes::REGISTER,
                request,
                errors::PROCEDURE_ALREADY_EXISTS,
            );
            return Flow::Continue;
        }
        let realm = session.realm;
        let claimed = self
            .realms
            .authority(realm)
            .register(policy, procedure, self.shard, sid, invoke);
        let (grant, order) = match claimed {
            Ok(j) => (j.grant, j.order),
            Err(refusal) => {
                let error = match refusal {
                    Refusal::Exists => errors::PROCEDURE_ALREADY_EXISTS,
                    Refusal::OtherPolicy => errors::PROCEDURE_EXISTS_WITH_DIFFERENT_POLICY,
                };
                self.reply_error(sid, codes::REGISTER, request, error);
                return Flow::Continue;
            }
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
            session: sid,
            order,
            invoke,
            disclose_caller,
            token,
        });
        let callee = Callee {
            shard: self.shard,
            session: sid,
            order,
            disclose_caller,
        };
        let reg = Registration::one(grant.id, grant.rev, policy, uri, invoke, callee);
        if token != 0 {
            self.unconfirmed.insert((grant.id, sid), Vec::new());
        }
        self.after_barrier(
            token,
            Box::new(move |r, outcome| match outcome {
                BarrierOutcome::Done => r.confirm_registered(realm, reg, sid, request),
                BarrierOutcome::TimedOut => r.abandon_register(realm, reg.id, sid, request),
            }),
        );
        Flow::Continue
    }

    /// Every shard knows the registration: route this shard's calls to it, queue REGISTERED, then
    /// the calls that reached it early. Nothing happens if the callee left or unregistered meanwhile.
    fn confirm_registered(&mut self, realm: usize, reg: Registration, sid: u64, request: u64) {
        let early = self.unconfirmed.remove(&(reg.id, sid)).unwrap_or_default();
        let id = reg.id;
        if !self
            .sessions
            .get(&sid)
            .is_some_and(|s| s.holds_registration(id))
        {
            for inv in early {
                self.callee_gone(inv);
            }
            return;
        }
        let meta = reg.clone();
        self.local[realm].dealer.insert(reg);
        self.reply(
            sid,
            &Message::Registered {
                request,
                registration: id,
            },
        );
        self.meta_registered(realm, sid, &meta);
        for inv in early {
            self.on_invoke(inv);
        }
    }

    /// Another shard never acknowledged the registration: it is undone and the callee told so.
    fn abandon_register(&mut self, realm: usize, id: u64, sid: u64, request: u64) {
        let early = self.unconfirmed.remove(&(id, sid)).unwrap_or_default();
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
            self.drop_registration(realm, sid, &held);
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
        let deleted = self.drop_registration(realm, sid, &held);
        self.reply(
            sid,
            &Message::Unregistered {
                request,
                details: None,
            },
        );
        self.meta_unregistered(realm, sid, held.id, deleted);
        Flow::Continue
    }

    /// Removes callee `sid` from a registration here, in the realm authority and on every other
    /// shard (the registration is retired with its last callee). Works from what the session holds,
    /// so a procedure is freed even if this replica never had the entry.
    /// True when `sid` was its last callee (the registration is gone realm-wide).
    pub(crate) fn drop_registration(
        &mut self,
        realm: usize,
        sid: u64,
        held: &HeldRegistration,
    ) -> bool {
        self.local[realm].dealer.remove(held.id, sid);
        let retired = self
            .realms
            .authority(realm)
            .unregister_retired(held.policy, &held.uri, held.id, sid)
            .unwrap_or(false);
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
            session: sid,
            order: 0,
            invoke: InvokePolicy::Single,
            disclose_caller: false,
            token: 0,
        });
        retired
    }

    /// CALL: route to the callee's shard (possibly this one).
    pub(crate) fn on_call(
        &mut self,
        sid: u64,
        request: u64,
        procedure: &str,
        options: &Val<'_>,
        payload: AppPayload,
    ) -> Flow {
        let max_uri_len = self.limits.max_uri_len;
        let valid = |p: &str| uri::is_valid_uri(p, false) && p.len() <= max_uri_len;
        if crate::router::meta::is_meta_procedure(procedure) {
            if !valid(procedure) {
                self.reply_error(sid, codes::CALL, request, errors::INVALID_URI);
                return Flow::Continue;
            }
            return self.on_meta_call(sid, request, procedure, payload);
        }
        let opts = CallOptions::read(options);
        let payload = payload.with_passthru(options);
        // One lookup of the caller for the whole CALL path (fields borrowed apart).
        let Some(session) = self.sessions.get_mut(&sid) else {
            return Flow::Continue;
        };
        let (realm, enc) = (session.realm, session.peer.enc);
        let route = self.local[realm].dealer.route(procedure);
        // A procedure equal to an exact registration's URI passed this very check when it was
        // registered: only other procedures are validated, which saves a scan of every plain call.
        if !route.is_some_and(|r| r.policy == MatchPolicy::Exact) && !valid(procedure) {
            self.reply_error(sid, codes::CALL, request, errors::INVALID_URI);
            return Flow::Continue;
        }
        let caller_max_frame = session.peer.outbox.max_frame();
        let refused = if opts.disclose_me && !may_disclose_caller(&session.identity) {
            Some((errors::OPTION_DISALLOWED_DISCLOSE_ME, None))
        } else if session.calls_in_flight >= self.limits.max_calls_per_caller
            || (opts.progress && session.open_streams >= self.limits.max_calls_per_caller)
        {
            Some((
                errors::UNAVAILABLE,
                Some("the caller has too many calls in progress"),
            ))
        } else {
            None
        };
        if let Some((error, text)) = refused {
            self.send_error(sid, codes::CALL, request, error, text);
            return Flow::Continue;
        }
        let Some(reg) = route else {
            self.reply_error(sid, codes::CALL, request, errors::NO_SUCH_PROCEDURE);
            return Flow::Continue;
        };
        let to = *reg.pick_with(opts.rkey, &self.routing.loads);
        let counted = opts.rkey.is_none() && reg.invoke == InvokePolicy::LeastLoaded;
        let mut route = if counted || reg.callees.len() > 1 {
            CallRoute {
                counted: if counted { to.session } else { 0 },
                // A stream's chunks must all reach one callee: progressive calls stay put.
                reroutable: reg.callees.len() > 1 && !opts.progress,
                ..CallRoute::default()
            }
        } else {
            CallRoute::default()
        };
        if counted {
            self.routing.loads.raise(to.session);
        }
        session.calls_in_flight += 1;
        // Disclosed for the caller's sake (its option, a role rule) to whichever callee it reaches.
        let asked = opts.disclose_me
            || self.rules.forces_disclosure(
                self.authorizer.disclose_now,
                realm,
                &session.identity.authrole,
                crate::config::file::Action::Call,
                procedure,
            );
        // Cloned only when disclosed: a plain call touches no reference count.
        let disclosed = (asked || to.disclose_caller).then(|| (sid, session.identity.clone()));
        if route.reroutable && !asked {
            // Another callee may want the caller disclosed when the call moves to it.
            route.identity = Some(session.identity.clone());
        }
        let inv = Invoke {
            realm,
            registration: reg.id,
            callee: to.session,
            caller_shard: self.shard,
            caller: sid,
            caller_request: request,
            caller_enc: enc,
            caller_max_frame,
            procedure: (reg.policy != MatchPolicy::Exact).then(|| Arc::from(procedure)),
            ser: enc.ser,
            payload,
            receive_progress: opts.receive_progress,
            timeout_ms: opts.timeout_ms,
            disclosed,
            progress: opts.progress,
            continuation: false,
            caller_ppt: session.features.has(ClientFeatures::PAYLOAD_PASSTHRU),
            route,
        };
        let shard = to.shard;
        if opts.progress {
            let stream = Stream {
                realm,
                shard,
                callee: to.session,
                registration: reg.id,
            };
            self.open_stream(sid, request, stream);
        }
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
        if let Some(early) = self.unconfirmed.get_mut(&(inv.registration, inv.callee)) {
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
        if inv.continuation {
            self.on_chunk(inv);
            return;
        }
        let callee = self
            .sessions
            .get(&inv.callee)
            .filter(|s| s.holds_registration(inv.registration));
        let Some(callee) = callee else {
            // The callee left or unregistered while the CALL was on its way.
            self.callee_gone(inv);
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
        let streams =
            ClientFeatures::CALLEE_PROGRESSIVE_INVOCATIONS | ClientFeatures::CALLEE_CALL_CANCELING;
        if inv.progress && !callee.features.has(streams) {
            inv.fail(
                self,
                errors::FEATURE_NOT_SUPPORTED,
                "the callee does not take progressive call invocations",
            );
            return;
        }
        if passthru::unreadable_for(&inv.payload, callee.features) {
            inv.fail(
                self,
                errors::FEATURE_NOT_SUPPORTED,
                "the callee did not announce payload_passthru_mode",
            );
            return;
        }
        let peer = callee.peer.clone();
        let request = callee.next_invocation_peek();
        let details = invocation_details(&inv, callee.features);
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
        let (timeout_ms, callee_sid, caller, caller_request) =
            (inv.timeout_ms, inv.callee, inv.caller, inv.caller_request);
        let pending = PendingInvocation {
            caller_shard: inv.caller_shard,
            caller: inv.caller,
            caller_request: inv.caller_request,
            caller_enc: inv.caller_enc,
            caller_max_frame: inv.caller_max_frame,
            receive_progress: inv.receive_progress,
            invoked: self.now_us,
            caller_ppt: inv.caller_ppt,
            counted: inv.route.counted,
            // Not `then(|| ...)`: a closure that owns the call copies it even when not run.
            retry: if inv.route.reroutable {
                Some(self.keep_for_reroute(inv))
            } else {
                None
            },
        };
        let callee = self.sessions.get_mut(&callee_sid).expect("checked above");
        let taken = callee.invocation_id();
        debug_assert_eq!(taken, request);
        callee.invocations.insert(request, pending);
        let slot = Slot {
            callee: callee_sid,
            invocation: request,
        };
        self.inflight.insert(caller, caller_request, slot);
        if timeout_ms > 0 {
            self.start_call_timer(timeout_ms, callee_sid, request, caller_request);
        }
        self.push_typed(&peer, bytes, codes::INVOCATION);
    }

    /// True if the router ever sent session `sid` an INVOCATION with this request id.
    pub(crate) fn invocation_was_sent(&self, sid: u64, request: u64) -> bool {
        self.sessions
            .get(&sid)
            .is_some_and(|s| s.invocation_was_sent(request))
    }

    /// YIELD: the callee's answer becomes the caller's RESULT.
    pub(crate) fn on_yield(
        &mut self,
        sid: u64,
        request: u64,
        options: &Val<'_>,
        payload: AppPayload,
    ) -> Flow {
        let payload = payload.with_passthru(options);
        if is_progress(options) {
            self.on_progress(sid, request, payload);
            return Flow::Continue;
        }
        let Some((pending, ser)) = self.take_invocation(sid, request) else {
            return Flow::Continue;
        };
        if payload.ppt.is_some() && !pending.caller_ppt {
            self.refuse_passthru_yield(sid, request, &pending);
            return Flow::Continue;
        }
        let (args, kwargs) = payload.vals(ser);
        let msg = Message::Result {
            request: pending.caller_request,
            details: passthru::result_details(false, &payload),
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
        let Some((mut pending, ser)) = self.take_invocation(sid, request) else {
            return Flow::Continue;
        };
        let error = if error == errors::UNAVAILABLE {
            if let Some(call) = pending.retry.take() {
                self.reroute(sid, call);
                return Flow::Continue;
            }
            // No other callee to try (call rerouting's rule for a single callee).
            errors::NO_AVAILABLE_CALLEE
        } else {
            error
        };
        if !pending.caller_ppt && Passthru::of(details).is_some() {
            self.refuse_passthru_error(&pending, error);
            return Flow::Continue;
        }
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
        let ser = session.peer.enc.ser;
        let slot = Slot {
            callee: sid,
            invocation: request,
        };
        self.inflight
            .remove(pending.caller, pending.caller_request, slot);
        self.metrics
            .call_latency_us(self.now_us.saturating_sub(pending.invoked));
        self.unload(pending.caller_shard, pending.counted);
        Some((pending, ser))
    }

    /// Encodes `msg` in the caller's encoding and sends it to the caller, wherever it is. An answer
    /// the caller could not take (too large, or not expressible in its serializer) becomes an ERROR,
    /// so the caller is never left waiting.
    fn answer_caller(&mut self, pending: &PendingInvocation, msg: &Message<'_>) {
        let bytes = match for_caller(pending, msg) {
            Ok(bytes) => Some(bytes),
            Err((error, text)) => {
                tracing::debug!(caller = pending.caller, "{text}");
                error_frame(pending.caller_enc, pending.caller_request, error, &text)
            }
        };
        self.finish_call(pending.caller_shard, pending.caller, bytes);
    }

    /// A progressive YIELD: a RESULT with `progress` for a caller that asked for them; the call
    /// stays pending. Dropped when the caller did not ask (or the call has ended). One the caller
    /// could not take ends the call with an ERROR instead.
    fn on_progress(&mut self, sid: u64, request: u64, payload: AppPayload) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let ser = session.peer.enc.ser;
        let Some(pending) = session.invocations.get(&request) else {
            return;
        };
        if !pending.receive_progress {
            return;
        }
        if payload.ppt.is_some() && !pending.caller_ppt {
            let (pending, _) = self.take_invocation(sid, request).expect("looked up above");
            self.refuse_passthru_yield(sid, request, &pending);
            return;
        }
        let (args, kwargs) = payload.vals(ser);
        let msg = Message::Result {
            request: pending.caller_request,
            details: passthru::result_details(true, &payload),
            args,
            kwargs,
        };
        match for_caller(pending, &msg) {
            Ok(bytes) => {
                let (shard, caller) = (pending.caller_shard, pending.caller);
                self.send_to_session(shard, caller, bytes);
            }
            Err(_) => {
                let (pending, _) = self.take_invocation(sid, request).expect("looked up above");
                self.answer_caller(&pending, &msg);
            }
        }
    }

    /// Fails every call that `invocations` (of `callee`, which is leaving) still owed an answer.
    pub(crate) fn fail_invocations(
        &mut self,
        callee: u64,
        invocations: AHashMap<u64, PendingInvocation>,
    ) {
        for (invocation, p) in invocations {
            let slot = Slot { callee, invocation };
            self.inflight.remove(p.caller, p.caller_request, slot);
            self.unload(p.caller_shard, p.counted);
            let b = error_frame(
                p.caller_enc,
                p.caller_request,
                errors::CANCELED,
                "the callee left before answering",
            );
            self.finish_call(p.caller_shard, p.caller, b);
        }
    }
}

/// `msg` in the caller's encoding, or the ERROR to send instead when the caller could not take it
/// (too large, or not expressible in its serializer), so the caller is never left waiting.
fn for_caller(
    pending: &PendingInvocation,
    msg: &Message<'_>,
) -> Result<Bytes, (&'static str, String)> {
    match frame(pending.caller_enc, msg) {
        Ok(bytes) if bytes.len() <= pending.caller_max_frame => Ok(bytes),
        Ok(_) | Err(FrameError::TooLarge(_)) => Err((
            errors::PAYLOAD_SIZE_EXCEEDED,
            "the callee's answer is too large for the caller".to_string(),
        )),
        Err(FrameError::Codec(e)) => Err((
            errors::INVALID_ARGUMENT,
            format!("the callee's answer cannot be expressed in the caller's serializer: {e}"),
        )),
    }
}

/// True for a YIELD that is a progressive result.
fn is_progress(options: &Val<'_>) -> bool {
    !options.is_empty_dict() && options.get("progress").and_then(|v| v.as_bool()) == Some(true)
}

/// INVOCATION.Details: the concrete procedure of a pattern-based registration, `receive_progress`
/// for a callee that can stream, and who calls when disclosure was asked for.
fn invocation_details(inv: &Invoke, callee: ClientFeatures) -> Val<'_> {
    if inv.procedure.is_none()
        && !inv.receive_progress
        && inv.disclosed.is_none()
        && !inv.progress
        && inv.payload.ppt.is_none()
    {
        return Val::empty_dict();
    }
    let mut d = Vec::new();
    if let Some(p) = &inv.procedure {
        d.push((Cow::Borrowed("procedure"), Val::Str(Cow::Borrowed(&**p))));
    }
    if inv.receive_progress && callee.has(ClientFeatures::CALLEE_PROGRESSIVE_RESULTS) {
        d.push((Cow::Borrowed("receive_progress"), Val::Bool(true)));
    }
    if inv.progress {
        d.push((Cow::Borrowed("progress"), Val::Bool(true)));
    }
    if let Some((sid, who)) = &inv.disclosed {
        d.push((Cow::Borrowed("caller"), Val::UInt(*sid)));
        d.push((
            Cow::Borrowed("caller_authid"),
            Val::Str(Cow::Borrowed(&who.authid)),
        ));
        d.push((
            Cow::Borrowed("caller_authrole"),
            Val::Str(Cow::Borrowed(&who.authrole)),
        ));
    }
    inv.payload.append_passthru(&mut d);
    if d.is_empty() {
        Val::empty_dict()
    } else {
        Val::Dict(d)
    }
}

/// An ERROR for a CALL, with a human-readable message as its only argument.
pub(crate) fn error_frame(enc: Encoding, request: u64, error: &str, text: &str) -> Option<Bytes> {
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

    fn reg_with(
        id: u64,
        rev: u64,
        invoke: InvokePolicy,
        shard: usize,
        callee: u64,
    ) -> Registration {
        let c = Callee {
            shard,
            session: callee,
            order: callee,
            disclose_caller: false,
        };
        Registration::one(id, rev, MatchPolicy::Exact, Arc::from("p"), invoke, c)
    }

    fn reg(id: u64, rev: u64, shard: usize, callee: u64) -> Registration {
        reg_with(id, rev, InvokePolicy::Single, shard, callee)
    }

    /// B's callee registered X and unregistered; A's callee then registered Y. B's late "add X"
    /// must not take the procedure from Y, and B's "remove X" must not remove Y.
    #[test]
    fn a_late_registration_of_a_retired_id_is_ignored() {
        let mut a = Dealer::default();
        a.insert(reg(20, 5, 0, 1));
        a.insert(reg(10, 3, 1, 2));
        a.remove(10, 2);
        assert_eq!(a.route("p").map(|r| r.id), Some(20));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn a_newer_registration_replaces_an_older_one() {
        let mut a = Dealer::default();
        a.insert(reg(10, 3, 1, 2));
        a.insert(reg(20, 5, 0, 1));
        assert_eq!(
            a.route("p").map(|r| (r.id, r.pick().session)),
            Some((20, 1))
        );
        a.remove(10, 2);
        assert_eq!(a.route("p").map(|r| r.id), Some(20));
        a.remove(20, 1);
        assert!(a.route("p").is_none() && a.is_empty());
    }

    /// Callees are kept in the authority's registration order whatever order their updates
    /// arrive in; `first`/`last` follow it, round-robin visits each in turn.
    #[test]
    fn shared_callees_follow_registration_order() {
        for (invoke, want) in [
            (InvokePolicy::First, vec![3, 3, 3]),
            (InvokePolicy::Last, vec![9, 9, 9]),
            (InvokePolicy::RoundRobin, vec![3, 5, 9, 3, 5, 9]),
        ] {
            let mut a = Dealer::default();
            for callee in [9, 3, 5] {
                a.insert(reg_with(10, 3, invoke, callee as usize % 2, callee));
            }
            let r = a.route("p").unwrap();
            let got: Vec<u64> = want.iter().map(|_| r.pick().session).collect();
            assert_eq!(got, want, "{invoke:?}");
        }
        let mut a = Dealer::default();
        for callee in [1, 2] {
            a.insert(reg_with(10, 3, InvokePolicy::Random, 0, callee));
        }
        a.remove(10, 1);
        assert_eq!(a.route("p").unwrap().pick().session, 2);
        a.remove(10, 2);
        assert!(a.is_empty());
    }

    fn three(invoke: InvokePolicy) -> Dealer {
        let mut a = Dealer::default();
        for callee in [3, 5, 9] {
            a.insert(reg_with(10, 3, invoke, callee as usize % 2, callee));
        }
        a
    }

    /// least_loaded fills the idle callees first and sends the next call to the one that
    /// finished; an rkey always reaches the same callee whatever the policy.
    #[test]
    fn least_loaded_and_rkey_pick() {
        let a = three(InvokePolicy::LeastLoaded);
        let r = a.route("p").unwrap();
        let mut loads = Loads::default();
        let mut got: Vec<u64> = (0..3)
            .map(|_| {
                let c = r.pick_with(None, &loads).session;
                loads.raise(c);
                c
            })
            .collect();
        got.sort();
        assert_eq!(got, vec![3, 5, 9]);
        loads.lower(5);
        assert_eq!(r.pick_with(None, &loads).session, 5);
        for key in ["user-1", "user-2", "x"] {
            let k = rkey_hash(key);
            let first = r.pick_with(Some(k), &loads).session;
            let rr = three(InvokePolicy::RoundRobin);
            for _ in 0..4 {
                assert_eq!(r.pick_with(Some(k), &loads).session, first);
                let other = rr.route("p").unwrap().pick_with(Some(k), &loads);
                assert_eq!(other.session, first, "another replica agrees");
            }
        }
    }

    /// A rerouted call follows the spec's rules and never returns to a callee that refused it.
    #[test]
    fn reroutes_follow_the_policy() {
        let next = |invoke, from, tried: &[u64]| {
            let a = three(invoke);
            let r = a.route("p").unwrap();
            r.next_callee(from, tried).map(|c| c.session)
        };
        assert_eq!(next(InvokePolicy::First, 3, &[3]), Some(5));
        assert_eq!(next(InvokePolicy::Last, 9, &[9]), Some(5));
        assert_eq!(next(InvokePolicy::Last, 5, &[9, 5]), Some(3));
        assert_eq!(next(InvokePolicy::RoundRobin, 5, &[5]), Some(9));
        assert_eq!(next(InvokePolicy::RoundRobin, 9, &[5, 9]), Some(3));
        assert_eq!(next(InvokePolicy::LeastLoaded, 9, &[9]), Some(3));
        assert_ne!(next(InvokePolicy::Random, 5, &[5]), Some(5));
        assert_eq!(next(InvokePolicy::Random, 5, &[5, 3]), Some(9));
        for invoke in [InvokePolicy::First, InvokePolicy::Random] {
            assert_eq!(next(invoke, 3, &[3, 5, 9]), None);
        }
        let mut single = Dealer::default();
        single.insert(reg(11, 4, 0, 1));
        assert!(single.route("p").unwrap().next_callee(1, &[1]).is_none());
    }
}
