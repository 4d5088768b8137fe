//! WAMP-over-RawSocket: the 4-byte handshake and the 4-byte-prefixed framing.
//!
//! Frames are split off the receive buffer without copying, as in the
//! WebSocket codec; RawSocket has no masking, so payloads go straight through.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// First octet of every handshake; no HTTP request can start with it, which
/// lets RawSocket and WebSocket share a listening port.
pub const MAGIC: u8 = 0x7F;

/// Largest payload a frame can describe: 2^24 (needs the extra `X` bit).
pub const MAX_FRAME_LEN: usize = 1 << 24;

/// A successful handshake: serializer id (1 JSON, 2 MessagePack, 3 CBOR, ...)
/// and the length exponent announced by the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub serializer: u8,
    pub max_len_exp: u8,
}

impl Handshake {
    /// The largest message the announcing peer accepts: `1 << (9 + max_len_exp)`.
    pub fn max_len(&self) -> usize {
        1 << (9 + self.max_len_exp as u32)
    }
}

/// Handshake error codes as carried in the upper nibble of an error reply.
/// `Illegal` (0) must never be sent; here it also reports a malformed
/// handshake (bad magic), i.e. "not a RawSocket peer: fail the connection".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HandshakeError {
    Illegal = 0,
    SerializerUnsupported = 1,
    MaxLenUnacceptable = 2,
    ReservedBits = 3,
    MaxConnections = 4,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::Illegal => "illegal handshake",
            HandshakeError::SerializerUnsupported => "serializer unsupported",
            HandshakeError::MaxLenUnacceptable => "maximum message length unacceptable",
            HandshakeError::ReservedBits => "use of reserved bits",
            HandshakeError::MaxConnections => "maximum connection count reached",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// Client's 4-byte handshake as seen by the server. Checks the magic octet and
/// the reserved octets; serializer 0 is illegal and reported as unsupported
/// (so the reply is a valid error code). Whether a non-zero serializer is
/// supported is the caller's decision.
pub fn parse_client_handshake(b: [u8; 4]) -> Result<Handshake, HandshakeError> {
    if b[0] != MAGIC {
        return Err(HandshakeError::Illegal);
    }
    if b[2] != 0 || b[3] != 0 {
        return Err(HandshakeError::ReservedBits);
    }
    let serializer = b[1] & 0x0F;
    if serializer == 0 {
        return Err(HandshakeError::SerializerUnsupported);
    }
    Ok(Handshake {
        serializer,
        max_len_exp: b[1] >> 4,
    })
}

fn handshake_bytes(serializer: u8, max_len_exp: u8) -> [u8; 4] {
    debug_assert!(serializer <= 15 && max_len_exp <= 15);
    [MAGIC, (max_len_exp << 4) | (serializer & 0x0F), 0, 0]
}

/// Router's accepting reply: echoes the serializer and announces the largest
/// message the router accepts.
pub fn server_reply(serializer: u8, max_len_exp: u8) -> [u8; 4] {
    handshake_bytes(serializer, max_len_exp)
}

/// Router's refusal: error code in the upper nibble, serializer nibble zero.
pub fn error_reply(e: HandshakeError) -> [u8; 4] {
    [MAGIC, (e as u8) << 4, 0, 0]
}

/// Client's request: wanted serializer and the largest message it accepts.
pub fn client_handshake(serializer: u8, max_len_exp: u8) -> [u8; 4] {
    handshake_bytes(serializer, max_len_exp)
}

/// Server's reply as seen by the client: `Ok(handshake)` or the error code.
/// Checking that the serializer matches the request is the caller's job.
pub fn parse_server_reply(b: [u8; 4]) -> Result<Handshake, HandshakeError> {
    if b[0] != MAGIC {
        return Err(HandshakeError::Illegal);
    }
    if b[2] != 0 || b[3] != 0 {
        return Err(HandshakeError::ReservedBits);
    }
    let serializer = b[1] & 0x0F;
    if serializer == 0 {
        return Err(match b[1] >> 4 {
            1 => HandshakeError::SerializerUnsupported,
            2 => HandshakeError::MaxLenUnacceptable,
            3 => HandshakeError::ReservedBits,
            4 => HandshakeError::MaxConnections,
            _ => HandshakeError::Illegal,
        });
    }
    Ok(Handshake {
        serializer,
        max_len_exp: b[1] >> 4,
    })
}

/// Largest exponent n in 0..=15 with `1 << (9 + n) <= max` (0 if `max` < 512),
/// i.e. the announcement that never promises more than we will accept.
pub fn len_exp_for(max: usize) -> u8 {
    let mut n = 0u8;
    while n < 15 && (1usize << (9 + n as u32 + 1)) <= max {
        n += 1;
    }
    n
}

/// Transport-level message type (`TTT` bits of the frame prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    Message = 0,
    Ping = 1,
    Pong = 2,
}

/// The 4-byte frame prefix. A length of exactly 2^24 is encoded with the
/// extra `X` bit and zero length bits, as the spec requires.
///
/// Panics if `len` > 2^24: such a message cannot be framed at all and the
/// caller must have refused it earlier (the peer's limit is at most 2^24).
pub fn header(t: FrameType, len: usize) -> [u8; 4] {
    assert!(len <= MAX_FRAME_LEN, "RawSocket frame too long: {len}");
    if len == MAX_FRAME_LEN {
        return [0x08 | t as u8, 0, 0, 0];
    }
    let l = (len as u32).to_be_bytes();
    [t as u8, l[1], l[2], l[3]]
}

/// A framing violation; either way the connection must be failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RsError {
    /// Announced payload length exceeds our limit.
    TooLong(usize),
    /// Frame type 3..=7, or any of the four reserved high bits set (then the
    /// value is the whole first octet, which is always > 7).
    ReservedFrameType(u8),
}

impl fmt::Display for RsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RsError::TooLong(n) => write!(f, "rawsocket frame too long: {n} bytes"),
            RsError::ReservedFrameType(t) => {
                write!(f, "rawsocket reserved frame type/bits: {t:#04x}")
            }
        }
    }
}

impl std::error::Error for RsError {}

/// Incremental frame decoder for one connection.
pub struct Decoder {
    max_len: usize,
}

impl Decoder {
    /// `max_len` is the limit we announced in our handshake.
    pub fn new(max_len: usize) -> Self {
        Decoder { max_len }
    }

    /// `Ok(None)` = need more bytes. Takes one frame off the front of `buf`
    /// without copying. An over-long frame is refused from its header, before
    /// its payload is buffered. When a frame is incomplete, `buf` is grown to
    /// hold it so the caller's next read can complete it in one go.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<(FrameType, Bytes)>, RsError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let b0 = buf[0];
        if b0 & 0xF0 != 0 {
            return Err(RsError::ReservedFrameType(b0));
        }
        let t = match b0 & 0x07 {
            0 => FrameType::Message,
            1 => FrameType::Ping,
            2 => FrameType::Pong,
            other => return Err(RsError::ReservedFrameType(other)),
        };
        // 25-bit length: X bit on top of the 24 L bits. X with non-zero L bits
        // is malformed and exceeds 2^24, so the limit check rejects it.
        let len = (((b0 & 0x08) as usize) << 21)
            | ((buf[1] as usize) << 16)
            | ((buf[2] as usize) << 8)
            | buf[3] as usize;
        if len > self.max_len {
            return Err(RsError::TooLong(len));
        }
        let total = 4 + len;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some((t, buf.split_to(len).freeze())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_handshake_valid() {
        for ser in 1..=15u8 {
            for exp in 0..=15u8 {
                let b = client_handshake(ser, exp);
                assert_eq!(b, [0x7F, (exp << 4) | ser, 0, 0]);
                let h = parse_client_handshake(b).unwrap();
                assert_eq!(
                    h,
                    Handshake {
                        serializer: ser,
                        max_len_exp: exp
                    }
                );
                assert_eq!(h.max_len(), 1usize << (9 + exp));
            }
        }
        assert_eq!(
            Handshake {
                serializer: 1,
                max_len_exp: 0
            }
            .max_len(),
            512
        );
        assert_eq!(
            Handshake {
                serializer: 1,
                max_len_exp: 15
            }
            .max_len(),
            16 << 20
        );
    }

    #[test]
    fn client_handshake_errors() {
        assert_eq!(
            parse_client_handshake([0x7E, 0xF1, 0, 0]),
            Err(HandshakeError::Illegal)
        );
        assert_eq!(
            parse_client_handshake(*b"GET "),
            Err(HandshakeError::Illegal)
        );
        assert_eq!(
            parse_client_handshake([0x7F, 0xF1, 1, 0]),
            Err(HandshakeError::ReservedBits)
        );
        assert_eq!(
            parse_client_handshake([0x7F, 0xF1, 0, 0x80]),
            Err(HandshakeError::ReservedBits)
        );
        assert_eq!(
            parse_client_handshake([0x7F, 0xF0, 0, 0]),
            Err(HandshakeError::SerializerUnsupported)
        );
    }

    #[test]
    fn server_replies() {
        assert_eq!(server_reply(2, 4), [0x7F, 0x42, 0, 0]);
        assert_eq!(
            parse_server_reply(server_reply(3, 15)),
            Ok(Handshake {
                serializer: 3,
                max_len_exp: 15
            })
        );
        for e in [
            HandshakeError::SerializerUnsupported,
            HandshakeError::MaxLenUnacceptable,
            HandshakeError::ReservedBits,
            HandshakeError::MaxConnections,
        ] {
            let b = error_reply(e);
            assert_eq!(b, [0x7F, (e as u8) << 4, 0, 0]);
            assert_eq!(parse_server_reply(b), Err(e));
        }
        assert_eq!(
            error_reply(HandshakeError::MaxConnections),
            [0x7F, 0x40, 0, 0]
        );
        assert_eq!(
            parse_server_reply([0x7F, 0x00, 0, 0]),
            Err(HandshakeError::Illegal)
        );
        assert_eq!(
            parse_server_reply([0x7F, 0x90, 0, 0]),
            Err(HandshakeError::Illegal)
        );
        assert_eq!(
            parse_server_reply([0x00, 0x42, 0, 0]),
            Err(HandshakeError::Illegal)
        );
        assert_eq!(
            parse_server_reply([0x7F, 0x42, 0, 1]),
            Err(HandshakeError::ReservedBits)
        );
    }

    #[test]
    fn len_exp_for_values() {
        assert_eq!(len_exp_for(0), 0);
        assert_eq!(len_exp_for(511), 0);
        assert_eq!(len_exp_for(512), 0);
        assert_eq!(len_exp_for(1023), 0);
        assert_eq!(len_exp_for(1024), 1);
        assert_eq!(len_exp_for(65536), 7);
        assert_eq!(len_exp_for((16 << 20) - 1), 14);
        assert_eq!(len_exp_for(16 << 20), 15);
        assert_eq!(len_exp_for(usize::MAX), 15);
        for n in 0..=15u8 {
            let h = Handshake {
                serializer: 1,
                max_len_exp: n,
            };
            assert_eq!(len_exp_for(h.max_len()), n);
        }
    }

    #[test]
    fn headers() {
        assert_eq!(header(FrameType::Message, 0), [0, 0, 0, 0]);
        assert_eq!(header(FrameType::Message, 0x112233), [0, 0x11, 0x22, 0x33]);
        assert_eq!(header(FrameType::Ping, 5), [1, 0, 0, 5]);
        assert_eq!(
            header(FrameType::Pong, (1 << 24) - 1),
            [2, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(header(FrameType::Message, 1 << 24), [0x08, 0, 0, 0]);
    }

    #[test]
    #[should_panic]
    fn header_too_long_panics() {
        header(FrameType::Message, (1 << 24) + 1);
    }

    fn frame(t: FrameType, payload: &[u8]) -> Vec<u8> {
        let mut v = header(t, payload.len()).to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decode_types_and_zero_copy() {
        let mut wire = frame(FrameType::Message, b"[1,\"realm\",{}]");
        wire.extend(frame(FrameType::Ping, b"abc"));
        wire.extend(frame(FrameType::Pong, b""));
        let mut buf = BytesMut::from(&wire[..]);
        let base = buf.as_ptr() as usize;
        let mut d = Decoder::new(1 << 16);
        let (t, p) = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(t, FrameType::Message);
        assert_eq!(&p[..], b"[1,\"realm\",{}]");
        assert_eq!(p.as_ptr() as usize, base + 4);
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Some((FrameType::Ping, Bytes::from_static(b"abc")))
        );
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Some((FrameType::Pong, Bytes::new()))
        );
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn byte_at_a_time() {
        let payloads: Vec<Vec<u8>> = vec![b"hello".to_vec(), vec![], vec![9u8; 1000]];
        let mut wire = Vec::new();
        for p in &payloads {
            wire.extend(frame(FrameType::Message, p));
        }
        let mut d = Decoder::new(4096);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in &wire {
            buf.extend_from_slice(&[b]);
            while let Some((_, p)) = d.decode(&mut buf).unwrap() {
                got.push(p.to_vec());
            }
        }
        assert_eq!(got, payloads);
        assert!(buf.is_empty());
    }

    #[test]
    fn reserved_frame_types_and_bits() {
        let mut d = Decoder::new(1024);
        for t in 3..=7u8 {
            let mut buf = BytesMut::from(&[t, 0, 0, 1, 0][..]);
            assert_eq!(d.decode(&mut buf), Err(RsError::ReservedFrameType(t)));
        }
        let mut buf = BytesMut::from(&[0x10u8, 0, 0, 0][..]);
        assert_eq!(d.decode(&mut buf), Err(RsError::ReservedFrameType(0x10)));
    }

    #[test]
    fn too_long_from_header() {
        let mut d = Decoder::new(512);
        // Header alone is enough to refuse.
        let mut buf = BytesMut::from(&header(FrameType::Message, 513)[..]);
        assert_eq!(d.decode(&mut buf), Err(RsError::TooLong(513)));
        let mut buf = BytesMut::from(&frame(FrameType::Message, &[0u8; 512])[..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap().1.len(), 512);
        // X bit: exactly 2^24 against a smaller limit, and X with non-zero L bits.
        let mut buf = BytesMut::from(&[0x08u8, 0, 0, 0][..]);
        assert_eq!(d.decode(&mut buf), Err(RsError::TooLong(1 << 24)));
        let mut d = Decoder::new(MAX_FRAME_LEN);
        let mut buf = BytesMut::from(&[0x08u8, 0, 0, 1][..]);
        assert_eq!(d.decode(&mut buf), Err(RsError::TooLong((1 << 24) + 1)));
        // X bit with a 2^24 limit: accepted, waits for the payload.
        let mut buf = BytesMut::from(&[0x08u8, 0, 0, 0][..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(buf.capacity() >= 4 + (1 << 24));
    }
}
