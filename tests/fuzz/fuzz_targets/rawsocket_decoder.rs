#![no_main]
//! RawSocket handshake parser and frame decoder fed in chunks.

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wampd::transport::rawsocket::{parse_client_handshake, Decoder};

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (hs, rest) = data.split_at(4);
    let max_len = match parse_client_handshake([hs[0], hs[1], hs[2], hs[3]]) {
        Ok(h) => h.max_len().min(64 * 1024),
        Err(_) => 64 * 1024,
    };
    let (&first, rest) = rest.split_first().unwrap();
    let chunk = (first as usize % 64) + 1;
    let mut dec = Decoder::new(max_len);
    let mut buf = BytesMut::new();
    'feed: for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match dec.decode(&mut buf) {
                Ok(Some((_, payload))) => {
                    assert!(payload.len() <= max_len);
                    assert_eq!(buf.len() + 4 + payload.len(), before);
                }
                Ok(None) => {
                    assert!(buf.capacity() <= 4 * (max_len + 64));
                    break;
                }
                Err(_) => break 'feed,
            }
        }
    }
});
