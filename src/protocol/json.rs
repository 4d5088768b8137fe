//! JSON (RFC 8259) support.
//!
//! Parsing uses a validating skip scanner that only records spans: routing
//! needs the ids and URIs of a message, not its payload, so building a value
//! tree would be wasted work. Full decoding (for transcoding or inspection)
//! is a separate recursive decoder that borrows strings from the input
//! whenever they contain no escapes. Binary values follow the WAMP
//! convention: a string whose first character is U+0000 followed by base64.

use std::borrow::Cow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::value::{CodecError, Item, Items, Kind, Payload, Val, MAX_DEPTH};
use super::Serializer;

const EOF: CodecError = CodecError::Malformed("json: unexpected end of input");
const SYNTAX: CodecError = CodecError::Malformed("json: syntax error");
const DEEP: CodecError = CodecError::Malformed("json: nesting too deep");

/// Lenient about padding on input: peers differ in whether they pad.
const B64_IN: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[inline]
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

#[inline]
fn hex4(b: &[u8], i: usize) -> Result<u32, CodecError> {
    let s = b.get(i..i + 4).ok_or(EOF)?;
    let mut v = 0u32;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(CodecError::Malformed("json: bad \\u escape")),
        };
        v = (v << 4) | d as u32;
    }
    Ok(v)
}

/// Scans a string starting at the opening quote. Returns (index after the
/// closing quote, contains escapes, is a WAMP binary string).
fn string(b: &[u8], i: usize) -> Result<(usize, bool, bool), CodecError> {
    let start = i + 1;
    let mut j = start;
    let mut esc = false;
    loop {
        // Fast path over plain characters.
        while let Some(&c) = b.get(j) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                break;
            }
            j += 1;
        }
        match b.get(j) {
            None => return Err(EOF),
            Some(b'"') => break,
            Some(b'\\') => {
                esc = true;
                match b.get(j + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                    Some(b'u') => {
                        let cp = hex4(b, j + 2)?;
                        j += 6;
                        if (0xD800..0xDC00).contains(&cp) {
                            if b.get(j) != Some(&b'\\') || b.get(j + 1) != Some(&b'u') {
                                return Err(CodecError::Malformed("json: lone surrogate"));
                            }
                            let lo = hex4(b, j + 2)?;
                            if !(0xDC00..0xE000).contains(&lo) {
                                return Err(CodecError::Malformed("json: lone surrogate"));
                            }
                            j += 6;
                        } else if (0xDC00..0xE000).contains(&cp) {
                            return Err(CodecError::Malformed("json: lone surrogate"));
                        }
                    }
                    None => return Err(EOF),
                    _ => return Err(CodecError::Malformed("json: bad escape")),
                }
            }
            Some(_) => return Err(CodecError::Malformed("json: control character in string")),
        }
    }
    let content = &b[start..j];
    if std::str::from_utf8(content).is_err() {
        return Err(CodecError::Malformed("json: invalid utf-8"));
    }
    let bin = content.starts_with(b"\\u0000");
    Ok((j + 1, esc, bin))
}

fn digits(b: &[u8], mut i: usize) -> Result<usize, CodecError> {
    let s = i;
    while matches!(b.get(i), Some(b'0'..=b'9')) {
        i += 1;
    }
    if i == s {
        Err(SYNTAX)
    } else {
        Ok(i)
    }
}

fn number(b: &[u8], i: usize) -> Result<(usize, Kind), CodecError> {
    let mut j = i;
    let neg = b.get(j) == Some(&b'-');
    if neg {
        j += 1;
    }
    match b.get(j) {
        Some(b'0') => j += 1,
        Some(b'1'..=b'9') => j = digits(b, j)?,
        None => return Err(EOF),
        _ => return Err(SYNTAX),
    }
    let mut float = false;
    if b.get(j) == Some(&b'.') {
        float = true;
        j = digits(b, j + 1)?;
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        float = true;
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        j = digits(b, j)?;
    }
    let kind = if float {
        Kind::Float
    } else if neg {
        Kind::NegInt
    } else {
        Kind::UInt
    };
    Ok((j, kind))
}

fn literal(b: &[u8], i: usize, lit: &[u8], kind: Kind) -> Result<(usize, Kind), CodecError> {
    if b.get(i..i + lit.len()) == Some(lit) {
        Ok((i + lit.len(), kind))
    } else {
        Err(SYNTAX)
    }
}

/// Validates one value starting exactly at `i`; returns its end and kind.
fn skip(b: &[u8], i: usize, depth: usize) -> Result<(usize, Kind), CodecError> {
    match b.get(i) {
        None => Err(EOF),
        Some(b'{') => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            let mut j = ws(b, i + 1);
            if b.get(j) == Some(&b'}') {
                return Ok((j + 1, Kind::Dict));
            }
            loop {
                if b.get(j) != Some(&b'"') {
                    return Err(SYNTAX);
                }
                j = ws(b, string(b, j)?.0);
                if b.get(j) != Some(&b':') {
                    return Err(SYNTAX);
                }
                j = ws(b, j + 1);
                j = ws(b, skip(b, j, depth + 1)?.0);
                match b.get(j) {
                    Some(b',') => j = ws(b, j + 1),
                    Some(b'}') => return Ok((j + 1, Kind::Dict)),
                    None => return Err(EOF),
                    _ => return Err(SYNTAX),
                }
            }
        }
        Some(b'[') => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            let mut j = ws(b, i + 1);
            if b.get(j) == Some(&b']') {
                return Ok((j + 1, Kind::List));
            }
            loop {
                j = ws(b, skip(b, j, depth + 1)?.0);
                match b.get(j) {
                    Some(b',') => j = ws(b, j + 1),
                    Some(b']') => return Ok((j + 1, Kind::List)),
                    None => return Err(EOF),
                    _ => return Err(SYNTAX),
                }
            }
        }
        Some(b'"') => {
            let (end, _, bin) = string(b, i)?;
            if bin {
                check_binary(&b[i..end])?;
                return Ok((end, Kind::Bin));
            }
            Ok((end, Kind::Str))
        }
        Some(b't') => literal(b, i, b"true", Kind::Bool),
        Some(b'f') => literal(b, i, b"false", Kind::Bool),
        Some(b'n') => literal(b, i, b"null", Kind::Null),
        Some(b'-' | b'0'..=b'9') => {
            let (end, kind) = number(b, i)?;
            check_finite(&b[i..end], kind)?;
            Ok((end, kind))
        }
        Some(_) => Err(SYNTAX),
    }
}

/// A binary string must decode here: MessagePack and CBOR receivers get its bytes, so base64 that
/// cannot be decoded would only fail later, when the message is forwarded.
fn check_binary(tok: &[u8]) -> Result<(), CodecError> {
    const BAD_B64: CodecError = CodecError::Malformed("json: invalid base64 in binary string");
    // The token is `"\u0000...base64..."`.
    let rest = tok.get(7..tok.len().saturating_sub(1)).ok_or(BAD_B64)?;
    let ok = if rest.contains(&b'\\') {
        // Escapes inside the base64 (e.g. `\/`): check the unescaped text.
        let text = unescape(&tok[1..tok.len() - 1])?;
        b64_decodes(&text.as_bytes()[1..])
    } else {
        b64_decodes(rest)
    };
    if ok {
        Ok(())
    } else {
        Err(BAD_B64)
    }
}

/// Whether `s` decodes as base64 the way binary strings are decoded, without allocating: whole
/// groups of four characters decode independently, so the text is decoded in chunks into a stack
/// buffer; padding is only allowed in the last chunk.
fn b64_decodes(s: &[u8]) -> bool {
    const CHUNK: usize = 1024;
    let mut out = [0u8; CHUNK / 4 * 3];
    let mut rest = s;
    while rest.len() > CHUNK {
        let (head, tail) = rest.split_at(CHUNK);
        if head.contains(&b'=') || B64_IN.decode_slice(head, &mut out).is_err() {
            return false;
        }
        rest = tail;
    }
    B64_IN.decode_slice(rest, &mut out).is_ok()
}

/// A number must be finite as a double: that is how it reaches MessagePack and CBOR receivers, and
/// JSON has no infinity to send back. Only an exponent or more than 308 digits can overflow, so
/// ordinary numbers are not converted here.
fn check_finite(tok: &[u8], kind: Kind) -> Result<(), CodecError> {
    let may_overflow =
        tok.len() > 308 || (kind == Kind::Float && tok.iter().any(|c| c | 0x20 == b'e'));
    let finite = || {
        std::str::from_utf8(tok)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    };
    if may_overflow && !finite() {
        return Err(CodecError::Malformed(
            "json: number beyond the range of a double",
        ));
    }
    Ok(())
}

fn trailing(b: &[u8], end: usize) -> Result<(), CodecError> {
    if ws(b, end) == b.len() {
        Ok(())
    } else {
        Err(CodecError::Malformed("json: trailing bytes"))
    }
}

/// Splits a top-level array into validated element spans.
pub(crate) fn split_array(b: &[u8]) -> Result<Items<'_>, CodecError> {
    let mut items = Items::new();
    let mut j = ws(b, 0);
    match b.get(j) {
        Some(b'[') => {}
        None => return Err(EOF),
        _ => return Err(CodecError::Protocol("message is not an array".into())),
    }
    j = ws(b, j + 1);
    if b.get(j) == Some(&b']') {
        trailing(b, j + 1)?;
        return Ok(items);
    }
    loop {
        let (end, kind) = skip(b, j, 1)?;
        items.push(Item {
            kind,
            span: &b[j..end],
            foreign: false,
        });
        j = ws(b, end);
        match b.get(j) {
            Some(b',') => j = ws(b, j + 1),
            Some(b']') => break,
            None => return Err(EOF),
            _ => return Err(SYNTAX),
        }
    }
    trailing(b, j + 1)?;
    Ok(items)
}

/// Message code of a frame without validating the rest of it.
pub(crate) fn peek_code(b: &[u8]) -> Option<u64> {
    let j = ws(b, 0);
    if b.get(j) != Some(&b'[') {
        return None;
    }
    let j = ws(b, j + 1);
    let (end, kind) = number(b, j).ok()?;
    if kind != Kind::UInt {
        return None;
    }
    parse_u64(&b[j..end])
}

pub(crate) fn validate(b: &[u8]) -> Result<(), CodecError> {
    let j = ws(b, 0);
    let (end, _) = skip(b, j, 0)?;
    trailing(b, end)
}

/// Kind of an already validated value (first byte decides it).
pub(crate) fn kind(b: &[u8]) -> Option<Kind> {
    let j = ws(b, 0);
    Some(match b.get(j)? {
        b'{' => Kind::Dict,
        b'[' => Kind::List,
        b'"' => {
            if b.get(j + 1..j + 7) == Some(b"\\u0000") {
                Kind::Bin
            } else {
                Kind::Str
            }
        }
        b't' | b'f' => Kind::Bool,
        b'n' => Kind::Null,
        _ => number(b, j).ok()?.1,
    })
}

/// Finds `key` in a validated object and returns the span of its value.
pub(crate) fn map_get<'a>(b: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let mut j = ws(b, 0);
    if b.get(j) != Some(&b'{') {
        return None;
    }
    j = ws(b, j + 1);
    if b.get(j) == Some(&b'}') {
        return None;
    }
    loop {
        let (kend, esc, _) = string(b, j).ok()?;
        let k = &b[j + 1..kend - 1];
        let hit = if esc {
            unescape(k).ok()? == key
        } else {
            k == key.as_bytes()
        };
        j = ws(b, kend);
        if b.get(j) != Some(&b':') {
            return None;
        }
        j = ws(b, j + 1);
        let (vend, _) = skip(b, j, 1).ok()?;
        if hit {
            return Some(&b[j..vend]);
        }
        j = ws(b, vend);
        match b.get(j) {
            Some(b',') => j = ws(b, j + 1),
            _ => return None,
        }
    }
}

/// Number of elements of a validated array or entries of an object.
pub(crate) fn count(b: &[u8]) -> Option<usize> {
    let mut j = ws(b, 0);
    let close = match b.get(j)? {
        b'{' => b'}',
        b'[' => b']',
        _ => return None,
    };
    j = ws(b, j + 1);
    if b.get(j) == Some(&close) {
        return Some(0);
    }
    let mut n = 0;
    loop {
        let end = if close == b'}' {
            string(b, j).ok()?.0
        } else {
            skip(b, j, 1).ok()?.0
        };
        j = ws(b, end);
        if close == b'}' {
            if b.get(j) != Some(&b':') {
                return None;
            }
            j = ws(b, skip(b, ws(b, j + 1), 1).ok()?.0);
        }
        n += 1;
        match b.get(j)? {
            b',' => j = ws(b, j + 1),
            c if *c == close => return Some(n),
            _ => return None,
        }
    }
}

// ---- decoding ----------------------------------------------------------------

fn parse_u64(d: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &c in d {
        v = v
            .checked_mul(10)?
            .checked_add((c.wrapping_sub(b'0')) as u64)?;
    }
    Some(v)
}

/// Decodes escapes of string content (without quotes); content was validated.
fn unescape(s: &[u8]) -> Result<String, CodecError> {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let run = i;
        while i < s.len() && s[i] != b'\\' {
            i += 1;
        }
        out.push_str(
            std::str::from_utf8(&s[run..i])
                .map_err(|_| CodecError::Malformed("json: invalid utf-8"))?,
        );
        if i >= s.len() {
            break;
        }
        let c = *s.get(i + 1).ok_or(EOF)?;
        i += 2;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let mut cp = hex4(s, i)?;
                i += 4;
                if (0xD800..0xDC00).contains(&cp) {
                    if s.get(i) != Some(&b'\\') || s.get(i + 1) != Some(&b'u') {
                        return Err(CodecError::Malformed("json: lone surrogate"));
                    }
                    let lo = hex4(s, i + 2)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(CodecError::Malformed("json: lone surrogate"));
                    }
                    i += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                char::from_u32(cp).ok_or(CodecError::Malformed("json: lone surrogate"))?
            }
            _ => return Err(CodecError::Malformed("json: bad escape")),
        };
        out.push(ch);
    }
    Ok(out)
}

/// A validated number token that is a plain non-negative integer (the common case for ids).
pub(crate) fn uint_token(tok: &[u8]) -> Option<u64> {
    if tok.is_empty() || !tok.iter().all(u8::is_ascii_digit) {
        return None;
    }
    parse_u64(tok)
}

/// Decodes a validated string token (with quotes) into text.
pub(crate) fn decode_string(tok: &[u8]) -> Result<Cow<'_, str>, CodecError> {
    let content = tok
        .get(1..tok.len().saturating_sub(1))
        .ok_or(CodecError::Malformed("json: bad string"))?;
    if content.contains(&b'\\') {
        Ok(Cow::Owned(unescape(content)?))
    } else {
        std::str::from_utf8(content)
            .map(Cow::Borrowed)
            .map_err(|_| CodecError::Malformed("json: invalid utf-8"))
    }
}

fn string_val(tok: &[u8]) -> Result<Val<'_>, CodecError> {
    let s = decode_string(tok)?;
    if let Some(rest) = s.strip_prefix('\0') {
        let bytes = B64_IN
            .decode(rest)
            .map_err(|_| CodecError::Malformed("json: invalid base64 in binary string"))?;
        return Ok(Val::Bytes(Cow::Owned(bytes)));
    }
    Ok(Val::Str(s))
}

fn number_val(tok: &[u8], kind: Kind) -> Result<Val<'_>, CodecError> {
    let as_float = |t: &[u8]| {
        std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .map(Val::Float)
            .ok_or(CodecError::Malformed("json: bad number"))
    };
    match kind {
        Kind::UInt => match parse_u64(tok) {
            Some(v) => Ok(Val::UInt(v)),
            None => as_float(tok),
        },
        Kind::NegInt => match parse_u64(&tok[1..]) {
            Some(v) if v <= i64::MAX as u64 + 1 => Ok(Val::Int((v as i64).wrapping_neg())),
            _ => as_float(tok),
        },
        _ => as_float(tok),
    }
}

fn decode_at(b: &[u8], i: usize, depth: usize) -> Result<(Val<'_>, usize), CodecError> {
    match b.get(i) {
        Some(b'{') => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            let mut entries = Vec::new();
            let mut j = ws(b, i + 1);
            if b.get(j) == Some(&b'}') {
                return Ok((Val::Dict(entries), j + 1));
            }
            loop {
                if b.get(j) != Some(&b'"') {
                    return Err(SYNTAX);
                }
                let (kend, _, _) = string(b, j)?;
                let key = decode_string(&b[j..kend])?;
                j = ws(b, kend);
                if b.get(j) != Some(&b':') {
                    return Err(SYNTAX);
                }
                let (v, vend) = decode_at(b, ws(b, j + 1), depth + 1)?;
                entries.push((key, v));
                j = ws(b, vend);
                match b.get(j) {
                    Some(b',') => j = ws(b, j + 1),
                    Some(b'}') => return Ok((Val::Dict(entries), j + 1)),
                    None => return Err(EOF),
                    _ => return Err(SYNTAX),
                }
            }
        }
        Some(b'[') => {
            if depth >= MAX_DEPTH {
                return Err(DEEP);
            }
            let mut list = Vec::new();
            let mut j = ws(b, i + 1);
            if b.get(j) == Some(&b']') {
                return Ok((Val::List(list), j + 1));
            }
            loop {
                let (v, vend) = decode_at(b, j, depth + 1)?;
                list.push(v);
                j = ws(b, vend);
                match b.get(j) {
                    Some(b',') => j = ws(b, j + 1),
                    Some(b']') => return Ok((Val::List(list), j + 1)),
                    None => return Err(EOF),
                    _ => return Err(SYNTAX),
                }
            }
        }
        Some(b'"') => {
            let (end, _, _) = string(b, i)?;
            Ok((string_val(&b[i..end])?, end))
        }
        Some(b't') => Ok((Val::Bool(true), literal(b, i, b"true", Kind::Bool)?.0)),
        Some(b'f') => Ok((Val::Bool(false), literal(b, i, b"false", Kind::Bool)?.0)),
        Some(b'n') => Ok((Val::Null, literal(b, i, b"null", Kind::Null)?.0)),
        Some(b'-' | b'0'..=b'9') => {
            let (end, kind) = number(b, i)?;
            Ok((number_val(&b[i..end], kind)?, end))
        }
        None => Err(EOF),
        Some(_) => Err(SYNTAX),
    }
}

/// Full decode of exactly one value.
pub(crate) fn decode(b: &[u8]) -> Result<Val<'_>, CodecError> {
    let (v, end) = decode_at(b, ws(b, 0), 0)?;
    trailing(b, end)?;
    Ok(v)
}

// ---- encoding ----------------------------------------------------------------

pub(crate) fn write_u64(mut n: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn write_i64(n: i64, out: &mut Vec<u8>) {
    if n < 0 {
        out.push(b'-');
    }
    write_u64(n.unsigned_abs(), out);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut run = 0;
    for (i, &c) in b.iter().enumerate() {
        if c >= 0x20 && c != b'"' && c != b'\\' {
            continue;
        }
        out.extend_from_slice(&b[run..i]);
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ]),
        }
        run = i + 1;
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

fn write_bytes(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"\"\\u0000");
    let start = out.len();
    out.resize(start + data.len().div_ceil(3) * 4, 0);
    // The buffer is sized exactly for padded output, so encoding cannot fail.
    let n = STANDARD.encode_slice(data, &mut out[start..]).unwrap_or(0);
    out.truncate(start + n);
    out.push(b'"');
}

fn write_f64(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() {
        // Debug formatting keeps a fraction or exponent, so the value stays a float.
        use std::io::Write;
        let _ = write!(out, "{f:?}");
    } else {
        out.extend_from_slice(b"null");
    }
}

pub(crate) fn encode_val(v: &Val<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
    match v {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(true) => out.extend_from_slice(b"true"),
        Val::Bool(false) => out.extend_from_slice(b"false"),
        Val::Int(n) => write_i64(*n, out),
        Val::UInt(n) => write_u64(*n, out),
        Val::Float(f) => write_f64(*f, out),
        Val::Str(s) => write_str(s, out),
        Val::Bytes(b) => write_bytes(b, out),
        Val::List(l) => {
            out.push(b'[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_val(x, out)?;
            }
            out.push(b']');
        }
        Val::Dict(d) => {
            out.push(b'{');
            for (i, (k, x)) in d.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                encode_val(x, out)?;
            }
            out.push(b'}');
        }
        Val::Raw(p) => {
            if p.ser == Serializer::Json {
                out.extend_from_slice(p.bytes);
            } else {
                super::value::transcode(
                    Payload {
                        ser: p.ser,
                        bytes: p.bytes,
                    },
                    Serializer::Json,
                    out,
                )?;
            }
        }
    }
    Ok(())
}

/// Full decode through simd-json's tape, for transcoding JSON payloads into another serializer:
/// simd-json finds the structure with SIMD and leaves a flat tape that is turned into values in one
/// pass. `f` receives the value; it borrows a thread-local scratch copy of the input (simd-json parses
/// in place), so it cannot outlive the call.
pub(crate) fn with_decoded_simd<R>(
    b: &[u8],
    f: impl FnOnce(&Val<'_>) -> Result<R, CodecError>,
) -> Result<R, CodecError> {
    use std::cell::RefCell;
    thread_local! {
        static SCRATCH: RefCell<(Vec<u8>, simd_json::Buffers)> =
            RefCell::new((Vec::new(), simd_json::Buffers::default()));
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let (copy, buffers) = &mut *scratch;
        copy.clear();
        copy.extend_from_slice(b);
        let tape = simd_json::to_tape_with_buffers(copy, buffers)
            .map_err(|_| CodecError::Malformed("json: invalid document"))?;
        let mut i = 0;
        let v = tape_val(&tape.0, &mut i, 0)?;
        f(&v)
    })
}

fn tape_val<'t>(
    nodes: &[simd_json::Node<'t>],
    i: &mut usize,
    depth: usize,
) -> Result<Val<'t>, CodecError> {
    use simd_json::{Node, StaticNode};
    if depth > crate::protocol::value::MAX_DEPTH {
        return Err(CodecError::Malformed("json: nesting too deep"));
    }
    let node = nodes
        .get(*i)
        .ok_or(CodecError::Malformed("json: truncated tape"))?;
    *i += 1;
    Ok(match *node {
        Node::String(s) => {
            match s.strip_prefix('\0') {
                Some(rest) => Val::Bytes(Cow::Owned(B64_IN.decode(rest).map_err(|_| {
                    CodecError::Malformed("json: invalid base64 in binary string")
                })?)),
                None => Val::Str(Cow::Borrowed(s)),
            }
        }
        Node::Static(StaticNode::Null) => Val::Null,
        Node::Static(StaticNode::Bool(b)) => Val::Bool(b),
        Node::Static(StaticNode::I64(n)) => {
            if n >= 0 {
                Val::UInt(n as u64)
            } else {
                Val::Int(n)
            }
        }
        Node::Static(StaticNode::U64(n)) => Val::UInt(n),
        Node::Static(StaticNode::F64(x)) => Val::Float(x),
        Node::Array { len, .. } => {
            let mut items = Vec::with_capacity(len);
            for _ in 0..len {
                items.push(tape_val(nodes, i, depth + 1)?);
            }
            Val::List(items)
        }
        Node::Object { len, .. } => {
            let mut entries = Vec::with_capacity(len);
            for _ in 0..len {
                let key = match nodes.get(*i) {
                    Some(Node::String(k)) => Cow::Borrowed(*k),
                    _ => return Err(CodecError::Malformed("json: object key is not a string")),
                };
                *i += 1;
                entries.push((key, tape_val(nodes, i, depth + 1)?));
            }
            Val::Dict(entries)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_surrogates() {
        let v = decode(br#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#).unwrap();
        assert_eq!(
            v.as_str().unwrap(),
            "a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{1F600}"
        );
        assert!(validate(br#""\ud83d""#).is_err());
        assert!(validate(br#""\ude00""#).is_err());
        assert!(validate(br#""\ud83d\u0041""#).is_err());
        assert!(validate(br#""\x""#).is_err());
        assert!(validate(b"\"a\x01\"").is_err());
        assert!(validate(b"\"\xff\"").is_err());
        // Unescaped strings are borrowed from the input.
        let b = br#"  "plain"  "#;
        match decode(b).unwrap() {
            Val::Str(Cow::Borrowed(s)) => assert_eq!(s, "plain"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writer_escapes_round_trip() {
        let s = "q\"b\\n\n\u{1}\u{1f}é😀";
        let mut out = Vec::new();
        write_str(s, &mut out);
        assert_eq!(&out, "\"q\\\"b\\\\n\\n\\u0001\\u001fé😀\"".as_bytes());
        assert_eq!(decode(&out).unwrap().as_str().unwrap(), s);
    }

    #[test]
    fn numbers() {
        assert_eq!(
            decode(b"18446744073709551615").unwrap().as_u64(),
            Some(u64::MAX)
        );
        assert!(matches!(
            decode(b"18446744073709551616").unwrap(),
            Val::Float(_)
        ));
        assert_eq!(
            decode(b"-9223372036854775808").unwrap().as_i64(),
            Some(i64::MIN)
        );
        assert!(matches!(decode(b"1.5e3").unwrap(), Val::Float(f) if f == 1500.0));
        for bad in [
            &b"01"[..],
            b"-",
            b"1.",
            b".5",
            b"1e",
            b"+1",
            b"0x10",
            b"1 2",
        ] {
            assert!(validate(bad).is_err(), "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn malformed_inputs() {
        for bad in [
            &b"[1,2"[..],
            b"[1,2]x",
            b"[1,]",
            b"{\"a\" 1}",
            b"{1:2}",
            b"[tru]",
            b"",
            b"[\"abc",
        ] {
            assert!(split_array(bad).is_err() || validate(bad).is_err());
        }
        let deep = vec![b'['; 100_000];
        assert!(split_array(&deep).is_err());
        assert!(decode(&deep).is_err());
        let mut deep_ok = vec![b'['; 100];
        deep_ok.extend(vec![b']'; 100]);
        assert!(validate(&deep_ok).is_ok());
    }

    /// Values no other serializer could carry are refused, so a message never fails (or changes)
    /// when it is forwarded to a MessagePack or CBOR peer.
    #[test]
    fn refuses_what_other_serializers_cannot_carry() {
        let refused: &[&[u8]] = &[
            br#""\u0000!!""#,              // not base64
            br#""\u0000AQJ""#,             // trailing bits set
            br#""\u0000A""#,               // impossible length
            br#""\u0000AQ==AQ==""#,        // padding inside
            br#""\u0000AQ\u003d\u003d=""#, // escaped padding, one too many
            br#"[1, "\u0000 AQID"]"#,      // inside a list
            br#"{"k": "\u0000@"}"#,        // as a map value
            b"1e400",
            b"-1e400",
            b"0.2e310",
        ];
        for b in refused {
            assert!(validate(b).is_err(), "{}", String::from_utf8_lossy(b));
        }
        let long_int = "9".repeat(400);
        assert!(validate(long_int.as_bytes()).is_err(), "400-digit integer");
        let accepted: &[&[u8]] = &[
            br#""\u0000""#,
            br#""\u0000AQID""#,
            br#""\u0000AQ""#,
            br#""\u0000AQ==""#,
            br#""\u0000AQ\u003d\u003d""#,
            br#""\u0000\/w==""#,   // an escaped slash is still base64
            br#"{"\u0000!!": 1}"#, // keys are text, whatever they start with
            b"1e308",
            b"1e-400",
            b"123456789012345678901234567890",
        ];
        for b in accepted {
            assert!(validate(b).is_ok(), "{}", String::from_utf8_lossy(b));
            assert!(decode(b).is_ok(), "{}", String::from_utf8_lossy(b));
        }
        assert_eq!(count(br#"{"\u0000!!": 1, "b": 2}"#), Some(2));
        assert!(
            matches!(decode(br#""\u0000\/w==""#).unwrap(), Val::Bytes(b) if b.as_ref() == [0xff])
        );
    }

    /// The chunked check agrees with decoding, across chunk boundaries too.
    #[test]
    fn b64_check_agrees_with_the_decoder() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        let alphabet = b"AQ/+=-_ ";
        for len in 0..=5 {
            let total = alphabet.len().pow(len as u32);
            for mut n in 0..total {
                let mut v = Vec::with_capacity(len);
                for _ in 0..len {
                    v.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                cases.push(v);
            }
        }
        for len in [1020, 1023, 1024, 1025, 1028, 2048, 2050, 3000] {
            let mut v = vec![b'A'; len];
            cases.push(v.clone());
            v[len / 2] = b'=';
            cases.push(v.clone());
            v[len / 2] = b'A';
            v[len - 1] = b'=';
            cases.push(v.clone());
            v[len - 2] = b'=';
            cases.push(v);
        }
        for c in cases {
            assert_eq!(
                b64_decodes(&c),
                B64_IN.decode(&c).is_ok(),
                "{}",
                String::from_utf8_lossy(&c)
            );
        }
    }

    #[test]
    fn binary_strings() {
        let v = decode(br#""\u0000AQID""#).unwrap();
        assert!(matches!(v, Val::Bytes(ref b) if b.as_ref() == [1, 2, 3]));
        assert_eq!(kind(br#""\u0000AQID""#), Some(Kind::Bin));
        let mut out = Vec::new();
        encode_val(&Val::Bytes(Cow::Borrowed(&[1, 2, 3, 4])), &mut out).unwrap();
        assert_eq!(out, br#""\u0000AQIDBA==""#);
    }
}
