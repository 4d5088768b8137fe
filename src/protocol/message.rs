//! WAMP messages as borrowed views over a frame.
//!
//! Dict/list fields are kept as `Val::Raw` spans so that forwarding a
//! PUBLISH as EVENT (or CALL as INVOCATION) copies payload bytes instead of
//! decoding and re-encoding them.

use std::borrow::Cow;

use super::codes::*;
use super::value::{encode_fields, split_array, Field, Item, Kind, Payload, Val};
use super::{cbor, json, msgpack, CodecError, Serializer};

#[derive(Clone, Debug)]
pub enum Message<'a> {
    Hello {
        realm: Cow<'a, str>,
        details: Val<'a>,
    },
    Welcome {
        session: u64,
        details: Val<'a>,
    },
    Abort {
        details: Val<'a>,
        reason: Cow<'a, str>,
    },
    Challenge {
        authmethod: Cow<'a, str>,
        extra: Val<'a>,
    },
    Authenticate {
        signature: Cow<'a, str>,
        extra: Val<'a>,
    },
    Goodbye {
        details: Val<'a>,
        reason: Cow<'a, str>,
    },
    Error {
        request_type: u64,
        request: u64,
        details: Val<'a>,
        error: Cow<'a, str>,
        args: Option<Val<'a>>,
        kwargs: Option<Val<'a>>,
    },
    Publish {
        request: u64,
        options: Val<'a>,
        topic: Cow<'a, str>,
        args: Option<Val<'a>>,
        kwargs: Option<Val<'a>>,
    },
    Published {
        request: u64,
        publication: u64,
    },
    Subscribe {
        request: u64,
        options: Val<'a>,
        topic: Cow<'a, str>,
    },
    Subscribed {
        request: u64,
        subscription: u64,
    },
    Unsubscribe {
        request: u64,
        subscription: u64,
    },
    Unsubscribed {
        request: u64,
        details: Option<Val<'a>>,
    },
    Event {
        subscription: u64,
        publication: u64,
        details: Val<'a>,
        args: Option<Val<'a>>,
        kwargs: Option<Val<'a>>,
    },
    Call {
        request: u64,
        options: Val<'a>,
        procedure: Cow<'a, str>,
        args: Option<Val<'a>>,
        kwargs: Option<Val<'a>>,
    },
    Cancel {
        request: u64,
        options: Val<'a>,
    },
    Result {
        request: u64,
        details: Val<'a>,
        args: Option<Val<'a>>,
        kwargs: Option<Val<'a>>,
    },
    Register {
        request: u64,
        options: Val<'a>,
        procedure: Cow<'a, str>,
    },
    Registered {
        request: u64,
        registration: u64,
    },
    Unregister {
        request: u64,
        registration: u64,
    },
    Unregistered {
        request: u64,
        details: Option<Val<'a>>,
    },
    Invocation {
        request: u64,
        registration: u64,
        details: Val<'a>,
        args: Option<Val<'a>>,
        kwargs: Option<Val<'a>>,
    },
    Interrupt {
        request: u64,
        options: Val<'a>,
    },
    Yield {
        request: u64,
        options: Val<'a>,
        args: Option<Val<'a>>,
        kwargs: Option<Val<'a>>,
    },
}

/// Fast check used before full parse: the message type code of a frame
/// (first array element) without parsing the rest.
pub fn peek_code(ser: Serializer, frame: &[u8]) -> Option<u64> {
    match ser {
        Serializer::Json => json::peek_code(frame),
        Serializer::MsgPack => msgpack::peek_code(frame),
        Serializer::Cbor => cbor::peek_code(frame),
    }
}

/// Typed access to the validated elements of one frame.
struct Fields<'a, 'i> {
    ser: Serializer,
    code: u64,
    items: &'i [Item<'a>],
}

impl<'a> Fields<'a, '_> {
    fn err(&self, i: usize, what: &str) -> CodecError {
        CodecError::Protocol(format!("{} element {i}: {what}", name(self.code)))
    }

    fn item(&self, i: usize) -> Result<Item<'a>, CodecError> {
        self.items
            .get(i)
            .copied()
            .ok_or_else(|| self.err(i, "missing"))
    }

    fn id(&self, i: usize) -> Result<u64, CodecError> {
        let it = self.item(i)?;
        if it.kind == Kind::UInt {
            // Hot path: read the integer straight from the validated span.
            let fast = match self.ser {
                Serializer::Json => json::uint_token(it.span),
                Serializer::MsgPack => msgpack::uint_at(it.span),
                Serializer::Cbor => cbor::uint_at(it.span),
            };
            if let Some(n) = fast {
                return Ok(n);
            }
        }
        match it.kind {
            Kind::UInt => Val::decode(Payload {
                ser: self.ser,
                bytes: it.span,
            })
            .ok()
            .and_then(|v| v.as_u64())
            .ok_or_else(|| self.err(i, "integer out of range")),
            Kind::NegInt => Err(self.err(i, "negative id")),
            _ => Err(self.err(i, "expected an integer")),
        }
    }

    fn string(&self, i: usize) -> Result<Cow<'a, str>, CodecError> {
        let it = self.item(i)?;
        if it.kind != Kind::Str {
            return Err(self.err(i, "expected a string"));
        }
        // Hot path: borrow the text straight from the validated span.
        match self.ser {
            Serializer::Json => return json::decode_string(it.span),
            Serializer::MsgPack => {
                if let Some(s) = msgpack::str_at(it.span) {
                    return Ok(Cow::Borrowed(s));
                }
            }
            Serializer::Cbor => {
                if let Some(s) = cbor::str_at(it.span) {
                    return Ok(Cow::Borrowed(s));
                }
            }
        }
        match Val::decode(Payload {
            ser: self.ser,
            bytes: it.span,
        })? {
            Val::Str(s) => Ok(s),
            _ => Err(self.err(i, "expected a string")),
        }
    }

    fn raw(&self, i: usize, kinds: &[Kind], what: &str) -> Result<Val<'a>, CodecError> {
        let it = self.item(i)?;
        if kinds.contains(&it.kind) {
            Ok(Val::Raw(Payload {
                ser: self.ser,
                bytes: it.span,
            }))
        } else {
            Err(self.err(i, what))
        }
    }

    fn dict(&self, i: usize) -> Result<Val<'a>, CodecError> {
        self.raw(i, &[Kind::Dict], "expected a dict")
    }

    fn opt_dict(&self, i: usize) -> Result<Option<Val<'a>>, CodecError> {
        if i < self.items.len() {
            self.dict(i).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Arguments are a list, or a binary value in payload pass-through mode.
    fn args(&self, i: usize) -> Result<Option<Val<'a>>, CodecError> {
        if i < self.items.len() {
            self.raw(i, &[Kind::List, Kind::Bin], "expected a list")
                .map(Some)
        } else {
            Ok(None)
        }
    }

    fn arity(&self, min: usize, max: usize) -> Result<(), CodecError> {
        let n = self.items.len();
        if n < min || n > max {
            return Err(CodecError::Protocol(format!(
                "{}: expected {min}..={max} elements, got {n}",
                name(self.code)
            )));
        }
        Ok(())
    }
}

impl<'a> Message<'a> {
    pub fn parse(ser: Serializer, frame: &'a [u8]) -> Result<Message<'a>, CodecError> {
        let items = split_array(ser, frame)?;
        let first = items
            .first()
            .ok_or_else(|| CodecError::Protocol("empty message".into()))?;
        let mut f = Fields {
            ser,
            code: 0,
            items: &items,
        };
        if first.kind != Kind::UInt {
            return Err(CodecError::Protocol(
                "message type is not an integer".into(),
            ));
        }
        f.code = f.id(0)?;
        let f = f;
        use Message as M;
        Ok(match f.code {
            HELLO => {
                f.arity(3, 3)?;
                M::Hello {
                    realm: f.string(1)?,
                    details: f.dict(2)?,
                }
            }
            WELCOME => {
                f.arity(3, 3)?;
                M::Welcome {
                    session: f.id(1)?,
                    details: f.dict(2)?,
                }
            }
            ABORT => {
                f.arity(3, 3)?;
                M::Abort {
                    details: f.dict(1)?,
                    reason: f.string(2)?,
                }
            }
            CHALLENGE => {
                f.arity(3, 3)?;
                M::Challenge {
                    authmethod: f.string(1)?,
                    extra: f.dict(2)?,
                }
            }
            AUTHENTICATE => {
                f.arity(3, 3)?;
                M::Authenticate {
                    signature: f.string(1)?,
                    extra: f.dict(2)?,
                }
            }
            GOODBYE => {
                f.arity(3, 3)?;
                M::Goodbye {
                    details: f.dict(1)?,
                    reason: f.string(2)?,
                }
            }
            ERROR => {
                f.arity(5, 7)?;
                M::Error {
                    request_type: f.id(1)?,
                    request: f.id(2)?,
                    details: f.dict(3)?,
                    error: f.string(4)?,
                    args: f.args(5)?,
                    kwargs: f.opt_dict(6)?,
                }
            }
            PUBLISH => {
                f.arity(4, 6)?;
                M::Publish {
                    request: f.id(1)?,
                    options: f.dict(2)?,
                    topic: f.string(3)?,
                    args: f.args(4)?,
                    kwargs: f.opt_dict(5)?,
                }
            }
            PUBLISHED => {
                f.arity(3, 3)?;
                M::Published {
                    request: f.id(1)?,
                    publication: f.id(2)?,
                }
            }
            SUBSCRIBE => {
                f.arity(4, 4)?;
                M::Subscribe {
                    request: f.id(1)?,
                    options: f.dict(2)?,
                    topic: f.string(3)?,
                }
            }
            SUBSCRIBED => {
                f.arity(3, 3)?;
                M::Subscribed {
                    request: f.id(1)?,
                    subscription: f.id(2)?,
                }
            }
            UNSUBSCRIBE => {
                f.arity(3, 3)?;
                M::Unsubscribe {
                    request: f.id(1)?,
                    subscription: f.id(2)?,
                }
            }
            UNSUBSCRIBED => {
                f.arity(2, 3)?;
                M::Unsubscribed {
                    request: f.id(1)?,
                    details: f.opt_dict(2)?,
                }
            }
            EVENT => {
                f.arity(4, 6)?;
                M::Event {
                    subscription: f.id(1)?,
                    publication: f.id(2)?,
                    details: f.dict(3)?,
                    args: f.args(4)?,
                    kwargs: f.opt_dict(5)?,
                }
            }
            CALL => {
                f.arity(4, 6)?;
                M::Call {
                    request: f.id(1)?,
                    options: f.dict(2)?,
                    procedure: f.string(3)?,
                    args: f.args(4)?,
                    kwargs: f.opt_dict(5)?,
                }
            }
            CANCEL => {
                f.arity(3, 3)?;
                M::Cancel {
                    request: f.id(1)?,
                    options: f.dict(2)?,
                }
            }
            RESULT => {
                f.arity(3, 5)?;
                M::Result {
                    request: f.id(1)?,
                    details: f.dict(2)?,
                    args: f.args(3)?,
                    kwargs: f.opt_dict(4)?,
                }
            }
            REGISTER => {
                f.arity(4, 4)?;
                M::Register {
                    request: f.id(1)?,
                    options: f.dict(2)?,
                    procedure: f.string(3)?,
                }
            }
            REGISTERED => {
                f.arity(3, 3)?;
                M::Registered {
                    request: f.id(1)?,
                    registration: f.id(2)?,
                }
            }
            UNREGISTER => {
                f.arity(3, 3)?;
                M::Unregister {
                    request: f.id(1)?,
                    registration: f.id(2)?,
                }
            }
            UNREGISTERED => {
                f.arity(2, 3)?;
                M::Unregistered {
                    request: f.id(1)?,
                    details: f.opt_dict(2)?,
                }
            }
            INVOCATION => {
                f.arity(4, 6)?;
                M::Invocation {
                    request: f.id(1)?,
                    registration: f.id(2)?,
                    details: f.dict(3)?,
                    args: f.args(4)?,
                    kwargs: f.opt_dict(5)?,
                }
            }
            INTERRUPT => {
                f.arity(3, 3)?;
                M::Interrupt {
                    request: f.id(1)?,
                    options: f.dict(2)?,
                }
            }
            YIELD => {
                f.arity(3, 5)?;
                M::Yield {
                    request: f.id(1)?,
                    options: f.dict(2)?,
                    args: f.args(3)?,
                    kwargs: f.opt_dict(4)?,
                }
            }
            other => {
                return Err(CodecError::Protocol(format!(
                    "unknown message type {other}"
                )))
            }
        })
    }

    pub fn code(&self) -> u64 {
        match self {
            Message::Hello { .. } => HELLO,
            Message::Welcome { .. } => WELCOME,
            Message::Abort { .. } => ABORT,
            Message::Challenge { .. } => CHALLENGE,
            Message::Authenticate { .. } => AUTHENTICATE,
            Message::Goodbye { .. } => GOODBYE,
            Message::Error { .. } => ERROR,
            Message::Publish { .. } => PUBLISH,
            Message::Published { .. } => PUBLISHED,
            Message::Subscribe { .. } => SUBSCRIBE,
            Message::Subscribed { .. } => SUBSCRIBED,
            Message::Unsubscribe { .. } => UNSUBSCRIBE,
            Message::Unsubscribed { .. } => UNSUBSCRIBED,
            Message::Event { .. } => EVENT,
            Message::Call { .. } => CALL,
            Message::Cancel { .. } => CANCEL,
            Message::Result { .. } => RESULT,
            Message::Register { .. } => REGISTER,
            Message::Registered { .. } => REGISTERED,
            Message::Unregister { .. } => UNREGISTER,
            Message::Unregistered { .. } => UNREGISTERED,
            Message::Invocation { .. } => INVOCATION,
            Message::Interrupt { .. } => INTERRUPT,
            Message::Yield { .. } => YIELD,
        }
    }

    /// Appends the encoding to `out`. Absent args with present kwargs encode
    /// an empty list; both absent: omitted.
    pub fn encode(&self, ser: Serializer, out: &mut Vec<u8>) -> Result<(), CodecError> {
        use Field::{S, U, V};
        let empty_list = Val::List(Vec::new());
        let mut fl = FieldList::new();
        fl.push(U(self.code()));
        match self {
            Message::Hello { realm, details } => fl.extend([S(realm), V(details)]),
            Message::Welcome { session, details } => fl.extend([U(*session), V(details)]),
            Message::Abort { details, reason } | Message::Goodbye { details, reason } => {
                fl.extend([V(details), S(reason)])
            }
            Message::Challenge {
                authmethod: s,
                extra,
            }
            | Message::Authenticate {
                signature: s,
                extra,
            } => fl.extend([S(s), V(extra)]),
            Message::Error {
                request_type,
                request,
                details,
                error,
                args,
                kwargs,
            } => {
                fl.extend([U(*request_type), U(*request), V(details), S(error)]);
                push_payload(&mut fl, args.as_ref(), kwargs.as_ref(), &empty_list);
            }
            Message::Publish {
                request,
                options,
                topic: uri,
                args,
                kwargs,
            }
            | Message::Call {
                request,
                options,
                procedure: uri,
                args,
                kwargs,
            } => {
                fl.extend([U(*request), V(options), S(uri)]);
                push_payload(&mut fl, args.as_ref(), kwargs.as_ref(), &empty_list);
            }
            Message::Published {
                request,
                publication: id,
            }
            | Message::Subscribed {
                request,
                subscription: id,
            }
            | Message::Unsubscribe {
                request,
                subscription: id,
            }
            | Message::Registered {
                request,
                registration: id,
            }
            | Message::Unregister {
                request,
                registration: id,
            } => fl.extend([U(*request), U(*id)]),
            Message::Subscribe {
                request,
                options,
                topic: uri,
            }
            | Message::Register {
                request,
                options,
                procedure: uri,
            } => fl.extend([U(*request), V(options), S(uri)]),
            Message::Unsubscribed { request, details }
            | Message::Unregistered { request, details } => {
                fl.push(U(*request));
                if let Some(d) = details {
                    fl.push(V(d));
                }
            }
            Message::Event {
                subscription: a,
                publication: b,
                details,
                args,
                kwargs,
            }
            | Message::Invocation {
                request: a,
                registration: b,
                details,
                args,
                kwargs,
            } => {
                fl.extend([U(*a), U(*b), V(details)]);
                push_payload(&mut fl, args.as_ref(), kwargs.as_ref(), &empty_list);
            }
            Message::Cancel { request, options } | Message::Interrupt { request, options } => {
                fl.extend([U(*request), V(options)])
            }
            Message::Result {
                request,
                details: d,
                args,
                kwargs,
            }
            | Message::Yield {
                request,
                options: d,
                args,
                kwargs,
            } => {
                fl.extend([U(*request), V(d)]);
                push_payload(&mut fl, args.as_ref(), kwargs.as_ref(), &empty_list);
            }
        }
        encode_fields(ser, &fl, out)
    }
}

type FieldList<'x, 'y> = smallvec::SmallVec<[Field<'x, 'y>; 8]>;

fn push_payload<'x, 'y>(
    fl: &mut FieldList<'x, 'y>,
    args: Option<&'x Val<'y>>,
    kwargs: Option<&'x Val<'y>>,
    empty_list: &'x Val<'y>,
) {
    match (args, kwargs) {
        (a, Some(k)) => {
            fl.push(Field::V(a.unwrap_or(empty_list)));
            fl.push(Field::V(k));
        }
        (Some(a), None) => fl.push(Field::V(a)),
        (None, None) => {}
    }
}

/// Expected type of a well-known option/detail attribute.
#[derive(Clone, Copy)]
enum Want {
    Bool,
    Id,
    Str,
    Ids,
    Strs,
    ForwardFor,
    OneOf(&'static [&'static str]),
    EncAlgo,
}

const PUBLISH_OPTS: &[(&str, Want)] = &[
    ("acknowledge", Want::Bool),
    ("exclude_me", Want::Bool),
    ("exclude", Want::Ids),
    ("exclude_authid", Want::Strs),
    ("exclude_authrole", Want::Strs),
    ("eligible", Want::Ids),
    ("eligible_authid", Want::Strs),
    ("eligible_authrole", Want::Strs),
    ("retain", Want::Bool),
    ("disclose_me", Want::Bool),
    ("transaction_hash", Want::Str),
    ("forward_for", Want::ForwardFor),
    ("enc_algo", Want::EncAlgo),
    ("enc_serializer", Want::Str),
    ("enc_key", Want::Str),
];
const EVENT_DETAILS: &[(&str, Want)] = &[
    ("publisher", Want::Id),
    ("publisher_authid", Want::Str),
    ("publisher_authrole", Want::Str),
    ("topic", Want::Str),
    ("retained", Want::Bool),
    ("transaction_hash", Want::Str),
    ("x_acknowledged_delivery", Want::Bool),
    ("forward_for", Want::ForwardFor),
    ("enc_algo", Want::EncAlgo),
    ("enc_serializer", Want::Str),
    ("enc_key", Want::Str),
];
const MATCH: Want = Want::OneOf(&["exact", "prefix", "wildcard"]);
const SUBSCRIBE_OPTS: &[(&str, Want)] = &[
    ("match", MATCH),
    ("get_retained", Want::Bool),
    ("forward_for", Want::ForwardFor),
];
const CALL_OPTS: &[(&str, Want)] = &[
    ("timeout", Want::Id),
    ("receive_progress", Want::Bool),
    ("disclose_me", Want::Bool),
    ("forward_for", Want::ForwardFor),
    ("enc_algo", Want::EncAlgo),
    ("enc_serializer", Want::Str),
];
const REGISTER_OPTS: &[(&str, Want)] = &[
    ("match", MATCH),
    (
        "invoke",
        Want::OneOf(&["single", "roundrobin", "random", "first", "last"]),
    ),
    ("disclose_caller", Want::Bool),
    ("force_reregister", Want::Bool),
    ("forward_for", Want::ForwardFor),
];

fn all_items(v: &Val<'_>, f: impl Fn(&Val<'_>) -> bool) -> bool {
    match v.clone().into_owned() {
        Val::List(l) => l.iter().all(f),
        _ => false,
    }
}

fn type_ok(v: &Val<'_>, want: Want) -> bool {
    match want {
        Want::Bool => v.as_bool().is_some(),
        Want::Id => v.as_u64().is_some(),
        Want::Str => v.as_str().is_some(),
        Want::Ids => all_items(v, |x| x.as_u64().is_some()),
        Want::Strs => all_items(v, |x| x.as_str().is_some()),
        Want::ForwardFor => all_items(v, |x| {
            x.get("session").and_then(|s| s.as_u64()).is_some()
                && x.get("authid").and_then(|s| s.as_str()).is_some()
                && x.get("authrole").and_then(|s| s.as_str()).is_some()
        }),
        Want::OneOf(set) => v.as_str().is_some_and(|s| set.contains(&s.as_ref())),
        Want::EncAlgo => v.as_str().is_some_and(|s| {
            matches!(s.as_ref(), "cryptobox" | "mqtt" | "xbr") || s.starts_with("x_")
        }),
    }
}

fn check_dict(code: u64, dict: &Val<'_>, table: &[(&str, Want)]) -> Result<(), CodecError> {
    if dict.dict_len() == Some(0) {
        return Ok(());
    }
    for (key, want) in table {
        if let Some(v) = dict.get(key) {
            if !type_ok(&v, *want) {
                return Err(CodecError::Protocol(format!(
                    "{}: invalid type or value for '{key}'",
                    name(code)
                )));
            }
        }
    }
    Ok(())
}

impl Message<'_> {
    /// Type-checks the well-known attributes of Options/Details (e.g. PUBLISH
    /// `acknowledge` must be a bool). Separate from `parse` so the forwarding
    /// fast path only pays for it where the router needs it; unknown keys are
    /// ignored because peers may add custom attributes.
    pub fn check_options(&self) -> Result<(), CodecError> {
        let code = self.code();
        match self {
            Message::Publish { options, .. } => check_dict(code, options, PUBLISH_OPTS),
            Message::Event { details, .. } => check_dict(code, details, EVENT_DETAILS),
            Message::Subscribe { options, .. } => check_dict(code, options, SUBSCRIBE_OPTS),
            Message::Call { options, .. } => check_dict(code, options, CALL_OPTS),
            Message::Register { options, .. } => check_dict(code, options, REGISTER_OPTS),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: Vec<Val<'static>>) -> Val<'static> {
        Val::List(items)
    }

    #[test]
    fn publish_round_trip_all_serializers() {
        let frame =
            br#"[16, 1, {"acknowledge": true, "exclude": [7]}, "com.a.b", [1, "x"], {"k": null}]"#;
        let m = Message::parse(Serializer::Json, frame).unwrap();
        let Message::Publish {
            request,
            ref options,
            ref topic,
            ref args,
            ref kwargs,
        } = m
        else {
            panic!("{m:?}")
        };
        assert_eq!(request, 1);
        assert_eq!(topic, "com.a.b");
        assert!(matches!(topic, Cow::Borrowed(_)));
        assert_eq!(options.get("acknowledge").unwrap().as_bool(), Some(true));
        assert_eq!(options.get("exclude").unwrap().list_len(), Some(1));
        assert!(matches!(args, Some(Val::Raw(p)) if p.bytes == br#"[1, "x"]"#));
        assert!(kwargs.as_ref().unwrap().get("k").unwrap().is_null());
        for ser in Serializer::ALL {
            let mut out = Vec::new();
            m.encode(ser, &mut out).unwrap();
            assert_eq!(peek_code(ser, &out), Some(PUBLISH));
            let m2 = Message::parse(ser, &out).unwrap();
            let Message::Publish {
                request,
                options,
                topic,
                args,
                kwargs,
            } = m2
            else {
                panic!()
            };
            assert_eq!((request, topic.as_ref()), (1, "com.a.b"));
            assert_eq!(options.get("exclude").unwrap().get("x").map(|_| ()), None);
            assert!(args
                .unwrap()
                .semantic_eq(&list(vec![Val::UInt(1), Val::Str("x".into())])));
            assert!(kwargs
                .unwrap()
                .semantic_eq(&Val::Dict(vec![("k".into(), Val::Null)])));
        }
    }

    #[test]
    fn kwargs_without_args_encodes_empty_list() {
        let m = Message::Event {
            subscription: 1,
            publication: 2,
            details: Val::empty_dict(),
            args: None,
            kwargs: Some(Val::Dict(vec![("a".into(), Val::UInt(1))])),
        };
        let mut out = Vec::new();
        m.encode(Serializer::Json, &mut out).unwrap();
        assert_eq!(out, br#"[36,1,2,{},[],{"a":1}]"#);
        let m = Message::Result {
            request: 5,
            details: Val::empty_dict(),
            args: None,
            kwargs: None,
        };
        out.clear();
        m.encode(Serializer::Json, &mut out).unwrap();
        assert_eq!(out, br#"[50,5,{}]"#);
    }

    #[test]
    fn rejects_bad_messages() {
        let cases: &[&[u8]] = &[
            br#"[16, -1, {}, "t"]"#,           // negative id
            br#"[16, 1, {}]"#,                 // too short
            br#"[16, 1, {}, "t", [], {}, 1]"#, // too long
            br#"[16, 1, [], "t"]"#,            // options not a dict
            br#"[16, 1, {}, 5]"#,              // topic not a string
            br#"[16, 1, {}, "t", {}]"#,        // args not a list
            br#"[16, 1, {}, "t", [], []]"#,    // kwargs not a dict
            br#"[16, 1.5, {}, "t"]"#,          // float id
            br#"[999, 1]"#,                    // unknown code
            br#"["x", 1]"#,                    // code not an int
            br#"{}"#,                          // not an array
            br#"[]"#,                          // empty
            br#"[1, "realm", {}] x"#,          // trailing
            br#"[1, "realm", {}"#,             // truncated
        ];
        for c in cases {
            assert!(
                Message::parse(Serializer::Json, c).is_err(),
                "{}",
                String::from_utf8_lossy(c)
            );
        }
        assert!(matches!(
            Message::parse(Serializer::Json, br#"[16, 1, {}, "t", [], {}, 1]"#),
            Err(CodecError::Protocol(_))
        ));
        assert!(matches!(
            Message::parse(Serializer::Json, b"[1, \"r\", {}] x"),
            Err(CodecError::Malformed(_))
        ));
        // msgpack negative id: [16, -1, {}, "t"]
        assert!(
            Message::parse(Serializer::MsgPack, &[0x94, 0x10, 0xff, 0x80, 0xa1, b't']).is_err()
        );
        // cbor negative id
        assert!(Message::parse(Serializer::Cbor, &[0x84, 0x10, 0x20, 0xa0, 0x61, b't']).is_err());
        assert!(Message::parse(Serializer::Cbor, &[0x84, 0x10, 0x01, 0xa0, 0x61, b't']).is_ok());
    }

    #[test]
    fn payload_passthru_binary_args() {
        let frame = br#"[36, 1, 2, {"enc_algo": "cryptobox"}, "\u0000AQID"]"#;
        let m = Message::parse(Serializer::Json, frame).unwrap();
        let Message::Event { args: Some(a), .. } = &m else {
            panic!()
        };
        assert!(
            matches!(Val::decode(match a { Val::Raw(p) => *p, _ => panic!() }).unwrap(), Val::Bytes(b) if b.as_ref() == [1, 2, 3])
        );
        for ser in Serializer::ALL {
            let mut out = Vec::new();
            m.encode(ser, &mut out).unwrap();
            let Message::Event { args: Some(a2), .. } = Message::parse(ser, &out).unwrap() else {
                panic!()
            };
            assert!(a2.semantic_eq(&Val::Bytes(Cow::Borrowed(&[1, 2, 3]))));
        }
    }

    #[test]
    fn peek() {
        assert_eq!(peek_code(Serializer::Json, b" [ 48 ,"), Some(48));
        assert_eq!(peek_code(Serializer::Json, b"{}"), None);
        assert_eq!(peek_code(Serializer::MsgPack, &[0x91, 0x30]), Some(48));
        assert_eq!(peek_code(Serializer::Cbor, &[0x81, 0x18, 0x30]), Some(48));
    }

    /// Truncations and single-byte mutations must produce errors, never panics.
    #[test]
    fn mutations_never_panic() {
        let m = Message::Call {
            request: 300,
            options: Val::Dict(vec![
                ("timeout".into(), Val::UInt(1000)),
                ("x".into(), Val::Float(0.5)),
            ]),
            procedure: "com.example.p\u{e9}".into(),
            args: Some(Val::List(vec![
                Val::Bytes(Cow::Borrowed(&[0, 1, 2])),
                Val::Int(-70000),
                Val::Null,
            ])),
            kwargs: Some(Val::Dict(vec![(
                "k\"".into(),
                Val::List(vec![Val::Bool(false)]),
            )])),
        };
        for ser in Serializer::ALL {
            let mut frame = Vec::new();
            m.encode(ser, &mut frame).unwrap();
            let exercise = |f: &[u8]| {
                let _ = peek_code(ser, f);
                if let Ok(Message::Call {
                    options,
                    args,
                    kwargs,
                    ..
                }) = Message::parse(ser, f)
                {
                    let _ = options.get("timeout").and_then(|t| t.as_u64());
                    let _ = (options.dict_len(), options.is_dict());
                    for v in [Some(options), args, kwargs].into_iter().flatten() {
                        let _ = v.clone().into_owned();
                        for to in Serializer::ALL {
                            let mut out = Vec::new();
                            let _ = v.encode(to, &mut out);
                        }
                    }
                }
            };
            for n in 0..frame.len() {
                assert!(Message::parse(ser, &frame[..n]).is_err());
                exercise(&frame[..n]);
            }
            for pos in 0..frame.len() {
                for b in 0..=255u8 {
                    let mut f = frame.clone();
                    f[pos] = b;
                    exercise(&f);
                }
            }
        }
    }
}
