//! Property tests for the WAMP codecs: generated values and messages survive
//! every serializer and every serializer pair, our encoding is canonical, and
//! any frame that parses re-encodes to one that parses to the same message.

use std::borrow::Cow;

use proptest::prelude::*;
use wampd::protocol::{transcode, Message, Payload, Serializer, Val};

// The message comparison and the parse/re-encode checks are shared with the
// `message_*` fuzz targets.
#[path = "fuzz/fuzz_targets/roundtrip.rs"]
mod roundtrip;

use roundtrip::{json_safe, same_message};

// ---- strategies ---------------------------------------------------------------

fn ser() -> impl Strategy<Value = Serializer> {
    prop_oneof![
        Just(Serializer::Json),
        Just(Serializer::MsgPack),
        Just(Serializer::Cbor)
    ]
}

/// Unicode text, sometimes starting with U+0000 (the JSON binary marker).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z_.]{0,12}",
        3 => any::<String>(),
        1 => any::<String>().prop_map(|s| format!("\0{s}")),
    ]
}

fn leaf() -> impl Strategy<Value = Val<'static>> {
    prop_oneof![
        Just(Val::Null),
        any::<bool>().prop_map(Val::Bool),
        any::<i64>().prop_map(Val::Int),
        (i64::MIN..0i64).prop_map(Val::Int),
        any::<u64>().prop_map(Val::UInt),
        prop_oneof![Just(u64::MAX), Just(0u64), Just(1u64 << 53)].prop_map(Val::UInt),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Val::Float),
        text().prop_map(|s| Val::Str(Cow::Owned(s))),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| Val::Bytes(Cow::Owned(b))),
    ]
}

fn val() -> impl Strategy<Value = Val<'static>> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Val::List),
            proptest::collection::vec((text().prop_map(Cow::Owned), inner), 0..6)
                .prop_map(Val::Dict),
        ]
    })
}

fn dict() -> impl Strategy<Value = Val<'static>> {
    proptest::collection::vec((text().prop_map(Cow::Owned), val()), 0..4).prop_map(Val::Dict)
}

/// Arguments: a list, or a binary value (payload pass-through mode).
fn args() -> impl Strategy<Value = Option<Val<'static>>> {
    proptest::option::of(prop_oneof![
        4 => proptest::collection::vec(val(), 0..4).prop_map(Val::List),
        1 => proptest::collection::vec(any::<u8>(), 0..32).prop_map(|b| Val::Bytes(Cow::Owned(b))),
    ])
}

fn kwargs() -> impl Strategy<Value = Option<Val<'static>>> {
    proptest::option::of(dict())
}

/// URIs and other string fields: any text except the binary marker prefix,
/// which JSON cannot carry in a string field.
fn uri() -> impl Strategy<Value = Cow<'static, str>> {
    prop_oneof![
        3 => "[a-z][a-z0-9_]{0,8}(\\.[a-z0-9_]{1,8}){0,3}",
        1 => any::<String>().prop_filter("no binary marker", |s| !s.starts_with('\0')),
    ]
    .prop_map(Cow::Owned)
}

fn id() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..1 << 53, any::<u64>(), Just(u64::MAX)]
}

fn message() -> impl Strategy<Value = Message<'static>> {
    use Message as M;
    prop_oneof![
        (uri(), dict()).prop_map(|(realm, details)| M::Hello { realm, details }),
        (id(), dict()).prop_map(|(session, details)| M::Welcome { session, details }),
        (dict(), uri()).prop_map(|(details, reason)| M::Abort { details, reason }),
        (uri(), dict()).prop_map(|(authmethod, extra)| M::Challenge { authmethod, extra }),
        (uri(), dict()).prop_map(|(signature, extra)| M::Authenticate { signature, extra }),
        (dict(), uri()).prop_map(|(details, reason)| M::Goodbye { details, reason }),
        (id(), id(), dict(), uri(), args(), kwargs()).prop_map(
            |(request_type, request, details, error, args, kwargs)| M::Error {
                request_type,
                request,
                details,
                error,
                args,
                kwargs
            }
        ),
        (id(), dict(), uri(), args(), kwargs()).prop_map(
            |(request, options, topic, args, kwargs)| M::Publish {
                request,
                options,
                topic,
                args,
                kwargs
            }
        ),
        (id(), id()).prop_map(|(request, publication)| M::Published {
            request,
            publication
        }),
        (id(), dict(), uri()).prop_map(|(request, options, topic)| M::Subscribe {
            request,
            options,
            topic
        }),
        (id(), id()).prop_map(|(request, subscription)| M::Subscribed {
            request,
            subscription
        }),
        (id(), id()).prop_map(|(request, subscription)| M::Unsubscribe {
            request,
            subscription
        }),
        (id(), proptest::option::of(dict()))
            .prop_map(|(request, details)| M::Unsubscribed { request, details }),
        (id(), id(), dict(), args(), kwargs()).prop_map(
            |(subscription, publication, details, args, kwargs)| M::Event {
                subscription,
                publication,
                details,
                args,
                kwargs
            }
        ),
        (id(), dict(), uri(), args(), kwargs()).prop_map(
            |(request, options, procedure, args, kwargs)| M::Call {
                request,
                options,
                procedure,
                args,
                kwargs
            }
        ),
        (id(), dict()).prop_map(|(request, options)| M::Cancel { request, options }),
        (id(), dict(), args(), kwargs()).prop_map(|(request, details, args, kwargs)| {
            M::Result {
                request,
                details,
                args,
                kwargs,
            }
        }),
        (id(), dict(), uri()).prop_map(|(request, options, procedure)| M::Register {
            request,
            options,
            procedure
        }),
        (id(), id()).prop_map(|(request, registration)| M::Registered {
            request,
            registration
        }),
        (id(), id()).prop_map(|(request, registration)| M::Unregister {
            request,
            registration
        }),
        (id(), proptest::option::of(dict()))
            .prop_map(|(request, details)| M::Unregistered { request, details }),
        (id(), id(), dict(), args(), kwargs()).prop_map(
            |(request, registration, details, args, kwargs)| M::Invocation {
                request,
                registration,
                details,
                args,
                kwargs
            }
        ),
        (id(), dict()).prop_map(|(request, options)| M::Interrupt { request, options }),
        (id(), dict(), args(), kwargs()).prop_map(|(request, options, args, kwargs)| {
            M::Yield {
                request,
                options,
                args,
                kwargs,
            }
        }),
    ]
}

/// Byte-level damage to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Remove),
            any::<usize>().prop_map(Mutation::Truncate),
        ],
        1..4,
    )
}

fn mutate(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        let n = b.len().max(1);
        match *m {
            Mutation::Set(i, x) if !b.is_empty() => b[i % n] = x,
            Mutation::Insert(i, x) => b.insert(i % (b.len() + 1), x),
            Mutation::Remove(i) if !b.is_empty() => {
                b.remove(i % n);
            }
            Mutation::Truncate(i) => b.truncate(i % n),
            _ => {}
        }
    }
    b
}

// ---- helpers -------------------------------------------------------------------

fn encode(m: &Message, s: Serializer) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(s, &mut out)
        .unwrap_or_else(|e| panic!("{s:?}: encode failed: {e}"));
    out
}

/// Every value of a message (fields and payloads) survives JSON.
fn message_json_safe(m: &Message) -> bool {
    // MsgPack is lossless, so its encoding decoded as one list has every field.
    let bytes = encode(m, Serializer::MsgPack);
    let all = Val::decode(Payload::new(Serializer::MsgPack, &bytes).unwrap()).unwrap();
    json_safe(&all)
}

/// 256 cases per property unless PROPTEST_CASES asks for more (longer runs).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- properties ------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// encode -> parse -> same fields -> encode again gives identical bytes.
    #[test]
    fn same_serializer_round_trip_is_canonical(m in message()) {
        let json_ok = message_json_safe(&m);
        for s in Serializer::ALL {
            let first = encode(&m, s);
            let parsed = Message::parse(s, &first);
            if s == Serializer::Json && !json_ok {
                // Text starting with U+0000 is binary in WAMP's JSON: not representable.
                continue;
            }
            let parsed = parsed.unwrap_or_else(|e| panic!("{s:?}: {e}"));
            same_message(&m, &parsed, s.name());
            prop_assert_eq!(&encode(&parsed, s), &first, "{:?}: second encoding differs", s);
        }
    }

    /// Encode in A, parse, re-encode in B (transcoding the payloads), parse:
    /// the same message, bytes carried as "\0"+base64 strings through JSON.
    #[test]
    fn cross_serializer_round_trip(m in message(), a in ser(), b in ser()) {
        let json_ok = message_json_safe(&m);
        if (a == Serializer::Json || b == Serializer::Json) && !json_ok {
            return Ok(());
        }
        let in_a = encode(&m, a);
        let view_a = Message::parse(a, &in_a).unwrap_or_else(|e| panic!("{a:?}: {e}"));
        let in_b = encode(&view_a, b);
        let view_b = Message::parse(b, &in_b).unwrap_or_else(|e| panic!("{a:?}->{b:?}: {e}"));
        same_message(&m, &view_b, &format!("{a:?}->{b:?}"));
        // And back to A gives A's bytes.
        prop_assert_eq!(encode(&view_b, a), in_a, "{:?}->{:?}->{:?}", a, b, a);
    }

    /// Whatever parses re-encodes (in the same and the other serializers) to
    /// bytes that parse to the same message: arbitrary bytes.
    #[test]
    fn any_parsed_view_round_trips(s in ser(), data in proptest::collection::vec(any::<u8>(), 0..96)) {
        roundtrip::check(s, &data);
    }

    /// The same, from damaged valid encodings (which parse far more often).
    #[test]
    fn mutated_encodings_round_trip(m in message(), s in ser(), ms in mutations()) {
        let frame = mutate(encode(&m, s), &ms);
        roundtrip::check(s, &frame);
    }

    /// transcode(p, to) is exactly decode-then-encode (and a copy within one serializer).
    #[test]
    fn transcode_equals_decode_then_encode(v in val(), from in ser(), to in ser()) {
        let mut src = Vec::new();
        v.encode(from, &mut src).unwrap();
        let p = match Payload::new(from, &src) {
            Ok(p) => p,
            Err(e) => panic!("{from:?}: our own encoding does not validate: {e}"),
        };
        let mut via_transcode = Vec::new();
        let t = transcode(p, to, &mut via_transcode);
        if from == to {
            // Same serializer: a verbatim copy, which for our canonical encoding
            // is also what decoding and re-encoding gives.
            prop_assert!(t.is_ok());
            prop_assert_eq!(&via_transcode, &src);
            if from != Serializer::Json || json_safe(&v) {
                let mut again = Vec::new();
                Val::decode(p).unwrap().encode(to, &mut again).unwrap();
                prop_assert_eq!(&again, &src);
            }
            return Ok(());
        }
        let mut via_decode = Vec::new();
        let d = Val::decode(p).and_then(|d| d.encode(to, &mut via_decode));
        match (t, d) {
            (Ok(()), Ok(())) => prop_assert_eq!(via_transcode, via_decode, "{:?}->{:?}", from, to),
            (Err(_), Err(_)) => {}
            (t, d) => panic!("{from:?}->{to:?}: transcode {t:?} but decode+encode {d:?}"),
        }
    }
}

/// The JSON binary convention itself: bytes are written as "\0"+base64 and
/// read back as bytes; text that merely starts with U+0000 reads as binary too.
#[test]
fn json_binary_convention() {
    let v = Val::List(vec![Val::Bytes(Cow::Borrowed(&[0xde, 0xad, 0xbe, 0xef]))]);
    let mut out = Vec::new();
    v.encode(Serializer::Json, &mut out).unwrap();
    assert_eq!(out, b"[\"\\u00003q2+7w==\"]");
    let back = Val::decode(Payload::new(Serializer::Json, &out).unwrap()).unwrap();
    assert!(back.semantic_eq(&v));

    let s = Val::Str(Cow::Borrowed("\0AQID"));
    out.clear();
    s.encode(Serializer::Json, &mut out).unwrap();
    let back = Val::decode(Payload::new(Serializer::Json, &out).unwrap()).unwrap();
    assert!(back.semantic_eq(&Val::Bytes(Cow::Borrowed(&[1, 2, 3]))));
}
