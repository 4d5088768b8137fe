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
use crate::router::authority::Grant;
use crate::router::disclosure::{self, Disclosure};
use crate::router::filter::EventFilter;
use crate::router::history::Stored;
use crate::router::retention::Retained;
use crate::router::session::Peer;
use crate::router::trie::UriTrie;
use crate::router::wire::{AppPayload, EventFrames};
use crate::router::{ids, reserved_uri, BarrierOutcome, Flow, Router, ShardMsg};

/// One subscription as seen from one shard.
pub struct Subscription {
    pub id: u64,
    /// The authority's revision of `id`: between two ids for one pattern, the higher is the live one.
    pub rev: u64,
    pub policy: MatchPolicy,
    pub uri: Arc<str>,
    /// Bit `s`: shard `s` (never this one) has subscribers.
    pub remote: u64,
    /// Subscribers on this shard that receive events.
    pub local: Vec<Rc<Peer>>,
    /// Subscribers on this shard whose SUBSCRIBED waits for the other shards to apply the update.
    /// They receive nothing yet: the spec promises SUBSCRIBED before the subscription's first EVENT.
    pub pending: Vec<Rc<Peer>>,
    /// Barrier token of the update announcing this shard's interest, while other shards apply it.
    pub barrier: u64,
}

impl Subscription {
    fn has_interest(&self) -> bool {
        !self.local.is_empty() || !self.pending.is_empty()
    }
}

/// A shard's replica of one realm's subscriptions.
#[derive(Default)]
pub struct Broker {
    trie: UriTrie<u64>,
    subs: AHashMap<u64, Subscription>,
}

impl Broker {
    /// The subscription for (policy, uri) if this shard already has local subscribers for it (active
    /// or pending).
    pub fn local_id(&self, policy: MatchPolicy, uri: &str) -> Option<u64> {
        let id = *self.trie.get(policy, uri)?;
        self.subs
            .get(&id)
            .filter(|s| s.has_interest())
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

    /// Every subscription of this replica.
    pub fn iter(&self) -> impl Iterator<Item = &Subscription> {
        self.subs.values()
    }

    /// Adds a local subscriber to the subscription `grant` names, receiving events at once (`active`)
    /// or only once [`Broker::activate`]d.
    pub fn add_local(
        &mut self,
        grant: Grant,
        policy: MatchPolicy,
        uri: &Arc<str>,
        peer: Rc<Peer>,
        active: bool,
    ) {
        if !self.ensure(grant, policy, uri) {
            // The authority just granted this id to this shard, so no newer entry can be live; the
            // authority's word wins over the replica's.
            tracing::error!(
                id = grant.id,
                "subscription grant older than the replica's entry; replacing the entry"
            );
            if let Some(old) = self.trie.remove(policy, uri) {
                self.subs.remove(&old);
            }
            self.ensure(grant, policy, uri);
        }
        if let Some(s) = self.subs.get_mut(&grant.id) {
            if active {
                s.local.push(peer);
            } else {
                s.pending.push(peer);
            }
        }
    }

    /// Starts delivering to a pending subscriber; false if it is not pending (it left meanwhile).
    pub fn activate(&mut self, id: u64, session: u64) -> bool {
        let Some(s) = self.subs.get_mut(&id) else {
            return false;
        };
        let Some(pos) = s.pending.iter().position(|p| p.id.get() == session) else {
            return false;
        };
        let peer = s.pending.swap_remove(pos);
        s.local.push(peer);
        true
    }

    /// True if `session` receives events of subscription `id`.
    pub fn is_active(&self, id: u64, session: u64) -> bool {
        self.subs
            .get(&id)
            .is_some_and(|s| s.local.iter().any(|p| p.id.get() == session))
    }

    /// Removes a local subscriber (active or pending); returns (policy, uri) when the shard has none
    /// left for `id`.
    pub fn remove_local(&mut self, id: u64, session: u64) -> Option<(MatchPolicy, Arc<str>)> {
        let s = self.subs.get_mut(&id)?;
        if let Some(pos) = s.local.iter().position(|p| p.id.get() == session) {
            s.local.swap_remove(pos);
        } else {
            let pos = s.pending.iter().position(|p| p.id.get() == session)?;
            s.pending.swap_remove(pos);
        }
        if s.has_interest() {
            return None;
        }
        let out = (s.policy, s.uri.clone());
        self.prune(id);
        Some(out)
    }

    /// Applies another shard's change of interest. An update about an id older than the one this
    /// replica holds for the pattern is stale (that id was retired) and changes nothing.
    pub fn set_remote(
        &mut self,
        grant: Grant,
        policy: MatchPolicy,
        uri: &Arc<str>,
        shard: usize,
        add: bool,
    ) {
        if add {
            if self.ensure(grant, policy, uri) {
                if let Some(s) = self.subs.get_mut(&grant.id) {
                    s.remote |= 1 << shard;
                }
            }
        } else if let Some(s) = self.subs.get_mut(&grant.id) {
            s.remote &= !(1 << shard);
            self.prune(grant.id);
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

    /// Makes the replica's entry for (policy, uri) the subscription `grant` names, unless it already
    /// holds a newer one; returns false for a stale grant. An older entry is dropped: the authority
    /// only creates a new id for a pattern once the old one has no subscriber on any shard.
    fn ensure(&mut self, grant: Grant, policy: MatchPolicy, uri: &Arc<str>) -> bool {
        if let Some(old) = self.trie.get(policy, uri).copied() {
            if old == grant.id {
                return true;
            }
            match self.subs.get(&old) {
                Some(s) if s.rev > grant.rev => return false,
                Some(s) if s.has_interest() => {
                    tracing::error!(
                        old,
                        new = grant.id,
                        "replacing a subscription that has local subscribers"
                    );
                }
                _ => {}
            }
            self.subs.remove(&old);
        }
        self.trie.insert(policy, uri, grant.id);
        self.subs.insert(
            grant.id,
            Subscription {
                id: grant.id,
                rev: grant.rev,
                policy,
                uri: uri.clone(),
                remote: 0,
                local: Vec::new(),
                pending: Vec::new(),
                barrier: 0,
            },
        );
        true
    }

    fn prune(&mut self, id: u64) {
        let Some(s) = self.subs.get(&id) else { return };
        if !s.has_interest() && s.remote == 0 {
            let (policy, uri) = (s.policy, s.uri.clone());
            self.subs.remove(&id);
            if self.trie.get(policy, &uri) == Some(&id) {
                self.trie.remove(policy, &uri);
            }
        }
    }
}

impl Router {
    /// SUBSCRIBE: join or create the subscription for (policy, topic). The subscriber receives
    /// events from the moment its SUBSCRIBED is queued, never before; that happens once every shard
    /// knows of this shard's interest, so events published anywhere after it reach the subscriber.
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
        let get_retained = options
            .get("get_retained")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let Some(session) = self.sessions.get(&sid) else {
            return Flow::Continue;
        };
        let (realm, peer) = (session.realm, session.peer.clone());
        let held = self.local[realm]
            .broker
            .local_id(policy, topic)
            .filter(|id| session.subscriptions.contains(id));
        if let Some(id) = held {
            // Subscribing again to what the session holds answers with the same id.
            self.after_barrier(
                self.local[realm].broker.get(id).map_or(0, |s| s.barrier),
                Box::new(move |r, _| r.confirm_subscribed(realm, id, sid, request, get_retained)),
            );
            return Flow::Continue;
        }
        if session.subscriptions.len() >= self.limits.max_subscriptions {
            self.reply_error(sid, codes::SUBSCRIBE, request, errors::UNAVAILABLE);
            return Flow::Continue;
        }
        let broker = &mut self.local[realm].broker;
        let joined = broker
            .local_id(policy, topic)
            .and_then(|id| broker.get(id))
            .map(|sub| {
                (
                    Grant {
                        id: sub.id,
                        rev: sub.rev,
                    },
                    sub.uri.clone(),
                    sub.barrier,
                )
            });
        let (id, token, created) = match joined {
            // Another session on this shard holds it: join, active once its announcement (if still
            // in flight) has reached every shard.
            Some((grant, uri, token)) => {
                let active = !self.barriers.contains_key(&token);
                broker.add_local(grant, policy, &uri, peer, active);
                self.hold_subscription(sid, grant.id);
                (grant.id, token, false)
            }
            // First local subscriber: the realm authority names the subscription and every shard
            // learns of this shard's interest before the subscriber is told it is subscribed.
            None => {
                let (grant, created) = self
                    .realms
                    .authority(realm)
                    .join_subscription_created(policy, topic, self.shard);
                let uri: Arc<str> = Arc::from(topic);
                let token = self.broadcast(|token| ShardMsg::SubUpdate {
                    realm,
                    grant,
                    policy,
                    uri: uri.clone(),
                    add: true,
                    token,
                });
                let broker = &mut self.local[realm].broker;
                broker.add_local(grant, policy, &uri, peer, token == 0);
                if let Some(s) = broker.get_mut(grant.id) {
                    s.barrier = token;
                }
                self.hold_subscription(sid, grant.id);
                (grant.id, token, created)
            }
        };
        self.after_barrier(
            token,
            Box::new(move |r, outcome| match outcome {
                BarrierOutcome::Done => {
                    r.confirm_subscribed(realm, id, sid, request, get_retained);
                    r.meta_subscribed(realm, id, sid, created);
                }
                BarrierOutcome::TimedOut => r.abandon_subscribe(id, sid, request),
            }),
        );
        Flow::Continue
    }

    fn hold_subscription(&mut self, sid: u64, id: u64) {
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.subscriptions.push(id);
        }
    }

    /// The announcement of subscription `id` has reached every shard: `sid` starts receiving events,
    /// and SUBSCRIBED is queued before any of them, followed by the retained events it asked for.
    /// Nothing happens if the session left or unsubscribed meanwhile.
    fn confirm_subscribed(
        &mut self,
        realm: usize,
        id: u64,
        sid: u64,
        request: u64,
        get_retained: bool,
    ) {
        let holds = self
            .sessions
            .get(&sid)
            .is_some_and(|s| s.subscriptions.contains(&id));
        if !holds {
            return;
        }
        let broker = &mut self.local[realm].broker;
        if !broker.activate(id, sid) && !broker.is_active(id, sid) {
            return;
        }
        self.reply(
            sid,
            &Message::Subscribed {
                request,
                subscription: id,
            },
        );
        if get_retained {
            self.deliver_retained(realm, id, sid);
        }
    }

    /// Queues, for subscriber `sid` of subscription `id`, the retained event of every topic the
    /// subscription matches that the subscriber would have received when it was published.
    fn deliver_retained(&self, realm: usize, id: u64, sid: u64) {
        let (Some(sub), Some(session)) =
            (self.local[realm].broker.get(id), self.sessions.get(&sid))
        else {
            return;
        };
        let peer = &session.peer;
        for ev in self.realms.retained(realm).matching(sub.policy, &sub.uri) {
            if !ev.eligible(sid, &session.identity) {
                continue;
            }
            let topic = (sub.policy != MatchPolicy::Exact).then(|| ev.topic.clone());
            let frames = EventFrames::new(id, ev.publication, topic, ev.ser, ev.payload.clone())
                .with_details(Some(ev.delivery_details()));
            match frames.get(peer.enc) {
                Some(frame) if frame.len() <= peer.outbox.max_frame() => {
                    self.push_event(peer, frame)
                }
                _ => self.skip_event(peer, &frames),
            }
        }
    }

    /// True if subscriber `session` (on this shard) passes the publisher's black/white lists.
    #[inline]
    fn admitted(&self, filter: &EventFilter, session: u64) -> bool {
        let who = if filter.needs_identity() {
            self.sessions.get(&session).map(|s| &*s.identity)
        } else {
            None
        };
        filter.admits(session, who)
    }

    /// Another shard never acknowledged the announcement: the subscription is undone and the
    /// subscriber told so, rather than left waiting or silently missing events.
    fn abandon_subscribe(&mut self, id: u64, sid: u64, request: u64) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some(pos) = session.subscriptions.iter().position(|&s| s == id) else {
            return;
        };
        session.subscriptions.swap_remove(pos);
        let realm = session.realm;
        self.drop_subscriber(realm, id, sid);
        self.reply_error_text(
            sid,
            codes::SUBSCRIBE,
            request,
            errors::UNAVAILABLE,
            "a router shard did not confirm the subscription in time",
        );
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
        let broker = &mut self.local[realm].broker;
        let rev = broker.get(id).map_or(0, |s| s.rev);
        let Some((policy, uri)) = broker.remove_local(id, sid) else {
            self.meta_unsubscribed(realm, id, sid, false);
            return;
        };
        let retired = self
            .realms
            .authority(realm)
            .leave_subscription(policy, &uri, self.shard, id);
        let grant = Grant { id, rev };
        self.broadcast_no_ack(|| ShardMsg::SubUpdate {
            realm,
            grant,
            policy,
            uri: uri.clone(),
            add: false,
            token: 0,
        });
        self.meta_unsubscribed(realm, id, sid, retired);
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
        if !uri::is_valid_uri(topic, false)
            || topic.len() > self.limits.max_uri_len
            || reserved_uri(topic)
        {
            if acknowledge {
                self.reply_error(sid, codes::PUBLISH, request, errors::INVALID_URI);
            }
            return Flow::Continue;
        }
        let Some(session) = self.sessions.get(&sid) else {
            return Flow::Continue;
        };
        let (realm, ser) = (session.realm, session.peer.enc.ser);
        let opts = PublishOptions::read(options);
        let payload = payload.with_passthru(options);
        let forced = self.rules.forces_disclosure(
            self.authorizer.disclose_now,
            realm,
            &session.identity.authrole,
            crate::config::file::Action::Publish,
            topic,
        );
        let details = match disclosure::publisher_disclosure(session, opts.disclose_me || forced) {
            Disclosure::Hidden => None,
            Disclosure::Disclosed => Some(disclosure::publisher_details(sid, session)),
            Disclosure::Refused(error) => {
                self.reply_error(sid, codes::PUBLISH, request, error);
                return Flow::Continue;
            }
        };
        let exclude = if opts.exclude_me { sid } else { 0 };
        let filter = EventFilter::from_options(options).map(Arc::new);
        let publication = ids::global();
        if opts.retain {
            self.realms.retained(realm).retain(Retained {
                publication,
                topic: Arc::from(topic),
                ser,
                payload: payload.detached(),
                details: details.clone(),
                exclude,
                filter: filter.clone(),
            });
        }
        self.history(realm).keep(topic, options, || Stored {
            at: crate::router::history::now_ms(),
            publication,
            topic: Arc::from(topic),
            ser,
            payload: payload.detached(),
            details: details.clone(),
            filter: filter.clone(),
        });
        // An acknowledged publication is answered once every shard it went to has queued it for its
        // subscribers: PUBLISHED then means "everyone subscribed now has it", so a subscriber that
        // unsubscribes (or one that subscribes) after the publisher saw PUBLISHED cannot race it.
        let token = if acknowledge && self.shards > 1 {
            self.new_token()
        } else {
            0
        };
        let mut sent = 0;

        let mut matched = SmallVec::new();
        self.local[realm].broker.matches(topic, &mut matched);
        let mut concrete: Option<Arc<str>> = None;
        for (id, policy) in matched {
            // Pattern-based subscribers are told the concrete topic in Details.
            let topic_detail = (policy != MatchPolicy::Exact)
                .then(|| concrete.get_or_insert_with(|| Arc::from(topic)).clone());
            let frames = Arc::new(
                EventFrames::new(id, publication, topic_detail, ser, payload.clone())
                    .with_details(details.clone()),
            );
            let remote = self.deliver_event(realm, id, exclude, filter.as_deref(), &frames);
            for shard in bits(remote) {
                self.out.send(
                    shard,
                    ShardMsg::Event {
                        realm,
                        subscription: id,
                        exclude,
                        filter: filter.clone(),
                        frames: frames.clone(),
                        token,
                    },
                );
                sent += 1;
            }
        }
        if acknowledge {
            let published = move |r: &mut Router, _| {
                r.reply(
                    sid,
                    &Message::Published {
                        request,
                        publication,
                    },
                )
            };
            if sent > 0 {
                self.open_barrier(token, sent, Box::new(published));
            } else {
                published(self, BarrierOutcome::Done);
            }
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
        filter: Option<&EventFilter>,
        frames: &EventFrames,
    ) -> u64 {
        let Some(sub) = self.local[realm].broker.get(id) else {
            return 0;
        };
        // Separate loops, so that the plain fanout tests nothing but the excluded publisher, and a
        // filtered one only what its lists say about this shard's sessions.
        let everyone = || {
            for peer in sub.local.iter().filter(|p| p.id.get() != exclude) {
                self.deliver_to(peer, frames);
            }
        };
        let Some(f) = filter else {
            everyone();
            return sub.remote;
        };
        match f.on_shard(sub.local.len(), |id| self.sessions.contains_key(&id)) {
            Some(lists) if lists.admit_all() => everyone(),
            Some(lists) if lists.admit_none() => {}
            Some(lists) => {
                for peer in &sub.local {
                    let session = peer.id.get();
                    if session != exclude && lists.admits(session) {
                        self.deliver_to(peer, frames);
                    }
                }
            }
            None => {
                for peer in &sub.local {
                    let session = peer.id.get();
                    if session != exclude && self.admitted(f, session) {
                        self.deliver_to(peer, frames);
                    }
                }
            }
        }
        sub.remote
    }

    #[inline(always)]
    fn deliver_to(&self, peer: &Peer, frames: &EventFrames) {
        match frames.get(peer.enc) {
            Some(frame) if frame.len() <= peer.outbox.max_frame() => self.push_event(peer, frame),
            // Too large for this subscriber (its RawSocket length, the WebSocket message limit, or
            // grown by transcoding), or not expressible in its serializer: it misses this one
            // event, everyone else gets it.
            _ => self.skip_event(peer, frames),
        }
    }
}

/// The PUBLISH options the Broker acts on besides listing (see [`EventFilter`]).
struct PublishOptions {
    exclude_me: bool,
    disclose_me: bool,
    retain: bool,
}

impl PublishOptions {
    fn read(options: &Val<'_>) -> Self {
        let flag = |key: &str, default: bool| {
            options
                .get(key)
                .and_then(|v| v.as_bool())
                .unwrap_or(default)
        };
        if options.dict_len() == Some(0) {
            // The common case: no option at all, no key scan.
            return PublishOptions {
                exclude_me: true,
                disclose_me: false,
                retain: false,
            };
        }
        PublishOptions {
            exclude_me: flag("exclude_me", true),
            disclose_me: flag("disclose_me", false),
            retain: flag("retain", false),
        }
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
    use crate::protocol::Serializer;
    use crate::router::session::Outbox;
    use crate::router::wire::{Encoding, Wire};

    fn peer(id: u64) -> Rc<Peer> {
        Rc::new(Peer {
            id: std::cell::Cell::new(id),
            enc: Encoding {
                ser: Serializer::Json,
                wire: Wire::RawSocket,
            },
            outbox: Outbox::new(1 << 20, 1000, 1 << 20),
            goodbye_sent: std::cell::Cell::new(false),
            parked: std::cell::Cell::new(false),
        })
    }

    fn g(id: u64, rev: u64) -> Grant {
        Grant { id, rev }
    }

    /// B's first subscriber got X and left; A's subscriber then got Y. B's "add X" arriving late at
    /// A must not replace Y (and with it A's subscriber), and B's "remove X" must change nothing.
    #[test]
    fn a_late_add_of_a_retired_id_is_ignored() {
        let uri: Arc<str> = Arc::from("t");
        let mut a = Broker::default();
        a.add_local(g(200, 5), MatchPolicy::Exact, &uri, peer(1), true);
        a.set_remote(g(100, 3), MatchPolicy::Exact, &uri, 1, true);
        a.set_remote(g(100, 3), MatchPolicy::Exact, &uri, 1, false);
        assert_eq!(a.local_id(MatchPolicy::Exact, "t"), Some(200));
        assert!(a.is_active(200, 1));
        assert_eq!(a.len(), 1);
        let mut m = SmallVec::new();
        a.matches("t", &mut m);
        assert_eq!(m.as_slice(), &[(200, MatchPolicy::Exact)]);
    }

    /// Updates from two shards about two generations of one pattern converge whichever ring is
    /// drained first.
    #[test]
    fn replicas_converge_whatever_the_arrival_order() {
        let uri: Arc<str> = Arc::from("t");
        // Shard 1 held X (rev 3) and left; shard 2 then created Y (rev 7).
        let updates = [
            (g(100, 3), 1, true),
            (g(100, 3), 1, false),
            (g(300, 7), 2, true),
        ];
        let orders: [[usize; 3]; 3] = [[0, 1, 2], [2, 0, 1], [0, 2, 1]];
        for order in orders {
            let mut r = Broker::default();
            for i in order {
                let (grant, shard, add) = updates[i];
                r.set_remote(grant, MatchPolicy::Exact, &uri, shard, add);
            }
            assert_eq!(r.len(), 1, "order {order:?}");
            let s = r.get(300).expect("the live subscription");
            assert_eq!(s.remote, 1 << 2, "order {order:?}");
        }
    }

    #[test]
    fn pending_subscribers_receive_nothing_until_activated() {
        let uri: Arc<str> = Arc::from("t");
        let mut b = Broker::default();
        b.add_local(g(9, 1), MatchPolicy::Exact, &uri, peer(1), false);
        assert_eq!(
            b.local_id(MatchPolicy::Exact, "t"),
            Some(9),
            "pending counts as interest"
        );
        assert!(!b.is_active(9, 1));
        assert!(b.activate(9, 1));
        assert!(b.is_active(9, 1));
        assert!(!b.activate(9, 1), "activating twice is a no-op");
        assert!(b.remove_local(9, 1).is_some());
        assert!(b.is_empty());
    }

    #[test]
    fn bits_lists_shards() {
        assert_eq!(bits(0b1010_0001).collect::<Vec<_>>(), vec![0, 5, 7]);
        assert_eq!(bits(0).count(), 0);
    }
}
