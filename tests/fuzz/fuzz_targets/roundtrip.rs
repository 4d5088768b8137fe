#![allow(dead_code)]
//! Shared checks for the `message_*` targets: every frame that parses must
//! survive re-encoding in each serializer and parse back to the same message.

use wampd::protocol::{transcode, Message, Payload, Serializer, Val};

/// One element of a message, in wire order.
enum F<'m, 'a> {
    Id(u64),
    Str(&'m str),
    V(&'m Val<'a>),
    Absent,
}

fn fields<'m, 'a>(m: &'m Message<'a>) -> Vec<F<'m, 'a>> {
    use Message as M;
    use F::*;
    let opt = |v: &'m Option<Val<'a>>| v.as_ref().map_or(Absent, V);
    match m {
        M::Hello { realm, details } => vec![Str(realm), V(details)],
        M::Welcome { session, details } => vec![Id(*session), V(details)],
        M::Abort { details, reason } | M::Goodbye { details, reason } => {
            vec![V(details), Str(reason)]
        }
        M::Challenge { authmethod, extra } => vec![Str(authmethod), V(extra)],
        M::Authenticate { signature, extra } => vec![Str(signature), V(extra)],
        M::Error {
            request_type,
            request,
            details,
            error,
            args,
            kwargs,
        } => vec![
            Id(*request_type),
            Id(*request),
            V(details),
            Str(error),
            opt(args),
            opt(kwargs),
        ],
        M::Publish {
            request,
            options,
            topic: uri,
            args,
            kwargs,
        }
        | M::Call {
            request,
            options,
            procedure: uri,
            args,
            kwargs,
        } => vec![Id(*request), V(options), Str(uri), opt(args), opt(kwargs)],
        M::Published {
            request,
            publication: b,
        }
        | M::Subscribed {
            request,
            subscription: b,
        }
        | M::Unsubscribe {
            request,
            subscription: b,
        }
        | M::Registered {
            request,
            registration: b,
        }
        | M::Unregister {
            request,
            registration: b,
        } => vec![Id(*request), Id(*b)],
        M::Subscribe {
            request,
            options,
            topic: uri,
        }
        | M::Register {
            request,
            options,
            procedure: uri,
        } => vec![Id(*request), V(options), Str(uri)],
        M::Unsubscribed { request, details } | M::Unregistered { request, details } => {
            vec![Id(*request), opt(details)]
        }
        M::Event {
            subscription: a,
            publication: b,
            details,
            args,
            kwargs,
        }
        | M::Invocation {
            request: a,
            registration: b,
            details,
            args,
            kwargs,
        } => vec![Id(*a), Id(*b), V(details), opt(args), opt(kwargs)],
        M::Cancel { request, options } | M::Interrupt { request, options } => {
            vec![Id(*request), V(options)]
        }
        M::Result {
            request,
            details: d,
            args,
            kwargs,
        }
        | M::Yield {
            request,
            options: d,
            args,
            kwargs,
        } => vec![Id(*request), V(d), opt(args), opt(kwargs)],
    }
}

fn decoded<'a>(v: &Val<'a>) -> Option<Val<'a>> {
    match v {
        Val::Raw(p) => Val::decode(*p).ok(),
        other => Some(other.clone()),
    }
}

/// `semantic_eq`, except that NaN equals NaN (a float that is NaN in one
/// serializer stays NaN in the others, but never compares equal).
pub fn equiv(a: &Val, b: &Val) -> bool {
    if a.semantic_eq(b) {
        return true;
    }
    match (a, b) {
        (Val::Float(x), Val::Float(y)) => x.is_nan() && y.is_nan(),
        (Val::List(x), Val::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equiv(p, q))
        }
        (Val::Dict(x), Val::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| k == k2 && equiv(v, v2)))
        }
        _ => false,
    }
}

/// Whether a decoded value survives a trip through JSON: strings that start
/// with U+0000 read back as binary there (keys are always text), and
/// non-finite floats become null. Parsing refuses values for which this fails.
pub fn json_safe(v: &Val) -> bool {
    match v {
        Val::Str(s) => !s.starts_with('\0'),
        Val::Float(f) => f.is_finite(),
        Val::List(l) => l.iter().all(json_safe),
        Val::Dict(d) => d.iter().all(|(_, v)| json_safe(v)),
        _ => true,
    }
}

pub fn same_message(a: &Message, b: &Message, what: &str) {
    assert_eq!(a.code(), b.code(), "{what}: message code changed");
    let (fa, fb) = (fields(a), fields(b));
    assert_eq!(fa.len(), fb.len());
    for (i, (x, y)) in fa.iter().zip(&fb).enumerate() {
        match (x, y) {
            (F::Id(p), F::Id(q)) => assert_eq!(p, q, "{what}: id field {i}"),
            (F::Str(p), F::Str(q)) => assert_eq!(p, q, "{what}: string field {i}"),
            (F::Absent, F::Absent) => {}
            (F::V(p), F::V(q)) => {
                let (dp, dq) = (decoded(p), decoded(q));
                match (dp, dq) {
                    (Some(dp), Some(dq)) => assert!(
                        equiv(&dp, &dq),
                        "{what}: value field {i} differs: {dp:?} vs {dq:?}"
                    ),
                    (None, None) => {}
                    (dp, dq) => {
                        panic!("{what}: field {i} decodes on one side only: {dp:?} / {dq:?}")
                    }
                }
            }
            (F::V(p), F::Absent) | (F::Absent, F::V(p)) => {
                // Absent args next to present kwargs are written as an empty list.
                assert_eq!(
                    decoded(p).and_then(|v| v.list_len()),
                    Some(0),
                    "{what}: field {i}"
                );
            }
            _ => panic!("{what}: field {i} changed shape"),
        }
    }
}

/// Every raw value transcodes to each serializer, and the transcoding decodes
/// to the same value.
fn check_transcode(p: Payload<'_>, v: &Val<'_>) {
    for to in Serializer::ALL {
        let mut out = Vec::new();
        transcode(p, to, &mut out).unwrap_or_else(|e| {
            panic!(
                "{:?}->{to:?}: a parsed value fails to transcode: {e}",
                p.ser
            )
        });
        let back = Payload::new(to, &out)
            .unwrap_or_else(|e| panic!("{:?}->{to:?}: transcoding does not validate: {e}", p.ser));
        let back = Val::decode(back).expect("validated transcoding decodes");
        assert!(
            equiv(v, &back),
            "{:?}->{to:?}: transcoding changed the value: {v:?} vs {back:?}",
            p.ser
        );
    }
}

/// Whatever parses carries only what every serializer can carry: each value
/// decodes, JSON can hold it, it transcodes to the same value; and the message
/// re-encodes in every serializer to bytes that parse to the same message.
pub fn check(ser: Serializer, data: &[u8]) {
    let Ok(m) = Message::parse(ser, data) else {
        return;
    };
    let _ = m.check_options();

    for f in fields(&m) {
        match f {
            F::Str(s) => assert!(
                !s.starts_with('\0'),
                "{ser:?}: a string field starting with U+0000 parsed (binary in JSON)"
            ),
            F::V(v) => {
                let d = decoded(v)
                    .unwrap_or_else(|| panic!("{ser:?}: a parsed value does not decode: {v:?}"));
                assert!(
                    json_safe(&d),
                    "{ser:?}: parsed a value JSON cannot carry: {d:?}"
                );
                if let Val::Raw(p) = v {
                    check_transcode(*p, &d);
                }
            }
            _ => {}
        }
    }

    for to in Serializer::ALL {
        let mut out = Vec::new();
        m.encode(to, &mut out)
            .unwrap_or_else(|e| panic!("{ser:?}->{to:?}: encode failed: {e}"));
        let m2 = Message::parse(to, &out).unwrap_or_else(|e| {
            panic!(
                "{ser:?}->{to:?}: re-encoding does not parse: {e}\n{:?}",
                String::from_utf8_lossy(&out)
            )
        });
        same_message(&m, &m2, &format!("{ser:?}->{to:?}"));

        // Our encoding is canonical: encoding the parsed re-encoding gives the same bytes.
        let mut again = Vec::new();
        m2.encode(to, &mut again)
            .expect("re-encode of a re-encoding");
        assert!(again == out, "{ser:?}->{to:?}: second encoding differs");
    }
}
