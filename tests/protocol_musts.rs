//! Protocol rules the router must keep, each checked against a real wampd with 2 shards, with the
//! receiver on the other shard than the sender (wampd hands connections to its shards round-robin
//! in connect order):
//!
//! - a value that could not reach a peer of another serializer is refused when the message is
//!   parsed: ABORT `wamp.error.protocol_violation` for the sender, nothing for the receivers;
//! - ABORT may carry Arguments and ArgumentsKw (a session that ends so ends quietly);
//! - a WebSocket message of the type the subprotocol does not use fails the connection (1003);
//! - options the router does not act on are ignored, however they are typed.

mod common;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use common::{dict, list, s, Client, Router};
use wampd::protocol::{Message, Serializer, Val};

const SHARDS: usize = 2;
const JSON: Serializer = Serializer::Json;
const MSGPACK: Serializer = Serializer::MsgPack;
const CBOR: Serializer = Serializer::Cbor;
const VIOLATION: &str = "wamp.error.protocol_violation";

/// Joins clients on chosen shards: the n-th connection (from 0) is on shard n % SHARDS, so
/// connections that only fill a turn are opened (and kept) in between.
struct Placer {
    addr: String,
    connections: usize,
    fillers: Vec<Client>,
}

impl Placer {
    fn new(r: &Router) -> Placer {
        Placer {
            addr: r.addr.clone(),
            connections: 0,
            fillers: Vec::new(),
        }
    }

    fn turn_to(&mut self, shard: usize) {
        while self.connections % SHARDS != shard {
            self.fillers.push(Client::join(&self.addr, JSON));
            self.connections += 1;
        }
        self.connections += 1;
    }

    /// A RawSocket session on `shard`.
    fn join(&mut self, shard: usize, ser: Serializer) -> Client {
        self.turn_to(shard);
        Client::join(&self.addr, ser)
    }

    /// A WebSocket session on `shard`.
    fn join_ws(&mut self, shard: usize, ser: Serializer) -> Client {
        self.turn_to(shard);
        Client::join_ws(&self.addr, ser)
    }
}

/// Expects the router to close the connection without a word (the spec expects no answer to ABORT).
fn expect_quiet_close(c: &mut Client) {
    let start = Instant::now();
    c.set_timeout(Duration::from_secs(5));
    if let Some(frame) = c.recv() {
        let msg = Message::parse(c.ser, &frame).map(|m| format!("{m:?}"));
        panic!("expected the connection to close quietly, got {msg:?}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "the connection was not closed (only silent)"
    );
}

/// Expects ABORT protocol_violation, then the end of the connection.
fn expect_violation(c: &mut Client) {
    c.expect_abort(VIOLATION);
    c.expect_closed();
}

const PLACEHOLDER: &str = "placeholder-for-the-value-under-test";

/// `m` encoded in `ser`, with the encoding of the string PLACEHOLDER (which `m` holds once)
/// replaced by the raw encoded value `raw`.
fn with_raw_value(m: &Message<'_>, ser: Serializer, raw: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    m.encode(ser, &mut frame).unwrap();
    let mut ph = Vec::new();
    s(PLACEHOLDER).encode(ser, &mut ph).unwrap();
    let at = frame
        .windows(ph.len())
        .position(|w| w == ph.as_slice())
        .expect("placeholder in the frame");
    frame.splice(at..at + ph.len(), raw.iter().copied());
    frame
}

/// Values each serializer can express but no other could carry to a receiver.
fn refused_values(ser: Serializer) -> Vec<(&'static str, Vec<u8>)> {
    match ser {
        Serializer::Json => vec![
            (
                "binary string that is not base64",
                br#""\u0000!!""#.to_vec(),
            ),
            ("base64 with trailing bits", br#""\u0000AQJ""#.to_vec()),
            ("number beyond a double", b"1e400".to_vec()),
            ("integer of 400 digits", "7".repeat(400).into_bytes()),
        ],
        Serializer::MsgPack => vec![
            ("NaN", vec![0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]),
            ("infinity (f32)", vec![0xca, 0x7f, 0x80, 0, 0]),
            ("text starting with U+0000", vec![0xa2, 0x00, b'x']),
        ],
        Serializer::Cbor => vec![
            ("NaN (half)", vec![0xf9, 0x7e, 0x00]),
            (
                "-2^64",
                vec![0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
            ("text starting with U+0000", vec![0x62, 0x00, b'x']),
        ],
    }
}

/// A receiver's next EVENT must carry args `[n]`.
fn expect_event_n(c: &mut Client, n: u64) {
    let (_, _, args, _) = c.event();
    assert!(
        args.as_ref()
            .is_some_and(|a| a.semantic_eq(&list(vec![Val::UInt(n)]))),
        "{:?} receiver: expected event [{n}], got {args:?}",
        c.ser
    );
}

/// A PUBLISH or CALL with a value no other serializer could carry is the sender's protocol
/// violation, refused before it is routed: subscribers and callees on the other shard receive
/// nothing of it, in any serializer, and keep receiving what follows.
#[test]
fn values_other_serializers_cannot_carry_are_refused_at_parse() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Placer::new(&r);
    // Receivers on shard 1, one per serializer.
    let mut subs: Vec<Client> = [JSON, MSGPACK, CBOR]
        .into_iter()
        .map(|ser| {
            let mut c = at.join(1, ser);
            c.subscribe("musts.refused");
            c
        })
        .collect();
    let mut callee = at.join(1, MSGPACK);
    callee.register("musts.refused.call");
    let mut n = 0;
    for ser in [JSON, MSGPACK, CBOR] {
        // Senders on shard 0; the well-behaved one shares the ring to shard 1 with the offenders,
        // so anything an offender got through would arrive before its events.
        let mut good = at.join(0, ser);
        for (what, raw) in refused_values(ser) {
            let mut bad = at.join(0, ser);
            let publish = Message::Publish {
                request: bad.req(),
                options: Val::empty_dict(),
                topic: Cow::Borrowed("musts.refused"),
                args: Some(list(vec![Val::UInt(1), s(PLACEHOLDER)])),
                kwargs: None,
            };
            bad.send_raw(&with_raw_value(&publish, ser, &raw));
            bad.expect_abort(VIOLATION);

            let mut bad = at.join(0, ser);
            let call = Message::Call {
                request: bad.req(),
                options: Val::empty_dict(),
                procedure: Cow::Borrowed("musts.refused.call"),
                args: None,
                kwargs: Some(dict(&[("k", s(PLACEHOLDER))])),
            };
            bad.send_raw(&with_raw_value(&call, ser, &raw));
            bad.expect_abort(VIOLATION);

            n += 1;
            good.publish_ack("musts.refused", list(vec![Val::UInt(n)]));
            for sub in subs.iter_mut() {
                expect_event_n(sub, n);
            }
            let request = good.req();
            good.send(&Message::Call {
                request,
                options: Val::empty_dict(),
                procedure: Cow::Borrowed("musts.refused.call"),
                args: Some(list(vec![Val::UInt(n)])),
                kwargs: None,
            });
            let invocation = callee.recv_with(|m| match m {
                Message::Invocation { request, args, .. } => {
                    let args = args.map(|a| a.into_owned());
                    assert!(
                        args.as_ref()
                            .is_some_and(|a| a.semantic_eq(&list(vec![Val::UInt(n)]))),
                        "{ser:?} {what}: the callee got {args:?}"
                    );
                    request
                }
                other => panic!("{ser:?} {what}: expected INVOCATION, got {other:?}"),
            });
            callee.send(&Message::Yield {
                request: invocation,
                options: Val::empty_dict(),
                args: None,
                kwargs: None,
            });
            good.recv_with(|m| {
                assert!(
                    matches!(m, Message::Result { request: r, .. } if r == request),
                    "{m:?}"
                )
            });
        }
    }
    assert_eq!(n, 10, "every refused value was tried");
}

/// A value only the sender's serializer has (MessagePack ext, CBOR tag), with the portable value
/// receivers of the other serializers get instead.
fn foreign_value(ser: Serializer) -> (Vec<u8>, Val<'static>) {
    match ser {
        // Timestamp (ext -1), 4 bytes: no JSON or CBOR counterpart, so nil.
        Serializer::MsgPack => (vec![0xd6, 0xff, 0, 0, 0, 1], Val::Null),
        // Tag 1 (epoch time) on an integer: the tag is dropped, the integer kept.
        _ => (
            vec![0xc1, 0x1a, 0x5f, 0x5e, 0x10, 0x00],
            Val::UInt(0x5f5e_1000),
        ),
    }
}

/// Inside Arguments/ArgumentsKw a foreign value reaches receivers of the same serializer byte for
/// byte and the others as its nearest portable value; in Options it is the sender's protocol
/// violation. No receiver loses its session either way.
#[test]
fn foreign_values_pass_in_payloads_and_are_refused_in_options() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Placer::new(&r);
    for ser in [MSGPACK, CBOR] {
        let (raw, nearest) = foreign_value(ser);
        let topic = format!("musts.foreign.{ser:?}");
        let mut subs: Vec<Client> = [JSON, MSGPACK, CBOR]
            .into_iter()
            .map(|rs| {
                let mut c = at.join(1, rs);
                c.subscribe(&topic);
                c
            })
            .collect();
        let mut publisher = at.join(0, ser);
        let request = publisher.req();
        let publish = Message::Publish {
            request,
            options: dict(&[("acknowledge", Val::Bool(true))]),
            topic: Cow::Borrowed(&topic),
            args: Some(list(vec![Val::UInt(1), s(PLACEHOLDER)])),
            kwargs: None,
        };
        publisher.send_raw(&with_raw_value(&publish, ser, &raw));
        publisher.recv_with(|m| {
            assert!(
                matches!(m, Message::Published { request: q, .. } if q == request),
                "{ser:?}: {m:?}"
            )
        });
        let expected = list(vec![Val::UInt(1), nearest.clone()]);
        for sub in subs.iter_mut() {
            if sub.ser == ser {
                let frame = sub.recv().expect("EVENT");
                assert!(
                    frame.windows(raw.len()).any(|w| w == raw.as_slice()),
                    "{ser:?}: the same-serializer subscriber got the value changed: {frame:02x?}"
                );
            } else {
                let (_, _, args, _) = sub.event();
                assert!(
                    args.as_ref().is_some_and(|a| a.semantic_eq(&expected)),
                    "{ser:?} -> {:?}: got {args:?}",
                    sub.ser
                );
            }
        }
        // The receivers are still in their sessions.
        publisher.publish_ack(&topic, list(vec![Val::UInt(2)]));
        for sub in subs.iter_mut() {
            expect_event_n(sub, 2);
        }
        // In Options the same value is refused.
        let mut bad = at.join(0, ser);
        let publish = Message::Publish {
            request: bad.req(),
            options: dict(&[("x_vendor", s(PLACEHOLDER))]),
            topic: Cow::Borrowed(&topic),
            args: None,
            kwargs: None,
        };
        bad.send_raw(&with_raw_value(&publish, ser, &raw));
        bad.expect_abort(VIOLATION);
    }
}

/// What stays accepted next to the refused values: forms that every serializer can carry
/// faithfully reach receivers of the other serializers, on the other shard, as the same value.
#[test]
fn values_every_serializer_can_carry_are_transcoded() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Placer::new(&r);
    let mut subs: Vec<Client> = [JSON, MSGPACK, CBOR]
        .into_iter()
        .map(|ser| {
            let mut c = at.join(1, ser);
            c.subscribe("musts.carried");
            c
        })
        .collect();
    let cases: Vec<(Serializer, &str, Vec<u8>, Val<'static>)> = vec![
        (
            CBOR,
            "bytes tagged as a uint8 typed array (tag 64)",
            vec![0xd8, 0x40, 0x43, 1, 2, 3],
            Val::Bytes(Cow::Borrowed(&[1, 2, 3])),
        ),
        (
            CBOR,
            "a self-described value (tag 55799)",
            vec![0xd9, 0xd9, 0xf7, 0x18, 0x2a],
            Val::UInt(42),
        ),
        (CBOR, "undefined, as null", vec![0xf7], Val::Null),
        (
            MSGPACK,
            "undefined as msgpackr writes it (fixext 1, type 0), as null",
            vec![0xd4, 0x00, 0x00],
            Val::Null,
        ),
        (
            JSON,
            "a binary string with an escaped slash",
            br#""\u0000\/w==""#.to_vec(),
            Val::Bytes(Cow::Borrowed(&[0xff])),
        ),
        (
            JSON,
            "a key starting with U+0000 (keys are text everywhere)",
            br#"{"\u0000k": 1}"#.to_vec(),
            dict(&[("\0k", Val::UInt(1))]),
        ),
        (
            MSGPACK,
            "a finite f32",
            vec![0xca, 0x3f, 0xc0, 0, 0],
            Val::Float(1.5),
        ),
    ];
    for (ser, what, raw, want) in cases {
        let mut p = at.join(0, ser);
        let publish = Message::Publish {
            request: p.req(),
            options: dict(&[("acknowledge", Val::Bool(true))]),
            topic: Cow::Borrowed("musts.carried"),
            args: Some(list(vec![s(PLACEHOLDER)])),
            kwargs: None,
        };
        p.send_raw(&with_raw_value(&publish, ser, &raw));
        p.recv_with(|m| {
            assert!(
                matches!(m, Message::Published { .. }),
                "{ser:?} {what}: {m:?}"
            )
        });
        for sub in subs.iter_mut() {
            let (_, _, args, _) = sub.event();
            let want = list(vec![want.clone()]);
            assert!(
                args.as_ref().is_some_and(|a| a.semantic_eq(&want)),
                "{ser:?} {what} -> {:?}: got {args:?}",
                sub.ser
            );
        }
    }
}

/// ABORT may carry Arguments|list and ArgumentsKw|dict: the session ends as for any ABORT — no
/// answer, connection closed, its registration released for sessions on the other shard — while
/// an ABORT whose extra elements have the wrong types is still a protocol violation.
#[test]
fn abort_with_arguments_ends_the_session_quietly() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Placer::new(&r);
    let mut other = at.join(1, CBOR);
    for (i, ser) in [JSON, MSGPACK, CBOR].into_iter().enumerate() {
        let procedure = format!("musts.abort.{i}");
        let mut leaving = at.join(0, ser);
        leaving.register(&procedure);
        leaving.send_raw(&abort_with_arguments(ser));
        expect_quiet_close(&mut leaving);
        // The registration went with the session: the other shard may take the procedure.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let request = other.req();
            other.send(&Message::Register {
                request,
                options: Val::empty_dict(),
                procedure: Cow::Borrowed(&procedure),
            });
            let taken = other.recv_with(|m| match m {
                Message::Registered { .. } => false,
                Message::Error { error, .. } => {
                    assert_eq!(error, "wamp.error.procedure_already_exists");
                    true
                }
                m => panic!("expected REGISTERED, got {m:?}"),
            });
            if !taken {
                break;
            }
            assert!(Instant::now() < deadline, "{procedure} stayed registered");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Wrong types in the optional elements, or more of them, are still violations; GOODBYE has no
    // optional elements at all.
    for frame in [
        &br#"[3, {}, "wamp.close.normal", {"not": "a list"}]"#[..],
        br#"[3, {}, "wamp.close.normal", [], ["not a dict"]]"#,
        br#"[3, {}, "wamp.close.normal", [], {}, 1]"#,
        br#"[6, {}, "wamp.close.normal", ["a"]]"#,
    ] {
        let mut c = at.join(0, JSON);
        c.send_raw(frame);
        expect_violation(&mut c);
    }
    // Before WELCOME too: an ABORT with arguments instead of HELLO is a quiet goodbye.
    let mut early = Client::websocket(&r.addr, JSON);
    early.send_raw(br#"[3, {}, "wamp.close.normal", ["changed my mind"], {"why": 1}]"#);
    expect_quiet_close(&mut early);
}

/// `[ABORT, {"message": ...}, "wamp.close.normal", ["bye", 1], {"k": [true]}]` in `ser`.
fn abort_with_arguments(ser: Serializer) -> Vec<u8> {
    let v = list(vec![
        Val::UInt(wampd::protocol::codes::ABORT),
        dict(&[("message", s("leaving"))]),
        s("wamp.close.normal"),
        list(vec![s("bye"), Val::UInt(1)]),
        dict(&[("k", list(vec![Val::Bool(true)]))]),
    ]);
    let mut out = Vec::new();
    v.encode(ser, &mut out).unwrap();
    out
}

/// A text message under `wamp.2.msgpack` or `wamp.2.cbor`, or a binary one under `wamp.2.json`,
/// fails the WebSocket connection with close code 1003 (unsupported data): nothing of it reaches
/// the subscriber on the other shard, and the sender's session is gone.
#[test]
fn websocket_message_of_the_wrong_type_fails_the_connection() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Placer::new(&r);
    let mut sub = at.join(1, JSON);
    sub.subscribe("musts.ws");
    let mut good = at.join(0, MSGPACK);
    for (n, ser) in [JSON, MSGPACK, CBOR].into_iter().enumerate() {
        let n = n as u64;
        let mut bad = at.join_ws(0, ser);
        bad.subscribe("musts.ws");
        let publish = Message::Publish {
            request: bad.req(),
            options: dict(&[("exclude_me", Val::Bool(false))]),
            topic: Cow::Borrowed("musts.ws"),
            args: Some(list(vec![s("wrong frame type")])),
            kwargs: None,
        };
        let mut frame = Vec::new();
        publish.encode(ser, &mut frame).unwrap();
        bad.send_ws_other_type(&frame);
        let (before, code, closed) = bad.ws_close();
        assert!(before.is_empty(), "{ser:?}: messages before the close");
        assert_eq!(code, Some(1003), "{ser:?}: close code");
        assert!(closed, "{ser:?}: the TCP connection stays open");
        good.publish_ack("musts.ws", list(vec![Val::UInt(n)]));
        expect_event_n(&mut sub, n);
    }
    // The right message type on the same subprotocols is served.
    for ser in [JSON, MSGPACK, CBOR] {
        let mut c = at.join_ws(0, ser);
        c.publish_ack("musts.ws", list(vec![Val::UInt(100)]));
        expect_event_n(&mut sub, 100);
    }
}

/// Options the router does not act on — of features it does not implement or announce, custom
/// ones — are ignored whatever their type: the messages are served and the receivers on the other
/// shard get what they would get without those options. The options it acts on stay checked.
#[test]
fn options_the_router_does_not_act_on_are_ignored() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Placer::new(&r);
    for ser in [JSON, MSGPACK, CBOR] {
        let (procedure, topic) = (format!("musts.options.{}", ser.name()), "musts.options");
        let mut callee = at.join(1, ser);
        let mut sub = at.join(1, ser);
        let request = callee.req();
        callee.send(&Message::Register {
            request,
            options: dict(&[
                ("force_reregister", s("x")),
                ("concurrency", s("many")),
                ("_vendor_option", Val::Null),
            ]),
            procedure: Cow::Borrowed(&procedure),
        });
        callee.recv_with(|m| assert!(matches!(m, Message::Registered { .. }), "{m:?}"));
        let sid = sub.subscribe_opts(
            topic,
            dict(&[("_vendor_flag", s("x")), ("forward_for", Val::UInt(1))]),
        );
        // An option left undefined, as msgpackr and cbor-x write it (wampy.js sends
        // `{"match": undefined}`), is absent: an exact subscription, the same one.
        let undefined: &[u8] = match ser {
            Serializer::Json => b"null",
            Serializer::MsgPack => &[0xd4, 0x00, 0x00],
            Serializer::Cbor => &[0xf7],
        };
        let mut sub2 = at.join(1, ser);
        let subscribe = Message::Subscribe {
            request: sub2.req(),
            options: dict(&[("match", s(PLACEHOLDER))]),
            topic: Cow::Borrowed(topic),
        };
        sub2.send_raw(&with_raw_value(&subscribe, ser, undefined));
        sub2.recv_with(|m| {
            assert!(
                matches!(m, Message::Subscribed { subscription, .. } if subscription == sid),
                "{ser:?}: {m:?}"
            )
        });

        let mut c = at.join(0, ser);
        let request = c.req();
        c.send(&Message::Publish {
            request,
            options: dict(&[
                ("acknowledge", Val::Bool(true)),
                ("trustlevel", s("not a number")),
                ("enc_algo", s("invalid")),
                ("x_custom", list(vec![])),
            ]),
            topic: Cow::Borrowed(topic),
            args: Some(list(vec![Val::UInt(7)])),
            kwargs: None,
        });
        c.recv_with(|m| assert!(matches!(m, Message::Published { .. }), "{ser:?}: {m:?}"));
        for receiver in [&mut sub, &mut sub2] {
            let (got, _, args, _) = receiver.event();
            assert_eq!(got, sid);
            assert!(args.unwrap().semantic_eq(&list(vec![Val::UInt(7)])));
        }

        let request = c.req();
        c.send(&Message::Call {
            request,
            options: dict(&[("forward_for", Val::UInt(1)), ("x_custom", s("x"))]),
            procedure: Cow::Borrowed(&procedure),
            args: Some(list(vec![Val::UInt(8)])),
            kwargs: None,
        });
        let invocation = callee.recv_with(|m| match m {
            Message::Invocation { request, .. } => request,
            other => panic!("{ser:?}: expected INVOCATION, got {other:?}"),
        });
        callee.send(&Message::Yield {
            request: invocation,
            options: Val::empty_dict(),
            args: Some(list(vec![s("done")])),
            kwargs: None,
        });
        c.recv_with(|m| assert!(matches!(m, Message::Result { .. }), "{ser:?}: {m:?}"));

        // A wrongly typed option the router does act on is still the sender's violation.
        let request = c.req();
        c.send(&Message::Publish {
            request,
            options: dict(&[("exclude_me", Val::UInt(0))]),
            topic: Cow::Borrowed(topic),
            args: Some(list(vec![Val::UInt(9)])),
            kwargs: None,
        });
        expect_violation(&mut c);
        sub.expect_silence(Duration::from_millis(200));
        let request = sub.req();
        sub.send(&Message::Unsubscribe {
            request,
            subscription: sid,
        });
        sub.recv_with(|m| assert!(matches!(m, Message::Unsubscribed { .. }), "{m:?}"));
    }
}
