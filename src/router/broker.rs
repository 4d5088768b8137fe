//! The Broker: subscriptions and the PUBLISH → EVENT path.
//!
//! Each shard keeps a replica of a realm's subscriptions: the trie maps (policy, pattern) to a
//! subscription id, and each subscription knows its *local* subscribers (sessions on this shard) and a
//! bit mask of the *other* shards that have subscribers. A PUBLISH is matched once on the publisher's
//! shard; local subscribers get the shared EVENT frame directly, every interested shard gets one
//! reference to the same [`EventFrames`] over the mesh and fans it out to its own subscribers.

use std::rc::Rc;
use std::sync::Arc;

use ahash::AHashMap;
use smallvec::SmallVec;

use crate::protocol::codes;
use crate::protocol::errors;
use crate::protocol::uri::{self, MatchPolicy};
use crate::protocol::{Message, Val};
use crate::router::session::Peer;
use crate::router::trie::UriTrie;
use crate::router::wire::{AppPayload, EventFrames};
use crate::router::{ids, Flow, Router, ShardMsg};

/// One subscription as seen from one shard.
pub struct Subscription {
    pub id: u64,
    pub policy: MatchPolicy,
    pub uri: Arc<str>,
    /// Bit `s`: shard `s` (never this one) has subscribers.
    pub remote: u64,
    /// Subscribers on this shard.
    pub local: Vec<Rc<Peer>>,
    /// Barrier token of the update announcing this shard's interest, while other shards apply it.
    pub barrier: u64,
}

/// A shard's replica of one realm's subscriptions.
#[derive(Default)]
pub struct Broker {
    trie: UriTrie<u64>,
    subs: AHashMap<u64, Subscription>,
}

impl Broker {
    /// The subscription for (policy, uri) if this shard already has local subscribers for it.
    pub fn local_id(&self, policy: MatchPolicy, uri: &str) -> Option<u64> {
        let id = *self.trie.get(policy, uri)?;
        self.subs
            .get(&id)
            .filter(|s| !s.local.is_empty())
            .map(|s| s.id)
    }

    /// The subscription `id`.
    pub fn get(&self, id: u64) -> Option<&Subscription> {
        self.subs.get(&id)
    }

    /// Mutable access to subscription `id`.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Subscription> {
        self.subs.get_mut(&id)
    }

    /// Adds a local subscriber. A replica entry left under an older id for the same pattern (its
    /// retirement still in flight from another shard) is replaced: the authority has moved on.
    pub fn add_local(&mut self, id: u64, policy: MatchPolicy, uri: &Arc<str>, peer: Rc<Peer>) {
        self.ensure(id, policy, uri);
        if let Some(s) = self.subs.get_mut(&id) {
            s.local.push(peer);
        }
    }

    /// Removes a local subscriber; returns (policy, uri) when the shard has none left for `id`.
    pub fn remove_local(&mut self, id: u64, session: u64) -> Option<(MatchPolicy, Arc<str>)> {
        let s = self.subs.get_mut(&id)?;
        let pos = s.local.iter().position(|p| p.id.get() == session)?;
        s.local.swap_remove(pos);
        if !s.local.is_empty() {
            return None;
        }
        let out = (s.policy, s.uri.clone());
        self.prune(id);
        Some(out)
    }

    /// Applies another shard's change of interest.
    pub fn set_remote(
        &mut self,
        id: u64,
        policy: MatchPolicy,
        uri: &Arc<str>,
        shard: usize,
        add: bool,
    ) {
        if add {
            self.ensure(id, policy, uri);
            if let Some(s) = self.subs.get_mut(&id) {
                s.remote |= 1 << shard;
            }
        } else if let Some(s) = self.subs.get_mut(&id) {
            s.remote &= !(1 << shard);
            self.prune(id);
        }
    }

    /// Calls `f` for every subscription matching `topic`.
    pub fn matches(&self, topic: &str, out: &mut SmallVec<[(u64, MatchPolicy); 8]>) {
        self.trie
            .for_each_match(topic, |policy, _, &id| out.push((id, policy)));
    }

    /// Number of subscriptions in this replica.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// True when the replica holds no subscription.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    fn ensure(&mut self, id: u64, policy: MatchPolicy, uri: &Arc<str>) {
        match self.trie.get(policy, uri).copied() {
            Some(old) if old == id => return,
            Some(old) => {
                // The old id was retired by the authority; its subscribers are gone everywhere.
                self.subs.remove(&old);
            }
            None => {}
        }
        self.trie.insert(policy, uri, id);
        self.subs.insert(
            id,
            Subscription {
                id,
                policy,
                uri: uri.clone(),
                remote: 0,
                local: Vec::new(),
                barrier: 0,
            },
        );
    }

    fn prune(&mut self, id: u64) {
        let Some(s) = self.subs.get(&id) else { return };
        if s.local.is_empty() && s.remote == 0 {
            let (policy, uri) = (s.policy, s.uri.clone());
            self.subs.remove(&id);
            if self.trie.get(policy, &uri) == Some(&id) {
                self.trie.remove(policy, &uri);
            }
        }
    }
}

impl Router {
    /// SUBSCRIBE: join or create the subscription for (policy, topic).
    pub(crate) fn on_subscribe(
        &mut self,
        sid: u64,
        request: u64,
        options: &Val<'_>,
        topic: &str,
    ) -> Flow {
        let Some(policy) = self.match_policy(sid, codes::SUBSCRIBE, request, options) else {
            return Flow::Continue;
        };
        if !uri::is_valid_pattern(topic, policy, false) || topic.len() > self.limits.max_uri_len {
            self.reply_error(sid, codes::SUBSCRIBE, request, errors::INVALID_URI);
            return Flow::Continue;
        }
        let Some(session) = self.sessions.get(&sid) else {
            return Flow::Continue;
        };
        if session.subscriptions.len() >= self.limits.max_subscriptions {
            self.reply_error(sid, codes::SUBSCRIBE, request, errors::UNAVAILABLE);
            return Flow::Continue;
        }
        let (realm, peer) = (session.realm, session.peer.clone());
        let broker = &mut self.local[realm].broker;

        // Another session on this shard already holds it: join, reply once the announcement (if one
        // is still in flight) has reached every shard.
        if let Some(id) = broker.local_id(policy, topic) {
            let session = self.sessions.get_mut(&sid).expect("checked above");
            if !session.subscriptions.contains(&id) {
                session.subscriptions.push(id);
                let uri = broker.get(id).map(|s| s.uri.clone()).expect("local_id");
                broker.add_local(id, policy, &uri, peer.clone());
            }
            let barrier = broker.get(id).map_or(0, |s| s.barrier);
            let reply = Message::Subscribed {
                request,
                subscription: id,
            };
            self.reply_after(barrier, &peer, &reply);
            return Flow::Continue;
        }

        // First local subscriber: the realm authority names the subscription; every shard learns
        // that this shard is interested before the client is told it is subscribed.
        let id = self
            .realms
            .control(realm)
            .join_subscription(policy, topic, self.shard);
        let uri: Arc<str> = Arc::from(topic);
        self.local[realm]
            .broker
            .add_local(id, policy, &uri, peer.clone());
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.subscriptions.push(id);
        }
        let token = self.broadcast(|token| ShardMsg::SubUpdate {
            realm,
            id,
            policy,
            uri: uri.clone(),
            add: true,
            token,
        });
        if let Some(s) = self.local[realm].broker.get_mut(id) {
            s.barrier = token;
        }
        let reply = Message::Subscribed {
            request,
            subscription: id,
        };
        self.reply_after(token, &peer, &reply);
        Flow::Continue
    }

    /// UNSUBSCRIBE.
    pub(crate) fn on_unsubscribe(&mut self, sid: u64, request: u64, subscription: u64) -> Flow {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return Flow::Continue;
        };
        let Some(pos) = session
            .subscriptions
            .iter()
            .position(|&s| s == subscription)
        else {
            self.reply_error(
                sid,
                codes::UNSUBSCRIBE,
                request,
                errors::NO_SUCH_SUBSCRIPTION,
            );
            return Flow::Continue;
        };
        session.subscriptions.swap_remove(pos);
        let realm = session.realm;
        self.drop_subscriber(realm, subscription, sid);
        self.reply(
            sid,
            &Message::Unsubscribed {
                request,
                details: None,
            },
        );
        Flow::Continue
    }

    /// Removes `sid` from subscription `id`; tells the realm and the other shards when this shard has
    /// no subscriber left.
    pub(crate) fn drop_subscriber(&mut self, realm: usize, id: u64, sid: u64) {
        let Some((policy, uri)) = self.local[realm].broker.remove_local(id, sid) else {
            return;
        };
        self.realms
            .control(realm)
            .leave_subscription(policy, &uri, self.shard, id);
        self.broadcast_no_ack(|| ShardMsg::SubUpdate {
            realm,
            id,
            policy,
            uri: uri.clone(),
            add: false,
            token: 0,
        });
    }

    /// PUBLISH: match once, build each EVENT at most once per encoding, fan out locally and to every
    /// interested shard.
    pub(crate) fn on_publish(
        &mut self,
        sid: u64,
        request: u64,
        options: &Val<'_>,
        topic: &str,
        payload: AppPayload,
    ) -> Flow {
        let acknowledge = options
            .get("acknowledge")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if !uri::is_valid_uri(topic, false) || topic.len() > self.limits.max_uri_len {
            if acknowledge {
                self.reply_error(sid, codes::PUBLISH, request, errors::INVALID_URI);
            }
            return Flow::Continue;
        }
        let exclude_me = options
            .get("exclude_me")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        let Some(session) = self.sessions.get(&sid) else {
            return Flow::Continue;
        };
        let (realm, ser) = (session.realm, session.peer.enc.ser);
        let exclude = if exclude_me { sid } else { 0 };
        let publication = ids::global();

        let mut matched = SmallVec::new();
        self.local[realm].broker.matches(topic, &mut matched);
        let mut concrete: Option<Arc<str>> = None;
        for (id, policy) in matched {
            // Pattern-based subscribers are told the concrete topic in Details.
            let topic_detail = (policy != MatchPolicy::Exact)
                .then(|| concrete.get_or_insert_with(|| Arc::from(topic)).clone());
            let frames = Arc::new(EventFrames::new(
                id,
                publication,
                topic_detail,
                ser,
                payload.clone(),
            ));
            let remote = self.deliver_event(realm, id, exclude, &frames);
            for shard in bits(remote) {
                self.out.send(
                    shard,
                    ShardMsg::Event {
                        realm,
                        subscription: id,
                        exclude,
                        frames: frames.clone(),
                    },
                );
            }
        }
        if acknowledge {
            self.reply(
                sid,
                &Message::Published {
                    request,
                    publication,
                },
            );
        }
        Flow::Continue
    }

    /// Queues the EVENT to this shard's subscribers of `id`; returns the mask of other shards with
    /// subscribers.
    pub(crate) fn deliver_event(
        &self,
        realm: usize,
        id: u64,
        exclude: u64,
        frames: &EventFrames,
    ) -> u64 {
        let Some(sub) = self.local[realm].broker.get(id) else {
            return 0;
        };
        for peer in &sub.local {
            if peer.id.get() == exclude {
                continue;
            }
            if let Some(frame) = frames.get(peer.enc) {
                self.push_event(peer, frame);
            }
        }
        sub.remote
    }
}

/// The shard numbers set in `mask`.
pub(crate) fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let s = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_lists_shards() {
        assert_eq!(bits(0b1010_0001).collect::<Vec<_>>(), vec![0, 5, 7]);
        assert_eq!(bits(0).count(), 0);
    }
}
