//! Event retention: the last event published with `retain` on each topic, for subscribers that
//! join later and ask for it (`get_retained`).
//!
//! The store is realm-wide — a retained event must reach a late subscriber whichever shard either
//! of them is on — so it sits behind a lock next to the realm's authority. The lock is taken only by
//! a PUBLISH with `retain` and a SUBSCRIBE with `get_retained`, never on the plain publish path. The
//! payload is kept as the publisher's raw spans with their serializer, so an EVENT can be built from
//! it for a subscriber of any serializer, exactly as for a live publication.

use std::sync::{Arc, Mutex, MutexGuard};

use ahash::AHashMap;

use crate::protocol::uri::MatchPolicy;
use crate::protocol::Serializer;
use crate::router::filter::EventFilter;
use crate::router::session::Identity;
use crate::router::wire::{AppPayload, EventDetails};

/// Topics one realm retains an event for at most; a retain on a further topic is declined (the
/// spec lets a broker decline), so a publisher cannot grow the router's memory without bound.
pub const MAX_RETAINED_TOPICS: usize = 100_000;

/// Payload bytes one realm retains at most, for the same reason.
pub const MAX_RETAINED_BYTES: usize = 256 << 20;

/// A retained publication, with what decides who may receive it.
#[derive(Debug)]
pub struct Retained {
    pub publication: u64,
    pub topic: Arc<str>,
    pub ser: Serializer,
    pub payload: AppPayload,
    /// Details decided at publication (publisher disclosure).
    pub details: Option<Arc<EventDetails>>,
    /// The publisher, when it excluded itself (`exclude_me`); 0 otherwise.
    pub exclude: u64,
    pub filter: Option<Arc<EventFilter>>,
}

impl Retained {
    /// Payload bytes this event holds.
    pub fn size(&self) -> usize {
        let len = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, |b| b.len());
        len(&self.payload.args) + len(&self.payload.kwargs) + self.topic.len()
    }

    /// True if a subscriber would have received this event had it been subscribed when it was
    /// published: the spec forbids handing a retained event to anyone else.
    pub fn eligible(&self, session: u64, who: &Identity) -> bool {
        session != self.exclude
            && self
                .filter
                .as_ref()
                .is_none_or(|f| f.admits(session, Some(who)))
    }

    /// The Details a late subscriber gets: those of the publication, marked retained.
    pub fn delivery_details(&self) -> Arc<EventDetails> {
        let mut d = self.details.as_deref().cloned().unwrap_or_default();
        d.retained = true;
        Arc::new(d)
    }
}

/// One realm's retained events, by topic.
#[derive(Default)]
pub struct RetainedStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    events: AHashMap<Arc<str>, Arc<Retained>>,
    bytes: usize,
}

impl RetainedStore {
    /// Makes `event` its topic's retained event; false if declined (the store is full).
    pub fn retain(&self, event: Retained) -> bool {
        let mut st = self.lock();
        let old = st.events.get(&event.topic).map_or(0, |e| e.size());
        let full_topics = old == 0 && st.events.len() >= MAX_RETAINED_TOPICS;
        if full_topics || st.bytes - old + event.size() > MAX_RETAINED_BYTES {
            return false;
        }
        st.bytes = st.bytes - old + event.size();
        st.events.insert(event.topic.clone(), Arc::new(event));
        true
    }

    /// The retained events of every topic the subscription (policy, pattern) matches.
    pub fn matching(&self, policy: MatchPolicy, pattern: &str) -> Vec<Arc<Retained>> {
        let st = self.lock();
        let events = &st.events;
        if policy == MatchPolicy::Exact {
            return events.get(pattern).cloned().into_iter().collect();
        }
        events
            .iter()
            .filter(|(topic, _)| pattern_matches(policy, pattern, topic))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Number of topics with a retained event.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// True when nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated (arithmetic is checked
        // before the insert).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// WAMP pattern matching of one topic: prefix is a plain string prefix; a wildcard pattern has as
/// many components as the topic, and its empty components match any component.
pub fn pattern_matches(policy: MatchPolicy, pattern: &str, topic: &str) -> bool {
    match policy {
        MatchPolicy::Exact => pattern == topic,
        MatchPolicy::Prefix => topic.starts_with(pattern),
        MatchPolicy::Wildcard => {
            let mut p = pattern.split('.');
            let mut t = topic.split('.');
            loop {
                match (p.next(), t.next()) {
                    (None, None) => return true,
                    (Some(a), Some(b)) if a.is_empty() || a == b => {}
                    _ => return false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(topic: &str, publication: u64) -> Retained {
        Retained {
            publication,
            topic: Arc::from(topic),
            ser: Serializer::Json,
            payload: AppPayload::default(),
            details: None,
            exclude: 0,
            filter: None,
        }
    }

    #[test]
    fn the_latest_retain_per_topic_wins() {
        let s = RetainedStore::default();
        assert!(s.retain(event("a.b", 1)));
        assert!(s.retain(event("a.b", 2)));
        assert!(s.retain(event("a.c", 3)));
        let got = s.matching(MatchPolicy::Exact, "a.b");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].publication, 2);
        let mut pubs: Vec<u64> = s
            .matching(MatchPolicy::Prefix, "a.")
            .iter()
            .map(|e| e.publication)
            .collect();
        pubs.sort();
        assert_eq!(pubs, vec![2, 3]);
        assert_eq!(s.matching(MatchPolicy::Wildcard, ".c").len(), 1);
        assert!(s.matching(MatchPolicy::Wildcard, "a").is_empty());
    }

    #[test]
    fn wildcard_and_prefix_rules() {
        use MatchPolicy::*;
        assert!(pattern_matches(Wildcard, "a..c", "a.b.c"));
        assert!(!pattern_matches(Wildcard, "a..c", "a.b.c.d"));
        assert!(!pattern_matches(Wildcard, "a..c", "a.b"));
        assert!(pattern_matches(Prefix, "a.b", "a.bc"));
        assert!(!pattern_matches(Exact, "a.b", "a.bc"));
    }

    #[test]
    fn the_publisher_that_excluded_itself_does_not_get_it() {
        let mut e = event("t", 1);
        e.exclude = 7;
        let who = Identity::anonymous(7, "anonymous");
        assert!(!e.eligible(7, &who));
        assert!(e.eligible(8, &who));
        assert!(e.delivery_details().retained);
    }
}
