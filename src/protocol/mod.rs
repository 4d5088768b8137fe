//! WAMP wire format: message parsing/encoding for the JSON, MessagePack and
//! CBOR serializers.
//!
//! Frames are parsed into borrowed views so that application payloads
//! (Arguments, ArgumentsKw, Details, Options) can be forwarded as raw byte
//! spans without ever being decoded on the routing fast path.

pub mod cbor;
pub mod codes;
pub mod errors;
pub mod features;
pub mod json;
pub mod message;
pub mod msgpack;
pub mod passthru;
pub mod uri;
pub mod value;

pub use message::Message;
pub use value::{transcode, CodecError, Payload, Val};

/// The serialization format negotiated for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Serializer {
    Json = 0,
    MsgPack = 1,
    Cbor = 2,
}

impl Serializer {
    pub const ALL: [Serializer; 3] = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];

    /// WebSocket subprotocol name used during the HTTP upgrade.
    pub fn ws_subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
            Serializer::Cbor => "wamp.2.cbor",
        }
    }

    pub fn from_ws_subprotocol(s: &str) -> Option<Self> {
        match s {
            "wamp.2.json" => Some(Serializer::Json),
            "wamp.2.msgpack" => Some(Serializer::MsgPack),
            "wamp.2.cbor" => Some(Serializer::Cbor),
            _ => None,
        }
    }

    /// Serializer nibble of the RawSocket handshake.
    pub fn rawsocket_id(self) -> u8 {
        match self {
            Serializer::Json => 1,
            Serializer::MsgPack => 2,
            Serializer::Cbor => 3,
        }
    }

    pub fn from_rawsocket_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Serializer::Json),
            2 => Some(Serializer::MsgPack),
            3 => Some(Serializer::Cbor),
            _ => None,
        }
    }

    /// JSON travels in WebSocket text frames, the others in binary frames.
    pub fn is_binary(self) -> bool {
        !matches!(self, Serializer::Json)
    }

    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
            Serializer::Cbor => "cbor",
        }
    }
}

/// True if `s` is UTF-8. Validating scanners call this for every text value they pass over, and
/// most text on the wire is short ASCII (URIs, keys, small payload strings), for which the plain
/// word-at-a-time ASCII test is several times cheaper than a full UTF-8 validation.
#[inline]
pub(crate) fn is_utf8(s: &[u8]) -> bool {
    s.is_ascii() || std::str::from_utf8(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializer_names_round_trip() {
        for s in Serializer::ALL {
            assert_eq!(Serializer::from_ws_subprotocol(s.ws_subprotocol()), Some(s));
            assert_eq!(Serializer::from_rawsocket_id(s.rawsocket_id()), Some(s));
        }
        assert_eq!(Serializer::from_rawsocket_id(0), None);
        assert!(!Serializer::Json.is_binary());
        assert!(Serializer::Cbor.is_binary());
    }
}
