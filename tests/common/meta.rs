//! Helpers for the meta API tests: calls with keyword arguments, decoded results, sessions placed on
//! a chosen shard, and draining what a session was sent.

use std::borrow::Cow;
use std::time::Duration;

use wampd::protocol::{Message, Serializer, Val};

use super::{Client, TIMEOUT};

/// The shard a session id belongs to (`ids::shard_of_session`).
pub fn shard_of(session: u64, shards: usize) -> usize {
    wampd::router::ids::shard_of_session(session, shards)
}

/// Joins `realm1` with a session on `shard` (connections are spread round-robin, so a few tries
/// suffice; the others are closed with GOODBYE).
pub fn join_on(addr: &str, shard: usize, shards: usize) -> Client {
    for _ in 0..16 {
        let mut c = Client::join(addr, Serializer::Json);
        if shard_of(c.session, shards) == shard {
            return c;
        }
        c.leave();
    }
    panic!("no session landed on shard {shard} in 16 tries");
}

/// A positional list of session/subscription ids as u64s (panics on anything else).
pub fn ids(v: &Val<'_>) -> Vec<u64> {
    match v {
        Val::List(items) => items.iter().map(|i| i.as_u64().expect("an id")).collect(),
        other => panic!("expected a list of ids, got {other:?}"),
    }
}

impl Client {
    /// Calls `procedure`; Ok(positional results) or Err(error URI).
    pub fn call_kw(
        &mut self,
        procedure: &str,
        args: Vec<Val<'_>>,
        kwargs: Option<Val<'_>>,
    ) -> Result<Vec<Val<'static>>, String> {
        let request = self.req();
        self.send(&Message::Call {
            request,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed(procedure),
            args: Some(Val::List(args)),
            kwargs,
        });
        self.recv_with(|m| match m {
            Message::Result {
                request: r, args, ..
            } if r == request => match args.map(Val::into_owned) {
                Some(Val::List(items)) => Ok(items),
                None => Ok(Vec::new()),
                other => panic!("RESULT args not a list: {other:?}"),
            },
            Message::Error {
                request: r, error, ..
            } if r == request => Err(error.into_owned()),
            other => panic!("expected RESULT/ERROR for {procedure}, got {other:?}"),
        })
    }

    /// Calls `procedure` and returns its one positional result.
    pub fn call1(&mut self, procedure: &str, args: Vec<Val<'_>>) -> Val<'static> {
        let mut r = self
            .call_kw(procedure, args, None)
            .unwrap_or_else(|e| panic!("{procedure} failed: {e}"));
        assert_eq!(r.len(), 1, "{procedure} returned {r:?}");
        r.remove(0)
    }

    /// EVENTs (subscription, args) received until nothing came for `quiet`.
    pub fn drain_events(&mut self, quiet: Duration) -> Vec<(u64, Vec<Val<'static>>)> {
        let mut out = Vec::new();
        self.set_timeout(quiet);
        for _ in 0..10_000 {
            let Some(frame) = self.recv() else { break };
            let msg = Message::parse(self.ser, &frame).expect("valid message");
            match msg {
                Message::Event {
                    subscription, args, ..
                } => {
                    let args = match args.map(Val::into_owned) {
                        Some(Val::List(items)) => items,
                        _ => Vec::new(),
                    };
                    out.push((subscription, args));
                }
                other => panic!("expected EVENT, got {other:?}"),
            }
        }
        self.set_timeout(TIMEOUT);
        out
    }

    /// Says GOODBYE and waits for the router's.
    pub fn leave(&mut self) {
        self.send(&Message::Goodbye {
            details: Val::empty_dict(),
            reason: Cow::Borrowed("wamp.close.close_realm"),
        });
        self.set_timeout(Duration::from_secs(5));
        while let Some(frame) = self.recv() {
            if matches!(
                Message::parse(self.ser, &frame),
                Ok(Message::Goodbye { .. })
            ) {
                break;
            }
        }
        self.set_timeout(TIMEOUT);
    }

    /// Expects GOODBYE from the router; returns (reason, Details.message).
    pub fn expect_goodbye(&mut self) -> (String, Option<String>) {
        self.recv_with(|m| match m {
            Message::Goodbye { reason, details } => (
                reason.into_owned(),
                details
                    .get("message")
                    .and_then(|v| v.as_str())
                    .map(Cow::into_owned),
            ),
            other => panic!("expected GOODBYE, got {other:?}"),
        })
    }
}

impl Client {
    /// Calls `procedure`, expecting ERROR; returns its URI.
    pub fn call_error(
        &mut self,
        procedure: &str,
        args: Vec<Val<'_>>,
        kwargs: Option<Val<'_>>,
    ) -> String {
        match self.call_kw(procedure, args, kwargs) {
            Ok(r) => panic!("{procedure} succeeded with {r:?}; expected an error"),
            Err(e) => e,
        }
    }

    /// Calls `procedure`, expecting a RESULT without arguments.
    pub fn call_unit(&mut self, procedure: &str, args: Vec<Val<'_>>, kwargs: Option<Val<'_>>) {
        match self.call_kw(procedure, args, kwargs) {
            Ok(r) => assert!(r.is_empty(), "{procedure} returned {r:?}"),
            Err(e) => panic!("{procedure} failed: {e}"),
        }
    }
}

impl Client {
    /// Subscribes to every topic of `topics` (exact), ignoring EVENTs that arrive meanwhile (a meta
    /// subscriber hears about its own subscriptions); returns the ids in order.
    pub fn subscribe_all(&mut self, topics: &[&str]) -> Vec<u64> {
        let requests: Vec<u64> = topics
            .iter()
            .map(|t| {
                let request = self.req();
                self.send(&Message::Subscribe {
                    request,
                    options: Val::empty_dict(),
                    topic: Cow::Borrowed(t),
                });
                request
            })
            .collect();
        let mut ids = vec![0u64; topics.len()];
        for _ in 0..10_000 {
            if ids.iter().all(|&i| i != 0) {
                break;
            }
            self.recv_with(|m| match m {
                Message::Subscribed {
                    request,
                    subscription,
                } => {
                    let at = requests.iter().position(|&r| r == request).expect("ours");
                    ids[at] = subscription;
                }
                Message::Event { .. } => {}
                other => panic!("expected SUBSCRIBED, got {other:?}"),
            });
        }
        ids
    }
}
