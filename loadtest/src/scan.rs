//! Light reading of a received EVENT, RESULT or INVOCATION: the few fields wampload checks (message
//! code, the ids after it, `Details.topic`, the three leading integers of `Arguments`), found by
//! walking the frame once without validating or decoding the rest.
//!
//! A full validated parse costs more than the socket read of a small EVENT, so a generator that
//! parses everything measures itself. Anything this scanner does not recognise (another message, an
//! unusual encoding) yields `None` and the caller falls back to the full parse, which sees the same
//! fields: the scan decides how fast a frame is read, never what is concluded from it.

use std::borrow::Cow;

use wampd::protocol::Serializer;

use crate::session::lead_u64s;

pub const EVENT: u64 = 36;
pub const RESULT: u64 = 50;
pub const INVOCATION: u64 = 68;

/// Nesting a skipped value may have (Details are flat in practice).
const MAX_DEPTH: usize = 16;

/// The fields of one message that the checks need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lead<'a> {
    pub code: u64,
    /// EVENT: subscription, publication. RESULT: request, 0. INVOCATION: request, registration.
    pub ids: [u64; 2],
    /// `Details.topic` (raw string bytes) when present.
    pub topic: Option<Cow<'a, [u8]>>,
    /// The first three integers of `Arguments`.
    pub args: [u64; 3],
}

/// How many ids follow the code before the Details dict.
fn id_count(code: u64) -> Option<usize> {
    match code {
        EVENT | INVOCATION => Some(2),
        RESULT => Some(1),
        _ => None,
    }
}

/// Scans an EVENT, RESULT or INVOCATION; `None` for anything else or any unexpected shape.
/// Inlined so that the result is read in place: copying it out of a returned struct costs more
/// than the scan itself.
#[inline(always)]
pub fn scan(ser: Serializer, frame: &[u8]) -> Option<Lead<'_>> {
    match ser {
        Serializer::MsgPack => mp_usual(frame).or_else(|| scan_with(Mp { b: frame, i: 0 }, ser)),
        Serializer::Cbor => cb_usual(frame).or_else(|| scan_with(Cb { b: frame, i: 0 }, ser)),
        Serializer::Json => scan_with(
            Js {
                b: frame,
                i: 0,
                first: true,
            },
            ser,
        ),
    }
}

fn scan_with<'a, C: Cursor<'a>>(mut c: C, ser: Serializer) -> Option<Lead<'a>> {
    let len = c.list()?;
    let code = c.uint()?;
    let n = id_count(code)?;
    if len < (n + 3) as u64 {
        return None; // no Arguments
    }
    let mut ids = [0u64; 2];
    for id in ids.iter_mut().take(n) {
        *id = c.uint()?;
    }
    let topic = c.dict_topic()?.map(Cow::Borrowed);
    let args = lead_u64s::<3>(ser, c.rest())?;
    Some(Lead {
        code,
        ids,
        topic,
        args,
    })
}

/// The usual MessagePack shape, read straight through (about twice as fast as the general walk):
/// a short list, the code, its ids, empty Details, then a short `Arguments` list of integers.
#[inline(always)]
fn mp_usual(b: &[u8]) -> Option<Lead<'_>> {
    let mut i = 1;
    let len = match *b.first()? {
        t @ 0x90..=0x9f => (t & 0x0f) as usize,
        _ => return None,
    };
    let code = mp_uint(b, &mut i)?;
    let n = id_count(code)?;
    let mut ids = [0u64; 2];
    for id in ids.iter_mut().take(n) {
        *id = mp_uint(b, &mut i)?;
    }
    if len < n + 3 || *b.get(i)? != 0x80 || !matches!(*b.get(i + 1)?, 0x93..=0x9f) {
        return None;
    }
    i += 2;
    let args = [
        mp_uint(b, &mut i)?,
        mp_uint(b, &mut i)?,
        mp_uint(b, &mut i)?,
    ];
    Some(Lead {
        code,
        ids,
        topic: None,
        args,
    })
}

/// A MessagePack unsigned integer at `b[*i..]`.
#[inline(always)]
fn mp_uint(b: &[u8], i: &mut usize) -> Option<u64> {
    let t = *b.get(*i)?;
    *i += 1;
    let n = match t {
        0x00..=0x7f => return Some(t as u64),
        0xcc => 1,
        0xcd => 2,
        0xce => 4,
        0xcf => 8,
        _ => return None,
    };
    let v = be(b, *i, n)?;
    *i += n;
    Some(v)
}

/// The usual CBOR shape, as [`mp_usual`].
#[inline(always)]
fn cb_usual(b: &[u8]) -> Option<Lead<'_>> {
    let mut i = 1;
    let len = match *b.first()? {
        t @ 0x80..=0x97 => (t & 0x1f) as usize,
        _ => return None,
    };
    let code = cb_uint(b, &mut i)?;
    let n = id_count(code)?;
    let mut ids = [0u64; 2];
    for id in ids.iter_mut().take(n) {
        *id = cb_uint(b, &mut i)?;
    }
    if len < n + 3 || *b.get(i)? != 0xa0 || !matches!(*b.get(i + 1)?, 0x83..=0x97) {
        return None;
    }
    i += 2;
    let args = [
        cb_uint(b, &mut i)?,
        cb_uint(b, &mut i)?,
        cb_uint(b, &mut i)?,
    ];
    Some(Lead {
        code,
        ids,
        topic: None,
        args,
    })
}

/// A CBOR unsigned integer (major type 0) at `b[*i..]`.
#[inline(always)]
fn cb_uint(b: &[u8], i: &mut usize) -> Option<u64> {
    let t = *b.get(*i)?;
    *i += 1;
    let n = match t {
        0x00..=0x17 => return Some(t as u64),
        0x18..=0x1b => 1usize << (t - 0x18),
        _ => return None,
    };
    let v = be(b, *i, n)?;
    *i += n;
    Some(v)
}

/// One serializer's view of the frame, from the front.
trait Cursor<'a> {
    /// Enters a list; its length (`u64::MAX` when the encoding does not say).
    fn list(&mut self) -> Option<u64>;
    fn uint(&mut self) -> Option<u64>;
    /// Reads a whole dict and returns its `topic` entry, if it has one.
    fn dict_topic(&mut self) -> Option<Option<&'a [u8]>>;
    /// What follows the last value read (the next list element).
    fn rest(&self) -> &'a [u8];
}

/// Big-endian unsigned integer of `n` (1, 2, 4 or 8) bytes at `b[i..]`.
#[inline(always)]
fn be(b: &[u8], i: usize, n: usize) -> Option<u64> {
    let s = b.get(i..i.checked_add(n)?)?;
    Some(match n {
        1 => s[0] as u64,
        2 => u16::from_be_bytes([s[0], s[1]]) as u64,
        4 => u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as u64,
        8 => u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]),
        _ => s.iter().fold(0u64, |v, &x| (v << 8) | x as u64),
    })
}

// ---------------------------------------------------------------------------------------------
// MessagePack

struct Mp<'a> {
    b: &'a [u8],
    i: usize,
}

impl Mp<'_> {
    #[inline]
    fn byte(&mut self) -> Option<u8> {
        let t = *self.b.get(self.i)?;
        self.i += 1;
        Some(t)
    }

    /// Reads an `n`-byte big-endian length or value.
    #[inline]
    fn be(&mut self, n: usize) -> Option<u64> {
        let v = be(self.b, self.i, n)?;
        self.i += n;
        Some(v)
    }

    /// A string header: the length of the string that follows.
    fn str_len(&mut self) -> Option<usize> {
        let len = match self.byte()? {
            t @ 0xa0..=0xbf => (t & 0x1f) as u64,
            0xd9 => self.be(1)?,
            0xda => self.be(2)?,
            0xdb => self.be(4)?,
            _ => return None,
        };
        Some(len as usize)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }

    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let t = self.byte()?;
        let (bytes, items) = match t {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * (t & 0x0f) as u64),
            0x90..=0x9f => (0, (t & 0x0f) as u64),
            0xa0..=0xbf => ((t & 0x1f) as u64, 0),
            0xc4 | 0xd9 => (self.be(1)?, 0),
            0xc5 | 0xda => (self.be(2)?, 0),
            0xc6 | 0xdb => (self.be(4)?, 0),
            0xc7 => (self.be(1)? + 1, 0),
            0xc8 => (self.be(2)? + 1, 0),
            0xc9 => (self.be(4)? + 1, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, self.be(2)?),
            0xdd => (0, self.be(4)?),
            0xde => (0, 2 * self.be(2)?),
            0xdf => (0, 2 * self.be(4)?),
            _ => return None, // 0xc1: never used
        };
        self.take(usize::try_from(bytes).ok()?)?;
        for _ in 0..items {
            self.skip(depth + 1)?;
        }
        Some(())
    }
}

impl<'a> Cursor<'a> for Mp<'a> {
    #[inline]
    fn list(&mut self) -> Option<u64> {
        match self.byte()? {
            t @ 0x90..=0x9f => Some((t & 0x0f) as u64),
            0xdc => self.be(2),
            0xdd => self.be(4),
            _ => None,
        }
    }

    #[inline]
    fn uint(&mut self) -> Option<u64> {
        let n = match self.byte()? {
            t @ 0x00..=0x7f => return Some(t as u64),
            0xcc => 1,
            0xcd => 2,
            0xce => 4,
            0xcf => 8,
            _ => return None, // signed encodings of ids are legal but unusual: full parse
        };
        self.be(n)
    }

    #[inline]
    fn dict_topic(&mut self) -> Option<Option<&'a [u8]>> {
        if self.b.get(self.i) == Some(&0x80) {
            self.i += 1;
            return Some(None); // the usual empty Details
        }
        let n = match self.byte()? {
            t @ 0x80..=0x8f => (t & 0x0f) as u64,
            0xde => self.be(2)?,
            0xdf => self.be(4)?,
            _ => return None,
        };
        let mut topic = None;
        for _ in 0..n {
            let klen = self.str_len()?;
            let b = self.b;
            let key = b.get(self.i..self.i.checked_add(klen)?)?;
            self.i += klen;
            if key == b"topic" {
                let vlen = self.str_len()?;
                let v = b.get(self.i..self.i.checked_add(vlen)?)?;
                self.i += vlen;
                topic = Some(v);
            } else {
                self.skip(0)?;
            }
        }
        Some(topic)
    }

    #[inline]
    fn rest(&self) -> &'a [u8] {
        self.b.get(self.i..).unwrap_or(&[])
    }
}

// ---------------------------------------------------------------------------------------------
// CBOR

struct Cb<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cb<'_> {
    /// A data item head: (major type, argument). Indefinite lengths are declined (`None`).
    fn head(&mut self) -> Option<(u8, u64)> {
        let t = *self.b.get(self.i)?;
        self.i += 1;
        let (major, ai) = (t >> 5, t & 0x1f);
        let v = match ai {
            0..=23 => ai as u64,
            24..=27 => {
                let n = 1usize << (ai - 24);
                let v = be(self.b, self.i, n)?;
                self.i += n;
                v
            }
            _ => return None,
        };
        Some((major, v))
    }

    fn take(&mut self, n: u64) -> Option<&[u8]> {
        let n = usize::try_from(n).ok()?;
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }

    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (major, v) = self.head()?;
        match major {
            0 | 1 | 7 => Some(()), // ints, simple values and floats: the head is the whole item
            2 | 3 => self.take(v).map(|_| ()),
            4 | 5 => {
                let items = if major == 5 { v.checked_mul(2)? } else { v };
                for _ in 0..items {
                    self.skip(depth + 1)?;
                }
                Some(())
            }
            _ => self.skip(depth + 1), // tag: one item follows
        }
    }
}

impl<'a> Cursor<'a> for Cb<'a> {
    fn list(&mut self) -> Option<u64> {
        match *self.b.get(self.i)? {
            0x9f => {
                self.i += 1;
                Some(u64::MAX)
            }
            _ => match self.head()? {
                (4, n) => Some(n),
                _ => None,
            },
        }
    }

    fn uint(&mut self) -> Option<u64> {
        match self.head()? {
            (0, v) => Some(v),
            _ => None,
        }
    }

    fn dict_topic(&mut self) -> Option<Option<&'a [u8]>> {
        let (5, n) = self.head()? else {
            return None;
        };
        let mut topic = None;
        for _ in 0..n {
            let (3, klen) = self.head()? else {
                return None;
            };
            let b = self.b;
            let start = self.i;
            self.take(klen)?;
            if &b[start..self.i] == b"topic" {
                let (3, vlen) = self.head()? else {
                    return None;
                };
                let vstart = self.i;
                self.take(vlen)?;
                topic = Some(&b[vstart..self.i]);
            } else {
                self.skip(0)?;
            }
        }
        Some(topic)
    }

    fn rest(&self) -> &'a [u8] {
        self.b.get(self.i..).unwrap_or(&[])
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

struct Js<'a> {
    b: &'a [u8],
    i: usize,
    /// The next value is the first element of the list (no `,` before it).
    first: bool,
}

impl<'a> Js<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Consumes `c` after optional whitespace.
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// A list separator: `,` before every element but the first.
    fn sep(&mut self, first: bool) -> Option<()> {
        if !first {
            self.eat(b',')?;
        }
        self.ws();
        Some(())
    }

    /// A string without escapes (an escaped key or topic is left to the full parse).
    fn plain_str(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let b = self.b;
        let start = self.i;
        let len = b
            .get(start..)?
            .iter()
            .position(|&c| c == b'"' || c == b'\\')?;
        self.i = start + len;
        if b[self.i] == b'\\' {
            return None;
        }
        self.i += 1;
        Some(&b[start..start + len])
    }

    /// Skips any value: strings with escapes, nested lists and dicts, numbers and literals.
    fn skip(&mut self) -> Option<()> {
        self.ws();
        match *self.b.get(self.i)? {
            b'"' => self.skip_str(),
            b'[' | b'{' => self.skip_nested(),
            _ => {
                while let Some(c) = self.b.get(self.i) {
                    if matches!(c, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.i += 1;
                }
                Some(())
            }
        }
    }

    fn skip_nested(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.skip_str()?;
                    continue;
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return None;
                    }
                }
                b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
    }

    fn skip_str(&mut self) -> Option<()> {
        self.i += 1; // opening quote
        loop {
            match *self.b.get(self.i)? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                _ => self.i += 1,
            }
        }
    }
}

impl<'a> Cursor<'a> for Js<'a> {
    fn list(&mut self) -> Option<u64> {
        self.eat(b'[')?;
        self.ws();
        Some(u64::MAX)
    }

    fn uint(&mut self) -> Option<u64> {
        let first = std::mem::replace(&mut self.first, false);
        self.sep(first)?;
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.b.get(self.i) {
            v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
            self.i += 1;
        }
        if self.i == start || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(v)
    }

    fn dict_topic(&mut self) -> Option<Option<&'a [u8]>> {
        self.sep(false)?;
        self.eat(b'{')?;
        let mut topic = None;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return self.after_dict(topic);
        }
        loop {
            let key = self.plain_str()?;
            self.eat(b':')?;
            if key == b"topic" {
                topic = Some(self.plain_str()?);
            } else {
                self.skip()?;
            }
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return self.after_dict(topic);
                }
                _ => return None,
            }
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.b.get(self.i..).unwrap_or(&[])
    }
}

impl<'a> Js<'a> {
    /// Moves past the `,` that separates the dict from `Arguments`.
    fn after_dict(&mut self, topic: Option<&'a [u8]>) -> Option<Option<&'a [u8]>> {
        self.eat(b',')?;
        Some(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::args_with_padding;
    use std::borrow::Cow;
    use wampd::protocol::{Message, Val};

    fn details(topic: Option<&'static str>) -> Val<'static> {
        let mut d = vec![
            (
                Cow::Borrowed("publisher"),
                Val::UInt(1 << 40), // skipped before `topic`
            ),
            (
                Cow::Borrowed("x"),
                Val::List(vec![Val::Str(Cow::Borrowed("a\"b")), Val::empty_dict()]),
            ),
        ];
        if let Some(t) = topic {
            d.push((Cow::Borrowed("topic"), Val::Str(Cow::Borrowed(t))));
        }
        Val::Dict(d)
    }

    fn encode(ser: Serializer, m: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode(ser, &mut out).unwrap();
        out
    }

    #[test]
    fn event_fields_in_every_serializer() {
        for ser in Serializer::ALL {
            for (sub, publ, d, topic) in [
                (1u64, 2u64, Val::empty_dict(), None),
                (1 << 53, 300, details(None), None),
                (70_000, 1 << 33, details(Some("a.b.c")), Some(&b"a.b.c"[..])),
            ] {
                let m = Message::Event {
                    subscription: sub,
                    publication: publ,
                    details: d,
                    args: Some(args_with_padding(3, 65_536, 1 << 40, "xxxx")),
                    kwargs: None,
                };
                let f = encode(ser, &m);
                let lead = scan(ser, &f).unwrap_or_else(|| panic!("{ser:?} {f:?}"));
                assert_eq!(lead.code, EVENT);
                assert_eq!(lead.ids, [sub, publ], "{ser:?}");
                assert_eq!(lead.topic.as_deref(), topic, "{ser:?}");
                assert_eq!(lead.args, [3, 65_536, 1 << 40], "{ser:?}");
            }
        }
    }

    #[test]
    fn result_and_invocation() {
        for ser in Serializer::ALL {
            let r = Message::Result {
                request: 77,
                details: Val::empty_dict(),
                args: Some(args_with_padding(5, 77, 9, "")),
                kwargs: None,
            };
            let f = encode(ser, &r);
            let lead = scan(ser, &f).unwrap();
            assert_eq!(
                (lead.code, lead.ids, lead.args),
                (RESULT, [77, 0], [5, 77, 9])
            );
            let i = Message::Invocation {
                request: 4,
                registration: 99,
                details: Val::empty_dict(),
                args: Some(args_with_padding(1, 2, 3, "yy")),
                kwargs: None,
            };
            let f = encode(ser, &i);
            let lead = scan(ser, &f).unwrap();
            assert_eq!(
                (lead.code, lead.ids, lead.args),
                (INVOCATION, [4, 99], [1, 2, 3])
            );
        }
    }

    #[test]
    fn declines_what_it_does_not_know() {
        for ser in Serializer::ALL {
            // No Arguments.
            let m = Message::Event {
                subscription: 1,
                publication: 2,
                details: Val::empty_dict(),
                args: None,
                kwargs: None,
            };
            assert_eq!(scan(ser, &encode(ser, &m)), None, "{ser:?}");
            // Another message.
            let p = Message::Published {
                request: 1,
                publication: 2,
            };
            assert_eq!(scan(ser, &encode(ser, &p)), None, "{ser:?}");
            // Arguments that do not start with three integers.
            let m = Message::Event {
                subscription: 1,
                publication: 2,
                details: Val::empty_dict(),
                args: Some(Val::List(vec![Val::UInt(1), Val::Str(Cow::Borrowed("x"))])),
                kwargs: None,
            };
            assert_eq!(scan(ser, &encode(ser, &m)), None, "{ser:?}");
            // Truncated frames never panic.
            let m = Message::Event {
                subscription: 1,
                publication: 2,
                details: details(Some("t")),
                args: Some(args_with_padding(1, 2, 3, "")),
                kwargs: None,
            };
            let f = encode(ser, &m);
            for n in 0..f.len() {
                let _ = scan(ser, &f[..n]);
            }
        }
        // An escaped topic in JSON is left to the full parse.
        let f = br#"[36,1,2,{"topic":"a\u002eb"},[1,2,3]]"#;
        assert_eq!(scan(Serializer::Json, f), None);
        let f = br#" [ 36 , 1 , 2 , { "n" : [1, {"a": "]"}] , "topic" : "t" } , [ 1 , 2 , 3 ] ] "#;
        let lead = scan(Serializer::Json, f).unwrap();
        assert_eq!(
            (lead.topic.as_deref(), lead.args),
            (Some(&b"t"[..]), [1, 2, 3])
        );
    }
}
