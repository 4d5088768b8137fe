//! Session testaments: publications a session leaves with the router, made when it leaves (after
//! GOODBYE, a kill, or a dropped transport). wampd has no session resumption, so a session is
//! detached and destroyed in the same moment: both scopes are published on leave, `detached` first,
//! as the spec asks of such routers; the two buckets still exist so that each can be flushed.

use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::errors;
use crate::protocol::uri;
use crate::protocol::{Serializer, Val};
use crate::router::meta::{bad, CallArgs, Fail};
use crate::router::wire::AppPayload;
use crate::router::{reserved_uri, Router};

/// Testaments one session may hold per scope: they are kept in router memory for the session's life.
const MAX_PER_SCOPE: usize = 64;

/// One stored publication, its payload kept in the serializer the session used.
pub(crate) struct Testament {
    topic: Arc<str>,
    ser: Serializer,
    payload: AppPayload,
}

/// A session's testaments by scope.
pub(crate) struct Testaments {
    realm: usize,
    detached: Vec<Testament>,
    destroyed: Vec<Testament>,
}

/// The `scope` keyword argument: true for `detached`, false for `destroyed` (the default).
fn detached_scope(a: &CallArgs) -> Result<bool, Fail> {
    match a.kw("scope") {
        None => Ok(false),
        Some(s) => match s.as_str().as_deref() {
            Some("destroyed") => Ok(false),
            Some("detached") => Ok(true),
            _ => Err(bad("scope must be 'destroyed' or 'detached'".into())),
        },
    }
}

/// `v` (a list or dict argument, or absent) encoded in `ser`.
fn encoded(ser: Serializer, v: Option<&Val<'static>>, list: bool) -> Result<Option<Bytes>, Fail> {
    let Some(v) = v else { return Ok(None) };
    if (list && !v.is_list()) || (!list && !v.is_dict()) {
        return Err(bad(
            "testament args must be a list and kwargs a dictionary".into()
        ));
    }
    let mut buf = Vec::new();
    v.encode(ser, &mut buf)
        .map_err(|e| bad(format!("cannot encode the testament: {e}")))?;
    Ok(Some(Bytes::from(buf)))
}

impl Router {
    /// `wamp.session.add_testament(topic, args, kwargs, scope=...)`.
    pub(crate) fn add_testament(
        &mut self,
        sid: u64,
        realm: usize,
        ser: Serializer,
        a: &CallArgs,
    ) -> Result<(), Fail> {
        let topic = a.text(0)?;
        if !uri::is_valid_uri(&topic, false)
            || topic.len() > self.limits.max_uri_len
            || reserved_uri(&topic)
        {
            return Err((errors::INVALID_URI, format!("cannot publish to {topic}")));
        }
        let detached = detached_scope(a)?;
        let payload = AppPayload {
            args: encoded(ser, a.arg(1), true)?,
            kwargs: encoded(ser, a.arg(2), false)?,
            ppt: None,
        };
        let all = self
            .meta
            .testaments
            .entry(sid)
            .or_insert_with(|| Testaments {
                realm,
                detached: Vec::new(),
                destroyed: Vec::new(),
            });
        let bucket = if detached {
            &mut all.detached
        } else {
            &mut all.destroyed
        };
        if bucket.len() >= MAX_PER_SCOPE {
            return Err((
                errors::UNAVAILABLE,
                format!("at most {MAX_PER_SCOPE} testaments per scope"),
            ));
        }
        bucket.push(Testament {
            topic: topic.into(),
            ser,
            payload,
        });
        Ok(())
    }

    /// `wamp.session.flush_testaments(scope=...)`.
    pub(crate) fn flush_testaments(&mut self, sid: u64, a: &CallArgs) -> Result<(), Fail> {
        let detached = detached_scope(a)?;
        if let Some(all) = self.meta.testaments.get_mut(&sid) {
            match detached {
                true => all.detached.clear(),
                false => all.destroyed.clear(),
            }
        }
        Ok(())
    }

    /// Publishes what session `sid` left, `detached` scope first, each in the order it was added.
    pub(crate) fn publish_testaments(&mut self, sid: u64) {
        let Some(all) = self.meta.testaments.remove(&sid) else {
            return;
        };
        for t in all.detached.into_iter().chain(all.destroyed) {
            let matched = self.subscribers_of(all.realm, &t.topic);
            if self.router_publication_wanted(all.realm, &t.topic, &matched) {
                self.publish_as_router(all.realm, &t.topic, t.ser, t.payload, &matched);
            }
        }
    }
}
