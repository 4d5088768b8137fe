//! The dynamic authorizer: where a realm names `[realm.authorizer]` and no static permission of the
//! session's role matches a URI, the router asks a procedure that a trusted session registered, as
//! Crossbar.io's dynamic authorizers are asked: `authorize(session_details, uri, action, options)`.
//! The answer is `true`/`false` or a dict `{allow, disclose, cache}`; anything else — an ERROR, a
//! malformed answer, no callee, no answer in time — denies.
//!
//! **The router as caller.** The question is an ordinary INVOCATION, so the callee may sit on any
//! shard and its RESULT or ERROR comes back through the paths every call uses. The caller id is
//! drawn above 2^53: session ids never go there (the spec bounds ids at 2^53), so the answer is
//! told apart from every session's own calls by one comparison in `on_answer`, and a session's own
//! request ids are untouched. Each question gets a fresh id (shard-unique residue, like session
//! ids), so a late answer to a question that was given up finds nothing.
//!
//! **Parking.** The request waits; whatever the session sends after it queues behind it (owned
//! frame bytes, bounded: beyond the bound the session is closed), and is replayed in order once the
//! answer is in, so WAMP's ordering holds. Only YIELD, ERROR (a callee's answers, which must not
//! wait: the authorizer's own session may be the one waiting) and ABORT pass. Other sessions are
//! never blocked: parking is per session, and the shard keeps routing.
//!
//! **Cache.** Answers are kept per session by (action, URI) unless the answer says `cache: false`,
//! at most [`MAX_CACHED`] entries (beyond that, answers are used once and not kept). A reload of the
//! rules empties every cache.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ahash::AHashMap;
use bytes::Bytes;

use super::authorize::Request;
use super::dealer::Invoke;
use super::handshake::{ANSWER_ENC, MAX_ANSWER, RAWSOCKET_HEADER};
use super::{ids, Conn, Flow, Router, ShardMsg};
use crate::config::file::Action;
use crate::protocol::uri::MatchPolicy;
use crate::protocol::{errors, Message, Serializer, Val};

/// Cached answers one session may hold.
pub const MAX_CACHED: usize = 1024;
/// Messages that may queue behind a request waiting for the authorizer.
pub const MAX_HELD_BACK: usize = 1024;
/// Bytes that may queue behind a request waiting for the authorizer.
pub const MAX_HELD_BACK_BYTES: usize = 16 << 20;
/// How much longer than the authorizer's `timeout` this shard waits before it gives up by itself:
/// the callee's shard normally ends the call at `timeout` (`wamp.error.timeout`), and this is the
/// fallback for a shard that cannot answer at all.
const GRACE: Duration = Duration::from_secs(1);

/// One answer of the authorizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub allow: bool,
    /// Force caller/publisher disclosure, like a static permission's `disclose`.
    pub disclose: bool,
    /// Keep the answer for this session's later requests with the same action and URI.
    pub cache: bool,
}

impl Answer {
    const DENY: Answer = Answer {
        allow: false,
        disclose: false,
        cache: false,
    };
}

/// The dynamic-authorization state of one shard.
#[derive(Default)]
pub struct AuthorizerState {
    sessions: AHashMap<u64, SessionAuthz>,
    /// Questions in flight, by the caller id the router used.
    asks: AHashMap<u64, Asked>,
    next_ask: u64,
    /// The request being routed was allowed by the authorizer with `disclose`.
    pub(crate) disclose_now: bool,
    /// Sessions whose waiting request has been decided and is to be replayed.
    ready: Vec<u64>,
    /// A replay is running (an answer that arrives meanwhile is queued in `ready`, not nested).
    replaying: bool,
}

struct Asked {
    session: u64,
    started: Instant,
    timeout: Duration,
}

/// The request a session waits on, and what queued behind it.
#[derive(Default)]
struct SessionAuthz {
    /// Answers by URI, one slot per action.
    cache: AHashMap<Box<str>, [Option<Answer>; 4]>,
    cached: usize,
    waiting: Option<Waiting>,
    held: VecDeque<Bytes>,
    held_bytes: usize,
}

struct Waiting {
    asker: u64,
    frame: Bytes,
    action: Action,
    uri: Box<str>,
    decided: Option<Answer>,
}

fn slot(a: Action) -> usize {
    match a {
        Action::Call => 0,
        Action::Register => 1,
        Action::Publish => 2,
        Action::Subscribe => 3,
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Call => "call",
        Action::Register => "register",
        Action::Publish => "publish",
        Action::Subscribe => "subscribe",
    }
}

impl SessionAuthz {
    fn cached(&self, action: Action, uri: &str) -> Option<Answer> {
        self.cache.get(uri).and_then(|slots| slots[slot(action)])
    }

    fn remember(&mut self, action: Action, uri: &str, answer: Answer) {
        if self.cached >= MAX_CACHED {
            return;
        }
        let slots = self.cache.entry(uri.into()).or_default();
        if slots[slot(action)].replace(answer).is_none() {
            self.cached += 1;
        }
    }
}

impl AuthorizerState {
    /// Forgets every cached answer (the rules were reloaded).
    pub fn clear_caches(&mut self) {
        for s in self.sessions.values_mut() {
            s.cache.clear();
            s.cached = 0;
        }
        self.sessions
            .retain(|_, s| s.waiting.is_some() || !s.held.is_empty());
    }

    /// A fresh caller id above 2^53, unique across shards.
    fn new_asker(&mut self, shard: usize, shards: usize) -> u64 {
        self.next_ask += 1;
        ids::MAX_ID + (self.next_ask * shards as u64) + shard as u64
    }
}

/// True for messages that queue behind a request waiting for the authorizer: everything but a
/// callee's answers (YIELD, ERROR) and ABORT.
#[inline]
pub(crate) fn held_back(msg: &Message<'_>) -> bool {
    !matches!(
        msg,
        Message::Yield { .. } | Message::Error { .. } | Message::Abort { .. }
    )
}

/// Reads the authorizer's answer frame (the RESULT or ERROR the router received as caller).
pub(crate) fn judge(frame: Option<&Bytes>) -> Result<Answer, String> {
    let frame = frame.ok_or("no answer could be built for the router")?;
    let body = frame.get(RAWSOCKET_HEADER..).unwrap_or_default();
    match Message::parse(Serializer::Json, body) {
        Ok(Message::Result { args, .. }) => {
            let args = args.map(|a| match a {
                Val::Raw(p) => Val::decode(p).map_err(|e| e.to_string()),
                other => Ok(other),
            });
            match args.transpose()? {
                Some(Val::List(items)) => parse_answer(items.first()),
                _ => parse_answer(None),
            }
        }
        Ok(Message::Error { error, .. }) => Err(format!("the authorizer answered ERROR {error}")),
        Ok(other) => Err(format!("unexpected {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The first result argument as an answer: a bool (cached), or a dict with the bool keys `allow`
/// (absent: false), `disclose` (absent: false) and `cache` (absent: true); Crossbar's `validate`
/// is accepted and ignored; any other key or type is malformed.
pub(crate) fn parse_answer(v: Option<&Val<'_>>) -> Result<Answer, String> {
    match v {
        Some(Val::Bool(allow)) => Ok(Answer {
            allow: *allow,
            disclose: false,
            cache: true,
        }),
        Some(Val::Dict(items)) => {
            let mut a = Answer {
                allow: false,
                disclose: false,
                cache: true,
            };
            for (k, v) in items {
                let flag = match v {
                    Val::Null => continue,
                    Val::Bool(b) => Some(*b),
                    _ => None,
                };
                match (k.as_ref(), flag) {
                    ("allow", Some(b)) => a.allow = b,
                    ("disclose", Some(b)) => a.disclose = b,
                    ("cache", Some(b)) => a.cache = b,
                    ("validate", _) => {}
                    (k, _) => return Err(format!("unusable key {k:?} in the answer")),
                }
            }
            Ok(a)
        }
        other => Err(format!(
            "the answer must be a bool or a dict, not {other:?}"
        )),
    }
}

/// The options dict of a request (what Crossbar passes as `options`).
fn options_of<'a>(msg: &Message<'a>) -> Val<'a> {
    match msg {
        Message::Call { options, .. }
        | Message::Register { options, .. }
        | Message::Subscribe { options, .. }
        | Message::Publish { options, .. } => options.clone(),
        _ => Val::empty_dict(),
    }
}

impl Router {
    /// A request no static permission decides, in a realm with an authorizer: the cached answer
    /// decides, or the authorizer is asked and the request parks. True if it may be routed now.
    pub(crate) fn ask_authorizer(
        &mut self,
        sid: u64,
        req: Request,
        uri: &str,
        msg: &Message<'_>,
        frame: &Bytes,
    ) -> bool {
        let cached = self
            .authorizer
            .sessions
            .get(&sid)
            .and_then(|s| s.cached(req.action, uri));
        if let Some(a) = cached {
            return self.apply_answer(sid, req, uri, a);
        }
        match self.authorizer_invoke(sid, req.action, uri, msg) {
            Ok((shard, mut inv, timeout)) => {
                inv.caller = self.park(sid, req.action, uri, frame, timeout);
                if shard == self.shard {
                    self.on_invoke(inv);
                } else {
                    self.out.send(shard, ShardMsg::Invoke(Box::new(inv)));
                }
            }
            Err(why) => {
                tracing::warn!(
                    session = sid,
                    uri,
                    "cannot ask the authorizer: {why}; denying"
                );
                self.refuse(sid, req, uri, " (the authorizer could not be asked)");
            }
        }
        false
    }

    /// Applies an answer to a request about to be routed; true if allowed.
    fn apply_answer(&mut self, sid: u64, req: Request, uri: &str, a: Answer) -> bool {
        if a.allow {
            self.authorizer.disclose_now = a.disclose;
            return true;
        }
        self.refuse(sid, req, uri, " (by the authorizer)");
        false
    }

    /// The INVOCATION asking the authorizer about `action` on `uri` by session `sid`, the shard of
    /// its callee, and how long to wait for it.
    fn authorizer_invoke(
        &self,
        sid: u64,
        action: Action,
        uri: &str,
        msg: &Message<'_>,
    ) -> Result<(usize, Invoke, Duration), String> {
        let session = self.sessions.get(&sid).ok_or("no such session")?;
        let target = self
            .rules
            .realm(session.realm)
            .and_then(|r| r.spec.authorizer.as_ref())
            .ok_or("the realm has no authorizer")?;
        let realm = self
            .realms
            .find(&target.realm)
            .ok_or_else(|| format!("no realm {:?}", target.realm))?;
        let reg = self.local[realm]
            .dealer
            .route(&target.procedure)
            .ok_or_else(|| format!("{:?} is not registered", target.procedure))?;
        let callee = reg.pick();
        let args = Val::List(vec![
            self.session_details(sid),
            Val::Str(Cow::Borrowed(uri)),
            Val::Str(Cow::Borrowed(action_name(action))),
            options_of(msg),
        ]);
        let mut bytes = Vec::new();
        args.encode(Serializer::Json, &mut bytes)
            .map_err(|e| e.to_string())?;
        let timeout = target.answer_timeout();
        let inv = Invoke {
            realm,
            registration: reg.id,
            callee: callee.session,
            caller_shard: self.shard,
            caller: 0, // the question's id, drawn when the request parks
            caller_request: 1,
            caller_enc: ANSWER_ENC,
            caller_max_frame: MAX_ANSWER,
            procedure: (reg.policy != MatchPolicy::Exact)
                .then(|| std::sync::Arc::from(target.procedure.as_str())),
            ser: Serializer::Json,
            payload: super::wire::AppPayload {
                args: Some(Bytes::from(bytes)),
                ..Default::default()
            },
            receive_progress: false,
            timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
            disclosed: None,
            progress: false,
            route: Default::default(),
            continuation: false,
            caller_ppt: false,
        };
        Ok((callee.shard, inv, timeout))
    }

    /// The `session_details` argument: who asks, as `wamp.session.get` describes a session, plus
    /// the realm.
    fn session_details(&self, sid: u64) -> Val<'static> {
        let Some(s) = self.sessions.get(&sid) else {
            return Val::empty_dict();
        };
        let text = |v: &str| Val::Str(Cow::Owned(v.to_string()));
        let who = &s.identity;
        let mut d = vec![
            (Cow::Borrowed("session"), Val::UInt(sid)),
            (Cow::Borrowed("authid"), text(&who.authid)),
            (Cow::Borrowed("authrole"), text(&who.authrole)),
            (Cow::Borrowed("authmethod"), text(&who.authmethod)),
            (Cow::Borrowed("authprovider"), text(&who.authprovider)),
            (Cow::Borrowed("realm"), text(self.realms.name(s.realm))),
        ];
        if let Some(t) = self.transport_of(sid, s.peer.enc) {
            d.push((Cow::Borrowed("transport"), t));
        }
        Val::Dict(d)
    }

    /// Parks the request in `frame` of session `sid` until the authorizer answers; returns the
    /// question's id (the caller id of the INVOCATION).
    fn park(
        &mut self,
        sid: u64,
        action: Action,
        uri: &str,
        frame: &Bytes,
        timeout: Duration,
    ) -> u64 {
        let asker = self.authorizer.new_asker(self.shard, self.shards);
        self.authorizer.asks.insert(
            asker,
            Asked {
                session: sid,
                started: Instant::now(),
                timeout,
            },
        );
        let st = self.authorizer.sessions.entry(sid).or_default();
        st.waiting = Some(Waiting {
            asker,
            frame: frame.clone(),
            action,
            uri: uri.into(),
            decided: None,
        });
        if let Some(s) = self.sessions.get(&sid) {
            s.peer.parked.set(true);
        }
        asker
    }

    /// A message of a session whose request waits for the authorizer: queued behind it; beyond
    /// the bound the session is closed.
    pub(crate) fn hold_back(&mut self, conn: &mut Conn, sid: u64, frame: &Bytes) -> Flow {
        let st = self.authorizer.sessions.entry(sid).or_default();
        if st.held.len() >= MAX_HELD_BACK || st.held_bytes + frame.len() > MAX_HELD_BACK_BYTES {
            tracing::warn!(
                session = sid,
                held = st.held.len(),
                "closing session: too many messages wait behind a request the authorizer has not answered"
            );
            let text = format!(
                "more than {MAX_HELD_BACK} messages (or {MAX_HELD_BACK_BYTES} bytes) sent while a request waited for authorization"
            );
            self.abort(conn, errors::UNAVAILABLE, &text);
            return Flow::Close;
        }
        st.held_bytes += frame.len();
        st.held.push_back(frame.clone());
        Flow::Continue
    }

    /// The authorizer's RESULT or ERROR (or nothing) for question `asker`.
    pub(crate) fn on_authorizer_answer(&mut self, asker: u64, frame: Option<Bytes>) {
        let Some(asked) = self.authorizer.asks.remove(&asker) else {
            return; // given up already, or the session left
        };
        let answer = judge(frame.as_ref()).unwrap_or_else(|why| {
            tracing::warn!(
                session = asked.session,
                "the authorizer's answer denies: {why}"
            );
            Answer::DENY
        });
        self.decided(asked.session, asker, answer);
    }

    /// Records the answer to session `sid`'s waiting request and replays the session.
    fn decided(&mut self, sid: u64, asker: u64, answer: Answer) {
        let Some(st) = self.authorizer.sessions.get_mut(&sid) else {
            return;
        };
        let Some(w) = st.waiting.as_mut().filter(|w| w.asker == asker) else {
            return;
        };
        w.decided = Some(answer);
        if answer.cache {
            let (action, uri) = (w.action, w.uri.clone());
            st.remember(action, &uri, answer);
        }
        self.authorizer.ready.push(sid);
        if !self.authorizer.replaying {
            self.replay_ready();
        }
    }

    fn replay_ready(&mut self) {
        self.authorizer.replaying = true;
        while let Some(sid) = self.authorizer.ready.pop() {
            self.replay(sid);
        }
        self.authorizer.replaying = false;
    }

    /// Routes session `sid`'s decided request and then what queued behind it, in order, until the
    /// queue is empty or a request parks again.
    fn replay(&mut self, sid: u64) {
        let Some(peer) = self.sessions.get(&sid).map(|s| s.peer.clone()) else {
            self.authorizer.sessions.remove(&sid);
            return;
        };
        let mut conn = Conn {
            peer: peer.clone(),
            session: Some(sid),
            info: Default::default(),
            pending: None,
        };
        while let Some(st) = self.authorizer.sessions.get_mut(&sid) {
            let flow = match &st.waiting {
                Some(w) => match w.decided {
                    None => break, // parked again
                    Some(answer) => {
                        let w = st.waiting.take().expect("present");
                        peer.parked.set(false);
                        self.route_decided(&mut conn, sid, &w.frame, answer)
                    }
                },
                None => match st.held.pop_front() {
                    Some(frame) => {
                        st.held_bytes -= frame.len();
                        self.replay_held(&mut conn, sid, &frame)
                    }
                    None => break,
                },
            };
            if flow == Flow::Close {
                // The session ended while replaying (GOODBYE, a violation): nothing more of it is
                // read, and its transport closes once what is queued is written.
                peer.goodbye_sent.set(true);
                Router::close_after_goodbye(&peer);
                break;
            }
        }
    }

    /// Routes (or refuses) the request the authorizer has answered.
    fn route_decided(&mut self, conn: &mut Conn, sid: u64, frame: &Bytes, a: Answer) -> Flow {
        let msg = match Message::parse(conn.peer.enc.ser, frame) {
            Ok(m) => m,
            Err(e) => return self.violation(conn, &format!("malformed message: {e}")),
        };
        let Some((req, uri)) = Request::of(&msg) else {
            return Flow::Continue;
        };
        if !self.apply_answer(sid, req, uri, a) {
            return Flow::Continue;
        }
        let flow = self.dispatch(conn, sid, &msg, frame);
        self.authorizer.disclose_now = false;
        flow
    }

    /// Handles a message that queued behind a parked request, as if it had just arrived.
    fn replay_held(&mut self, conn: &mut Conn, sid: u64, frame: &Bytes) -> Flow {
        match Message::parse(conn.peer.enc.ser, frame) {
            Ok(mut msg) => self.on_request(conn, sid, &mut msg, frame),
            Err(e) => self.violation(conn, &format!("malformed message: {e}")),
        }
    }

    /// A session left: its queue is dropped, and the question it waited on is withdrawn (the
    /// authorizer's pending call is freed like any caller's that left; a late answer finds
    /// nothing).
    pub(crate) fn authorizer_forget(&mut self, sid: u64) {
        let Some(st) = self.authorizer.sessions.remove(&sid) else {
            return;
        };
        if let Some(w) = st.waiting {
            self.authorizer.asks.remove(&w.asker);
            self.caller_left(w.asker);
        }
    }

    /// Denies requests whose authorizer has not answered well past its timeout (the callee's shard
    /// normally ends such calls itself; this covers a shard that cannot).
    pub(crate) fn expire_authorizations(&mut self) {
        // A replay interrupted by a panic (a bug) must not leave later answers unreplayed.
        self.authorizer.replaying = false;
        let late: Vec<u64> = self
            .authorizer
            .asks
            .iter()
            .filter(|(_, a)| a.started.elapsed() >= a.timeout + GRACE)
            .map(|(&id, _)| id)
            .collect();
        for asker in late {
            let asked = self.authorizer.asks.remove(&asker).expect("listed");
            tracing::warn!(
                session = asked.session,
                "the authorizer did not answer in time; denying"
            );
            self.caller_left(asker);
            self.decided(asked.session, asker, Answer::DENY);
        }
        if !self.authorizer.ready.is_empty() {
            self.replay_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(pairs: &[(&'static str, Val<'static>)]) -> Val<'static> {
        Val::Dict(
            pairs
                .iter()
                .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn answers_parse_as_crossbar_writes_them() {
        let a = parse_answer(Some(&Val::Bool(true))).unwrap();
        assert!(a.allow && a.cache && !a.disclose);
        assert!(!parse_answer(Some(&Val::Bool(false))).unwrap().allow);
        let d = dict(&[("allow", Val::Bool(true)), ("disclose", Val::Bool(true))]);
        let a = parse_answer(Some(&d)).unwrap();
        assert!(a.allow && a.disclose && a.cache);
        let d = dict(&[("allow", Val::Bool(true)), ("cache", Val::Bool(false))]);
        assert!(!parse_answer(Some(&d)).unwrap().cache);
        let d = dict(&[("cache", Val::Bool(true)), ("validate", Val::Null)]);
        assert!(!parse_answer(Some(&d)).unwrap().allow, "no allow: denied");
        let d = dict(&[("allow", Val::Null)]);
        assert!(
            !parse_answer(Some(&d)).unwrap().allow,
            "null counts as absent"
        );
        for bad in [
            dict(&[("allow", Val::UInt(1))]),
            dict(&[("allow", Val::Bool(true)), ("role", Val::Bool(true))]),
            Val::Str(Cow::Borrowed("yes")),
            Val::Null,
        ] {
            assert!(parse_answer(Some(&bad)).is_err(), "{bad:?}");
        }
        assert!(parse_answer(None).is_err());
    }

    #[test]
    fn the_cache_is_bounded_and_per_action() {
        let mut s = SessionAuthz::default();
        let yes = Answer {
            allow: true,
            disclose: false,
            cache: true,
        };
        s.remember(Action::Call, "a", yes);
        assert_eq!(s.cached(Action::Call, "a"), Some(yes));
        assert_eq!(s.cached(Action::Subscribe, "a"), None);
        for i in 0..2 * MAX_CACHED {
            s.remember(Action::Publish, &format!("t{i}"), yes);
        }
        assert_eq!(s.cached, MAX_CACHED);
        assert!(s
            .cached(Action::Publish, &format!("t{}", MAX_CACHED))
            .is_none());
    }

    #[test]
    fn askers_are_above_every_session_id_and_unique_per_shard() {
        let mut a = AuthorizerState::default();
        let mut b = AuthorizerState::default();
        let x: Vec<u64> = (0..10).map(|_| a.new_asker(0, 2)).collect();
        let y: Vec<u64> = (0..10).map(|_| b.new_asker(1, 2)).collect();
        assert!(x.iter().chain(&y).all(|&id| id > ids::MAX_ID));
        assert!(x.iter().all(|id| !y.contains(id)));
    }
}
