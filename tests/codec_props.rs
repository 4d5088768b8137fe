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

/// Unicode text values. Not starting with U+0000: JSON reads such text as
/// binary, so no serializer accepts it as a value (see `refused_values`).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z_.]{0,12}",
        3 => any::<String>().prop_map(|s| s.trim_start_matches('\0').to_string()),
    ]
}

/// Dict keys: any text, U+0000 in front included (keys are text in JSON too).
fn key() -> impl Strategy<Value = Cow<'static, str>> {
    prop_oneof![
        5 => text(),
        1 => any::<String>().prop_map(|s| format!("\0{s}")),
    ]
    .prop_map(Cow::Owned)
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
            proptest::collection::vec((key(), inner), 0..6).prop_map(Val::Dict),
        ]
    })
}

fn dict() -> impl Strategy<Value = Val<'static>> {
    proptest::collection::vec((key(), val()), 0..4).prop_map(Val::Dict)
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
        1 => text(),
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

/// A value no serializer accepts, as written by our encoder for `ser`: text
/// starting with U+0000 (binary in JSON, so in JSON it must at least fail as
/// base64) and, outside JSON (whose encoder writes them as null), infinite and
/// NaN floats.
fn refused_value(ser: Serializer) -> BoxedStrategy<Val<'static>> {
    let bad_b64 = prop_oneof![
        any::<String>().prop_map(|s| format!("\0{s}!")),
        (0usize..4).prop_map(|n| format!("\0{}A", "AAAA".repeat(n))),
        Just("\0AQJ".to_string()),
    ];
    let nul_text = any::<String>().prop_map(|s| format!("\0{s}"));
    let text = if ser == Serializer::Json {
        bad_b64.boxed()
    } else {
        nul_text.boxed()
    };
    let text = text.prop_map(|s| Val::Str(Cow::Owned(s)));
    if ser == Serializer::Json {
        return text.boxed();
    }
    let float = prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)]
        .prop_map(Val::Float);
    prop_oneof![text, float].boxed()
}

/// `bad` buried under up to three lists or dicts, between ordinary values.
fn bury(bad: Val<'static>, path: &[(bool, usize)], others: &[Val<'static>]) -> Val<'static> {
    path.iter().fold(bad, |inner, &(as_dict, at)| {
        let mut items = others.to_vec();
        let at = at % (items.len() + 1);
        if as_dict {
            let mut entries: Vec<_> = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Cow::Owned(format!("k{i}")), v))
                .collect();
            entries.insert(at, (Cow::Borrowed("bad"), inner));
            Val::Dict(entries)
        } else {
            items.insert(at, inner);
            Val::List(items)
        }
    })
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
        for s in Serializer::ALL {
            let first = encode(&m, s);
            let parsed = Message::parse(s, &first).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            same_message(&m, &parsed, s.name());
            prop_assert_eq!(&encode(&parsed, s), &first, "{:?}: second encoding differs", s);
        }
    }

    /// Encode in A, parse, re-encode in B (transcoding the payloads), parse:
    /// the same message, bytes carried as "\0"+base64 strings through JSON.
    #[test]
    fn cross_serializer_round_trip(m in message(), a in ser(), b in ser()) {
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

    /// A value that could not reach every peer unchanged, anywhere in a
    /// message's payload, makes the whole message fail to parse: the sender's
    /// protocol violation, never a forwarding failure later.
    #[test]
    fn refused_values_fail_the_parse(
        (s, bad) in ser().prop_flat_map(|s| (Just(s), refused_value(s))),
        path in proptest::collection::vec((any::<bool>(), any::<usize>()), 0..4),
        others in proptest::collection::vec(val(), 0..3),
        place in 0..3u8,
        request in id(),
        topic in uri(),
    ) {
        let publish = |v: Val<'static>| {
            let (mut options, mut args, mut kwargs) = (Val::empty_dict(), None, None);
            match place {
                0 => args = Some(Val::List(vec![v])),
                1 => kwargs = Some(Val::Dict(vec![(Cow::Borrowed("k"), v)])),
                _ => options = Val::Dict(vec![(Cow::Borrowed("x_opt"), v)]),
            }
            Message::Publish { request, options, topic: topic.clone(), args, kwargs }
        };
        // The same message with null in its place parses: the value is what is refused.
        let fine = encode(&publish(bury(Val::Null, &path, &others)), s);
        prop_assert!(Message::parse(s, &fine).is_ok());
        let m = publish(bury(bad, &path, &others));
        prop_assert!(Message::parse(s, &encode(&m, s)).is_err(), "{:?}: {:?} parsed", s, m);
    }

    /// A string field (URI, reason, realm) starting with U+0000 is refused by
    /// every serializer: JSON would read it as binary.
    #[test]
    fn nul_led_string_fields_fail_the_parse(s in ser(), rest in any::<String>(), request in id()) {
        let m = Message::Subscribe {
            request,
            options: Val::empty_dict(),
            topic: Cow::Owned(format!("\0{rest}")),
        };
        prop_assert!(Message::parse(s, &encode(&m, s)).is_err());
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
            prop_assert!(json_safe(&v));
            let mut again = Vec::new();
            Val::decode(p).unwrap().encode(to, &mut again).unwrap();
            prop_assert_eq!(&again, &src);
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
