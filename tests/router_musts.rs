//! The Basic Profile's MUSTs that concern routing: answers to INVOCATIONs that were never sent,
//! router-owned `wamp.` URIs, authentication methods, session ids across shards, and the router's
//! own GOODBYE at shutdown.

mod common;

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{dict, list, s, Client, Router};
use wampd::protocol::{codes, Message, Serializer, Val};

const JSON: Serializer = Serializer::Json;
const CBOR: Serializer = Serializer::Cbor;

/// A YIELD for a call that has already ended (here: the caller left) is dropped quietly; the
/// callee's session carries on.
#[test]
fn a_yield_for_an_ended_call_is_dropped_quietly() {
    let r = Router::start(2, &[]);
    let mut callee = Client::join(&r.addr, JSON); // shard 0
    let mut caller = Client::join(&r.addr, CBOR); // shard 1
    callee.register("slow.proc");
    caller.send_call("slow.proc", list(vec![]));
    let (inv, _) = callee.invocation();
    drop(caller);
    std::thread::sleep(Duration::from_millis(100));
    callee.send_yield(inv, list(vec![s("too late")]));
    callee.send(&Message::Error {
        request_type: codes::INVOCATION,
        request: inv,
        details: Val::empty_dict(),
        error: Cow::Borrowed("app.late"),
        args: None,
        kwargs: None,
    });
    callee.publish_ack("still.here", list(vec![]));
}

#[test]
fn clients_may_not_register_or_publish_router_uris_but_may_call_and_subscribe() {
    let r = Router::start(2, &[]);
    let mut c = Client::join(&r.addr, JSON);
    let mut other = Client::join(&r.addr, JSON);
    let sub = other.subscribe("wamp.session.on_join");
    assert!(sub > 0, "subscribing to a meta topic is allowed");

    for (policy, uri) in [("exact", "wamp.session.get"), ("prefix", "wamp.")] {
        let request = c.req();
        c.send(&Message::Register {
            request,
            options: dict(&[("match", s(policy))]),
            procedure: Cow::Borrowed(uri),
        });
        c.expect_error_uri(codes::REGISTER, request, "wamp.error.invalid_uri");
    }

    let request = c.req();
    c.send(&Message::Publish {
        request,
        options: dict(&[("acknowledge", Val::Bool(true))]),
        topic: Cow::Borrowed("wamp.session.on_join"),
        args: Some(list(vec![s("fake")])),
        kwargs: None,
    });
    c.expect_error_uri(codes::PUBLISH, request, "wamp.error.invalid_uri");
    // Without acknowledge the publication is dropped all the same.
    c.publish(
        "wamp.session.on_leave",
        Val::empty_dict(),
        Some(list(vec![])),
        None,
    );
    other.expect_silence(Duration::from_millis(200));

    // Calling a router procedure is not an URI error (the meta API lives there).
    let request = c.send_call("wamp.session.count", list(vec![]));
    c.recv_with(|m| match m {
        Message::Error { error, .. } => assert_ne!(error, "wamp.error.invalid_uri"),
        Message::Result { .. } => {}
        other => panic!("expected an answer to the CALL, got {other:?}"),
    });
    let _ = request;
}

fn hello_with(c: &mut Client, details: Val<'_>) -> Message<'static> {
    c.send(&Message::Hello {
        realm: Cow::Borrowed("realm1"),
        details,
    });
    let frame = c.recv().expect("an answer to HELLO");
    let msg = Message::parse(c.ser, &frame).expect("valid");
    match msg {
        Message::Welcome { session, .. } => Message::Welcome {
            session,
            details: Val::empty_dict(),
        },
        Message::Abort { reason, .. } => Message::Abort {
            details: Val::empty_dict(),
            reason: Cow::Owned(reason.into_owned()),
        },
        other => panic!("expected WELCOME or ABORT, got {other:?}"),
    }
}

#[test]
fn hello_without_an_acceptable_authmethod_is_refused() {
    let r = Router::start(1, &[]);
    let roles = || {
        (
            "roles",
            dict(&[
                ("caller", Val::empty_dict()),
                ("subscriber", Val::empty_dict()),
            ]),
        )
    };
    let cases: Vec<(Val<'_>, bool)> = vec![
        (
            dict(&[roles(), ("authmethods", list(vec![s("ticket")]))]),
            false,
        ),
        (
            dict(&[
                roles(),
                ("authmethods", list(vec![s("wampcra"), s("cryptosign")])),
            ]),
            false,
        ),
        (
            dict(&[
                roles(),
                ("authmethods", list(vec![s("ticket"), s("anonymous")])),
            ]),
            true,
        ),
        (dict(&[roles(), ("authmethods", list(vec![]))]), true),
        (dict(&[roles()]), true),
    ];
    for (details, welcome) in cases {
        let mut c = Client::rawsocket(&r.addr, JSON);
        let shown = format!("{details:?}");
        match hello_with(&mut c, details) {
            Message::Welcome { .. } => assert!(welcome, "welcomed with {shown}"),
            Message::Abort { reason, .. } => {
                assert!(!welcome, "refused with {shown}");
                assert_eq!(reason, "wamp.error.no_matching_auth_method");
                c.expect_closed();
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn session_ids_are_unique_across_shards() {
    let r = Router::start(4, &[]);
    let mut seen = HashSet::new();
    let mut clients = Vec::new();
    for _ in 0..64 {
        let c = Client::join(&r.addr, JSON);
        assert!(c.session >= 1 && c.session <= 1 << 53);
        assert!(
            seen.insert(c.session),
            "session id {} handed out twice",
            c.session
        );
        clients.push(c);
    }
}

/// At shutdown the router says GOODBYE and waits for the client's GOODBYE before it closes the
/// connection; a client that never answers is closed after a bounded wait.
#[test]
fn router_goodbye_waits_for_the_clients_reply_bounded() {
    let mut r = Router::start(2, &[]);
    let mut polite = Client::join(&r.addr, JSON);
    let mut silent = Client::join(&r.addr, JSON);
    let pid = r.pid();
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    for c in [&mut polite, &mut silent] {
        c.recv_with(|m| match m {
            Message::Goodbye { reason, .. } => assert_eq!(reason, "wamp.close.system_shutdown"),
            other => panic!("expected GOODBYE, got {other:?}"),
        });
    }
    // The connection stays open while the router waits for the reply.
    polite.expect_silence(Duration::from_millis(300));
    polite.send(&Message::Goodbye {
        details: Val::empty_dict(),
        reason: Cow::Borrowed("wamp.close.goodbye_and_out"),
    });
    let t = Instant::now();
    polite.set_timeout(Duration::from_secs(5));
    assert!(polite.recv().is_none(), "no answer to the reply GOODBYE");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "closed soon after the reply"
    );

    let t = Instant::now();
    silent.set_timeout(Duration::from_secs(10));
    assert!(silent.recv().is_none());
    let waited = t.elapsed();
    assert!(
        waited < Duration::from_secs(6),
        "a silent client is closed after a bounded wait, took {waited:?}"
    );
    let status = r.terminate(Duration::from_secs(10)).expect("router exits");
    assert!(status.success(), "exit status {status:?}");
}
