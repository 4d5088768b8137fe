//! The authentication handshake on the router side: CHALLENGE out, AUTHENTICATE in, possibly a call
//! to the realm's dynamic authenticator, then the join. The decisions are made by [`crate::auth`].
//!
//! A login waits for the authenticator after AUTHENTICATE (ticket: the answer settles it) or after
//! HELLO (WAMP-CRA, SCRAM, cryptosign: the answer holds the secret, credential or key to challenge
//! with, and a salted WAMP-CRA secret's or a SCRAM password's key is derived on a worker thread
//! before the CHALLENGE goes out).
//!
//! The dynamic authenticator is called like any procedure, with the router as caller: the caller id
//! is the session id the login will get (unique across shards, and known to nobody else yet), so the
//! callee's RESULT or ERROR comes back through the usual paths and is taken off them here. A login
//! that ends before the answer (its connection drops, ABORT or any other message before WELCOME,
//! the answer's timeout) withdraws that call as a caller that leaves does ([`Router::caller_left`]).

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::dealer::Invoke;
use super::session::Peer;
use super::wire::{AppPayload, Encoding, Wire};
use super::{Conn, Flow, Router, ShardMsg};
use crate::auth::dynamic::{Ask, AskCtx, Decided, Grant};
use crate::auth::{Hello, Refusal, Verdict};
use crate::protocol::features::ClientFeatures;
use crate::protocol::uri::MatchPolicy;
use crate::protocol::{codes, Message, Serializer, Val};
use crate::transport::PeerInfo;

/// How the router, as caller, wants the authenticator's answer framed.
pub(super) const ANSWER_ENC: Encoding = Encoding {
    ser: Serializer::Json,
    wire: Wire::RawSocket,
};
/// RawSocket's frame header, in front of every answer.
pub(super) const RAWSOCKET_HEADER: usize = 4;
/// Largest answer accepted from an authenticator.
pub(super) const MAX_ANSWER: usize = 64 * 1024;

/// A session that said HELLO and was challenged: what its WELCOME will need.
pub(crate) struct PendingJoin {
    pub realm: usize,
    /// The session id, fixed at HELLO (WAMP-CRA's challenge names it).
    pub session: u64,
    pub features: ClientFeatures,
    /// None once AUTHENTICATE has been answered and the authenticator is being asked.
    pub auth: Option<crate::auth::Pending>,
    /// The transport's view of the peer, for `wamp.session.get`'s `transport`.
    pub transport: PeerInfo,
}

/// A login waiting for the dynamic authenticator.
pub(crate) struct Awaiting {
    peer: Rc<Peer>,
    join: PendingJoin,
    ctx: AskCtx,
    info: PeerInfo,
    started: std::time::Instant,
    timeout: std::time::Duration,
    phase: Phase,
}

/// Where a login the dynamic authenticator handles stands.
enum Phase {
    /// The authenticator has been called.
    Asked,
    /// Its answer's key is being derived on a worker thread.
    Deriving,
    /// CHALLENGE went out while the connection was not reading; the connection takes the
    /// handshake over with its next message ([`Router::adopt`]).
    Challenged(crate::auth::Pending),
}

impl Router {
    /// Sends CHALLENGE and parks the handshake on the connection until AUTHENTICATE.
    pub(super) fn challenge(
        &mut self,
        conn: &mut Conn,
        mut join: PendingJoin,
        authmethod: &'static str,
        extra: Val<'static>,
        pending: crate::auth::Pending,
    ) -> Flow {
        join.auth = Some(pending);
        conn.pending = Some(Box::new(join));
        let msg = Message::Challenge {
            authmethod: Cow::Borrowed(authmethod),
            extra,
        };
        self.reply_peer(&conn.peer.clone(), &msg);
        Flow::Continue
    }

    /// The message after CHALLENGE: AUTHENTICATE (or ABORT); anything else — also anything while the
    /// authenticator is being asked — breaks the protocol.
    pub(super) fn on_authenticate(&mut self, conn: &mut Conn, msg: Message<'_>) -> Flow {
        let mut join = *conn
            .pending
            .take()
            .expect("called with a pending handshake");
        let Some(pending) = join.auth.take() else {
            self.abandon_login(join.session);
            if matches!(msg, Message::Abort { .. }) {
                return Flow::Close;
            }
            return self.violation(conn, "a message before WELCOME");
        };
        let (signature, extra) = match msg {
            Message::Authenticate { signature, extra } => (signature, extra),
            Message::Abort { .. } => return Flow::Close,
            other => {
                return self.violation(
                    conn,
                    &format!("expected AUTHENTICATE, got {}", codes::name(other.code())),
                )
            }
        };
        let auth = self.auth.clone();
        match auth.authenticate(pending, &signature, &extra, join.session, &conn.info) {
            Verdict::Welcome(who) => {
                conn.session = Some(join.session);
                self.join(&conn.peer.clone(), join, who)
            }
            Verdict::Refuse(r) => {
                self.abort(conn, r.reason, r.message);
                Flow::Close
            }
            Verdict::Ask(ask) => self.ask_authenticator(conn, join, ask),
        }
    }

    /// Calls the dynamic authenticator; the login waits (bounded by the authenticator's `timeout`).
    pub(super) fn ask_authenticator(
        &mut self,
        conn: &mut Conn,
        join: PendingJoin,
        ask: Ask,
    ) -> Flow {
        let Some(inv) = self.authenticator_invoke(&join, &ask) else {
            tracing::warn!(
                realm = %ask.realm,
                procedure = %ask.procedure,
                "the dynamic authenticator is not registered; refusing the login"
            );
            let _ = self.auth.judge(&ask.ctx, None, &conn.info);
            self.abort(conn, Refusal::FAILED.reason, Refusal::FAILED.message);
            return Flow::Close;
        };
        conn.pending = Some(Box::new(PendingJoin {
            auth: None,
            transport: join.transport.clone(),
            ..join
        }));
        self.awaiting.insert(
            join.session,
            Awaiting {
                peer: conn.peer.clone(),
                join,
                ctx: ask.ctx,
                info: conn.info.clone(),
                started: std::time::Instant::now(),
                timeout: ask.timeout,
                phase: Phase::Asked,
            },
        );
        if inv.0 == self.shard {
            self.on_invoke(inv.1);
        } else {
            self.out.send(inv.0, ShardMsg::Invoke(Box::new(inv.1)));
        }
        Flow::Continue
    }

    /// The CALL of the authenticator, and the shard of its callee; None if nobody registered it.
    fn authenticator_invoke(&self, join: &PendingJoin, ask: &Ask) -> Option<(usize, Invoke)> {
        let realm = self.realms.find(&ask.realm)?;
        let reg = self.local[realm].dealer.route(&ask.procedure)?;
        let callee = reg.pick();
        let mut args = Vec::new();
        ask.args.encode(Serializer::Json, &mut args).ok()?;
        let inv = Invoke {
            realm,
            registration: reg.id,
            callee: callee.session,
            caller_shard: self.shard,
            caller: join.session,
            caller_request: 1,
            caller_enc: ANSWER_ENC,
            caller_max_frame: MAX_ANSWER,
            procedure: (reg.policy != MatchPolicy::Exact)
                .then(|| Arc::from(ask.procedure.as_str())),
            ser: Serializer::Json,
            payload: AppPayload {
                args: Some(Bytes::from(args)),
                ..Default::default()
            },
            receive_progress: false,
            timeout_ms: 0,
            disclosed: None,
            progress: false,
            route: Default::default(),
            continuation: false,
            caller_ppt: false,
        };
        Some((callee.shard, inv))
    }

    /// The authenticator's RESULT or ERROR for login `session`: WELCOME or ABORT.
    pub(super) fn on_authenticator_answer(&mut self, session: u64, frame: &Bytes) {
        if !matches!(self.awaiting.get(&session), Some(w) if matches!(w.phase, Phase::Asked)) {
            return;
        }
        let w = self.awaiting.remove(&session).expect("checked");
        let body = frame.get(RAWSOCKET_HEADER..).unwrap_or_default();
        let args = match Message::parse(Serializer::Json, body) {
            Ok(Message::Result { args, .. }) => args.and_then(|a| match a {
                Val::Raw(p) => Val::decode(p).ok().map(Val::into_owned),
                other => Some(other.into_owned()),
            }),
            _ => None,
        };
        let auth = self.auth.clone();
        match auth.judge(&w.ctx, args.as_ref(), &w.info) {
            Ok(Decided::Welcome(who)) => {
                self.join(&w.peer, w.join, who);
            }
            Ok(Decided::Challenge(grant)) if grant.needs_derivation() => self.derive(w, grant),
            Ok(Decided::Challenge(grant)) => self.challenge_granted(w, grant),
            Err(r) => self.refuse_peer(&w.peer, r),
        }
    }

    /// Hands the granted secret's key derivation to a worker thread; the result comes back as
    /// [`super::Handoff::Derived`].
    fn derive(&mut self, mut w: Awaiting, mut grant: Box<Grant>) {
        let session = w.join.session;
        let (mesh, shard) = (self.mesh.clone(), self.shard);
        let queued = crate::auth::worker::submit(move || {
            let derived = grant.derive().then_some(grant);
            mesh.push_conn(shard, super::Handoff::Derived(session, derived));
        });
        if !queued {
            tracing::warn!(
                session,
                "too many key derivations in progress; refusing the login"
            );
            let _ = self.auth.refuse_granted(&w.ctx, &w.info);
            self.refuse_peer(&w.peer, Refusal::FAILED);
            return;
        }
        w.phase = Phase::Deriving;
        self.awaiting.insert(session, w);
    }

    /// A key derivation finished (None: the answer's parameters were unusable).
    pub(crate) fn on_derived(&mut self, session: u64, grant: Option<Box<Grant>>) {
        if !matches!(self.awaiting.get(&session), Some(w) if matches!(w.phase, Phase::Deriving)) {
            return;
        }
        let w = self.awaiting.remove(&session).expect("checked");
        match grant {
            Some(g) => self.challenge_granted(w, g),
            None => {
                let _ = self.auth.refuse_granted(&w.ctx, &w.info);
                self.refuse_peer(&w.peer, Refusal::FAILED);
            }
        }
    }

    /// Sends the CHALLENGE for credentials the authenticator granted; the connection picks the
    /// handshake up when AUTHENTICATE arrives.
    fn challenge_granted(&mut self, mut w: Awaiting, grant: Box<Grant>) {
        let auth = self.auth.clone();
        match auth.challenge_granted(&w.ctx, grant, w.join.session, &w.info) {
            Hello::Challenge {
                authmethod,
                extra,
                pending,
            } => {
                let msg = Message::Challenge {
                    authmethod: Cow::Borrowed(authmethod),
                    extra,
                };
                self.reply_peer(&w.peer.clone(), &msg);
                w.phase = Phase::Challenged(pending);
                self.awaiting.insert(w.join.session, w);
            }
            Hello::Refuse(r) => self.refuse_peer(&w.peer, r),
            Hello::Welcome(_) | Hello::Ask(_) => self.refuse_peer(&w.peer, Refusal::FAILED),
        }
    }

    /// Refuses logins whose authenticator has not answered in time.
    pub(super) fn expire_awaiting(&mut self) {
        let late: Vec<u64> = self
            .awaiting
            .iter()
            .filter(|(_, w)| !matches!(w.phase, Phase::Challenged(_)))
            .filter(|(_, w)| w.started.elapsed() >= w.timeout)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            let w = self.awaiting.remove(&id).expect("listed");
            tracing::warn!(
                session = id,
                "the dynamic authenticator did not answer in time"
            );
            if matches!(w.phase, Phase::Asked) {
                // The router's call is withdrawn: the callee's slot is freed (and the callee
                // interrupted) even though the call itself has no timeout.
                self.caller_left(id);
            }
            let _ = self.auth.judge(&w.ctx, None, &w.info);
            self.refuse_peer(&w.peer, Refusal::FAILED);
        }
    }

    /// A login that was waiting in [`Router::awaiting`] ended without the authenticator's answer
    /// (its connection went, or it sent ABORT or anything else before WELCOME): forgotten, and a
    /// call of the authenticator still outstanding for it is withdrawn like any call whose caller
    /// left ([`Router::caller_left`]: on every shard, the callee's pending invocation is freed and
    /// a callee that announced call canceling gets INTERRUPT; its late answer finds nothing).
    pub(super) fn abandon_login(&mut self, session: u64) {
        let Some(w) = self.awaiting.remove(&session) else {
            return;
        };
        if matches!(w.phase, Phase::Asked) {
            self.caller_left(session);
        }
    }

    /// ABORT to a connection the router holds no `Conn` for, then close it.
    fn refuse_peer(&mut self, peer: &Rc<Peer>, r: Refusal) {
        let msg = Message::Abort {
            details: Val::Dict(vec![(
                Cow::Borrowed("message"),
                Val::Str(Cow::Borrowed(r.message)),
            )]),
            reason: Cow::Borrowed(r.reason),
        };
        self.reply_peer(peer, &msg);
        Router::close_after_goodbye(peer);
    }

    /// A connection whose login the authenticator settled while it was not reading: take on the
    /// session (or leave the handshake as it is).
    #[inline(always)]
    pub(super) fn adopt(&mut self, conn: &mut Conn) {
        if conn.pending.is_some() {
            self.adopt_settled(conn);
        }
    }

    #[inline(never)]
    fn adopt_settled(&mut self, conn: &mut Conn) {
        let Some(p) = conn.pending.as_mut() else {
            return;
        };
        if p.auth.is_none()
            && matches!(self.awaiting.get(&p.session), Some(w) if matches!(w.phase, Phase::Challenged(_)) && Rc::ptr_eq(&w.peer, &conn.peer))
        {
            if let Some(Awaiting {
                phase: Phase::Challenged(pending),
                ..
            }) = self.awaiting.remove(&p.session)
            {
                p.auth = Some(pending);
            }
            return;
        }
        if conn.session.is_none()
            && p.auth.is_none()
            && self
                .sessions
                .get(&p.session)
                .is_some_and(|s| Rc::ptr_eq(&s.peer, &conn.peer))
        {
            conn.session = Some(p.session);
            conn.pending = None;
        }
    }
}
