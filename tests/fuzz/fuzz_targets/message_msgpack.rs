#![no_main]
//! Message::parse on arbitrary msgpack frames; parsed messages must round-trip.

use libfuzzer_sys::fuzz_target;
use wampd::protocol::Serializer;

#[path = "roundtrip.rs"]
mod roundtrip;

fuzz_target!(|data: &[u8]| roundtrip::check(Serializer::MsgPack, data));
