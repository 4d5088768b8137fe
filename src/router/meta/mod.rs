//! The meta API: the router as the callee of `wamp.session.*`, `wamp.subscription.*` and
//! `wamp.registration.*`, as the publisher of their meta events, and as the keeper of session
//! testaments.
//!
//! Calls to these URIs are answered before the dealer looks for a callee (clients cannot register
//! `wamp.` URIs, so nothing can shadow them). Questions about the realm are answered by asking every
//! shard for its own part over the mesh ([`gather`]), because only the shard that owns a session
//! knows it exactly. Meta events go through the ordinary broker path, after the change they report
//! has been decided, and cost one trie lookup when nobody subscribed to them.

mod answer;
mod events;
mod gather;
mod history;
mod testament;
pub mod time;

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ahash::AHashMap;

use crate::protocol::codes;
use crate::protocol::errors;
use crate::protocol::uri::{self, MatchPolicy};
use crate::protocol::{Message, Payload, Serializer, Val};
use crate::router::session::Peer;
use crate::router::wire::AppPayload;
use crate::router::{ids, Conn, Flow, Router};

pub use gather::{Entry, KillTarget, MetaPart, MetaQuery};

use answer::{Ask, Outcome, Table, TableAsk};

/// How long a killed session has to answer the router's GOODBYE before its transport is closed.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// An ERROR a meta call is answered with: URI and message.
type Fail = (&'static str, String);

/// The meta API's state on one shard.
#[derive(Default)]
pub struct MetaState {
    gathers: AHashMap<u64, gather::Gather>,
    testaments: AHashMap<u64, testament::Testaments>,
    /// When this shard first saw a subscription or registration it has local members of.
    created: AHashMap<u64, SystemTime>,
    /// Sessions told GOODBYE by a kill, until their transport is closed.
    killed: Vec<(Instant, Rc<Peer>)>,
    /// What the transport knew of each session of this shard when it joined.
    transports: AHashMap<u64, crate::transport::PeerInfo>,
    /// Set while `kill_all` ends a session: it leaves without `on_leave` or testaments.
    quiet_leave: bool,
}

/// True for procedures the router itself answers.
pub fn is_meta_procedure(procedure: &str) -> bool {
    procedure.strip_prefix("wamp.").is_some_and(|rest| {
        ["session.", "subscription.", "registration."]
            .iter()
            .any(|p| rest.starts_with(p))
    })
}

/// A meta call's arguments, decoded (they are small and the router reads them).
pub(crate) struct CallArgs {
    args: Vec<Val<'static>>,
    kwargs: Val<'static>,
}

impl CallArgs {
    fn decode(ser: Serializer, p: &AppPayload) -> Option<CallArgs> {
        let decode = |b: &Option<bytes::Bytes>| match b {
            Some(bytes) => Val::decode(Payload { ser, bytes })
                .ok()
                .map(Val::into_owned),
            None => Some(Val::Null),
        };
        let args = match decode(&p.args)? {
            Val::List(l) => l,
            Val::Null => Vec::new(),
            _ => return None,
        };
        let kwargs = decode(&p.kwargs)?;
        (kwargs.is_null() || kwargs.is_dict()).then_some(CallArgs { args, kwargs })
    }

    fn arg(&self, i: usize) -> Option<&Val<'static>> {
        self.args.get(i).filter(|v| !v.is_null())
    }

    fn kw(&self, key: &str) -> Option<Val<'static>> {
        self.kwargs.get(key).filter(|v| !v.is_null())
    }

    fn id(&self, i: usize) -> Result<u64, Fail> {
        self.arg(i)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| bad(format!("argument {i} must be an id")))
    }

    fn text(&self, i: usize) -> Result<String, Fail> {
        self.arg(i)
            .and_then(|v| v.as_str())
            .map(Cow::into_owned)
            .ok_or_else(|| bad(format!("argument {i} must be a string")))
    }

    /// The optional `filter_authroles` list of `wamp.session.count`/`list`.
    fn roles(&self) -> Result<Option<Vec<String>>, Fail> {
        let Some(v) = self.arg(0) else {
            return Ok(None);
        };
        let Val::List(items) = v else {
            return Err(bad("filter_authroles must be a list of strings".into()));
        };
        items
            .iter()
            .map(|r| r.as_str().map(Cow::into_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad("filter_authroles must be a list of strings".into()))
    }

    /// The `reason` and `message` keyword arguments of the kill procedures.
    fn close(&self) -> Result<(Arc<str>, Option<Arc<str>>), Fail> {
        let reason = match self.kw("reason") {
            None => errors::KILLED.to_string(),
            Some(r) => match r.as_str() {
                Some(r) if !r.is_empty() && uri::is_valid_uri(&r, false) => r.into_owned(),
                _ => return Err((errors::INVALID_URI, "reason must be a valid URI".into())),
            },
        };
        let message = match self.kw("message") {
            None => None,
            Some(m) => Some(
                m.as_str()
                    .ok_or_else(|| bad("message must be a string".into()))?
                    .into(),
            ),
        };
        Ok((reason.into(), message))
    }
}

fn bad(text: String) -> Fail {
    (errors::INVALID_ARGUMENT, text)
}

/// The question a `wamp.subscription.*` or `wamp.registration.*` call asks, if it is one.
fn table_question(procedure: &str, a: &CallArgs) -> Result<Option<(Table, TableAsk)>, Fail> {
    let (table, op) = if let Some(op) = procedure.strip_prefix("wamp.subscription.") {
        (Table::Subscriptions, op)
    } else if let Some(op) = procedure.strip_prefix("wamp.registration.") {
        (Table::Registrations, op)
    } else {
        return Ok(None);
    };
    let q = match (table, op) {
        (_, "list") => TableAsk::List,
        (_, "lookup") => {
            let named = a.arg(1).and_then(|o| o.get("match"));
            let named = named.as_ref().and_then(|v| v.as_str());
            let policy = MatchPolicy::from_option(named.as_deref())
                .map_err(|()| bad("unknown match policy".into()))?;
            TableAsk::Lookup(policy, a.text(0)?)
        }
        (_, "match") => TableAsk::Match(a.text(0)?),
        (_, "get") => TableAsk::Get(a.id(0)?),
        (Table::Subscriptions, "list_subscribers") | (Table::Registrations, "list_callees") => {
            TableAsk::Members(a.id(0)?)
        }
        (Table::Subscriptions, "count_subscribers") | (Table::Registrations, "count_callees") => {
            TableAsk::Count(a.id(0)?)
        }
        _ => return Ok(None),
    };
    Ok(Some((table, q)))
}

impl Router {
    /// A CALL to a meta procedure: answered by the router, here or after a gather.
    pub(crate) fn on_meta_call(
        &mut self,
        sid: u64,
        request: u64,
        procedure: &str,
        payload: AppPayload,
    ) -> Flow {
        let Some(s) = self.sessions.get(&sid) else {
            return Flow::Continue;
        };
        let (realm, ser) = (s.realm, s.peer.enc.ser);
        let outcome = match CallArgs::decode(ser, &payload) {
            Some(a) => self.meta_dispatch(realm, sid, request, procedure, ser, &a),
            None => Err(bad("arguments must be a list and a dictionary".into())),
        };
        if let Err(fail) = outcome {
            self.reply_outcome(sid, request, Err(fail));
        }
        Flow::Continue
    }

    /// Starts answering a meta call; an `Err` is answered at once.
    fn meta_dispatch(
        &mut self,
        realm: usize,
        sid: u64,
        request: u64,
        procedure: &str,
        ser: Serializer,
        a: &CallArgs,
    ) -> Result<(), Fail> {
        let all = MetaQuery::Sessions { only: None };
        match procedure {
            "wamp.session.count" => self.gather(
                realm,
                sid,
                request,
                Ask::SessionCount(a.roles()?),
                all,
                None,
            ),
            "wamp.session.list" => {
                self.gather(realm, sid, request, Ask::SessionList(a.roles()?), all, None)
            }
            "wamp.session.get" => {
                let id = self.session_id_arg(a)?;
                let only = MetaQuery::Sessions { only: Some(id) };
                let owner = ids::shard_of_session(id, self.shards);
                self.gather(realm, sid, request, Ask::SessionGet, only, Some(owner))
            }
            "wamp.session.kill" => {
                let id = self.session_id_arg(a)?;
                let owner = ids::shard_of_session(id, self.shards);
                let kill = kill(KillTarget::Session(id), sid, a)?;
                self.gather(realm, sid, request, Ask::KillOne, kill, Some(owner))
            }
            "wamp.session.kill_by_authid" => {
                let kill = kill(KillTarget::AuthId(a.text(0)?.into()), sid, a)?;
                self.gather(realm, sid, request, Ask::KillIds, kill, None)
            }
            "wamp.session.kill_by_authrole" => {
                let kill = kill(KillTarget::AuthRole(a.text(0)?.into()), sid, a)?;
                self.gather(realm, sid, request, Ask::KillCount, kill, None)
            }
            "wamp.session.kill_all" => {
                let kill = kill(KillTarget::All, sid, a)?;
                self.gather(realm, sid, request, Ask::KillCount, kill, None)
            }
            "wamp.subscription.get_events" => {
                let events = self.get_events(realm, sid, a)?;
                self.reply_outcome(sid, request, Ok(events));
            }
            "wamp.session.add_testament" => {
                self.add_testament(sid, realm, ser, a)?;
                self.reply_outcome(sid, request, Ok(Vec::new()));
            }
            "wamp.session.flush_testaments" => {
                self.flush_testaments(sid, a)?;
                self.reply_outcome(sid, request, Ok(Vec::new()));
            }
            _ => {
                let Some((table, q)) = table_question(procedure, a)? else {
                    return Err((
                        errors::NO_SUCH_PROCEDURE,
                        format!("no procedure {procedure}"),
                    ));
                };
                let query = match table {
                    Table::Subscriptions => MetaQuery::Subscriptions,
                    Table::Registrations => MetaQuery::Registrations,
                };
                self.gather(realm, sid, request, Ask::Table(table, q), query, None);
            }
        }
        Ok(())
    }

    /// The session id a `get`/`kill` names; an id no shard could have drawn names no session.
    fn session_id_arg(&self, a: &CallArgs) -> Result<u64, Fail> {
        let id = a.id(0)?;
        if !ids::valid(id) {
            return Err((errors::NO_SUCH_SESSION, format!("no session {id}")));
        }
        Ok(id)
    }

    /// Answers a meta call with RESULT or ERROR.
    pub(crate) fn reply_outcome(&self, sid: u64, request: u64, outcome: Outcome) {
        match outcome {
            Ok(args) => self.reply(
                sid,
                &Message::Result {
                    request,
                    details: Val::empty_dict(),
                    args: (!args.is_empty()).then_some(Val::List(args)),
                    kwargs: None,
                },
            ),
            Err((uri, text)) => self.reply_error_text(sid, codes::CALL, request, uri, &text),
        }
    }

    /// Closes a session of this shard on another session's request: GOODBYE with `reason`, its
    /// routing state gone at once, the transport closed once it answered or after a grace period.
    /// A `quiet` kill (`kill_all`) publishes neither `on_leave` nor the session's testaments: the
    /// spec's reasoning is that nobody would remain to receive them.
    pub(crate) fn kill_session(
        &mut self,
        id: u64,
        reason: &str,
        message: Option<&str>,
        quiet: bool,
    ) {
        let Some(peer) = self.sessions.get(&id).map(|s| s.peer.clone()) else {
            return;
        };
        let details = match message {
            Some(m) => Val::Dict(vec![(Cow::Borrowed("message"), Val::Str(Cow::Borrowed(m)))]),
            None => Val::empty_dict(),
        };
        self.reply_peer(
            &peer,
            &Message::Goodbye {
                details,
                reason: Cow::Borrowed(reason),
            },
        );
        peer.goodbye_sent.set(true);
        let mut conn = Conn {
            peer: peer.clone(),
            session: Some(id),
            info: Default::default(),
            pending: None,
        };
        if quiet {
            self.meta.testaments.remove(&id);
        }
        self.meta.quiet_leave = quiet;
        self.end_session(&mut conn);
        self.meta.quiet_leave = false;
        self.meta.killed.push((Instant::now(), peer));
    }

    /// Periodic housekeeping of the meta API: unanswered gathers, killed sessions that never
    /// answered their GOODBYE.
    pub(crate) fn meta_tick(&mut self) {
        self.expire_gathers();
        self.meta.killed.retain(|(at, peer)| {
            let waiting = at.elapsed() < KILL_GRACE;
            if !waiting {
                Router::close_after_goodbye(peer);
            }
            waiting
        });
    }
}

/// The kill query for `target`, sparing the caller.
fn kill(target: KillTarget, caller: u64, a: &CallArgs) -> Result<MetaQuery, Fail> {
    let (reason, message) = a.close()?;
    Ok(MetaQuery::Kill {
        target,
        except: caller,
        reason,
        message,
    })
}
