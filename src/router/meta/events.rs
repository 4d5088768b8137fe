//! Meta events: published by the router through the ordinary broker path, once the change they
//! report has been decided. The subscription lookup (and the history's, when the realm keeps any)
//! comes first, so an event nobody subscribed to and no history pattern keeps is never built.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::protocol::uri::MatchPolicy;
use crate::protocol::{Serializer, Val};
use crate::router::authority::InvokePolicy;
use crate::router::broker::bits;
use crate::router::dealer::Registration;
use crate::router::history::{self, Stored};
use crate::router::meta::answer::{entry_details, session_details, transport_details, Table};
use crate::router::meta::gather::Entry;
use crate::router::session::Identity;
use crate::router::wire::{AppPayload, Encoding, EventFrames};
use crate::router::{ids, Router, ShardMsg};
use crate::transport::PeerInfo;

/// Subscriptions a topic matched: (id, policy).
pub(crate) type Matched = SmallVec<[(u64, MatchPolicy); 8]>;

impl Router {
    /// The subscriptions of `realm` that an event on `topic` would reach.
    pub(crate) fn subscribers_of(&self, realm: usize, topic: &str) -> Matched {
        let mut matched = SmallVec::new();
        self.local[realm].broker.matches(topic, &mut matched);
        matched
    }

    /// True when a publication the router makes on `topic` reaches someone: a subscriber now, or a
    /// history pattern for later ones.
    pub(crate) fn router_publication_wanted(
        &self,
        realm: usize,
        topic: &str,
        matched: &Matched,
    ) -> bool {
        !matched.is_empty() || self.history(realm).wants(topic)
    }

    /// Publishes a router event with positional arguments `args` (built only if someone listens).
    fn publish_meta(
        &mut self,
        realm: usize,
        topic: &str,
        args: impl FnOnce() -> Vec<Val<'static>>,
    ) {
        let matched = self.subscribers_of(realm, topic);
        if !self.router_publication_wanted(realm, topic, &matched) {
            return;
        }
        let mut buf = Vec::new();
        if let Err(e) = Val::List(args()).encode(Serializer::Json, &mut buf) {
            tracing::warn!(error = %e, "cannot encode meta event {topic}");
            return;
        }
        let payload = AppPayload {
            args: Some(Bytes::from(buf)),
            kwargs: None,
            ppt: None,
        };
        self.publish_as_router(realm, topic, Serializer::Json, payload, &matched);
    }

    /// Delivers one publication the router makes (meta event, testament) to `matched`, on every
    /// shard, like a PUBLISH without a publisher; the history patterns matching `topic` keep it as
    /// they keep a client's.
    pub(crate) fn publish_as_router(
        &mut self,
        realm: usize,
        topic: &str,
        ser: Serializer,
        payload: AppPayload,
        matched: &Matched,
    ) {
        let publication = ids::global();
        let concrete: Arc<str> = Arc::from(topic);
        self.history(realm).record(topic, || {
            Some(Stored {
                at: history::now_ms(),
                publication,
                topic: concrete.clone(),
                ser,
                // Made by the router: the bytes are its own, no receive buffer is pinned.
                payload: payload.clone(),
                details: None,
                filter: None,
            })
        });
        for &(id, policy) in matched {
            let topic_detail = (policy != MatchPolicy::Exact).then(|| concrete.clone());
            let frames = Arc::new(EventFrames::new(
                id,
                publication,
                topic_detail,
                ser,
                payload.clone(),
            ));
            let remote = self.deliver_event(realm, id, 0, None, &frames);
            for shard in bits(remote) {
                self.out.send(
                    shard,
                    ShardMsg::Event {
                        realm,
                        subscription: id,
                        exclude: 0,
                        filter: None,
                        frames: frames.clone(),
                        token: 0,
                    },
                );
            }
        }
    }

    /// `wamp.session.on_join`, once WELCOME is queued; keeps what the transport knows of the
    /// session for `wamp.session.get`.
    pub(crate) fn meta_on_join(&mut self, realm: usize, sid: u64, transport: PeerInfo) {
        let Some((who, enc)) = self
            .sessions
            .get(&sid)
            .map(|s| (s.identity.clone(), s.peer.enc))
        else {
            return;
        };
        self.publish_meta(realm, "wamp.session.on_join", || {
            let t = transport_details(&transport, enc);
            vec![session_details(sid, &who, Some(t))]
        });
        self.meta.transports.insert(sid, transport);
    }

    /// The `transport` details of session `sid` of this shard.
    pub(crate) fn transport_of(&self, sid: u64, enc: Encoding) -> Option<Val<'static>> {
        let info = self.meta.transports.get(&sid)?;
        Some(transport_details(info, enc))
    }

    /// `wamp.session.on_leave`, once the session's routing state is gone.
    pub(crate) fn meta_on_leave(&mut self, realm: usize, sid: u64, who: &Identity) {
        self.meta.transports.remove(&sid);
        if self.meta.quiet_leave {
            return;
        }
        self.publish_meta(realm, "wamp.session.on_leave", || {
            vec![
                Val::UInt(sid),
                Val::Str(who.authid.to_string().into()),
                Val::Str(who.authrole.to_string().into()),
            ]
        });
    }

    /// `on_create` (if the authority just created it) and `on_subscribe`, once SUBSCRIBED is queued.
    pub(crate) fn meta_subscribed(&mut self, realm: usize, id: u64, sid: u64, created: bool) {
        let Some(sub) = self.local[realm].broker.get(id) else {
            return;
        };
        if !sub.local.iter().any(|p| p.id.get() == sid) {
            return; // not confirmed (left, or the update timed out)
        }
        let (policy, uri) = (sub.policy, sub.uri.clone());
        let at = *self.meta.created.entry(id).or_insert_with(SystemTime::now);
        if created {
            self.publish_meta(realm, "wamp.subscription.on_create", || {
                let e = entry(id, policy, uri, at);
                vec![Val::UInt(sid), entry_details(Table::Subscriptions, &e)]
            });
        }
        self.publish_meta(realm, "wamp.subscription.on_subscribe", || {
            vec![Val::UInt(sid), Val::UInt(id)]
        });
    }

    /// `on_unsubscribe`, then `on_delete` if that retired the subscription realm-wide.
    pub(crate) fn meta_unsubscribed(&mut self, realm: usize, id: u64, sid: u64, deleted: bool) {
        if self.local[realm]
            .broker
            .get(id)
            .is_none_or(|s| s.local.is_empty() && s.pending.is_empty())
        {
            self.meta.created.remove(&id);
        }
        let pair = move || vec![Val::UInt(sid), Val::UInt(id)];
        self.publish_meta(realm, "wamp.subscription.on_unsubscribe", pair);
        if deleted {
            self.publish_meta(realm, "wamp.subscription.on_delete", pair);
        }
    }

    /// `on_create` (for the registration's first callee) and `on_register`, once REGISTERED is
    /// queued.
    pub(crate) fn meta_registered(&mut self, realm: usize, sid: u64, reg: &Registration) {
        let (id, created) = (reg.id, reg.callees.first().is_some_and(|c| c.order == 0));
        let at = *self.meta.created.entry(id).or_insert_with(SystemTime::now);
        if created {
            self.publish_meta(realm, "wamp.registration.on_create", || {
                let mut e = entry(id, reg.policy, reg.uri.clone(), at);
                e.invoke = reg.invoke;
                vec![Val::UInt(sid), entry_details(Table::Registrations, &e)]
            });
        }
        self.publish_meta(realm, "wamp.registration.on_register", || {
            vec![Val::UInt(sid), Val::UInt(id)]
        });
    }

    /// `on_unregister`, then `on_delete` if that callee was the registration's last.
    pub(crate) fn meta_unregistered(&mut self, realm: usize, sid: u64, id: u64, deleted: bool) {
        let local_left = self.local[realm]
            .dealer
            .get(id)
            .is_none_or(|r| r.callees.iter().all(|c| c.shard != self.shard));
        if local_left {
            self.meta.created.remove(&id);
        }
        let pair = move || vec![Val::UInt(sid), Val::UInt(id)];
        self.publish_meta(realm, "wamp.registration.on_unregister", pair);
        if deleted {
            self.publish_meta(realm, "wamp.registration.on_delete", pair);
        }
    }
}

fn entry(id: u64, policy: MatchPolicy, uri: Arc<str>, created: SystemTime) -> Entry {
    Entry {
        id,
        policy,
        uri,
        created,
        invoke: InvokePolicy::Single,
        members: Vec::new(),
    }
}
