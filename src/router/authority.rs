//! The realm authority: the one place that decides identity — which id a subscription or registration
//! has, which callee owns a procedure — behind a narrow, versioned interface.
//!
//! Shards hold replicas of the routing tables and route from them without a lock; the authority is
//! consulted only when a shard gains its first or loses its last subscriber of a (policy, topic), and
//! on REGISTER/UNREGISTER. Every id it hands out carries a *revision*, taken from one per-realm counter
//! that only grows. Replicas use it to converge whatever order updates arrive in: the authority only
//! names a new id for a pattern after the previous id for that pattern has been retired everywhere, so
//! between two ids claiming the same pattern the one with the higher revision is always the live one,
//! and an update carrying a lower revision is stale and ignored.
//!
//! [`LocalAuthority`] keeps the state in process memory under a mutex. The trait is what a multi-node
//! backplane (a key-value store with revisions, say) would implement instead; nothing on the PUBLISH
//! or CALL path calls it.

use std::sync::{Mutex, MutexGuard};

use ahash::{AHashMap, AHashSet};

use crate::protocol::uri::MatchPolicy;
use crate::router::ids;

/// An id the authority handed out, with the revision at which it was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub id: u64,
    pub rev: u64,
}

/// A subscription as the authority knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubRecord {
    pub policy: MatchPolicy,
    pub uri: String,
    pub grant: Grant,
    /// Bit `s` set: shard `s` has at least one subscriber.
    pub shards: u64,
}

/// One callee of a registration as the authority knows it (a shared registration has one record
/// per callee, all with the same grant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegRecord {
    pub policy: MatchPolicy,
    pub uri: String,
    pub grant: Grant,
    pub shard: usize,
    pub session: u64,
}

/// Everything one realm's authority holds, for inspection and consistency checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthoritySnapshot {
    pub subscriptions: Vec<SubRecord>,
    pub registrations: Vec<RegRecord>,
}

/// How the callees of a shared registration share its calls (`REGISTER.Options.invoke`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InvokePolicy {
    /// One callee only: a second REGISTER is refused.
    #[default]
    Single,
    RoundRobin,
    Random,
    /// The callee registered first (in the order the authority decided).
    First,
    /// The callee registered last.
    Last,
    /// The callee with the fewest calls in flight (as counted by the caller's shard).
    LeastLoaded,
}

impl InvokePolicy {
    /// The policy named in REGISTER.Options (already type-checked); None for an unknown name.
    pub fn from_option(name: Option<&str>) -> Option<Self> {
        Some(match name {
            None | Some("single") => InvokePolicy::Single,
            Some("roundrobin") => InvokePolicy::RoundRobin,
            Some("random") => InvokePolicy::Random,
            Some("first") => InvokePolicy::First,
            Some("last") => InvokePolicy::Last,
            Some("least_loaded") => InvokePolicy::LeastLoaded,
            Some(_) => return None,
        })
    }
}

/// Why a REGISTER was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The procedure is taken by a `single` registration, or this one asks for `single`.
    Exists,
    /// The procedure is shared under another invocation policy.
    OtherPolicy,
}

/// A callee's place in a registration: the grant (shared by every callee of it) and the callee's
/// position in registration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Joined {
    pub grant: Grant,
    pub order: u64,
}

/// Decides subscription and registration identity for one realm.
pub trait Authority: Send + Sync {
    /// `shard` now has subscribers for (policy, uri): the subscription's id, created if none exists.
    fn join_subscription(&self, policy: MatchPolicy, uri: &str, shard: usize) -> Grant {
        self.join_subscription_created(policy, uri, shard).0
    }
    /// As [`Authority::join_subscription`], and true if this call created the subscription (the
    /// meta API's `on_create` is published exactly once per subscription, realm-wide).
    fn join_subscription_created(
        &self,
        policy: MatchPolicy,
        uri: &str,
        shard: usize,
    ) -> (Grant, bool);
    /// `shard` has no subscriber left for subscription `id` of (policy, uri). True when that retired
    /// the id (no shard has subscribers any more).
    fn leave_subscription(&self, policy: MatchPolicy, uri: &str, shard: usize, id: u64) -> bool;
    /// Adds `session` on `shard` to the callees of (policy, uri), creating the registration if
    /// none exists.
    fn register(
        &self,
        policy: MatchPolicy,
        uri: &str,
        shard: usize,
        session: u64,
        invoke: InvokePolicy,
    ) -> Result<Joined, Refusal>;
    /// Removes `session` from the callees of registration `id` of (policy, uri), retiring the id
    /// with its last callee; false if it was not a callee of the current registration.
    fn unregister(&self, policy: MatchPolicy, uri: &str, id: u64, session: u64) -> bool {
        self.unregister_retired(policy, uri, id, session).is_some()
    }
    /// As [`Authority::unregister`]: None if `session` was not a callee, else true when it was the
    /// last one (the meta API's `on_delete` is published exactly once per registration).
    fn unregister_retired(
        &self,
        policy: MatchPolicy,
        uri: &str,
        id: u64,
        session: u64,
    ) -> Option<bool>;
    /// A copy of the whole state.
    fn snapshot(&self) -> AuthoritySnapshot;
}

#[derive(Debug)]
struct SubInfo {
    grant: Grant,
    shards: u64,
}

#[derive(Debug)]
struct RegInfo {
    grant: Grant,
    invoke: InvokePolicy,
    /// (shard, session, order), in registration order.
    callees: Vec<(usize, u64, u64)>,
    next_order: u64,
}

#[derive(Default)]
struct State {
    subs: [AHashMap<Box<str>, SubInfo>; 3],
    regs: [AHashMap<Box<str>, RegInfo>; 3],
    ids: AHashSet<u64>,
    rev: u64,
}

impl State {
    fn grant(&mut self) -> Grant {
        self.rev += 1;
        loop {
            let id = ids::global();
            if self.ids.insert(id) {
                return Grant { id, rev: self.rev };
            }
        }
    }
}

fn slot(p: MatchPolicy) -> usize {
    match p {
        MatchPolicy::Exact => 0,
        MatchPolicy::Prefix => 1,
        MatchPolicy::Wildcard => 2,
    }
}

const POLICIES: [MatchPolicy; 3] = [
    MatchPolicy::Exact,
    MatchPolicy::Prefix,
    MatchPolicy::Wildcard,
];

/// The in-process authority: a mutex around the maps, taken only on (un)subscribe and (un)register.
#[derive(Default)]
pub struct LocalAuthority {
    state: Mutex<State>,
}

impl LocalAuthority {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Each update is a single insert or remove, so the maps are consistent even if a holder
        // panicked: a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Authority for LocalAuthority {
    fn join_subscription_created(
        &self,
        policy: MatchPolicy,
        uri: &str,
        shard: usize,
    ) -> (Grant, bool) {
        let mut st = self.lock();
        if let Some(info) = st.subs[slot(policy)].get_mut(uri) {
            info.shards |= 1 << shard;
            return (info.grant, false);
        }
        let grant = st.grant();
        st.subs[slot(policy)].insert(
            uri.into(),
            SubInfo {
                grant,
                shards: 1 << shard,
            },
        );
        (grant, true)
    }

    fn leave_subscription(&self, policy: MatchPolicy, uri: &str, shard: usize, id: u64) -> bool {
        let mut st = self.lock();
        let map = &mut st.subs[slot(policy)];
        let retire = match map.get_mut(uri) {
            Some(info) if info.grant.id == id => {
                info.shards &= !(1 << shard);
                info.shards == 0
            }
            _ => false,
        };
        if retire {
            map.remove(uri);
            st.ids.remove(&id);
        }
        retire
    }

    fn register(
        &self,
        policy: MatchPolicy,
        uri: &str,
        shard: usize,
        session: u64,
        invoke: InvokePolicy,
    ) -> Result<Joined, Refusal> {
        let mut st = self.lock();
        if let Some(info) = st.regs[slot(policy)].get_mut(uri) {
            if info.invoke == InvokePolicy::Single || invoke == InvokePolicy::Single {
                return Err(Refusal::Exists);
            }
            if info.invoke != invoke {
                return Err(Refusal::OtherPolicy);
            }
            let order = info.next_order;
            info.next_order += 1;
            info.callees.push((shard, session, order));
            return Ok(Joined {
                grant: info.grant,
                order,
            });
        }
        let grant = st.grant();
        st.regs[slot(policy)].insert(
            uri.into(),
            RegInfo {
                grant,
                invoke,
                callees: vec![(shard, session, 0)],
                next_order: 1,
            },
        );
        Ok(Joined { grant, order: 0 })
    }

    fn unregister_retired(
        &self,
        policy: MatchPolicy,
        uri: &str,
        id: u64,
        session: u64,
    ) -> Option<bool> {
        let mut st = self.lock();
        let map = &mut st.regs[slot(policy)];
        let info = map.get_mut(uri).filter(|r| r.grant.id == id)?;
        let pos = info.callees.iter().position(|c| c.1 == session)?;
        info.callees.remove(pos);
        let retired = info.callees.is_empty();
        if retired {
            map.remove(uri);
            st.ids.remove(&id);
        }
        Some(retired)
    }

    fn snapshot(&self) -> AuthoritySnapshot {
        let st = self.lock();
        let mut snap = AuthoritySnapshot::default();
        for policy in POLICIES {
            for (uri, info) in &st.subs[slot(policy)] {
                snap.subscriptions.push(SubRecord {
                    policy,
                    uri: uri.to_string(),
                    grant: info.grant,
                    shards: info.shards,
                });
            }
            for (uri, info) in &st.regs[slot(policy)] {
                for &(shard, session, _) in &info.callees {
                    snap.registrations.push(RegRecord {
                        policy,
                        uri: uri.to_string(),
                        grant: info.grant,
                        shard,
                        session,
                    });
                }
            }
        }
        snap.subscriptions.sort_by_key(|s| s.grant.id);
        snap.registrations.sort_by_key(|r| (r.grant.id, r.session));
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_ids_are_shared_until_every_shard_leaves() {
        let c = LocalAuthority::default();
        let a = c.join_subscription(MatchPolicy::Exact, "a.b", 0);
        let b = c.join_subscription(MatchPolicy::Exact, "a.b", 1);
        assert_eq!(a, b);
        let p = c.join_subscription(MatchPolicy::Prefix, "a.b", 0);
        assert_ne!(a.id, p.id, "policy is part of a subscription's identity");
        assert!(!c.leave_subscription(MatchPolicy::Exact, "a.b", 0, a.id));
        assert_eq!(c.join_subscription(MatchPolicy::Exact, "a.b", 2), a);
        assert!(!c.leave_subscription(MatchPolicy::Exact, "a.b", 1, a.id));
        assert!(c.leave_subscription(MatchPolicy::Exact, "a.b", 2, a.id));
        let again = c.join_subscription(MatchPolicy::Exact, "a.b", 0);
        assert_ne!(again.id, a.id);
        assert!(
            again.rev > a.rev,
            "a re-created subscription has a newer revision"
        );
    }

    #[test]
    fn leaving_with_a_retired_id_changes_nothing() {
        let c = LocalAuthority::default();
        let old = c.join_subscription(MatchPolicy::Exact, "t", 0);
        assert!(c.leave_subscription(MatchPolicy::Exact, "t", 0, old.id));
        let new = c.join_subscription(MatchPolicy::Exact, "t", 1);
        assert!(!c.leave_subscription(MatchPolicy::Exact, "t", 1, old.id));
        assert_eq!(c.snapshot().subscriptions[0].grant, new);
    }

    const SINGLE: InvokePolicy = InvokePolicy::Single;

    #[test]
    fn one_callee_per_procedure() {
        let c = LocalAuthority::default();
        let g = c
            .register(MatchPolicy::Exact, "p", 0, 7, SINGLE)
            .unwrap()
            .grant;
        assert_eq!(
            c.register(MatchPolicy::Exact, "p", 1, 8, SINGLE),
            Err(Refusal::Exists)
        );
        assert!(c.register(MatchPolicy::Prefix, "p", 1, 8, SINGLE).is_ok());
        assert!(!c.unregister(MatchPolicy::Exact, "p", g.id + 1, 7));
        assert!(!c.unregister(MatchPolicy::Exact, "p", g.id, 8));
        assert!(c.unregister(MatchPolicy::Exact, "p", g.id, 7));
        let g2 = c
            .register(MatchPolicy::Exact, "p", 1, 8, SINGLE)
            .unwrap()
            .grant;
        assert!(g2.rev > g.rev);
        assert_eq!(c.snapshot().registrations.len(), 2);
    }

    #[test]
    fn shared_registrations_keep_one_id_and_registration_order() {
        let c = LocalAuthority::default();
        let rr = InvokePolicy::RoundRobin;
        let a = c.register(MatchPolicy::Exact, "p", 0, 7, rr).unwrap();
        let b = c.register(MatchPolicy::Exact, "p", 1, 8, rr).unwrap();
        assert_eq!(a.grant, b.grant);
        assert!(b.order > a.order);
        assert_eq!(
            c.register(MatchPolicy::Exact, "p", 1, 9, InvokePolicy::First),
            Err(Refusal::OtherPolicy)
        );
        assert_eq!(
            c.register(MatchPolicy::Exact, "p", 1, 9, SINGLE),
            Err(Refusal::Exists)
        );
        assert_eq!(c.snapshot().registrations.len(), 2);
        assert!(c.unregister(MatchPolicy::Exact, "p", a.grant.id, 7));
        let d = c.register(MatchPolicy::Exact, "p", 0, 10, rr).unwrap();
        assert_eq!(d.grant, a.grant, "the id lives while a callee is left");
        assert!(d.order > b.order);
        assert!(c.unregister(MatchPolicy::Exact, "p", a.grant.id, 8));
        assert!(c.unregister(MatchPolicy::Exact, "p", a.grant.id, 10));
        assert!(c.snapshot().registrations.is_empty());
    }
}
