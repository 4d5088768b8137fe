//! A snapshot of the routing state of every shard and every realm authority, and the invariants that
//! tie them together.
//!
//! Replicas are updated asynchronously, so they may differ from the authority while updates are in
//! flight; once the router is quiet they must agree exactly. [`StateReport::problems`] says where they
//! do not: it is what the churn tests assert after a storm of subscribe/unsubscribe/register/leave,
//! and what an operator's diagnostics would print.

use std::collections::BTreeMap;

use ahash::AHashMap;

use crate::protocol::uri::MatchPolicy;
use crate::router::authority::AuthoritySnapshot;
use crate::router::session::Session;
use crate::router::RealmLocal;

/// One subscription in one shard's replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSub {
    pub policy: MatchPolicy,
    pub uri: String,
    pub id: u64,
    pub rev: u64,
    /// Other shards this replica sends events to.
    pub remote: u64,
    /// Sessions on this shard receiving events.
    pub active: Vec<u64>,
    /// Sessions on this shard waiting for their SUBSCRIBED.
    pub pending: Vec<u64>,
}

/// One registration in one shard's replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaReg {
    pub policy: MatchPolicy,
    pub uri: String,
    pub id: u64,
    pub rev: u64,
    pub shard: usize,
    pub callee: u64,
}

/// What one session on a shard holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionHoldings {
    pub session: u64,
    pub realm: usize,
    pub subscriptions: Vec<u64>,
    pub registrations: Vec<u64>,
    pub pending_invocations: usize,
}

/// One realm's replica on one shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RealmReplica {
    pub subscriptions: Vec<ReplicaSub>,
    pub registrations: Vec<ReplicaReg>,
}

/// The routing state of one shard.
#[derive(Clone, Debug, Default)]
pub struct ShardReport {
    pub shard: usize,
    /// Indexed by realm.
    pub realms: Vec<RealmReplica>,
    pub sessions: Vec<SessionHoldings>,
    /// Barriers still waiting for acknowledgements.
    pub open_barriers: usize,
    /// Entries of the shard's index of pending invocations by caller: always the sum of the
    /// sessions' pending invocations (an entry left behind would be a leak).
    pub indexed_calls: usize,
}

impl ShardReport {
    pub(crate) fn of(
        shard: usize,
        local: &[RealmLocal],
        sessions: &AHashMap<u64, Session>,
        open_barriers: usize,
    ) -> Self {
        let realms = local
            .iter()
            .map(|r| {
                let mut subscriptions: Vec<ReplicaSub> = r
                    .broker
                    .iter()
                    .map(|s| ReplicaSub {
                        policy: s.policy,
                        uri: s.uri.to_string(),
                        id: s.id,
                        rev: s.rev,
                        remote: s.remote,
                        active: sorted(s.local.iter().map(|p| p.id.get())),
                        pending: sorted(s.pending.iter().map(|p| p.id.get())),
                    })
                    .collect();
                subscriptions.sort_by_key(|s| s.id);
                let mut registrations: Vec<ReplicaReg> = r
                    .dealer
                    .iter()
                    .flat_map(|g| {
                        g.callees.iter().map(|c| ReplicaReg {
                            policy: g.policy,
                            uri: g.uri.to_string(),
                            id: g.id,
                            rev: g.rev,
                            shard: c.shard,
                            callee: c.session,
                        })
                    })
                    .collect();
                registrations.sort_by_key(|g| (g.id, g.callee));
                RealmReplica {
                    subscriptions,
                    registrations,
                }
            })
            .collect();
        let mut sessions: Vec<SessionHoldings> = sessions
            .iter()
            .map(|(&id, s)| SessionHoldings {
                session: id,
                realm: s.realm,
                subscriptions: sorted(s.subscriptions.iter().copied()),
                registrations: sorted(s.registrations.iter().map(|r| r.id)),
                pending_invocations: s.invocations.len(),
            })
            .collect();
        sessions.sort_by_key(|s| s.session);
        ShardReport {
            shard,
            realms,
            sessions,
            open_barriers,
            indexed_calls: 0,
        }
    }
}

fn sorted(it: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut v: Vec<u64> = it.collect();
    v.sort_unstable();
    v
}

/// The routing state of the whole router at one moment.
#[derive(Clone, Debug, Default)]
pub struct StateReport {
    /// Indexed by realm.
    pub authorities: Vec<AuthoritySnapshot>,
    /// Indexed by shard.
    pub shards: Vec<ShardReport>,
}

impl StateReport {
    /// Every disagreement between the authorities, the replicas and the sessions. Empty when the
    /// router is consistent; meaningful only while no update is in flight (a quiet router).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (realm, auth) in self.authorities.iter().enumerate() {
            self.check_subscriptions(realm, auth, &mut out);
            self.check_registrations(realm, auth, &mut out);
        }
        for shard in &self.shards {
            if shard.open_barriers > 0 {
                out.push(format!(
                    "shard {}: {} barrier(s) still open",
                    shard.shard, shard.open_barriers
                ));
            }
            let pending: usize = shard.sessions.iter().map(|s| s.pending_invocations).sum();
            if shard.indexed_calls != pending {
                out.push(format!(
                    "shard {}: {} pending invocation(s) but {} indexed by caller",
                    shard.shard, pending, shard.indexed_calls
                ));
            }
        }
        out
    }

    fn check_subscriptions(&self, realm: usize, auth: &AuthoritySnapshot, out: &mut Vec<String>) {
        // Who holds what, according to the sessions themselves.
        let mut held: BTreeMap<u64, Vec<(usize, u64)>> = BTreeMap::new();
        for shard in &self.shards {
            for s in shard.sessions.iter().filter(|s| s.realm == realm) {
                for &id in &s.subscriptions {
                    held.entry(id).or_default().push((shard.shard, s.session));
                }
            }
        }
        for rec in &auth.subscriptions {
            let holders = held.remove(&rec.grant.id).unwrap_or_default();
            let mut with_subscribers = 0u64;
            for &(shard, _) in &holders {
                with_subscribers |= 1 << shard;
            }
            if with_subscribers != rec.shards {
                out.push(format!(
                    "realm {realm}: subscription {} ({:?} {}) has subscribers on shards {:#b}, authority says {:#b}",
                    rec.grant.id, rec.policy, rec.uri, with_subscribers, rec.shards
                ));
            }
            for shard in &self.shards {
                let replica = &shard.realms[realm];
                let Some(sub) = replica.subscriptions.iter().find(|s| s.id == rec.grant.id) else {
                    out.push(format!(
                        "realm {realm}: shard {} has no replica of subscription {} ({:?} {})",
                        shard.shard, rec.grant.id, rec.policy, rec.uri
                    ));
                    continue;
                };
                let expect_remote = rec.shards & !(1 << shard.shard);
                if sub.remote != expect_remote {
                    out.push(format!(
                        "realm {realm}: shard {} sends subscription {} to shards {:#b}, authority says {:#b}",
                        shard.shard, rec.grant.id, sub.remote, expect_remote
                    ));
                }
                let mut mine: Vec<u64> = holders
                    .iter()
                    .filter(|(s, _)| *s == shard.shard)
                    .map(|&(_, sid)| sid)
                    .collect();
                mine.sort_unstable();
                let mut listed = sub.active.clone();
                listed.extend(&sub.pending);
                listed.sort_unstable();
                if listed != mine {
                    out.push(format!(
                        "realm {realm}: shard {} lists subscribers {:?} for subscription {}, its sessions say {:?}",
                        shard.shard, listed, rec.grant.id, mine
                    ));
                }
                if !sub.pending.is_empty() {
                    out.push(format!(
                        "realm {realm}: shard {} still has pending subscribers {:?} of {}",
                        shard.shard, sub.pending, rec.grant.id
                    ));
                }
            }
        }
        for (id, holders) in held {
            out.push(format!(
                "realm {realm}: sessions {holders:?} hold subscription {id}, unknown to the authority"
            ));
        }
        for shard in &self.shards {
            for sub in &shard.realms[realm].subscriptions {
                if !auth.subscriptions.iter().any(|r| r.grant.id == sub.id) {
                    out.push(format!(
                        "realm {realm}: shard {} holds retired subscription {} ({:?} {})",
                        shard.shard, sub.id, sub.policy, sub.uri
                    ));
                }
            }
        }
    }

    fn check_registrations(&self, realm: usize, auth: &AuthoritySnapshot, out: &mut Vec<String>) {
        // (registration, callee session) → callee shard: one entry per callee of a shared one.
        let mut held: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        for shard in &self.shards {
            for s in shard.sessions.iter().filter(|s| s.realm == realm) {
                for &id in &s.registrations {
                    held.insert((id, s.session), shard.shard);
                }
            }
        }
        for rec in &auth.registrations {
            match held.remove(&(rec.grant.id, rec.session)) {
                Some(shard) if shard == rec.shard => {}
                other => out.push(format!(
                    "realm {realm}: registration {} ({:?} {}) belongs to {:?} per the authority, held by {other:?}",
                    rec.grant.id, rec.policy, rec.uri, (rec.shard, rec.session)
                )),
            }
            for shard in &self.shards {
                let replica = &shard.realms[realm];
                let found = replica
                    .registrations
                    .iter()
                    .find(|r| r.id == rec.grant.id && r.callee == rec.session);
                let ok = found.is_some_and(|r| {
                    r.shard == rec.shard && r.callee == rec.session && r.uri == rec.uri
                });
                if !ok {
                    out.push(format!(
                        "realm {realm}: shard {} replica of registration {} ({:?} {}) is {found:?}",
                        shard.shard, rec.grant.id, rec.policy, rec.uri
                    ));
                }
            }
        }
        for ((id, session), shard) in held {
            out.push(format!(
                "realm {realm}: session {:?} holds registration {id}, unknown to the authority",
                (shard, session)
            ));
        }
        for shard in &self.shards {
            for reg in &shard.realms[realm].registrations {
                if !auth
                    .registrations
                    .iter()
                    .any(|r| r.grant.id == reg.id && r.session == reg.callee)
                {
                    out.push(format!(
                        "realm {realm}: shard {} holds retired registration {} ({:?} {})",
                        shard.shard, reg.id, reg.policy, reg.uri
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::authority::{Grant, RegRecord, SubRecord};

    fn consistent() -> StateReport {
        let grant = Grant { id: 5, rev: 1 };
        let sub = |shard: usize| ReplicaSub {
            policy: MatchPolicy::Exact,
            uri: "t".into(),
            id: 5,
            rev: 1,
            remote: 0b11 & !(1 << shard),
            active: vec![10 + shard as u64],
            pending: vec![],
        };
        let reg = ReplicaReg {
            policy: MatchPolicy::Exact,
            uri: "p".into(),
            id: 6,
            rev: 2,
            shard: 0,
            callee: 10,
        };
        let shard = |n: usize| ShardReport {
            shard: n,
            realms: vec![RealmReplica {
                subscriptions: vec![sub(n)],
                registrations: vec![reg.clone()],
            }],
            sessions: vec![SessionHoldings {
                session: 10 + n as u64,
                realm: 0,
                subscriptions: vec![5],
                registrations: if n == 0 { vec![6] } else { vec![] },
                pending_invocations: 0,
            }],
            open_barriers: 0,
            indexed_calls: 0,
        };
        StateReport {
            authorities: vec![AuthoritySnapshot {
                subscriptions: vec![SubRecord {
                    policy: MatchPolicy::Exact,
                    uri: "t".into(),
                    grant,
                    shards: 0b11,
                }],
                registrations: vec![RegRecord {
                    policy: MatchPolicy::Exact,
                    uri: "p".into(),
                    grant: Grant { id: 6, rev: 2 },
                    shard: 0,
                    session: 10,
                }],
            }],
            shards: vec![shard(0), shard(1)],
        }
    }

    #[test]
    fn a_consistent_state_has_no_problems() {
        assert_eq!(consistent().problems(), Vec::<String>::new());
    }

    #[test]
    fn each_kind_of_disagreement_is_reported() {
        let mut r = consistent();
        r.shards[1].realms[0].subscriptions[0].remote = 0;
        assert_eq!(r.problems().len(), 1, "{:?}", r.problems());

        let mut r = consistent();
        r.shards[1].realms[0].registrations.clear();
        assert_eq!(r.problems().len(), 1, "{:?}", r.problems());

        let mut r = consistent();
        r.authorities[0].registrations.clear();
        assert!(r.problems().len() >= 2, "{:?}", r.problems());

        let mut r = consistent();
        r.shards[0].sessions[0].subscriptions.clear();
        assert!(!r.problems().is_empty());

        let mut r = consistent();
        r.shards[0].open_barriers = 1;
        assert_eq!(r.problems().len(), 1);

        let mut r = consistent();
        r.shards[1].indexed_calls = 1;
        assert_eq!(r.problems().len(), 1, "{:?}", r.problems());
    }
}
