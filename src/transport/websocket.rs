//! WebSocket (RFC 6455): the HTTP/1.1 opening handshake and the frame codec.
//!
//! The decoder works directly on the connection's receive buffer: complete
//! frames are split off the front, unmasked in place and frozen, so an
//! unfragmented message reaches the WAMP layer without being copied.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use sha1::{Digest, Sha1};

/// Fixed GUID from RFC 6455 section 1.3, appended to the client key.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Headers accepted per handshake; more than this is treated as oversized
/// (431) so a hostile peer cannot make us scan an unbounded header list.
const MAX_HEADERS: usize = 64;

/// Cap on a server's handshake response as seen by the client, so a broken
/// server cannot make the client buffer forever.
const MAX_RESPONSE_LEN: usize = 16 * 1024;

/// Largest frame header: 2 fixed bytes + 8 length bytes + 4 mask bytes.
pub const MAX_HEADER_LEN: usize = 14;

// ---------------------------------------------------------------------------
// Opening handshake
// ---------------------------------------------------------------------------

/// A validated WebSocket upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    pub host: Option<String>,
    pub key: String,
    /// All offered subprotocols, trimmed, in the order offered.
    pub protocols: Vec<String>,
}

/// An HTTP-level refusal: status + short text; `response()` renders a complete
/// HTTP/1.1 response with a text/plain body and `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
}

impl HttpError {
    fn new(status: u16, reason: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            reason,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "Bad Request", message)
    }

    /// Renders the refusal. A 426 carries `Sec-WebSocket-Version: 13` because
    /// RFC 6455 4.4 requires telling the client which version we speak.
    pub fn response(&self) -> Vec<u8> {
        let mut body = self.message.clone();
        body.push('\n');
        let extra = if self.status == 426 {
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        } else if self.status == 405 {
            "Allow: GET\r\n"
        } else {
            ""
        };
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n{}",
            self.status,
            self.reason,
            body.len(),
            extra,
            body
        )
        .into_bytes()
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}: {}", self.status, self.reason, self.message)
    }
}

impl std::error::Error for HttpError {}

/// True if the comma-separated header `value` contains `token`
/// (case-insensitive), since `Connection: keep-alive, Upgrade` is legal.
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn header_str<'a>(name: &str, value: &'a [u8]) -> Result<&'a str, HttpError> {
    std::str::from_utf8(value)
        .map(str::trim)
        .map_err(|_| HttpError::bad_request(format!("{name} header is not valid UTF-8")))
}

/// Parses an HTTP/1.1 WebSocket upgrade request from the start of `buf` with
/// httparse. `Ok(None)`: incomplete, read more. `Ok(Some((req, consumed)))`.
///
/// Errors: not GET (405), missing/invalid Upgrade/Connection/Sec-WebSocket-Key
/// (400), missing Sec-WebSocket-Version (400), a version other than 13 (426),
/// headers too large or too many (431); `max_len` caps the request size so a
/// slow or hostile client cannot make us buffer without bound.
pub fn parse_request(buf: &[u8], max_len: usize) -> Result<Option<(Request, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let too_large = || HttpError::new(431, "Request Header Fields Too Large", "request too large");
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= max_len {
                return Err(too_large());
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(too_large()),
        Err(e) => return Err(HttpError::bad_request(format!("malformed request: {e}"))),
    };
    if consumed > max_len {
        return Err(too_large());
    }
    if req.method != Some("GET") {
        return Err(HttpError::new(
            405,
            "Method Not Allowed",
            "WebSocket upgrade requires GET",
        ));
    }
    if req.version != Some(1) {
        return Err(HttpError::bad_request(
            "WebSocket upgrade requires HTTP/1.1",
        ));
    }
    let path = req.path.unwrap_or("/").to_owned();

    let mut host = None;
    let mut key = None;
    let mut version = None;
    let mut upgrade = false;
    let mut connection = false;
    let mut protocols = Vec::new();
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            host = Some(header_str("Host", h.value)?.to_owned());
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(h.value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= has_token(h.value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            if key.is_some() {
                return Err(HttpError::bad_request("duplicate Sec-WebSocket-Key"));
            }
            key = Some(header_str("Sec-WebSocket-Key", h.value)?);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = Some(header_str("Sec-WebSocket-Version", h.value)?);
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            let v = header_str("Sec-WebSocket-Protocol", h.value)?;
            protocols.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    if !upgrade {
        return Err(HttpError::bad_request(
            "missing or invalid Upgrade: websocket header",
        ));
    }
    if !connection {
        return Err(HttpError::bad_request(
            "missing or invalid Connection: Upgrade header",
        ));
    }
    match version {
        None => {
            return Err(HttpError::bad_request(
                "missing Sec-WebSocket-Version header",
            ))
        }
        Some("13") => {}
        Some(_) => {
            return Err(HttpError::new(
                426,
                "Upgrade Required",
                "unsupported Sec-WebSocket-Version; only 13 is supported",
            ))
        }
    }
    let key = key.ok_or_else(|| HttpError::bad_request("missing Sec-WebSocket-Key header"))?;
    if !valid_key(key) {
        return Err(HttpError::bad_request("invalid Sec-WebSocket-Key header"));
    }
    Ok(Some((
        Request {
            path,
            host,
            key: key.to_owned(),
            protocols,
        },
        consumed,
    )))
}

/// RFC 6455 4.1: the key must be a base64-encoded 16-byte nonce.
fn valid_key(key: &str) -> bool {
    let mut out = [0u8; 18];
    key.len() == 24 && matches!(STANDARD.decode_slice(key, &mut out), Ok(16))
}

/// `base64(sha1(key + GUID))`, proving to the client that the server
/// understood the WebSocket handshake.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(WS_GUID.as_bytes());
    STANDARD.encode(h.finalize())
}

/// The 101 Switching Protocols reply. An empty `protocol` omits the
/// `Sec-WebSocket-Protocol` header (RFC 6455 forbids echoing a protocol the
/// client did not offer).
pub fn accept_response(key: &str, protocol: &str) -> Vec<u8> {
    let mut s = String::with_capacity(160 + protocol.len());
    s.push_str("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    s.push_str(&accept_key(key));
    s.push_str("\r\n");
    if !protocol.is_empty() {
        s.push_str("Sec-WebSocket-Protocol: ");
        s.push_str(protocol);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// Client side: the upgrade request the load generator sends.
pub fn client_request(host: &str, path: &str, protocols: &[&str], key: &str) -> Vec<u8> {
    let mut s = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if !protocols.is_empty() {
        s.push_str("Sec-WebSocket-Protocol: ");
        s.push_str(&protocols.join(", "));
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// A fresh random 16-byte key, base64-encoded. The key is only a handshake
/// nonce (not a security boundary), so std's randomly seeded hasher mixed with
/// time and a counter is plenty and avoids an RNG dependency.
pub fn new_client_key() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(nanos);
        h.write_u64(n);
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    STANDARD.encode(bytes)
}

/// Client side: `Ok(None)` = incomplete; `Ok(Some((chosen_protocol, consumed)))`
/// on a valid 101 with the right `Sec-WebSocket-Accept` (`chosen_protocol` is
/// empty if the server picked none). A non-101 status is returned as the error's
/// status; other failures use 502 (the server answered, but not acceptably).
pub fn parse_response(buf: &[u8], key: &str) -> Result<Option<(String, usize)>, HttpError> {
    let bad = |m: &str| HttpError::new(502, "Bad Gateway", m);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let consumed = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= MAX_RESPONSE_LEN {
                return Err(bad("handshake response too large"));
            }
            return Ok(None);
        }
        Err(e) => return Err(bad(&format!("malformed handshake response: {e}"))),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(HttpError::new(
            code,
            "Unexpected Status",
            format!("expected 101, got {code} {}", resp.reason.unwrap_or("")),
        ));
    }
    let mut upgrade = false;
    let mut connection = false;
    let mut accept_ok = false;
    let mut protocol = String::new();
    let expected = accept_key(key);
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(h.value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= has_token(h.value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept_ok = h.value.trim_ascii() == expected.as_bytes();
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            protocol = header_str("Sec-WebSocket-Protocol", h.value)?.to_owned();
        }
    }
    if !upgrade || !connection {
        return Err(bad("missing Upgrade/Connection headers in 101 response"));
    }
    if !accept_ok {
        return Err(bad("missing or wrong Sec-WebSocket-Accept"));
    }
    Ok(Some((protocol, consumed)))
}

// ---------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------

/// Which end of the connection the codec serves; decides the masking rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    Continuation = 0,
    Text = 1,
    Binary = 2,
    Close = 8,
    Ping = 9,
    Pong = 10,
}

impl Opcode {
    pub fn from_u8(v: u8) -> Option<Opcode> {
        Some(match v {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            10 => Opcode::Pong,
            _ => return None,
        })
    }
}

/// One decoded unit: a complete (reassembled) message or a control frame.
#[derive(Debug)]
pub enum Frame {
    Message { binary: bool, data: Bytes },
    Ping(Bytes),
    Pong(Bytes),
    Close { code: Option<u16>, reason: String },
}

/// A protocol violation; `close_code` is what to send in our Close frame:
/// 1002 protocol error, 1003 unsupported data, 1007 invalid UTF-8, 1009 message too big.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsError {
    pub close_code: u16,
    pub reason: &'static str,
}

impl WsError {
    const fn protocol(reason: &'static str) -> Self {
        WsError {
            close_code: 1002,
            reason,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket error {}: {}", self.close_code, self.reason)
    }
}

impl std::error::Error for WsError {}

const E_RSV: WsError = WsError::protocol("reserved bits set");
const E_OPCODE: WsError = WsError::protocol("unknown opcode");
const E_UNMASKED: WsError = WsError::protocol("client frame not masked");
const E_MASKED: WsError = WsError::protocol("server frame masked");
const E_CONTROL_LEN: WsError = WsError::protocol("control frame too long");
const E_CONTROL_FRAG: WsError = WsError::protocol("fragmented control frame");
const E_NO_START: WsError = WsError::protocol("continuation without a started message");
const E_NOT_CONT: WsError = WsError::protocol("new message while fragmented message incomplete");
const E_LEN_MSB: WsError = WsError::protocol("64-bit length with most significant bit set");
const E_CLOSE_LEN: WsError = WsError::protocol("close payload of 1 byte");
const E_CLOSE_CODE: WsError = WsError::protocol("invalid close code");
const E_CLOSE_UTF8: WsError = WsError::protocol("close reason is not valid UTF-8");
const E_TOO_BIG: WsError = WsError {
    close_code: 1009,
    reason: "message too big",
};
const E_UTF8: WsError = WsError {
    close_code: 1007,
    reason: "text message is not valid UTF-8",
};
const E_DATA_TYPE: WsError = WsError {
    close_code: 1003,
    reason: "unsupported data: the subprotocol fixes text or binary messages",
};

/// Close codes a peer may legitimately send (RFC 6455 7.4 plus the IANA
/// registrations 1012-1014); 1004-1006 and 1015 are reserved for local use.
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A fragmented message being reassembled.
struct Fragments {
    binary: bool,
    data: BytesMut,
}

/// Incremental frame decoder for one connection.
pub struct Decoder {
    role: Role,
    max_message_size: usize,
    fragments: Option<Fragments>,
    /// Whether messages must be binary (`Some(true)`) or text (`Some(false)`).
    data_type: Option<bool>,
}

impl Decoder {
    pub fn new(role: Role, max_message_size: usize) -> Self {
        Decoder {
            role,
            max_message_size,
            fragments: None,
            data_type: None,
        }
    }

    /// Accepts only binary (or only text) messages, as a WAMP subprotocol requires; the other
    /// kind is refused from its first frame header with close code 1003, before it is buffered.
    pub fn only(mut self, binary: bool) -> Self {
        self.data_type = Some(binary);
        self
    }

    /// Takes complete frames off the front of `buf` (raw socket bytes),
    /// unmasking in place, and returns the next complete message or control
    /// frame; `Ok(None)` = need more bytes. Fragmented messages are
    /// reassembled; control frames interleaved between fragments are returned
    /// immediately. Every violation is detected from the header, before the
    /// payload is buffered, so an oversized frame is refused without reading it.
    ///
    /// When a frame is incomplete, `buf` is grown to hold it so the caller's
    /// next read can complete it in one go.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WsError> {
        loop {
            if buf.len() < 2 {
                return Ok(None);
            }
            let b0 = buf[0];
            let b1 = buf[1];
            if b0 & 0x70 != 0 {
                return Err(E_RSV);
            }
            let fin = b0 & 0x80 != 0;
            let op = Opcode::from_u8(b0 & 0x0F).ok_or(E_OPCODE)?;
            let masked = b1 & 0x80 != 0;
            match (self.role, masked) {
                (Role::Server, false) => return Err(E_UNMASKED),
                (Role::Client, true) => return Err(E_MASKED),
                _ => {}
            }
            let len7 = b1 & 0x7F;
            let is_control = (op as u8) & 0x08 != 0;
            if is_control {
                if !fin {
                    return Err(E_CONTROL_FRAG);
                }
                if len7 > 125 {
                    return Err(E_CONTROL_LEN);
                }
            } else if op == Opcode::Continuation {
                if self.fragments.is_none() {
                    return Err(E_NO_START);
                }
            } else if self.fragments.is_some() {
                return Err(E_NOT_CONT);
            } else if self
                .data_type
                .is_some_and(|binary| binary != (op == Opcode::Binary))
            {
                return Err(E_DATA_TYPE);
            }

            let (len, mut header_len) = match len7 {
                126 => {
                    if buf.len() < 4 {
                        return Ok(None);
                    }
                    (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
                }
                127 => {
                    if buf.len() < 10 {
                        return Ok(None);
                    }
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&buf[2..10]);
                    let l = u64::from_be_bytes(l);
                    if l >> 63 != 0 {
                        return Err(E_LEN_MSB);
                    }
                    (l, 10)
                }
                n => (n as u64, 2),
            };
            if !is_control {
                let already = self.fragments.as_ref().map_or(0, |f| f.data.len()) as u64;
                if already + len > self.max_message_size as u64 {
                    return Err(E_TOO_BIG);
                }
            }
            // Bounded by max_message_size (or 125) now, so it fits in usize.
            let len = len as usize;
            if masked {
                header_len += 4;
            }
            let total = header_len + len;
            if buf.len() < total {
                buf.reserve(total - buf.len());
                return Ok(None);
            }
            let mut payload = buf.split_to(total);
            if masked {
                let mut key = [0u8; 4];
                key.copy_from_slice(&payload[header_len - 4..header_len]);
                payload.advance(header_len);
                apply_mask(&mut payload, key);
            } else {
                payload.advance(header_len);
            }

            match op {
                Opcode::Ping => return Ok(Some(Frame::Ping(payload.freeze()))),
                Opcode::Pong => return Ok(Some(Frame::Pong(payload.freeze()))),
                Opcode::Close => return parse_close(&payload).map(Some),
                Opcode::Text | Opcode::Binary => {
                    let binary = op == Opcode::Binary;
                    if fin {
                        return finish_message(binary, payload).map(Some);
                    }
                    self.fragments = Some(Fragments {
                        binary,
                        data: payload,
                    });
                }
                Opcode::Continuation => {
                    let frags = self.fragments.as_mut().ok_or(E_NO_START)?;
                    frags.data.extend_from_slice(&payload);
                    if fin {
                        let f = self.fragments.take().ok_or(E_NO_START)?;
                        return finish_message(f.binary, f.data).map(Some);
                    }
                }
            }
        }
    }
}

fn finish_message(binary: bool, data: BytesMut) -> Result<Frame, WsError> {
    if !binary && std::str::from_utf8(&data).is_err() {
        return Err(E_UTF8);
    }
    Ok(Frame::Message {
        binary,
        data: data.freeze(),
    })
}

fn parse_close(payload: &[u8]) -> Result<Frame, WsError> {
    match payload.len() {
        0 => Ok(Frame::Close {
            code: None,
            reason: String::new(),
        }),
        1 => Err(E_CLOSE_LEN),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !valid_close_code(code) {
                return Err(E_CLOSE_CODE);
            }
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| E_CLOSE_UTF8)?;
            Ok(Frame::Close {
                code: Some(code),
                reason: reason.to_owned(),
            })
        }
    }
}

/// XORs `data` with the 4-byte masking key (masking and unmasking are the
/// same operation). Works a u64 at a time, since this runs over every byte a
/// client sends.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let m = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ m).to_ne_bytes());
    }
    // The word loop consumed a multiple of 8 (so of 4) bytes: the mask phase
    // for the tail starts at 0 again.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Server-side (unmasked) frame header for a FIN frame: returns the header
/// bytes and their length (2, 4 or 10). Lets the writer put header and payload
/// in separate iovecs instead of copying the payload.
pub fn server_header(opcode: Opcode, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    let n = write_header(&mut h, 0x80 | opcode as u8, len, false);
    (h, n)
}

/// Writes base header (no mask key) into `h`, returns its length.
fn write_header(h: &mut [u8; 10], b0: u8, len: usize, masked: bool) -> usize {
    let mask_bit = if masked { 0x80 } else { 0 };
    h[0] = b0;
    if len < 126 {
        h[1] = mask_bit | len as u8;
        2
    } else if len <= 0xFFFF {
        h[1] = mask_bit | 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        h[1] = mask_bit | 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Appends a frame with an explicit first byte (FIN/RSV/opcode).
fn write_frame(out: &mut Vec<u8>, b0: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    let mut h = [0u8; 10];
    let n = write_header(&mut h, b0, payload.len(), mask.is_some());
    out.reserve(n + 4 + payload.len());
    out.extend_from_slice(&h[..n]);
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            let start = out.len();
            out.extend_from_slice(payload);
            apply_mask(&mut out[start..], key);
        }
        None => out.extend_from_slice(payload),
    }
}

/// Appends one complete FIN frame; `mask` = Some for the client role (the
/// payload is copied into `out` and masked there, leaving the input intact).
pub fn encode_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) {
    write_frame(out, 0x80 | opcode as u8, payload, mask);
}

/// Close frame payload: big-endian code + UTF-8 reason. The reason is cut (on
/// a char boundary) to 123 bytes because control frames are limited to 125.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut v = Vec::with_capacity(2 + end);
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(&reason.as_bytes()[..end]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn req(extra: &str) -> String {
        format!(
            "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
        )
    }

    fn req_with(headers: &str) -> String {
        format!("GET /ws HTTP/1.1\r\nHost: h\r\n{headers}\r\n")
    }

    fn frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> BytesMut {
        let mut v = Vec::new();
        write_frame(&mut v, b0, payload, mask);
        BytesMut::from(&v[..])
    }

    fn server() -> Decoder {
        Decoder::new(Role::Server, 1 << 20)
    }

    fn err(d: &mut Decoder, mut buf: BytesMut) -> WsError {
        d.decode(&mut buf).unwrap_err()
    }

    fn msg(f: Frame) -> (bool, Bytes) {
        match f {
            Frame::Message { binary, data } => (binary, data),
            other => panic!("expected message, got {other:?}"),
        }
    }

    // --- handshake ---

    #[test]
    fn accept_key_rfc_example() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn parse_valid_request() {
        let r = req("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wamp.2.json\r\n");
        let mut bytes = r.clone().into_bytes();
        bytes.extend_from_slice(b"\x81\x00"); // trailing frame bytes are not consumed
        let (q, n) = parse_request(&bytes, 8192).unwrap().unwrap();
        assert_eq!(n, r.len());
        assert_eq!(q.path, "/ws");
        assert_eq!(q.host.as_deref(), Some("example.com"));
        assert_eq!(q.key, KEY);
        assert_eq!(q.protocols, vec!["wamp.2.json"]);
    }

    #[test]
    fn parse_request_token_lists_case_insensitive() {
        let r = req_with(&format!(
            "upgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\nsec-websocket-key: {KEY}\r\nsec-websocket-version: 13\r\n"
        ));
        let (q, _) = parse_request(r.as_bytes(), 8192).unwrap().unwrap();
        assert!(q.protocols.is_empty());
    }

    #[test]
    fn protocols_across_headers() {
        let r = req(
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wamp.2.cbor , wamp.2.msgpack\r\nSec-WebSocket-Protocol: wamp.2.json\r\n",
        );
        let (q, _) = parse_request(r.as_bytes(), 8192).unwrap().unwrap();
        assert_eq!(
            q.protocols,
            vec!["wamp.2.cbor", "wamp.2.msgpack", "wamp.2.json"]
        );
    }

    #[test]
    fn partial_request_is_none() {
        let r = req("Sec-WebSocket-Version: 13\r\n");
        for cut in [0, 1, 10, r.len() - 1] {
            assert_eq!(
                parse_request(&r.as_bytes()[..cut], 8192).unwrap(),
                None,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn request_too_large() {
        let r = req("Sec-WebSocket-Version: 13\r\n");
        assert_eq!(parse_request(r.as_bytes(), 20).unwrap_err().status, 431);
        // Incomplete but already over the cap.
        assert_eq!(
            parse_request(&r.as_bytes()[..30], 20).unwrap_err().status,
            431
        );
        let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
        assert_eq!(
            parse_request(req(&many).as_bytes(), 1 << 20)
                .unwrap_err()
                .status,
            431
        );
    }

    #[test]
    fn not_get_is_405() {
        let r = req("Sec-WebSocket-Version: 13\r\n").replacen("GET", "POST", 1);
        let e = parse_request(r.as_bytes(), 8192).unwrap_err();
        assert_eq!(e.status, 405);
        let resp = String::from_utf8(e.response()).unwrap();
        assert!(resp.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(resp.contains("Connection: close\r\n"));
        assert!(resp.contains("Content-Type: text/plain"));
        assert!(resp.ends_with(&format!("\r\n\r\n{}\n", e.message)));
    }

    #[test]
    fn missing_key_is_400() {
        let r =
            req_with("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
        assert_eq!(parse_request(r.as_bytes(), 8192).unwrap_err().status, 400);
    }

    #[test]
    fn invalid_key_is_400() {
        for k in [
            "short",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZSE=",
            "!!!!!!!!!!!!!!!!!!!!!!==",
        ] {
            let r = req_with(&format!(
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {k}\r\nSec-WebSocket-Version: 13\r\n"
            ));
            assert_eq!(
                parse_request(r.as_bytes(), 8192).unwrap_err().status,
                400,
                "key {k}"
            );
        }
    }

    #[test]
    fn missing_upgrade_or_connection_is_400() {
        let r = req_with(&format!(
            "Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
        ));
        assert_eq!(parse_request(r.as_bytes(), 8192).unwrap_err().status, 400);
        let r = req_with(&format!("Upgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"));
        assert_eq!(parse_request(r.as_bytes(), 8192).unwrap_err().status, 400);
        let r = req("Sec-WebSocket-Version: 13\r\n").replace("HTTP/1.1", "HTTP/1.0");
        assert_eq!(parse_request(r.as_bytes(), 8192).unwrap_err().status, 400);
    }

    #[test]
    fn version_errors() {
        assert_eq!(
            parse_request(req("").as_bytes(), 8192).unwrap_err().status,
            400
        );
        let e = parse_request(req("Sec-WebSocket-Version: 8\r\n").as_bytes(), 8192).unwrap_err();
        assert_eq!(e.status, 426);
        let resp = String::from_utf8(e.response()).unwrap();
        assert!(resp.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(resp.contains("Sec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn malformed_request_is_400() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 8192)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn accept_response_format() {
        let r = String::from_utf8(accept_response(KEY, "wamp.2.json")).unwrap();
        assert!(r.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(r.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(r.contains("Sec-WebSocket-Protocol: wamp.2.json\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
        let r = String::from_utf8(accept_response(KEY, "")).unwrap();
        assert!(!r.contains("Sec-WebSocket-Protocol"));
    }

    #[test]
    fn client_server_handshake_round_trip() {
        let key = new_client_key();
        assert_eq!(key.len(), 24);
        assert!(valid_key(&key));
        assert_ne!(key, new_client_key());
        let r = client_request(
            "localhost:8080",
            "/ws",
            &["wamp.2.cbor", "wamp.2.json"],
            &key,
        );
        let (q, n) = parse_request(&r, 8192).unwrap().unwrap();
        assert_eq!(n, r.len());
        assert_eq!(q.key, key);
        assert_eq!(q.host.as_deref(), Some("localhost:8080"));
        assert_eq!(q.protocols, vec!["wamp.2.cbor", "wamp.2.json"]);

        let resp = accept_response(&q.key, "wamp.2.json");
        for cut in 0..resp.len() {
            assert_eq!(parse_response(&resp[..cut], &key).unwrap(), None);
        }
        let mut with_frame = resp.clone();
        with_frame.extend_from_slice(b"\x82\x00");
        assert_eq!(
            parse_response(&with_frame, &key).unwrap(),
            Some(("wamp.2.json".to_owned(), resp.len()))
        );
        // Wrong key → wrong accept.
        assert_eq!(
            parse_response(&resp, &new_client_key()).unwrap_err().status,
            502
        );
        // Non-101.
        let e = parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", &key)
            .unwrap_err();
        assert_eq!(e.status, 404);
    }

    // --- framing ---

    #[test]
    fn mask_round_trip_all_lengths() {
        for len in 0..40usize {
            let orig: Vec<u8> = (0..len as u8).collect();
            let mut d = orig.clone();
            apply_mask(&mut d, MASK);
            for (i, (&a, &b)) in orig.iter().zip(&d).enumerate() {
                assert_eq!(a ^ MASK[i % 4], b);
            }
            apply_mask(&mut d, MASK);
            assert_eq!(d, orig);
        }
    }

    #[test]
    fn rfc_masked_hello() {
        // RFC 6455 5.7 example: a masked "Hello".
        let mut buf = BytesMut::from(
            &[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ][..],
        );
        let (binary, data) = msg(server().decode(&mut buf).unwrap().unwrap());
        assert!(!binary);
        assert_eq!(&data[..], b"Hello");
        assert!(buf.is_empty());
        let mut out = Vec::new();
        encode_frame(&mut out, Opcode::Text, b"Hello", Some(MASK));
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let mut out = Vec::new();
        encode_frame(&mut out, Opcode::Text, b"Hello", None);
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    }

    #[test]
    fn lengths_7_16_64_bit() {
        for (len, hlen) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (70000, 10),
        ] {
            let (h, n) = server_header(Opcode::Binary, len);
            assert_eq!(n, hlen, "len {len}");
            assert_eq!(h[0], 0x82);
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut wire = Vec::new();
            encode_frame(&mut wire, Opcode::Binary, &payload, Some(MASK));
            assert_eq!(wire.len(), hlen + 4 + len);
            assert_eq!(
                &wire[1..hlen],
                &{
                    let mut m = h;
                    m[1] |= 0x80;
                    m
                }[1..hlen]
            );
            let mut buf = BytesMut::from(&wire[..]);
            let (binary, data) = msg(server().decode(&mut buf).unwrap().unwrap());
            assert!(binary);
            assert_eq!(&data[..], &payload[..]);

            // Unmasked server frame decoded by a client.
            let mut wire = Vec::new();
            wire.extend_from_slice(&h[..n]);
            wire.extend_from_slice(&payload);
            let mut buf = BytesMut::from(&wire[..]);
            let mut c = Decoder::new(Role::Client, 1 << 20);
            assert_eq!(
                &msg(c.decode(&mut buf).unwrap().unwrap()).1[..],
                &payload[..]
            );
        }
    }

    #[test]
    fn byte_at_a_time() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, Opcode::Text, &[b'a'; 300], Some(MASK));
        encode_frame(&mut wire, Opcode::Ping, b"p", Some(MASK));
        write_frame(&mut wire, 0x02, b"ab", Some(MASK));
        write_frame(&mut wire, 0x80, b"cd", Some(MASK));
        let mut d = server();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in &wire {
            buf.extend_from_slice(&[b]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0], Frame::Message { binary: false, data } if data.len() == 300));
        assert!(matches!(&got[1], Frame::Ping(p) if &p[..] == b"p"));
        assert!(matches!(&got[2], Frame::Message { binary: true, data } if &data[..] == b"abcd"));
        assert!(buf.is_empty());
    }

    #[test]
    fn fragmentation_with_interleaved_ping() {
        let mut buf = frame(0x01, b"Hel", Some(MASK));
        buf.extend_from_slice(&frame(0x89, b"ping!", Some(MASK)));
        buf.extend_from_slice(&frame(0x00, b"lo ", Some(MASK)));
        buf.extend_from_slice(&frame(0x8A, b"", Some(MASK)));
        buf.extend_from_slice(&frame(0x80, b"world", Some(MASK)));
        let mut d = server();
        assert!(matches!(d.decode(&mut buf).unwrap(), Some(Frame::Ping(p)) if &p[..] == b"ping!"));
        assert!(matches!(d.decode(&mut buf).unwrap(), Some(Frame::Pong(p)) if p.is_empty()));
        let (binary, data) = msg(d.decode(&mut buf).unwrap().unwrap());
        assert!(!binary);
        assert_eq!(&data[..], b"Hello world");
        assert!(d.decode(&mut buf).unwrap().is_none());
        // The decoder is ready for a new message afterwards.
        let mut buf = frame(0x82, b"x", Some(MASK));
        assert_eq!(&msg(d.decode(&mut buf).unwrap().unwrap()).1[..], b"x");
    }

    #[test]
    fn utf8_split_across_fragments_is_valid() {
        let s = "héllo €uro";
        let bytes = s.as_bytes();
        // Split inside the 2-byte 'é' and inside the 3-byte '€'.
        let mut buf = frame(0x01, &bytes[..2], Some(MASK));
        buf.extend_from_slice(&frame(0x00, &bytes[2..8], Some(MASK)));
        buf.extend_from_slice(&frame(0x80, &bytes[8..], Some(MASK)));
        let (_, data) = msg(server().decode(&mut buf).unwrap().unwrap());
        assert_eq!(&data[..], bytes);
    }

    #[test]
    fn invalid_utf8_is_1007() {
        let e = err(&mut server(), frame(0x81, &[0xce, 0xba, 0xff], Some(MASK)));
        assert_eq!(e.close_code, 1007);
        let mut buf = frame(0x01, &[0xce], Some(MASK));
        buf.extend_from_slice(&frame(0x80, &[0x41], Some(MASK)));
        assert_eq!(err(&mut server(), buf).close_code, 1007);
        // Binary messages are not checked.
        let mut buf = frame(0x82, &[0xff], Some(MASK));
        assert!(server().decode(&mut buf).unwrap().is_some());
    }

    #[test]
    fn protocol_errors_1002() {
        let cases: Vec<(BytesMut, WsError)> = vec![
            (frame(0xC1, b"x", Some(MASK)), E_RSV),
            (frame(0xA1, b"x", Some(MASK)), E_RSV),
            (frame(0x91, b"x", Some(MASK)), E_RSV),
            (frame(0x83, b"x", Some(MASK)), E_OPCODE),
            (frame(0x8B, b"x", Some(MASK)), E_OPCODE),
            (frame(0x81, b"x", None), E_UNMASKED),
            (frame(0x89, &[0u8; 126], Some(MASK)), E_CONTROL_LEN),
            (frame(0x09, b"x", Some(MASK)), E_CONTROL_FRAG),
            (frame(0x80, b"x", Some(MASK)), E_NO_START),
            (frame(0x88, &[0x03], Some(MASK)), E_CLOSE_LEN),
            (
                frame(0x88, &close_payload(999, ""), Some(MASK)),
                E_CLOSE_CODE,
            ),
            (
                frame(0x88, &close_payload(1005, ""), Some(MASK)),
                E_CLOSE_CODE,
            ),
            (
                frame(0x88, &close_payload(5000, ""), Some(MASK)),
                E_CLOSE_CODE,
            ),
            (frame(0x88, &[0x03, 0xe8, 0xff], Some(MASK)), E_CLOSE_UTF8),
        ];
        for (buf, expected) in cases {
            let e = err(&mut server(), buf);
            assert_eq!(e, expected);
            assert_eq!(e.close_code, 1002);
        }
        // New start while fragmenting.
        let mut buf = frame(0x01, b"a", Some(MASK));
        buf.extend_from_slice(&frame(0x81, b"b", Some(MASK)));
        assert_eq!(err(&mut server(), buf), E_NOT_CONT);
        // 64-bit length with the top bit set.
        let buf = BytesMut::from(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1][..]);
        assert_eq!(err(&mut server(), buf), E_LEN_MSB);
        // Detected from the header alone, before any payload arrives.
        assert_eq!(
            err(&mut server(), BytesMut::from(&[0xC1u8, 0x85][..])),
            E_RSV
        );
        assert_eq!(
            err(&mut server(), BytesMut::from(&[0x89u8, 0xFE][..])),
            E_CONTROL_LEN
        );
    }

    #[test]
    fn role_masking_rules() {
        let mut c = Decoder::new(Role::Client, 1024);
        assert_eq!(err(&mut c, frame(0x82, b"x", Some(MASK))), E_MASKED);
        let mut c = Decoder::new(Role::Client, 1024);
        let mut buf = frame(0x82, b"x", None);
        assert!(c.decode(&mut buf).unwrap().is_some());
        assert_eq!(err(&mut server(), frame(0x82, b"x", None)), E_UNMASKED);
    }

    #[test]
    fn close_frames() {
        let mut buf = frame(0x88, b"", Some(MASK));
        buf.extend_from_slice(&frame(0x88, &close_payload(1000, "bye"), Some(MASK)));
        buf.extend_from_slice(&frame(0x88, &close_payload(4001, "é"), Some(MASK)));
        let mut d = server();
        assert!(
            matches!(d.decode(&mut buf).unwrap(), Some(Frame::Close { code: None, reason }) if reason.is_empty())
        );
        assert!(
            matches!(d.decode(&mut buf).unwrap(), Some(Frame::Close { code: Some(1000), reason }) if reason == "bye")
        );
        assert!(
            matches!(d.decode(&mut buf).unwrap(), Some(Frame::Close { code: Some(4001), reason }) if reason == "é")
        );
        // Long reasons are cut to fit a control frame, on a char boundary.
        let p = close_payload(1000, &"€".repeat(100));
        assert!(p.len() <= 125);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        let mut buf = frame(0x88, &p, Some(MASK));
        assert!(server().decode(&mut buf).unwrap().is_some());
    }

    #[test]
    fn wrong_message_type_is_1003() {
        let text = frame(0x81, b"[1]", Some(MASK));
        let binary = frame(0x82, &[0x91, 0x01], Some(MASK));
        let mut bin_only = Decoder::new(Role::Server, 1 << 20).only(true);
        assert_eq!(err(&mut bin_only, text.clone()), E_DATA_TYPE);
        assert_eq!(E_DATA_TYPE.close_code, 1003);
        // The first fragment's header decides, before any payload.
        let mut bin_only = Decoder::new(Role::Server, 1 << 20).only(true);
        assert_eq!(
            err(&mut bin_only, BytesMut::from(&[0x01u8, 0x80 | 100][..])),
            E_DATA_TYPE
        );
        let mut text_only = Decoder::new(Role::Server, 1 << 20).only(false);
        assert_eq!(err(&mut text_only, binary.clone()), E_DATA_TYPE);
        // The right type, fragmented with a ping in between, and control frames pass.
        let mut bin_only = Decoder::new(Role::Server, 1 << 20).only(true);
        let mut buf = frame(0x02, &[0x91], Some(MASK));
        buf.extend_from_slice(&frame(0x89, b"p", Some(MASK)));
        buf.extend_from_slice(&frame(0x80, &[0x01], Some(MASK)));
        assert!(matches!(
            bin_only.decode(&mut buf).unwrap(),
            Some(Frame::Ping(_))
        ));
        let (is_bin, data) = msg(bin_only.decode(&mut buf).unwrap().unwrap());
        assert!(is_bin && data[..] == [0x91, 0x01]);
        let mut text_only = Decoder::new(Role::Server, 1 << 20).only(false);
        assert!(!msg(text_only.decode(&mut text.clone()).unwrap().unwrap()).0);
        // Without a restriction both kinds pass.
        let mut any = server();
        assert!(msg(any.decode(&mut text.clone()).unwrap().unwrap()).1.len() == 3);
        assert!(msg(any.decode(&mut binary.clone()).unwrap().unwrap()).0);
    }

    #[test]
    fn too_big_from_header() {
        let mut d = Decoder::new(Role::Server, 100);
        // Only the header (claiming 101 bytes): refused before payload arrives.
        let buf = BytesMut::from(&[0x82u8, 0x80 | 101][..]);
        assert_eq!(err(&mut d, buf).close_code, 1009);
        let mut d = Decoder::new(Role::Server, 100);
        let buf = BytesMut::from(&[0x82u8, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(err(&mut d, buf).close_code, 1009);
        // Exactly the limit is fine.
        let mut d = Decoder::new(Role::Server, 100);
        let mut buf = frame(0x82, &[0u8; 100], Some(MASK));
        assert!(d.decode(&mut buf).unwrap().is_some());
        // Reassembled total over the limit.
        let mut d = Decoder::new(Role::Server, 100);
        let mut buf = frame(0x02, &[0u8; 60], Some(MASK));
        buf.extend_from_slice(&[0x80, 0x80 | 41]);
        assert_eq!(err(&mut d, buf), E_TOO_BIG);
    }

    #[test]
    fn incomplete_reserves_room() {
        let mut buf = BytesMut::from(&[0x82u8, 0xFE, 0x10, 0x00][..]);
        let mut d = server();
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() >= 4 + 4 + 0x1000);
        assert_eq!(buf.len(), 4);
    }

    #[test]
    fn zero_copy_unfragmented() {
        let mut buf = frame(0x82, &[7u8; 64], Some(MASK));
        let base = buf.as_ptr() as usize;
        let (_, data) = msg(server().decode(&mut buf).unwrap().unwrap());
        assert_eq!(data.as_ptr() as usize, base + 2 + 4);
    }
    /// Cross-checks against an independent implementation: tungstenite-built
    /// client frames decode here, and our server frames parse there.
    #[test]
    fn interop_with_tungstenite() {
        use tungstenite::protocol::frame::coding::{Data, OpCode as TOp};
        use tungstenite::protocol::frame::{Frame as TFrame, FrameHeader};

        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..200 {
            let key = new_client_key();
            assert_eq!(
                accept_key(&key),
                tungstenite::handshake::derive_accept_key(key.as_bytes())
            );

            let len = match round % 4 {
                0 => rng.usize(0..126),
                1 => rng.usize(126..70_000),
                2 => rng.usize(65_536..200_000),
                _ => rng.usize(0..20),
            };
            let payload: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            let split = rng.usize(0..=len);
            let mask = [rng.u8(..), rng.u8(..), rng.u8(..), rng.u8(..)];

            // Two fragments plus a ping between them, built by tungstenite.
            let mut wire = Vec::new();
            for (op, part, fin) in [
                (TOp::Data(Data::Binary), &payload[..split], false),
                (TOp::Data(Data::Continue), &payload[split..], true),
            ] {
                let mut f = TFrame::message(part.to_vec(), op, fin);
                f.header_mut().mask = Some(mask);
                f.format(&mut wire).unwrap();
                if !fin {
                    let mut p = TFrame::ping(vec![1, 2, 3]);
                    p.header_mut().mask = Some(mask);
                    p.format(&mut wire).unwrap();
                }
            }
            let mut d = server();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut rest = &wire[..];
            while !rest.is_empty() {
                let n = rng.usize(1..=rest.len().min(40_000));
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                while let Some(f) = d.decode(&mut buf).unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got.len(), 2);
            assert!(matches!(&got[0], Frame::Ping(p) if p[..] == [1, 2, 3]));
            assert!(
                matches!(&got[1], Frame::Message { binary: true, data } if data[..] == payload[..])
            );

            // Our server frame, parsed by tungstenite.
            let (h, n) = server_header(Opcode::Binary, len);
            let mut out = h[..n].to_vec();
            out.extend_from_slice(&payload);
            let mut cur = std::io::Cursor::new(&out);
            let (th, tlen) = FrameHeader::parse(&mut cur).unwrap().unwrap();
            assert!(th.is_final && th.mask.is_none());
            assert_eq!(th.opcode, TOp::Data(Data::Binary));
            assert_eq!(tlen as usize, len);
            assert_eq!(cur.position() as usize, n);
        }
    }
}
