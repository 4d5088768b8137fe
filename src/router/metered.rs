//! What the router tells metrics and logs: the message type of a finished frame (so that sent
//! messages are counted by type at the one place every frame is queued), and a session's log span.

use super::wire::{Encoding, Wire};
use super::Router;
use crate::protocol::Serializer;

/// The WAMP message type of a complete outgoing frame, read from its first bytes (server frames
/// are unmasked, and every message starts with its type code, a small unsigned integer).
pub(crate) fn frame_type(enc: Encoding, frame: &[u8]) -> Option<u64> {
    let body = match enc.wire {
        Wire::RawSocket => frame.get(4..)?,
        Wire::WebSocket => match frame.get(1)? & 0x7f {
            126 => frame.get(4..)?,
            127 => frame.get(10..)?,
            _ => frame.get(2..)?,
        },
    };
    match enc.ser {
        Serializer::Json => {
            let digits = body
                .iter()
                .skip_while(|b| **b == b'[' || b.is_ascii_whitespace())
                .take_while(|b| b.is_ascii_digit());
            digits
                .take(3)
                .try_fold(0u64, |n, d| Some(n * 10 + u64::from(d - b'0')))
        }
        Serializer::MsgPack => {
            let skip = match *body.first()? {
                0x90..=0x9f => 1,
                0xdc => 3,
                0xdd => 5,
                _ => return None,
            };
            let code = *body.get(skip)?;
            (code < 0x80).then_some(u64::from(code))
        }
        Serializer::Cbor => {
            let skip = match *body.first()? {
                0x80..=0x97 => 1,
                0x98 => 2,
                0x99 => 3,
                0x9a => 5,
                0x9f => 1,
                _ => return None,
            };
            match *body.get(skip)? {
                c @ 0x00..=0x17 => Some(u64::from(c)),
                0x18 => body.get(skip + 1).map(|c| u64::from(*c)),
                _ => None,
            }
        }
    }
}

impl Router {
    /// The realm index of session `sid` on this shard and a log span naming the session, its
    /// realm and authid, for every log line written while the session's messages are handled.
    pub fn session_span(&self, sid: u64) -> Option<(usize, tracing::Span)> {
        let s = self.sessions.get(&sid)?;
        let span = tracing::info_span!(
            "session",
            session = sid,
            realm = %self.realms.name(s.realm),
            authid = %s.identity.authid,
        );
        Some((s.realm, span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Message, Val};
    use crate::router::wire::frame;

    #[test]
    fn the_type_of_every_encoding_is_read_back() {
        let big = "x".repeat(70_000);
        for ser in [Serializer::Json, Serializer::MsgPack, Serializer::Cbor] {
            for wire in [Wire::RawSocket, Wire::WebSocket] {
                let enc = Encoding { ser, wire };
                for (code, arg) in [(36, "a"), (50, "b"), (8, big.as_str())] {
                    let msg = match code {
                        36 => Message::Event {
                            subscription: 1,
                            publication: 2,
                            details: Val::empty_dict(),
                            args: Some(Val::List(vec![Val::Str(arg.into())])),
                            kwargs: None,
                        },
                        50 => Message::Result {
                            request: 1,
                            details: Val::empty_dict(),
                            args: None,
                            kwargs: None,
                        },
                        _ => Message::Error {
                            request_type: 48,
                            request: 1,
                            details: Val::empty_dict(),
                            error: "wamp.error.x".into(),
                            args: Some(Val::List(vec![Val::Str(arg.into())])),
                            kwargs: None,
                        },
                    };
                    let f = frame(enc, &msg).unwrap();
                    assert_eq!(frame_type(enc, &f), Some(code), "{enc:?}");
                }
            }
        }
    }
}
