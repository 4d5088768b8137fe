//! Helpers for the payload passthru tests: sessions on chosen shards that do or do not announce
//! `payload_passthru_mode`, the `ppt_*` attributes of a message, and a binary payload.

use std::borrow::Cow;

use wampd::protocol::{Message, Serializer, Val};
use wampd::router::ids::shard_of_session;

use std::io::{Read, Write};
use std::net::TcpStream;

use super::{Client, Link, TIMEOUT};

/// The four attribute names.
pub const KEYS: [&str; 4] = ["ppt_scheme", "ppt_serializer", "ppt_cipher", "ppt_keyid"];

/// Opens a RawSocket session of serializer `ser` on `shard` (of `shards`), announcing
/// `payload_passthru_mode` in every client role when `announce`; sessions that land elsewhere are
/// kept in `spare` so that placement stays predictable.
pub fn join_on(
    addr: &str,
    shards: usize,
    shard: usize,
    ser: Serializer,
    announce: bool,
    spare: &mut Vec<Client>,
) -> Client {
    join_on_with(addr, (shards, shard), ser, announce, &[], spare)
}

/// Like [`join_on`], also announcing `extra` (role, feature) pairs; `at` is (shards, shard).
pub fn join_on_with(
    addr: &str,
    at: (usize, usize),
    ser: Serializer,
    announce: bool,
    extra: &[(&str, &str)],
    spare: &mut Vec<Client>,
) -> Client {
    let (shards, shard) = at;
    for _ in 0..=shards {
        let mut c = Client::rawsocket(addr, ser);
        let frame = hello_frame_with(&mut c, announce, extra);
        c.session = match Message::parse(ser, &frame) {
            Ok(Message::Welcome { session, .. }) => session,
            other => panic!("expected WELCOME, got {other:?}"),
        };
        if shard_of_session(c.session, shards) == shard {
            return c;
        }
        spare.push(c);
    }
    panic!("no session landed on shard {shard} of {shards}");
}

/// HELLO for `realm1` with all four client roles, announcing payload passthru when `announce`;
/// expects WELCOME and returns its Details.
pub fn hello(c: &mut Client, announce: bool) -> Val<'static> {
    let frame = hello_frame(c, announce);
    let (session, details) = match Message::parse(c.ser, &frame) {
        Ok(Message::Welcome { session, details }) => (session, details.into_owned()),
        other => panic!("expected WELCOME, got {other:?}"),
    };
    c.session = session;
    details
}

/// Like [`hello`], returning the WELCOME as it came (the session id is not taken).
pub fn hello_frame(c: &mut Client, announce: bool) -> Vec<u8> {
    hello_frame_with(c, announce, &[])
}

fn hello_frame_with(c: &mut Client, announce: bool, extra: &[(&str, &str)]) -> Vec<u8> {
    let roles = ["caller", "callee", "publisher", "subscriber"]
        .iter()
        .map(|r| {
            let mut features: Vec<(Cow<'_, str>, Val<'_>)> = extra
                .iter()
                .filter(|(role, _)| role == r)
                .map(|(_, f)| (Cow::Owned(f.to_string()), Val::Bool(true)))
                .collect();
            if announce {
                features.push((Cow::Borrowed("payload_passthru_mode"), Val::Bool(true)));
            }
            (
                Cow::Borrowed(*r),
                Val::Dict(vec![(Cow::Borrowed("features"), Val::Dict(features))]),
            )
        })
        .collect();
    c.send(&Message::Hello {
        realm: Cow::Borrowed("realm1"),
        details: Val::Dict(vec![(Cow::Borrowed("roles"), Val::Dict(roles))]),
    });
    c.recv().expect("an answer to HELLO")
}

/// Connects over RawSocket announcing that it accepts messages up to `1 << (9 + exp)` bytes (no
/// session yet).
pub fn rawsocket_max(addr: &str, ser: Serializer, exp: u8) -> Client {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(&[0x7F, (exp << 4) | ser.rawsocket_id(), 0, 0])
        .unwrap();
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[1] & 0x0F, ser.rawsocket_id(), "handshake refused");
    Client::with(Link::Rs(s), ser)
}

/// Options (or Details) holding the given `ppt_*` attributes, plus `extra`.
pub fn attrs(
    values: &[(&'static str, &'static str)],
    extra: &[(&'static str, Val<'static>)],
) -> Val<'static> {
    let mut d: Vec<(Cow<'static, str>, Val<'static>)> = values
        .iter()
        .map(|(k, v)| (Cow::Borrowed(*k), Val::Str(Cow::Borrowed(*v))))
        .collect();
    d.extend(extra.iter().map(|(k, v)| (Cow::Borrowed(*k), v.clone())));
    Val::Dict(d)
}

/// The `ppt_*` attributes present in `details`, in [`KEYS`] order.
pub fn ppt_of(details: &Val<'_>) -> Vec<(String, String)> {
    KEYS.iter()
        .filter_map(|k| {
            let v = details.get(k)?.as_str()?.into_owned();
            Some((k.to_string(), v))
        })
        .collect()
}

/// The same attributes as owned pairs, to compare with [`ppt_of`].
pub fn owned(values: &[(&str, &str)]) -> Vec<(String, String)> {
    values
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Arguments of one binary item, the shape the specification gives a passthru payload.
pub fn binary_args(bytes: &'static [u8]) -> Val<'static> {
    Val::List(vec![Val::Bytes(Cow::Borrowed(bytes))])
}

/// True if `args` is a list of exactly one binary item equal to `bytes`.
pub fn is_binary_args(args: &Option<Val<'_>>, bytes: &[u8]) -> bool {
    args.as_ref()
        .is_some_and(|a| a.semantic_eq(&Val::List(vec![Val::Bytes(Cow::Borrowed(bytes))])))
}
