//! Scatter-gather over the shard mesh: a meta procedure asks every shard (or the one owning a
//! session) for its own part of a realm, and answers once all parts are in. Each shard reports only
//! what it owns (its sessions, its subscribers, its callees), so the gathered answer is exact, not
//! one replica's guess.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::protocol::codes;
use crate::protocol::errors;
use crate::protocol::uri::MatchPolicy;
use crate::protocol::Val;
use crate::router::authority::InvokePolicy;
use crate::router::meta::answer::{self, Ask};
use crate::router::session::Identity;
use crate::router::{Router, ShardMsg};

/// What one shard is asked about its part of a realm.
#[derive(Clone, Debug)]
pub enum MetaQuery {
    /// Its sessions (only `Some(id)` if given).
    Sessions { only: Option<u64> },
    /// Close its sessions that `target` names, except `except` (the caller).
    Kill {
        target: KillTarget,
        except: u64,
        reason: Arc<str>,
        message: Option<Arc<str>>,
    },
    /// The subscriptions its sessions hold, with those sessions.
    Subscriptions,
    /// The registrations of its callees.
    Registrations,
}

/// Which sessions a kill closes.
#[derive(Clone, Debug)]
pub enum KillTarget {
    Session(u64),
    AuthId(Arc<str>),
    AuthRole(Arc<str>),
    All,
}

impl KillTarget {
    fn names(&self, id: u64, who: &Identity) -> bool {
        match self {
            KillTarget::Session(s) => *s == id,
            KillTarget::AuthId(a) => *a == who.authid,
            KillTarget::AuthRole(r) => *r == who.authrole,
            KillTarget::All => true,
        }
    }
}

/// A session as one shard reports it: id, identity, and (asked of one session only) its
/// transport details.
pub type SessionPart = (u64, Arc<Identity>, Option<Val<'static>>);

/// One shard's answer.
pub enum MetaPart {
    Sessions(Vec<SessionPart>),
    Killed(Vec<u64>),
    Subscriptions(Vec<Entry>),
    Registrations(Vec<Entry>),
}

/// A subscription or registration as one shard sees it: `members` are its own subscribers/callees.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: u64,
    pub policy: MatchPolicy,
    pub uri: Arc<str>,
    pub created: SystemTime,
    /// How a registration's callees share calls (subscriptions: unused).
    pub invoke: InvokePolicy,
    /// (order, session): subscribers by session id, callees by registration order.
    pub members: Vec<(u64, u64)>,
}

/// A meta call waiting for the other shards' parts.
pub(crate) struct Gather {
    remaining: usize,
    started: Instant,
    parts: Vec<MetaPart>,
    sid: u64,
    request: u64,
    ask: Ask,
}

impl Router {
    /// Asks `to` (one shard) or every shard, this one included, then answers `request` of `sid`.
    pub(crate) fn gather(
        &mut self,
        realm: usize,
        sid: u64,
        request: u64,
        ask: Ask,
        query: MetaQuery,
        to: Option<usize>,
    ) {
        let token = self.new_token();
        let mut g = Gather {
            remaining: 0,
            started: Instant::now(),
            parts: Vec::new(),
            sid,
            request,
            ask,
        };
        let targets: Vec<usize> = match to {
            Some(s) => vec![s],
            None => (0..self.shards).collect(),
        };
        for shard in targets {
            if shard == self.shard {
                g.parts.push(self.answer_query(realm, &query));
            } else {
                g.remaining += 1;
                self.out.send(
                    shard,
                    ShardMsg::MetaQuery {
                        realm,
                        token,
                        query: query.clone(),
                    },
                );
            }
        }
        if g.remaining == 0 {
            self.finish_gather(g);
        } else {
            self.meta.gathers.insert(token, g);
        }
    }

    /// This shard's part of `realm` for `query`.
    pub(crate) fn answer_query(&mut self, realm: usize, query: &MetaQuery) -> MetaPart {
        match query {
            MetaQuery::Sessions { only } => MetaPart::Sessions(
                self.sessions
                    .iter()
                    .filter(|(id, s)| s.realm == realm && only.is_none_or(|o| o == **id))
                    .map(|(id, s)| {
                        let transport = only.and_then(|_| self.transport_of(*id, s.peer.enc));
                        (*id, s.identity.clone(), transport)
                    })
                    .collect(),
            ),
            MetaQuery::Kill {
                target,
                except,
                reason,
                message,
            } => {
                let victims: Vec<u64> = self
                    .sessions
                    .iter()
                    .filter(|(id, s)| {
                        s.realm == realm && **id != *except && target.names(**id, &s.identity)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                let quiet = matches!(target, KillTarget::All);
                for &id in &victims {
                    self.kill_session(id, reason, message.as_deref(), quiet);
                }
                MetaPart::Killed(victims)
            }
            MetaQuery::Subscriptions => MetaPart::Subscriptions(self.local_subscriptions(realm)),
            MetaQuery::Registrations => MetaPart::Registrations(self.local_registrations(realm)),
        }
    }

    fn local_subscriptions(&self, realm: usize) -> Vec<Entry> {
        self.local[realm]
            .broker
            .iter()
            .filter(|s| !s.local.is_empty())
            .map(|s| Entry {
                id: s.id,
                policy: s.policy,
                uri: s.uri.clone(),
                created: self.created_at(s.id),
                invoke: InvokePolicy::Single,
                members: s.local.iter().map(|p| (p.id.get(), p.id.get())).collect(),
            })
            .collect()
    }

    /// The registrations with callees on this shard, each listing only those callees.
    fn local_registrations(&self, realm: usize) -> Vec<Entry> {
        self.local[realm]
            .dealer
            .iter()
            .filter_map(|r| {
                let members: Vec<(u64, u64)> = r
                    .callees
                    .iter()
                    .filter(|c| c.shard == self.shard)
                    .map(|c| (c.order, c.session))
                    .collect();
                (!members.is_empty()).then(|| Entry {
                    id: r.id,
                    policy: r.policy,
                    uri: r.uri.clone(),
                    created: self.created_at(r.id),
                    invoke: r.invoke,
                    members,
                })
            })
            .collect()
    }

    fn created_at(&self, id: u64) -> SystemTime {
        self.meta
            .created
            .get(&id)
            .copied()
            .unwrap_or_else(SystemTime::now)
    }

    /// Another shard's part of gather `token`.
    pub(crate) fn on_meta_part(&mut self, token: u64, part: MetaPart) {
        let Some(g) = self.meta.gathers.get_mut(&token) else {
            return; // timed out already
        };
        g.parts.push(part);
        g.remaining -= 1;
        if g.remaining == 0 {
            let g = self.meta.gathers.remove(&token).expect("present");
            self.finish_gather(g);
        }
    }

    fn finish_gather(&mut self, g: Gather) {
        let outcome = answer::answer(&g.ask, g.parts);
        self.reply_outcome(g.sid, g.request, outcome);
    }

    /// Answers meta calls some shard did not answer in time with an ERROR.
    pub(crate) fn expire_gathers(&mut self) {
        let timeout = self.limits.barrier_timeout;
        let expired: Vec<u64> = self
            .meta
            .gathers
            .iter()
            .filter(|(_, g)| g.started.elapsed() >= timeout)
            .map(|(&t, _)| t)
            .collect();
        for token in expired {
            let g = self.meta.gathers.remove(&token).expect("listed");
            self.reply_error_text(
                g.sid,
                codes::CALL,
                g.request,
                errors::UNAVAILABLE,
                "a router shard did not answer in time",
            );
        }
    }
}
