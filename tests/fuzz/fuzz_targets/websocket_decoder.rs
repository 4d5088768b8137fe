#![no_main]
//! Server-role WebSocket frame decoder fed in chunks, plus the HTTP upgrade parser.

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wampd::transport::websocket::{parse_request, Decoder, Frame, Role};

const MAX_MESSAGE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let _ = parse_request(data, 8 * 1024);

    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // The first byte picks the chunk size so frames arrive split at many offsets.
    let chunk = (first as usize % 64) + 1;
    let mut dec = Decoder::new(Role::Server, MAX_MESSAGE);
    let mut buf = BytesMut::new();
    'feed: for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(
                        buf.len() < before,
                        "a frame was produced without consuming input"
                    );
                    match frame {
                        Frame::Message { binary, data } => {
                            assert!(data.len() <= MAX_MESSAGE);
                            if !binary {
                                assert!(std::str::from_utf8(&data).is_ok());
                            }
                        }
                        Frame::Ping(p) | Frame::Pong(p) => assert!(p.len() <= 125),
                        Frame::Close { reason, .. } => assert!(reason.len() <= 123),
                    }
                }
                Ok(None) => {
                    // The decoder may reserve room for a frame, but never beyond
                    // the message limit plus a header.
                    assert!(buf.capacity() <= 4 * (MAX_MESSAGE + 64));
                    break;
                }
                Err(_) => break 'feed,
            }
        }
    }
});
