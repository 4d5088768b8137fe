//! The meta API against a two-shard router: answers gathered from both shards, meta events in
//! order, kills and testaments across shards (with an abrupt transport drop).

mod common;

use std::time::Duration;

use common::meta::{ids, join_on, shard_of};
use common::{dict, s, Client, Router};
use wampd::protocol::Val;

const SHARDS: usize = 2;
const QUIET: Duration = Duration::from_millis(300);

fn router() -> Router {
    Router::start(SHARDS, &[])
}

fn text(v: &Val<'_>, key: &str) -> String {
    v.get(key)
        .and_then(|x| x.as_str())
        .unwrap_or_else(|| panic!("no {key} in {v:?}"))
        .into_owned()
}

#[test]
fn session_procedures_see_every_shard() {
    let r = router();
    let mut a = join_on(&r.addr, 0, SHARDS);
    let b = join_on(&r.addr, 1, SHARDS);
    let c = join_on(&r.addr, 1, SHARDS);
    assert_eq!(a.call1("wamp.session.count", vec![]).as_u64(), Some(3));
    let mut listed = ids(&a.call1("wamp.session.list", vec![]));
    listed.sort_unstable();
    let mut want = vec![a.session, b.session, c.session];
    want.sort_unstable();
    assert_eq!(listed, want);
    let roles = Val::List(vec![s("nobody")]);
    assert_eq!(a.call1("wamp.session.count", vec![roles]).as_u64(), Some(0));
    let roles = Val::List(vec![s("anonymous")]);
    assert_eq!(a.call1("wamp.session.count", vec![roles]).as_u64(), Some(3));
    let got = a.call1("wamp.session.get", vec![Val::UInt(b.session)]);
    assert_eq!(got.get("session").and_then(|v| v.as_u64()), Some(b.session));
    assert_eq!(text(&got, "authrole"), "anonymous");
    assert_eq!(text(&got, "authmethod"), "anonymous");
    // An id of shard 1 that nobody has.
    let missing = (1..1000u64)
        .map(|k| b.session + 2 * k)
        .find(|id| *id != c.session)
        .unwrap();
    assert_eq!(shard_of(missing, SHARDS), 1);
    assert_eq!(
        a.call_error("wamp.session.get", vec![Val::UInt(missing)], None),
        "wamp.error.no_such_session"
    );
    assert_eq!(
        a.call_error("wamp.session.nonesuch", vec![], None),
        "wamp.error.no_such_procedure"
    );
}

#[test]
fn subscription_and_registration_procedures_are_exact_across_shards() {
    let r = router();
    let mut a = join_on(&r.addr, 0, SHARDS);
    let mut b = join_on(&r.addr, 1, SHARDS);
    let sub_a = a.subscribe("meta.t1");
    let sub_b = b.subscribe("meta.t1");
    assert_eq!(sub_a, sub_b);
    let prefix = b.subscribe_opts("meta", dict(&[("match", s("prefix"))]));
    let reg = b.register("meta.p1");

    let lists = a.call1("wamp.subscription.list", vec![]);
    assert_eq!(ids(&lists.get("exact").unwrap()), vec![sub_a]);
    assert_eq!(ids(&lists.get("prefix").unwrap()), vec![prefix]);
    assert_eq!(ids(&lists.get("wildcard").unwrap()), Vec::<u64>::new());
    let n = a.call1(
        "wamp.subscription.count_subscribers",
        vec![Val::UInt(sub_a)],
    );
    assert_eq!(n.as_u64(), Some(2));
    let mut who = ids(&a.call1("wamp.subscription.list_subscribers", vec![Val::UInt(sub_a)]));
    who.sort_unstable();
    let mut want = vec![a.session, b.session];
    want.sort_unstable();
    assert_eq!(who, want);
    let found = a.call1("wamp.subscription.lookup", vec![s("meta.t1")]);
    assert_eq!(found.as_u64(), Some(sub_a));
    let opts = dict(&[("match", s("prefix"))]);
    let found = a.call1("wamp.subscription.lookup", vec![s("meta"), opts]);
    assert_eq!(found.as_u64(), Some(prefix));
    assert!(a
        .call1("wamp.subscription.lookup", vec![s("meta.none")])
        .is_null());
    let mut matched = ids(&a.call1("wamp.subscription.match", vec![s("meta.t1")]));
    matched.sort_unstable();
    let mut want = vec![sub_a, prefix];
    want.sort_unstable();
    assert_eq!(matched, want);
    assert!(a
        .call1("wamp.subscription.match", vec![s("other.t")])
        .is_null());
    let got = a.call1("wamp.subscription.get", vec![Val::UInt(prefix)]);
    assert_eq!(text(&got, "uri"), "meta");
    assert_eq!(text(&got, "match"), "prefix");
    assert!(text(&got, "created").ends_with('Z'));
    assert_eq!(
        a.call_error("wamp.subscription.get", vec![Val::UInt(7)], None),
        "wamp.error.no_such_subscription"
    );

    let lists = a.call1("wamp.registration.list", vec![]);
    assert_eq!(ids(&lists.get("exact").unwrap()), vec![reg]);
    let found = a.call1("wamp.registration.lookup", vec![s("meta.p1")]);
    assert_eq!(found.as_u64(), Some(reg));
    let best = a.call1("wamp.registration.match", vec![s("meta.p1")]);
    assert_eq!(best.as_u64(), Some(reg));
    assert!(a
        .call1("wamp.registration.match", vec![s("meta.p2")])
        .is_null());
    let callees = a.call1("wamp.registration.list_callees", vec![Val::UInt(reg)]);
    assert_eq!(ids(&callees), vec![b.session]);
    let n = a.call1("wamp.registration.count_callees", vec![Val::UInt(reg)]);
    assert_eq!(n.as_u64(), Some(1));
    let got = a.call1("wamp.registration.get", vec![Val::UInt(reg)]);
    assert_eq!(text(&got, "uri"), "meta.p1");
    assert_eq!(text(&got, "invoke"), "single");

    // Gone from shard 1: the answers follow.
    b.leave();
    let n = a.call1(
        "wamp.subscription.count_subscribers",
        vec![Val::UInt(sub_a)],
    );
    assert_eq!(n.as_u64(), Some(1));
    assert_eq!(
        a.call_error("wamp.registration.get", vec![Val::UInt(reg)], None),
        "wamp.error.no_such_registration"
    );
}

#[test]
fn meta_events_come_in_order_from_every_shard() {
    let r = router();
    let mut m = join_on(&r.addr, 0, SHARDS);
    let topics = [
        "wamp.session.on_join",
        "wamp.session.on_leave",
        "wamp.subscription.on_create",
        "wamp.subscription.on_subscribe",
        "wamp.subscription.on_unsubscribe",
        "wamp.subscription.on_delete",
        "wamp.registration.on_create",
        "wamp.registration.on_register",
        "wamp.registration.on_unregister",
        "wamp.registration.on_delete",
    ];
    let subs = m.subscribe_all(&topics);
    let name = |sub: u64| topics[subs.iter().position(|&x| x == sub).expect("known")];
    m.drain_events(QUIET); // events about m's own meta subscriptions

    let mut x = join_on(&r.addr, 1, SHARDS);
    let mut y = join_on(&r.addr, 1, SHARDS);
    // Sessions that landed on shard 0 first (and left) show up too; x and y must be among those
    // that joined.
    let joined: Vec<u64> = m
        .drain_events(QUIET)
        .iter()
        .filter(|e| name(e.0) == "wamp.session.on_join")
        .map(|e| e.1[0].get("session").and_then(|v| v.as_u64()).unwrap())
        .collect();
    assert!(
        joined.contains(&x.session) && joined.contains(&y.session),
        "{joined:?}"
    );

    let id = x.subscribe("meta.ev");
    let ev = m.drain_events(QUIET);
    let got: Vec<&str> = ev.iter().map(|e| name(e.0)).collect();
    assert_eq!(
        got,
        [
            "wamp.subscription.on_create",
            "wamp.subscription.on_subscribe"
        ]
    );
    assert_eq!(ev[0].1[0].as_u64(), Some(x.session));
    assert_eq!(ev[0].1[1].get("id").and_then(|v| v.as_u64()), Some(id));
    assert_eq!(
        ev[0].1[1].get("uri").and_then(|v| v.as_str()).as_deref(),
        Some("meta.ev")
    );
    assert_eq!(y.subscribe("meta.ev"), id);
    let got: Vec<&str> = m.drain_events(QUIET).iter().map(|e| name(e.0)).collect();
    assert_eq!(got, ["wamp.subscription.on_subscribe"]);

    let reg = y.register("meta.proc");
    let ev = m.drain_events(QUIET);
    let got: Vec<&str> = ev.iter().map(|e| name(e.0)).collect();
    assert_eq!(
        got,
        [
            "wamp.registration.on_create",
            "wamp.registration.on_register"
        ]
    );
    assert_eq!(ids(&Val::List(ev[1].1.clone())), vec![y.session, reg]);

    x.leave();
    let got: Vec<&str> = m.drain_events(QUIET).iter().map(|e| name(e.0)).collect();
    assert_eq!(
        got,
        ["wamp.subscription.on_unsubscribe", "wamp.session.on_leave"]
    );
    // The last subscriber drops its transport without GOODBYE.
    let (ysess, _) = (y.session, ());
    drop(y);
    let ev = m.drain_events(QUIET);
    let got: Vec<&str> = ev.iter().map(|e| name(e.0)).collect();
    assert_eq!(
        got,
        [
            "wamp.subscription.on_unsubscribe",
            "wamp.subscription.on_delete",
            "wamp.registration.on_unregister",
            "wamp.registration.on_delete",
            "wamp.session.on_leave"
        ]
    );
    let leave = &ev.last().unwrap().1;
    assert_eq!(leave[0].as_u64(), Some(ysess));
    assert_eq!(
        leave[1].as_str().as_deref(),
        Some(&*format!("anonymous-{ysess}"))
    );
    assert_eq!(leave[2].as_str().as_deref(), Some("anonymous"));
}

#[test]
fn kill_closes_sessions_on_other_shards() {
    let r = router();
    let mut a = join_on(&r.addr, 0, SHARDS);
    let mut b = join_on(&r.addr, 1, SHARDS);
    assert_eq!(
        a.call_error("wamp.session.kill", vec![Val::UInt(a.session)], None),
        "wamp.error.no_such_session"
    );
    let bad_reason = dict(&[("reason", s("not a uri"))]);
    assert_eq!(
        a.call_error(
            "wamp.session.kill",
            vec![Val::UInt(b.session)],
            Some(bad_reason)
        ),
        "wamp.error.invalid_uri"
    );
    a.call_unit("wamp.session.kill", vec![Val::UInt(b.session)], None);
    assert_eq!(b.expect_goodbye(), ("wamp.close.killed".to_string(), None));
    b.expect_closed();

    let mut c = join_on(&r.addr, 1, SHARDS);
    let kw = dict(&[("reason", s("meta.custom")), ("message", s("go away"))]);
    a.call_unit("wamp.session.kill", vec![Val::UInt(c.session)], Some(kw));
    assert_eq!(
        c.expect_goodbye(),
        ("meta.custom".to_string(), Some("go away".to_string()))
    );

    let mut d = join_on(&r.addr, 0, SHARDS);
    let mut e = join_on(&r.addr, 1, SHARDS);
    let n = a.call1("wamp.session.kill_by_authrole", vec![s("anonymous")]);
    assert_eq!(n.as_u64(), Some(2), "everyone but the caller");
    d.expect_goodbye();
    e.expect_goodbye();
    let mut f = join_on(&r.addr, 1, SHARDS);
    let authid = format!("anonymous-{}", f.session);
    let killed = a.call1("wamp.session.kill_by_authid", vec![s(&authid)]);
    assert_eq!(ids(&killed), vec![f.session]);
    f.expect_goodbye();
    assert_eq!(a.call1("wamp.session.count", vec![]).as_u64(), Some(1));
}

#[test]
fn testaments_are_published_when_a_session_drops() {
    let r = router();
    let mut a = join_on(&r.addr, 0, SHARDS);
    let sub = a.subscribe("meta.will");
    let mut b = join_on(&r.addr, 1, SHARDS);
    let add = |c: &mut Client, word: &str, scope: &str| {
        let kw = dict(&[("scope", s(scope))]);
        let args = vec![s("meta.will"), Val::List(vec![s(word)]), dict(&[])];
        c.call_unit("wamp.session.add_testament", args, Some(kw));
    };
    add(&mut b, "destroyed-1", "destroyed");
    add(&mut b, "detached-1", "detached");
    add(&mut b, "destroyed-2", "destroyed");
    assert_eq!(
        b.call_error("wamp.session.add_testament", vec![s("wamp.fake")], None),
        "wamp.error.invalid_uri"
    );
    drop(b); // no GOODBYE
    let words: Vec<String> = a
        .drain_events(QUIET * 2)
        .into_iter()
        .map(|(id, args)| {
            assert_eq!(id, sub);
            args[0].as_str().unwrap().into_owned()
        })
        .collect();
    assert_eq!(words, ["detached-1", "destroyed-1", "destroyed-2"]);

    let mut c = join_on(&r.addr, 1, SHARDS);
    add(&mut c, "flushed", "destroyed");
    c.call_unit("wamp.session.flush_testaments", vec![], None);
    add(&mut c, "kept", "detached");
    c.leave();
    let words: Vec<String> = a
        .drain_events(QUIET)
        .into_iter()
        .map(|(_, args)| args[0].as_str().unwrap().into_owned())
        .collect();
    assert_eq!(words, ["kept"]);
}

#[test]
fn welcome_announces_the_meta_api() {
    let r = router();
    let mut c = Client::rawsocket(&r.addr, wampd::protocol::Serializer::Json);
    c.send_hello("realm1");
    let features = |details: &Val<'_>, role: &str| -> Vec<String> {
        let f = details
            .get("roles")
            .and_then(|r| r.get(role))
            .and_then(|r| r.get("features"))
            .map(Val::into_owned);
        match f {
            Some(Val::Dict(d)) => d.into_iter().map(|(k, _)| k.into_owned()).collect(),
            other => panic!("no {role} features: {other:?}"),
        }
    };
    let (broker, dealer) = c.recv_with(|m| match m {
        wampd::protocol::Message::Welcome { details, .. } => {
            (features(&details, "broker"), features(&details, "dealer"))
        }
        other => panic!("expected WELCOME, got {other:?}"),
    });
    for f in ["session_meta_api", "subscription_meta_api"] {
        assert!(
            broker.iter().any(|b| b == f),
            "broker lacks {f}: {broker:?}"
        );
    }
    for f in [
        "session_meta_api",
        "registration_meta_api",
        "testament_meta_api",
    ] {
        assert!(
            dealer.iter().any(|d| d == f),
            "dealer lacks {f}: {dealer:?}"
        );
    }
}

/// REGISTERs `procedure` with `invoke` = `policy`; the registration id.
fn register_shared(c: &mut Client, procedure: &str, policy: &str) -> u64 {
    let request = c.req();
    c.send(&wampd::protocol::Message::Register {
        request,
        options: dict(&[("invoke", s(policy))]),
        procedure: std::borrow::Cow::Borrowed(procedure),
    });
    c.recv_with(|m| match m {
        wampd::protocol::Message::Registered {
            request: r,
            registration,
        } if r == request => registration,
        other => panic!("expected REGISTERED, got {other:?}"),
    })
}

#[test]
fn shared_registrations_are_created_once_and_deleted_with_their_last_callee() {
    let r = router();
    let mut m = join_on(&r.addr, 0, SHARDS);
    let topics = [
        "wamp.registration.on_create",
        "wamp.registration.on_register",
        "wamp.registration.on_unregister",
        "wamp.registration.on_delete",
    ];
    let subs = m.subscribe_all(&topics);
    let name = |sub: u64| topics[subs.iter().position(|&x| x == sub).expect("known")];
    let mut x = join_on(&r.addr, 1, SHARDS);
    let mut y = join_on(&r.addr, 0, SHARDS);
    let mut z = join_on(&r.addr, 1, SHARDS);
    let reg = register_shared(&mut x, "meta.shared", "roundrobin");
    assert_eq!(register_shared(&mut y, "meta.shared", "roundrobin"), reg);
    assert_eq!(register_shared(&mut z, "meta.shared", "roundrobin"), reg);
    let ev = m.drain_events(QUIET);
    let got: Vec<&str> = ev.iter().map(|e| name(e.0)).collect();
    assert_eq!(
        got,
        [
            "wamp.registration.on_create",
            "wamp.registration.on_register",
            "wamp.registration.on_register",
            "wamp.registration.on_register"
        ]
    );
    assert_eq!(
        ev[0].1[1].get("invoke").and_then(|v| v.as_str()).as_deref(),
        Some("roundrobin")
    );
    // Callees in registration order, whichever shard they are on.
    let callees = m.call1("wamp.registration.list_callees", vec![Val::UInt(reg)]);
    assert_eq!(ids(&callees), vec![x.session, y.session, z.session]);
    let n = m.call1("wamp.registration.count_callees", vec![Val::UInt(reg)]);
    assert_eq!(n.as_u64(), Some(3));
    let got = m.call1("wamp.registration.get", vec![Val::UInt(reg)]);
    assert_eq!(text(&got, "invoke"), "roundrobin");

    y.leave();
    drop(x); // abrupt
    let ev = m.drain_events(QUIET);
    let got: Vec<&str> = ev.iter().map(|e| name(e.0)).collect();
    assert_eq!(
        got,
        [
            "wamp.registration.on_unregister",
            "wamp.registration.on_unregister"
        ]
    );
    let callees = m.call1("wamp.registration.list_callees", vec![Val::UInt(reg)]);
    assert_eq!(ids(&callees), vec![z.session]);
    z.leave();
    let ev = m.drain_events(QUIET);
    let got: Vec<&str> = ev.iter().map(|e| name(e.0)).collect();
    assert_eq!(
        got,
        [
            "wamp.registration.on_unregister",
            "wamp.registration.on_delete"
        ]
    );
    assert_eq!(ids(&Val::List(ev[1].1.clone())), vec![z.session, reg]);
}

#[test]
fn kill_all_closes_everyone_else_without_leave_events_or_testaments() {
    let r = router();
    let mut a = join_on(&r.addr, 0, SHARDS);
    a.subscribe_all(&["wamp.session.on_leave", "meta.will"]);
    let mut b = join_on(&r.addr, 1, SHARDS);
    let mut c = join_on(&r.addr, 0, SHARDS);
    for x in [&mut b, &mut c] {
        let args = vec![s("meta.will"), Val::List(vec![s("bye")]), dict(&[])];
        x.call_unit("wamp.session.add_testament", args, None);
    }
    let kw = dict(&[("message", s("maintenance"))]);
    let n = a
        .call_kw("wamp.session.kill_all", vec![], Some(kw))
        .expect("kill_all");
    assert_eq!(n[0].as_u64(), Some(2));
    for x in [&mut b, &mut c] {
        assert_eq!(
            x.expect_goodbye(),
            (
                "wamp.close.killed".to_string(),
                Some("maintenance".to_string())
            )
        );
    }
    assert!(
        a.drain_events(QUIET).is_empty(),
        "no on_leave, no testament"
    );
    assert_eq!(a.call1("wamp.session.count", vec![]).as_u64(), Some(1));
}

#[test]
fn session_get_describes_the_transport() {
    let r = router();
    let mut a = join_on(&r.addr, 0, SHARDS);
    let b = join_on(&r.addr, 1, SHARDS);
    let got = a.call1("wamp.session.get", vec![Val::UInt(b.session)]);
    let t = got.get("transport").expect("transport");
    assert_eq!(text(&t, "type"), "rawsocket");
    assert_eq!(text(&t, "serializer"), "json");
    assert!(text(&t, "peer").starts_with("tcp4:127.0.0.1:"), "{t:?}");
    assert_eq!(t.get("is_secure").and_then(|v| v.as_bool()), Some(false));
    let w = Client::join_ws(&r.addr, wampd::protocol::Serializer::Cbor);
    let got = a.call1("wamp.session.get", vec![Val::UInt(w.session)]);
    let t = got.get("transport").expect("transport");
    assert_eq!(text(&t, "type"), "websocket");
    assert_eq!(text(&t, "protocol"), "wamp.2.cbor");
    assert_eq!(text(&got, "authid"), format!("anonymous-{}", w.session));
}
