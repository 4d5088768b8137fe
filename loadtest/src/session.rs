//! One WAMP session over WebSocket or RawSocket (TCP, TLS or Unix): connect,
//! transport handshake, HELLO/WELCOME, then framed messages.
//!
//! Writes go through an [`Outbox`]: every frame queued during one turn of the
//! event loop is written with a single `write` by the session's writer task.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::{TcpStream, UnixStream};
use wampd::link::tls::{TlsRead, TlsWrite};
use wampd::protocol::{Message, Serializer, Val};
use wampd::transport::{rawsocket, websocket};

use crate::url::Target;
use crate::util::{Fds, Notify};

/// Largest message we accept (and announce).
const MAX_MESSAGE: usize = 16 << 20;
const READ_MIN: usize = 16 * 1024;
const READ_MAX: usize = 256 * 1024;

enum Rd {
    Tcp(OwnedReadHalf<TcpStream>),
    Unix(OwnedReadHalf<UnixStream>),
    Tls(TlsRead<OwnedReadHalf<TcpStream>>),
}

enum Wr {
    Tcp(OwnedWriteHalf<TcpStream>),
    Unix(OwnedWriteHalf<UnixStream>),
    Tls(TlsWrite<OwnedWriteHalf<TcpStream>>),
}

impl Rd {
    /// Appends what the socket has to `buf` (growing it as needed).
    async fn read_more(&mut self, mut buf: BytesMut) -> (io::Result<usize>, BytesMut) {
        let spare = buf.capacity() - buf.len();
        if spare < READ_MIN / 8 {
            let grow = buf.capacity().clamp(READ_MIN / 4, READ_MAX);
            buf.reserve(grow);
        }
        let (len, cap) = (buf.len(), buf.capacity());
        let slice = monoio::buf::IoBufMut::slice_mut(buf, len..cap);
        let (res, slice) = match self {
            Rd::Tcp(r) => r.read(slice).await,
            Rd::Unix(r) => r.read(slice).await,
            Rd::Tls(r) => r.read(slice).await,
        };
        (res, slice.into_inner())
    }
}

impl Wr {
    async fn write_all(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Wr::Tcp(w) => w.write_all(buf).await,
            Wr::Unix(w) => w.write_all(buf).await,
            Wr::Tls(w) => w.write_all(buf).await,
        }
    }
    async fn shutdown(&mut self) {
        let _ = match self {
            Wr::Tcp(w) => w.shutdown().await,
            Wr::Unix(w) => w.shutdown().await,
            Wr::Tls(w) => w.shutdown().await,
        };
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framing {
    Ws,
    Rs,
}

/// Frames queued for the writer task.
pub struct Outbox {
    buf: RefCell<Vec<u8>>,
    ready: Notify,
    closed: Cell<bool>,
    failed: Cell<bool>,
    framing: Framing,
}

impl Outbox {
    /// Queues one WAMP message (framed for the transport).
    pub fn push_msg(&self, msg: &Message<'_>, ser: Serializer, scratch: &mut Vec<u8>) {
        scratch.clear();
        if msg.encode(ser, scratch).is_err() {
            return;
        }
        self.push_payload(scratch, ser.is_binary());
    }

    /// Queues one already encoded WAMP message.
    pub fn push_payload(&self, payload: &[u8], binary: bool) {
        let mut b = self.buf.borrow_mut();
        match self.framing {
            Framing::Rs => {
                b.extend_from_slice(&rawsocket::header(
                    rawsocket::FrameType::Message,
                    payload.len(),
                ));
                b.extend_from_slice(payload);
            }
            Framing::Ws => {
                let op = if binary {
                    websocket::Opcode::Binary
                } else {
                    websocket::Opcode::Text
                };
                websocket::encode_frame(&mut b, op, payload, Some(fastrand::u32(..).to_ne_bytes()));
            }
        }
        drop(b);
        self.ready.notify();
    }

    fn push_control(&self, frame: &[u8]) {
        self.buf.borrow_mut().extend_from_slice(frame);
        self.ready.notify();
    }

    pub fn failed(&self) -> bool {
        self.failed.get()
    }

    /// Asks the writer task to flush and then shut down the write side.
    pub fn close(&self) {
        self.closed.set(true);
        self.ready.notify();
    }
}

async fn writer_task(mut wr: Wr, out: Rc<Outbox>) {
    // Grown on demand: most sessions of a run (subscribers) write almost nothing.
    let mut spare = Vec::new();
    loop {
        if out.buf.borrow().is_empty() {
            if out.closed.get() {
                wr.shutdown().await;
                return;
            }
            out.ready.notified().await;
            continue;
        }
        let buf = std::mem::replace(&mut *out.buf.borrow_mut(), std::mem::take(&mut spare));
        let (res, mut buf) = wr.write_all(buf).await;
        if res.is_err() {
            out.failed.set(true);
            return;
        }
        buf.clear();
        if buf.capacity() > 4 << 20 {
            buf = Vec::with_capacity(64 * 1024);
        }
        spare = buf;
    }
}

pub enum Inbound {
    Msg(Bytes),
    Closed,
}

/// How one [`Session::frames`] call ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    /// Every complete frame that was buffered has been handed over.
    Done,
    /// End of stream or a WebSocket close; the frames before it were handed over.
    Closed,
}

/// A RawSocket frame header: (frame type bits, payload length).
fn rs_header(h: [u8; 4]) -> Result<(u8, usize), String> {
    if h[0] & 0xF0 != 0 || h[0] & 0x07 > 2 {
        return Err(format!("rawsocket reserved frame type/bits: {:#04x}", h[0]));
    }
    let len = (((h[0] & 0x08) as usize) << 21) | (be24(&h[1..]) as usize);
    if len > MAX_MESSAGE {
        return Err(format!("rawsocket frame too long: {len} bytes"));
    }
    Ok((h[0] & 0x07, len))
}

fn be24(b: &[u8]) -> u32 {
    (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32
}

/// An established WAMP session.
pub struct Session {
    rd: Rd,
    buf: BytesMut,
    framing: Framing,
    ws: Option<websocket::Decoder>,
    rsd: Option<rawsocket::Decoder>,
    pub out: Rc<Outbox>,
    pub ser: Serializer,
    pub id: u64,
    fd: i32,
    fds: Fds,
    pub scratch: Vec<u8>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.fds.remove(self.fd);
        self.out.close();
    }
}

#[derive(Debug)]
pub enum JoinError {
    Io(String),
    Timeout,
    Refused(String),
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Io(e) => write!(f, "{e}"),
            JoinError::Timeout => write!(f, "timed out"),
            JoinError::Refused(e) => write!(f, "refused: {e}"),
        }
    }
}

fn io_err(e: impl std::fmt::Display) -> JoinError {
    JoinError::Io(e.to_string())
}

fn hello_details() -> Val<'static> {
    let role = |name: &'static str| (Cow::Borrowed(name), Val::empty_dict());
    Val::Dict(vec![(
        Cow::Borrowed("roles"),
        Val::Dict(vec![
            role("publisher"),
            role("subscriber"),
            role("caller"),
            role("callee"),
        ]),
    )])
}

/// Connects, handshakes and joins `realm`, all within `timeout`.
pub async fn join(
    target: &Target,
    ser: Serializer,
    realm: &str,
    fds: &Fds,
    timeout: Duration,
) -> Result<Session, JoinError> {
    match monoio::time::timeout(timeout, join_inner(target, ser, realm, fds)).await {
        Ok(r) => r,
        Err(_) => Err(JoinError::Timeout),
    }
}

async fn join_inner(
    target: &Target,
    ser: Serializer,
    realm: &str,
    fds: &Fds,
) -> Result<Session, JoinError> {
    let (mut rd, mut wr, fd) = match target {
        Target::Unix { path } => {
            let s = UnixStream::connect(path).await.map_err(io_err)?;
            let fd = s.as_raw_fd();
            let (r, w) = s.into_split();
            (Rd::Unix(r), Wr::Unix(w), fd)
        }
        _ => {
            let addr = target.addr().unwrap_or_default();
            let s = TcpStream::connect(addr.as_str()).await.map_err(io_err)?;
            let _ = s.set_nodelay(true);
            let fd = s.as_raw_fd();
            let (r, w) = s.into_split();
            (Rd::Tcp(r), Wr::Tcp(w), fd)
        }
    };
    // Registered at once, so that the end of the run can interrupt a hanging handshake too.
    fds.add(fd);
    let guard = FdGuard {
        fds: fds.clone(),
        fd,
        armed: true,
    };
    if let Some(tls) = target.tls() {
        (rd, wr) = tls_handshake(rd, wr, tls).await?;
    }
    let mut buf = BytesMut::with_capacity(4096);
    let framing;
    match target {
        Target::Ws {
            host, port, path, ..
        } => {
            framing = Framing::Ws;
            let key = websocket::new_client_key();
            let hostport = format!("{host}:{port}");
            let req = websocket::client_request(&hostport, path, &[ser.ws_subprotocol()], &key);
            let (r, _) = wr.write_all(req).await;
            r.map_err(io_err)?;
            loop {
                match websocket::parse_response(&buf, &key) {
                    Ok(Some((proto, used))) => {
                        if proto != ser.ws_subprotocol() {
                            return Err(JoinError::Refused(format!(
                                "server chose subprotocol {proto:?}, wanted {}",
                                ser.ws_subprotocol()
                            )));
                        }
                        let _ = buf.split_to(used);
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => return Err(JoinError::Refused(format!("websocket upgrade: {e}"))),
                }
                let (r, b) = rd.read_more(buf).await;
                buf = b;
                match r {
                    Ok(0) => return Err(io_err("connection closed during websocket upgrade")),
                    Ok(_) => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
        }
        _ => {
            framing = Framing::Rs;
            let hs = rawsocket::client_handshake(
                ser.rawsocket_id(),
                rawsocket::len_exp_for(MAX_MESSAGE),
            );
            let (r, _) = wr.write_all(hs.to_vec()).await;
            r.map_err(io_err)?;
            while buf.len() < 4 {
                let (r, b) = rd.read_more(buf).await;
                buf = b;
                match r {
                    Ok(0) => return Err(io_err("connection closed during rawsocket handshake")),
                    Ok(_) => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
            let reply = [buf[0], buf[1], buf[2], buf[3]];
            let _ = buf.split_to(4);
            match rawsocket::parse_server_reply(reply) {
                Ok(h) if h.serializer == ser.rawsocket_id() => {}
                Ok(h) => {
                    return Err(JoinError::Refused(format!(
                        "rawsocket: server chose serializer {}",
                        h.serializer
                    )))
                }
                Err(e) => return Err(JoinError::Refused(format!("rawsocket handshake: {e}"))),
            }
        }
    }
    let out = Rc::new(Outbox {
        buf: RefCell::new(Vec::with_capacity(1024)),
        ready: Notify::default(),
        closed: Cell::new(false),
        failed: Cell::new(false),
        framing,
    });
    monoio::spawn(writer_task(wr, out.clone()));
    let mut guard = guard;
    guard.armed = false;
    let mut s = Session {
        rd,
        buf,
        framing,
        ws: (framing == Framing::Ws)
            .then(|| websocket::Decoder::new(websocket::Role::Client, MAX_MESSAGE)),
        rsd: (framing == Framing::Rs).then(|| rawsocket::Decoder::new(MAX_MESSAGE)),
        out,
        ser,
        id: 0,
        fd,
        fds: fds.clone(),
        scratch: Vec::with_capacity(256),
    };
    let hello = Message::Hello {
        realm: Cow::Borrowed(realm),
        details: hello_details(),
    };
    s.send(&hello);
    let frame = match s.next().await {
        Ok(Inbound::Msg(f)) => f,
        Ok(Inbound::Closed) => return Err(io_err("connection closed before WELCOME")),
        Err(e) => return Err(io_err(e)),
    };
    match Message::parse(ser, &frame) {
        Ok(Message::Welcome { session, .. }) => {
            s.id = session;
            Ok(s)
        }
        Ok(Message::Abort { reason, .. }) => Err(JoinError::Refused(format!("ABORT {reason}"))),
        Ok(other) => Err(JoinError::Refused(format!(
            "expected WELCOME, got message type {}",
            other.code()
        ))),
        Err(e) => Err(JoinError::Refused(format!("bad WELCOME: {e}"))),
    }
}

/// Puts TLS between the TCP halves and the WAMP transport.
async fn tls_handshake(rd: Rd, wr: Wr, tls: &crate::tls::Tls) -> Result<(Rd, Wr), JoinError> {
    let (Rd::Tcp(r), Wr::Tcp(w)) = (rd, wr) else {
        return Err(io_err("TLS needs a TCP connection"));
    };
    let conn = tls.connection().map_err(io_err)?;
    let (r, w) = wampd::link::tls::connect(r, w, conn)
        .await
        .map_err(|e| io_err(format!("TLS handshake: {e}")))?;
    Ok((Rd::Tls(r), Wr::Tls(w)))
}

struct FdGuard {
    fds: Fds,
    fd: i32,
    armed: bool,
}

impl Drop for FdGuard {
    fn drop(&mut self) {
        if self.armed {
            self.fds.remove(self.fd);
        }
    }
}

impl Session {
    pub fn send(&mut self, msg: &Message<'_>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.out.push_msg(msg, self.ser, &mut scratch);
        self.scratch = scratch;
    }

    /// Next WAMP message, `Closed` on end of stream.
    pub async fn next(&mut self) -> Result<Inbound, String> {
        loop {
            match self.framing {
                Framing::Rs => {
                    let d = self.rsd.as_mut().expect("rawsocket decoder");
                    match d.decode(&mut self.buf) {
                        Ok(Some((rawsocket::FrameType::Message, data))) => {
                            return Ok(Inbound::Msg(data))
                        }
                        Ok(Some((rawsocket::FrameType::Ping, data))) => {
                            self.rs_pong(&data);
                            continue;
                        }
                        Ok(Some((rawsocket::FrameType::Pong, _))) => continue,
                        Ok(None) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Framing::Ws => {
                    let d = self.ws.as_mut().expect("websocket decoder");
                    match d.decode(&mut self.buf) {
                        Ok(Some(websocket::Frame::Message { data, .. })) => {
                            return Ok(Inbound::Msg(data))
                        }
                        Ok(Some(websocket::Frame::Ping(p))) => {
                            self.ws_pong(&p);
                            continue;
                        }
                        Ok(Some(websocket::Frame::Pong(_))) => continue,
                        Ok(Some(websocket::Frame::Close { .. })) => return Ok(Inbound::Closed),
                        Ok(None) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
            if !self.read().await? {
                return Ok(Inbound::Closed);
            }
        }
    }

    /// Hands every complete message frame in the receive buffer to `f`, reading from the socket
    /// first when none is complete. Frames are borrowed from the buffer: no allocation or reference
    /// count per frame, and the caller can do its per-read work (clock, counters) once per call.
    pub async fn frames(&mut self, mut f: impl FnMut(&[u8])) -> Result<Batch, String> {
        loop {
            let handed = match self.framing {
                Framing::Rs => self.rs_frames(&mut f)?,
                Framing::Ws => match self.ws_frames(&mut f)? {
                    Some(n) => n,
                    None => return Ok(Batch::Closed),
                },
            };
            if handed > 0 {
                return Ok(Batch::Done);
            }
            if !self.read().await? {
                return Ok(Batch::Closed);
            }
        }
    }

    /// Walks the buffered RawSocket frames in place; returns how many messages were handed over.
    fn rs_frames(&mut self, f: &mut impl FnMut(&[u8])) -> Result<usize, String> {
        let (mut pos, mut handed, mut need) = (0, 0, 0);
        let buf = &self.buf[..];
        while buf.len() - pos >= 4 {
            let (kind, len) = rs_header([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]])?;
            let end = pos + 4 + len;
            if end > buf.len() {
                need = end - pos;
                break;
            }
            let payload = &buf[pos + 4..end];
            match kind {
                0 => {
                    f(payload);
                    handed += 1;
                }
                1 => self.rs_pong(payload),
                _ => {} // PONG
            }
            pos = end;
        }
        self.buf.advance(pos);
        if need > self.buf.len() {
            // Room for the whole incomplete frame, so that the next read can complete it.
            self.buf.reserve(need - self.buf.len());
        }
        Ok(handed)
    }

    /// Decodes the buffered WebSocket frames; `None` on a close frame.
    fn ws_frames(&mut self, f: &mut impl FnMut(&[u8])) -> Result<Option<usize>, String> {
        let mut handed = 0;
        loop {
            let d = self.ws.as_mut().expect("websocket decoder");
            match d.decode(&mut self.buf).map_err(|e| e.to_string())? {
                Some(websocket::Frame::Message { data, .. }) => {
                    f(&data);
                    handed += 1;
                }
                Some(websocket::Frame::Ping(p)) => self.ws_pong(&p),
                Some(websocket::Frame::Pong(_)) => {}
                Some(websocket::Frame::Close { .. }) => return Ok(None),
                None => return Ok(Some(handed)),
            }
        }
    }

    /// Reads what the socket has into the buffer; false at end of stream.
    async fn read(&mut self) -> Result<bool, String> {
        let buf = std::mem::take(&mut self.buf);
        let (r, b) = self.rd.read_more(buf).await;
        self.buf = b;
        match r {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(e.to_string()),
        }
    }

    fn rs_pong(&self, payload: &[u8]) {
        let mut f = rawsocket::header(rawsocket::FrameType::Pong, payload.len()).to_vec();
        f.extend_from_slice(payload);
        self.out.push_control(&f);
    }

    fn ws_pong(&self, payload: &[u8]) {
        let mut f = Vec::new();
        let mask = Some(fastrand::u32(..).to_ne_bytes());
        websocket::encode_frame(&mut f, websocket::Opcode::Pong, payload, mask);
        self.out.push_control(&f);
    }
}

/// Reads the first `N` unsigned integers of an encoded list (the `args` of an
/// EVENT/RESULT/INVOCATION) without decoding the rest.
pub fn lead_u64s<const N: usize>(ser: Serializer, b: &[u8]) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    match ser {
        Serializer::MsgPack => {
            let (len, mut i) = match *b.first()? {
                t @ 0x90..=0x9f => ((t & 0x0f) as usize, 1),
                0xdc => (u16::from_be_bytes([*b.get(1)?, *b.get(2)?]) as usize, 3),
                0xdd => (
                    u32::from_be_bytes(b.get(1..5)?.try_into().ok()?) as usize,
                    5,
                ),
                _ => return None,
            };
            if len < N {
                return None;
            }
            for o in out.iter_mut() {
                let t = *b.get(i)?;
                let (v, n) = match t {
                    0x00..=0x7f => (t as u64, 1),
                    0xcc | 0xd0 => (*b.get(i + 1)? as u64, 2),
                    0xcd | 0xd1 => (
                        u16::from_be_bytes(b.get(i + 1..i + 3)?.try_into().ok()?) as u64,
                        3,
                    ),
                    0xce | 0xd2 => (
                        u32::from_be_bytes(b.get(i + 1..i + 5)?.try_into().ok()?) as u64,
                        5,
                    ),
                    0xcf | 0xd3 => (u64::from_be_bytes(b.get(i + 1..i + 9)?.try_into().ok()?), 9),
                    _ => return None,
                };
                if (0xd0..=0xd3).contains(&t) && (v >> (8 * (n - 1) - 1)) & 1 == 1 {
                    return None; // negative
                }
                *o = v;
                i += n;
            }
        }
        Serializer::Cbor => {
            let head = |i: usize| -> Option<(u8, u64, usize)> {
                let t = *b.get(i)?;
                let major = t >> 5;
                let ai = t & 0x1f;
                let (v, n) = match ai {
                    0..=23 => (ai as u64, 1),
                    24 => (*b.get(i + 1)? as u64, 2),
                    25 => (
                        u16::from_be_bytes(b.get(i + 1..i + 3)?.try_into().ok()?) as u64,
                        3,
                    ),
                    26 => (
                        u32::from_be_bytes(b.get(i + 1..i + 5)?.try_into().ok()?) as u64,
                        5,
                    ),
                    27 => (u64::from_be_bytes(b.get(i + 1..i + 9)?.try_into().ok()?), 9),
                    31 if major == 4 => (u64::MAX, 1), // indefinite-length array
                    _ => return None,
                };
                Some((major, v, n))
            };
            let (major, len, mut i) = head(0)?;
            if major != 4 || len < N as u64 {
                return None;
            }
            for o in out.iter_mut() {
                let (major, v, n) = head(i)?;
                if major != 0 {
                    return None;
                }
                *o = v;
                i += n;
            }
        }
        Serializer::Json => {
            let mut i = 0;
            let skip_ws = |i: &mut usize| {
                while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
                    *i += 1;
                }
            };
            skip_ws(&mut i);
            if b.get(i) != Some(&b'[') {
                return None;
            }
            i += 1;
            for (k, o) in out.iter_mut().enumerate() {
                skip_ws(&mut i);
                if k > 0 {
                    if b.get(i) != Some(&b',') {
                        return None;
                    }
                    i += 1;
                    skip_ws(&mut i);
                }
                let start = i;
                let mut v: u64 = 0;
                while let Some(d @ b'0'..=b'9') = b.get(i) {
                    v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
                    i += 1;
                }
                if i == start || matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
                    return None;
                }
                *o = v;
            }
        }
    }
    Some(out)
}

/// Args of a message view as a raw span (what `lead_u64s` reads).
pub fn raw_args<'a>(args: &Option<Val<'a>>) -> Option<&'a [u8]> {
    match args {
        Some(Val::Raw(p)) => Some(p.bytes),
        _ => None,
    }
}

/// `[a, b, c, "xxx…"]` as a WAMP args list: three integers plus `pad` bytes of padding.
pub fn args_with_padding(a: u64, b: u64, c: u64, pad: &'static str) -> Val<'static> {
    let mut v = vec![Val::UInt(a), Val::UInt(b), Val::UInt(c)];
    if !pad.is_empty() {
        v.push(Val::Str(Cow::Borrowed(pad)));
    }
    Val::List(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_ints_all_serializers() {
        for ser in Serializer::ALL {
            for (a, b, c) in [
                (0u64, 1u64, 2u64),
                (7, 300, 1 << 40),
                (65_000, u32::MAX as u64 + 5, 123_456_789_012),
            ] {
                let v = args_with_padding(a, b, c, "xxxxxxxx");
                let mut out = Vec::new();
                v.encode(ser, &mut out).unwrap();
                assert_eq!(lead_u64s::<3>(ser, &out), Some([a, b, c]), "{ser:?}");
            }
            let mut out = Vec::new();
            Val::List(vec![Val::UInt(1)]).encode(ser, &mut out).unwrap();
            assert_eq!(lead_u64s::<3>(ser, &out), None);
        }
        assert_eq!(
            lead_u64s::<2>(Serializer::Json, b" [ 1 , 2 ]"),
            Some([1, 2])
        );
        assert_eq!(lead_u64s::<2>(Serializer::Json, b"[1.5,2]"), None);
        assert_eq!(lead_u64s::<1>(Serializer::Json, b"[-1]"), None);
        assert_eq!(
            lead_u64s::<1>(Serializer::MsgPack, &[0x91, 0xd0, 0xff]),
            None
        );
    }
}
