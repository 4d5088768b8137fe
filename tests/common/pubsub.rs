//! Helpers for the Advanced PubSub tests: sessions placed on chosen shards, publications with
//! options, EVENT details.

use std::borrow::Cow;

use wampd::protocol::{Message, Serializer, Val};
use wampd::router::ids::shard_of_session;

use super::{dict, Client};

/// Opens sessions until one lands on `shard` (connections are spread round-robin, so this takes at
/// most `shards` tries); the others are kept open in `spare` so placement stays predictable.
pub fn join_on(
    addr: &str,
    shards: usize,
    shard: usize,
    ser: Serializer,
    spare: &mut Vec<Client>,
) -> Client {
    for _ in 0..=shards {
        let c = Client::join(addr, ser);
        if shard_of_session(c.session, shards) == shard {
            return c;
        }
        spare.push(c);
    }
    panic!("no session landed on shard {shard} of {shards}");
}

/// Publishes with `options` plus `acknowledge`, expects PUBLISHED; returns the publication id.
pub fn publish_with(c: &mut Client, topic: &str, mut options: Vec<(&str, Val<'_>)>, n: u64) -> u64 {
    options.push(("acknowledge", Val::Bool(true)));
    let request = c.req();
    c.send(&Message::Publish {
        request,
        options: dict(&options),
        topic: Cow::Borrowed(topic),
        args: Some(Val::List(vec![Val::UInt(n)])),
        kwargs: None,
    });
    c.recv_with(|m| match m {
        Message::Published {
            request: r,
            publication,
        } => {
            assert_eq!(r, request);
            publication
        }
        other => panic!("expected PUBLISHED, got {other:?}"),
    })
}

/// The next EVENT: (subscription, publication, details, first argument).
pub fn next_event(c: &mut Client) -> (u64, u64, Val<'static>, u64) {
    c.recv_with(|m| match m {
        Message::Event {
            subscription,
            publication,
            details,
            args,
            ..
        } => {
            let first = match args.map(|a| a.into_owned()) {
                Some(Val::List(items)) => items.first().and_then(|v| v.as_u64()).unwrap_or(0),
                _ => 0,
            };
            (subscription, publication, details.into_owned(), first)
        }
        other => panic!("expected EVENT, got {other:?}"),
    })
}

/// The first argument of each of the next `n` EVENTs.
pub fn next_args(c: &mut Client, n: usize) -> Vec<u64> {
    (0..n).map(|_| next_event(c).3).collect()
}

/// A list of session ids.
pub fn ids(items: &[u64]) -> Val<'static> {
    Val::List(items.iter().map(|&n| Val::UInt(n)).collect())
}

/// A list of strings.
pub fn strs(items: &[&str]) -> Val<'static> {
    Val::List(
        items
            .iter()
            .map(|s| Val::Str(Cow::Owned(s.to_string())))
            .collect(),
    )
}
