//! WebSocket connections: the HTTP upgrade, then RFC 6455 frames carrying one WAMP message each.

use std::os::fd::RawFd;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use crate::link::{establish, read_more, Deframer, Inbound, Shard, Transport};
use crate::protocol::Serializer;
use crate::router::wire::{Encoding, Wire};
use crate::transport::websocket::{self, Frame, HttpError, Opcode, Role};

/// Serves a connection whose first bytes (in `buf`) are not RawSocket: an HTTP upgrade to WebSocket.
pub async fn serve<R, W>(
    shard: Rc<Shard>,
    mut rd: R,
    mut wr: W,
    mut buf: BytesMut,
    fd: RawFd,
    info: crate::transport::PeerInfo,
) where
    R: AsyncReadRent,
    W: AsyncWriteRent + 'static,
{
    let cfg = shard.config.clone();
    let deadline = monoio::time::Instant::now() + cfg.handshake_timeout;
    let (request, used) = loop {
        match websocket::parse_request(&buf, cfg.max_handshake_size) {
            Ok(Some(done)) => break done,
            Ok(None) => {}
            Err(e) => {
                refuse(&mut wr, &e).await;
                return;
            }
        }
        let read = monoio::time::timeout_at(deadline, read_more(&mut rd, buf)).await;
        let Ok((res, b)) = read else { return };
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
    };
    buf.advance(used);

    let Some((ser, protocol)) = request
        .protocols
        .iter()
        .find_map(|p| Serializer::from_ws_subprotocol(p).map(|s| (s, p.clone())))
    else {
        let e = HttpError {
            status: 400,
            reason: "Bad Request",
            message: format!(
                "no supported WAMP subprotocol offered (got {:?}); this router speaks wamp.2.json, wamp.2.msgpack and wamp.2.cbor",
                request.protocols
            ),
        };
        refuse(&mut wr, &e).await;
        return;
    };
    let (res, _) = wr
        .write_all(websocket::accept_response(&request.key, &protocol))
        .await;
    if res.is_err() {
        return;
    }

    let enc = Encoding {
        ser,
        wire: Wire::WebSocket,
    };
    // WAMP fixes the message type per subprotocol (text for JSON, binary otherwise): the other one
    // fails the connection with close code 1003.
    let deframer = WsDeframer {
        decoder: websocket::Decoder::new(Role::Server, cfg.max_message_size).only(ser.is_binary()),
    };
    let max_frame = cfg.max_message_size + websocket::MAX_HEADER_LEN;
    let transport = Transport {
        rd,
        wr,
        buf,
        fd,
        info,
    };
    establish(&shard, transport, enc, max_frame, deframer).await;
}

/// Refuses a connection over the session limit: reads the upgrade request, answers 503.
pub async fn refuse_full<R, W>(shard: Rc<Shard>, mut rd: R, mut wr: W, mut buf: BytesMut)
where
    R: AsyncReadRent,
    W: AsyncWriteRent,
{
    let deadline = monoio::time::Instant::now() + shard.config.handshake_timeout;
    while let Ok(None) = websocket::parse_request(&buf, shard.config.max_handshake_size) {
        let read = monoio::time::timeout_at(deadline, read_more(&mut rd, buf)).await;
        let Ok((res, b)) = read else { return };
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
    }
    let e = HttpError {
        status: 503,
        reason: "Service Unavailable",
        message: "the router serves its maximum number of sessions; try again later".into(),
    };
    refuse(&mut wr, &e).await;
}

/// Answers a refused upgrade with its HTTP error and closes.
async fn refuse<W: AsyncWriteRent>(wr: &mut W, e: &HttpError) {
    tracing::debug!(
        status = e.status,
        "refused WebSocket upgrade: {}",
        e.message
    );
    let _ = wr.write_all(e.response()).await;
    let _ = wr.shutdown().await;
}

struct WsDeframer {
    decoder: websocket::Decoder,
}

/// A complete server (unmasked) frame.
fn control(op: Opcode, payload: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(payload.len() + 4);
    websocket::encode_frame(&mut v, op, payload, None);
    Bytes::from(v)
}

impl Deframer for WsDeframer {
    fn next(&mut self, buf: &mut BytesMut) -> Option<Inbound> {
        match self.decoder.decode(buf) {
            Ok(Some(Frame::Message { data, .. })) => Some(Inbound::Message(data)),
            Ok(Some(Frame::Ping(p))) => Some(Inbound::Reply(control(Opcode::Pong, &p))),
            Ok(Some(Frame::Pong(_))) => Some(Inbound::Nothing),
            Ok(Some(Frame::Close { code, .. })) => {
                // Echo the peer's code, as RFC 6455 suggests, completing the close handshake.
                let payload = websocket::close_payload(code.unwrap_or(1000), "");
                Some(Inbound::Close(Some(control(Opcode::Close, &payload))))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::debug!("closing WebSocket: {} ({})", e.reason, e.close_code);
                let payload = websocket::close_payload(e.close_code, e.reason);
                Some(Inbound::Close(Some(control(Opcode::Close, &payload))))
            }
        }
    }

    fn goodbye_frame(&self) -> Option<Bytes> {
        Some(control(Opcode::Close, &websocket::close_payload(1000, "")))
    }

    fn ping_frame(&self) -> Bytes {
        control(Opcode::Ping, b"wampd")
    }
}
