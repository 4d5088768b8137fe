//! MessagePack support: a validating skip scanner over markers (for spans),
//! a full decoder, and a writer built on `rmp::encode`.
//!
//! Values every serializer can carry are what the router reads and writes: non-finite floats and
//! text values starting with U+0000 are refused (JSON has no infinity or NaN, and reads such text
//! as binary). Ext values are *foreign*: inside Arguments/ArgumentsKw they pass untouched to
//! MessagePack receivers and become nil (null) for JSON and CBOR receivers; anywhere else in a
//! message (Options, Details) they are refused. One ext value is plain nil: fixext 1 of type 0
//! holding 0, which is how msgpackr (and so wampy.js) writes JavaScript's `undefined`, even in the
//! options it sends.

use std::borrow::Cow;

use rmp::Marker;

use super::value::{CodecError, Item, Items, Kind, Payload, Val, MAX_DEPTH};
use super::Serializer;

const EOF: CodecError = CodecError::Malformed("msgpack: unexpected end of input");
const DEEP: CodecError = CodecError::Malformed("msgpack: nesting too deep");

enum Head {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(usize),
    Bin(usize),
    Arr(usize),
    Map(usize),
    /// An ext value: type byte plus this many data bytes follow.
    Ext(usize),
}

#[inline]
fn be<const N: usize>(b: &[u8], i: usize) -> Result<[u8; N], CodecError> {
    b.get(i..i + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(EOF)
}

/// Reads one marker plus its fixed-size argument; returns the index after it.
#[inline]
fn head(b: &[u8], i: usize) -> Result<(Head, usize), CodecError> {
    let m = *b.get(i).ok_or(EOF)?;
    let j = i + 1;
    let len8 = |j| be::<1>(b, j).map(|x| x[0] as usize);
    let len16 = |j| be::<2>(b, j).map(|x| u16::from_be_bytes(x) as usize);
    let len32 = |j| be::<4>(b, j).map(|x| u32::from_be_bytes(x) as usize);
    Ok(match Marker::from_u8(m) {
        Marker::FixPos(n) => (Head::UInt(n as u64), j),
        Marker::FixNeg(n) => (Head::Int(n as i64), j),
        Marker::FixMap(n) => (Head::Map(n as usize), j),
        Marker::FixArray(n) => (Head::Arr(n as usize), j),
        Marker::FixStr(n) => (Head::Str(n as usize), j),
        Marker::Null => (Head::Nil, j),
        Marker::False => (Head::Bool(false), j),
        Marker::True => (Head::Bool(true), j),
        Marker::Bin8 => (Head::Bin(len8(j)?), j + 1),
        Marker::Bin16 => (Head::Bin(len16(j)?), j + 2),
        Marker::Bin32 => (Head::Bin(len32(j)?), j + 4),
        Marker::Str8 => (Head::Str(len8(j)?), j + 1),
        Marker::Str16 => (Head::Str(len16(j)?), j + 2),
        Marker::Str32 => (Head::Str(len32(j)?), j + 4),
        Marker::Array16 => (Head::Arr(len16(j)?), j + 2),
        Marker::Array32 => (Head::Arr(len32(j)?), j + 4),
        Marker::Map16 => (Head::Map(len16(j)?), j + 2),
        Marker::Map32 => (Head::Map(len32(j)?), j + 4),
        Marker::F32 => (Head::F32(f32::from_be_bytes(be(b, j)?)), j + 4),
        Marker::F64 => (Head::F64(f64::from_be_bytes(be(b, j)?)), j + 8),
        Marker::U8 => (Head::UInt(be::<1>(b, j)?[0] as u64), j + 1),
        Marker::U16 => (Head::UInt(u16::from_be_bytes(be(b, j)?) as u64), j + 2),
        Marker::U32 => (Head::UInt(u32::from_be_bytes(be(b, j)?) as u64), j + 4),
        Marker::U64 => (Head::UInt(u64::from_be_bytes(be(b, j)?)), j + 8),
        Marker::I8 => (Head::Int(i8::from_be_bytes(be(b, j)?) as i64), j + 1),
        Marker::I16 => (Head::Int(i16::from_be_bytes(be(b, j)?) as i64), j + 2),
        Marker::I32 => (Head::Int(i32::from_be_bytes(be(b, j)?) as i64), j + 4),
        Marker::I64 => (Head::Int(i64::from_be_bytes(be(b, j)?)), j + 8),
        Marker::FixExt1 if b.get(j..j + 2) == Some(&[0, 0]) => (Head::Nil, j + 2),
        Marker::FixExt1 => (Head::Ext(2), j),
        Marker::FixExt2 => (Head::Ext(3), j),
        Marker::FixExt4 => (Head::Ext(5), j),
        Marker::FixExt8 => (Head::Ext(9), j),
        Marker::FixExt16 => (Head::Ext(17), j),
        Marker::Ext8 => (Head::Ext(len8(j)? + 1), j + 1),
        Marker::Ext16 => (Head::Ext(len16(j)? + 1), j + 2),
        Marker::Ext32 => (Head::Ext(len32(j)? + 1), j + 4),
        Marker::Reserved => return Err(CodecError::Malformed("msgpack: reserved marker 0xc1")),
    })
}

fn int_kind(n: i64) -> Kind {
    if n < 0 {
        Kind::NegInt
    } else {
        Kind::UInt
    }
}

#[inline]
fn body(b: &[u8], i: usize, n: usize) -> Result<&[u8], CodecError> {
    b.get(i..i.checked_add(n).ok_or(EOF)?).ok_or(EOF)
}

const BAD_UTF8: CodecError = CodecError::Malformed("msgpack: invalid utf-8");

fn utf8(s: &[u8]) -> Result<&str, CodecError> {
    std::str::from_utf8(s).map_err(|_| BAD_UTF8)
}

/// What a scan does on meeting an ext value. Ext values are rare, so the first scan of an item
/// refuses them ([`Refuse`], which costs the scanner nothing) and only an item that holds one is
/// scanned again, noting it ([`Note`]).
trait OnExt {
    fn ext(&mut self) -> Result<(), CodecError>;
}

/// Ext values end the scan with [`FOREIGN`].
struct Refuse;

impl OnExt for Refuse {
    #[inline(always)]
    fn ext(&mut self) -> Result<(), CodecError> {
        Err(FOREIGN)
    }
}

/// Ext values are allowed; the flag records that one was seen.
struct Note(bool);

impl OnExt for Note {
    #[inline(always)]
    fn ext(&mut self) -> Result<(), CodecError> {
        self.0 = true;
        Ok(())
    }
}

/// Validates one value at `i`; returns its end and kind. An ext value is handed to `on_ext`.
fn skip<E: OnExt>(
    b: &[u8],
    i: usize,
    depth: usize,
    on_ext: &mut E,
) -> Result<(usize, Kind), CodecError> {
    let (h, j) = head(b, i)?;
    Ok(match h {
        Head::Nil => (j, Kind::Null),
        Head::Ext(n) => {
            on_ext.ext()?;
            (j + body(b, j, n)?.len(), Kind::Null)
        }
        Head::Bool(_) => (j, Kind::Bool),
        Head::UInt(_) => (j, Kind::UInt),
        Head::Int(n) => (j, int_kind(n)),
        Head::F32(f) => (j, finite(f as f64)?),
        Head::F64(f) => (j, finite(f)?),
        Head::Str(n) => {
            let text = body(b, j, n)?;
            if !super::is_utf8(text) {
                return Err(BAD_UTF8);
            }
            if text.first() == Some(&0) {
                return Err(CodecError::Malformed(
                    "msgpack: text starting with U+0000 (binary in JSON)",
                ));
            }
            (j + n, Kind::Str)
        }
        Head::Bin(n) => (j + body(b, j, n)?.len(), Kind::Bin),
        Head::Arr(n) => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            if n > b.len() - j {
                return Err(EOF);
            }
            let mut k = j;
            for _ in 0..n {
                k = skip(b, k, depth + 1, on_ext)?.0;
            }
            (k, Kind::List)
        }
        Head::Map(n) => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            if n > (b.len() - j) / 2 {
                return Err(EOF);
            }
            let mut k = j;
            for _ in 0..n {
                k = skip(b, skip_key(b, k)?, depth + 1, on_ext)?.0;
            }
            (k, Kind::Dict)
        }
    })
}

/// A map key: any text (keys are text in JSON too, so a leading U+0000 is no problem there).
fn skip_key(b: &[u8], i: usize) -> Result<usize, CodecError> {
    match head(b, i)? {
        (Head::Str(n), j) => {
            if !super::is_utf8(body(b, j, n)?) {
                return Err(BAD_UTF8);
            }
            Ok(j + n)
        }
        _ => Err(CodecError::Malformed("msgpack: map key is not a string")),
    }
}

fn finite(f: f64) -> Result<Kind, CodecError> {
    if f.is_finite() {
        Ok(Kind::Float)
    } else {
        Err(CodecError::Malformed("msgpack: infinite or NaN float"))
    }
}

fn trailing(b: &[u8], end: usize) -> Result<(), CodecError> {
    if end == b.len() {
        Ok(())
    } else {
        Err(CodecError::Malformed("msgpack: trailing bytes"))
    }
}

pub(crate) fn split_array(b: &[u8]) -> Result<Items<'_>, CodecError> {
    let (h, mut j) = head(b, 0)?;
    let Head::Arr(n) = h else {
        return Err(CodecError::Protocol("message is not an array".into()));
    };
    if n > b.len() - j {
        return Err(EOF);
    }
    let mut items = Items::new();
    for _ in 0..n {
        let (end, kind, foreign) = match skip(b, j, 1, &mut Refuse) {
            Ok((end, kind)) => (end, kind, false),
            Err(e) if e == FOREIGN => {
                let (end, kind) = skip(b, j, 1, &mut Note(false))?;
                (end, kind, true)
            }
            Err(e) => return Err(e),
        };
        items.push(Item {
            kind,
            span: &b[j..end],
            foreign,
        });
        j = end;
    }
    trailing(b, j)?;
    Ok(items)
}

/// A validated value that is a non-negative integer, read straight from its marker.
pub(crate) fn uint_at(b: &[u8]) -> Option<u64> {
    match head(b, 0).ok()?.0 {
        Head::UInt(n) => Some(n),
        Head::Int(n) if n >= 0 => Some(n as u64),
        _ => None,
    }
}

/// A validated value that is a string, borrowed from the frame.
pub(crate) fn str_at(b: &[u8]) -> Option<&str> {
    match head(b, 0).ok()? {
        (Head::Str(n), j) => std::str::from_utf8(b.get(j..j + n)?).ok(),
        _ => None,
    }
}

pub(crate) fn peek_code(b: &[u8]) -> Option<u64> {
    let (h, j) = head(b, 0).ok()?;
    if !matches!(h, Head::Arr(n) if n > 0) {
        return None;
    }
    match head(b, j).ok()?.0 {
        Head::UInt(n) => Some(n),
        _ => None,
    }
}

/// The refusal of an ext value where only portable values are allowed.
pub(crate) const FOREIGN: CodecError =
    CodecError::Malformed("msgpack: ext types are allowed only inside Arguments and ArgumentsKw");

/// Checks that `b` is one value made only of portable values (no ext).
pub(crate) fn validate(b: &[u8]) -> Result<(), CodecError> {
    let (end, _) = skip(b, 0, 0, &mut Refuse)?;
    trailing(b, end)
}

pub(crate) fn kind(b: &[u8]) -> Option<Kind> {
    Some(match head(b, 0).ok()?.0 {
        Head::Nil | Head::Ext(_) => Kind::Null,
        Head::Bool(_) => Kind::Bool,
        Head::UInt(_) => Kind::UInt,
        Head::Int(n) => int_kind(n),
        Head::F32(_) | Head::F64(_) => Kind::Float,
        Head::Str(_) => Kind::Str,
        Head::Bin(_) => Kind::Bin,
        Head::Arr(_) => Kind::List,
        Head::Map(_) => Kind::Dict,
    })
}

pub(crate) fn map_get<'a>(b: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let (Head::Map(n), mut j) = head(b, 0).ok()? else {
        return None;
    };
    for _ in 0..n {
        let (kh, kstart) = head(b, j).ok()?;
        let Head::Str(klen) = kh else { return None };
        let k = body(b, kstart, klen).ok()?;
        let vstart = kstart + klen;
        let (vend, _) = skip(b, vstart, 1, &mut Note(false)).ok()?;
        if k == key.as_bytes() {
            return Some(&b[vstart..vend]);
        }
        j = vend;
    }
    None
}

pub(crate) fn count(b: &[u8]) -> Option<usize> {
    match head(b, 0).ok()?.0 {
        Head::Arr(n) | Head::Map(n) => Some(n),
        _ => None,
    }
}

fn decode_at(b: &[u8], i: usize, depth: usize) -> Result<(Val<'_>, usize), CodecError> {
    let (h, j) = head(b, i)?;
    Ok(match h {
        Head::Nil => (Val::Null, j),
        // Foreign to the other serializers: its nearest value is nil.
        Head::Ext(n) => (Val::Null, j + body(b, j, n)?.len()),
        Head::Bool(v) => (Val::Bool(v), j),
        Head::UInt(n) => (Val::UInt(n), j),
        Head::Int(n) => (Val::Int(n), j),
        Head::F32(f) => (Val::Float(f as f64), j),
        Head::F64(f) => (Val::Float(f), j),
        Head::Str(n) => (Val::Str(Cow::Borrowed(utf8(body(b, j, n)?)?)), j + n),
        Head::Bin(n) => (Val::Bytes(Cow::Borrowed(body(b, j, n)?)), j + n),
        Head::Arr(n) => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            if n > b.len() - j {
                return Err(EOF);
            }
            let mut list = Vec::with_capacity(n);
            let mut k = j;
            for _ in 0..n {
                let (v, e) = decode_at(b, k, depth + 1)?;
                list.push(v);
                k = e;
            }
            (Val::List(list), k)
        }
        Head::Map(n) => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            if n > (b.len() - j) / 2 {
                return Err(EOF);
            }
            let mut entries = Vec::with_capacity(n);
            let mut k = j;
            for _ in 0..n {
                let (key, e) = decode_at(b, k, depth + 1)?;
                let Val::Str(key) = key else {
                    return Err(CodecError::Malformed("msgpack: map key is not a string"));
                };
                let (v, e) = decode_at(b, e, depth + 1)?;
                entries.push((key, v));
                k = e;
            }
            (Val::Dict(entries), k)
        }
    })
}

pub(crate) fn decode(b: &[u8]) -> Result<Val<'_>, CodecError> {
    let (v, end) = decode_at(b, 0, 0)?;
    trailing(b, end)?;
    Ok(v)
}

// ---- encoding ----------------------------------------------------------------
// Writes into a Vec cannot fail; only lengths beyond u32 are reported.

const TOO_LONG: CodecError = CodecError::Malformed("msgpack: length exceeds u32");

fn len32(n: usize) -> Result<u32, CodecError> {
    u32::try_from(n).map_err(|_| TOO_LONG)
}

/// The shortest msgpack form of `n`, as `rmp::encode::write_uint` writes it, without the `Write`
/// plumbing: ids are written several times into every message the router builds.
#[inline]
pub(crate) fn write_u64(n: u64, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xcc, n as u8]);
    } else if n <= 0xffff {
        let b = (n as u16).to_be_bytes();
        out.extend_from_slice(&[0xcd, b[0], b[1]]);
    } else if n <= 0xffff_ffff {
        let b = (n as u32).to_be_bytes();
        out.extend_from_slice(&[0xce, b[0], b[1], b[2], b[3]]);
    } else {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let _ = rmp::encode::write_str_len(out, len32(s.len())?);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

pub(crate) fn write_array_len(n: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let _ = rmp::encode::write_array_len(out, len32(n)?);
    Ok(())
}

pub(crate) fn encode_val(v: &Val<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
    match v {
        Val::Null => {
            let _ = rmp::encode::write_nil(out);
        }
        Val::Bool(x) => {
            let _ = rmp::encode::write_bool(out, *x);
        }
        Val::Int(n) => {
            let _ = rmp::encode::write_sint(out, *n);
        }
        Val::UInt(n) => write_u64(*n, out),
        Val::Float(f) => {
            let _ = rmp::encode::write_f64(out, *f);
        }
        Val::Str(s) => write_str(s, out)?,
        Val::Bytes(b) => {
            let _ = rmp::encode::write_bin_len(out, len32(b.len())?);
            out.extend_from_slice(b);
        }
        Val::List(l) => {
            write_array_len(l.len(), out)?;
            for x in l {
                encode_val(x, out)?;
            }
        }
        Val::Dict(d) => {
            let _ = rmp::encode::write_map_len(out, len32(d.len())?);
            for (k, x) in d {
                write_str(k, out)?;
                encode_val(x, out)?;
            }
        }
        Val::Raw(p) => {
            if p.ser == Serializer::MsgPack {
                out.extend_from_slice(p.bytes);
            } else {
                super::value::transcode(
                    Payload {
                        ser: p.ser,
                        bytes: p.bytes,
                    },
                    Serializer::MsgPack,
                    out,
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn uints_are_written_as_rmp_writes_them() {
        let mut edges = vec![0u64, 1, u64::MAX, u64::MAX - 1];
        for shift in [7, 8, 16, 32] {
            let b = 1u64 << shift;
            edges.extend([b - 1, b, b + 1]);
        }
        for n in edges {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            super::write_u64(n, &mut ours);
            rmp::encode::write_uint(&mut theirs, n).unwrap();
            assert_eq!(ours, theirs, "{n}");
        }
    }

    use super::*;

    #[test]
    fn widths_and_errors() {
        // uint64-encoded small number, int8 negative, str8, bin8
        let b = [
            0x94, 0xcf, 0, 0, 0, 0, 0, 0, 0, 5, 0xd0, 0xfe, 0xd9, 1, b'a', 0xc4, 1, 7,
        ];
        let items = split_array(&b).unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(decode(items[0].span).unwrap().as_u64(), Some(5));
        assert_eq!(decode(items[1].span).unwrap().as_i64(), Some(-2));
        assert_eq!(items[2].kind, Kind::Str);
        assert_eq!(items[3].kind, Kind::Bin);
        assert!(split_array(&b[..b.len() - 1]).is_err());
        let mut t = b.to_vec();
        t.push(0);
        assert!(split_array(&t).is_err());
        assert!(validate(&[0xa1, 0xff]).is_err()); // bad utf-8
        assert!(validate(&[0xd4, 1, 2]).is_err()); // fixext
        assert!(validate(&[0xc1]).is_err());
        assert!(validate(&[0x81, 1, 2]).is_err()); // non-string key
        assert!(validate(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err()); // huge count
        let deep = vec![0x91u8; 100_000];
        assert!(validate(&deep).is_err());
        assert!(decode(&deep).is_err());
    }

    /// Values no other serializer could carry are refused, so a message never fails (or changes)
    /// when it is forwarded to a JSON or CBOR peer.
    #[test]
    fn refuses_what_other_serializers_cannot_carry() {
        let refused: &[&[u8]] = &[
            &[0xca, 0x7f, 0x80, 0, 0],             // f32 infinity
            &[0xca, 0x7f, 0xc0, 0, 0],             // f32 NaN
            &[0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0], // f64 -infinity
            &[0xa2, 0x00, b'a'],                   // text "\0a"
            &[0xd9, 1, 0x00],                      // str8 "\0"
            &[0x91, 0xa1, 0x00],                   // inside a list
            &[0x81, 0xa1, b'k', 0xa1, 0x00],       // as a map value
            &[0xc7, 0, 1],                         // ext8
            &[0xd4, 0x00, 0x01],                   // fixext 1, type 0, not 0
            &[0xd4, 0x01, 0x00],                   // fixext 1, type 1
            &[0xd4, 0x00],                         // truncated
            &[0xd6, 0xff, 0, 0, 0, 0],             // timestamp (ext -1)
        ];
        for b in refused {
            assert!(validate(b).is_err(), "{b:02x?}");
        }
        let accepted: &[&[u8]] = &[
            &[0x81, 0xa1, 0x00, 0x01], // a key starting with U+0000 is text in JSON too
            &[0xa2, b'a', 0x00],       // U+0000 not in front
            &[0xa0],                   // empty text
            &[0xcb, 0x7f, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // f64::MAX
            &[0x92, 0xd4, 0x00, 0x00, 0x01], // msgpackr's undefined
        ];
        for b in accepted {
            assert!(validate(b).is_ok(), "{b:02x?}");
            assert!(decode(b).is_ok(), "{b:02x?}");
        }
        // Its `undefined` is nil: in options too (wampy.js sends `{"match": undefined}`).
        let undefined = [0xd4, 0x00, 0x00];
        assert_eq!(kind(&undefined), Some(Kind::Null));
        assert!(decode(&undefined).unwrap().is_null());
        let opts = [0x81, 0xa5, b'm', b'a', b't', b'c', b'h', 0xd4, 0, 0];
        assert_eq!(map_get(&opts, "match"), Some(&undefined[..]));
        // Other ext values are foreign: found by the scanner, nil when decoded.
        let msg = [
            0x93, 0x92, 0xd6, 0xff, 0, 0, 0, 1, 0x07, 0xc7, 2, 5, 1, 2, 0x80,
        ];
        let items = split_array(&msg).unwrap();
        assert!(items[0].foreign && items[0].kind == Kind::List);
        assert!(items[1].foreign && items[1].kind == Kind::Null);
        assert!(!items[2].foreign);
        let list = decode(items[0].span).unwrap();
        assert!(matches!(&list, Val::List(v) if v[0].is_null() && v[1].as_u64() == Some(7)));
    }
}
