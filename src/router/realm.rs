//! Realms and the one piece of routing state that all shards share.
//!
//! Where routing state lives: every shard holds a full *replica* of each realm's subscription and
//! registration tables (see `broker.rs`, `dealer.rs`), so PUBLISH and CALL are routed from the shard the
//! publisher or caller sits on, reading only thread-local memory: no lock, no atomic, on the hot path.
//! Replicas change by control messages over the shard mesh, applied in the order each shard sent them.
//!
//! What cannot be replicated is *identity*: all subscribers of one (policy, topic) must share one
//! subscription id (so an EVENT's bytes are the same for all of them), and a procedure may have one
//! callee. Those decisions are made here, under a per-realm mutex, only on SUBSCRIBE, UNSUBSCRIBE,
//! REGISTER and UNREGISTER — and for SUBSCRIBE only when a shard gains or loses its first local
//! subscriber. A reply (SUBSCRIBED, REGISTERED) is sent only once every shard has applied the change,
//! so a client that is told "subscribed" can rely on events published from any shard reaching it.

use std::sync::{Arc, Mutex, MutexGuard};

use ahash::{AHashMap, AHashSet};

use crate::protocol::uri::MatchPolicy;
use crate::router::ids;

/// A subscription's identity and which shards have local subscribers for it.
#[derive(Debug)]
pub struct SubInfo {
    pub id: u64,
    /// Bit `s` set: shard `s` has at least one local subscriber.
    pub shards: u64,
}

/// A registration's identity and its callee.
#[derive(Debug)]
pub struct RegInfo {
    pub id: u64,
    pub shard: usize,
    pub session: u64,
}

/// The per-realm authority over subscription and registration identity.
#[derive(Default)]
pub struct Control {
    subs: [AHashMap<Box<str>, SubInfo>; 3],
    regs: [AHashMap<Box<str>, RegInfo>; 3],
    ids: AHashSet<u64>,
}

fn slot(p: MatchPolicy) -> usize {
    match p {
        MatchPolicy::Exact => 0,
        MatchPolicy::Prefix => 1,
        MatchPolicy::Wildcard => 2,
    }
}

impl Control {
    fn fresh_id(&mut self) -> u64 {
        loop {
            let id = ids::global();
            if self.ids.insert(id) {
                return id;
            }
        }
    }

    /// Records that `shard` now has subscribers for (policy, uri); returns the subscription id.
    pub fn join_subscription(&mut self, policy: MatchPolicy, uri: &str, shard: usize) -> u64 {
        if let Some(info) = self.subs[slot(policy)].get_mut(uri) {
            info.shards |= 1 << shard;
            return info.id;
        }
        let id = self.fresh_id();
        self.subs[slot(policy)].insert(
            uri.into(),
            SubInfo {
                id,
                shards: 1 << shard,
            },
        );
        id
    }

    /// Records that `shard` has no subscribers left for (policy, uri); retires the id when no shard has.
    pub fn leave_subscription(&mut self, policy: MatchPolicy, uri: &str, shard: usize, id: u64) {
        let map = &mut self.subs[slot(policy)];
        let retire = match map.get_mut(uri) {
            Some(info) if info.id == id => {
                info.shards &= !(1 << shard);
                info.shards == 0
            }
            _ => false,
        };
        if retire {
            map.remove(uri);
            self.ids.remove(&id);
        }
    }

    /// Makes `session` on `shard` the callee of (policy, uri); None if the procedure is taken.
    pub fn register(
        &mut self,
        policy: MatchPolicy,
        uri: &str,
        shard: usize,
        session: u64,
    ) -> Option<u64> {
        if self.regs[slot(policy)].contains_key(uri) {
            return None;
        }
        let id = self.fresh_id();
        self.regs[slot(policy)].insert(uri.into(), RegInfo { id, shard, session });
        Some(id)
    }

    /// Removes registration `id` of (policy, uri).
    pub fn unregister(&mut self, policy: MatchPolicy, uri: &str, id: u64) {
        let map = &mut self.regs[slot(policy)];
        if map.get(uri).is_some_and(|r| r.id == id) {
            map.remove(uri);
            self.ids.remove(&id);
        }
    }
}

/// The realms of a router and their shared control state.
pub struct Realms {
    names: Vec<Arc<str>>,
    control: Vec<Mutex<Control>>,
}

impl Realms {
    /// The given realms, in order (a realm's index is its identity inside the router).
    pub fn new(names: &[String]) -> Self {
        Realms {
            names: names.iter().map(|n| Arc::from(n.as_str())).collect(),
            control: names.iter().map(|_| Mutex::default()).collect(),
        }
    }

    /// Index of realm `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| &**n == name)
    }

    /// Name of realm `idx`.
    pub fn name(&self, idx: usize) -> &Arc<str> {
        &self.names[idx]
    }

    /// Number of realms.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no realms.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The control state of realm `idx`. Held only for a map update, never across an await.
    pub fn control(&self, idx: usize) -> MutexGuard<'_, Control> {
        // A panic while holding the lock leaves maps that are still consistent (each update is one
        // insert or remove), so a poisoned lock is safe to keep using.
        self.control[idx]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_ids_are_shared_until_every_shard_leaves() {
        let mut c = Control::default();
        let a = c.join_subscription(MatchPolicy::Exact, "a.b", 0);
        let b = c.join_subscription(MatchPolicy::Exact, "a.b", 1);
        assert_eq!(a, b);
        let p = c.join_subscription(MatchPolicy::Prefix, "a.b", 0);
        assert_ne!(a, p, "policy is part of a subscription's identity");
        c.leave_subscription(MatchPolicy::Exact, "a.b", 0, a);
        assert_eq!(c.join_subscription(MatchPolicy::Exact, "a.b", 2), a);
        c.leave_subscription(MatchPolicy::Exact, "a.b", 1, a);
        c.leave_subscription(MatchPolicy::Exact, "a.b", 2, a);
        assert_ne!(c.join_subscription(MatchPolicy::Exact, "a.b", 0), a);
    }

    #[test]
    fn one_callee_per_procedure() {
        let mut c = Control::default();
        let id = c.register(MatchPolicy::Exact, "p", 0, 7).unwrap();
        assert!(c.register(MatchPolicy::Exact, "p", 1, 8).is_none());
        assert!(c.register(MatchPolicy::Prefix, "p", 1, 8).is_some());
        c.unregister(MatchPolicy::Exact, "p", id);
        assert!(c.register(MatchPolicy::Exact, "p", 1, 8).is_some());
    }
}
