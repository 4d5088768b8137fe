//! Event history: the last N events of configured topic patterns, for `wamp.subscription.get_events`.
//!
//! History is configured per subscription pattern (policy and URI), not per subscription id: ids
//! come and go with subscribers, while the operator knows which topics are worth keeping. A pattern
//! records every publication it matches whether or not anyone is subscribed at the time — the spec's
//! "pre-initialised" history — and `get_events` on a subscription returns the history of exactly the
//! subscription's pattern. Like retention the store is realm-wide behind locks, because the
//! publisher and the asker may sit on any shards; the plain publish path of a realm without
//! history pays one emptiness check, and a publication on a topic outside every history pattern
//! one lookup in a small immutable trie. Publications the router makes (meta events, testaments)
//! are recorded by the same step, so a history pattern sees every publication on its topics.
//!
//! The patterns come from the flag, `[router] event_history` and the realm's `[[realm.history]]`
//! tables; a reload builds new stores that share the rings of kept patterns with the old ones, so
//! their events survive and shards not yet switched over keep recording into the same rings.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::config::HistorySpec;
use crate::protocol::uri::MatchPolicy;
use crate::protocol::{Serializer, Val};
use crate::router::filter::EventFilter;
use crate::router::session::Identity;
use crate::router::trie::UriTrie;
use crate::router::wire::{AppPayload, EventDetails};

/// Payload bytes one pattern keeps at most, whatever its event count: N events of the largest
/// message size would otherwise pin N × 16 MiB.
pub const MAX_BYTES_PER_PATTERN: usize = 64 << 20;

/// The time a publication is stored with: wall-clock milliseconds, the precision `get_events`
/// writes, so that a timestamp read from it selects exactly that event again.
pub fn now_ms() -> SystemTime {
    let since = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(since.as_millis() as u64)
}

/// One stored publication.
#[derive(Debug)]
pub struct Stored {
    pub at: SystemTime,
    pub publication: u64,
    pub topic: Arc<str>,
    pub ser: Serializer,
    pub payload: AppPayload,
    /// Details decided at publication (publisher disclosure).
    pub details: Option<Arc<EventDetails>>,
    /// authid/authrole listing; publications listing session ids are never stored.
    pub filter: Option<Arc<EventFilter>>,
}

impl Stored {
    fn size(&self) -> usize {
        let len = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, |b| b.len());
        len(&self.payload.args) + len(&self.payload.kwargs) + self.topic.len()
    }

    /// True if `who` (the asker) passes the publisher's authid/authrole lists.
    pub fn visible_to(&self, session: u64, who: &Identity) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| f.admits(session, Some(who)))
    }
}

/// The bounded history of one pattern, oldest first.
#[derive(Debug, Default)]
struct Ring {
    limit: usize,
    bytes: usize,
    events: VecDeque<Arc<Stored>>,
}

impl Ring {
    fn push(&mut self, ev: Arc<Stored>) {
        self.bytes += ev.size();
        self.events.push_back(ev);
        self.trim();
    }

    /// Drops the oldest events beyond the limits.
    fn trim(&mut self) {
        while self.events.len() > self.limit || self.bytes > MAX_BYTES_PER_PATTERN {
            let Some(old) = self.events.pop_front() else {
                break;
            };
            self.bytes -= old.size();
        }
    }
}

/// One realm's event history.
#[derive(Default)]
pub struct HistoryStore {
    /// (policy, pattern) → index into `rings`; built once, read without a lock.
    patterns: UriTrie<usize>,
    /// Shared with the store a reload builds, so that a pattern kept across it keeps its events
    /// and shards still on the old store record into the same ring meanwhile.
    rings: Vec<Arc<Mutex<Ring>>>,
}

/// Every realm's history, by realm index: each shard holds it (no lock to find a realm's store),
/// and a reload hands every shard a new one.
pub type Histories = Arc<Vec<HistoryStore>>;

impl HistoryStore {
    /// A store keeping what `specs` configure.
    pub fn new(specs: &[HistorySpec]) -> Self {
        Self::carrying(specs, &HistoryStore::default())
    }

    /// A store keeping what `specs` configure, in which a pattern `old` kept too keeps its events
    /// (cut to its new limit); patterns `old` had and `specs` lack are left behind with it.
    pub fn carrying(specs: &[HistorySpec], old: &HistoryStore) -> Self {
        let mut s = HistoryStore::default();
        for spec in specs {
            match s.patterns.get(spec.policy, &spec.pattern) {
                // The same pattern named twice: the later limit wins.
                Some(&i) => lock(&s.rings[i]).limit = spec.limit,
                None => {
                    let ring = match old.patterns.get(spec.policy, &spec.pattern) {
                        Some(&i) => old.rings[i].clone(),
                        None => Arc::new(Mutex::new(Ring::default())),
                    };
                    lock(&ring).limit = spec.limit;
                    s.patterns.insert(spec.policy, &spec.pattern, s.rings.len());
                    s.rings.push(ring);
                }
            }
        }
        for ring in &s.rings {
            lock(ring).trim();
        }
        s
    }

    /// True when no pattern keeps history (the publish path then does nothing more).
    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
    }

    /// Records a publication on `topic` (published with `options`) in every pattern matching it;
    /// `make` runs only if one does. A publication listing session ids (`exclude`, `eligible`) is
    /// not kept: the spec forbids storing what depends on ephemeral session ids.
    pub fn keep(&self, topic: &str, options: &Val<'_>, make: impl FnOnce() -> Stored) {
        if self.is_empty() {
            return;
        }
        let listed = |k: &str| options.get(k).is_some_and(|v| !v.is_null());
        self.record(topic, || {
            (!listed("exclude") && !listed("eligible")).then(make)
        });
    }

    /// True when a pattern of this store matches `topic`: a publication nobody is subscribed to
    /// must still be made for the history.
    pub fn wants(&self, topic: &str) -> bool {
        let mut hit = false;
        if !self.is_empty() {
            self.patterns.for_each_match(topic, |_, _, _| hit = true);
        }
        hit
    }

    /// Records what `make` builds (if anything) in every pattern matching `topic`; `make` runs only
    /// if one does.
    pub fn record(&self, topic: &str, make: impl FnOnce() -> Option<Stored>) {
        let mut hit: smallvec::SmallVec<[usize; 4]> = smallvec::SmallVec::new();
        self.patterns.for_each_match(topic, |_, _, &i| hit.push(i));
        if hit.is_empty() {
            return;
        }
        let Some(ev) = make() else { return };
        let ev = Arc::new(ev);
        for i in hit {
            lock(&self.rings[i]).push(ev.clone());
        }
    }

    /// The history kept for the subscription pattern (policy, uri), oldest first; None when that
    /// pattern keeps none.
    pub fn events(&self, policy: MatchPolicy, uri: &str) -> Option<Vec<Arc<Stored>>> {
        let &i = self.patterns.get(policy, uri)?;
        Some(lock(&self.rings[i]).events.iter().cloned().collect())
    }
}

fn lock(m: &Mutex<Ring>) -> MutexGuard<'_, Ring> {
    // A push either completes or leaves the ring with a stale byte count only; keep using it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(policy: MatchPolicy, pattern: &str, limit: usize) -> HistorySpec {
        HistorySpec {
            policy,
            pattern: pattern.into(),
            limit,
        }
    }

    fn stored(topic: &str, publication: u64, bytes: usize) -> Stored {
        Stored {
            at: SystemTime::now(),
            publication,
            topic: Arc::from(topic),
            ser: Serializer::Json,
            payload: AppPayload {
                args: Some(bytes::Bytes::from(vec![b' '; bytes])),
                kwargs: None,
                ppt: None,
            },
            details: None,
            filter: None,
        }
    }

    fn pubs(s: &HistoryStore, policy: MatchPolicy, uri: &str) -> Vec<u64> {
        s.events(policy, uri)
            .expect("kept")
            .iter()
            .map(|e| e.publication)
            .collect()
    }

    /// The spec's example: exact subscriptions keep their topic, the prefix one keeps everything.
    #[test]
    fn each_pattern_keeps_what_it_matches() {
        let s = HistoryStore::new(&[
            spec(MatchPolicy::Exact, "com.mycompany.log.auth", 10),
            spec(MatchPolicy::Exact, "com.mycompany.log.basket", 10),
            spec(MatchPolicy::Prefix, "com.mycompany.log", 10),
        ]);
        let topics = ["auth", "basket", "basket", "basket", "checkout"];
        for (i, t) in topics.iter().enumerate() {
            let topic = format!("com.mycompany.log.{t}");
            s.record(&topic, || Some(stored(&topic, i as u64 + 1, 1)));
        }
        assert_eq!(pubs(&s, MatchPolicy::Exact, "com.mycompany.log.auth"), [1]);
        assert_eq!(
            pubs(&s, MatchPolicy::Exact, "com.mycompany.log.basket"),
            [2, 3, 4]
        );
        assert_eq!(
            pubs(&s, MatchPolicy::Prefix, "com.mycompany.log"),
            [1, 2, 3, 4, 5]
        );
        assert!(s.events(MatchPolicy::Exact, "com.mycompany.log").is_none());
    }

    #[test]
    fn only_the_last_n_and_bounded_bytes_stay() {
        let s = HistoryStore::new(&[spec(MatchPolicy::Wildcard, "a..c", 3)]);
        let mut made = 0;
        for p in 1..=10 {
            s.record("a.b.c", || {
                made += 1;
                Some(stored("a.b.c", p, 1))
            });
        }
        s.record("a.b.d", || unreachable!("no pattern matches"));
        let listed = Val::Dict(vec![("exclude".into(), Val::List(vec![Val::UInt(1)]))]);
        s.keep("a.b.c", &listed, || {
            unreachable!("session lists are not kept")
        });
        assert_eq!(made, 10);
        assert_eq!(pubs(&s, MatchPolicy::Wildcard, "a..c"), [8, 9, 10]);

        let big = HistoryStore::new(&[spec(MatchPolicy::Exact, "t", 1000)]);
        for p in 1..=5 {
            big.record("t", || Some(stored("t", p, MAX_BYTES_PER_PATTERN / 2)));
        }
        assert_eq!(
            pubs(&big, MatchPolicy::Exact, "t"),
            [5],
            "two halves plus the topic exceed the cap"
        );
    }

    /// A reload: a kept pattern keeps its events (cut to a smaller limit), a dropped one is gone,
    /// a new one starts empty; a shard still holding the old store records into the kept ring.
    #[test]
    fn carrying_keeps_the_events_of_kept_patterns() {
        let old = HistoryStore::new(&[
            spec(MatchPolicy::Exact, "keep", 10),
            spec(MatchPolicy::Exact, "drop", 10),
        ]);
        for p in 1..=4 {
            old.record("keep", || Some(stored("keep", p, 1)));
            old.record("drop", || Some(stored("drop", p, 1)));
        }
        let new = HistoryStore::carrying(
            &[
                spec(MatchPolicy::Exact, "keep", 3),
                spec(MatchPolicy::Prefix, "fresh", 5),
            ],
            &old,
        );
        assert_eq!(pubs(&new, MatchPolicy::Exact, "keep"), [2, 3, 4]);
        assert!(new.events(MatchPolicy::Exact, "drop").is_none());
        assert!(pubs(&new, MatchPolicy::Prefix, "fresh").is_empty());
        old.record("keep", || Some(stored("keep", 5, 1)));
        assert_eq!(pubs(&new, MatchPolicy::Exact, "keep"), [3, 4, 5]);
        assert!(new.wants("fresh.x") && new.wants("keep") && !new.wants("drop"));
    }
}
