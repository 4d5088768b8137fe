//! No message can take a shard down: every outgoing message is checked against what its receiver
//! accepts before it is framed. Receivers sit on another shard than the sender (connections are
//! placed round-robin, so with 2 shards consecutive clients alternate), which is where a panic would
//! have escaped the per-session containment.

mod common;

use std::borrow::Cow;
use std::time::Duration;

use common::{list, s, Client, Router};
use wampd::protocol::{codes, Message, Serializer, Val};

const JSON: Serializer = Serializer::Json;
const MSGPACK: Serializer = Serializer::MsgPack;

/// The largest RawSocket frame (2^24 - 1 bytes) as one JSON PUBLISH: its EVENT, with a longer
/// header of ids, no longer fits a RawSocket frame at all.
#[test]
fn a_publish_of_the_largest_frame_cannot_kill_the_subscribers_shard() {
    let mut r = Router::start(2, &[]);
    let mut sub = Client::join(&r.addr, JSON); // shard 0
    let mut publ = Client::join(&r.addr, JSON); // shard 1
    let mut small_sub = Client::join(&r.addr, JSON); // shard 0
    let id = sub.subscribe("big.topic");
    small_sub.subscribe("big.topic");

    let head = br#"[16,1,{},"big.topic",[""#;
    let tail = br#""]]"#;
    let fill = (1 << 24) - 1 - head.len() - tail.len();
    let mut frame = Vec::with_capacity(1 << 24);
    frame.extend_from_slice(head);
    frame.resize(head.len() + fill, b'x');
    frame.extend_from_slice(tail);
    assert_eq!(frame.len(), (1 << 24) - 1);
    publ.req(); // request id 1 is used by the raw frame
    publ.send_raw(&frame);
    publ.publish_ack("big.topic", list(vec![s("after")]));

    // Neither subscriber can take the big EVENT; both get the next one, and the shard lives on.
    for c in [&mut sub, &mut small_sub] {
        let (subscription, _, args, _) = c.event();
        assert_eq!(
            subscription, id,
            "one subscription id for every subscriber of the topic"
        );
        assert!(args.unwrap().semantic_eq(&list(vec![s("after")])));
    }
    assert!(r.alive(), "the router process must survive");
    // New connections land on both shards and are served.
    for _ in 0..4 {
        let mut c = Client::join(&r.addr, MSGPACK);
        c.publish_ack("other", list(vec![]));
    }
}

/// Transcoding growth: MessagePack bytes become longer base64 in JSON. A WebSocket JSON subscriber
/// under `--max-message-size` misses the event that outgrew its limit; a MessagePack subscriber of
/// the same subscription gets it.
#[test]
fn an_event_that_outgrows_one_subscribers_limit_skips_only_that_subscriber() {
    let r = Router::start(2, &["--max-message-size", "70000"]);
    let mut publ = Client::join(&r.addr, MSGPACK); // shard 0
    let mut json_sub = Client::join_ws(&r.addr, JSON); // shard 1
    let mut mp_sub = Client::join(&r.addr, MSGPACK); // shard 0
    let mut mp_remote = Client::join_ws(&r.addr, MSGPACK); // shard 1
    for c in [&mut json_sub, &mut mp_sub, &mut mp_remote] {
        c.subscribe("grow");
    }
    let blob = vec![7u8; 60_000]; // 60 kB of bin (RawSocket takes 64 KiB): 80 kB of base64
    publ.publish_ack("grow", list(vec![Val::Bytes(Cow::Owned(blob.clone()))]));
    publ.publish_ack("grow", list(vec![s("small")]));
    for c in [&mut mp_sub, &mut mp_remote] {
        let (_, _, args, _) = c.event();
        assert!(args
            .unwrap()
            .semantic_eq(&list(vec![Val::Bytes(Cow::Owned(blob.clone()))])));
        let (_, _, args, _) = c.event();
        assert!(args.unwrap().semantic_eq(&list(vec![s("small")])));
    }
    let (_, _, args, _) = json_sub.event();
    assert!(
        args.unwrap().semantic_eq(&list(vec![s("small")])),
        "the JSON subscriber skips the event too large for it and gets the next"
    );
}

/// An INVOCATION too large for the callee (it announced 512-byte RawSocket messages) answers the
/// caller with `payload_size_exceeded` and takes no pending slot: with `--max-pending-invocations 1`
/// the next call still reaches the callee.
#[test]
fn an_invocation_too_large_for_the_callee_fails_the_call_and_frees_the_slot() {
    let r = Router::start(2, &["--max-pending-invocations", "1"]);
    let mut callee = Client::join_rs_max(&r.addr, JSON, 0); // shard 0, accepts 512 bytes
    let mut caller = Client::join(&r.addr, JSON); // shard 1
    callee.register("tiny.callee");
    let big = "y".repeat(2000);
    for _ in 0..3 {
        let req = caller.send_call("tiny.callee", list(vec![s(&big)]));
        caller.expect_error_uri(codes::CALL, req, "wamp.error.payload_size_exceeded");
    }
    let req = caller.send_call("tiny.callee", list(vec![s("fits")]));
    let (inv, args) = callee.invocation();
    assert!(args.unwrap().semantic_eq(&list(vec![s("fits")])));
    callee.send_yield(inv, list(vec![s("ok")]));
    assert!(caller
        .result(req)
        .unwrap()
        .semantic_eq(&list(vec![s("ok")])));
}

/// A RESULT (or ERROR) too large for the caller becomes `payload_size_exceeded` for the caller, and
/// the callee's pending slot is freed all the same.
#[test]
fn a_result_too_large_for_the_caller_is_answered_with_an_error() {
    let r = Router::start(2, &["--max-pending-invocations", "1"]);
    let mut caller = Client::join_rs_max(&r.addr, MSGPACK, 0); // shard 0, accepts 512 bytes
    let mut callee = Client::join(&r.addr, MSGPACK); // shard 1
    callee.register("big.answer");
    let big = "z".repeat(4000);

    let req = caller.send_call("big.answer", list(vec![]));
    let (inv, _) = callee.invocation();
    callee.send_yield(inv, list(vec![s(&big)]));
    caller.expect_error_uri(codes::CALL, req, "wamp.error.payload_size_exceeded");

    let req = caller.send_call("big.answer", list(vec![]));
    let (inv, _) = callee.invocation();
    callee.send(&Message::Error {
        request_type: codes::INVOCATION,
        request: inv,
        details: Val::empty_dict(),
        error: Cow::Borrowed("app.failed"),
        args: Some(list(vec![s(&big)])),
        kwargs: None,
    });
    caller.expect_error_uri(codes::CALL, req, "wamp.error.payload_size_exceeded");

    let req = caller.send_call("big.answer", list(vec![]));
    let (inv, _) = callee.invocation();
    callee.send_yield(inv, list(vec![s("small")]));
    assert!(caller
        .result(req)
        .unwrap()
        .semantic_eq(&list(vec![s("small")])));
    caller.expect_silence(Duration::from_millis(200));
}
