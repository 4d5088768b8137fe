//! Event history against a two-shard router: publications from both shards land in one history per
//! configured pattern, `wamp.subscription.get_events` answers the same on either shard, and its
//! selections (limit, order, publication and time bounds, topic), the listing rules and the bounds
//! hold.

mod common;

use std::borrow::Cow;

use common::meta::join_on;
use common::{dict, s, Client, Router};
use wampd::protocol::{Message, Serializer, Val};

const SHARDS: usize = 2;

fn router() -> Router {
    Router::start(
        SHARDS,
        &[
            "--event-history",
            "hist.t=3",
            "--event-history",
            "prefix:hist=100",
            "--event-history",
            "wildcard:hist..w=5",
        ],
    )
}

/// The next message that is not an EVENT (subscribers here also publish and ask).
fn answer<R>(c: &mut Client, mut f: impl FnMut(Message<'_>) -> Option<R>) -> R {
    for _ in 0..1000 {
        let got = c.recv_with(|m| match m {
            Message::Event { .. } => None,
            other => Some(f(other)),
        });
        if let Some(r) = got {
            return r.unwrap_or_else(|| panic!("unexpected answer"));
        }
    }
    panic!("only EVENTs arrived");
}

/// Publishes `[n]` (and kwargs `{"n": n}`) with `options` plus acknowledge; the publication id.
fn publish(c: &mut Client, topic: &str, n: u64, options: &[(&str, Val<'_>)]) -> u64 {
    let mut opts = vec![("acknowledge", Val::Bool(true))];
    opts.extend(options.iter().cloned());
    let request = c.req();
    c.send(&Message::Publish {
        request,
        options: dict(&opts),
        topic: Cow::Borrowed(topic),
        args: Some(Val::List(vec![Val::UInt(n)])),
        kwargs: Some(dict(&[("n", Val::UInt(n))])),
    });
    answer(c, |m| match m {
        Message::Published {
            request: r,
            publication,
        } if r == request => Some(publication),
        _ => None,
    })
}

/// Calls `get_events` with `args` and `kw`: Ok(the listed events) or Err(error URI).
fn get_events(
    c: &mut Client,
    args: Vec<Val<'_>>,
    kw: Option<Val<'_>>,
) -> Result<Vec<Val<'static>>, String> {
    let request = c.req();
    c.send(&Message::Call {
        request,
        options: Val::empty_dict(),
        procedure: Cow::Borrowed("wamp.subscription.get_events"),
        args: Some(Val::List(args)),
        kwargs: kw,
    });
    answer(c, |m| match m {
        Message::Result {
            request: r, args, ..
        } if r == request => match args.map(Val::into_owned) {
            Some(Val::List(mut items)) if items.len() == 1 => match items.remove(0) {
                Val::List(events) => Some(Ok(events)),
                other => panic!("get_events returned {other:?}"),
            },
            other => panic!("get_events returned {other:?}"),
        },
        Message::Error {
            request: r, error, ..
        } if r == request => Some(Err(error.into_owned())),
        _ => None,
    })
}

/// `get_events(sub, **kw)`: the listed events.
fn events(c: &mut Client, sub: u64, kw: &[(&str, Val<'_>)]) -> Vec<Val<'static>> {
    get_events(c, vec![Val::UInt(sub)], Some(dict(kw)))
        .unwrap_or_else(|e| panic!("get_events failed: {e}"))
}

/// The `[n]` of each listed event.
fn ns(list: &[Val<'_>]) -> Vec<u64> {
    list.iter()
        .map(|e| {
            let args = e.get("args").expect("args");
            match args {
                Val::List(a) => a[0].as_u64().expect("n"),
                other => panic!("args {other:?}"),
            }
        })
        .collect()
}

fn field(e: &Val<'_>, key: &str) -> u64 {
    e.get(key).and_then(|v| v.as_u64()).expect(key)
}

#[test]
fn history_is_shared_by_every_shard_and_bounded() {
    let r = router();
    let mut a = join_on(&r.addr, 0, SHARDS);
    let mut b = join_on(&r.addr, 1, SHARDS);
    // Kept before anyone subscribed: the pattern is configured, not the subscription.
    publish(&mut a, "hist.t", 0, &[]);
    let sub = b.subscribe("hist.t");
    let prefix = a.subscribe_opts("hist", dict(&[("match", s("prefix"))]));
    let mut pubs = vec![0];
    for n in 1..=4 {
        let c = if n % 2 == 1 { &mut a } else { &mut b };
        pubs.push(publish(c, "hist.t", n, &[]));
    }
    publish(&mut b, "hist.other", 5, &[]);

    // The last 3 of hist.t, oldest first, asked from either shard.
    for c in [&mut a, &mut b] {
        let got = events(c, sub, &[]);
        assert_eq!(ns(&got), [2, 3, 4]);
        assert_eq!(field(&got[0], "subscription"), sub);
        assert_eq!(field(&got[0], "publication"), pubs[2]);
        assert_eq!(
            got[0]
                .get("kwargs")
                .and_then(|k| k.get("n"))
                .and_then(|v| v.as_u64()),
            Some(2)
        );
        assert!(got[0]
            .get("timestamp")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.ends_with('Z')));
        assert!(got[0]
            .get("details")
            .is_some_and(|d| d.get("topic").is_none()));
    }
    let all = events(&mut b, prefix, &[]);
    assert_eq!(ns(&all), [0, 1, 2, 3, 4, 5]);
    assert_eq!(
        all[5]
            .get("details")
            .and_then(|d| d.get("topic"))
            .and_then(|t| t.as_str())
            .as_deref(),
        Some("hist.other"),
        "pattern subscriptions are told the topic"
    );

    // Selections: positional limit, reverse, publication bounds, topic, time.
    let first = get_events(&mut b, vec![Val::UInt(prefix), Val::UInt(2)], None);
    assert_eq!(ns(&first.expect("positional limit")), [0, 1]);
    let page = events(
        &mut a,
        prefix,
        &[("reverse", Val::Bool(true)), ("limit", Val::UInt(2))],
    );
    assert_eq!(ns(&page), [5, 4]);
    let before = field(&page[1], "publication");
    let next = events(
        &mut a,
        prefix,
        &[
            ("reverse", Val::Bool(true)),
            ("limit", Val::UInt(2)),
            ("before_publication", Val::UInt(before)),
        ],
    );
    assert_eq!(ns(&next), [3, 2]);
    let after = events(&mut a, prefix, &[("after_publication", Val::UInt(pubs[3]))]);
    assert_eq!(ns(&after), [4, 5]);
    let until = events(&mut a, prefix, &[("until_publication", Val::UInt(pubs[1]))]);
    assert_eq!(ns(&until), [0, 1]);
    let topic = events(&mut a, prefix, &[("topic", s("hist.other"))]);
    assert_eq!(ns(&topic), [5]);
    let t4 = all[4]
        .get("timestamp")
        .and_then(|t| t.as_str())
        .expect("ts")
        .into_owned();
    // Timestamps are kept at the precision they are written with, so an event's own timestamp
    // selects it with from/until and leaves it out with after/before.
    let from = ns(&events(&mut a, prefix, &[("from_time", s(&t4))]));
    assert!(from.ends_with(&[4, 5]), "{from:?}");
    let after_t = ns(&events(&mut a, prefix, &[("after_time", s(&t4))]));
    assert!(
        !after_t.contains(&4) && after_t.ends_with(&[5]) || after_t.is_empty(),
        "{after_t:?}"
    );
    let until_t = ns(&events(&mut a, prefix, &[("until_time", s(&t4))]));
    assert!(
        until_t.starts_with(&[0]) && until_t.contains(&4),
        "{until_t:?}"
    );
    let before_t = ns(&events(&mut a, prefix, &[("before_time", s(&t4))]));
    assert!(!before_t.contains(&4), "{before_t:?}");
    let old = events(
        &mut a,
        prefix,
        &[("before_time", s("2000-01-01T00:00:00Z"))],
    );
    assert!(old.is_empty());

    // Wrong arguments and unknown ids.
    let bad = |c: &mut Client, args: Vec<Val<'_>>, kw: Option<Val<'_>>| {
        get_events(c, args, kw).expect_err("an error")
    };
    assert_eq!(
        bad(&mut a, vec![Val::UInt(7)], None),
        "wamp.error.no_such_subscription"
    );
    assert_eq!(
        bad(
            &mut a,
            vec![Val::UInt(sub)],
            Some(dict(&[("limit", Val::UInt(0))]))
        ),
        "wamp.error.invalid_argument"
    );
    assert_eq!(
        bad(
            &mut a,
            vec![Val::UInt(sub)],
            Some(dict(&[("from_time", s("yesterday"))]))
        ),
        "wamp.error.invalid_argument"
    );
    // A subscription whose pattern keeps no history has none.
    let plain = a.subscribe("other.t");
    publish(&mut b, "other.t", 9, &[]);
    assert!(events(&mut b, plain, &[]).is_empty());
}

#[test]
fn listing_rules_apply_to_history() {
    let r = router();
    let mut a = join_on(&r.addr, 0, SHARDS);
    let mut b = join_on(&r.addr, 1, SHARDS);
    let sub = b.subscribe("hist.x.w");
    let wild = a.subscribe_opts("hist..w", dict(&[("match", s("wildcard"))]));
    publish(
        &mut a,
        "hist.x.w",
        1,
        &[("exclude", Val::List(vec![Val::UInt(b.session)]))],
    );
    publish(
        &mut a,
        "hist.x.w",
        2,
        &[("eligible_authrole", Val::List(vec![s("admin")]))],
    );
    publish(
        &mut a,
        "hist.x.w",
        3,
        &[("exclude_authrole", Val::List(vec![s("admin")]))],
    );
    publish(&mut a, "hist.y.w", 4, &[("disclose_me", Val::Bool(true))]);
    // Session lists are never kept (a, not excluded, does not see 1 either); authrole lists are
    // applied to the asker (anonymous, so 2 stays hidden).
    assert_eq!(ns(&events(&mut b, wild, &[])), [3, 4]);
    assert_eq!(ns(&events(&mut a, wild, &[])), [3, 4]);
    let mine = events(&mut a, wild, &[("topic", s("hist.y.w"))]);
    let details = mine[0].get("details").expect("details");
    assert_eq!(
        details.get("publisher").and_then(|v| v.as_u64()),
        Some(a.session)
    );
    assert_eq!(
        details
            .get("publisher_authrole")
            .and_then(|v| v.as_str())
            .as_deref(),
        Some("anonymous")
    );
    // The prefix pattern "hist" keeps them too, and the exact subscription's own pattern has no
    // history configured.
    assert!(events(&mut a, sub, &[]).is_empty());
    // A MessagePack caller gets the JSON publisher's payload transcoded.
    let mut m = Client::join(&r.addr, Serializer::MsgPack);
    assert_eq!(ns(&events(&mut m, wild, &[])), [3, 4]);
}

#[test]
fn welcome_announces_event_history() {
    let r = router();
    let mut c = Client::rawsocket(&r.addr, Serializer::Json);
    c.send_hello("realm1");
    let has = c.recv_with(|m| match m {
        Message::Welcome { details, .. } => details
            .get("roles")
            .and_then(|r| r.get("broker"))
            .and_then(|b| b.get("features"))
            .and_then(|f| f.get("event_history"))
            .and_then(|v| v.as_bool()),
        other => panic!("expected WELCOME, got {other:?}"),
    });
    assert_eq!(has, Some(true));
}
