//! Payload passthru mode in the two places the first round left open, caller and callee on
//! different shards: an ERROR in passthru mode from a callee, and the later chunks of a progressive
//! call invocation.

mod common;

use std::borrow::Cow;
use std::time::Duration;

use common::ppt::{attrs, binary_args, is_binary_args, join_on, join_on_with, owned, ppt_of};
use common::{Client, Router};
use wampd::protocol::{Message, Serializer, Val};

const SHARDS: usize = 2;
const PAYLOAD: &[u8] = b"\x00\x01sealed\xff";
const E2E: &[(&str, &str)] = &[
    ("ppt_scheme", "wamp"),
    ("ppt_serializer", "cbor"),
    ("ppt_cipher", "xsalsa20poly1305"),
    ("ppt_keyid", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
];
const MQTT: &[(&str, &str)] = &[("ppt_scheme", "mqtt"), ("ppt_serializer", "native")];
const FEATURE_NOT_SUPPORTED: &str = "wamp.error.feature_not_supported";
/// What a progressive call invocation needs from each side.
const STREAMING: &[(&str, &str)] = &[
    ("caller", "progressive_call_invocations"),
    ("callee", "progressive_call_invocations"),
    ("callee", "call_canceling"),
];

/// Sends CALL with `request` (a chunk reuses its call's id) and the binary payload.
fn call_with(c: &mut Client, request: u64, procedure: &str, options: Val<'_>) {
    c.send(&Message::Call {
        request,
        options,
        procedure: Cow::Borrowed(procedure),
        args: Some(binary_args(PAYLOAD)),
        kwargs: None,
    });
}

/// Sends ERROR for INVOCATION `invocation` with `details` and the binary payload.
fn invocation_error(c: &mut Client, invocation: u64, details: Val<'_>) {
    c.send(&Message::Error {
        request_type: 68,
        request: invocation,
        details,
        error: Cow::Borrowed("app.error.sealed"),
        args: Some(binary_args(PAYLOAD)),
        kwargs: None,
    });
}

/// The next INVOCATION: (request id, passthru attributes, progress flag); asserts the payload.
fn invocation(c: &mut Client) -> (u64, Vec<(String, String)>, bool) {
    c.recv_with(|m| match m {
        Message::Invocation {
            request,
            details,
            args,
            ..
        } => {
            assert!(is_binary_args(&args, PAYLOAD), "payload changed: {args:?}");
            let progress = details.get("progress").and_then(|v| v.as_bool());
            (request, ppt_of(&details), progress == Some(true))
        }
        other => panic!("expected INVOCATION, got {other:?}"),
    })
}

fn progress(on: bool) -> Vec<(&'static str, Val<'static>)> {
    if on {
        vec![("progress", Val::Bool(true))]
    } else {
        Vec::new()
    }
}

/// The specification forwards `ppt_*` with ERROR, and makes passthru work only between peers that
/// all announced it: a caller without the mode gets `feature_not_supported` instead of an error it
/// cannot read (the same answer as for a YIELD), a caller with it gets the ERROR as it was sent,
/// and a callee without the mode sending one is aborted.
#[test]
fn an_error_in_passthru_mode_reaches_only_callers_that_announced_it() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    let mut callee = join_on(&r.addr, SHARDS, 1, Serializer::Cbor, true, &mut spare);
    let mut plain = join_on(&r.addr, SHARDS, 0, Serializer::MsgPack, false, &mut spare);
    let mut sealed = join_on(&r.addr, SHARDS, 0, Serializer::Json, true, &mut spare);
    callee.register("ppt.fails");
    for caller in [&mut plain, &mut sealed] {
        let request = caller.req();
        call_with(caller, request, "ppt.fails", attrs(&[], &[]));
        let (inv, ppt, _) = invocation(&mut callee);
        assert!(ppt.is_empty());
        invocation_error(&mut callee, inv, attrs(E2E, &[]));
        let announced = caller.ser == Serializer::Json;
        caller.recv_with(|m| match m {
            Message::Error {
                request: r,
                error,
                details,
                args,
                ..
            } => {
                assert_eq!(r, request);
                if !announced {
                    assert_eq!(error, FEATURE_NOT_SUPPORTED);
                    assert!(ppt_of(&details).is_empty());
                    let text = format!("{:?}", args.map(Val::into_owned));
                    assert!(text.contains("app.error.sealed"), "{text}");
                } else {
                    assert_eq!(error, "app.error.sealed");
                    assert_eq!(ppt_of(&details), owned(E2E));
                    assert!(is_binary_args(&args, PAYLOAD));
                }
            }
            other => panic!("expected ERROR, got {other:?}"),
        });
    }
    // The callee was not told (WAMP has no answer to an ERROR) and keeps serving the plain caller.
    let request = plain.req();
    call_with(&mut plain, request, "ppt.fails", attrs(&[], &[]));
    let (inv, _, _) = invocation(&mut callee);
    invocation_error(&mut callee, inv, attrs(&[], &[]));
    plain.expect_error_uri(48, request, "app.error.sealed");

    let mut plain_callee = join_on(&r.addr, SHARDS, 1, Serializer::Json, false, &mut spare);
    plain_callee.register("ppt.plain_fails");
    let request = sealed.req();
    call_with(&mut sealed, request, "ppt.plain_fails", attrs(&[], &[]));
    let (inv, _, _) = invocation(&mut plain_callee);
    invocation_error(&mut plain_callee, inv, attrs(MQTT, &[]));
    plain_callee.expect_abort("wamp.error.protocol_violation");
    sealed.expect_error_uri(48, request, "wamp.error.canceled");
}

/// Every chunk's attributes reach its INVOCATION (the first's, then each later one's, or none),
/// and later chunks are checked as the first is: malformed ones abort the caller.
#[test]
fn each_chunk_of_a_progressive_invocation_carries_its_own_attributes() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    let at = |shard| (SHARDS, shard);
    let mut callee = join_on_with(
        &r.addr,
        at(1),
        Serializer::Cbor,
        true,
        STREAMING,
        &mut spare,
    );
    let mut caller = join_on_with(
        &r.addr,
        at(0),
        Serializer::Json,
        true,
        STREAMING,
        &mut spare,
    );
    callee.register("ppt.stream");
    let chunks: [(&[(&str, &str)], bool); 4] =
        [(MQTT, true), (E2E, true), (&[], true), (E2E, false)];
    let request = caller.req();
    let mut first = None;
    for (n, (ppt, more)) in chunks.into_iter().enumerate() {
        call_with(
            &mut caller,
            request,
            "ppt.stream",
            attrs(ppt, &progress(more)),
        );
        let (inv, got, flagged) = invocation(&mut callee);
        assert_eq!(*first.get_or_insert(inv), inv, "chunk {n}: one request id");
        assert_eq!(got, owned(ppt), "chunk {n}");
        assert_eq!(flagged, more, "chunk {n}");
    }
    callee.send(&Message::Yield {
        request: first.unwrap(),
        options: attrs(MQTT, &[]),
        args: Some(binary_args(PAYLOAD)),
        kwargs: None,
    });
    caller.recv_with(|m| match m {
        Message::Result {
            request: r,
            details,
            ..
        } => {
            assert_eq!(r, request);
            assert_eq!(ppt_of(&details), owned(MQTT));
        }
        other => panic!("expected RESULT, got {other:?}"),
    });

    // A later chunk with attributes that break the rules is a protocol violation, like a first one.
    let request = caller.req();
    call_with(
        &mut caller,
        request,
        "ppt.stream",
        attrs(MQTT, &progress(true)),
    );
    invocation(&mut callee);
    let bad = attrs(
        &[("ppt_scheme", "wamp"), ("ppt_serializer", "json")],
        &progress(true),
    );
    call_with(&mut caller, request, "ppt.stream", bad);
    caller.expect_abort("wamp.error.protocol_violation");
    caller.expect_closed();
}

/// A caller that did not announce the mode may not use it in a later chunk either (ABORT); a callee
/// that did not announce it gets no chunk it cannot read: the call ends with
/// `feature_not_supported` and the callee is interrupted.
#[test]
fn later_chunks_follow_the_feature_rules_of_the_first() {
    let r = Router::start(SHARDS, &[]);
    let mut spare = Vec::new();
    let at = |shard| (SHARDS, shard);
    let mut callee = join_on_with(
        &r.addr,
        at(1),
        Serializer::MsgPack,
        true,
        STREAMING,
        &mut spare,
    );
    let mut plain_caller = join_on_with(
        &r.addr,
        at(0),
        Serializer::Json,
        false,
        STREAMING,
        &mut spare,
    );
    callee.register("ppt.stream");
    let request = plain_caller.req();
    call_with(
        &mut plain_caller,
        request,
        "ppt.stream",
        attrs(&[], &progress(true)),
    );
    let (inv, _, _) = invocation(&mut callee);
    call_with(
        &mut plain_caller,
        request,
        "ppt.stream",
        attrs(MQTT, &progress(true)),
    );
    plain_caller.expect_abort("wamp.error.protocol_violation");
    // The caller's departure ends the call at the callee.
    callee.recv_with(|m| match m {
        Message::Interrupt { request, .. } => assert_eq!(request, inv),
        other => panic!("expected INTERRUPT, got {other:?}"),
    });

    let mut plain_callee = join_on_with(
        &r.addr,
        at(1),
        Serializer::Json,
        false,
        STREAMING,
        &mut spare,
    );
    let mut caller = join_on_with(
        &r.addr,
        at(0),
        Serializer::Cbor,
        true,
        STREAMING,
        &mut spare,
    );
    plain_callee.register("ppt.plain_stream");
    let request = caller.req();
    call_with(
        &mut caller,
        request,
        "ppt.plain_stream",
        attrs(&[], &progress(true)),
    );
    let (inv, ppt, _) = invocation(&mut plain_callee);
    assert!(ppt.is_empty());
    call_with(
        &mut caller,
        request,
        "ppt.plain_stream",
        attrs(E2E, &progress(true)),
    );
    caller.expect_error_uri(48, request, FEATURE_NOT_SUPPORTED);
    plain_callee.recv_with(|m| match m {
        Message::Interrupt { request, options } => {
            assert_eq!(request, inv);
            let reason = options.get("reason").and_then(|v| v.as_str());
            assert_eq!(reason.as_deref(), Some(FEATURE_NOT_SUPPORTED));
        }
        other => panic!("expected INTERRUPT, got {other:?}"),
    });
    // Later chunks of the ended call go nowhere; the callee keeps serving.
    call_with(
        &mut caller,
        request,
        "ppt.plain_stream",
        attrs(&[], &progress(false)),
    );
    plain_callee.expect_silence(Duration::from_millis(200));
    let request = caller.req();
    call_with(&mut caller, request, "ppt.plain_stream", attrs(&[], &[]));
    let (inv, _, _) = invocation(&mut plain_callee);
    plain_callee.send(&Message::Yield {
        request: inv,
        options: Val::empty_dict(),
        args: Some(binary_args(PAYLOAD)),
        kwargs: None,
    });
    assert!(is_binary_args(&caller.result(request), PAYLOAD));
}
