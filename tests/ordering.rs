//! The spec's ordering guarantees while traffic flows: SUBSCRIBED precedes every EVENT of that
//! subscription and REGISTERED every INVOCATION of that registration; after UNSUBSCRIBED no EVENT of
//! that subscription follows, after UNREGISTERED no INVOCATION of that registration.
//!
//! The router is started for each test and the test is its only client, connecting one session at a
//! time: connection k sits on shard k % N, so every report names the shard. A publisher (a caller)
//! keeps publishing (calling) while sessions on every shard subscribe (register) one after another:
//! a shard that makes a new subscriber visible to routing before telling it "subscribed" loses the
//! race often enough to show within a few rounds.

mod common;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{uints, Client, Got, Router, TIMEOUT};
use wampd::protocol::{codes, errors, Message, Serializer, Val};

const TOPIC: &str = "ordering.topic";
const PROCEDURE: &str = "ordering.procedure";
/// New subscribers (callees) per round, spread over the shards.
const SESSIONS: usize = 24;
const ROUNDS: usize = 4;
/// How long a session listens after UNSUBSCRIBED / UNREGISTERED for something that must not come.
const QUIET: Duration = Duration::from_millis(30);
/// Pause between two publications (calls): the traffic is continuous but leaves the CPU to others.
const PACE: Duration = Duration::from_micros(150);
/// Upper bound on a background publisher's or caller's life, whatever happens to the test.
const BACKGROUND_LIMIT: Duration = Duration::from_secs(60);
const EVENTS_PER_TURN: usize = 3;
const INVOCATIONS_PER_TURN: usize = 2;

fn serializer(k: usize) -> Serializer {
    Serializer::ALL[k % 3]
}

/// A session the test placed, for reports.
struct Who {
    name: String,
    shard: usize,
    client: Client,
}

/// Connects `count` sessions one at a time, the first being connection number `first`.
fn connect(r: &Router, shards: usize, first: usize, count: usize, role: &str) -> Vec<Who> {
    (first..first + count)
        .map(|k| {
            let ser = serializer(k);
            let client = Client::join(&r.addr, ser);
            let shard = k % shards;
            let name = format!("{role} #{k} (shard {shard}, {ser:?})");
            Who {
                name,
                shard,
                client,
            }
        })
        .collect()
}

/// What one test saw go wrong, and how many turns it watched.
#[derive(Default)]
struct Tally {
    turns: usize,
    early: usize,
    late: usize,
    /// Violating turns per shard of the session.
    by_shard: std::collections::BTreeMap<usize, usize>,
    lines: Vec<String>,
}

impl Tally {
    fn assert_clean(&self, what: &str) {
        for line in &self.lines {
            eprintln!("  {line}");
        }
        println!(
            "{what}: {} turns, {} saw a message before the reply, {} after the reply to leaving; \
             violating turns by shard: {:?}",
            self.turns, self.early, self.late, self.by_shard
        );
        assert!(
            self.lines.is_empty(),
            "{what}: {} ordering violations in {} turns (early {}, late {}); first: {}",
            self.lines.len(),
            self.turns,
            self.early,
            self.late,
            self.lines[0]
        );
    }
}

/// A thread sending a bounded stream of messages until told to stop.
struct Background<T> {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<T>,
}

impl<T: Send + 'static> Background<T> {
    fn spawn(f: impl FnOnce(&AtomicBool) -> T + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || f(&flag));
        Background { stop, handle }
    }

    fn finish(self) -> T {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("background thread")
    }
}

/// Publishes to TOPIC without acknowledgement until stopped; returns how many it published.
fn publish_continuously(mut c: Client, stop: &AtomicBool) -> u64 {
    let start = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < BACKGROUND_LIMIT && n < 1_000_000 {
        c.publish(TOPIC, Val::empty_dict(), Some(uints(&[n])), None);
        n += 1;
        std::thread::sleep(PACE);
    }
    n
}

/// Subscribes while events flow: an EVENT before SUBSCRIBED is a violation; then sees a few events
/// with the subscription's id, unsubscribes, and listens for an EVENT that must not come.
fn subscriber_turn(who: &mut Who, round: usize, tally: &mut Tally) {
    let c = &mut who.client;
    tally.turns += 1;
    let request = c.req();
    c.send(&Message::Subscribe {
        request,
        options: Val::empty_dict(),
        topic: Cow::Borrowed(TOPIC),
    });
    let mut early = Vec::new();
    let id = loop {
        match c.recv_got() {
            Some(Got::Subscribed {
                request: r,
                subscription,
            }) if r == request => break subscription,
            Some(Got::Event { subscription, args }) => early.push((subscription, args)),
            other => panic!(
                "round {round}, {}: expected SUBSCRIBED, got {other:?}",
                who.name
            ),
        }
    };
    if !early.is_empty() {
        tally.early += 1;
        *tally.by_shard.entry(who.shard).or_default() += 1;
        tally.lines.push(format!(
            "round {round}, {}: {} EVENT(s) before SUBSCRIBED (subscription {id}); first: \
             subscription {}, publication #{:?}",
            who.name,
            early.len(),
            early[0].0,
            early[0].1
        ));
    }
    for _ in 0..EVENTS_PER_TURN {
        match c.recv_got() {
            Some(Got::Event { subscription, .. }) => assert_eq!(
                subscription, id,
                "round {round}, {}: EVENT with another subscription id",
                who.name
            ),
            other => panic!("round {round}, {}: expected EVENT, got {other:?}", who.name),
        }
    }
    let request = c.req();
    c.send(&Message::Unsubscribe {
        request,
        subscription: id,
    });
    loop {
        match c.recv_got() {
            Some(Got::Unsubscribed { request: r }) if r == request => break,
            Some(Got::Event { subscription, .. }) if subscription == id => {}
            other => panic!(
                "round {round}, {}: expected UNSUBSCRIBED, got {other:?}",
                who.name
            ),
        }
    }
    c.set_timeout(QUIET);
    let mut late = Vec::new();
    while let Some(m) = c.recv_got() {
        match m {
            Got::Event { subscription, args } => late.push((subscription, args)),
            other => panic!("round {round}, {}: unexpected {other:?}", who.name),
        }
    }
    c.set_timeout(TIMEOUT);
    if !late.is_empty() {
        tally.late += 1;
        *tally.by_shard.entry(who.shard).or_default() += 1;
        tally.lines.push(format!(
            "round {round}, {}: {} EVENT(s) after UNSUBSCRIBED (subscription {id}); first: \
             subscription {}, publication #{:?}",
            who.name,
            late.len(),
            late[0].0,
            late[0].1
        ));
    }
}

/// A subscriber that stays subscribed (so the subscription id lives on while others come and go)
/// and reads everything, checking that each EVENT carries its id.
fn anchor(mut who: Who, stop: &AtomicBool) -> u64 {
    let id = who.client.subscribe(TOPIC);
    who.client.set_timeout(Duration::from_millis(100));
    let start = Instant::now();
    let mut events = 0u64;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < BACKGROUND_LIMIT {
        match who.client.recv_got() {
            Some(Got::Event { subscription, .. }) => {
                assert_eq!(
                    subscription, id,
                    "{}: EVENT of another subscription",
                    who.name
                );
                events += 1;
            }
            None => {}
            Some(other) => panic!("{}: unexpected {other:?}", who.name),
        }
    }
    events
}

fn subscribed_precedes_events(shards: usize) {
    let r = Router::start(shards, &[]);
    let mut publisher = connect(&r, shards, 0, 1, "publisher");
    let mut subscribers = connect(&r, shards, 1, SESSIONS, "subscriber");
    let anchor_who = connect(&r, shards, 1 + SESSIONS, 1, "anchor").remove(0);
    let anchor_name = anchor_who.name.clone();
    let publisher = publisher.remove(0).client;
    let publishing = Background::spawn(move |stop| publish_continuously(publisher, stop));
    let mut tally = Tally::default();
    let mut anchored = Some(anchor_who);
    let mut anchor_thread = None;
    for round in 0..ROUNDS {
        // The second half of the rounds runs with a subscriber that keeps the id alive.
        if round == ROUNDS / 2 {
            let who = anchored.take().expect("anchor");
            anchor_thread = Some(Background::spawn(move |stop| anchor(who, stop)));
        }
        for who in subscribers.iter_mut() {
            subscriber_turn(who, round, &mut tally);
        }
    }
    let published = publishing.finish();
    let anchor_events = anchor_thread.map_or(0, Background::finish);
    println!("{shards} shards: {published} publications, {anchor_events} events to {anchor_name}");
    assert!(anchor_events > 0, "{anchor_name} received no events");
    tally.assert_clean(&format!("subscribe/unsubscribe on {shards} shards"));
}

#[test]
fn subscribed_precedes_events_on_2_shards() {
    subscribed_precedes_events(2);
}

#[test]
fn subscribed_precedes_events_on_4_shards() {
    subscribed_precedes_events(4);
}

/// What one caller saw.
#[derive(Default, Debug)]
struct Calls {
    results: u64,
    no_such_procedure: u64,
    wrong: Vec<String>,
}

/// Calls PROCEDURE until stopped; every CALL must get exactly one answer: its RESULT (the callee
/// echoes the arguments) or `no_such_procedure` while nobody holds the procedure.
fn call_continuously(mut who: Who, caller: u64, stop: &AtomicBool) -> Calls {
    let c = &mut who.client;
    let start = Instant::now();
    let mut out = Calls::default();
    while !stop.load(Ordering::Relaxed)
        && start.elapsed() < BACKGROUND_LIMIT
        && out.wrong.is_empty()
    {
        let request = c.req();
        c.send(&Message::Call {
            request,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed(PROCEDURE),
            args: Some(uints(&[caller, request])),
            kwargs: None,
        });
        match c.recv_got() {
            Some(Got::Result { request: r, args }) if r == request => {
                if args != [caller, request] {
                    out.wrong
                        .push(format!("{}: RESULT {args:?} for call {request}", who.name));
                }
                out.results += 1;
            }
            Some(Got::Error {
                request_type: codes::CALL,
                request: r,
                error,
            }) if r == request && error == errors::NO_SUCH_PROCEDURE => {
                out.no_such_procedure += 1;
            }
            other => out.wrong.push(format!(
                "{}: call {request} answered by {other:?} (None: nothing within {TIMEOUT:?})",
                who.name
            )),
        }
        std::thread::sleep(PACE);
    }
    out
}

/// Answers an INVOCATION by echoing its arguments.
fn yield_back(c: &mut Client, request: u64, args: &[u64]) {
    c.send(&Message::Yield {
        request,
        options: Val::empty_dict(),
        args: Some(uints(args)),
        kwargs: None,
    });
}

/// Registers while calls flow: an INVOCATION before REGISTERED is a violation; then answers a few
/// invocations of the registration, unregisters, and listens for an INVOCATION that must not come.
/// Every INVOCATION is answered, so that no caller waits for nothing.
fn callee_turn(who: &mut Who, round: usize, tally: &mut Tally) {
    let c = &mut who.client;
    tally.turns += 1;
    let request = c.req();
    c.send(&Message::Register {
        request,
        options: Val::empty_dict(),
        procedure: Cow::Borrowed(PROCEDURE),
    });
    let mut early = Vec::new();
    let id = loop {
        match c.recv_got() {
            Some(Got::Registered {
                request: r,
                registration,
            }) if r == request => break registration,
            Some(Got::Invocation {
                request,
                registration,
                args,
            }) => {
                yield_back(c, request, &args);
                early.push((registration, args));
            }
            other => panic!(
                "round {round}, {}: expected REGISTERED, got {other:?}",
                who.name
            ),
        }
    };
    if !early.is_empty() {
        tally.early += 1;
        *tally.by_shard.entry(who.shard).or_default() += 1;
        tally.lines.push(format!(
            "round {round}, {}: {} INVOCATION(s) before REGISTERED (registration {id}); first: \
             registration {}, [caller, call] {:?}",
            who.name,
            early.len(),
            early[0].0,
            early[0].1
        ));
    }
    for _ in 0..INVOCATIONS_PER_TURN {
        match c.recv_got() {
            Some(Got::Invocation {
                request,
                registration,
                args,
            }) => {
                assert_eq!(
                    registration, id,
                    "round {round}, {}: INVOCATION of another registration",
                    who.name
                );
                yield_back(c, request, &args);
            }
            other => panic!(
                "round {round}, {}: expected INVOCATION, got {other:?}",
                who.name
            ),
        }
    }
    let request = c.req();
    c.send(&Message::Unregister {
        request,
        registration: id,
    });
    loop {
        match c.recv_got() {
            Some(Got::Unregistered { request: r }) if r == request => break,
            Some(Got::Invocation {
                request,
                registration,
                args,
            }) if registration == id => yield_back(c, request, &args),
            other => panic!(
                "round {round}, {}: expected UNREGISTERED, got {other:?}",
                who.name
            ),
        }
    }
    c.set_timeout(QUIET);
    let mut late = Vec::new();
    while let Some(m) = c.recv_got() {
        match m {
            Got::Invocation {
                request,
                registration,
                args,
            } => {
                yield_back(c, request, &args);
                late.push((registration, args));
            }
            other => panic!("round {round}, {}: unexpected {other:?}", who.name),
        }
    }
    c.set_timeout(TIMEOUT);
    if !late.is_empty() {
        tally.late += 1;
        *tally.by_shard.entry(who.shard).or_default() += 1;
        tally.lines.push(format!(
            "round {round}, {}: {} INVOCATION(s) after UNREGISTERED (registration {id}); first: \
             registration {}, [caller, call] {:?}",
            who.name,
            late.len(),
            late[0].0,
            late[0].1
        ));
    }
}

/// One caller per shard keeps calling while callees on every shard register and unregister in turn.
fn registered_precedes_invocations(shards: usize) {
    let r = Router::start(shards, &[]);
    let callers = connect(&r, shards, 0, shards, "caller");
    let mut callees = connect(&r, shards, shards, SESSIONS, "callee");
    let calling: Vec<_> = callers
        .into_iter()
        .enumerate()
        .map(|(i, who)| Background::spawn(move |stop| call_continuously(who, i as u64, stop)))
        .collect();
    let mut tally = Tally::default();
    for round in 0..ROUNDS {
        for who in callees.iter_mut() {
            callee_turn(who, round, &mut tally);
        }
    }
    let mut total = Calls::default();
    for calls in calling.into_iter().map(Background::finish) {
        total.results += calls.results;
        total.no_such_procedure += calls.no_such_procedure;
        total.wrong.extend(calls.wrong);
    }
    println!(
        "{shards} shards: {} calls answered by RESULT, {} by no_such_procedure",
        total.results, total.no_such_procedure
    );
    assert!(
        total.wrong.is_empty(),
        "calls went wrong: {:#?}",
        total.wrong
    );
    tally.assert_clean(&format!("register/unregister on {shards} shards"));
}

#[test]
fn registered_precedes_invocations_on_2_shards() {
    registered_precedes_invocations(2);
}

#[test]
fn registered_precedes_invocations_on_4_shards() {
    registered_precedes_invocations(4);
}
