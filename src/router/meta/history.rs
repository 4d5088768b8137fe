//! `wamp.subscription.get_events`: a subscription's event history, read from the realm-wide store
//! (see `router/history.rs`) on the caller's shard, so no gather is needed and the answer is the
//! same whichever shard asks.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use crate::protocol::errors;
use crate::protocol::uri::MatchPolicy;
use crate::protocol::{Payload, Val};
use crate::router::history::Stored;
use crate::router::meta::time::{iso8601, parse_rfc3339};
use crate::router::meta::{bad, CallArgs, Fail};
use crate::router::Router;

/// The spec's selection of events: every condition given must hold (logical AND).
#[derive(Default, Debug)]
struct EventsQuery {
    reverse: bool,
    limit: Option<usize>,
    topic: Option<String>,
    from_time: Option<SystemTime>,
    after_time: Option<SystemTime>,
    before_time: Option<SystemTime>,
    until_time: Option<SystemTime>,
    from_publication: Option<u64>,
    after_publication: Option<u64>,
    before_publication: Option<u64>,
    until_publication: Option<u64>,
}

impl EventsQuery {
    /// Reads `limit` (second positional argument or keyword) and the keyword conditions.
    fn read(a: &CallArgs) -> Result<Self, Fail> {
        let time = |k: &str| match a.kw(k) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .and_then(|s| parse_rfc3339(&s))
                .map(Some)
                .ok_or_else(|| bad(format!("{k} must be an RFC 3339 timestamp"))),
        };
        let id = |k: &str| match a.kw(k) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| bad(format!("{k} must be a publication id"))),
        };
        let limit = match a.arg(1).cloned().or_else(|| a.kw("limit")) {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("limit must be a positive integer".into()))?
                    as usize,
            ),
        };
        let reverse = match a.kw("reverse") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| bad("reverse must be a boolean".into()))?,
        };
        let topic = match a.kw("topic") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| bad("topic must be a URI".into()))?
                    .into_owned(),
            ),
        };
        Ok(EventsQuery {
            reverse,
            limit,
            topic,
            from_time: time("from_time")?,
            after_time: time("after_time")?,
            before_time: time("before_time")?,
            until_time: time("until_time")?,
            from_publication: id("from_publication")?,
            after_publication: id("after_publication")?,
            before_publication: id("before_publication")?,
            until_publication: id("until_publication")?,
        })
    }

    /// The events (oldest first) that satisfy every condition and `visible`, in the order asked,
    /// at most `limit`. A publication bound naming an event no longer (or never) kept matches
    /// nothing: the position it names is unknown.
    fn select(
        &self,
        events: &[Arc<Stored>],
        visible: impl Fn(&Stored) -> bool,
    ) -> Vec<Arc<Stored>> {
        let Some((lo, hi)) = self.window(events) else {
            return Vec::new();
        };
        let keep = |e: &&Arc<Stored>| {
            self.from_time.is_none_or(|t| e.at >= t)
                && self.after_time.is_none_or(|t| e.at > t)
                && self.before_time.is_none_or(|t| e.at < t)
                && self.until_time.is_none_or(|t| e.at <= t)
                && self.topic.as_deref().is_none_or(|t| *e.topic == *t)
                && visible(e)
        };
        let picked = events[lo..hi].iter().filter(keep);
        let limit = self.limit.unwrap_or(usize::MAX);
        if self.reverse {
            picked.rev().take(limit).cloned().collect()
        } else {
            picked.take(limit).cloned().collect()
        }
    }

    /// The index range [lo, hi) the publication bounds leave; None if one names no kept event.
    fn window(&self, events: &[Arc<Stored>]) -> Option<(usize, usize)> {
        let pos = |p: Option<u64>| match p {
            None => Ok(None),
            Some(p) => events
                .iter()
                .position(|e| e.publication == p)
                .map(Some)
                .ok_or(()),
        };
        let (mut lo, mut hi) = (0, events.len());
        if let Some(i) = pos(self.from_publication).ok()? {
            lo = lo.max(i);
        }
        if let Some(i) = pos(self.after_publication).ok()? {
            lo = lo.max(i + 1);
        }
        if let Some(i) = pos(self.before_publication).ok()? {
            hi = hi.min(i);
        }
        if let Some(i) = pos(self.until_publication).ok()? {
            hi = hi.min(i + 1);
        }
        (lo < hi).then_some((lo, hi))
    }
}

/// One event as `get_events` lists it: the EVENT's fields plus its timestamp.
fn event_val(subscription: u64, policy: MatchPolicy, e: &Stored) -> Result<Val<'static>, Fail> {
    let key = Cow::Borrowed;
    let text = |s: &str| Val::Str(Cow::Owned(s.to_string()));
    let mut details = Vec::new();
    if policy != MatchPolicy::Exact {
        details.push((key("topic"), text(&e.topic)));
    }
    if let Some((id, authid, authrole)) = e.details.as_ref().and_then(|d| d.publisher.as_ref()) {
        details.push((key("publisher"), Val::UInt(*id)));
        details.push((key("publisher_authid"), text(authid)));
        details.push((key("publisher_authrole"), text(authrole)));
    }
    let mut out = vec![
        (key("timestamp"), Val::Str(Cow::Owned(iso8601(e.at)))),
        (key("subscription"), Val::UInt(subscription)),
        (key("publication"), Val::UInt(e.publication)),
        (key("details"), Val::Dict(details)),
    ];
    for (name, part) in [("args", &e.payload.args), ("kwargs", &e.payload.kwargs)] {
        if let Some(bytes) = part {
            let v = Val::decode(Payload { ser: e.ser, bytes })
                .map_err(|_| (errors::UNAVAILABLE, "a stored event cannot be read".into()))?;
            out.push((key(name), v.into_owned()));
        }
    }
    Ok(Val::Dict(out))
}

impl Router {
    /// `wamp.subscription.get_events(subscription, limit?, reverse=, ...)`: the history kept for the
    /// subscription's pattern that the caller may see (the publisher's authid/authrole lists apply
    /// to it as to a subscriber); an empty list when the pattern keeps no history.
    pub(crate) fn get_events(
        &self,
        realm: usize,
        sid: u64,
        a: &CallArgs,
    ) -> Result<Vec<Val<'static>>, Fail> {
        let id = a.id(0)?;
        let q = EventsQuery::read(a)?;
        let Some(sub) = self.local[realm].broker.get(id) else {
            return Err((
                errors::NO_SUCH_SUBSCRIPTION,
                format!("no subscription {id}"),
            ));
        };
        let Some(who) = self.sessions.get(&sid).map(|s| s.identity.clone()) else {
            return Ok(Vec::new());
        };
        let events = self
            .history(realm)
            .events(sub.policy, &sub.uri)
            .unwrap_or_default();
        let picked = q.select(&events, |e| e.visible_to(sid, &who));
        let list = picked
            .iter()
            .map(|e| event_val(id, sub.policy, e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(vec![Val::List(list)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Serializer;
    use crate::router::wire::AppPayload;
    use std::time::{Duration, UNIX_EPOCH};

    fn ev(publication: u64, secs: u64, topic: &str) -> Arc<Stored> {
        Arc::new(Stored {
            at: UNIX_EPOCH + Duration::from_secs(secs),
            publication,
            topic: Arc::from(topic),
            ser: Serializer::Json,
            payload: AppPayload::default(),
            details: None,
            filter: None,
        })
    }

    fn pubs(q: &EventsQuery, events: &[Arc<Stored>]) -> Vec<u64> {
        q.select(events, |_| true)
            .iter()
            .map(|e| e.publication)
            .collect()
    }

    /// Publication ids are not ordered: positions in the history are (71 came before 12).
    #[test]
    fn publication_bounds_follow_arrival_order() {
        let events = [
            ev(50, 10, "a"),
            ev(71, 20, "b"),
            ev(12, 30, "a"),
            ev(9, 40, "b"),
        ];
        let all = EventsQuery::default();
        assert_eq!(pubs(&all, &events), [50, 71, 12, 9]);
        let q = |f: fn(&mut EventsQuery)| {
            let mut q = EventsQuery::default();
            f(&mut q);
            pubs(&q, &events)
        };
        assert_eq!(q(|q| q.from_publication = Some(71)), [71, 12, 9]);
        assert_eq!(q(|q| q.after_publication = Some(71)), [12, 9]);
        assert_eq!(q(|q| q.before_publication = Some(12)), [50, 71]);
        assert_eq!(q(|q| q.until_publication = Some(12)), [50, 71, 12]);
        assert!(q(|q| q.after_publication = Some(999)).is_empty());
        assert_eq!(
            q(|q| {
                q.reverse = true;
                q.limit = Some(2);
                q.before_publication = Some(9);
            }),
            [12, 71],
            "paging backwards"
        );
        assert_eq!(q(|q| q.topic = Some("b".into())), [71, 9]);
    }

    #[test]
    fn time_bounds_compare_as_the_spec_says() {
        let events = [ev(1, 10, "t"), ev(2, 20, "t"), ev(3, 30, "t")];
        let at = |s| Some(UNIX_EPOCH + Duration::from_secs(s));
        let mut q = EventsQuery {
            from_time: at(20),
            ..Default::default()
        };
        assert_eq!(pubs(&q, &events), [2, 3]);
        q.from_time = None;
        q.after_time = at(20);
        assert_eq!(pubs(&q, &events), [3]);
        q.after_time = None;
        q.before_time = at(20);
        assert_eq!(pubs(&q, &events), [1]);
        q.before_time = None;
        q.until_time = at(20);
        assert_eq!(pubs(&q, &events), [1, 2]);
        q.from_time = at(20);
        assert_eq!(pubs(&q, &events), [2]);
        let hidden = q.select(&events, |e| e.publication != 2);
        assert!(hidden.is_empty(), "invisible events are left out");
    }
}
