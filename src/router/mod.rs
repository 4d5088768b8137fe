//! Routing state and the per-message hot path of one shard.
//!
//! The path of a message, top to bottom: a connection hands a complete frame (`Bytes`) to
//! [`Router::on_frame`]; it is parsed into a borrowed [`Message`] view whose payload fields stay raw
//! spans of the frame; the Broker ([`broker`]) or Dealer ([`dealer`]) routes it; outgoing messages are
//! encoded once per encoding into shared frames ([`wire`]) and queued on the receivers' outboxes
//! ([`session`]) or sent over the shard mesh ([`ShardMsg`]) to the shards that own the receivers.
//!
//! A `Router` is owned by one shard thread and never shared; sessions on other shards are reached only
//! through the mesh. See [`realm`] for where routing state lives and why.

pub mod authority;
pub mod authorize;
pub mod authorizer;
pub mod broker;
pub mod calls;
pub mod dealer;
pub mod disclosure;
pub mod filter;
mod handshake;
pub mod history;
pub mod ids;
pub mod inflight;
pub mod inspect;
pub mod meta;
mod metered;
mod passthru;
pub mod progressive;
pub mod realm;
pub mod retention;
pub mod routing;
pub mod session;
pub mod timers;
pub mod trie;
mod welcome;
pub mod wire;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use ahash::AHashMap;
use bytes::Bytes;

use crate::mesh::{Mesh, Outgoing};
use crate::protocol::codes;
use crate::protocol::errors;
use crate::protocol::features::{ClientFeatures, BROKER_FEATURES, DEALER_FEATURES};
use crate::protocol::uri::MatchPolicy;
use crate::protocol::{Message, Val};
use crate::router::authority::Grant;
use crate::router::broker::Broker;
use crate::router::dealer::{Dealer, Invoke};
use crate::router::realm::Realms;
use crate::router::session::{Identity, Outbox, Peer, Push, Session};
use crate::router::wire::{frame, AppPayload, Encoding, EventFrames};

/// How long an update may wait for every other shard's acknowledgement. Only a shard that is stuck
/// (or gone) misses it; the client then gets an ERROR instead of waiting forever.
pub const BARRIER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A connection handed from an acceptor thread to a shard.
pub struct Incoming {
    pub stream: IncomingStream,
    /// Over the session limit: the shard answers the handshake with a refusal.
    pub refused: bool,
    /// The TLS settings of the listener that accepted it (read at accept, so a reload applies to
    /// the connections accepted after it).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The socket of an [`Incoming`] connection.
pub enum IncomingStream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

/// What acceptor threads and the server hand to a shard outside the shard-to-shard rings.
pub enum Handoff {
    /// A new connection.
    Conn(Incoming),
    /// A request for the shard's routing state (consistency checks, diagnostics).
    Inspect(std::sync::mpsc::Sender<inspect::ShardReport>),
    /// New authorization and authentication rules (configuration reloaded).
    Rules(Arc<authorize::Rules>, Arc<crate::auth::Auth>),
    /// New event history patterns (configuration reloaded).
    History(history::Histories),
    /// A login's key derivation finished on a worker thread (None: it failed).
    Derived(u64, Option<Box<crate::auth::dynamic::Grant>>),
}

/// The mesh type the router uses.
pub type ShardMesh = Mesh<ShardMsg, Handoff>;

/// What travels between shards.
pub enum ShardMsg {
    /// A publication's EVENT for this shard's subscribers of `subscription`.
    Event {
        realm: usize,
        subscription: u64,
        /// Session not to deliver to (the publisher, unless it asked to receive its own events).
        exclude: u64,
        /// The publisher's black/white lists; None for a plain publication.
        filter: Option<Arc<filter::EventFilter>>,
        frames: Arc<EventFrames>,
        /// Non-zero: acknowledge with [`ShardMsg::Ack`] once queued (an acknowledged publication).
        token: u64,
    },
    /// A CALL for a callee on this shard.
    Invoke(Box<Invoke>),
    /// A finished frame for one session on this shard (RESULT, ERROR, ...).
    Deliver { session: u64, frame: Bytes },
    /// The final answer of a call of `session` (frees its in-flight slot); `None` when no frame
    /// could be built.
    Answer { session: u64, frame: Option<Bytes> },
    /// A caller canceled its call `request`; the shard holding the invocation ends it.
    Cancel {
        caller: u64,
        request: u64,
        mode: calls::CancelMode,
    },
    /// A caller with calls in flight left: its pending invocations are freed.
    CallerGone { caller: u64 },
    /// A `least_loaded` call this shard counted for `callee` ended.
    Unloaded { callee: u64 },
    /// The sending shard gained (`add`) or lost its subscribers of a subscription.
    SubUpdate {
        realm: usize,
        grant: Grant,
        policy: MatchPolicy,
        uri: Arc<str>,
        add: bool,
        /// Non-zero: acknowledge with [`ShardMsg::Ack`].
        token: u64,
    },
    /// A callee on the sending shard joined a registration (`callee` set) or left it (`session`).
    RegUpdate {
        realm: usize,
        grant: Grant,
        policy: MatchPolicy,
        uri: Arc<str>,
        callee: Option<u64>,
        /// The callee this update is about.
        session: u64,
        /// The callee's position in registration order.
        order: u64,
        invoke: authority::InvokePolicy,
        /// The callee asked to be told who calls.
        disclose_caller: bool,
        token: u64,
    },
    /// An update with this token has been applied.
    Ack { token: u64 },
    /// A meta procedure asks for this shard's part of a realm; answered with [`ShardMsg::MetaPart`].
    MetaQuery {
        realm: usize,
        token: u64,
        query: meta::MetaQuery,
    },
    /// One shard's part of the answer to the meta query `token`.
    MetaPart { token: u64, part: meta::MetaPart },
}

/// What the connection should do after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop reading and close once the outbox is written.
    Close,
}

/// Limits and policies the router enforces per message and per session.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_uri_len: usize,
    /// Enforce the spec's sequential session-scope request ids.
    pub strict_request_ids: bool,
    /// Subscriptions one session may hold.
    pub max_subscriptions: usize,
    /// Registrations one session may hold.
    pub max_registrations: usize,
    /// INVOCATIONs one callee may have unanswered; further calls fail with `wamp.error.unavailable`.
    pub max_pending_invocations: usize,
    /// Calls one caller may have unanswered; further calls fail with `wamp.error.unavailable`.
    pub max_calls_per_caller: usize,
    /// How long an update may wait for the other shards' acknowledgements.
    pub barrier_timeout: std::time::Duration,
    pub slow_consumer: crate::config::SlowConsumerPolicy,
    pub realm_policies: Vec<(String, crate::config::SlowConsumerPolicy)>,
}

impl Limits {
    /// The limits a configuration sets.
    pub fn from_config(c: &crate::config::Config) -> Self {
        Limits {
            max_uri_len: c.max_uri_length,
            strict_request_ids: !c.lenient_request_ids,
            max_subscriptions: c.max_subscriptions_per_session,
            max_registrations: c.max_registrations_per_session,
            max_pending_invocations: c.max_pending_invocations,
            max_calls_per_caller: c.max_calls_per_caller,
            barrier_timeout: BARRIER_TIMEOUT,
            slow_consumer: c.slow_consumer,
            realm_policies: c.realm_policies.clone(),
        }
    }

    fn policy_for(&self, realm: &str) -> crate::config::SlowConsumerPolicy {
        self.realm_policies
            .iter()
            .find(|(r, _)| r == realm)
            .map_or(self.slow_consumer, |(_, p)| *p)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&crate::config::Config::default())
    }
}

/// A connection's view of its session.
pub struct Conn {
    pub peer: Rc<Peer>,
    /// Set once WELCOME has been sent.
    pub session: Option<u64>,
    /// The remote end as the transport saw it (address, TLS client certificate).
    pub info: crate::transport::PeerInfo,
    /// Between CHALLENGE and AUTHENTICATE: the handshake in progress.
    pub(crate) pending: Option<Box<handshake::PendingJoin>>,
}

impl Conn {
    /// A connection whose messages use `enc`, with a queue bounded at `queue_bytes`, whose peer takes
    /// frames up to `max_frame` bytes.
    pub fn new(enc: Encoding, queue_bytes: usize, queue_msgs: usize, max_frame: usize) -> Self {
        Conn {
            peer: Rc::new(Peer {
                id: Cell::new(0),
                enc,
                outbox: Outbox::new(queue_bytes, queue_msgs, max_frame),
                goodbye_sent: Cell::new(false),
                parked: Cell::new(false),
            }),
            session: None,
            info: Default::default(),
            pending: None,
        }
    }
}

/// How a barrier ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BarrierOutcome {
    /// Every other shard applied the update.
    Done,
    /// Some shard did not acknowledge within the barrier timeout.
    TimedOut,
}

/// What runs when a barrier ends: typically "start delivering to the new subscriber, then queue its
/// SUBSCRIBED", so that the reply and the routing change happen in one step.
pub(crate) type Completion = Box<dyn FnOnce(&mut Router, BarrierOutcome)>;

/// Work waiting for every other shard to acknowledge one update.
struct Barrier {
    remaining: usize,
    started: std::time::Instant,
    then: Vec<Completion>,
}

/// Per-realm routing state of one shard.
#[derive(Default)]
pub struct RealmLocal {
    pub broker: Broker,
    pub dealer: Dealer,
}

/// The routing state of one shard.
pub struct Router {
    pub shard: usize,
    shards: usize,
    mesh: Arc<ShardMesh>,
    realms: Arc<Realms>,
    local: Vec<RealmLocal>,
    sessions: AHashMap<u64, Session>,
    out: Outgoing<ShardMsg>,
    barriers: AHashMap<u64, Barrier>,
    next_token: u64,
    /// Registrations of this shard's callees not yet acknowledged by every shard, with the calls
    /// that reached them early (delivered right after REGISTERED).
    /// Keyed by (registration, callee): callees of one shared registration confirm apart.
    unconfirmed: AHashMap<(u64, u64), Vec<dealer::Invoke>>,
    /// Timeouts of calls whose invocations this shard sent.
    timers: timers::CallTimers,
    routing: routing::RoutingState,
    /// This shard's pending invocations by caller (CANCEL, a caller's departure).
    inflight: inflight::CallIndex,
    /// Open progressive calls of this shard's callers.
    streams: progressive::Streams,
    /// EVENTs not delivered to one subscriber because they were too large for it.
    skipped_events: Cell<u64>,
    /// The last flush left messages staged because a destination ring was full.
    ring_full: bool,
    limits: Limits,
    /// Slow-consumer policy per realm index.
    policies: Vec<crate::config::SlowConsumerPolicy>,
    meta: meta::MetaState,
    /// Who may join which realm, and how they prove it.
    auth: Arc<crate::auth::Auth>,
    /// Logins waiting for the dynamic authenticator's answer, by their future session id.
    awaiting: AHashMap<u64, handshake::Awaiting>,
    /// The time of the batch being handled (a socket read, a mesh drain), read once per batch
    /// rather than per message: the call-latency histogram needs microseconds, and a clock read
    /// per call costs about 2 % of a shard at RPC rates.
    now: std::time::Instant,
    /// `now` in microseconds since `epoch`: what pending calls are stamped with, so that a call's
    /// latency is one subtraction.
    now_us: u64,
    epoch: std::time::Instant,
    /// This shard's counters, written directly (no thread-local lookup per message).
    metrics: Arc<crate::metrics::ShardMetrics>,
    /// Who may do what (see [`authorize`]).
    rules: Arc<authorize::Rules>,
    /// Requests waiting for the dynamic authorizer, and its cached answers (see [`authorizer`]).
    authorizer: authorizer::AuthorizerState,
    /// Every realm's event history (replaced on reload).
    history: history::Histories,
}

impl Router {
    /// The router of shard `shard`.
    pub fn new(shard: usize, mesh: Arc<ShardMesh>, realms: Arc<Realms>, limits: Limits) -> Self {
        let shards = mesh.shards();
        let history = realms.histories();
        let policies = (0..realms.len())
            .map(|i| limits.policy_for(realms.name(i)))
            .collect();
        Router {
            policies,
            shard,
            shards,
            local: (0..realms.len()).map(|_| RealmLocal::default()).collect(),
            mesh,
            realms,
            sessions: AHashMap::new(),
            out: Outgoing::new(shard, shards),
            barriers: AHashMap::new(),
            next_token: 0,
            unconfirmed: AHashMap::new(),
            timers: timers::CallTimers::default(),
            routing: routing::RoutingState::default(),
            inflight: inflight::CallIndex::default(),
            streams: progressive::Streams::default(),
            skipped_events: Cell::new(0),
            ring_full: false,
            limits,
            meta: meta::MetaState::default(),
            auth: Arc::default(),
            awaiting: AHashMap::new(),
            now: std::time::Instant::now(),
            now_us: 0,
            epoch: std::time::Instant::now(),
            metrics: crate::metrics::ShardMetrics::detached(),
            rules: Arc::new(authorize::Rules::open()),
            authorizer: Default::default(),
            history,
        }
    }

    /// Makes `metrics` the counters this router writes (those a registry scrapes).
    pub fn set_metrics(&mut self, metrics: Arc<crate::metrics::ShardMetrics>) {
        self.metrics = metrics;
    }

    /// Starts a batch: what it handles is timed from `now`.
    pub fn set_now(&mut self, now: std::time::Instant) {
        self.now = now;
        self.now_us = now.saturating_duration_since(self.epoch).as_micros() as u64;
    }

    /// Replaces the event history patterns (configuration reloaded).
    pub fn set_history(&mut self, history: history::Histories) {
        self.history = history;
    }

    /// The event history of realm `realm`: written by publications on history patterns, read by
    /// `wamp.subscription.get_events`.
    pub(crate) fn history(&self, realm: usize) -> &history::HistoryStore {
        &self.history[realm]
    }

    /// Sets the authentication rules (the default lets anonymous sessions into every realm).
    pub fn set_auth(&mut self, auth: Arc<crate::auth::Auth>) {
        self.auth = auth;
    }

    /// Number of sessions on this shard.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Handles one complete WAMP message from a connection.
    pub fn on_frame(&mut self, conn: &mut Conn, frame: &Bytes) -> Flow {
        let mut msg = match Message::parse(conn.peer.enc.ser, frame) {
            Ok(m) => m,
            Err(e) if conn.peer.goodbye_sent.get() => {
                tracing::debug!("ignoring a malformed message after GOODBYE: {e}");
                return Flow::Continue;
            }
            Err(e) => return self.violation(conn, &format!("malformed message: {e}")),
        };
        self.metrics.received(msg.code());
        if conn.peer.goodbye_sent.get() {
            return awaiting_goodbye(&msg);
        }
        self.adopt(conn);
        let Some(sid) = conn.session else {
            if conn.pending.is_some() {
                return self.on_authenticate(conn, msg);
            }
            return self.on_hello(conn, msg);
        };
        if conn.peer.parked.get() && authorizer::held_back(&msg) {
            return self.hold_back(conn, sid, frame);
        }
        self.on_request(conn, sid, &mut msg, frame)
    }

    /// A message of an established session, in the order the session sent it: checks it, has it
    /// authorized, and routes it.
    #[inline]
    pub(crate) fn on_request(
        &mut self,
        conn: &mut Conn,
        sid: u64,
        msg: &mut Message<'_>,
        frame: &Bytes,
    ) -> Flow {
        if let Some(bad) = bad_request_id(msg) {
            return self.violation(conn, &format!("request id {bad} is out of range"));
        }
        let has_options = match msg.decode_options() {
            Ok(has) => has,
            Err(e) => return self.violation(conn, &format!("malformed options: {e}")),
        };
        if let Some(why) = self.passthru_violation(sid, msg) {
            return self.violation(conn, &why);
        }
        if let Some(id) = new_request_id(msg) {
            if let Some(flow) = self.call_continuation(conn, sid, msg, frame) {
                return flow;
            }
            if !self.next_request_in_sequence(sid, id) {
                return self.violation(
                    conn,
                    &format!("request id {id} is not the next in the session's sequence"),
                );
            }
        }
        if has_options {
            if let Err(e) = msg.check_options() {
                return self.violation(conn, &e.to_string());
            }
        }
        if !self.authorized(sid, msg, frame) {
            return Flow::Continue;
        }
        self.dispatch(conn, sid, msg, frame)
    }

    /// Routes an authorized message.
    #[inline]
    pub(crate) fn dispatch(
        &mut self,
        conn: &mut Conn,
        sid: u64,
        msg: &Message<'_>,
        frame: &Bytes,
    ) -> Flow {
        match msg {
            Message::Publish {
                request,
                options,
                topic,
                args,
                kwargs,
            } => {
                let payload = AppPayload::from_frame(frame, args, kwargs);
                self.on_publish(sid, *request, options, topic, payload)
            }
            Message::Call {
                request,
                options,
                procedure,
                args,
                kwargs,
            } => {
                let payload = AppPayload::from_frame(frame, args, kwargs);
                self.on_call(sid, *request, procedure, options, payload)
            }
            Message::Yield {
                request,
                options,
                args,
                kwargs,
            } => {
                if !self.invocation_was_sent(sid, *request) {
                    return self.violation(
                        conn,
                        &format!("YIELD for INVOCATION {request}, which was never sent"),
                    );
                }
                let payload = AppPayload::from_frame(frame, args, kwargs);
                self.on_yield(sid, *request, options, payload)
            }
            Message::Error {
                request_type,
                request,
                details,
                error,
                args,
                kwargs,
            } => {
                if *request_type != codes::INVOCATION {
                    return self.violation(
                        conn,
                        &format!(
                            "ERROR for {} is not something a client may send",
                            codes::name(*request_type)
                        ),
                    );
                }
                if !self.invocation_was_sent(sid, *request) {
                    return self.violation(
                        conn,
                        &format!("ERROR for INVOCATION {request}, which was never sent"),
                    );
                }
                let payload = AppPayload::from_frame(frame, args, kwargs);
                self.on_invocation_error(sid, *request, details, error, payload)
            }
            Message::Subscribe {
                request,
                options,
                topic,
            } => self.on_subscribe(sid, *request, options, topic),
            Message::Unsubscribe {
                request,
                subscription,
            } => self.on_unsubscribe(sid, *request, *subscription),
            Message::Register {
                request,
                options,
                procedure,
            } => self.on_register(sid, *request, options, procedure),
            Message::Unregister {
                request,
                registration,
            } => self.on_unregister(sid, *request, *registration),
            Message::Goodbye { .. } => self.on_goodbye(conn),
            Message::Abort { .. } => {
                self.end_session(conn);
                Flow::Close
            }
            Message::Cancel { request, options } => self.on_cancel(sid, *request, options),
            Message::Hello { .. } => self.violation(conn, "HELLO on an established session"),
            other => self.violation(
                conn,
                &format!(
                    "{} is not a message a client may send",
                    codes::name(other.code())
                ),
            ),
        }
    }

    /// The connection is gone (closed, failed, or told to close): forget its session.
    pub fn on_disconnect(&mut self, conn: &mut Conn) {
        self.adopt(conn);
        if let Some(p) = conn.pending.take() {
            self.abandon_login(p.session);
        }
        self.end_session(conn);
    }

    /// HELLO: join a realm or be refused.
    fn on_hello(&mut self, conn: &mut Conn, msg: Message<'_>) -> Flow {
        let (realm, details) = match msg {
            Message::Hello { realm, details } => (realm, details),
            Message::Abort { .. } => return Flow::Close,
            other => {
                return self.violation(
                    conn,
                    &format!("expected HELLO, got {}", codes::name(other.code())),
                )
            }
        };
        if !details.is_dict() {
            return self.violation(conn, "HELLO.Details must be a dictionary");
        }
        let Some(realm_idx) = self.realms.find(&realm) else {
            self.abort(conn, errors::NO_SUCH_REALM, &format!("no realm {realm}"));
            return Flow::Close;
        };
        let mut id = ids::session(self.shard, self.shards);
        while self.sessions.contains_key(&id) {
            id = ids::session(self.shard, self.shards);
        }
        let join = handshake::PendingJoin {
            realm: realm_idx,
            session: id,
            features: ClientFeatures::from_hello(&details),
            auth: None,
            transport: conn.info.clone(),
        };
        let auth = self.auth.clone();
        match auth.hello(&realm, &details, id, &conn.info) {
            crate::auth::Hello::Welcome(who) => {
                conn.session = Some(join.session);
                self.join(&conn.peer.clone(), join, who)
            }
            crate::auth::Hello::Challenge {
                authmethod,
                extra,
                pending,
            } => self.challenge(conn, join, authmethod, extra, pending),
            crate::auth::Hello::Refuse(r) => {
                self.abort(conn, r.reason, r.message);
                Flow::Close
            }
            crate::auth::Hello::Ask(ask) => self.ask_authenticator(conn, join, ask),
        }
    }

    /// Admits a session whose identity is settled: registers it and sends WELCOME.
    fn join(
        &mut self,
        peer: &Rc<Peer>,
        join: handshake::PendingJoin,
        who: crate::auth::Authenticated,
    ) -> Flow {
        let id = join.session;
        let realm_idx = join.realm;
        peer.id.set(id);
        peer.outbox.set_policy(self.policies[realm_idx]);
        let identity = Arc::new(Identity {
            authid: who.authid.as_str().into(),
            authrole: who.authrole.as_str().into(),
            authmethod: who.authmethod.as_str().into(),
            authprovider: who.authprovider.as_str().into(),
        });
        let realm_name = self.realms.name(realm_idx).clone();
        let details = welcome_details(&realm_name, &identity, &who.authextra);
        self.sessions.insert(
            id,
            Session::new(peer.clone(), realm_idx, identity, join.features),
        );
        self.send_welcome(peer, id, &details, join.features);
        self.meta_on_join(realm_idx, id, join.transport);
        Flow::Continue
    }

    /// GOODBYE from the client: answer, end the session, close the transport.
    fn on_goodbye(&mut self, conn: &mut Conn) -> Flow {
        let reply = Message::Goodbye {
            details: Val::empty_dict(),
            reason: Cow::Borrowed(errors::GOODBYE_AND_OUT),
        };
        let peer = conn.peer.clone();
        self.reply_peer(&peer, &reply);
        self.end_session(conn);
        Flow::Close
    }

    /// Answers a protocol violation with ABORT and ends the session.
    fn violation(&mut self, conn: &mut Conn, why: &str) -> Flow {
        tracing::debug!(session = conn.peer.id.get(), "protocol violation: {why}");
        self.abort(conn, errors::PROTOCOL_VIOLATION, why);
        Flow::Close
    }

    /// Sends ABORT with `reason` and a message, and ends the session.
    fn abort(&mut self, conn: &mut Conn, reason: &str, message: &str) {
        let msg = Message::Abort {
            details: Val::Dict(vec![(
                Cow::Borrowed("message"),
                Val::Str(Cow::Borrowed(message)),
            )]),
            reason: Cow::Borrowed(reason),
        };
        let peer = conn.peer.clone();
        self.reply_peer(&peer, &msg);
        self.end_session(conn);
    }

    /// Removes the session's subscriptions and registrations and fails calls it owed answers.
    fn end_session(&mut self, conn: &mut Conn) {
        let Some(sid) = conn.session.take() else {
            return;
        };
        let Some(session) = self.sessions.remove(&sid) else {
            return;
        };
        if session.peer.outbox.dropped() > 0 {
            tracing::info!(
                session = sid,
                dropped = session.peer.outbox.dropped(),
                "session ended; events were dropped for it while it was slow"
            );
        }
        let realm = session.realm;
        for id in session.subscriptions.iter().copied() {
            self.drop_subscriber(realm, id, sid);
        }
        for held in &session.registrations {
            let deleted = self.drop_registration(realm, sid, held);
            self.meta_unregistered(realm, sid, held.id, deleted);
        }
        self.fail_invocations(sid, session.invocations);
        if session.calls_in_flight > 0 {
            self.caller_left(sid);
        }
        self.close_streams_of(sid);
        self.authorizer_forget(sid);
        self.publish_testaments(sid);
        self.meta_on_leave(realm, sid, &session.identity);
    }

    /// Checks and records the session-scope request id `id` (1, 2, 3 ... wrapping to 1 after 2^53, as
    /// the spec requires of clients), unless the router was told to be lenient.
    #[inline]
    fn next_request_in_sequence(&mut self, sid: u64, id: u64) -> bool {
        let strict = self.limits.strict_request_ids;
        let Some(session) = self.sessions.get_mut(&sid) else {
            return true;
        };
        let expected = if session.last_request >= ids::MAX_ID {
            1
        } else {
            session.last_request + 1
        };
        session.last_request = id;
        !strict || id == expected
    }

    /// The match policy named in SUBSCRIBE/REGISTER options; answers ERROR and returns None if invalid.
    fn match_policy(
        &mut self,
        sid: u64,
        request_type: u64,
        request: u64,
        options: &Val<'_>,
    ) -> Option<MatchPolicy> {
        let named = options.get("match");
        let named = named.as_ref().and_then(|v| v.as_str());
        match MatchPolicy::from_option(named.as_deref()) {
            Ok(p) => Some(p),
            Err(()) => {
                self.reply_error(sid, request_type, request, errors::INVALID_ARGUMENT);
                None
            }
        }
    }

    /// Ends every session on this shard for a router shutdown: GOODBYE `wamp.close.system_shutdown`
    /// and the routing state is cleaned up at once; the connections stay open for the clients'
    /// GOODBYE replies. Returns the peers, which the caller closes once they replied or a grace period
    /// has passed ([`Router::close_after_goodbye`]).
    pub fn shutdown(&mut self) -> Vec<Rc<Peer>> {
        let goodbye = Message::Goodbye {
            details: Val::Dict(vec![(
                Cow::Borrowed("message"),
                Val::Str(Cow::Borrowed("the router is shutting down")),
            )]),
            reason: Cow::Borrowed(errors::SYSTEM_SHUTDOWN),
        };
        let peers: Vec<Rc<Peer>> = self.sessions.values().map(|s| s.peer.clone()).collect();
        for peer in &peers {
            self.reply_peer(peer, &goodbye);
            peer.goodbye_sent.set(true);
            let mut conn = Conn {
                peer: peer.clone(),
                session: Some(peer.id.get()),
                info: Default::default(),
                pending: None,
            };
            self.end_session(&mut conn);
        }
        peers
    }

    /// Closes a connection the router said GOODBYE to, whether or not the client replied.
    pub fn close_after_goodbye(peer: &Peer) {
        peer.outbox.close(wire::close_frame(peer.enc));
    }

    /// Handles one message from another shard.
    pub fn on_mesh(&mut self, src: usize, msg: ShardMsg) {
        match msg {
            ShardMsg::Event {
                realm,
                subscription,
                exclude,
                filter,
                frames,
                token,
            } => {
                self.deliver_event(realm, subscription, exclude, filter.as_deref(), &frames);
                self.ack(src, token);
            }
            ShardMsg::Invoke(inv) => self.on_invoke(*inv),
            ShardMsg::Deliver { session, frame } => {
                if self.awaiting.contains_key(&session) {
                    self.on_authenticator_answer(session, &frame);
                } else if let Some(s) = self.sessions.get(&session) {
                    self.push(&s.peer, frame);
                }
            }
            ShardMsg::Answer { session, frame } => self.on_answer(session, frame),
            ShardMsg::Cancel {
                caller,
                request,
                mode,
            } => self.cancel_here(caller, request, mode),
            ShardMsg::CallerGone { caller } => self.drop_calls_of(caller),
            ShardMsg::Unloaded { callee } => self.routing.loads.lower(callee),
            ShardMsg::SubUpdate {
                realm,
                grant,
                policy,
                uri,
                add,
                token,
            } => {
                self.local[realm]
                    .broker
                    .set_remote(grant, policy, &uri, src, add);
                self.ack(src, token);
            }
            ShardMsg::RegUpdate {
                realm,
                grant,
                policy,
                uri,
                callee,
                session,
                order,
                invoke,
                disclose_caller,
                token,
            } => {
                let dealer = &mut self.local[realm].dealer;
                match callee {
                    Some(callee) => {
                        let c = dealer::Callee {
                            shard: src,
                            session: callee,
                            order,
                            disclose_caller,
                        };
                        let reg =
                            dealer::Registration::one(grant.id, grant.rev, policy, uri, invoke, c);
                        dealer.insert(reg)
                    }
                    None => dealer.remove(grant.id, session),
                }
                self.ack(src, token);
            }
            ShardMsg::Ack { token } => self.on_ack(token),
            ShardMsg::MetaQuery {
                realm,
                token,
                query,
            } => {
                let part = self.answer_query(realm, &query);
                self.out.send(src, ShardMsg::MetaPart { token, part });
            }
            ShardMsg::MetaPart { token, part } => self.on_meta_part(token, part),
        }
    }

    /// True while messages for other shards are staged because a ring was full (not merely staged
    /// for the end-of-turn flush).
    pub fn backlogged(&self) -> bool {
        self.ring_full
    }

    /// Pushes everything staged for other shards into the mesh, one wake-up per destination. Returns
    /// true if a ring was full and messages are still staged (the caller retries later).
    pub fn flush(&mut self) -> bool {
        let was_full = self.ring_full;
        self.ring_full = !self.out.is_empty() && self.out.flush(&self.mesh);
        if self.ring_full && !was_full {
            self.metrics.mesh_ring_full();
        }
        self.ring_full
    }

    // ---- sending -------------------------------------------------------------------------------

    /// Queues a finished frame on a peer's outbox.
    pub(crate) fn push(&self, peer: &Peer, frame: Bytes) {
        match metered::frame_type(peer.enc, &frame) {
            Some(code) => self.push_typed(peer, frame, code),
            None => self.log_push(peer, peer.outbox.push(frame)),
        }
    }

    /// Queues `frame`, a message of type `code`: the caller that built it knows the type, so it
    /// is not read back from the bytes.
    #[inline]
    pub(crate) fn push_typed(&self, peer: &Peer, frame: Bytes, code: u64) {
        let outcome = peer.outbox.push(frame);
        if outcome == Push::Queued {
            self.metrics.sent(code);
        }
        self.log_push(peer, outcome);
    }

    fn log_push(&self, peer: &Peer, outcome: Push) {
        match outcome {
            Push::Queued | Push::Closed | Push::Dropped => {}
            Push::Overflowed => {
                self.metrics.slow_consumer_disconnected();
                tracing::warn!(
                    session = peer.id.get(),
                    "closing session: its outbound queue exceeded the limit (slow consumer)"
                )
            }
            Push::TooLarge => tracing::warn!(
                session = peer.id.get(),
                "dropped a message larger than the peer accepts"
            ),
        }
    }

    /// Queues an EVENT frame: the realm's slow-consumer policy decides what a full queue means.
    pub(crate) fn push_event(&self, peer: &Peer, frame: Bytes) {
        match peer.outbox.push_event(frame) {
            Push::Queued => self.metrics.event_delivered(),
            Push::Dropped if peer.outbox.dropped().is_power_of_two() => {
                self.metrics.slow_consumer_dropped();
                tracing::warn!(
                    session = peer.id.get(),
                    dropped = peer.outbox.dropped(),
                    "dropping events for a slow consumer (queue full)"
                )
            }
            Push::Dropped => self.metrics.slow_consumer_dropped(),
            other => self.log_push(peer, other),
        }
    }

    /// Counts and logs an EVENT one subscriber could not take (too large for it, or not expressible
    /// in its serializer); logged at powers of two so a stream of them cannot flood the log.
    pub(crate) fn skip_event(&self, peer: &Peer, frames: &EventFrames) {
        let n = self.skipped_events.get() + 1;
        self.skipped_events.set(n);
        if n.is_power_of_two() {
            tracing::warn!(
                session = peer.id.get(),
                subscription = frames.subscription,
                skipped_on_this_shard = n,
                "an EVENT was too large for a subscriber (or not expressible in its serializer); skipped for it"
            );
        }
    }

    /// EVENTs skipped for single subscribers on this shard so far.
    pub fn skipped_events(&self) -> u64 {
        self.skipped_events.get()
    }

    /// Encodes `msg` for `peer` and queues it.
    pub(crate) fn reply_peer(&self, peer: &Peer, msg: &Message<'_>) {
        match frame(peer.enc, msg) {
            Ok(b) => self.push_typed(peer, b, msg.code()),
            Err(e) => tracing::warn!(error = %e, "cannot encode {}", codes::name(msg.code())),
        }
    }

    /// Encodes `msg` for session `sid` (on this shard) and queues it.
    pub(crate) fn reply(&self, sid: u64, msg: &Message<'_>) {
        if let Some(s) = self.sessions.get(&sid) {
            self.reply_peer(&s.peer, msg);
        }
    }

    /// Sends ERROR for request `request` of type `request_type` with error URI `error`.
    pub(crate) fn reply_error(&self, sid: u64, request_type: u64, request: u64, error: &str) {
        self.send_error(sid, request_type, request, error, None);
    }

    /// Sends ERROR with error URI `error` and a human-readable message as its only argument.
    pub(crate) fn reply_error_text(
        &self,
        sid: u64,
        request_type: u64,
        request: u64,
        error: &str,
        text: &str,
    ) {
        self.send_error(sid, request_type, request, error, Some(text));
    }

    pub(crate) fn send_error(
        &self,
        sid: u64,
        request_type: u64,
        request: u64,
        error: &str,
        text: Option<&str>,
    ) {
        self.reply(
            sid,
            &Message::Error {
                request_type,
                request,
                details: Val::empty_dict(),
                error: Cow::Borrowed(error),
                args: text.map(|t| Val::List(vec![Val::Str(Cow::Borrowed(t))])),
                kwargs: None,
            },
        );
    }

    /// Queues a finished frame for session `session` on shard `shard` (this one or another).
    pub(crate) fn send_to_session(&mut self, shard: usize, session: u64, frame: Bytes) {
        if shard == self.shard {
            if self.awaiting.contains_key(&session) {
                self.on_authenticator_answer(session, &frame);
            } else if let Some(s) = self.sessions.get(&session) {
                self.push(&s.peer, frame);
            }
        } else {
            self.out.send(shard, ShardMsg::Deliver { session, frame });
        }
    }

    // ---- control-plane barriers ----------------------------------------------------------------

    /// Sends the update made by `make(token)` to every other shard, each to acknowledge; returns the
    /// token (0 when there is no other shard).
    pub(crate) fn broadcast(&mut self, mut make: impl FnMut(u64) -> ShardMsg) -> u64 {
        if self.shards == 1 {
            return 0;
        }
        let token = self.new_token();
        self.barriers.insert(
            token,
            Barrier {
                remaining: self.shards - 1,
                started: std::time::Instant::now(),
                then: Vec::new(),
            },
        );
        for shard in (0..self.shards).filter(|&s| s != self.shard) {
            self.out.send(shard, make(token));
        }
        token
    }

    /// A fresh barrier token.
    pub(crate) fn new_token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Waits for `acks` acknowledgements of `token` (sent with messages already staged), then runs
    /// `then`.
    pub(crate) fn open_barrier(&mut self, token: u64, acks: usize, then: Completion) {
        self.barriers.insert(
            token,
            Barrier {
                remaining: acks,
                started: std::time::Instant::now(),
                then: vec![then],
            },
        );
    }

    /// Sends an update to every other shard without waiting for it to be applied.
    pub(crate) fn broadcast_no_ack(&mut self, mut make: impl FnMut() -> ShardMsg) {
        for shard in (0..self.shards).filter(|&s| s != self.shard) {
            self.out.send(shard, make());
        }
    }

    /// Runs `then` once barrier `token` ends (at once, as done, if it already has or is 0).
    pub(crate) fn after_barrier(&mut self, token: u64, then: Completion) {
        match self.barriers.get_mut(&token) {
            Some(b) => b.then.push(then),
            None => then(self, BarrierOutcome::Done),
        }
    }

    fn ack(&mut self, src: usize, token: u64) {
        if token != 0 {
            self.out.send(src, ShardMsg::Ack { token });
        }
    }

    fn on_ack(&mut self, token: u64) {
        let Some(b) = self.barriers.get_mut(&token) else {
            return; // timed out already
        };
        b.remaining -= 1;
        if b.remaining == 0 {
            let b = self.barriers.remove(&token).expect("present");
            for then in b.then {
                then(self, BarrierOutcome::Done);
            }
        }
    }

    /// Periodic housekeeping: ends barriers some shard has not acknowledged in time, saying so.
    pub fn tick(&mut self) {
        self.expire_awaiting();
        self.expire_authorizations();
        self.expire_reroutes();
        self.inflight.sweep();
        let expired: Vec<u64> = self
            .barriers
            .iter()
            .filter(|(_, b)| b.started.elapsed() >= self.limits.barrier_timeout)
            .map(|(&t, _)| t)
            .collect();
        for token in expired {
            let b = self.barriers.remove(&token).expect("listed");
            tracing::error!(
                shard = self.shard,
                missing = b.remaining,
                "{} shard(s) did not acknowledge a routing update within {:?}; answering the request with an error",
                b.remaining,
                self.limits.barrier_timeout
            );
            for then in b.then {
                then(self, BarrierOutcome::TimedOut);
            }
        }
        self.meta_tick();
    }

    /// This shard's routing state, for consistency checks.
    pub fn inspect(&self) -> inspect::ShardReport {
        let mut report =
            inspect::ShardReport::of(self.shard, &self.local, &self.sessions, self.barriers.len());
        report.indexed_calls = self.inflight.len();
        report
    }
}

/// True for URIs the router owns: clients may call and subscribe to them (the meta API) but may not
/// register or publish them, so they can neither shadow router procedures nor fake router events.
pub(crate) fn reserved_uri(uri: &str) -> bool {
    uri.starts_with("wamp.")
}

/// What to do with a message on a connection that was sent GOODBYE by the router: the client's
/// GOODBYE (or ABORT) ends it; anything else is ignored while the router waits.
fn awaiting_goodbye(msg: &Message<'_>) -> Flow {
    match msg {
        Message::Goodbye { .. } | Message::Abort { .. } => Flow::Close,
        _ => Flow::Continue,
    }
}

/// The request id of a message that starts a new request (these must count up by one per session).
fn new_request_id(msg: &Message<'_>) -> Option<u64> {
    match msg {
        Message::Publish { request, .. }
        | Message::Subscribe { request, .. }
        | Message::Unsubscribe { request, .. }
        | Message::Call { request, .. }
        | Message::Register { request, .. }
        | Message::Unregister { request, .. } => Some(*request),
        _ => None,
    }
}

/// The first request id in `msg` that is outside [1, 2^53], if any.
fn bad_request_id(msg: &Message<'_>) -> Option<u64> {
    let id = match msg {
        Message::Publish { request, .. }
        | Message::Subscribe { request, .. }
        | Message::Unsubscribe { request, .. }
        | Message::Call { request, .. }
        | Message::Register { request, .. }
        | Message::Unregister { request, .. }
        | Message::Yield { request, .. }
        | Message::Cancel { request, .. } => *request,
        Message::Error { request, .. } => *request,
        _ => return None,
    };
    (!ids::valid(id)).then_some(id)
}

/// WELCOME.Details: who the session is and which roles and features this router implements.
fn welcome_details(
    realm: &str,
    who: &Identity,
    authextra: &[(Cow<'static, str>, Val<'static>)],
) -> Val<'static> {
    let features = |names: &[&'static str]| {
        Val::Dict(
            names
                .iter()
                .map(|n| (Cow::Borrowed(*n), Val::Bool(true)))
                .collect(),
        )
    };
    let role =
        |names: &[&'static str]| Val::Dict(vec![(Cow::Borrowed("features"), features(names))]);
    let text = |s: &str| Val::Str(Cow::Owned(s.to_string()));
    Val::Dict(vec![
        (Cow::Borrowed("realm"), text(realm)),
        (Cow::Borrowed("authid"), text(&who.authid)),
        (Cow::Borrowed("authrole"), text(&who.authrole)),
        (Cow::Borrowed("authmethod"), text(&who.authmethod)),
        (Cow::Borrowed("authprovider"), text(&who.authprovider)),
        (Cow::Borrowed("authextra"), Val::Dict(authextra.to_vec())),
        (
            Cow::Borrowed("roles"),
            Val::Dict(vec![
                (Cow::Borrowed("broker"), role(BROKER_FEATURES)),
                (Cow::Borrowed("dealer"), role(DEALER_FEATURES)),
            ]),
        ),
    ])
}
