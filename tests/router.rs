//! End-to-end behaviour of the router: a real wampd process with several shards, real sockets.
//! Connections are placed on shards round-robin, so with 2 shards consecutive clients sit on
//! different shards and every cross-shard path is exercised.

mod common;

use std::borrow::Cow;
use std::time::Duration;

use common::{dict, list, s, Client, Router};
use wampd::protocol::{codes, Message, Serializer, Val};

const JSON: Serializer = Serializer::Json;
const MSGPACK: Serializer = Serializer::MsgPack;
const CBOR: Serializer = Serializer::Cbor;

#[test]
fn welcome_announces_roles_and_a_valid_session_id() {
    let r = Router::start(2, &[]);
    assert!(r.start_line.contains("shards=2"), "{}", r.start_line);
    assert!(r.start_line.contains("driver="), "{}", r.start_line);
    let mut c = Client::rawsocket(&r.addr, JSON);
    c.send_hello("realm1");
    c.recv_with(|m| match m {
        Message::Welcome { session, details } => {
            assert!((1..=1u64 << 53).contains(&session));
            let roles = details.get("roles").expect("roles");
            assert!(roles.get("broker").is_some() && roles.get("dealer").is_some());
            let features = roles.get("broker").unwrap().get("features").unwrap();
            assert_eq!(
                features.get("publisher_exclusion").unwrap().as_bool(),
                Some(true)
            );
        }
        other => panic!("expected WELCOME, got {other:?}"),
    });
}

#[test]
fn unknown_realm_is_aborted() {
    let r = Router::start(1, &[]);
    let mut c = Client::rawsocket(&r.addr, MSGPACK);
    c.send_hello("nope");
    c.expect_abort("wamp.error.no_such_realm");
    c.expect_closed();
}

#[test]
fn first_message_must_be_hello() {
    let r = Router::start(1, &[]);
    let mut c = Client::websocket(&r.addr, JSON);
    c.send(&Message::Subscribe {
        request: 1,
        options: Val::empty_dict(),
        topic: Cow::Borrowed("a.b"),
    });
    c.expect_abort("wamp.error.protocol_violation");
    c.expect_closed();
}

#[test]
fn second_hello_is_a_protocol_violation() {
    let r = Router::start(1, &[]);
    let mut c = Client::join(&r.addr, CBOR);
    c.send_hello("realm1");
    c.expect_abort("wamp.error.protocol_violation");
}

#[test]
fn pubsub_across_shards_with_acknowledge_and_exclusion() {
    let r = Router::start(2, &[]);
    for ser in [JSON, MSGPACK, CBOR] {
        let mut sub = Client::join(&r.addr, ser);
        let mut publ = Client::join_ws(&r.addr, ser); // other shard
        let sid = sub.subscribe("com.example.topic");
        let own = publ.subscribe("com.example.topic");
        assert_eq!(sid, own, "one subscription id per topic");
        for i in 0..50u64 {
            let kwargs = dict(&[("seq", Val::UInt(i))]);
            publ.publish(
                "com.example.topic",
                dict(&[("acknowledge", Val::Bool(true))]),
                Some(list(vec![Val::UInt(i), s("héllo ☃")])),
                Some(kwargs),
            );
            publ.recv_with(|m| assert!(matches!(m, Message::Published { .. }), "{m:?}"));
        }
        for i in 0..50u64 {
            let (sub_id, _, args, kwargs) = sub.event();
            assert_eq!(sub_id, sid);
            let args = args.unwrap();
            assert!(
                args.semantic_eq(&list(vec![Val::UInt(i), s("héllo ☃")])),
                "{args:?}"
            );
            assert_eq!(kwargs.unwrap().get("seq").unwrap().as_u64(), Some(i));
        }
        // The publisher is excluded from its own events by default ...
        publ.expect_silence(Duration::from_millis(200));
        // ... unless it asks.
        publ.publish(
            "com.example.topic",
            dict(&[("exclude_me", Val::Bool(false))]),
            Some(list(vec![s("mine")])),
            None,
        );
        assert_eq!(publ.event().0, sid);
        assert_eq!(sub.event().0, sid);
    }
}

#[test]
fn events_are_transcoded_between_serializers_including_binary() {
    let r = Router::start(2, &[]);
    let blob: Vec<u8> = (0..=255u8).collect();
    let mut subs: Vec<Client> = [JSON, MSGPACK, CBOR]
        .iter()
        .map(|&ser| {
            let mut c = Client::join(&r.addr, ser);
            c.subscribe("com.example.bin");
            c
        })
        .collect();
    for publisher_ser in [JSON, MSGPACK, CBOR] {
        let mut p = Client::join_ws(&r.addr, publisher_ser);
        let args = list(vec![
            Val::Bytes(Cow::Borrowed(&blob)),
            Val::Bytes(Cow::Borrowed(&[])),
            s("tèxt"),
            Val::Int(-5),
            Val::Float(1.5),
            Val::Null,
        ]);
        p.publish_ack("com.example.bin", args.clone());
        for sub in subs.iter_mut() {
            let (_, _, got, _) = sub.event();
            let got = got.unwrap();
            assert!(
                got.semantic_eq(&args),
                "{:?} → {:?}: {got:?}",
                publisher_ser,
                sub.ser
            );
        }
    }
}

#[test]
fn rpc_across_shards_with_args_kwargs_and_errors() {
    let r = Router::start(2, &[]);
    for ser in [JSON, MSGPACK, CBOR] {
        let mut callee = Client::join(&r.addr, ser);
        let mut caller = Client::join_ws(&r.addr, if ser == JSON { CBOR } else { JSON });
        let proc = format!("com.example.add.{}", ser.name());
        let reg = callee.register(&proc);

        let request = caller.req();
        caller.send(&Message::Call {
            request,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed(&proc),
            args: Some(list(vec![Val::UInt(2), Val::UInt(3)])),
            kwargs: Some(dict(&[("k", s("v"))])),
        });
        let inv = callee.recv_with(|m| match m {
            Message::Invocation {
                request,
                registration,
                args,
                kwargs,
                ..
            } => {
                assert_eq!(registration, reg);
                assert!(args
                    .unwrap()
                    .semantic_eq(&list(vec![Val::UInt(2), Val::UInt(3)])));
                assert_eq!(
                    kwargs.unwrap().get("k").unwrap().as_str().as_deref(),
                    Some("v")
                );
                request
            }
            other => panic!("expected INVOCATION, got {other:?}"),
        });
        callee.send(&Message::Yield {
            request: inv,
            options: Val::empty_dict(),
            args: Some(list(vec![Val::UInt(5)])),
            kwargs: Some(dict(&[("sum", Val::UInt(5))])),
        });
        caller.recv_with(|m| match m {
            Message::Result {
                request: r,
                args,
                kwargs,
                ..
            } => {
                assert_eq!(r, request);
                assert!(args.unwrap().semantic_eq(&list(vec![Val::UInt(5)])));
                assert_eq!(kwargs.unwrap().get("sum").unwrap().as_u64(), Some(5));
            }
            other => panic!("expected RESULT, got {other:?}"),
        });

        // An application error travels back with its URI and payload.
        let request = caller.req();
        caller.send(&Message::Call {
            request,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed(&proc),
            args: None,
            kwargs: None,
        });
        let inv = callee.recv_with(|m| match m {
            Message::Invocation { request, .. } => request,
            other => panic!("{other:?}"),
        });
        callee.send(&Message::Error {
            request_type: codes::INVOCATION,
            request: inv,
            details: Val::empty_dict(),
            error: Cow::Borrowed("com.example.oops"),
            args: Some(list(vec![Val::UInt(1)])),
            kwargs: Some(dict(&[("x", Val::UInt(2))])),
        });
        caller.recv_with(|m| match m {
            Message::Error {
                request_type,
                request: r,
                error,
                args,
                kwargs,
                ..
            } => {
                assert_eq!((request_type, r), (codes::CALL, request));
                assert_eq!(error, "com.example.oops");
                assert!(args.unwrap().semantic_eq(&list(vec![Val::UInt(1)])));
                assert_eq!(kwargs.unwrap().get("x").unwrap().as_u64(), Some(2));
            }
            other => panic!("{other:?}"),
        });

        // A second registration of the same procedure is refused, even from another shard.
        let request = caller.req();
        caller.send(&Message::Register {
            request,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed(&proc),
        });
        expect_error(
            &mut caller,
            codes::REGISTER,
            request,
            "wamp.error.procedure_already_exists",
        );
    }
}

fn expect_error(c: &mut Client, request_type: u64, request: u64, uri: &str) {
    c.recv_with(|m| match m {
        Message::Error {
            request_type: t,
            request: r,
            error,
            ..
        } => {
            assert_eq!((t, r), (request_type, request));
            assert_eq!(error, uri);
        }
        other => panic!("expected ERROR {uri}, got {other:?}"),
    });
}

#[test]
fn unknown_procedure_and_invalid_uris_are_errors() {
    let r = Router::start(2, &[]);
    let mut c = Client::join(&r.addr, JSON);
    let request = c.req();
    c.send(&Message::Call {
        request,
        options: Val::empty_dict(),
        procedure: Cow::Borrowed("com.nobody.home"),
        args: None,
        kwargs: None,
    });
    expect_error(&mut c, codes::CALL, request, "wamp.error.no_such_procedure");

    let request = c.req();
    c.send(&Message::Subscribe {
        request,
        options: Val::empty_dict(),
        topic: Cow::Borrowed("bad uri with spaces"),
    });
    expect_error(&mut c, codes::SUBSCRIBE, request, "wamp.error.invalid_uri");

    let request = c.req();
    c.send(&Message::Publish {
        request,
        options: dict(&[("acknowledge", Val::Bool(true))]),
        topic: Cow::Borrowed("a..b"),
        args: None,
        kwargs: None,
    });
    expect_error(&mut c, codes::PUBLISH, request, "wamp.error.invalid_uri");

    let request = c.req();
    c.send(&Message::Unsubscribe {
        request,
        subscription: 12345,
    });
    expect_error(
        &mut c,
        codes::UNSUBSCRIBE,
        request,
        "wamp.error.no_such_subscription",
    );

    let request = c.req();
    c.send(&Message::Unregister {
        request,
        registration: 12345,
    });
    expect_error(
        &mut c,
        codes::UNREGISTER,
        request,
        "wamp.error.no_such_registration",
    );
}

#[test]
fn callee_leaving_fails_calls_in_flight_and_frees_the_procedure() {
    let r = Router::start(2, &[]);
    let mut callee = Client::join(&r.addr, MSGPACK);
    let mut caller = Client::join(&r.addr, JSON);
    callee.register("com.example.slow");
    let request = caller.req();
    caller.send(&Message::Call {
        request,
        options: Val::empty_dict(),
        procedure: Cow::Borrowed("com.example.slow"),
        args: None,
        kwargs: None,
    });
    callee.recv_with(|m| assert!(matches!(m, Message::Invocation { .. })));
    drop(callee); // socket closed, no GOODBYE
    caller.recv_with(|m| match m {
        Message::Error {
            request: r, error, ..
        } => {
            assert_eq!(r, request);
            assert!(error == "wamp.error.canceled" || error == "wamp.error.cancelled");
        }
        other => panic!("{other:?}"),
    });
    // The procedure is free again at once, on either shard.
    let mut again = Client::join(&r.addr, CBOR);
    again.register("com.example.slow");
}

#[test]
fn unsubscribe_and_unregister_stop_routing() {
    let r = Router::start(2, &[]);
    let mut a = Client::join(&r.addr, JSON);
    let mut b = Client::join(&r.addr, JSON);
    let sub = a.subscribe("t.x");
    let reg = a.register("p.x");
    let request = a.req();
    a.send(&Message::Unsubscribe {
        request,
        subscription: sub,
    });
    a.recv_with(|m| assert!(matches!(m, Message::Unsubscribed { .. }), "{m:?}"));
    let request = a.req();
    a.send(&Message::Unregister {
        request,
        registration: reg,
    });
    a.recv_with(|m| assert!(matches!(m, Message::Unregistered { .. }), "{m:?}"));
    b.publish_ack("t.x", list(vec![]));
    a.expect_silence(Duration::from_millis(200));
    let request = b.req();
    b.send(&Message::Call {
        request,
        options: Val::empty_dict(),
        procedure: Cow::Borrowed("p.x"),
        args: None,
        kwargs: None,
    });
    expect_error(&mut b, codes::CALL, request, "wamp.error.no_such_procedure");
}

#[test]
fn prefix_and_wildcard_subscriptions_get_the_topic() {
    let r = Router::start(2, &[]);
    let mut sub = Client::join(&r.addr, CBOR);
    let mut p = Client::join(&r.addr, JSON);
    let prefix = sub.subscribe_opts("com.app", dict(&[("match", s("prefix"))]));
    let wild = sub.subscribe_opts("com..update", dict(&[("match", s("wildcard"))]));
    p.publish_ack("com.app.update", list(vec![]));
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (id, details, _, _) = sub.event();
        assert_eq!(
            details.get("topic").unwrap().as_str().as_deref(),
            Some("com.app.update")
        );
        seen.push(id);
    }
    seen.sort();
    let mut want = vec![prefix, wild];
    want.sort();
    assert_eq!(seen, want);
    p.publish_ack("com.other.update", list(vec![]));
    assert_eq!(sub.event().0, wild);
    sub.expect_silence(Duration::from_millis(200));
}

#[test]
fn realms_are_isolated() {
    let r = Router::start(2, &["--realm", "realm1", "--realm", "realm2"]);
    let mut a = Client::join(&r.addr, JSON);
    let mut b = Client::rawsocket(&r.addr, JSON);
    b.hello("realm2");
    a.subscribe("shared.topic");
    b.register("shared.proc");
    b.publish_ack("shared.topic", list(vec![]));
    a.expect_silence(Duration::from_millis(200));
    let request = a.req();
    a.send(&Message::Call {
        request,
        options: Val::empty_dict(),
        procedure: Cow::Borrowed("shared.proc"),
        args: None,
        kwargs: None,
    });
    expect_error(&mut a, codes::CALL, request, "wamp.error.no_such_procedure");
}

#[test]
fn goodbye_is_answered_and_state_is_cleaned() {
    let r = Router::start(2, &[]);
    let mut a = Client::join_ws(&r.addr, MSGPACK);
    a.register("com.example.p");
    a.send(&Message::Goodbye {
        details: Val::empty_dict(),
        reason: Cow::Borrowed("wamp.close.close_realm"),
    });
    a.recv_with(|m| match m {
        Message::Goodbye { reason, .. } => assert_eq!(reason, "wamp.close.goodbye_and_out"),
        other => panic!("{other:?}"),
    });
    let mut b = Client::join(&r.addr, JSON);
    b.register("com.example.p");
}

#[test]
fn unix_socket_rawsocket() {
    let path = std::env::temp_dir().join(format!("wampd-test-{}.sock", std::process::id()));
    let p = path.to_str().unwrap().to_string();
    let r = Router::start(2, &["--unix", &p]);
    assert!(r.start_line.contains("unix://"), "{}", r.start_line);
    let mut a = Client::unix(&p, MSGPACK);
    a.hello("realm1");
    a.subscribe("u.t");
    let mut b = Client::join(&r.addr, JSON);
    b.publish_ack("u.t", list(vec![s("over unix")]));
    assert!(a
        .event()
        .2
        .unwrap()
        .semantic_eq(&list(vec![s("over unix")])));
    drop(r);
    let _ = std::fs::remove_file(path);
}

#[test]
fn epoll_fallback_works_and_says_so() {
    let r = Router::start_env(2, &[], &[("MONOIO_FORCE_LEGACY_DRIVER", "1")]);
    assert!(r.start_line.contains("driver=epoll"), "{}", r.start_line);
    let mut a = Client::join(&r.addr, JSON);
    let mut b = Client::join_ws(&r.addr, CBOR);
    a.subscribe("e.t");
    b.publish_ack("e.t", list(vec![Val::UInt(1)]));
    assert_eq!(a.event().2.unwrap().list_len(), Some(1));
}

#[test]
fn websocket_without_a_wamp_subprotocol_gets_an_http_error() {
    use std::io::{Read, Write};
    let r = Router::start(1, &[]);
    let mut s = std::net::TcpStream::connect(&r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: chat\r\n\r\n",
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("wamp.2.json"), "{resp}");
}

#[test]
fn rawsocket_handshake_errors() {
    use std::io::{Read, Write};
    let r = Router::start(1, &[]);
    // Serializer 7 does not exist.
    let mut s = std::net::TcpStream::connect(&r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0x7F, 0xF7, 0, 0]).unwrap();
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0x7F, 0x10, 0, 0], "error 1: serializer unsupported");
    // Reserved bytes set.
    let mut s = std::net::TcpStream::connect(&r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0x7F, 0xF1, 1, 0]).unwrap();
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0x7F, 0x30, 0, 0], "error 3: reserved bits");
}

#[test]
fn rawsocket_negotiated_length_is_enforced_both_ways() {
    let r = Router::start(1, &["--max-message-size", "4096"]);
    // Our announced limit: 4096 → exponent 3 (2^12).
    let mut big = Client::join(&r.addr, JSON);
    let payload = "x".repeat(5000);
    big.publish(
        "t.big",
        Val::empty_dict(),
        Some(list(vec![s(&payload)])),
        None,
    );
    big.expect_closed();
    // A client that accepts only 512 bytes does not get a larger EVENT (but keeps its session).
    use std::io::{Read, Write};
    let mut raw = std::net::TcpStream::connect(&r.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(&[0x7F, 0x01, 0, 0]).unwrap(); // 2^9 = 512 bytes, json
    let mut reply = [0u8; 4];
    raw.read_exact(&mut reply).unwrap();
    assert_eq!(reply[1] >> 4, 3, "router announces 2^12");
    drop(raw);
}

#[test]
fn bad_input_closes_only_that_connection() {
    let r = Router::start(2, &["--max-message-size", "65536"]);
    let mut by = Bystanders::new(&r.addr);

    // A catalogue of bad input, each on its own connection, each followed by a check that the
    // bystanders on both shards still exchange events and calls.
    let mut bad = Client::join(&r.addr, JSON);
    bad.send_raw(b"[16, 1, {}, \"t\", [1, 2"); // truncated JSON
    bad.expect_abort("wamp.error.protocol_violation");
    by.check();

    let mut bad = Client::join(&r.addr, JSON);
    bad.send_raw(b"[16, \"one\", {}, \"t\"]"); // wrong type
    bad.expect_abort("wamp.error.protocol_violation");
    by.check();

    let mut bad = Client::join(&r.addr, JSON);
    bad.send_raw(b"[999, 1]"); // unknown code
    bad.expect_abort("wamp.error.protocol_violation");

    let mut bad = Client::join(&r.addr, JSON);
    bad.send_raw(b"[32, 1, {}]"); // wrong arity
    bad.expect_abort("wamp.error.protocol_violation");

    let mut bad = Client::join(&r.addr, JSON);
    bad.send_raw(b"[]"); // empty message
    bad.expect_abort("wamp.error.protocol_violation");
    by.check();

    let mut bad = Client::join(&r.addr, MSGPACK);
    bad.send_raw(&[0x93, 0x10, 0xc1, 0xff]); // msgpack reserved byte
    bad.expect_abort("wamp.error.protocol_violation");

    let mut bad = Client::join(&r.addr, CBOR);
    bad.send_raw(&[0x9f, 0x10, 0x01]); // CBOR indefinite array never closed
    bad.expect_abort("wamp.error.protocol_violation");

    let mut bad = Client::join(&r.addr, JSON);
    bad.send_raw(b"[16, 0, {}, \"t\"]"); // request id 0 is out of range
    bad.expect_abort("wamp.error.protocol_violation");

    let mut bad = Client::join(&r.addr, JSON);
    bad.send_raw(b"[16, 9007199254740993, {}, \"t\"]"); // request id above 2^53
    bad.expect_abort("wamp.error.protocol_violation");

    let mut bad = Client::join(&r.addr, JSON);
    bad.send_raw(b"[36, 1, 2, {}, []]"); // a router-to-client message
    bad.expect_abort("wamp.error.protocol_violation");

    let mut bad = Client::join(&r.addr, JSON);
    bad.send_raw(b"[70, 99, {}, []]"); // YIELD for an INVOCATION the router never sent
    bad.expect_abort("wamp.error.protocol_violation");

    let mut bad = Client::join(&r.addr, JSON);
    bad.send_raw(b"[8, 68, 99, {}, \"app.error\"]"); // ERROR for an INVOCATION never sent
    bad.expect_abort("wamp.error.protocol_violation");
    by.check();

    let mut bad = Client::join_ws(&r.addr, JSON);
    bad.write_socket(&[0x81, 0x05, b'h', b'e', b'l', b'l', b'o']); // unmasked client frame
    bad.expect_closed();

    let mut bad = Client::join_ws(&r.addr, JSON);
    // A masked text frame whose payload is not UTF-8.
    bad.write_socket(&[0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28]);
    bad.expect_closed();

    let mut bad = Client::join_ws(&r.addr, JSON);
    // A 64-bit length far beyond the maximum message size.
    bad.write_socket(&[0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4]);
    bad.expect_closed();
    by.check();

    let mut bad = Client::rawsocket(&r.addr, JSON);
    bad.write_socket(&[0x00, 0xFF, 0xFF, 0xFF]); // length beyond the negotiated maximum
    bad.expect_closed();

    let mut bad = Client::rawsocket(&r.addr, JSON);
    bad.write_socket(&[0x07, 0, 0, 1, 0]); // reserved RawSocket frame type
    bad.expect_closed();

    let mut garbage = std::net::TcpStream::connect(&r.addr).unwrap();
    use std::io::Write;
    garbage
        .write_all(b"\x16\x03\x01 this is not http at all\r\n\r\n")
        .unwrap();
    drop(garbage);

    let mut truncated = Client::join(&r.addr, MSGPACK);
    truncated.write_socket(&[0x00, 0x00, 0x00, 0x40, 0x95, 0x10]); // frame cut off, then gone
    drop(truncated);

    // The bystanders never noticed.
    for _ in 0..20 {
        by.check();
    }
}

/// Two sessions on different shards that keep exchanging events and calls.
struct Bystanders {
    sub: Client,
    publ: Client,
    callee: Client,
    caller: Client,
    n: u64,
}

impl Bystanders {
    fn new(addr: &str) -> Self {
        let mut sub = Client::join(addr, MSGPACK);
        let mut publ = Client::join_ws(addr, JSON);
        let mut callee = Client::join(addr, CBOR);
        let caller = Client::join_ws(addr, MSGPACK);
        sub.subscribe("bystander.t");
        callee.register("bystander.p");
        let _ = &mut publ;
        Bystanders {
            sub,
            publ,
            callee,
            caller,
            n: 0,
        }
    }

    /// One event and one call round trip, both checked.
    fn check(&mut self) {
        self.n += 1;
        let n = self.n;
        self.publ
            .publish_ack("bystander.t", list(vec![Val::UInt(n)]));
        let (_, _, args, _) = self.sub.event();
        assert!(args.unwrap().semantic_eq(&list(vec![Val::UInt(n)])));
        let request = self.caller.req();
        self.caller.send(&Message::Call {
            request,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed("bystander.p"),
            args: Some(list(vec![Val::UInt(n)])),
            kwargs: None,
        });
        let inv = self.callee.recv_with(|m| match m {
            Message::Invocation { request, .. } => request,
            other => panic!("{other:?}"),
        });
        self.callee.send(&Message::Yield {
            request: inv,
            options: Val::empty_dict(),
            args: Some(list(vec![Val::UInt(n * 2)])),
            kwargs: None,
        });
        self.caller.recv_with(|m| match m {
            Message::Result {
                request: r, args, ..
            } => {
                assert_eq!(r, request);
                assert!(args.unwrap().semantic_eq(&list(vec![Val::UInt(n * 2)])));
            }
            other => panic!("{other:?}"),
        });
    }
}

#[test]
fn many_sessions_on_many_shards_all_receive_every_event_in_order() {
    let r = Router::start(3, &[]);
    let mut subs: Vec<Client> = (0..12)
        .map(|i| {
            let ser = [JSON, MSGPACK, CBOR][i % 3];
            let mut c = if i % 2 == 0 {
                Client::join(&r.addr, ser)
            } else {
                Client::join_ws(&r.addr, ser)
            };
            c.subscribe("fan.out");
            c
        })
        .collect();
    let mut p = Client::join(&r.addr, MSGPACK);
    for i in 0..200u64 {
        p.publish(
            "fan.out",
            Val::empty_dict(),
            Some(list(vec![Val::UInt(i)])),
            None,
        );
    }
    p.publish_ack("fan.out", list(vec![Val::UInt(200)]));
    for c in subs.iter_mut() {
        for i in 0..=200u64 {
            let (_, _, args, _) = c.event();
            assert_eq!(
                args.unwrap().to_owned_first_u64(),
                Some(i),
                "subscriber with {:?}",
                c.ser
            );
        }
    }
}

trait FirstU64 {
    fn to_owned_first_u64(&self) -> Option<u64>;
}

impl FirstU64 for Val<'_> {
    fn to_owned_first_u64(&self) -> Option<u64> {
        match self {
            Val::List(items) => items.first().and_then(|v| v.as_u64()),
            _ => None,
        }
    }
}

#[test]
fn wrongly_typed_options_are_a_protocol_violation() {
    let r = Router::start(1, &[]);
    let mut c = Client::join(&r.addr, JSON);
    c.send_raw(br#"[16, 1, {"acknowledge": "yes"}, "a.b"]"#);
    c.expect_abort("wamp.error.protocol_violation");
    let mut c = Client::join(&r.addr, JSON);
    c.send_raw(br#"[32, 1, {"match": "fuzzy"}, "a.b"]"#);
    c.expect_abort("wamp.error.protocol_violation");
}

#[test]
fn websocket_ping_fragmentation_and_close() {
    use std::io::{Read, Write};
    let r = Router::start(2, &[]);
    let mut sub = Client::join(&r.addr, JSON);
    sub.subscribe("frag.t");

    // A hand-made client: masked frames, a fragmented message with a ping between the fragments.
    let mut s = std::net::TcpStream::connect(&r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");

    fn frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut v = vec![
            (if fin { 0x80 } else { 0 }) | op,
            0x80 | payload.len() as u8,
        ];
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }
    fn read_frame(s: &mut std::net::TcpStream) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).unwrap();
        let mut len = (h[1] & 0x7F) as usize;
        if len == 126 {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            len = u16::from_be_bytes(l) as usize;
        }
        let mut p = vec![0u8; len];
        s.read_exact(&mut p).unwrap();
        (h[0] & 0x0F, p)
    }
    s.write_all(&frame(
        true,
        1,
        br#"[1, "realm1", {"roles": {"publisher": {}}}]"#,
    ))
    .unwrap();
    let (op, welcome) = read_frame(&mut s);
    assert_eq!(op, 1, "json goes in text frames");
    assert!(
        welcome.starts_with(b"[2,"),
        "{}",
        String::from_utf8_lossy(&welcome)
    );

    let publish = br#"[16, 1, {"acknowledge": true}, "frag.t", ["in pieces"]]"#;
    s.write_all(&frame(false, 1, &publish[..10])).unwrap();
    s.write_all(&frame(true, 9, b"are you there")).unwrap();
    s.write_all(&frame(true, 0, &publish[10..])).unwrap();
    let (op, pong) = read_frame(&mut s);
    assert_eq!((op, pong.as_slice()), (10, &b"are you there"[..]));
    let (op, published) = read_frame(&mut s);
    assert_eq!(op, 1);
    assert!(
        published.starts_with(b"[17,1,"),
        "{}",
        String::from_utf8_lossy(&published)
    );
    assert!(sub
        .event()
        .2
        .unwrap()
        .semantic_eq(&list(vec![common::s("in pieces")])));

    // Close handshake: the router answers with a close frame.
    s.write_all(&frame(true, 8, &1000u16.to_be_bytes()))
        .unwrap();
    let (op, payload) = read_frame(&mut s);
    assert_eq!(op, 8);
    assert_eq!(&payload[..2], &1000u16.to_be_bytes());
}

#[test]
fn sigterm_says_goodbye_to_every_session_and_exits_cleanly() {
    let mut r = Router::start(2, &[]);
    let mut a = Client::join(&r.addr, JSON);
    let mut b = Client::join_ws(&r.addr, MSGPACK);
    a.subscribe("s.t");
    let status = r
        .terminate(Duration::from_secs(10))
        .expect("exits within 10 s");
    assert!(status.success(), "exit status {status:?}");
    for c in [&mut a, &mut b] {
        c.recv_with(|m| match m {
            Message::Goodbye { reason, .. } => assert_eq!(reason, "wamp.close.system_shutdown"),
            other => panic!("expected GOODBYE, got {other:?}"),
        });
        assert!(c.recv().is_none(), "the transport closes after GOODBYE");
    }
}

#[test]
fn session_limit_refuses_with_the_transports_own_answer() {
    use std::io::{Read, Write};
    let r = Router::start(2, &["--max-sessions", "2"]);
    let a = Client::join(&r.addr, JSON);
    let _b = Client::join_ws(&r.addr, JSON);
    // RawSocket: handshake error 4, "maximum connection count reached".
    let mut s = std::net::TcpStream::connect(&r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0x7F, 0xF1, 0, 0]).unwrap();
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0x7F, 0x40, 0, 0]);
    // WebSocket: HTTP 503.
    let mut s = std::net::TcpStream::connect(&r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n",
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    // A slot frees when a session leaves.
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = std::net::TcpStream::connect(&r.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&[0x7F, 0xF1, 0, 0]).unwrap();
        s.read_exact(&mut reply).unwrap();
        if reply[1] == 0xF1 || reply[1] & 0x0F == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn silent_connections_are_closed_by_the_handshake_and_hello_timeouts() {
    use std::io::Read;
    let r = Router::start(1, &["--handshake-timeout", "1", "--hello-timeout", "1"]);
    let start = std::time::Instant::now();
    // Nothing at all after connecting: the handshake timeout closes it.
    let mut silent = std::net::TcpStream::connect(&r.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        silent.read(&mut buf).unwrap_or(0),
        0,
        "closed without a word"
    );
    // A RawSocket handshake but no HELLO: the HELLO timeout closes it.
    let mut c = Client::rawsocket(&r.addr, JSON);
    c.set_timeout(Duration::from_secs(5));
    assert!(c.recv().is_none(), "closed without a session");
    assert!(start.elapsed() < Duration::from_secs(8));
    // A session that said HELLO in time is not affected.
    let mut ok = Client::join(&r.addr, JSON);
    std::thread::sleep(Duration::from_millis(1500));
    ok.publish_ack("still.here", list(vec![]));
}

#[test]
fn per_session_limits_answer_unavailable() {
    let r = Router::start(
        2,
        &[
            "--max-subscriptions-per-session",
            "2",
            "--max-registrations-per-session",
            "1",
            "--max-pending-invocations",
            "2",
        ],
    );
    let mut a = Client::join(&r.addr, JSON);
    a.subscribe("l.one");
    a.subscribe("l.two");
    let request = a.req();
    a.send(&Message::Subscribe {
        request,
        options: Val::empty_dict(),
        topic: Cow::Borrowed("l.three"),
    });
    expect_error(&mut a, codes::SUBSCRIBE, request, "wamp.error.unavailable");

    // A callee that never answers: the third call in flight fails fast.
    let mut callee = Client::join(&r.addr, MSGPACK);
    callee.register("l.slow");
    let request = callee.req();
    callee.send(&Message::Register {
        request,
        options: Val::empty_dict(),
        procedure: Cow::Borrowed("l.other"),
    });
    expect_error(
        &mut callee,
        codes::REGISTER,
        request,
        "wamp.error.unavailable",
    );
    let mut caller = Client::join(&r.addr, CBOR);
    let mut requests = Vec::new();
    for _ in 0..3 {
        let request = caller.req();
        requests.push(request);
        caller.send(&Message::Call {
            request,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed("l.slow"),
            args: None,
            kwargs: None,
        });
    }
    expect_error(
        &mut caller,
        codes::CALL,
        requests[2],
        "wamp.error.unavailable",
    );
}

#[test]
fn request_ids_must_count_up_by_one_unless_lenient() {
    let r = Router::start(1, &[]);
    let mut c = Client::join(&r.addr, JSON);
    c.subscribe("seq.a"); // request 1
    c.send_raw(br#"[16, 5, {"acknowledge": true}, "seq.a", []]"#);
    c.expect_abort("wamp.error.protocol_violation");

    let r = Router::start(1, &["--lenient-request-ids"]);
    let mut c = Client::join(&r.addr, JSON);
    c.send_raw(br#"[16, 77, {"acknowledge": true}, "seq.a", []]"#);
    c.recv_with(|m| assert!(matches!(m, Message::Published { request: 77, .. }), "{m:?}"));
}

#[test]
fn idle_sessions_are_pinged_and_closed_when_silent() {
    let r = Router::start(2, &["--idle-timeout", "1"]);
    let mut busy = Client::join(&r.addr, MSGPACK);
    // A peer that never answers pings is closed after two idle periods.
    let mut silent = Client::join(&r.addr, JSON);
    let start = std::time::Instant::now();
    let watcher = std::thread::spawn(move || {
        silent.set_timeout(Duration::from_secs(8));
        let gone = silent.recv().is_none();
        (gone, start.elapsed())
    });
    // A peer with traffic is never idle.
    for _ in 0..7 {
        busy.publish_ack("idle.t", list(vec![]));
        std::thread::sleep(Duration::from_millis(500));
    }
    let (gone, took) = watcher.join().unwrap();
    assert!(gone);
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
}

#[test]
fn subscriber_killed_mid_stream_harms_no_one_and_leaves_no_state() {
    let r = Router::start(2, &[]);
    let mut victim = Some(Client::join(&r.addr, MSGPACK));
    let mut survivor = Client::join_ws(&r.addr, CBOR);
    let mut publ = Client::join(&r.addr, JSON);
    if let Some(v) = victim.as_mut() {
        v.subscribe("stream.t");
        v.register("stream.proc");
    }
    survivor.subscribe("stream.t");
    for i in 0..200u64 {
        publ.publish(
            "stream.t",
            Val::empty_dict(),
            Some(list(vec![Val::UInt(i)])),
            None,
        );
        if i == 100 {
            drop(victim.take()); // killed mid-stream: socket closed, no GOODBYE
            let mut gone = Client::join(&r.addr, MSGPACK);
            // Its registration is gone at once: someone else can take the procedure.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let request = gone.req();
                gone.send(&Message::Register {
                    request,
                    options: Val::empty_dict(),
                    procedure: Cow::Borrowed("stream.proc"),
                });
                let ok = gone.recv_with(|m| matches!(m, Message::Registered { .. }));
                if ok {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "registration never freed"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    publ.publish_ack("stream.t", list(vec![Val::UInt(200)]));
    for i in 0..=200u64 {
        let (_, _, args, _) = survivor.event();
        assert!(args.unwrap().semantic_eq(&list(vec![Val::UInt(i)])));
    }
}

#[test]
fn full_shard_rings_slow_the_publisher_and_lose_nothing() {
    // Rings of 4 messages: the publisher's shard keeps finding the other shard's ring full, and must
    // pause reading the publisher rather than drop or buffer without bound.
    let r = Router::start(2, &["--ring-capacity", "4"]);
    let mut subs: Vec<Client> = (0..6)
        .map(|_| {
            let mut c = Client::join(&r.addr, MSGPACK);
            c.subscribe("ring.t");
            c
        })
        .collect();
    let mut p = Client::join(&r.addr, JSON);
    const N: u64 = 3000;
    for i in 0..N {
        p.publish(
            "ring.t",
            Val::empty_dict(),
            Some(list(vec![Val::UInt(i)])),
            None,
        );
    }
    p.publish_ack("ring.t", list(vec![Val::UInt(N)]));
    for c in subs.iter_mut() {
        for i in 0..=N {
            let (_, _, args, _) = c.event();
            assert_eq!(args.unwrap().to_owned_first_u64(), Some(i));
        }
    }
}
