//! A RawSocket client that accepts only 512 bytes (the smallest length RawSocket allows) gets a
//! WELCOME that fits, in every serializer, and can then call, be called, publish and subscribe.

mod common;

use std::borrow::Cow;

use common::ppt::{hello, hello_frame, rawsocket_max};
use common::{Client, Router};
use wampd::protocol::{Message, Serializer, Val};

const SHARDS: usize = 2;
const SMALLEST: usize = 512;

fn broker_features(details: &Val<'_>) -> Option<Val<'static>> {
    let f = details.get("roles")?.get("broker")?.get("features")?;
    Some(f.into_owned())
}

#[test]
fn the_full_welcome_outgrows_the_smallest_rawsocket_length() {
    // The premise of the compaction: were this false, the other tests would prove nothing.
    let r = Router::start(1, &[]);
    let mut c = Client::rawsocket(&r.addr, Serializer::Json);
    let frame = hello_frame(&mut c, true);
    assert!(
        frame.len() > SMALLEST,
        "full WELCOME is {} bytes",
        frame.len()
    );
}

#[test]
fn a_512_byte_client_gets_a_welcome_that_fits_and_works() {
    let r = Router::start(SHARDS, &[]);
    for ser in [Serializer::Json, Serializer::MsgPack, Serializer::Cbor] {
        for announce in [false, true] {
            let mut small = rawsocket_max(&r.addr, ser, 0);
            let frame = hello_frame(&mut small, announce);
            assert!(
                frame.len() <= SMALLEST,
                "{ser:?}: WELCOME of {} bytes",
                frame.len()
            );
            let details = match Message::parse(ser, &frame) {
                Ok(Message::Welcome { session, details }) => {
                    small.session = session;
                    details.into_owned()
                }
                other => panic!("expected WELCOME, got {other:?}"),
            };
            let roles = details.get("roles").expect("roles");
            assert!(roles.get("broker").is_some_and(|b| b.is_dict()));
            assert!(roles.get("dealer").is_some_and(|d| d.is_dict()));
            // Cut down to what the client announced: the feature it announced survives.
            let passthru = broker_features(&details)
                .and_then(|f| f.get("payload_passthru_mode"))
                .and_then(|v| v.as_bool());
            if announce {
                assert_eq!(passthru, Some(true), "{ser:?}");
            }
            exchange(&r.addr, &mut small, &format!("small.{ser:?}.{announce}"));
        }
    }
}

/// The small client registers and subscribes, a peer of ordinary size calls and publishes; then
/// the other way round.
fn exchange(addr: &str, small: &mut Client, name: &str) {
    let mut peer = Client::rawsocket(addr, Serializer::Json);
    hello(&mut peer, false);
    small.register(name);
    let sub = small.subscribe(name);
    let request = peer.send_call(name, Val::List(vec![Val::UInt(7)]));
    let (invocation, args) = small.invocation();
    assert!(args.unwrap().semantic_eq(&Val::List(vec![Val::UInt(7)])));
    small.send_yield(invocation, Val::List(vec![Val::UInt(8)]));
    assert!(peer
        .result(request)
        .unwrap()
        .semantic_eq(&Val::List(vec![Val::UInt(8)])));
    peer.publish_ack(name, Val::List(vec![Val::Str(Cow::Borrowed("hi"))]));
    small.recv_with(|m| match m {
        Message::Event { subscription, .. } => assert_eq!(subscription, sub),
        other => panic!("expected EVENT, got {other:?}"),
    });
    peer.register(&format!("{name}.back"));
    let request = small.send_call(&format!("{name}.back"), Val::List(vec![Val::UInt(1)]));
    let (invocation, _) = peer.invocation();
    peer.send_yield(invocation, Val::List(vec![Val::UInt(2)]));
    assert!(small.result(request).is_some());
}
