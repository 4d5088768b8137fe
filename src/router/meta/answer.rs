//! Turning the gathered parts of a meta call into its RESULT arguments (or its ERROR).

use std::borrow::Cow;
use std::sync::Arc;

use ahash::AHashMap;

use crate::protocol::errors;
use crate::protocol::uri::MatchPolicy;
use crate::protocol::Val;
use crate::router::authority::InvokePolicy;
use crate::router::meta::gather::{Entry, MetaPart, SessionPart};
use crate::router::meta::time::iso8601;
use crate::router::session::Identity;
use crate::router::trie::UriTrie;
use crate::router::wire::{Encoding, Wire};
use crate::transport::PeerInfo;

/// RESULT.Arguments, or (error URI, message).
pub type Outcome = Result<Vec<Val<'static>>, (&'static str, String)>;

/// What a gathered meta call wants to know.
#[derive(Clone, Debug)]
pub enum Ask {
    SessionCount(Option<Vec<String>>),
    SessionList(Option<Vec<String>>),
    SessionGet,
    /// `wamp.session.kill`: nothing, or no_such_session.
    KillOne,
    /// `kill_by_authid`: the ids closed.
    KillIds,
    /// `kill_by_authrole`, `kill_all`: how many were closed.
    KillCount,
    Table(Table, TableAsk),
}

/// Which table a subscription/registration question is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Subscriptions,
    Registrations,
}

/// The questions both tables answer.
#[derive(Clone, Debug)]
pub enum TableAsk {
    List,
    Lookup(MatchPolicy, String),
    Match(String),
    Get(u64),
    Members(u64),
    Count(u64),
}

/// The answer to `ask` from every shard's part.
pub fn answer(ask: &Ask, parts: Vec<MetaPart>) -> Outcome {
    match ask {
        Ask::SessionCount(roles) => {
            let n = sessions(parts, roles.as_deref()).count();
            Ok(vec![Val::UInt(n as u64)])
        }
        Ask::SessionList(roles) => {
            let ids = sessions(parts, roles.as_deref())
                .map(|(id, _, _)| Val::UInt(id))
                .collect();
            Ok(vec![Val::List(ids)])
        }
        Ask::SessionGet => match sessions(parts, None).next() {
            Some((id, who, transport)) => Ok(vec![session_details(id, &who, transport)]),
            None => Err((errors::NO_SUCH_SESSION, "no such session".into())),
        },
        Ask::KillOne => match killed(parts).is_empty() {
            true => Err((
                errors::NO_SUCH_SESSION,
                "no other session with that id".into(),
            )),
            false => Ok(Vec::new()),
        },
        Ask::KillIds => Ok(vec![Val::List(
            killed(parts).into_iter().map(Val::UInt).collect(),
        )]),
        Ask::KillCount => Ok(vec![Val::UInt(killed(parts).len() as u64)]),
        Ask::Table(table, q) => table_answer(*table, q, merge(parts)),
    }
}

/// The details of a session, as `wamp.session.get` and `wamp.session.on_join` carry them.
pub fn session_details(id: u64, who: &Identity, transport: Option<Val<'static>>) -> Val<'static> {
    let text = |s: &Arc<str>| Val::Str(Cow::Owned(s.to_string()));
    let mut d = vec![
        (Cow::Borrowed("session"), Val::UInt(id)),
        (Cow::Borrowed("authid"), text(&who.authid)),
        (Cow::Borrowed("authrole"), text(&who.authrole)),
        (Cow::Borrowed("authmethod"), text(&who.authmethod)),
        (Cow::Borrowed("authprovider"), text(&who.authprovider)),
    ];
    if let Some(t) = transport {
        d.push((Cow::Borrowed("transport"), t));
    }
    Val::Dict(d)
}

/// The spec's implementation-defined `transport` dict: framing, serializer, the peer's address
/// (`tcp4:ADDR:PORT`, `tcp6:[ADDR]:PORT` or `unix`) and, on TLS, the client certificate.
pub fn transport_details(info: &PeerInfo, enc: Encoding) -> Val<'static> {
    let text = |s: &str| Val::Str(Cow::Owned(s.to_string()));
    let key = Cow::Borrowed;
    let kind = match enc.wire {
        Wire::WebSocket => "websocket",
        Wire::RawSocket => "rawsocket",
    };
    let peer = match info.addr {
        Some(std::net::SocketAddr::V4(a)) => format!("tcp4:{a}"),
        Some(std::net::SocketAddr::V6(a)) => format!("tcp6:{a}"),
        None => "unix".to_string(),
    };
    let mut d = vec![
        (key("type"), text(kind)),
        (key("serializer"), text(enc.ser.name())),
        (key("peer"), Val::Str(Cow::Owned(peer))),
        (key("is_secure"), Val::Bool(info.tls.is_some())),
    ];
    if enc.wire == Wire::WebSocket {
        d.push((key("protocol"), text(enc.ser.ws_subprotocol())));
    }
    let cert = info.tls.as_ref().map(|t| (&t.client_cn, &t.client_sha256));
    if let Some((cn, sha)) = cert.filter(|(cn, sha)| cn.is_some() || sha.is_some()) {
        let mut c = Vec::new();
        if let Some(cn) = cn {
            c.push((key("cn"), text(cn)));
        }
        if let Some(sha) = sha {
            let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
            c.push((key("sha256"), Val::Str(Cow::Owned(hex))));
        }
        d.push((key("peer_cert"), Val::Dict(c)));
    }
    Val::Dict(d)
}

/// A subscription's or registration's details (`get`, `on_create`).
pub fn entry_details(table: Table, e: &Entry) -> Val<'static> {
    let mut d = vec![
        (Cow::Borrowed("id"), Val::UInt(e.id)),
        (
            Cow::Borrowed("created"),
            Val::Str(Cow::Owned(iso8601(e.created))),
        ),
        (
            Cow::Borrowed("uri"),
            Val::Str(Cow::Owned(e.uri.to_string())),
        ),
        (
            Cow::Borrowed("match"),
            Val::Str(Cow::Borrowed(e.policy.as_str())),
        ),
    ];
    if table == Table::Registrations {
        d.push((
            Cow::Borrowed("invoke"),
            Val::Str(Cow::Borrowed(invoke_name(e.invoke))),
        ));
    }
    Val::Dict(d)
}

/// The `invoke` option's name for `p`, as REGISTER spells it.
fn invoke_name(p: InvokePolicy) -> &'static str {
    match p {
        InvokePolicy::Single => "single",
        InvokePolicy::RoundRobin => "roundrobin",
        InvokePolicy::Random => "random",
        InvokePolicy::First => "first",
        InvokePolicy::Last => "last",
        InvokePolicy::LeastLoaded => "least_loaded",
    }
}

fn sessions<'a>(
    parts: Vec<MetaPart>,
    roles: Option<&'a [String]>,
) -> impl Iterator<Item = SessionPart> + 'a {
    parts
        .into_iter()
        .flat_map(|p| match p {
            MetaPart::Sessions(s) => s,
            _ => Vec::new(),
        })
        .filter(move |(_, who, _)| roles.is_none_or(|r| r.iter().any(|r| **r == *who.authrole)))
}

fn killed(parts: Vec<MetaPart>) -> Vec<u64> {
    parts
        .into_iter()
        .flat_map(|p| match p {
            MetaPart::Killed(k) => k,
            _ => Vec::new(),
        })
        .collect()
}

/// One entry per id: members of all shards together, created at the earliest time any shard saw it.
fn merge(parts: Vec<MetaPart>) -> Vec<Entry> {
    let mut by_id: AHashMap<u64, Entry> = AHashMap::new();
    for e in parts.into_iter().flat_map(|p| match p {
        MetaPart::Subscriptions(e) | MetaPart::Registrations(e) => e,
        _ => Vec::new(),
    }) {
        match by_id.get_mut(&e.id) {
            Some(have) => {
                have.members.extend(e.members);
                have.created = have.created.min(e.created);
            }
            None => {
                by_id.insert(e.id, e);
            }
        }
    }
    let mut out: Vec<Entry> = by_id.into_values().collect();
    out.sort_by_key(|e| e.id);
    for e in &mut out {
        e.members.sort_unstable();
    }
    out
}

fn table_answer(table: Table, q: &TableAsk, entries: Vec<Entry>) -> Outcome {
    let find = |id: u64| {
        let missing = match table {
            Table::Subscriptions => errors::NO_SUCH_SUBSCRIPTION,
            Table::Registrations => errors::NO_SUCH_REGISTRATION,
        };
        entries
            .iter()
            .find(|e| e.id == id)
            .ok_or((missing, format!("no {id}")))
    };
    let ids = |it: &mut dyn Iterator<Item = u64>| Val::List(it.map(Val::UInt).collect());
    Ok(vec![match q {
        TableAsk::List => Val::Dict(
            [
                MatchPolicy::Exact,
                MatchPolicy::Prefix,
                MatchPolicy::Wildcard,
            ]
            .into_iter()
            .map(|p| {
                let mut of = entries.iter().filter(|e| e.policy == p).map(|e| e.id);
                (Cow::Borrowed(p.as_str()), ids(&mut of))
            })
            .collect(),
        ),
        TableAsk::Lookup(policy, uri) => entries
            .iter()
            .find(|e| e.policy == *policy && *e.uri == **uri)
            .map_or(Val::Null, |e| Val::UInt(e.id)),
        TableAsk::Match(uri) => matching(table, &entries, uri),
        TableAsk::Get(id) => entry_details(table, find(*id)?),
        TableAsk::Members(id) => ids(&mut find(*id)?.members.iter().map(|m| m.1)),
        TableAsk::Count(id) => Val::UInt(find(*id)?.members.len() as u64),
    }])
}

/// Subscriptions: every one matching (null if none). Registrations: the one a CALL would reach.
fn matching(table: Table, entries: &[Entry], uri: &str) -> Val<'static> {
    let mut trie = UriTrie::new();
    for e in entries {
        trie.insert(e.policy, &e.uri, e.id);
    }
    match table {
        Table::Registrations => trie
            .best_match(uri)
            .map_or(Val::Null, |(_, _, &id)| Val::UInt(id)),
        Table::Subscriptions => {
            let mut ids = Vec::new();
            trie.for_each_match(uri, |_, _, &id| ids.push(Val::UInt(id)));
            if ids.is_empty() {
                Val::Null
            } else {
                Val::List(ids)
            }
        }
    }
}
