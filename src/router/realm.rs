//! Realms and the one piece of routing state that all shards share.
//!
//! Where routing state lives: every shard holds a full *replica* of each realm's subscription and
//! registration tables (see `broker.rs`, `dealer.rs`), so PUBLISH and CALL are routed from the shard the
//! publisher or caller sits on, reading only thread-local memory: no lock, no atomic, on the hot path.
//! Replicas change by control messages over the shard mesh, applied in the order each shard sent them.
//!
//! What cannot be replicated is *identity*: all subscribers of one (policy, topic) must share one
//! subscription id (so an EVENT's bytes are the same for all of them), and a procedure may have one
//! callee. Those decisions are made by the realm's [`Authority`] (`authority.rs`), only on SUBSCRIBE, UNSUBSCRIBE,
//! REGISTER and UNREGISTER — and for SUBSCRIBE only when a shard gains or loses its first local
//! subscriber. A reply (SUBSCRIBED, REGISTERED) is sent only once every shard has applied the change,
//! so a client that is told "subscribed" can rely on events published from any shard reaching it.

use std::sync::{Arc, Mutex};

use crate::config::HistorySpec;
use crate::router::authority::{Authority, LocalAuthority};
use crate::router::history::{Histories, HistoryStore};
use crate::router::retention::RetainedStore;

/// The realms of a router and their shared control state.
pub struct Realms {
    names: Vec<Arc<str>>,
    authorities: Vec<Box<dyn Authority>>,
    retained: Vec<RetainedStore>,
    /// The history in force: each shard keeps its own handle (see [`Histories`]); this one is what
    /// new shards start with and what a reload carries events over from.
    history: Mutex<Histories>,
}

impl Realms {
    /// The given realms, in order (a realm's index is its identity inside the router).
    pub fn new(names: &[String]) -> Self {
        Realms {
            names: names.iter().map(|n| Arc::from(n.as_str())).collect(),
            authorities: names
                .iter()
                .map(|_| Box::new(LocalAuthority::default()) as Box<dyn Authority>)
                .collect(),
            retained: names.iter().map(|_| RetainedStore::default()).collect(),
            history: Mutex::new(Arc::new(
                names.iter().map(|_| HistoryStore::default()).collect(),
            )),
        }
    }

    /// Keeps the event history `specs(realm name)` configures in each realm.
    pub fn with_history(self, specs: impl Fn(&str) -> Vec<HistorySpec>) -> Self {
        self.replace_history(specs);
        self
    }

    /// Makes `specs(realm name)` each realm's history from now on, carrying over the events of
    /// patterns kept; returns it for the shards to take up.
    pub fn replace_history(&self, specs: impl Fn(&str) -> Vec<HistorySpec>) -> Histories {
        let mut current = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let next: Histories = Arc::new(
            self.names
                .iter()
                .zip(current.iter())
                .map(|(name, old)| HistoryStore::carrying(&specs(name), old))
                .collect(),
        );
        *current = next.clone();
        next
    }

    /// The history in force, for a shard starting up.
    pub fn histories(&self) -> Histories {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

    /// The authority of realm `idx`: consulted on (un)subscribe and (un)register, never while
    /// routing a PUBLISH or CALL.
    pub fn authority(&self, idx: usize) -> &dyn Authority {
        &*self.authorities[idx]
    }

    /// The retained events of realm `idx`: touched by `retain` publications and `get_retained`
    /// subscriptions only.
    pub fn retained(&self, idx: usize) -> &RetainedStore {
        &self.retained[idx]
    }
}
