//! Outgoing bytes: a message is encoded once per (serializer, transport framing) and the finished
//! frame — transport header included, since server frames are never masked — is shared by reference
//! count between every session that wants exactly those bytes.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::protocol::passthru::Passthru;
use crate::protocol::{CodecError, Message, Payload, Serializer, Val};
use crate::transport::{rawsocket, websocket};

/// How a connection frames messages on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wire {
    WebSocket = 0,
    RawSocket = 1,
}

/// Serializer plus framing: two sessions with the same encoding take the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Encoding {
    pub ser: Serializer,
    pub wire: Wire,
}

impl Encoding {
    /// Number of distinct encodings.
    pub const COUNT: usize = 6;

    /// A dense index in `0..COUNT`, for per-encoding caches.
    pub fn index(self) -> usize {
        self.ser as usize * 2 + self.wire as usize
    }
}

/// Space reserved in front of an encoded message for the largest server frame header.
const HEADROOM: usize = 10;

/// Why a message could not be framed.
#[derive(Debug)]
pub enum FrameError {
    /// The message cannot be expressed in the receiver's serializer.
    Codec(CodecError),
    /// The encoded message is longer than the transport can carry at all (RawSocket: 2^24 bytes).
    /// Receivers announce smaller limits; those are checked against the finished frame.
    TooLarge(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Codec(e) => write!(f, "{e}"),
            FrameError::TooLarge(n) => write!(f, "message of {n} bytes is too large to frame"),
        }
    }
}

impl From<CodecError> for FrameError {
    fn from(e: CodecError) -> Self {
        FrameError::Codec(e)
    }
}

/// Encodes `msg` and frames it for `enc`, in one buffer without copying the body.
///
/// Every outgoing message passes through here, and the size check comes before the transport header
/// is written: a publication or answer that grew past what the transport can carry (a PUBLISH of the
/// largest allowed frame becomes a slightly longer EVENT; msgpack bin becomes longer JSON base64) is
/// an error for that one receiver, never a panic.
pub fn frame(enc: Encoding, msg: &Message<'_>) -> Result<Bytes, FrameError> {
    let mut v = Vec::with_capacity(128);
    v.resize(HEADROOM, 0);
    msg.encode(enc.ser, &mut v)?;
    let len = v.len() - HEADROOM;
    if enc.wire == Wire::RawSocket && len > rawsocket::MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    Ok(seal(enc, v))
}

/// Writes the transport header into the headroom of `v` and returns the finished frame.
fn seal(enc: Encoding, mut v: Vec<u8>) -> Bytes {
    let len = v.len() - HEADROOM;
    let start = match enc.wire {
        Wire::WebSocket => {
            let op = if enc.ser.is_binary() {
                websocket::Opcode::Binary
            } else {
                websocket::Opcode::Text
            };
            let (h, n) = websocket::server_header(op, len);
            v[HEADROOM - n..HEADROOM].copy_from_slice(&h[..n]);
            HEADROOM - n
        }
        Wire::RawSocket => {
            let h = rawsocket::header(rawsocket::FrameType::Message, len);
            v[HEADROOM - 4..HEADROOM].copy_from_slice(&h);
            HEADROOM - 4
        }
    };
    Bytes::from(v).slice(start..)
}

/// The frame that ends a transport politely, where the transport has one (WebSocket close 1001,
/// "going away"); RawSocket simply closes.
pub fn close_frame(enc: Encoding) -> Option<Bytes> {
    match enc.wire {
        Wire::WebSocket => {
            let mut v = Vec::with_capacity(16);
            let payload = websocket::close_payload(1001, "router shutting down");
            websocket::encode_frame(&mut v, websocket::Opcode::Close, &payload, None);
            Some(Bytes::from(v))
        }
        Wire::RawSocket => None,
    }
}

/// The application payload of a PUBLISH, CALL, YIELD or ERROR: raw spans of the frame it came in,
/// never decoded unless a receiver uses another serializer.
#[derive(Clone, Debug, Default)]
pub struct AppPayload {
    pub args: Option<Bytes>,
    pub kwargs: Option<Bytes>,
    /// Payload passthru attributes: they describe these bytes, so they travel with them to every
    /// receiver (and into a retained event). None on the plain path.
    pub ppt: Option<Arc<Passthru>>,
}

impl AppPayload {
    /// Keeps the raw spans of `args`/`kwargs` (parsed from `frame`) alive as slices of `frame`.
    pub fn from_frame(frame: &Bytes, args: &Option<Val<'_>>, kwargs: &Option<Val<'_>>) -> Self {
        let span = |v: &Option<Val<'_>>| match v {
            Some(Val::Raw(p)) => Some(frame.slice_ref(p.bytes)),
            _ => None,
        };
        AppPayload {
            args: span(args),
            kwargs: span(kwargs),
            ppt: None,
        }
    }

    /// The same payload described by the passthru attributes of `options` (already checked).
    #[inline(always)]
    pub fn with_passthru(mut self, options: &Val<'_>) -> Self {
        if !options.is_empty_dict() {
            self.ppt = passthru_of(options);
        }
        self
    }

    /// Appends the passthru attributes, if any, to outgoing Details.
    pub fn append_passthru<'a>(&'a self, out: &mut Vec<(Cow<'a, str>, Val<'a>)>) {
        if let Some(p) = &self.ppt {
            p.append(out);
        }
    }

    /// A copy that owns its bytes, for keeping beyond the publication: the spans of a frame may pin
    /// a larger receive buffer.
    pub fn detached(&self) -> Self {
        let own = |b: &Option<Bytes>| b.as_ref().map(|b| Bytes::copy_from_slice(b));
        AppPayload {
            args: own(&self.args),
            kwargs: own(&self.kwargs),
            ppt: self.ppt.clone(),
        }
    }

    /// Views for splicing into an outgoing message of the same or another serializer.
    pub fn vals(&self, ser: Serializer) -> (Option<Val<'_>>, Option<Val<'_>>) {
        fn raw(ser: Serializer, b: &Option<Bytes>) -> Option<Val<'_>> {
            b.as_ref().map(|bytes| Val::Raw(Payload { ser, bytes }))
        }
        (raw(ser, &self.args), raw(ser, &self.kwargs))
    }
}

/// What an EVENT's Details say beyond the concrete topic: the same for every subscriber of a
/// publication, so it is decided once and shared by every subscription's frames.
#[derive(Clone, Debug, Default)]
pub struct EventDetails {
    /// The publisher's session id, authid and authrole, when it is disclosed.
    pub publisher: Option<(u64, Arc<str>, Arc<str>)>,
    /// The event was retained earlier and is delivered to a new subscriber that asked for it.
    pub retained: bool,
}

impl EventDetails {
    /// True when there is nothing to add to Details.
    pub fn is_empty(&self) -> bool {
        self.publisher.is_none() && !self.retained
    }

    fn append<'a>(&'a self, out: &mut Vec<(Cow<'a, str>, Val<'a>)>) {
        if let Some((id, authid, authrole)) = &self.publisher {
            out.push((Cow::Borrowed("publisher"), Val::UInt(*id)));
            out.push((
                Cow::Borrowed("publisher_authid"),
                Val::Str(Cow::Borrowed(authid)),
            ));
            out.push((
                Cow::Borrowed("publisher_authrole"),
                Val::Str(Cow::Borrowed(authrole)),
            ));
        }
        if self.retained {
            out.push((Cow::Borrowed("retained"), Val::Bool(true)));
        }
    }
}

/// One EVENT of one publication to one subscription, built lazily at most once per encoding and shared
/// by every receiving session on every shard.
pub struct EventFrames {
    pub subscription: u64,
    pub publication: u64,
    /// The concrete topic, sent in Details only for pattern-based subscriptions.
    topic: Option<Arc<str>>,
    ser: Serializer,
    payload: AppPayload,
    /// Details beyond the topic (publisher disclosure, retained); None on the plain path.
    extra: Option<Arc<EventDetails>>,
    built: [OnceLock<Option<Bytes>>; Encoding::COUNT],
}

impl EventFrames {
    pub fn new(
        subscription: u64,
        publication: u64,
        topic: Option<Arc<str>>,
        ser: Serializer,
        payload: AppPayload,
    ) -> Self {
        EventFrames {
            subscription,
            publication,
            topic,
            ser,
            payload,
            extra: None,
            built: Default::default(),
        }
    }

    /// The same EVENT with `extra` added to its Details.
    pub fn with_details(mut self, extra: Option<Arc<EventDetails>>) -> Self {
        self.extra = extra.filter(|e| !e.is_empty());
        self
    }

    /// The EVENT frame for `enc` (None if the payload cannot be expressed in that serializer).
    pub fn get(&self, enc: Encoding) -> Option<Bytes> {
        self.built[enc.index()]
            .get_or_init(|| self.build(enc))
            .clone()
    }

    fn build(&self, enc: Encoding) -> Option<Bytes> {
        let mut entries = Vec::new();
        if let Some(t) = &self.topic {
            entries.push((Cow::Borrowed("topic"), Val::Str(Cow::Borrowed(&**t))));
        }
        if let Some(extra) = &self.extra {
            extra.append(&mut entries);
        }
        self.payload.append_passthru(&mut entries);
        let details = Val::Dict(entries);
        let (args, kwargs) = self.payload.vals(self.ser);
        let msg = Message::Event {
            subscription: self.subscription,
            publication: self.publication,
            details,
            args,
            kwargs,
        };
        match frame(enc, &msg) {
            Ok(b) => Some(b),
            Err(e) => {
                // Counted and logged per skipped subscriber by the shard that delivers it.
                tracing::debug!(error = %e, "cannot frame EVENT for {:?}", enc);
                None
            }
        }
    }
}

/// The passthru attributes of non-empty options, out of line: most options hold none.
#[inline(never)]
fn passthru_of(options: &Val<'_>) -> Option<Arc<Passthru>> {
    Passthru::of(options).map(Arc::new)
}
