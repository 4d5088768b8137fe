//! Advanced PubSub across shards: subscriber black/white listing, publisher identification and
//! event retention, with publishers and subscribers on different shards and serializers.
//!
//! Absence is checked without sleeping: every filtered publication is followed by a plain one
//! (both acknowledged, so both are queued everywhere when PUBLISHED arrives), and a subscriber that
//! must not get the first sees the second as its next EVENT.

mod common;

use std::borrow::Cow;

use common::pubsub::{ids, join_on, next_args, next_event, publish_with, strs};
use common::{dict, Client, Router};
use wampd::protocol::{Message, Serializer, Val};

const SHARDS: usize = 3;
const JSON: Serializer = Serializer::Json;
const MSGPACK: Serializer = Serializer::MsgPack;
const CBOR: Serializer = Serializer::Cbor;

/// PUBLISH options of one case, and which subscribers (by index) must receive it.
type Options = Vec<(&'static str, Val<'static>)>;
type Receives = Box<dyn Fn(usize) -> bool>;

fn authid(c: &Client) -> String {
    format!("anonymous-{}", c.session)
}

fn get_str(d: &Val<'_>, key: &str) -> Option<String> {
    d.get(key).and_then(|v| v.as_str()).map(|s| s.into_owned())
}

/// Publishes each case's filtered publication, then a plain marker, and checks that exactly the
/// subscribers the case names got the first (each subscriber's next EVENTs are read in order).
fn expect_receivers(
    publisher: &mut Client,
    topic: &str,
    subs: &mut [Client],
    cases: Vec<(Options, Receives)>,
) {
    for (n, (options, receives)) in cases.into_iter().enumerate() {
        let filtered = 2 * n as u64 + 1;
        let marker = filtered + 1;
        publish_with(publisher, topic, options, filtered);
        publish_with(publisher, topic, vec![], marker);
        for (i, s) in subs.iter_mut().enumerate() {
            let want = if receives(i) {
                vec![filtered, marker]
            } else {
                vec![marker]
            };
            assert_eq!(next_args(s, want.len()), want, "case {n}, subscriber {i}");
        }
    }
}

#[test]
fn welcome_announces_the_advanced_pubsub_features() {
    let r = Router::start(1, &[]);
    let mut c = Client::rawsocket(&r.addr, JSON);
    c.send_hello("realm1");
    let features = c.recv_with(|m| match m {
        Message::Welcome { details, .. } => details
            .get("roles")
            .and_then(|r| r.get("broker"))
            .and_then(|b| b.get("features"))
            .map(|f| f.into_owned())
            .expect("broker features"),
        other => panic!("expected WELCOME, got {other:?}"),
    });
    for name in [
        "subscriber_blackwhite_listing",
        "publisher_identification",
        "event_retention",
    ] {
        assert_eq!(
            features.get(name).and_then(|v| v.as_bool()),
            Some(true),
            "{name}"
        );
    }
}

#[test]
fn black_and_white_lists_reach_exactly_the_listed_subscribers_on_every_shard() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    let mut publisher = join_on(&r.addr, SHARDS, 0, JSON, &mut spare);
    // Two subscribers per shard, the publisher's shard included, in all three serializers.
    let mut subs: Vec<Client> = (0..6)
        .map(|i| {
            join_on(
                &r.addr,
                SHARDS,
                i % SHARDS,
                [JSON, MSGPACK, CBOR][i / 2],
                &mut spare,
            )
        })
        .collect();
    let topic = "pubsub.lists";
    let sub_id = subs[0].subscribe(topic);
    for s in &mut subs[1..] {
        assert_eq!(s.subscribe(topic), sub_id);
    }
    let sid: Vec<u64> = subs.iter().map(|c| c.session).collect();
    let aid: Vec<String> = subs.iter().map(authid).collect();
    let every = |_: usize| true;
    let cases: Vec<(Options, Receives)> = vec![
        (
            vec![("exclude", ids(&[sid[1], sid[4]]))],
            Box::new(|i| i != 1 && i != 4),
        ),
        (
            vec![("eligible", ids(&[sid[2], sid[3], 12345]))],
            Box::new(|i| i == 2 || i == 3),
        ),
        (
            vec![
                ("eligible", ids(&[sid[2], sid[3]])),
                ("exclude", ids(&[sid[3]])),
            ],
            Box::new(|i| i == 2),
        ),
        (vec![("eligible", ids(&[]))], Box::new(|_| false)),
        (
            vec![("exclude_authid", strs(&[&aid[0], &aid[5]]))],
            Box::new(|i| i != 0 && i != 5),
        ),
        (
            vec![("eligible_authid", strs(&[&aid[4]]))],
            Box::new(|i| i == 4),
        ),
        (
            vec![("exclude_authrole", strs(&["anonymous"]))],
            Box::new(|_| false),
        ),
        (
            vec![("eligible_authrole", strs(&["anonymous"]))],
            Box::new(every),
        ),
        (
            vec![("eligible_authrole", strs(&["admin"]))],
            Box::new(|_| false),
        ),
        (
            vec![
                ("eligible_authrole", strs(&["anonymous"])),
                ("eligible_authid", strs(&[&aid[1], &aid[2], &aid[5]])),
                ("exclude", ids(&[sid[2]])),
                ("exclude_authid", strs(&[&aid[5]])),
            ],
            Box::new(|i| i == 1),
        ),
        // exclude_me still holds next to the lists; the publisher is no subscriber here.
        (
            vec![
                ("exclude_me", Val::Bool(false)),
                ("exclude", ids(&[sid[0]])),
            ],
            Box::new(|i| i != 0),
        ),
    ];
    expect_receivers(&mut publisher, topic, &mut subs, cases);
}

/// A fanout large next to the lists, where each shard settles its subscribers by the few listed
/// ids it holds: the same receivers as the one-by-one check, whichever shard holds which ids, and
/// also when one shard holds more listed ids than that shortcut takes.
#[test]
fn lists_in_a_large_fanout_reach_exactly_the_listed_subscribers() {
    const PER_SHARD: usize = 20;
    let r = Router::start(2, &[]);
    let mut spare = Vec::new();
    let mut publisher = join_on(&r.addr, 2, 1, JSON, &mut spare);
    // Subscribers 0..20 on shard 0, 20..40 on shard 1.
    let mut subs: Vec<Client> = (0..2 * PER_SHARD)
        .map(|i| {
            join_on(
                &r.addr,
                2,
                i / PER_SHARD,
                [JSON, MSGPACK, CBOR][i % 3],
                &mut spare,
            )
        })
        .collect();
    let topic = "pubsub.lists.large";
    let sub_id = subs[0].subscribe(topic);
    for s in &mut subs[1..] {
        assert_eq!(s.subscribe(topic), sub_id);
    }
    let sid: Vec<u64> = subs.iter().map(|c| c.session).collect();
    let some = |idx: &[usize], unknown: &[u64]| {
        let mut v: Vec<u64> = idx.iter().map(|&i| sid[i]).collect();
        v.extend_from_slice(unknown);
        ids(&v)
    };
    let nine: Vec<usize> = (0..9).collect();
    let cases: Vec<(Options, Receives)> = vec![
        (
            vec![("exclude", some(&[1, 5, 7, 33], &[1, 2]))],
            Box::new(|i| ![1, 5, 7, 33].contains(&i)),
        ),
        (
            vec![("exclude", some(&[], &[11, 12, 13]))],
            Box::new(|_| true),
        ),
        (
            vec![("eligible", some(&[2, 3], &[77]))],
            Box::new(|i| i == 2 || i == 3),
        ),
        (
            vec![
                ("eligible", some(&[2, 3, 21, 22, 23], &[])),
                ("exclude", some(&[3, 22], &[5])),
            ],
            Box::new(|i| [2, 21, 23].contains(&i)),
        ),
        (vec![("exclude", some(&nine, &[]))], Box::new(|i| i >= 9)),
        (vec![("eligible", some(&nine, &[]))], Box::new(|i| i < 9)),
    ];
    expect_receivers(&mut publisher, topic, &mut subs, cases);
}

#[test]
fn a_disclosed_publisher_is_named_in_every_event_and_only_then() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    let mut publisher = join_on(&r.addr, SHARDS, 1, CBOR, &mut spare);
    let mut local = join_on(&r.addr, SHARDS, 1, JSON, &mut spare);
    let mut remote = join_on(&r.addr, SHARDS, 2, MSGPACK, &mut spare);
    let exact = local.subscribe("pubsub.disclose.t");
    let prefix = remote.subscribe_opts(
        "pubsub.disclose",
        dict(&[("match", Val::Str(Cow::Borrowed("prefix")))]),
    );
    publish_with(
        &mut publisher,
        "pubsub.disclose.t",
        vec![("disclose_me", Val::Bool(true))],
        1,
    );
    publish_with(&mut publisher, "pubsub.disclose.t", vec![], 2);
    for (c, sub, pattern) in [(&mut local, exact, false), (&mut remote, prefix, true)] {
        let (s, _, details, n) = next_event(c);
        assert_eq!((s, n), (sub, 1));
        assert_eq!(
            details.get("publisher").and_then(|v| v.as_u64()),
            Some(publisher.session)
        );
        assert_eq!(
            get_str(&details, "publisher_authid"),
            Some(authid(&publisher))
        );
        assert_eq!(
            get_str(&details, "publisher_authrole").as_deref(),
            Some("anonymous")
        );
        assert_eq!(
            get_str(&details, "topic").as_deref(),
            pattern.then_some("pubsub.disclose.t")
        );
        let (_, _, details, n) = next_event(c);
        assert_eq!(n, 2);
        assert!(details.get("publisher").is_none(), "{details:?}");
        assert!(details.get("publisher_authid").is_none(), "{details:?}");
    }
}

/// Subscribes with `options` and returns (subscription, the retained events that follow SUBSCRIBED
/// as (publication, details, argument)), reading until the acknowledged marker publication `marker`
/// on `marker_topic` shows that nothing else is queued.
fn subscribe_retained(
    c: &mut Client,
    publisher: &mut Client,
    topic: &str,
    options: Val<'_>,
    marker_topic: &str,
) -> (u64, Vec<(u64, Val<'static>, u64)>) {
    let sub = c.subscribe_opts(topic, options);
    publish_with(publisher, marker_topic, vec![], 0);
    let mut got = Vec::new();
    for _ in 0..100 {
        let (s, publication, details, n) = next_event(c);
        if n == 0 {
            return (sub, got);
        }
        assert_eq!(s, sub);
        got.push((publication, details, n));
    }
    panic!("no marker");
}

#[test]
fn retained_events_reach_late_subscribers_on_any_shard() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    let mut publisher = join_on(&r.addr, SHARDS, 0, JSON, &mut spare);
    let mut other = join_on(&r.addr, SHARDS, 2, CBOR, &mut spare);
    let get = |m: Option<&'static str>| {
        let mut o = vec![("get_retained", Val::Bool(true))];
        if let Some(m) = m {
            o.push(("match", Val::Str(Cow::Borrowed(m))));
        }
        dict(&o)
    };
    // Retained with nobody subscribed; the later retain on a topic replaces the earlier one.
    publish_with(
        &mut publisher,
        "ret.a.x",
        vec![("retain", Val::Bool(true))],
        10,
    );
    let a_x = publish_with(
        &mut publisher,
        "ret.a.x",
        vec![
            ("retain", Val::Bool(true)),
            ("disclose_me", Val::Bool(true)),
        ],
        11,
    );
    let b_x = publish_with(&mut other, "ret.b.x", vec![("retain", Val::Bool(true))], 20);
    publish_with(&mut publisher, "ret.a.y", vec![], 30); // not retained
    publish_with(
        &mut publisher,
        "ret.a.z",
        vec![("retain", Val::Bool(true)), ("eligible", ids(&[1]))],
        40,
    );

    for (shard, ser) in [(0, MSGPACK), (1, CBOR), (2, JSON)] {
        let mut late = join_on(&r.addr, SHARDS, shard, ser, &mut spare);
        let marker = format!("mark.ret.{shard}");
        late.subscribe(&marker);

        let (sub, got) =
            subscribe_retained(&mut late, &mut publisher, "ret.a.x", get(None), &marker);
        assert_eq!(got.len(), 1, "shard {shard}: {got:?}");
        let (publication, details, n) = &got[0];
        assert_eq!((*publication, *n), (a_x, 11));
        assert_eq!(
            details.get("retained").and_then(|v| v.as_bool()),
            Some(true)
        );
        assert_eq!(
            details.get("publisher").and_then(|v| v.as_u64()),
            Some(publisher.session)
        );
        assert!(details.get("topic").is_none());
        assert!(sub > 0);

        // A pattern subscription gets every matching topic's retained event, with its topic; the
        // one the subscriber was not eligible for is withheld.
        let (_, got) = subscribe_retained(
            &mut late,
            &mut publisher,
            "ret.",
            get(Some("prefix")),
            &marker,
        );
        let mut seen: Vec<(u64, String)> = got
            .iter()
            .map(|(_, d, n)| (*n, get_str(d, "topic").unwrap_or_default()))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![(11, "ret.a.x".into()), (20, "ret.b.x".into())],
            "shard {shard}"
        );
        assert!(got.iter().any(|(p, _, _)| *p == b_x));
        let (_, got) = subscribe_retained(
            &mut late,
            &mut publisher,
            "ret..x",
            get(Some("wildcard")),
            &marker,
        );
        assert_eq!(got.len(), 2, "shard {shard}");

        // Without get_retained: nothing.
        let (_, got) = subscribe_retained(
            &mut late,
            &mut publisher,
            "ret.b.x",
            Val::empty_dict(),
            &marker,
        );
        assert!(got.is_empty(), "{got:?}");
    }
    // A publisher that excluded itself does not get its own retained event back.
    other.subscribe("mark.ret.other");
    let (_, got) = subscribe_retained(
        &mut other,
        &mut publisher,
        "ret.b.x",
        get(None),
        "mark.ret.other",
    );
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn wrongly_typed_listing_options_are_protocol_violations() {
    let r = Router::start(SHARDS, &[]);
    for (key, value) in [
        ("exclude", Val::Str(Cow::Borrowed("x"))),
        ("eligible_authrole", ids(&[1])),
        ("retain", Val::UInt(1)),
        ("disclose_me", Val::Str(Cow::Borrowed("yes"))),
    ] {
        let mut c = Client::join(&r.addr, JSON);
        let request = c.req();
        c.send(&Message::Publish {
            request,
            options: dict(&[(key, value)]),
            topic: Cow::Borrowed("pubsub.bad"),
            args: None,
            kwargs: None,
        });
        c.expect_abort("wamp.error.protocol_violation");
    }
}
