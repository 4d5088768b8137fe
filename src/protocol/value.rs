//! Serializer-neutral values.
//!
//! `Val` is what message fields hold. Containers taken from an incoming frame
//! stay `Val::Raw` (a validated byte span) so the router can forward them by
//! copying bytes; they are only decoded when someone actually looks inside or
//! the receiver speaks another serializer.

use std::borrow::Cow;
use std::fmt;

use smallvec::SmallVec;

use super::{cbor, json, msgpack, Serializer};

/// Nesting limit for hostile input: recursion depth stays far below any stack limit.
pub const MAX_DEPTH: usize = 128;

/// Exactly one complete encoded value (validated) in serializer `ser`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    pub ser: Serializer,
    pub bytes: &'a [u8],
}

impl<'a> Payload<'a> {
    /// Validates that `bytes` is exactly one well-formed value before wrapping it,
    /// so spans built from untrusted input can be forwarded safely.
    pub fn new(ser: Serializer, bytes: &'a [u8]) -> Result<Self, CodecError> {
        validate(ser, bytes)?;
        Ok(Payload { ser, bytes })
    }
}

#[derive(Clone, Debug)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    List(Vec<Val<'a>>),
    Dict(Vec<(Cow<'a, str>, Val<'a>)>),
    /// Not decoded: a span of an incoming frame.
    Raw(Payload<'a>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// Bytes are not a valid json/msgpack/cbor value (or trailing bytes, bad utf-8, too deep nesting).
    Malformed(&'static str),
    /// Valid encoding but not a valid WAMP message.
    Protocol(String),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Malformed(m) => write!(f, "malformed message: {m}"),
            CodecError::Protocol(m) => write!(f, "protocol violation: {m}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// Coarse type of one encoded value, known after structural validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    UInt,
    NegInt,
    Float,
    Str,
    Bin,
    List,
    Dict,
}

/// One validated element of a top-level array.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item<'a> {
    pub kind: Kind,
    pub span: &'a [u8],
    /// Holds a value only its own serializer can carry (a MessagePack ext, a CBOR tag or simple
    /// value): allowed in Arguments/ArgumentsKw only.
    pub foreign: bool,
}

/// Element list of a message; inline capacity covers every WAMP message.
pub(crate) type Items<'a> = SmallVec<[Item<'a>; 8]>;

// ---- dispatch to the serializer modules -------------------------------------

pub(crate) fn split_array(ser: Serializer, frame: &[u8]) -> Result<Items<'_>, CodecError> {
    match ser {
        Serializer::Json => json::split_array(frame),
        Serializer::MsgPack => msgpack::split_array(frame),
        Serializer::Cbor => cbor::split_array(frame),
    }
}

/// Checks that `bytes` is exactly one well-formed value.
pub fn validate(ser: Serializer, bytes: &[u8]) -> Result<(), CodecError> {
    match ser {
        Serializer::Json => json::validate(bytes),
        Serializer::MsgPack => msgpack::validate(bytes),
        Serializer::Cbor => cbor::validate(bytes),
    }
}

fn decode_exact(ser: Serializer, bytes: &[u8]) -> Result<Val<'_>, CodecError> {
    match ser {
        Serializer::Json => json::decode(bytes),
        Serializer::MsgPack => msgpack::decode(bytes),
        Serializer::Cbor => cbor::decode(bytes),
    }
}

pub(crate) fn kind_of(ser: Serializer, bytes: &[u8]) -> Option<Kind> {
    match ser {
        Serializer::Json => json::kind(bytes),
        Serializer::MsgPack => msgpack::kind(bytes),
        Serializer::Cbor => cbor::kind(bytes),
    }
}

fn raw_get<'a>(p: Payload<'a>, key: &str) -> Option<&'a [u8]> {
    match p.ser {
        Serializer::Json => json::map_get(p.bytes, key),
        Serializer::MsgPack => msgpack::map_get(p.bytes, key),
        Serializer::Cbor => cbor::map_get(p.bytes, key),
    }
}

fn raw_count(p: Payload<'_>) -> Option<usize> {
    match p.ser {
        Serializer::Json => json::count(p.bytes),
        Serializer::MsgPack => msgpack::count(p.bytes),
        Serializer::Cbor => cbor::count(p.bytes),
    }
}

fn encode_in(v: &Val<'_>, ser: Serializer, out: &mut Vec<u8>) -> Result<(), CodecError> {
    match ser {
        Serializer::Json => json::encode_val(v, out),
        Serializer::MsgPack => msgpack::encode_val(v, out),
        Serializer::Cbor => cbor::encode_val(v, out),
    }
}

/// Re-encodes one value from `p.ser` into `to` (JSON "\u0000"+base64 strings <->
/// msgpack bin / cbor byte strings). Same serializer: plain copy.
pub fn transcode(p: Payload<'_>, to: Serializer, out: &mut Vec<u8>) -> Result<(), CodecError> {
    if p.ser == to {
        out.extend_from_slice(p.bytes);
        return Ok(());
    }
    if p.ser == Serializer::Json {
        let start = out.len();
        if json::with_decoded_simd(p.bytes, |v| encode_in(v, to, out)).is_ok() {
            return Ok(());
        }
        // simd-json refuses some documents the validator accepts (e.g. numbers
        // beyond the f64 range, which decode to infinity): use the exact decoder.
        out.truncate(start);
    }
    let v = decode_exact(p.ser, p.bytes)?;
    encode_in(&v, to, out)
}

/// One element of an outgoing message array.
pub(crate) enum Field<'x, 'y> {
    U(u64),
    S(&'x str),
    V(&'x Val<'y>),
}

pub(crate) fn encode_fields(
    ser: Serializer,
    fields: &[Field<'_, '_>],
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    match ser {
        Serializer::Json => {
            out.push(b'[');
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match f {
                    Field::U(n) => json::write_u64(*n, out),
                    Field::S(s) => json::write_str(s, out),
                    Field::V(v) => json::encode_val(v, out)?,
                }
            }
            out.push(b']');
        }
        Serializer::MsgPack => {
            msgpack::write_array_len(fields.len(), out)?;
            for f in fields {
                match f {
                    Field::U(n) => msgpack::write_u64(*n, out),
                    Field::S(s) => msgpack::write_str(s, out)?,
                    Field::V(v) => msgpack::encode_val(v, out)?,
                }
            }
        }
        Serializer::Cbor => {
            cbor::write_head(4, fields.len() as u64, out);
            for f in fields {
                match f {
                    Field::U(n) => cbor::write_head(0, *n, out),
                    Field::S(s) => cbor::write_str(s, out),
                    Field::V(v) => cbor::encode_val(v, out)?,
                }
            }
        }
    }
    Ok(())
}

// ---- Val --------------------------------------------------------------------

impl<'a> Val<'a> {
    pub fn empty_dict() -> Val<'a> {
        Val::Dict(Vec::new())
    }

    /// Full decode to a tree (no Raw inside); JSON "\u0000"+base64 strings become Bytes.
    pub fn decode(p: Payload<'a>) -> Result<Val<'a>, CodecError> {
        decode_exact(p.ser, p.bytes)
    }

    /// Scalar view of a Raw value; containers stay Raw to avoid decoding them.
    fn scalar(&self) -> Option<Val<'a>> {
        match self {
            Val::Raw(p) => match kind_of(p.ser, p.bytes)? {
                Kind::List | Kind::Dict => None,
                _ => decode_exact(p.ser, p.bytes).ok(),
            },
            _ => None,
        }
    }

    /// Looks up `key` in a dict. On Raw maps only the keys are decoded; the
    /// result is the Raw sub-span of the value.
    pub fn get(&self, key: &str) -> Option<Val<'a>> {
        match self {
            Val::Dict(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone()),
            Val::Raw(p) => raw_get(*p, key).map(|bytes| Val::Raw(Payload { ser: p.ser, bytes })),
            _ => None,
        }
    }

    /// Like [`Val::get`], but a decoded value is lent, not cloned: a list option (an `exclude`
    /// of session ids) would otherwise be copied, with an allocation, on every lookup.
    pub fn lookup(&self, key: &str) -> Option<Cow<'_, Val<'a>>> {
        match self {
            Val::Dict(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| Cow::Borrowed(v)),
            Val::Raw(p) => {
                raw_get(*p, key).map(|bytes| Cow::Owned(Val::Raw(Payload { ser: p.ser, bytes })))
            }
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(*b),
            Val::Raw(_) => self.scalar()?.as_bool(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Val::UInt(n) => Some(*n),
            Val::Int(n) if *n >= 0 => Some(*n as u64),
            Val::Raw(_) => self.scalar()?.as_u64(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Int(n) => Some(*n),
            Val::UInt(n) => i64::try_from(*n).ok(),
            Val::Raw(_) => self.scalar()?.as_i64(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        match self {
            Val::Str(s) => Some(s.clone()),
            Val::Raw(_) => self.scalar()?.as_str(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        match self {
            Val::Null => true,
            Val::Raw(p) => kind_of(p.ser, p.bytes) == Some(Kind::Null),
            _ => false,
        }
    }

    pub fn is_dict(&self) -> bool {
        match self {
            Val::Dict(_) => true,
            Val::Raw(p) => kind_of(p.ser, p.bytes) == Some(Kind::Dict),
            _ => false,
        }
    }

    pub fn is_list(&self) -> bool {
        match self {
            Val::List(_) => true,
            Val::Raw(p) => kind_of(p.ser, p.bytes) == Some(Kind::List),
            _ => false,
        }
    }

    pub fn list_len(&self) -> Option<usize> {
        match self {
            Val::List(l) => Some(l.len()),
            Val::Raw(p) if self.is_list() => raw_count(*p),
            _ => None,
        }
    }

    /// True for an empty dictionary. The common encodings of `{}` are recognised by their bytes,
    /// so the Options of a plain CALL or YIELD cost a comparison, not a scan.
    #[inline]
    pub fn is_empty_dict(&self) -> bool {
        if let Val::Raw(p) = self {
            // Byte by byte: a slice comparison would be a call to memcmp, and this runs several
            // times for every CALL, YIELD and PUBLISH, nearly always on empty options.
            let empty = matches!(
                (p.ser, p.bytes),
                (Serializer::Json, [b'{', b'}'])
                    | (Serializer::MsgPack, [0x80])
                    | (Serializer::Cbor, [0xa0])
            );
            if empty {
                return true;
            }
        }
        self.dict_len() == Some(0)
    }

    pub fn dict_len(&self) -> Option<usize> {
        match self {
            Val::Dict(d) => Some(d.len()),
            Val::Raw(p) if self.is_dict() => raw_count(*p),
            _ => None,
        }
    }

    /// Decodes Raw spans and copies borrowed data so the value can outlive the frame.
    /// A Raw span that fails to decode (only possible for hand-built payloads) becomes Null.
    pub fn into_owned(self) -> Val<'static> {
        match self {
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Int(n) => Val::Int(n),
            Val::UInt(n) => Val::UInt(n),
            Val::Float(f) => Val::Float(f),
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Bytes(b) => Val::Bytes(Cow::Owned(b.into_owned())),
            Val::List(l) => Val::List(l.into_iter().map(Val::into_owned).collect()),
            Val::Dict(d) => Val::Dict(
                d.into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
            Val::Raw(p) => match Val::decode(p) {
                Ok(v) => v.into_owned(),
                Err(_) => Val::Null,
            },
        }
    }

    /// Raw with the same serializer is spliced verbatim; otherwise transcoded.
    pub fn encode(&self, ser: Serializer, out: &mut Vec<u8>) -> Result<(), CodecError> {
        encode_in(self, ser, out)
    }

    /// Deep equality after decoding. Integers compare by value regardless of
    /// signedness; floats only equal floats; dicts ignore key order.
    pub fn semantic_eq(&self, other: &Val) -> bool {
        if let Val::Raw(p) = self {
            return match Val::decode(*p) {
                Ok(v) => v.semantic_eq(other),
                Err(_) => false,
            };
        }
        if let Val::Raw(p) = other {
            return match Val::decode(*p) {
                Ok(v) => self.semantic_eq(&v),
                Err(_) => false,
            };
        }
        match (self, other) {
            (Val::Null, Val::Null) => true,
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (Val::Int(_) | Val::UInt(_), Val::Int(_) | Val::UInt(_)) => {
                int128(self) == int128(other)
            }
            (Val::Float(a), Val::Float(b)) => a == b,
            (Val::Str(a), Val::Str(b)) => a == b,
            (Val::Bytes(a), Val::Bytes(b)) => a == b,
            (Val::List(a), Val::List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.semantic_eq(y))
            }
            (Val::Dict(a), Val::Dict(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.iter().any(|(k2, v2)| k == k2 && v.semantic_eq(v2)))
            }
            _ => false,
        }
    }
}

fn int128(v: &Val) -> i128 {
    match v {
        Val::Int(n) => *n as i128,
        Val::UInt(n) => *n as i128,
        _ => i128::MIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_encodings(v: &Val) -> Vec<(Serializer, Vec<u8>)> {
        Serializer::ALL
            .iter()
            .map(|s| {
                let mut out = Vec::new();
                v.encode(*s, &mut out).unwrap();
                (*s, out)
            })
            .collect()
    }

    #[test]
    fn binary_round_trips_across_serializers() {
        let data: Vec<u8> = (0u8..=255).collect();
        let v = Val::List(vec![Val::Bytes(Cow::Borrowed(&data)), Val::Str("x".into())]);
        let encs = all_encodings(&v);
        let json = &encs[0].1;
        assert!(json.starts_with(b"[\"\\u0000"));
        for (from, bytes) in &encs {
            let p = Payload::new(*from, bytes).unwrap();
            assert!(Val::decode(p).unwrap().semantic_eq(&v), "{from:?}");
            for to in Serializer::ALL {
                let mut t = Vec::new();
                transcode(p, to, &mut t).unwrap();
                let back = Val::decode(Payload::new(to, &t).unwrap()).unwrap();
                assert!(back.semantic_eq(&v), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn raw_get_and_scalars() {
        let v = Val::Dict(vec![
            ("acknowledge".into(), Val::Bool(true)),
            (
                "exclude".into(),
                Val::List(vec![Val::UInt(1), Val::UInt(2)]),
            ),
            ("n".into(), Val::Int(-3)),
            ("big".into(), Val::UInt(u64::MAX)),
            ("s".into(), Val::Str("a\"b\u{1F600}".into())),
            ("nested".into(), Val::Dict(vec![("k".into(), Val::Null)])),
        ]);
        for (ser, bytes) in all_encodings(&v) {
            let raw = Val::Raw(Payload::new(ser, &bytes).unwrap());
            assert!(raw.is_dict());
            assert_eq!(raw.dict_len(), Some(6));
            assert_eq!(raw.get("acknowledge").unwrap().as_bool(), Some(true));
            let ex = raw.get("exclude").unwrap();
            assert!(ex.is_list());
            assert_eq!(ex.list_len(), Some(2));
            assert_eq!(raw.get("n").unwrap().as_i64(), Some(-3));
            assert_eq!(raw.get("n").unwrap().as_u64(), None);
            assert_eq!(raw.get("big").unwrap().as_u64(), Some(u64::MAX));
            assert_eq!(raw.get("s").unwrap().as_str().unwrap(), "a\"b\u{1F600}");
            assert!(raw.get("nested").unwrap().get("k").unwrap().is_null());
            assert!(raw.get("missing").is_none());
            assert!(raw.semantic_eq(&v));
            assert!(raw.clone().into_owned().semantic_eq(&v));
        }
    }

    #[test]
    fn semantic_eq_rules() {
        assert!(Val::UInt(5).semantic_eq(&Val::Int(5)));
        assert!(!Val::UInt(5).semantic_eq(&Val::Float(5.0)));
        assert!(Val::Float(5.0).semantic_eq(&Val::Float(5.0)));
        let a = Val::Dict(vec![("a".into(), Val::Null), ("b".into(), Val::Bool(true))]);
        let b = Val::Dict(vec![("b".into(), Val::Bool(true)), ("a".into(), Val::Null)]);
        assert!(a.semantic_eq(&b));
    }

    #[test]
    fn json_numbers_beyond_f64_are_refused_and_big_integers_transcode() {
        // Numbers that would become infinity cannot be sent back to JSON: refused.
        for src in [&br#"{"a":[24680e13579]}"#[..], br#"[-1e400]"#] {
            assert!(Payload::new(Serializer::Json, src).is_err());
        }
        // Valid JSON that simd-json rejects (an integer beyond 64 bits); it must transcode like
        // it decodes.
        let src = br#"{"a":[123456789012345678901234567890,-1e300,1]}"#;
        let p = Payload::new(Serializer::Json, src).unwrap();
        let decoded = Val::decode(p).unwrap();
        for to in [Serializer::MsgPack, Serializer::Cbor] {
            let mut out = Vec::new();
            transcode(p, to, &mut out).unwrap();
            let mut expect = Vec::new();
            decoded.encode(to, &mut expect).unwrap();
            assert_eq!(out, expect, "{to:?}");
        }
        // Bad base64 cannot come from a validated payload; a hand-built one still fails cleanly.
        assert!(Payload::new(Serializer::Json, br#""\u0000!!""#).is_err());
        let mut out = vec![7];
        let bad = Payload {
            ser: Serializer::Json,
            bytes: br#""\u0000!!""#,
        };
        assert!(transcode(bad, Serializer::Cbor, &mut out).is_err());
        assert_eq!(out, [7], "a failed transcoding leaves the buffer as it was");
    }

    #[test]
    fn floats_survive_all_serializers() {
        let v = Val::List(vec![Val::Float(1.0), Val::Float(-0.5), Val::Float(1e300)]);
        for (ser, bytes) in all_encodings(&v) {
            let d = Val::decode(Payload::new(ser, &bytes).unwrap()).unwrap();
            assert!(d.semantic_eq(&v), "{ser:?}");
        }
        let mut out = Vec::new();
        Val::Float(f64::NAN)
            .encode(Serializer::Json, &mut out)
            .unwrap();
        assert_eq!(out, b"null");
    }
}
