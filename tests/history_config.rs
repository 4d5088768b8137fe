//! Event history configured in the file per realm (`[[realm.history]]`), with the global flag on
//! top, against a two-shard router: each realm keeps its own patterns, a pattern in both keeps the
//! realm's limit, SIGHUP starts new patterns, drops removed ones and keeps the events of kept ones,
//! and publications the router makes (meta events, testaments) are kept like a client's.

mod common;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use common::authz::{sighup, start_with_config, write_config};
use common::meta::shard_of;
use common::{dict, s, Client, Router};
use wampd::protocol::{Message, Serializer, Val};

const SHARDS: usize = 2;

/// The file: `realm1` and `other`, both open to anonymous sessions; `history` is realm1's
/// `[[realm.history]]` tables.
fn config(history: &[(&str, &str, u64)]) -> String {
    let open = |name: &str| {
        format!(
            "[[realm]]\nname = \"{name}\"\nanonymous_role = \"anon\"\n  [[realm.role]]\n  name = \"anon\"\n    [[realm.role.permission]]\n    uri = \"\"\n    match = \"prefix\"\n    allow = [\"call\", \"register\", \"publish\", \"subscribe\"]\n"
        )
    };
    let mut text = open("realm1");
    for (uri, policy, limit) in history {
        text += &format!(
            "  [[realm.history]]\n  uri = \"{uri}\"\n  match = \"{policy}\"\n  limit = {limit}\n"
        );
    }
    text + &open("other")
}

/// Joins `realm`; the client.
fn join(addr: &str, realm: &str) -> Client {
    let mut c = Client::rawsocket(addr, Serializer::Json);
    c.hello(realm);
    c
}

/// One client on each shard of `realm` (sessions landing on a shard already taken are kept open in
/// `spare`, so that their join and leave events do not interleave with the test's).
fn one_per_shard(addr: &str, realm: &str, spare: &mut Vec<Client>) -> Vec<Client> {
    let mut by_shard: Vec<Option<Client>> = (0..SHARDS).map(|_| None).collect();
    for _ in 0..8 * SHARDS {
        let c = join(addr, realm);
        let slot = &mut by_shard[shard_of(c.session, SHARDS)];
        if slot.is_none() {
            *slot = Some(c);
        } else {
            spare.push(c);
        }
        if by_shard.iter().all(Option::is_some) {
            return by_shard.into_iter().map(Option::unwrap).collect();
        }
    }
    panic!("sessions did not spread over {SHARDS} shards");
}

/// Publishes `[n]` on `topic`, acknowledged; the publication id.
fn publish(c: &mut Client, topic: &str, n: u64) -> u64 {
    let request = c.req();
    c.send(&Message::Publish {
        request,
        options: dict(&[("acknowledge", Val::Bool(true))]),
        topic: Cow::Borrowed(topic),
        args: Some(Val::List(vec![Val::UInt(n)])),
        kwargs: None,
    });
    c.recv_with(|m| match m {
        Message::Published {
            request: r,
            publication,
        } if r == request => publication,
        other => panic!("expected PUBLISHED, got {other:?}"),
    })
}

/// Subscribes with `policy` (SUBSCRIBED only: the subscriber never publishes on what it hears).
fn subscribe(c: &mut Client, topic: &str, policy: &str) -> u64 {
    c.subscribe_opts(topic, dict(&[("match", s(policy))]))
}

/// `wamp.subscription.get_events(subscription)` asked by `c` (which subscribes to nothing).
fn events(c: &mut Client, subscription: u64) -> Vec<Val<'static>> {
    let mut r = c
        .call_kw(
            "wamp.subscription.get_events",
            vec![Val::UInt(subscription)],
            None,
        )
        .expect("get_events answers");
    match r.pop() {
        Some(Val::List(events)) => events,
        other => panic!("get_events returned {other:?}"),
    }
}

fn field(e: &Val<'_>, key: &str) -> Val<'static> {
    e.get(key)
        .unwrap_or_else(|| panic!("no {key} in {e:?}"))
        .clone()
        .into_owned()
}

/// The publication ids listed, oldest first.
fn publications(list: &[Val<'_>]) -> Vec<u64> {
    list.iter()
        .map(|e| field(e, "publication").as_u64().expect("an id"))
        .collect()
}

/// Retries `check` (every 50 ms, at most 10 s) until it returns Some.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = check() {
            return t;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn realm_tables_add_to_the_flag_and_sighup_applies_changes() {
    let first = config(&[
        ("hist.kept.", "prefix", 3),
        ("hist.dropped", "exact", 5),
        ("hist.both", "exact", 4),
    ]);
    let path = write_config("history_realms.toml", &first);
    let r = Router::start(
        SHARDS,
        &[
            "--config",
            path.to_str().unwrap(),
            "--event-history",
            "hist.both=2",
        ],
    );
    let mut spare = Vec::new();
    let mut pubs = one_per_shard(&r.addr, "realm1", &mut spare);
    let mut ask = join(&r.addr, "realm1");
    let mut watch = join(&r.addr, "realm1");
    let kept = subscribe(&mut watch, "hist.kept.", "prefix");
    let dropped = subscribe(&mut watch, "hist.dropped", "exact");
    let both = subscribe(&mut watch, "hist.both", "exact");
    let new = subscribe(&mut watch, "hist.new", "exact");

    // Publications from both shards land in one history per pattern, oldest first.
    let mut on_kept = Vec::new();
    for n in 0..5u64 {
        let p = &mut pubs[(n as usize) % SHARDS];
        on_kept.push(publish(p, &format!("hist.kept.t{n}"), n));
        publish(p, "hist.dropped", n);
        publish(p, "hist.both", n);
        publish(p, "hist.new", n);
    }
    let listed = events(&mut ask, kept);
    assert_eq!(publications(&listed), on_kept[2..]);
    let topic = field(&listed[0], "details");
    assert_eq!(
        topic.get("topic").and_then(|t| t.as_str()).as_deref(),
        Some("hist.kept.t2")
    );
    assert!(field(&listed[2], "args").semantic_eq(&Val::List(vec![Val::UInt(4)])));
    assert_eq!(events(&mut ask, dropped).len(), 5);
    assert_eq!(events(&mut ask, both).len(), 4, "realm1's own limit wins");
    assert!(events(&mut ask, new).is_empty(), "not configured yet");

    // The other realm keeps the flag's patterns only, with the flag's limit.
    let mut other = join(&r.addr, "other");
    let mut other_ask = join(&r.addr, "other");
    let other_both = subscribe(&mut other, "hist.both", "exact");
    let other_kept = subscribe(&mut other, "hist.kept.", "prefix");
    let mut on_both = Vec::new();
    for n in 0..4 {
        on_both.push(publish(&mut other, "hist.both", n));
        publish(&mut other, "hist.kept.x", n);
    }
    assert_eq!(
        publications(&events(&mut other_ask, other_both)),
        on_both[2..]
    );
    assert!(events(&mut other_ask, other_kept).is_empty());

    // Reload: hist.kept. stays with a smaller limit, hist.dropped goes, hist.new comes.
    write_config(
        "history_realms.toml",
        &config(&[
            ("hist.kept.", "prefix", 2),
            ("hist.new", "exact", 5),
            ("hist.both", "exact", 4),
        ]),
    );
    sighup(&r);
    for p in pubs.iter_mut() {
        // Each shard takes the new patterns up on its own: wait for each to record.
        eventually("hist.new recorded from every shard", || {
            let id = publish(p, "hist.new", 9);
            publications(&events(&mut ask, new))
                .contains(&id)
                .then_some(())
        });
    }
    assert!(events(&mut ask, dropped).is_empty(), "a removed pattern");
    assert_eq!(
        publications(&events(&mut ask, kept)),
        on_kept[3..],
        "a kept pattern keeps its last events"
    );
    let later = publish(&mut pubs[1], "hist.kept.late", 7);
    assert_eq!(publications(&events(&mut ask, kept)), [on_kept[4], later]);
    assert_eq!(events(&mut other_ask, other_both).len(), 2);
}

/// Item `i` of a list.
fn item(list: &Val<'_>, i: usize) -> Val<'static> {
    match list {
        Val::List(items) => items[i].clone().into_owned(),
        other => panic!("expected a list, got {other:?}"),
    }
}

/// `wamp.session.on_join`/`on_leave` and a testament, with no subscriber at the time: history keeps
/// them, in order, with the arguments a subscriber would have got.
#[test]
fn meta_events_and_testaments_are_kept() {
    let text = config(&[
        ("wamp.session.on_join", "exact", 20),
        ("wamp.session.on_leave", "exact", 20),
        ("hist.testament", "exact", 5),
    ]);
    let r = start_with_config(SHARDS, &write_config("history_meta.toml", &text));
    let mut spare = Vec::new();
    let mut joined = one_per_shard(&r.addr, "realm1", &mut spare);
    let mut dropper = join(&r.addr, "realm1");
    let args = vec![s("hist.testament"), Val::List(vec![Val::UInt(42)])];
    dropper.call_unit("wamp.session.add_testament", args, None);
    // `watch` holds the subscriptions (whose ids `get_events` takes) and hears the events; `ask`
    // asks.
    let mut watch = join(&r.addr, "realm1");
    let joins = subscribe(&mut watch, "wamp.session.on_join", "exact");
    let leaves = subscribe(&mut watch, "wamp.session.on_leave", "exact");
    let testament = subscribe(&mut watch, "hist.testament", "exact");
    let mut ask = join(&r.addr, "realm1");

    // Every join, in the order the sessions joined (`one_per_shard` kept some in `spare`: only
    // the set of those is known, not their order among the first ones).
    let listed = events(&mut ask, joins);
    let order: Vec<u64> = listed
        .iter()
        .map(|e| {
            let details = item(&field(e, "args"), 0);
            assert_eq!(
                details.get("authrole").and_then(|v| v.as_str()).as_deref(),
                Some("anon")
            );
            details.get("session").and_then(|v| v.as_u64()).unwrap()
        })
        .collect();
    let mut first: Vec<u64> = joined.iter().chain(&spare).map(|c| c.session).collect();
    first.sort_unstable();
    let mut head = order[..order.len() - 3].to_vec();
    head.sort_unstable();
    assert_eq!(head, first, "every session joined first, once");
    let last = [dropper.session, watch.session, ask.session];
    assert_eq!(order[order.len() - 3..], last);

    // Leaves: one with GOODBYE, one by dropping the connection (it leaves the testament).
    let (leaver, gone) = (joined[0].session, dropper.session);
    joined[0].leave();
    drop(dropper);
    let left = eventually("two on_leave events", || {
        let l = events(&mut ask, leaves);
        (l.len() >= 2).then_some(l)
    });
    assert_eq!(left.len(), 2);
    let mut left_ids = Vec::new();
    for e in &left {
        let args = field(e, "args");
        left_ids.push(item(&args, 0).as_u64().unwrap());
        assert!(item(&args, 1).as_str().is_some(), "authid");
        assert_eq!(item(&args, 2).as_str().as_deref(), Some("anon"));
    }
    left_ids.sort_unstable();
    let mut want = vec![leaver, gone];
    want.sort_unstable();
    assert_eq!(left_ids, want);
    let kept = eventually("the testament", || {
        let t = events(&mut ask, testament);
        (!t.is_empty()).then_some(t)
    });
    assert_eq!(kept.len(), 1);
    assert!(field(&kept[0], "args").semantic_eq(&Val::List(vec![Val::UInt(42)])));
    assert!(
        field(&kept[0], "details").get("publisher").is_none(),
        "the router publishes it"
    );
}
