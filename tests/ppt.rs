//! Payload passthru mode with raw messages, senders and receivers on different shards and in all
//! three serializers: the `ppt_*` attributes reach EVENT, INVOCATION, RESULT and ERROR unchanged,
//! the binary payload crosses serializers, and the specification's refusals happen.

mod common;

use std::borrow::Cow;

use common::ppt::{
    attrs, binary_args, hello, is_binary_args, join_on, join_on_with, owned, ppt_of,
};
use common::{Client, Router};
use wampd::protocol::{Message, Serializer, Val};

const SHARDS: usize = 2;
const SERS: [Serializer; 3] = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];
const PAYLOAD: &[u8] = b"\x00\x01sealed\xff";
const E2E: &[(&str, &str)] = &[
    ("ppt_scheme", "wamp"),
    ("ppt_serializer", "cbor"),
    ("ppt_cipher", "xsalsa20poly1305"),
    ("ppt_keyid", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
];
const MQTT: &[(&str, &str)] = &[("ppt_scheme", "mqtt"), ("ppt_serializer", "native")];

fn publish(c: &mut Client, topic: &str, options: Val<'_>) {
    let request = c.req();
    c.send(&Message::Publish {
        request,
        options,
        topic: Cow::Borrowed(topic),
        args: Some(binary_args(PAYLOAD)),
        kwargs: None,
    });
    c.recv_with(|m| assert!(matches!(m, Message::Published { request: r, .. } if r == request)));
}

/// The next EVENT's passthru attributes; asserts its payload is the binary one.
fn event_ppt(c: &mut Client) -> Vec<(String, String)> {
    c.recv_with(|m| match m {
        Message::Event { details, args, .. } => {
            assert!(is_binary_args(&args, PAYLOAD), "payload changed: {args:?}");
            ppt_of(&details)
        }
        other => panic!("expected EVENT, got {other:?}"),
    })
}

#[test]
fn welcome_announces_payload_passthru_for_broker_and_dealer() {
    let r = Router::start(1, &[]);
    let mut c = Client::rawsocket(&r.addr, Serializer::Json);
    let details = hello(&mut c, true);
    for role in ["broker", "dealer"] {
        let on = details
            .get("roles")
            .and_then(|r| r.get(role))
            .and_then(|r| r.get("features"))
            .and_then(|f| f.get("payload_passthru_mode"))
            .and_then(|v| v.as_bool());
        assert_eq!(on, Some(true), "{role}");
    }
}

/// Every publisher serializer to subscribers of every serializer on both shards; one subscriber did
/// not announce the mode and still gets the EVENT as it is: the specification leaves that case to
/// the subscriber, since a broker cannot refuse a publication per receiver.
#[test]
fn events_carry_the_attributes_across_shards_and_serializers() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    let mut subs: Vec<Client> = (0..4)
        .map(|i| {
            let ser = SERS[i % 3];
            join_on(&r.addr, SHARDS, i % SHARDS, ser, i != 3, &mut spare)
        })
        .collect();
    let topic = "ppt.events";
    let sub = subs[0].subscribe(topic);
    for s in &mut subs[1..] {
        assert_eq!(s.subscribe(topic), sub);
    }
    for (i, ser) in SERS.into_iter().enumerate() {
        let mut publisher = join_on(&r.addr, SHARDS, i % SHARDS, ser, true, &mut spare);
        publish(
            &mut publisher,
            topic,
            attrs(E2E, &[("acknowledge", Val::Bool(true))]),
        );
        for s in &mut subs {
            assert_eq!(
                event_ppt(s),
                owned(E2E),
                "publisher {ser:?}, subscriber {:?}",
                s.ser
            );
        }
        // The plain path right after: no attributes, the binary still intact.
        publish(
            &mut publisher,
            topic,
            attrs(&[], &[("acknowledge", Val::Bool(true))]),
        );
        for s in &mut subs {
            assert!(event_ppt(s).is_empty());
        }
    }
}

#[test]
fn a_retained_event_keeps_its_attributes() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    let mut publisher = join_on(&r.addr, SHARDS, 0, Serializer::Cbor, true, &mut spare);
    let options = attrs(
        MQTT,
        &[
            ("acknowledge", Val::Bool(true)),
            ("retain", Val::Bool(true)),
            ("disclose_me", Val::Bool(true)),
        ],
    );
    publish(&mut publisher, "ppt.retained", options);
    let mut late = join_on(&r.addr, SHARDS, 1, Serializer::Json, true, &mut spare);
    late.subscribe_opts(
        "ppt.retained",
        attrs(&[], &[("get_retained", Val::Bool(true))]),
    );
    // Alongside the other Details of the publication: the publisher and the retained mark.
    late.recv_with(|m| match m {
        Message::Event { details, args, .. } => {
            assert!(is_binary_args(&args, PAYLOAD));
            assert_eq!(ppt_of(&details), owned(MQTT));
            assert_eq!(
                details.get("retained").and_then(|v| v.as_bool()),
                Some(true)
            );
            let publisher_id = details.get("publisher").and_then(|v| v.as_u64());
            assert_eq!(publisher_id, Some(publisher.session));
        }
        other => panic!("expected EVENT, got {other:?}"),
    });
}

/// A CALL's attributes reach the INVOCATION, the YIELD's the RESULT, an ERROR's the caller's
/// ERROR, for caller and callee on different shards and serializers.
#[test]
fn calls_carry_the_attributes_both_ways() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    for (i, (a, b)) in [(0, 1), (1, 2), (2, 0)].into_iter().enumerate() {
        let mut callee = join_on(&r.addr, SHARDS, 1, SERS[b], true, &mut spare);
        let mut caller = join_on(&r.addr, SHARDS, 0, SERS[a], true, &mut spare);
        let procedure = format!("ppt.proc{i}");
        callee.register(&procedure);
        for answer_with_error in [false, true] {
            let request = send_call(&mut caller, &procedure, attrs(MQTT, &[]));
            let invocation = callee.recv_with(|m| match m {
                Message::Invocation {
                    request,
                    details,
                    args,
                    ..
                } => {
                    assert!(is_binary_args(&args, PAYLOAD));
                    assert_eq!(ppt_of(&details), owned(MQTT));
                    request
                }
                other => panic!("expected INVOCATION, got {other:?}"),
            });
            if answer_with_error {
                callee.send(&Message::Error {
                    request_type: 68,
                    request: invocation,
                    details: attrs(E2E, &[]),
                    error: Cow::Borrowed("app.error.sealed"),
                    args: Some(binary_args(PAYLOAD)),
                    kwargs: None,
                });
            } else {
                send_yield(&mut callee, invocation, attrs(E2E, &[]));
            }
            caller.recv_with(|m| match m {
                Message::Result {
                    request: r,
                    details,
                    args,
                    ..
                } if !answer_with_error => {
                    assert_eq!(r, request);
                    assert!(is_binary_args(&args, PAYLOAD));
                    assert_eq!(ppt_of(&details), owned(E2E));
                }
                Message::Error {
                    request: r,
                    details,
                    args,
                    error,
                    ..
                } if answer_with_error => {
                    assert_eq!((r, error.as_ref()), (request, "app.error.sealed"));
                    assert!(is_binary_args(&args, PAYLOAD));
                    assert_eq!(ppt_of(&details), owned(E2E));
                }
                other => panic!("unexpected answer {other:?}"),
            });
        }
    }
}

fn send_call(c: &mut Client, procedure: &str, options: Val<'_>) -> u64 {
    let request = c.req();
    c.send(&Message::Call {
        request,
        options,
        procedure: Cow::Borrowed(procedure),
        args: Some(binary_args(PAYLOAD)),
        kwargs: None,
    });
    request
}

fn send_yield(c: &mut Client, request: u64, options: Val<'_>) {
    c.send(&Message::Yield {
        request,
        options,
        args: Some(binary_args(PAYLOAD)),
        kwargs: None,
    });
}

/// PUBLISH, CALL and YIELD in passthru mode from a peer that did not announce it, and malformed
/// attributes from one that did: each is a protocol violation (ABORT).
#[test]
fn misuse_is_aborted() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    let abort = |c: &mut Client| {
        c.expect_abort("wamp.error.protocol_violation");
        c.expect_closed();
    };
    for (i, ser) in SERS.into_iter().enumerate() {
        let mut c = join_on(&r.addr, SHARDS, i % SHARDS, ser, false, &mut spare);
        publish_only(&mut c, attrs(MQTT, &[]));
        abort(&mut c);
        let mut c = join_on(&r.addr, SHARDS, i % SHARDS, ser, false, &mut spare);
        send_call(&mut c, "ppt.nobody", attrs(E2E, &[]));
        abort(&mut c);
    }
    // A callee that did not announce the mode yields in it.
    let mut callee = join_on(&r.addr, SHARDS, 1, Serializer::Cbor, false, &mut spare);
    let mut caller = join_on(&r.addr, SHARDS, 0, Serializer::Json, true, &mut spare);
    callee.register("ppt.plain");
    let request = send_call(&mut caller, "ppt.plain", attrs(&[], &[]));
    let (invocation, _) = callee.invocation();
    send_yield(&mut callee, invocation, attrs(MQTT, &[]));
    abort(&mut callee);
    caller.expect_error_uri(48, request, "wamp.error.canceled");
    // Announced, but breaking the rules of the attributes.
    let bad: [Val<'static>; 4] = [
        attrs(&[("ppt_serializer", "cbor")], &[]),
        attrs(&[("ppt_scheme", "wamp")], &[]),
        attrs(&[("ppt_scheme", "wamp"), ("ppt_serializer", "json")], &[]),
        attrs(&[("ppt_scheme", "x_a")], &[("ppt_keyid", Val::UInt(7))]),
    ];
    for (i, options) in bad.into_iter().enumerate() {
        let mut c = join_on(&r.addr, SHARDS, i % SHARDS, SERS[i % 3], true, &mut spare);
        publish_only(&mut c, options);
        abort(&mut c);
    }
}

fn publish_only(c: &mut Client, options: Val<'_>) {
    let request = c.req();
    c.send(&Message::Publish {
        request,
        options,
        topic: Cow::Borrowed("ppt.misuse"),
        args: Some(binary_args(PAYLOAD)),
        kwargs: None,
    });
}

/// The receiving side of a call did not announce the mode: an application error, not an ABORT.
/// A callee without it never sees the INVOCATION; a caller without it never sees the RESULT, and
/// the callee is told.
#[test]
fn a_receiver_without_the_feature_gets_feature_not_supported() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    let mut plain_callee = join_on(&r.addr, SHARDS, 1, Serializer::MsgPack, false, &mut spare);
    let mut caller = join_on(&r.addr, SHARDS, 0, Serializer::Json, true, &mut spare);
    plain_callee.register("ppt.plain_callee");
    let request = send_call(&mut caller, "ppt.plain_callee", attrs(MQTT, &[]));
    caller.expect_error_uri(48, request, "wamp.error.feature_not_supported");
    // The callee is still there, and a plain call reaches it.
    let request = send_call(&mut caller, "ppt.plain_callee", attrs(&[], &[]));
    let (invocation, args) = plain_callee.invocation();
    assert!(is_binary_args(&args, PAYLOAD));
    send_yield(&mut plain_callee, invocation, attrs(&[], &[]));
    assert!(is_binary_args(&caller.result(request), PAYLOAD));

    let mut ppt_callee = join_on(&r.addr, SHARDS, 1, Serializer::Cbor, true, &mut spare);
    let mut plain_caller = join_on(&r.addr, SHARDS, 0, Serializer::MsgPack, false, &mut spare);
    ppt_callee.register("ppt.sealed_answer");
    let request = send_call(&mut plain_caller, "ppt.sealed_answer", attrs(&[], &[]));
    let (invocation, _) = ppt_callee.invocation();
    send_yield(&mut ppt_callee, invocation, attrs(E2E, &[]));
    ppt_callee.expect_error_uri(70, invocation, "wamp.error.feature_not_supported");
    plain_caller.expect_error_uri(48, request, "wamp.error.feature_not_supported");
}

/// Progressive results keep `progress` and carry each YIELD's attributes.
#[test]
fn progressive_results_carry_the_attributes() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    let progressive = [
        ("caller", "progressive_call_results"),
        ("callee", "progressive_call_results"),
    ];
    let mut callee = join_on_with(
        &r.addr,
        (SHARDS, 1),
        SERS[0],
        true,
        &progressive,
        &mut spare,
    );
    let mut caller = join_on_with(
        &r.addr,
        (SHARDS, 0),
        SERS[2],
        true,
        &progressive,
        &mut spare,
    );
    callee.register("ppt.progressive");
    let options = attrs(MQTT, &[("receive_progress", Val::Bool(true))]);
    let request = send_call(&mut caller, "ppt.progressive", options);
    let invocation = callee.recv_with(|m| match m {
        Message::Invocation {
            request, details, ..
        } => {
            assert_eq!(
                details.get("receive_progress").and_then(|v| v.as_bool()),
                Some(true)
            );
            assert_eq!(ppt_of(&details), owned(MQTT));
            request
        }
        other => panic!("expected INVOCATION, got {other:?}"),
    });
    for progress in [true, false] {
        let extra = [("progress", Val::Bool(progress))];
        send_yield(
            &mut callee,
            invocation,
            attrs(E2E, if progress { &extra } else { &[] }),
        );
        caller.recv_with(|m| match m {
            Message::Result {
                request: r,
                details,
                args,
                ..
            } => {
                assert_eq!(r, request);
                assert!(is_binary_args(&args, PAYLOAD));
                let got = details.get("progress").and_then(|v| v.as_bool());
                assert_eq!(got.unwrap_or(false), progress);
                assert_eq!(ppt_of(&details), owned(E2E));
            }
            other => panic!("expected RESULT, got {other:?}"),
        });
    }
}
