//! RawSocket connections: the 4-byte handshake, then length-prefixed frames.

use std::os::fd::RawFd;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use crate::link::{establish, read_more, Deframer, Inbound, Shard, Transport};
use crate::protocol::Serializer;
use crate::router::wire::{Encoding, Wire};
use crate::transport::rawsocket::{self, FrameType, HandshakeError};

/// Serves a connection whose first byte is the RawSocket magic.
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
    while buf.len() < 4 {
        let read = monoio::time::timeout_at(deadline, read_more(&mut rd, buf)).await;
        let Ok((res, b)) = read else { return };
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
    }
    let hs = [buf[0], buf[1], buf[2], buf[3]];
    buf.advance(4);
    let client = match rawsocket::parse_client_handshake(hs) {
        Ok(h) => h,
        Err(e) => return refuse(&mut wr, e).await,
    };
    let Some(ser) = Serializer::from_rawsocket_id(client.serializer) else {
        return refuse(&mut wr, HandshakeError::SerializerUnsupported).await;
    };
    // Each side announces what it is willing to receive: we never send the client more than it
    // announced, and never accept more than our own limit.
    let our_exp = rawsocket::len_exp_for(cfg.max_message_size);
    let accept = 1usize << (9 + our_exp);
    let (res, _) = wr
        .write_all(rawsocket::server_reply(client.serializer, our_exp).to_vec())
        .await;
    if res.is_err() {
        return;
    }
    let enc = Encoding {
        ser,
        wire: Wire::RawSocket,
    };
    let deframer = RsDeframer {
        decoder: rawsocket::Decoder::new(accept),
    };
    let transport = Transport {
        rd,
        wr,
        buf,
        fd,
        info,
    };
    establish(&shard, transport, enc, client.max_len() + 4, deframer).await;
}

/// Refuses a connection over the session limit: RawSocket handshake error 4.
pub async fn refuse_full<W: AsyncWriteRent>(mut wr: W) {
    refuse(&mut wr, HandshakeError::MaxConnections).await
}

/// Answers a refused handshake with its error code and closes.
async fn refuse<W: AsyncWriteRent>(wr: &mut W, e: HandshakeError) {
    tracing::debug!("refused RawSocket handshake: {:?}", e);
    let _ = wr.write_all(rawsocket::error_reply(e).to_vec()).await;
    let _ = wr.shutdown().await;
}

struct RsDeframer {
    decoder: rawsocket::Decoder,
}

impl Deframer for RsDeframer {
    fn next(&mut self, buf: &mut BytesMut) -> Option<Inbound> {
        match self.decoder.decode(buf) {
            Ok(Some((FrameType::Message, data))) => Some(Inbound::Message(data)),
            Ok(Some((FrameType::Ping, data))) => {
                let mut v = Vec::with_capacity(4 + data.len());
                v.extend_from_slice(&rawsocket::header(FrameType::Pong, data.len()));
                v.extend_from_slice(&data);
                Some(Inbound::Reply(Bytes::from(v)))
            }
            Ok(Some((FrameType::Pong, _))) => Some(Inbound::Nothing),
            Ok(None) => None,
            Err(e) => {
                // RawSocket has no close frame: a frame over the negotiated length ends the connection.
                tracing::debug!("closing RawSocket: {:?}", e);
                Some(Inbound::Close(None))
            }
        }
    }

    fn goodbye_frame(&self) -> Option<Bytes> {
        None
    }

    fn ping_frame(&self) -> Bytes {
        let mut v = Vec::with_capacity(9);
        v.extend_from_slice(&rawsocket::header(FrameType::Ping, 5));
        v.extend_from_slice(b"wampd");
        Bytes::from(v)
    }
}
