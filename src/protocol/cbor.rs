//! CBOR (RFC 8949) support, hand-rolled so that the scanner can return spans
//! and validate text strings without materializing anything.
//!
//! Portable (what the router reads and writes): definite and indefinite lengths,
//! true/false/null/undefined (as null), finite half/single/double floats, the
//! self-describe tag 55799 (which means nothing) and tag 64 on a byte string (a
//! uint8 typed array: bytes, as some encoders write a Uint8Array). Refused,
//! because JSON and MessagePack peers could not receive them: infinite and NaN
//! floats, negative integers below -2^63, and text values starting with U+0000
//! (binary in JSON). *Foreign*: other tags and other simple values. Inside
//! Arguments/ArgumentsKw they pass untouched to CBOR receivers; for JSON and
//! MessagePack receivers a tag is dropped (its content kept) and a simple value
//! becomes null. Anywhere else in a message (Options, Details) they are refused.

use std::borrow::Cow;

use super::value::{CodecError, Item, Items, Kind, Payload, Val, MAX_DEPTH};
use super::Serializer;

const EOF: CodecError = CodecError::Malformed("cbor: unexpected end of input");
const DEEP: CodecError = CodecError::Malformed("cbor: nesting too deep");
const BAD: CodecError = CodecError::Malformed("cbor: invalid initial byte");
const BREAK: u8 = 0xff;
/// Tag 55799 only marks the data as CBOR (RFC 8949 3.4.6).
const SELF_DESCRIBE: u64 = 55799;
/// Tag 64 marks a byte string as a uint8 typed array (RFC 8746): bytes all the same.
const TYPED_U8: u64 = 64;
/// The refusal of a tag or simple value where only portable values are allowed.
pub(crate) const FOREIGN: CodecError = CodecError::Malformed(
    "cbor: tags other than 55799 and 64, and simple values other than true, false, null and \
     undefined, are allowed only inside Arguments and ArgumentsKw",
);
const BIG_NEG: CodecError = CodecError::Malformed("cbor: negative integer below -2^63");
const NUL_TEXT: CodecError =
    CodecError::Malformed("cbor: text starting with U+0000 (binary in JSON)");

/// Argument of an initial byte; `None` means indefinite length.
#[inline]
fn head(b: &[u8], i: usize) -> Result<(u8, u8, Option<u64>, usize), CodecError> {
    let ib = *b.get(i).ok_or(EOF)?;
    let major = ib >> 5;
    let ai = ib & 0x1f;
    let j = i + 1;
    let get = |n: usize| -> Result<u64, CodecError> {
        let s = b.get(j..j + n).ok_or(EOF)?;
        Ok(s.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    };
    Ok(match ai {
        0..=23 => (major, ai, Some(ai as u64), j),
        24 => (major, ai, Some(get(1)?), j + 1),
        25 => (major, ai, Some(get(2)?), j + 2),
        26 => (major, ai, Some(get(4)?), j + 4),
        27 => (major, ai, Some(get(8)?), j + 8),
        31 if matches!(major, 2..=5 | 7) => (major, ai, None, j),
        _ => return Err(BAD),
    })
}

fn f16_to_f64(h: u16) -> f64 {
    let exp = ((h >> 10) & 0x1f) as i32;
    let mant = (h & 0x3ff) as f64;
    let v = match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (mant + 1024.0) * 2f64.powi(exp - 25),
    };
    if h & 0x8000 != 0 {
        -v
    } else {
        v
    }
}

const BAD_UTF8: CodecError = CodecError::Malformed("cbor: invalid utf-8");

fn utf8(s: &[u8]) -> Result<&str, CodecError> {
    std::str::from_utf8(s).map_err(|_| BAD_UTF8)
}

/// Validation only (no `&str` wanted): see [`super::is_utf8`].
fn check_utf8(s: &[u8]) -> Result<(), CodecError> {
    if super::is_utf8(s) {
        Ok(())
    } else {
        Err(BAD_UTF8)
    }
}

#[inline]
fn body(b: &[u8], i: usize, n: u64) -> Result<&[u8], CodecError> {
    let n = usize::try_from(n).map_err(|_| EOF)?;
    b.get(i..i.checked_add(n).ok_or(EOF)?).ok_or(EOF)
}

/// Remaining bytes bound the element count of a definite container.
fn check_count(b: &[u8], j: usize, n: u64, per: u64) -> Result<usize, CodecError> {
    let rem = (b.len() - j) as u64;
    if n > rem / per {
        return Err(EOF);
    }
    Ok(n as usize)
}

/// The kind of a simple value or float; `None` for a simple value other serializers lack.
fn simple_kind(ai: u8) -> Option<Kind> {
    match ai {
        20 | 21 => Some(Kind::Bool),
        22 | 23 => Some(Kind::Null),
        25..=27 => Some(Kind::Float),
        _ => None,
    }
}

/// The value of a float whose argument is `x` (`ai` 25, 26 or 27).
fn float_of(ai: u8, x: u64) -> f64 {
    match ai {
        25 => f16_to_f64(x as u16),
        26 => f32::from_bits(x as u32) as f64,
        _ => f64::from_bits(x),
    }
}

/// A simple value or float; a simple value other serializers lack is foreign (null to them).
fn simple(ai: u8, x: u64, foreign: &mut bool) -> Result<Kind, CodecError> {
    let Some(kind) = simple_kind(ai) else {
        *foreign = true;
        return Ok(Kind::Null);
    };
    if kind == Kind::Float && !float_of(ai, x).is_finite() {
        return Err(CodecError::Malformed("cbor: infinite or NaN float"));
    }
    Ok(kind)
}

/// Validates the chunks of an indefinite-length string starting after its head; returns its end
/// and the first byte of the whole string.
fn skip_chunks(b: &[u8], mut j: usize, major: u8) -> Result<(usize, Option<u8>), CodecError> {
    let mut first = None;
    loop {
        if b.get(j) == Some(&BREAK) {
            return Ok((j + 1, first));
        }
        let (m, _, arg, k) = head(b, j)?;
        let Some(n) = arg.filter(|_| m == major) else {
            return Err(CodecError::Malformed("cbor: bad string chunk"));
        };
        let s = body(b, k, n)?;
        if major == 3 {
            check_utf8(s)?;
        }
        first = first.or(s.first().copied());
        j = k + s.len();
    }
}

/// A string value: text must be UTF-8 and must not start with U+0000.
fn skip_string(b: &[u8], major: u8, arg: Option<u64>, j: usize) -> Result<usize, CodecError> {
    let (end, first) = match arg {
        Some(n) => {
            let s = body(b, j, n)?;
            if major == 3 {
                check_utf8(s)?;
            }
            (j + s.len(), s.first().copied())
        }
        None => skip_chunks(b, j, major)?,
    };
    if major == 3 && first == Some(0) {
        return Err(NUL_TEXT);
    }
    Ok(end)
}

/// A map key: any text (keys are text in JSON too, so a leading U+0000 is no problem there).
fn skip_key(b: &[u8], i: usize, depth: usize) -> Result<usize, CodecError> {
    match head(b, i)? {
        (3, _, Some(n), j) => {
            let s = body(b, j, n)?;
            check_utf8(s)?;
            Ok(j + s.len())
        }
        (3, _, None, j) => Ok(skip_chunks(b, j, 3)?.0),
        (6, _, Some(SELF_DESCRIBE), j) if depth < MAX_DEPTH => skip_key(b, j, depth + 1),
        _ => Err(CodecError::Malformed("cbor: map key is not a string")),
    }
}

/// Validates one value at `i`; returns its end and kind. Sets `foreign` if a foreign tag or simple
/// value was seen.
fn skip(b: &[u8], i: usize, depth: usize, foreign: &mut bool) -> Result<(usize, Kind), CodecError> {
    let (major, ai, arg, j) = head(b, i)?;
    Ok(match (major, arg) {
        (0, _) => (j, Kind::UInt),
        (1, Some(n)) if n > i64::MAX as u64 => return Err(BIG_NEG),
        (1, _) => (j, Kind::NegInt),
        (2 | 3, _) => (
            skip_string(b, major, arg, j)?,
            if major == 2 { Kind::Bin } else { Kind::Str },
        ),
        (4 | 5, _) => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            let pair = major == 5;
            let mut k = j;
            let mut entry = |k: usize| -> Result<usize, CodecError> {
                if pair {
                    Ok(skip(b, skip_key(b, k, depth + 1)?, depth + 1, foreign)?.0)
                } else {
                    Ok(skip(b, k, depth + 1, foreign)?.0)
                }
            };
            match arg {
                Some(n) => {
                    for _ in 0..check_count(b, j, n, if pair { 2 } else { 1 })? {
                        k = entry(k)?;
                    }
                }
                None => loop {
                    match b.get(k) {
                        Some(&BREAK) => {
                            k += 1;
                            break;
                        }
                        None => return Err(EOF),
                        _ => k = entry(k)?,
                    }
                },
            }
            (k, if pair { Kind::Dict } else { Kind::List })
        }
        (6, tag) => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            let (end, kind) = skip(b, j, depth + 1, foreign)?;
            // A uint8 typed array is plain bytes; any other meaning would be lost in transit.
            if tag != Some(SELF_DESCRIBE) && !(tag == Some(TYPED_U8) && kind == Kind::Bin) {
                *foreign = true;
            }
            (end, kind)
        }
        (7, Some(x)) => (j, simple(ai, x, foreign)?),
        _ => return Err(BAD),
    })
}

fn trailing(b: &[u8], end: usize) -> Result<(), CodecError> {
    if end == b.len() {
        Ok(())
    } else {
        Err(CodecError::Malformed("cbor: trailing bytes"))
    }
}

/// Skips self-describe tags in front of a value (bounded, as tags are tiny).
fn untag(b: &[u8], mut i: usize) -> Option<usize> {
    for _ in 0..MAX_DEPTH {
        match head(b, i).ok()? {
            (6, _, Some(SELF_DESCRIBE), j) => i = j,
            _ => return Some(i),
        }
    }
    None
}

pub(crate) fn split_array(b: &[u8]) -> Result<Items<'_>, CodecError> {
    let start = untag(b, 0).ok_or(BAD)?;
    let (major, _, arg, mut j) = head(b, start)?;
    if major != 4 {
        return Err(CodecError::Protocol("message is not an array".into()));
    }
    let mut items = Items::new();
    let mut push = |j: usize| -> Result<usize, CodecError> {
        let mut foreign = false;
        let (end, kind) = skip(b, j, 1, &mut foreign)?;
        items.push(Item {
            kind,
            span: &b[j..end],
            foreign,
        });
        Ok(end)
    };
    match arg {
        Some(n) => {
            for _ in 0..check_count(b, j, n, 1)? {
                j = push(j)?;
            }
        }
        None => loop {
            match b.get(j) {
                Some(&BREAK) => {
                    j += 1;
                    break;
                }
                None => return Err(EOF),
                _ => j = push(j)?,
            }
        },
    }
    trailing(b, j)?;
    Ok(items)
}

/// A validated value that is an unsigned integer (major type 0), untagged.
pub(crate) fn uint_at(b: &[u8]) -> Option<u64> {
    match head(b, 0).ok()? {
        (0, _, Some(n), _) => Some(n),
        _ => None,
    }
}

/// A validated value that is a definite-length text string, borrowed from the frame.
pub(crate) fn str_at(b: &[u8]) -> Option<&str> {
    match head(b, 0).ok()? {
        (3, _, Some(n), j) => std::str::from_utf8(b.get(j..j.checked_add(n as usize)?)?).ok(),
        _ => None,
    }
}

pub(crate) fn peek_code(b: &[u8]) -> Option<u64> {
    let (major, _, arg, j) = head(b, untag(b, 0)?).ok()?;
    if major != 4 || arg == Some(0) {
        return None;
    }
    match head(b, untag(b, j)?).ok()? {
        (0, _, Some(n), _) => Some(n),
        _ => None,
    }
}

/// Checks that `b` is one value made only of portable values (no foreign tag or simple value).
pub(crate) fn validate(b: &[u8]) -> Result<(), CodecError> {
    let mut foreign = false;
    let (end, _) = skip(b, 0, 0, &mut foreign)?;
    trailing(b, end)?;
    if foreign {
        return Err(FOREIGN);
    }
    Ok(())
}

pub(crate) fn kind(b: &[u8]) -> Option<Kind> {
    let mut i = untag(b, 0)?;
    // A tag's kind is its content's (as the scanner says); chains are bounded like nesting.
    for _ in 0..MAX_DEPTH {
        let (major, ai, _, j) = head(b, i).ok()?;
        return Some(match major {
            0 => Kind::UInt,
            1 => Kind::NegInt,
            2 => Kind::Bin,
            3 => Kind::Str,
            4 => Kind::List,
            5 => Kind::Dict,
            6 => {
                i = j;
                continue;
            }
            7 => simple_kind(ai).unwrap_or(Kind::Null),
            _ => return None,
        });
    }
    None
}

pub(crate) fn map_get<'a>(b: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let (major, _, arg, mut j) = head(b, untag(b, 0)?).ok()?;
    if major != 5 {
        return None;
    }
    let mut left = arg;
    loop {
        match left {
            Some(0) => return None,
            Some(ref mut n) => *n -= 1,
            None if b.get(j) == Some(&BREAK) => return None,
            None => {}
        }
        let (k, kend) = decode_at(b, j, 1).ok()?;
        let (vend, _) = skip(b, kend, 1, &mut false).ok()?;
        if matches!(k, Val::Str(ref s) if s == key) {
            return Some(&b[kend..vend]);
        }
        j = vend;
    }
}

pub(crate) fn count(b: &[u8]) -> Option<usize> {
    let (major, _, arg, mut j) = head(b, untag(b, 0)?).ok()?;
    if major != 4 && major != 5 {
        return None;
    }
    if let Some(n) = arg {
        return usize::try_from(n).ok();
    }
    let mut n = 0;
    while b.get(j)? != &BREAK {
        if major == 5 {
            j = skip_key(b, j, 1).ok()?;
        }
        j = skip(b, j, 1, &mut false).ok()?.0;
        n += 1;
    }
    Some(n)
}

fn decode_at(b: &[u8], i: usize, depth: usize) -> Result<(Val<'_>, usize), CodecError> {
    let (major, ai, arg, j) = head(b, i)?;
    Ok(match (major, arg) {
        (0, Some(n)) => (Val::UInt(n), j),
        (1, Some(n)) => (Val::Int(-1 - i64::try_from(n).map_err(|_| BIG_NEG)?), j),
        (2, Some(n)) => {
            let s = body(b, j, n)?;
            (Val::Bytes(Cow::Borrowed(s)), j + s.len())
        }
        (3, Some(n)) => {
            let s = body(b, j, n)?;
            (Val::Str(Cow::Borrowed(utf8(s)?)), j + s.len())
        }
        (2 | 3, None) => {
            let (end, _) = skip_chunks(b, j, major)?;
            let mut buf = Vec::new();
            let mut k = j;
            while k + 1 < end {
                let (_, _, arg, c) = head(b, k)?;
                let s = body(b, c, arg.unwrap_or(0))?;
                buf.extend_from_slice(s);
                k = c + s.len();
            }
            let v = if major == 2 {
                Val::Bytes(Cow::Owned(buf))
            } else {
                Val::Str(Cow::Owned(
                    String::from_utf8(buf)
                        .map_err(|_| CodecError::Malformed("cbor: invalid utf-8"))?,
                ))
            };
            (v, end)
        }
        (4 | 5, _) => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            let pair = major == 5;
            let limit = match arg {
                Some(n) => Some(check_count(b, j, n, if pair { 2 } else { 1 })?),
                None => None,
            };
            let mut list = Vec::new();
            let mut entries = Vec::new();
            let mut k = j;
            let mut done = 0usize;
            loop {
                match limit {
                    Some(n) if done == n => break,
                    None if b.get(k) == Some(&BREAK) => {
                        k += 1;
                        break;
                    }
                    _ => {}
                }
                let (v, e) = decode_at(b, k, depth + 1)?;
                k = e;
                if pair {
                    let Val::Str(key) = v else {
                        return Err(CodecError::Malformed("cbor: map key is not a string"));
                    };
                    let (x, e) = decode_at(b, k, depth + 1)?;
                    entries.push((key, x));
                    k = e;
                } else {
                    list.push(v);
                }
                done += 1;
            }
            (
                if pair {
                    Val::Dict(entries)
                } else {
                    Val::List(list)
                },
                k,
            )
        }
        (6, Some(SELF_DESCRIBE)) => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            decode_at(b, j, depth + 1)?
        }
        // Foreign tags: the nearest portable value is the content.
        (6, _) => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            decode_at(b, j, depth + 1)?
        }
        (7, Some(x)) => {
            let v = match ai {
                20 => Val::Bool(false),
                21 => Val::Bool(true),
                22 | 23 => Val::Null,
                25..=27 => Val::Float(float_of(ai, x)),
                // Foreign simple values: their nearest portable value is null.
                _ => Val::Null,
            };
            (v, j)
        }
        _ => return Err(BAD),
    })
}

pub(crate) fn decode(b: &[u8]) -> Result<Val<'_>, CodecError> {
    let (v, end) = decode_at(b, 0, 0)?;
    trailing(b, end)?;
    Ok(v)
}

// ---- encoding ----------------------------------------------------------------

/// Writes an initial byte with the shortest argument encoding.
pub(crate) fn write_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    write_head(3, s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn encode_val(v: &Val<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
    match v {
        Val::Null => out.push(0xf6),
        Val::Bool(false) => out.push(0xf4),
        Val::Bool(true) => out.push(0xf5),
        Val::Int(n) if *n >= 0 => write_head(0, *n as u64, out),
        Val::Int(n) => write_head(1, !(*n) as u64, out),
        Val::UInt(n) => write_head(0, *n, out),
        Val::Float(f) => {
            out.push(0xfb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Val::Str(s) => write_str(s, out),
        Val::Bytes(b) => {
            write_head(2, b.len() as u64, out);
            out.extend_from_slice(b);
        }
        Val::List(l) => {
            write_head(4, l.len() as u64, out);
            for x in l {
                encode_val(x, out)?;
            }
        }
        Val::Dict(d) => {
            write_head(5, d.len() as u64, out);
            for (k, x) in d {
                write_str(k, out);
                encode_val(x, out)?;
            }
        }
        Val::Raw(p) => {
            if p.ser == Serializer::Cbor {
                out.extend_from_slice(p.bytes);
            } else {
                super::value::transcode(
                    Payload {
                        ser: p.ser,
                        bytes: p.bytes,
                    },
                    Serializer::Cbor,
                    out,
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_tags_and_floats() {
        // [_ 1, tag(55799) 2, (_ "a" "b"), {_ "k": h'01'}, 1.5 (half), undefined] with a break
        let b = [
            0x9f, 0x01, 0xd9, 0xd9, 0xf7, 0x02, 0x7f, 0x61, b'a', 0x61, b'b', 0xff, 0xbf, 0x61,
            b'k', 0x41, 1, 0xff, 0xf9, 0x3e, 0x00, 0xf7, 0xff,
        ];
        let items = split_array(&b).unwrap();
        assert_eq!(items.len(), 6);
        assert_eq!(decode(items[1].span).unwrap().as_u64(), Some(2));
        assert_eq!(decode(items[2].span).unwrap().as_str().unwrap(), "ab");
        let m = Val::Raw(Payload {
            ser: Serializer::Cbor,
            bytes: items[3].span,
        });
        assert!(m.is_dict());
        assert_eq!(m.dict_len(), Some(1));
        assert!(matches!(m.get("k"), Some(Val::Raw(p)) if p.bytes == [0x41, 1]));
        assert!(matches!(decode(items[4].span).unwrap(), Val::Float(f) if f == 1.5));
        assert!(decode(items[5].span).unwrap().is_null());
        assert_eq!(peek_code(&b), Some(1));
    }

    #[test]
    fn malformed() {
        assert!(validate(&[0x62, b'a']).is_err()); // truncated
        assert!(validate(&[0x61, 0xff]).is_err()); // bad utf-8
        assert!(validate(&[0x01, 0x01]).is_err()); // trailing
        assert!(validate(&[0x1c]).is_err()); // reserved ai
        assert!(validate(&[0xf0]).is_err()); // simple value 16
        assert!(validate(&[0xa1, 0x01, 0x02]).is_err()); // int key
        assert!(validate(&[0x7f, 0x41, 0x00, 0xff]).is_err()); // wrong chunk type
        assert!(validate(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(validate(&vec![0x81u8; 100_000]).is_err());
        let mut tags = [0xd9u8, 0xd9, 0xf7].repeat(100_000);
        tags.push(0x01);
        assert!(validate(&tags).is_err());
        assert!(decode(&vec![0x9fu8; 100_000]).is_err());
    }

    /// Values no other serializer could carry are refused, so a message never fails (or changes)
    /// when it is forwarded to a JSON or MessagePack peer.
    #[test]
    fn refuses_what_other_serializers_cannot_carry() {
        let refused: &[&[u8]] = &[
            &[0xc1, 0x02],                                           // tag 1 (epoch time): foreign
            &[0xc2, 0x41, 0x01],                                     // tag 2 (bignum): foreign
            &[0xd9, 0xd9, 0xf7, 0xc1, 0x02], // tag 1 behind a self-describe tag
            &[0xd8, 0x40, 0x63, b'a', b'b', b'c'], // tag 64 on text: foreign
            &[0xf0],                         // simple value 16: foreign
            &[0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0], // -2^63 - 1
            &[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // -2^64
            &[0xf9, 0x7c, 0x00],             // half infinity
            &[0xf9, 0x7e, 0x00],             // half NaN
            &[0xfa, 0xff, 0x80, 0, 0],       // single -infinity
            &[0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1], // double NaN
            &[0x62, 0x00, b'a'],             // text "\0a"
            &[0x7f, 0x60, 0x61, 0x00, 0xff], // indefinite text "" "\0"
            &[0x81, 0x61, 0x00],             // inside a list
            &[0xa1, 0x61, b'k', 0x61, 0x00], // as a map value
        ];
        for b in refused {
            assert!(validate(b).is_err(), "{b:02x?}");
        }
        assert!(split_array(&[0xc1, 0x81, 0x01]).is_err(), "tagged message");
        let accepted: &[&[u8]] = &[
            &[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // -2^63
            &[0xa1, 0x61, 0x00, 0x01], // a key starting with U+0000 is text in JSON too
            &[0xbf, 0x7f, 0x61, 0x00, 0xff, 0x01, 0xff],
            &[0x62, b'a', 0x00],          // U+0000 not in front
            &[0x40],                      // empty byte string
            &[0xf9, 0x7b, 0xff],          // largest half
            &[0xd8, 0x40, 0x43, 1, 2, 3], // a Uint8Array as some encoders write it
            &[0x81, 0xd8, 0x40, 0x5f, 0x41, 1, 0xff],
            &[0xd8, 0x40, 0xd9, 0xd9, 0xf7, 0x41, 0x01], // tag 64 on self-described bytes
        ];
        for b in accepted {
            assert!(validate(b).is_ok(), "{b:02x?}");
            assert!(decode(b).is_ok(), "{b:02x?}");
        }
        assert_eq!(count(&[0xbf, 0x61, 0x00, 0x01, 0xff]), Some(1));
        // Foreign values: found by the scanner, nearest portable value when decoded.
        let args = [
            0x83, 0x82, 0xc1, 0x1a, 0x65, 0x53, 0xf1, 0x00, 0xf0, 0x01, 0xa0,
        ];
        let items = split_array(&args).unwrap();
        assert!(items[0].foreign && items[0].kind == Kind::List);
        assert!(!items[1].foreign && !items[2].foreign);
        let list = decode(items[0].span).unwrap();
        assert!(
            matches!(&list, Val::List(v) if v[0].as_u64() == Some(0x6553_f100) && v[1].is_null())
        );
        assert_eq!(kind(&[0xc1, 0x02]), Some(Kind::UInt));
        let typed = [0xd8, 0x40, 0x43, 1, 2, 3];
        assert_eq!(kind(&typed), Some(Kind::Bin));
        assert!(matches!(decode(&typed).unwrap(), Val::Bytes(b) if b.as_ref() == [1, 2, 3]));
        assert_eq!(
            decode(&[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .unwrap()
                .as_i64(),
            Some(i64::MIN)
        );
    }
}
