//! Randomized churn against a reference model, on 4 shards: sessions subscribe, unsubscribe,
//! register, unregister, leave (GOODBYE) and drop their connection (FIN or RST) and reconnect, while
//! others publish (acknowledged) and call. Then the router is quiesced and every shard is probed.
//!
//! The model judges only by what the test itself has seen, in the order it saw it (one driver thread
//! stamps every send and every received message with a logical clock), so it is exact and timing
//! cannot make it flaky: an EVENT whose PUBLISH was sent after the subscriber's SUBSCRIBED was seen,
//! and whose PUBLISHED was seen before UNSUBSCRIBE (or GOODBYE, or the decision to drop) was sent,
//! must be delivered; one whose PUBLISHED was seen before SUBSCRIBE was sent, or that arrives after
//! UNSUBSCRIBED, must not; anything in between may go either way. Likewise a CALL sent while a
//! callee's REGISTERED had been seen (and it had not started to leave) must reach that callee.
//! Once the churn is over, the meta API (asked on every shard) must count the sessions,
//! subscribers and callees the model holds. A third of the publications ask to be retained and two
//! patterns keep event history; publications of one topic come from every shard, so the model
//! knows their order only where a PUBLISHED was seen before the next PUBLISH was sent: on every
//! shard, a fresh `get_retained` subscriber must get a retained publication that none certainly
//! followed, and `get_events` a last N that contradicts no order the model knows.
//!
//! Connections are placed on shards round-robin in accept order and this test is the router's only
//! client, connecting one session at a time: connection number k (a session's `tag`) is on shard
//! k % 4. `WAMPD_CHURN_SEED` replays a seed (the sequence of random choices; the interleaving with
//! the router stays the machine's), `WAMPD_CHURN_SECS` sets the churn duration (default 30 s).

mod common;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{
    dict, got, rawsocket_read, rawsocket_stream, rawsocket_write, s, uints, Got, InProcess,
};
use wampd::protocol::uri::MatchPolicy;
use wampd::protocol::{codes, errors, Message, Serializer, Val};

const SHARDS: u64 = 4;
/// Sessions doing random operations at any time.
const SLOTS: usize = 16;
/// The first few slots never leave during the churn: their calls and subscriptions last long enough
/// for an answer or an EVENT that never comes to show.
const STAYING_SLOTS: usize = 4;
const TOPICS: [&str; 6] = [
    "churn.news",
    "churn.prices",
    "churn.chat",
    "churn.alerts",
    "churn.rare.a",
    "churn.rare.b",
];
/// How often a SUBSCRIBE picks each topic: two are held by many sessions on every shard (a shared
/// id that shards join and leave), the rare ones are retired and re-created all the time.
const TOPIC_WEIGHTS: [u32; 6] = [6, 6, 3, 2, 1, 1];
const PROCEDURES: [&str; 5] = [
    "churn.add",
    "churn.echo",
    "churn.time",
    "churn.rare.x",
    "churn.rare.y",
];
/// One random operation this often (at most).
const OP_EVERY: Duration = Duration::from_micros(400);
/// Every request gets its answer within this, however loaded the machine.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// After a dropped connection, how long the router may take to notice before the procedures the
/// session held must be free again.
const DROP_SETTLE: Duration = Duration::from_secs(3);
/// A drop waits (at most this long) until the session has received every EVENT it must receive.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
const MAX_PUBLISHES_IN_FLIGHT: usize = 8;
/// A publish operation sends up to this many publications at once.
const PUBLISH_BURST: usize = 4;
const MAX_CALLS_IN_FLIGHT: usize = 4;
/// A callee answers one INVOCATION in this many at once; the others after up to HOLD_MAX_MS.
const HOLD_ONE_IN: u32 = 3;
const HOLD_MAX_MS: u64 = 40;
/// One publication in this many asks the router to retain it.
const RETAIN_ONE_IN: u32 = 3;
/// Patterns the router keeps event history for: (policy, pattern, topics of TOPICS it matches,
/// events kept). Small limits, so that the churn wraps them many times over.
const HISTORY: [(MatchPolicy, &str, &[usize], usize); 2] = [
    (MatchPolicy::Exact, "churn.news", &[0], 16),
    (MatchPolicy::Prefix, "churn.rare.", &[4, 5], 8),
];
/// Failures printed in full (all are counted).
const PRINT_FAILURES: usize = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Publish,
    Call,
    Subscribe,
    Unsubscribe,
    Register,
    Unregister,
    Goodbye,
    Drop,
    RegisterAndDrop,
}

/// Relative frequency of each operation (per mille).
const OPS: [(Op, u32); 9] = [
    (Op::Publish, 400),
    (Op::Call, 150),
    (Op::Subscribe, 150),
    (Op::Unsubscribe, 120),
    (Op::Register, 80),
    (Op::Unregister, 80),
    (Op::Goodbye, 8),
    (Op::Drop, 8),
    (Op::RegisterAndDrop, 4),
];

/// A publication the test sent; its number is its only argument.
struct Pub {
    topic: usize,
    publisher: u64,
    /// Per-publisher sequence, for the per-publisher order check.
    seq: u64,
    sent: u64,
    acked: Option<u64>,
    /// Published with `retain: true`.
    retain: bool,
}

/// A CALL the test sent; its number is its first argument.
struct CallRec {
    caller: u64,
    procedure: usize,
    sent: u64,
    /// The session the INVOCATION reached.
    invoked_at: Option<u64>,
    yielded: bool,
    /// The callee left without answering: only `canceled` may come back.
    must_cancel: bool,
    /// The callee answered, then reset its connection: the answer may have been discarded with
    /// the unsent data, and `canceled` come back instead.
    yield_may_be_lost: bool,
    answered: bool,
}

/// One session's claim (possible or confirmed) on a procedure, from REGISTER sent until the router
/// certainly released it.
struct Hold {
    tag: u64,
    start: u64,
    /// (registration id, when REGISTERED was seen).
    registered: Option<(u64, u64)>,
    /// Answered `procedure_already_exists`: never held.
    rejected: bool,
    /// UNREGISTER or GOODBYE sent, or the drop decided.
    release_sent: Option<u64>,
    /// UNREGISTERED or the GOODBYE reply seen, or DROP_SETTLE after the connection was closed.
    end: Option<u64>,
}

/// One session's subscription to one topic, from SUBSCRIBE sent to UNSUBSCRIBED seen.
struct Interval {
    sent: u64,
    id: Option<u64>,
    /// When SUBSCRIBED was seen.
    observed: Option<u64>,
    /// UNSUBSCRIBE or GOODBYE sent, or the drop decided.
    end_sent: Option<u64>,
    /// What ended it, for reports.
    ended_by: &'static str,
    received: HashSet<u64>,
}

#[derive(Clone, Copy, Debug)]
enum Pending {
    Subscribe(usize),
    Unsubscribe(usize),
    Publish(u64),
    Register(usize),
    Unregister(usize),
    Call(u64),
}

impl Pending {
    /// The message type of the request.
    fn code(self) -> u64 {
        match self {
            Pending::Subscribe(_) => codes::SUBSCRIBE,
            Pending::Unsubscribe(_) => codes::UNSUBSCRIBE,
            Pending::Publish(_) => codes::PUBLISH,
            Pending::Register(_) => codes::REGISTER,
            Pending::Unregister(_) => codes::UNREGISTER,
            Pending::Call(_) => codes::CALL,
        }
    }
}

/// An INVOCATION the callee answers later.
struct Held {
    due: Instant,
    request: u64,
    call: u64,
}

enum Closing {
    Open,
    /// GOODBYE sent; `replied` once the router's GOODBYE came back.
    Goodbye {
        replied: bool,
    },
    /// Decided to drop; the socket closes once the EVENTs it must receive (`must`: topic,
    /// publication) and the answers to its calls have all arrived, or DRAIN_LIMIT passed.
    Drop {
        since: Instant,
        must: Vec<(usize, u64)>,
        rst: bool,
    },
    /// The socket is closed; waiting for the reader to report the end.
    Closed,
}

struct Session {
    tag: u64,
    ser: Serializer,
    writer: TcpStream,
    reader: Option<JoinHandle<()>>,
    next_request: u64,
    pending: HashMap<u64, (Pending, Instant)>,
    subs: Vec<Option<Interval>>,
    /// Per topic: since when (clock) the session has certainly not been subscribed.
    gap_start: Vec<Option<u64>>,
    /// Per procedure: index of the session's current hold in `World::holds`.
    regs: Vec<Option<usize>>,
    closing: Closing,
    held: Vec<Held>,
    seen: HashSet<u64>,
    last_seq_from: HashMap<u64, u64>,
    last_call_from: HashMap<u64, u64>,
    pub_seq: u64,
    /// Calls this session answered (as callee), for a reset that may discard the answers.
    yielded: Vec<u64>,
    publishes_in_flight: usize,
    calls_in_flight: usize,
}

impl Session {
    fn open(&self) -> bool {
        matches!(self.closing, Closing::Open)
    }
}

/// What the test did and checked, printed at the end.
#[derive(Default, Debug)]
struct Counts {
    ops: u64,
    connects: u64,
    publications: u64,
    events_checked: u64,
    must_deliver_satisfied: u64,
    must_not_deliver_satisfied: u64,
    subscribes: u64,
    subscribed: u64,
    unsubscribes: u64,
    registers: u64,
    registered: u64,
    register_rejected: u64,
    unregisters: u64,
    calls: u64,
    results: u64,
    no_such_procedure: u64,
    canceled: u64,
    must_cancel_checked: u64,
    invocations_held: u64,
    goodbyes: u64,
    drops_fin: u64,
    drops_rst: u64,
    register_and_drop: u64,
    probe_deliveries: u64,
    probe_calls: u64,
    final_registrations: u64,
    meta_checks: u64,
    retained_publications: u64,
    retained_checked: u64,
    /// Checks where the model allowed exactly one retained publication.
    retained_unambiguous: u64,
    history_events_checked: u64,
}

#[derive(Default)]
struct Faults {
    lines: Vec<String>,
    by_kind: BTreeMap<&'static str, usize>,
}

type Inbox = (u64, Option<Got>);

/// The driver: every session, the model, and the checks.
struct World {
    addr: String,
    rng: fastrand::Rng,
    clock: u64,
    next_tag: u64,
    tx: Sender<Inbox>,
    rx: Receiver<Inbox>,
    sessions: HashMap<u64, Session>,
    slots: Vec<Option<u64>>,
    pubs: Vec<Pub>,
    by_topic: Vec<Vec<u64>>,
    calls: Vec<CallRec>,
    holds: Vec<Vec<Hold>>,
    /// Holds of dropped sessions waiting for DROP_SETTLE: (procedure, hold, connection closed at).
    settling: Vec<(usize, usize, Instant)>,
    faults: Faults,
    n: Counts,
}

fn who(tag: u64) -> String {
    format!("session {tag} (shard {})", tag % SHARDS)
}

fn hello(ser: Serializer) -> Vec<u8> {
    let roles = ["caller", "callee", "publisher", "subscriber"]
        .iter()
        .map(|r| (Cow::Borrowed(*r), Val::empty_dict()))
        .collect();
    let msg = Message::Hello {
        realm: Cow::Borrowed("realm1"),
        details: Val::Dict(vec![(Cow::Borrowed("roles"), Val::Dict(roles))]),
    };
    let mut out = Vec::new();
    msg.encode(ser, &mut out).unwrap();
    out
}

/// Reads frames into the driver's inbox until the connection ends, then reports the end.
fn read_into(mut s: TcpStream, tag: u64, ser: Serializer, tx: Sender<Inbox>) {
    while let Some(frame) = rawsocket_read(&mut s) {
        if tx.send((tag, Some(got(ser, &frame)))).is_err() {
            return;
        }
    }
    let _ = tx.send((tag, None));
}

impl World {
    fn new(addr: String, seed: u64) -> World {
        let (tx, rx) = channel();
        World {
            addr,
            rng: fastrand::Rng::with_seed(seed),
            clock: 0,
            next_tag: 0,
            tx,
            rx,
            sessions: HashMap::new(),
            slots: vec![None; SLOTS],
            pubs: Vec::new(),
            by_topic: vec![Vec::new(); TOPICS.len()],
            calls: Vec::new(),
            holds: (0..PROCEDURES.len()).map(|_| Vec::new()).collect(),
            settling: Vec::new(),
            faults: Faults::default(),
            n: Counts::default(),
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn fail(&mut self, kind: &'static str, detail: String) {
        *self.faults.by_kind.entry(kind).or_default() += 1;
        let line = format!("[{kind}] at clock {}: {detail}", self.clock);
        if self.faults.lines.len() < PRINT_FAILURES {
            eprintln!("churn FAIL {line}");
        }
        self.faults.lines.push(line);
    }

    fn pub_desc(&self, pubno: u64) -> String {
        let p = &self.pubs[pubno as usize];
        format!(
            "publication #{pubno} to {} by {} (seq {}, sent {}, acked {:?})",
            TOPICS[p.topic],
            who(p.publisher),
            p.seq,
            p.sent,
            p.acked
        )
    }

    // ---- connections ---------------------------------------------------------------------------

    /// Opens the next connection (shard = tag % SHARDS) and joins; one at a time, so the
    /// round-robin placement is known.
    fn connect(&mut self) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.n.connects += 1;
        let ser = Serializer::ALL[(tag % 3) as usize];
        let mut s = rawsocket_stream(&self.addr, ser);
        rawsocket_write(&mut s, &hello(ser)).expect("send HELLO");
        let frame = rawsocket_read(&mut s).expect("WELCOME");
        assert!(
            matches!(got(ser, &frame), Got::Welcome { .. }),
            "{}: expected WELCOME, got {:?}",
            who(tag),
            got(ser, &frame)
        );
        s.set_read_timeout(None).unwrap();
        s.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let r = s.try_clone().unwrap();
        let tx = self.tx.clone();
        let reader = std::thread::spawn(move || read_into(r, tag, ser, tx));
        let now = self.tick();
        self.sessions.insert(
            tag,
            Session {
                tag,
                ser,
                writer: s,
                reader: Some(reader),
                next_request: 0,
                pending: HashMap::new(),
                subs: (0..TOPICS.len()).map(|_| None).collect(),
                gap_start: vec![Some(now); TOPICS.len()],
                regs: vec![None; PROCEDURES.len()],
                closing: Closing::Open,
                held: Vec::new(),
                seen: HashSet::new(),
                last_seq_from: HashMap::new(),
                last_call_from: HashMap::new(),
                pub_seq: 0,
                yielded: Vec::new(),
                publishes_in_flight: 0,
                calls_in_flight: 0,
            },
        );
        tag
    }

    fn send(&mut self, tag: u64, msg: &Message<'_>) {
        let s = self.sessions.get_mut(&tag).expect("live session");
        let mut bytes = Vec::new();
        msg.encode(s.ser, &mut bytes).unwrap();
        if let Err(e) = rawsocket_write(&mut s.writer, &bytes) {
            self.fail("write failed", format!("{}: {e}", who(tag)));
        }
    }

    /// Sends a request with the session's next request id and remembers what it waits for.
    fn request(&mut self, tag: u64, what: Pending, make: impl FnOnce(u64) -> Message<'static>) {
        let s = self.sessions.get_mut(&tag).expect("live session");
        s.next_request += 1;
        let request = s.next_request;
        s.pending.insert(request, (what, Instant::now()));
        self.send(tag, &make(request));
    }

    // ---- operations ----------------------------------------------------------------------------

    fn random_op(&mut self) {
        self.n.ops += 1;
        let slot = self.rng.usize(..SLOTS);
        let Some(tag) = self.slots[slot] else {
            let tag = self.connect();
            self.slots[slot] = Some(tag);
            return;
        };
        if !self.sessions[&tag].open() {
            return;
        }
        let mut op = self.pick_op();
        if slot < STAYING_SLOTS && matches!(op, Op::Goodbye | Op::Drop | Op::RegisterAndDrop) {
            op = Op::Register;
        }
        match op {
            Op::Publish => {
                // Bursts: a subscriber that joins while publications stream in is where the
                // ordering races are.
                let t = self.pick_topic();
                for _ in 0..self.rng.usize(1..=PUBLISH_BURST) {
                    let retain = self.rng.u32(..RETAIN_ONE_IN) == 0;
                    if self.sessions[&tag].publishes_in_flight < MAX_PUBLISHES_IN_FLIGHT {
                        self.publish_with(tag, t, retain);
                    }
                }
            }
            Op::Call => {
                let p = self.rng.usize(..PROCEDURES.len());
                if self.sessions[&tag].calls_in_flight < MAX_CALLS_IN_FLIGHT {
                    self.call(tag, p);
                }
            }
            Op::Subscribe => {
                let t = self.pick_topic();
                if self.sessions[&tag].subs[t].is_none() {
                    self.subscribe(tag, t);
                }
            }
            Op::Unsubscribe => {
                let active: Vec<usize> = (0..TOPICS.len())
                    .filter(|&t| {
                        self.sessions[&tag].subs[t]
                            .as_ref()
                            .is_some_and(|iv| iv.observed.is_some() && iv.end_sent.is_none())
                    })
                    .collect();
                if !active.is_empty() {
                    let t = active[self.rng.usize(..active.len())];
                    self.unsubscribe(tag, t);
                }
            }
            Op::Register | Op::RegisterAndDrop => {
                let p = self.rng.usize(..PROCEDURES.len());
                if self.sessions[&tag].regs[p].is_none() {
                    self.register(tag, p);
                }
                if op == Op::RegisterAndDrop {
                    self.n.register_and_drop += 1;
                    self.decide_drop(tag);
                }
            }
            Op::Unregister => {
                let held: Vec<usize> = (0..PROCEDURES.len())
                    .filter(|&p| self.registered(tag, p).is_some())
                    .collect();
                if !held.is_empty() {
                    let p = held[self.rng.usize(..held.len())];
                    self.unregister(tag, p);
                }
            }
            Op::Goodbye => self.goodbye(tag),
            Op::Drop => self.decide_drop(tag),
        }
    }

    fn pick_op(&mut self) -> Op {
        let total: u32 = OPS.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.u32(..total);
        for (op, w) in OPS {
            if x < w {
                return op;
            }
            x -= w;
        }
        unreachable!()
    }

    fn pick_topic(&mut self) -> usize {
        let total: u32 = TOPIC_WEIGHTS.iter().sum();
        let mut x = self.rng.u32(..total);
        for (t, w) in TOPIC_WEIGHTS.iter().enumerate() {
            if x < *w {
                return t;
            }
            x -= w;
        }
        unreachable!()
    }

    /// The registration id of procedure `p` held by `tag` (REGISTERED seen, no release sent).
    fn registered(&self, tag: u64, p: usize) -> Option<u64> {
        let h = &self.holds[p][self.sessions[&tag].regs[p]?];
        match (h.registered, h.release_sent) {
            (Some((id, _)), None) => Some(id),
            _ => None,
        }
    }

    fn publish(&mut self, tag: u64, t: usize) -> u64 {
        self.publish_with(tag, t, false)
    }

    fn publish_with(&mut self, tag: u64, t: usize, retain: bool) -> u64 {
        let now = self.tick();
        let s = self.sessions.get_mut(&tag).expect("live");
        s.pub_seq += 1;
        s.publishes_in_flight += 1;
        let pubno = self.pubs.len() as u64;
        self.pubs.push(Pub {
            topic: t,
            publisher: tag,
            seq: s.pub_seq,
            sent: now,
            acked: None,
            retain,
        });
        self.by_topic[t].push(pubno);
        self.n.publications += 1;
        self.n.retained_publications += retain as u64;
        let mut options = vec![("acknowledge", Val::Bool(true))];
        if retain {
            options.push(("retain", Val::Bool(true)));
        }
        self.request(tag, Pending::Publish(pubno), |request| Message::Publish {
            request,
            options: dict(&options),
            topic: Cow::Borrowed(TOPICS[t]),
            args: Some(uints(&[pubno])),
            kwargs: None,
        });
        pubno
    }

    fn call(&mut self, tag: u64, p: usize) -> u64 {
        let now = self.tick();
        let callno = self.calls.len() as u64;
        self.calls.push(CallRec {
            caller: tag,
            procedure: p,
            sent: now,
            invoked_at: None,
            yielded: false,
            must_cancel: false,
            yield_may_be_lost: false,
            answered: false,
        });
        self.sessions.get_mut(&tag).expect("live").calls_in_flight += 1;
        self.n.calls += 1;
        self.request(tag, Pending::Call(callno), |request| Message::Call {
            request,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed(PROCEDURES[p]),
            args: Some(uints(&[callno])),
            kwargs: None,
        });
        callno
    }

    fn subscribe(&mut self, tag: u64, t: usize) {
        let now = self.tick();
        self.end_gap(tag, t, now);
        self.sessions.get_mut(&tag).expect("live").subs[t] = Some(Interval {
            sent: now,
            id: None,
            observed: None,
            end_sent: None,
            ended_by: "",
            received: HashSet::new(),
        });
        self.n.subscribes += 1;
        self.request(tag, Pending::Subscribe(t), |request| Message::Subscribe {
            request,
            options: Val::empty_dict(),
            topic: Cow::Borrowed(TOPICS[t]),
        });
    }

    fn unsubscribe(&mut self, tag: u64, t: usize) {
        let now = self.tick();
        let iv = self.sessions.get_mut(&tag).expect("live").subs[t]
            .as_mut()
            .expect("subscribed");
        iv.end_sent = Some(now);
        iv.ended_by = "UNSUBSCRIBE";
        let subscription = iv.id.expect("SUBSCRIBED seen");
        self.n.unsubscribes += 1;
        self.request(tag, Pending::Unsubscribe(t), |request| {
            Message::Unsubscribe {
                request,
                subscription,
            }
        });
    }

    fn register(&mut self, tag: u64, p: usize) {
        let now = self.tick();
        self.holds[p].push(Hold {
            tag,
            start: now,
            registered: None,
            rejected: false,
            release_sent: None,
            end: None,
        });
        self.sessions.get_mut(&tag).expect("live").regs[p] = Some(self.holds[p].len() - 1);
        self.n.registers += 1;
        self.request(tag, Pending::Register(p), |request| Message::Register {
            request,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed(PROCEDURES[p]),
        });
    }

    fn unregister(&mut self, tag: u64, p: usize) {
        let now = self.tick();
        let registration = self.registered(tag, p).expect("registered");
        let h = self.sessions[&tag].regs[p].expect("hold");
        self.holds[p][h].release_sent = Some(now);
        self.n.unregisters += 1;
        self.request(tag, Pending::Unregister(p), |request| Message::Unregister {
            request,
            registration,
        });
    }

    fn goodbye(&mut self, tag: u64) {
        let now = self.tick();
        self.n.goodbyes += 1;
        self.start_leaving(tag, now, "GOODBYE");
        let s = self.sessions.get_mut(&tag).expect("live");
        s.closing = Closing::Goodbye { replied: false };
        // Answers sent after GOODBYE reach no one: the router cancels those calls.
        for h in std::mem::take(&mut s.held) {
            self.calls[h.call as usize].must_cancel = true;
        }
        self.send(
            tag,
            &Message::Goodbye {
                details: Val::empty_dict(),
                reason: Cow::Borrowed(errors::CLOSE_REALM),
            },
        );
    }

    /// Decides to drop the connection: from now on the session has left (for the model); the socket
    /// closes once every EVENT it must receive has come.
    fn decide_drop(&mut self, tag: u64) {
        let now = self.tick();
        self.start_leaving(tag, now, "dropping the connection");
        let mut must = Vec::new();
        for t in 0..TOPICS.len() {
            let s = &self.sessions[&tag];
            if let Some(iv) = &s.subs[t] {
                for pubno in self.must_deliver(tag, t, iv) {
                    if !iv.received.contains(&pubno) {
                        must.push((t, pubno));
                    }
                }
            }
        }
        let rst = self.rng.bool();
        self.sessions.get_mut(&tag).expect("live").closing = Closing::Drop {
            since: Instant::now(),
            must,
            rst,
        };
    }

    /// The session starts to leave at clock `now`: its subscriptions and registrations end there.
    fn start_leaving(&mut self, tag: u64, now: u64, how: &'static str) {
        for t in 0..TOPICS.len() {
            self.end_gap(tag, t, now);
        }
        let s = self.sessions.get_mut(&tag).expect("live");
        for iv in s
            .subs
            .iter_mut()
            .flatten()
            .filter(|iv| iv.end_sent.is_none())
        {
            iv.end_sent = Some(now);
            iv.ended_by = how;
        }
        for (p, h) in s.regs.iter().enumerate() {
            if let Some(h) = h {
                self.holds[p][*h].release_sent.get_or_insert(now);
            }
        }
    }

    /// Closes a dropped session's socket: a FIN, or an RST (SO_LINGER 0).
    fn execute_drop(&mut self, tag: u64) {
        let s = self.sessions.get_mut(&tag).expect("live");
        let Closing::Drop { rst, .. } = s.closing else {
            return;
        };
        for h in std::mem::take(&mut s.held) {
            self.calls[h.call as usize].must_cancel = true;
        }
        if rst {
            for &c in &s.yielded {
                self.calls[c as usize].yield_may_be_lost = true;
            }
            self.n.drops_rst += 1;
            let _ = socket2::SockRef::from(&s.writer).set_linger(Some(Duration::ZERO));
            // The reader sees the end at once; the last descriptor then closes with an RST.
            let _ = s.writer.shutdown(Shutdown::Read);
        } else {
            self.n.drops_fin += 1;
            let _ = s.writer.shutdown(Shutdown::Both);
        }
        s.closing = Closing::Closed;
    }

    // ---- the model's sets --------------------------------------------------------------------

    /// Publications that interval `iv` of `tag` on topic `t` must receive: sent after SUBSCRIBED was
    /// seen, PUBLISHED seen before the interval's end was sent (or ever, while it lasts).
    fn must_deliver(&self, tag: u64, t: usize, iv: &Interval) -> Vec<u64> {
        let Some(observed) = iv.observed else {
            return Vec::new();
        };
        let end = iv.end_sent.unwrap_or(u64::MAX);
        let list = &self.by_topic[t];
        let from = list.partition_point(|&n| self.pubs[n as usize].sent <= observed);
        list[from..]
            .iter()
            .copied()
            .take_while(|&n| self.pubs[n as usize].sent < end)
            .filter(|&n| {
                let p = &self.pubs[n as usize];
                p.publisher != tag && p.acked.is_some_and(|a| a < end)
            })
            .collect()
    }

    /// Closes the not-subscribed period of (`tag`, `t`) at `end`: publications sent after it
    /// began and acknowledged before `end` must not have reached the session (any that did was
    /// reported when it arrived).
    fn end_gap(&mut self, tag: u64, t: usize, end: u64) {
        let Some(start) = self.sessions.get_mut(&tag).expect("live").gap_start[t].take() else {
            return;
        };
        let list = &self.by_topic[t];
        let from = list.partition_point(|&n| self.pubs[n as usize].sent <= start);
        let count = list[from..]
            .iter()
            .take_while(|&&n| self.pubs[n as usize].sent < end)
            .filter(|&&n| {
                let p = &self.pubs[n as usize];
                p.publisher != tag && p.acked.is_some_and(|a| a < end)
            })
            .count();
        self.n.must_not_deliver_satisfied += count as u64;
    }

    /// An interval is over (UNSUBSCRIBED, or the session is gone): everything it had to receive must
    /// have arrived.
    fn close_interval(&mut self, tag: u64, t: usize, iv: Interval) {
        let must = self.must_deliver(tag, t, &iv);
        let mut missing = Vec::new();
        for pubno in must {
            if iv.received.contains(&pubno) {
                self.n.must_deliver_satisfied += 1;
            } else {
                missing.push(pubno);
            }
        }
        for pubno in missing {
            let detail = format!(
                "{} on {} (subscription {:?}, SUBSCRIBED seen at {:?}, {} sent at {:?}) never \
                 received {}",
                who(tag),
                TOPICS[t],
                iv.id,
                iv.observed,
                iv.ended_by,
                iv.end_sent,
                self.pub_desc(pubno)
            );
            self.fail("missing EVENT", detail);
        }
    }

    // ---- incoming ------------------------------------------------------------------------------

    fn on_message(&mut self, tag: u64, m: Option<Got>) {
        let now = self.tick();
        if !self.sessions.contains_key(&tag) {
            self.fail(
                "message after the end",
                format!("{}: {m:?} after its connection ended", who(tag)),
            );
            return;
        }
        let Some(m) = m else {
            return self.on_connection_end(tag);
        };
        if matches!(
            self.sessions[&tag].closing,
            Closing::Goodbye { replied: true }
        ) {
            return self.fail(
                "message after GOODBYE",
                format!("{}: {m:?} after the router's GOODBYE", who(tag)),
            );
        }
        match m {
            Got::Event { subscription, args } => self.on_event(tag, subscription, &args),
            Got::Invocation {
                request,
                registration,
                args,
            } => self.on_invocation(tag, request, registration, &args),
            Got::Goodbye { reason } => self.on_goodbye(tag, &reason, now),
            Got::Subscribed { request, .. }
            | Got::Unsubscribed { request }
            | Got::Published { request, .. }
            | Got::Registered { request, .. }
            | Got::Unregistered { request }
            | Got::Result { request, .. }
            | Got::Error { request, .. } => self.on_reply(tag, request, m, now),
            other => self.fail("unexpected message", format!("{}: {other:?}", who(tag))),
        }
    }

    fn on_reply(&mut self, tag: u64, request: u64, m: Got, now: u64) {
        let s = self.sessions.get_mut(&tag).expect("live");
        let Some((what, _)) = s.pending.remove(&request) else {
            return self.fail(
                "answer to no pending request",
                format!("{}: {m:?}", who(tag)),
            );
        };
        match what {
            Pending::Publish(_) => s.publishes_in_flight -= 1,
            Pending::Call(_) => s.calls_in_flight -= 1,
            _ => {}
        }
        if let Got::Error { request_type, .. } = &m {
            if *request_type != what.code() {
                let detail = format!("{}: {what:?} answered by {m:?}", who(tag));
                self.fail("ERROR of the wrong type", detail);
            }
        }
        let s = self.sessions.get_mut(&tag).expect("live");
        match (what, m) {
            (Pending::Subscribe(t), Got::Subscribed { subscription, .. }) => {
                self.on_subscribed(tag, t, subscription, now)
            }
            (Pending::Unsubscribe(t), Got::Unsubscribed { .. }) => {
                let iv = s.subs[t].take().expect("interval");
                s.gap_start[t] = Some(now);
                self.close_interval(tag, t, iv);
            }
            (Pending::Publish(pubno), Got::Published { .. }) => {
                self.pubs[pubno as usize].acked = Some(now);
            }
            (Pending::Register(p), Got::Registered { registration, .. }) => {
                self.on_registered(tag, p, registration, now)
            }
            (Pending::Register(p), Got::Error { error, .. })
                if error == errors::PROCEDURE_ALREADY_EXISTS =>
            {
                self.on_register_rejected(tag, p, now)
            }
            (Pending::Unregister(p), Got::Unregistered { .. }) => {
                let h = s.regs[p].take().expect("hold");
                self.holds[p][h].end = Some(now);
            }
            (Pending::Call(callno), answer @ (Got::Result { .. } | Got::Error { .. })) => {
                self.on_call_answer(callno, answer, now)
            }
            (what, m) => {
                // Forget the request so that the model stays usable, and report it.
                match what {
                    Pending::Subscribe(t) => {
                        s.subs[t] = None;
                        s.gap_start[t] = Some(now);
                    }
                    Pending::Register(p) => {
                        let h = s.regs[p].take().expect("hold");
                        self.holds[p][h].rejected = true;
                        self.holds[p][h].end = Some(now);
                    }
                    _ => {}
                }
                self.fail(
                    "wrong answer",
                    format!("{}: {what:?} answered by {m:?}", who(tag)),
                )
            }
        }
    }

    fn on_subscribed(&mut self, tag: u64, t: usize, id: u64, now: u64) {
        self.n.subscribed += 1;
        let iv = self.sessions.get_mut(&tag).expect("live").subs[t]
            .as_mut()
            .expect("interval");
        iv.id = Some(id);
        iv.observed = Some(now);
        let sent = iv.sent;
        // All live subscribers of one topic share one subscription id.
        let mut others = Vec::new();
        for s in self.sessions.values().filter(|s| s.tag != tag) {
            if let Some(other) = &s.subs[t] {
                let live = other.observed.is_some_and(|o| o < sent) && other.end_sent.is_none();
                if live && other.id != Some(id) {
                    others.push((s.tag, other.id));
                }
            }
        }
        for (other, other_id) in others {
            self.fail(
                "subscription ids differ",
                format!(
                    "{} got subscription {id} for {} while {} holds {other_id:?}",
                    who(tag),
                    TOPICS[t],
                    who(other)
                ),
            );
        }
    }

    fn on_event(&mut self, tag: u64, subscription: u64, args: &[u64]) {
        self.n.events_checked += 1;
        let Some(&pubno) = args.first().filter(|&&n| (n as usize) < self.pubs.len()) else {
            return self.fail(
                "unknown EVENT",
                format!("{}: subscription {subscription}, {args:?}", who(tag)),
            );
        };
        let p = &self.pubs[pubno as usize];
        let (t, publisher, seq, sent, acked) = (p.topic, p.publisher, p.seq, p.sent, p.acked);
        let desc = self.pub_desc(pubno);
        let s = self.sessions.get_mut(&tag).expect("live");
        if publisher == tag {
            return self.fail(
                "own EVENT",
                format!("{} received its own {desc} (exclude_me)", who(tag)),
            );
        }
        if !s.seen.insert(pubno) {
            return self.fail("duplicate EVENT", format!("{}: {desc}", who(tag)));
        }
        let mut out_of_order = None;
        let verdict = match &mut s.subs[t] {
            None => Some((
                "EVENT without subscription",
                "not subscribed (after UNSUBSCRIBED, or never)".to_string(),
            )),
            Some(iv) if iv.observed.is_none() => Some((
                "EVENT before SUBSCRIBED",
                format!("SUBSCRIBE sent at {} not answered yet", iv.sent),
            )),
            Some(iv) if iv.id != Some(subscription) => Some((
                "EVENT with wrong subscription id",
                format!("SUBSCRIBED gave {:?}", iv.id),
            )),
            Some(iv) if acked.is_some_and(|a| a < iv.sent) => Some((
                "EVENT published before SUBSCRIBE",
                format!("SUBSCRIBE sent at {}", iv.sent),
            )),
            Some(iv) => {
                iv.received.insert(pubno);
                // Order is owed among events published while the subscription was established.
                if iv.observed.is_some_and(|o| o < sent) {
                    let last = s.last_seq_from.insert(publisher, seq).unwrap_or(0);
                    out_of_order = (last > seq).then_some(last);
                }
                None
            }
        };
        if let Some(last) = out_of_order {
            self.fail(
                "EVENTs out of publisher order",
                format!("{}: {desc} after seq {last}", who(tag)),
            );
        }
        if let Some((kind, why)) = verdict {
            let neighbours = self.shard_subscribers(tag, t);
            self.fail(
                kind,
                format!(
                    "{} got EVENT (subscription {subscription}) of {desc}: {why}; others on its \
                     shard with this topic: {neighbours:?}",
                    who(tag)
                ),
            );
        }
    }

    /// The other sessions on `tag`'s shard with a subscription (in any state) to topic `t`, as
    /// (session, subscription id, SUBSCRIBE sent, SUBSCRIBED seen, end sent), for reports.
    fn shard_subscribers(&self, tag: u64, t: usize) -> Vec<String> {
        let mut out: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.tag != tag && s.tag % SHARDS == tag % SHARDS)
            .filter_map(|s| {
                let iv = s.subs[t].as_ref()?;
                Some(format!(
                    "session {}: id {:?}, sent {}, seen {:?}, ended {:?}",
                    s.tag, iv.id, iv.sent, iv.observed, iv.end_sent
                ))
            })
            .collect();
        out.sort();
        out
    }

    fn on_registered(&mut self, tag: u64, p: usize, id: u64, now: u64) {
        self.n.registered += 1;
        let h = self.sessions[&tag].regs[p].expect("hold");
        self.holds[p][h].registered = Some((id, now));
        let rivals: Vec<u64> = self.holds[p]
            .iter()
            .filter(|o| o.tag != tag && o.registered.is_some() && o.release_sent.is_none())
            .map(|o| o.tag)
            .collect();
        for rival in rivals {
            self.fail(
                "two callees",
                format!(
                    "{} got REGISTERED {id} for {} while {} holds it",
                    who(tag),
                    PROCEDURES[p],
                    who(rival)
                ),
            );
        }
    }

    fn on_register_rejected(&mut self, tag: u64, p: usize, now: u64) {
        self.n.register_rejected += 1;
        let s = self.sessions.get_mut(&tag).expect("live");
        let h = s.regs[p].take().expect("hold");
        let start = self.holds[p][h].start;
        self.holds[p][h].rejected = true;
        self.holds[p][h].end = Some(now);
        let possible = self.holds[p].iter().any(|o| {
            o.tag != tag && !o.rejected && o.start <= now && o.end.is_none_or(|e| e >= start)
        });
        if !possible {
            let last = self.holds[p]
                .iter()
                .rev()
                .find(|o| o.tag != tag && !o.rejected)
                .map(|o| {
                    format!(
                        "{} (registered {:?}, released {:?}, end {:?})",
                        who(o.tag),
                        o.registered,
                        o.release_sent,
                        o.end
                    )
                });
            self.fail(
                "procedure stays taken",
                format!(
                    "{}: REGISTER {} (sent {start}) got procedure_already_exists though no \
                     session could hold it; last holder: {last:?}",
                    who(tag),
                    PROCEDURES[p]
                ),
            );
        }
    }

    fn on_invocation(&mut self, tag: u64, request: u64, registration: u64, args: &[u64]) {
        let Some(&callno) = args.first().filter(|&&n| (n as usize) < self.calls.len()) else {
            return self.fail(
                "unknown INVOCATION",
                format!("{}: registration {registration}, {args:?}", who(tag)),
            );
        };
        let c = &self.calls[callno as usize];
        let (p, caller, sent) = (c.procedure, c.caller, c.sent);
        let desc = format!(
            "call #{callno} to {} by {} (sent {})",
            PROCEDURES[p],
            who(caller),
            c.sent
        );
        if let Some(first) = c.invoked_at {
            self.fail(
                "second INVOCATION",
                format!("{} got {desc}, already invoked at {}", who(tag), who(first)),
            );
        }
        self.calls[callno as usize].invoked_at = Some(tag);
        // Order is owed among calls sent while the registration was established.
        let s = self.sessions.get_mut(&tag).expect("live");
        let established = s.regs[p]
            .and_then(|h| self.holds[p][h].registered)
            .is_some_and(|(_, at)| at < sent);
        if established {
            let last = s.last_call_from.insert(caller, callno).unwrap_or(0);
            if last > callno {
                self.fail(
                    "INVOCATIONs out of caller order",
                    format!("{}: {desc} after call #{last}", who(tag)),
                );
            }
        }
        let s = &self.sessions[&tag];
        let verdict = match s.regs[p].map(|h| &self.holds[p][h]) {
            None => Some((
                "INVOCATION without registration",
                "not registered (after UNREGISTERED, or never)".to_string(),
            )),
            Some(h) => match h.registered {
                None => Some((
                    "INVOCATION before REGISTERED",
                    format!("REGISTER sent at {} not answered yet", h.start),
                )),
                Some((id, _)) if id != registration => Some((
                    "INVOCATION with wrong registration id",
                    format!("REGISTERED gave {id}"),
                )),
                Some(_) => None,
            },
        };
        if let Some((kind, why)) = verdict {
            self.fail(
                kind,
                format!(
                    "{} got INVOCATION (registration {registration}) of {desc}: {why}",
                    who(tag)
                ),
            );
        }
        self.answer_later_or_now(tag, request, callno);
    }

    /// Answers an INVOCATION now or after a while; a leaving session does not answer (its callers
    /// must get `canceled`).
    fn answer_later_or_now(&mut self, tag: u64, request: u64, callno: u64) {
        let hold = self.rng.u32(..HOLD_ONE_IN) != 0;
        let delay = Duration::from_millis(self.rng.u64(1..=HOLD_MAX_MS));
        let s = self.sessions.get_mut(&tag).expect("live");
        if !matches!(s.closing, Closing::Open | Closing::Drop { .. }) {
            self.calls[callno as usize].must_cancel = true;
            return;
        }
        if hold {
            self.n.invocations_held += 1;
            s.held.push(Held {
                due: Instant::now() + delay,
                request,
                call: callno,
            });
        } else {
            self.yield_call(tag, request, callno);
        }
    }

    fn yield_call(&mut self, tag: u64, request: u64, callno: u64) {
        self.calls[callno as usize].yielded = true;
        let s = self.sessions.get_mut(&tag).expect("live");
        let calls = &self.calls;
        s.yielded.retain(|&c| !calls[c as usize].answered);
        s.yielded.push(callno);
        self.send(
            tag,
            &Message::Yield {
                request,
                options: Val::empty_dict(),
                args: Some(uints(&[callno, tag])),
                kwargs: None,
            },
        );
    }

    /// The callee that must answer a call: REGISTERED seen before the CALL was sent, and not
    /// released since.
    fn stable_callee(&self, p: usize, sent: u64) -> Option<u64> {
        self.holds[p]
            .iter()
            .find(|h| h.registered.is_some_and(|(_, at)| at < sent) && h.release_sent.is_none())
            .map(|h| h.tag)
    }

    fn on_call_answer(&mut self, callno: u64, answer: Got, now: u64) {
        self.calls[callno as usize].answered = true;
        let c = &self.calls[callno as usize];
        let p = c.procedure;
        let desc = format!(
            "call #{callno} to {} by {} (sent {}, invoked at {:?})",
            PROCEDURES[p],
            who(c.caller),
            c.sent,
            c.invoked_at.map(who)
        );
        let stable = self.stable_callee(p, c.sent);
        let verdict: Option<(&'static str, String)> = match &answer {
            Got::Result { args, .. } => {
                self.n.results += 1;
                match c.invoked_at {
                    Some(callee) if c.yielded && args[..] == [callno, callee] => None,
                    _ => Some(("wrong RESULT", format!("{args:?}"))),
                }
            }
            Got::Error { error, .. } if error == errors::CANCELED => {
                self.n.canceled += 1;
                if c.must_cancel {
                    self.n.must_cancel_checked += 1;
                }
                match (c.invoked_at, c.must_cancel, c.yield_may_be_lost) {
                    (Some(_), false, false) => Some((
                        "canceled while the callee lives",
                        "the callee got the INVOCATION and did not leave".into(),
                    )),
                    _ => None,
                }
            }
            Got::Error { error, .. } if error == errors::NO_SUCH_PROCEDURE => {
                self.n.no_such_procedure += 1;
                c.invoked_at.map(|_| {
                    (
                        "no_such_procedure after INVOCATION",
                        "the callee got the INVOCATION".into(),
                    )
                })
            }
            other => Some(("unexpected answer to CALL", format!("{other:?}"))),
        };
        let verdict = verdict.or_else(|| {
            let callee = stable?;
            let answered_by = match &answer {
                Got::Result { args, .. } => args.get(1).copied(),
                _ => None,
            };
            (answered_by != Some(callee)).then(|| {
                (
                    "call to a registered procedure failed",
                    format!("{} held it throughout; answer {answer:?}", who(callee)),
                )
            })
        });
        let verdict = verdict.or_else(|| {
            let c = &self.calls[callno as usize];
            (c.must_cancel
                && !matches!(&answer, Got::Error { error, .. } if error == errors::CANCELED))
            .then(|| ("callee left but no canceled", format!("answer {answer:?}")))
        });
        if let Some((kind, why)) = verdict {
            self.fail(kind, format!("{desc} answered at {now}: {why}"));
        }
    }

    fn on_goodbye(&mut self, tag: u64, reason: &str, now: u64) {
        let s = self.sessions.get_mut(&tag).expect("live");
        if !matches!(s.closing, Closing::Goodbye { replied: false }) {
            return self.fail(
                "GOODBYE from the router",
                format!("{}: reason {reason}", who(tag)),
            );
        }
        s.closing = Closing::Goodbye { replied: true };
        // The router released everything before it answered.
        for (p, h) in s.regs.iter().enumerate() {
            if let Some(h) = h {
                self.holds[p][*h].end.get_or_insert(now);
            }
        }
    }

    /// The reader reported the end of the connection: the session is gone.
    fn on_connection_end(&mut self, tag: u64) {
        let mut s = self.sessions.remove(&tag).expect("live");
        let expected = matches!(
            s.closing,
            Closing::Closed | Closing::Goodbye { replied: true }
        );
        if !expected {
            self.fail(
                "connection closed by the router",
                format!("{} (pending {:?})", who(tag), s.pending.values()),
            );
            self.start_leaving_removed(&mut s);
        }
        if let Some(r) = s.reader.take() {
            r.join().expect("reader thread");
        }
        for h in std::mem::take(&mut s.held) {
            self.calls[h.call as usize].must_cancel = true;
        }
        for (t, iv) in s.subs.iter_mut().enumerate() {
            if let Some(iv) = iv.take() {
                self.close_interval(tag, t, iv);
            }
        }
        let closed_at = Instant::now();
        for (p, h) in s.regs.iter().enumerate() {
            if let Some(h) = *h {
                if self.holds[p][h].end.is_none() {
                    self.settling.push((p, h, closed_at));
                }
            }
        }
        if let Some(slot) = self.slots.iter_mut().find(|x| **x == Some(tag)) {
            *slot = None;
        }
    }

    /// Ends the model's view of a session the router closed on its own.
    fn start_leaving_removed(&mut self, s: &mut Session) {
        let now = self.clock;
        let how = "the router closing the connection";
        for iv in s
            .subs
            .iter_mut()
            .flatten()
            .filter(|iv| iv.end_sent.is_none())
        {
            iv.end_sent = Some(now);
            iv.ended_by = how;
        }
        for (p, h) in s.regs.iter().enumerate() {
            if let Some(h) = h {
                self.holds[p][*h].release_sent.get_or_insert(now);
            }
        }
    }

    // ---- time ----------------------------------------------------------------------------------

    /// Processes what arrived, waiting until `until` for more.
    fn pump(&mut self, until: Instant) {
        loop {
            for _ in 0..10_000 {
                match self.rx.try_recv() {
                    Ok((tag, m)) => self.on_message(tag, m),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => unreachable!("the world holds a sender"),
                }
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            match self.rx.recv_timeout(until - now) {
                Ok((tag, m)) => self.on_message(tag, m),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => unreachable!("the world holds a sender"),
            }
        }
    }

    /// Due answers, drops whose EVENTs have arrived, settled holds, overdue requests.
    fn housekeeping(&mut self, all_due: bool) {
        let now = Instant::now();
        let tags: Vec<u64> = self.sessions.keys().copied().collect();
        for tag in tags {
            let s = self.sessions.get_mut(&tag).expect("live");
            let (due, later): (Vec<Held>, Vec<Held>) = std::mem::take(&mut s.held)
                .into_iter()
                .partition(|h| all_due || h.due <= now);
            s.held = later;
            for h in due {
                self.yield_call(tag, h.request, h.call);
            }
            let s = self.sessions.get_mut(&tag).expect("live");
            if let Closing::Drop { since, must, .. } = &mut s.closing {
                let subs = &s.subs;
                must.retain(|(t, pubno)| {
                    subs[*t]
                        .as_ref()
                        .is_some_and(|iv| !iv.received.contains(pubno))
                });
                // Callers wait for their answers too: a call is never left unanswered unseen.
                let calls: Vec<u64> = s
                    .pending
                    .values()
                    .filter_map(|(w, _)| match w {
                        Pending::Call(c) => Some(*c),
                        _ => None,
                    })
                    .collect();
                let expired = since.elapsed() > DRAIN_LIMIT;
                if (must.is_empty() && calls.is_empty()) || expired {
                    for c in calls {
                        let detail = format!("{} got no answer to call #{c}", who(tag));
                        self.fail("no answer", detail);
                    }
                    self.execute_drop(tag);
                }
            }
            let s = self.sessions.get_mut(&tag).expect("live");
            let overdue: Vec<u64> = s
                .pending
                .iter()
                .filter(|(_, (_, at))| at.elapsed() > REPLY_TIMEOUT)
                .map(|(r, _)| *r)
                .collect();
            let overdue: Vec<String> = overdue
                .into_iter()
                .map(|r| format!("{}: request {r} {:?}", who(tag), s.pending.remove(&r)))
                .collect();
            for detail in overdue {
                self.fail("no answer", detail);
            }
        }
        let clock = self.clock;
        let holds = &mut self.holds;
        self.settling.retain(|&(p, h, at)| {
            if at.elapsed() < DROP_SETTLE {
                return true;
            }
            holds[p][h].end.get_or_insert(clock);
            false
        });
    }

    /// Runs random operations for `secs`.
    fn churn(&mut self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut next_op = Instant::now();
        while Instant::now() < deadline {
            self.pump(next_op);
            self.housekeeping(false);
            self.random_op();
            next_op = (next_op + OP_EVERY).max(Instant::now());
        }
    }

    /// True when nothing is in flight: no request, held answer, leaving session or settling hold.
    fn quiet(&self) -> bool {
        self.settling.is_empty()
            && self
                .sessions
                .values()
                .all(|s| s.pending.is_empty() && s.held.is_empty() && s.open())
    }

    /// Processes messages until nothing is in flight (bounded).
    fn settle(&mut self, what: &str) {
        let limit = Instant::now() + REPLY_TIMEOUT + DRAIN_LIMIT + DROP_SETTLE;
        while !self.quiet() && Instant::now() < limit {
            self.pump(Instant::now() + Duration::from_millis(10));
            self.housekeeping(true);
        }
        if !self.quiet() {
            let busy: Vec<String> = self
                .sessions
                .values()
                .filter(|s| !(s.pending.is_empty() && s.held.is_empty() && s.open()))
                .map(|s| format!("{} pending {:?}", who(s.tag), s.pending.values()))
                .collect();
            self.fail(
                "did not settle",
                format!("{what}: {busy:?}, {} holds settling", self.settling.len()),
            );
        }
    }

    /// Processes messages for a while even though nothing is expected (to catch what must not come).
    fn listen(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.pump(until);
        }
    }

    // ---- probes --------------------------------------------------------------------------------

    /// With everything quiet: a publication from every shard to every topic reaches exactly the
    /// model's subscribers; a call from every shard to every procedure reaches the model's callee
    /// or gets `no_such_procedure`.
    fn probe(&mut self, probes: &[u64]) {
        let mut sent = Vec::new();
        for t in 0..TOPICS.len() {
            for &p in probes {
                sent.push(self.publish(p, t));
            }
        }
        self.settle("probe publications");
        let expect: Vec<(u64, u64)> = sent
            .iter()
            .flat_map(|&pubno| {
                let t = self.pubs[pubno as usize].topic;
                self.sessions
                    .values()
                    .filter(|s| {
                        s.subs[t]
                            .as_ref()
                            .is_some_and(|iv| iv.observed.is_some() && iv.end_sent.is_none())
                    })
                    .map(move |s| (s.tag, pubno))
                    .collect::<Vec<_>>()
            })
            .collect();
        self.await_deliveries(&expect, "probe EVENT not delivered");
        self.n.probe_deliveries += expect.len() as u64;
        for p in 0..PROCEDURES.len() {
            for &tag in probes {
                self.call(tag, p);
                self.n.probe_calls += 1;
            }
        }
        self.settle("probe calls");
    }

    /// Waits (bounded) until each (session, publication) has arrived; reports those that did not.
    fn await_deliveries(&mut self, expect: &[(u64, u64)], kind: &'static str) {
        let limit = Instant::now() + REPLY_TIMEOUT;
        let arrived = |w: &World, tag: u64, pubno: u64| {
            w.sessions
                .get(&tag)
                .is_some_and(|s| s.seen.contains(&pubno))
        };
        while Instant::now() < limit && !expect.iter().all(|&(s, n)| arrived(self, s, n)) {
            self.pump(Instant::now() + Duration::from_millis(10));
        }
        for &(tag, pubno) in expect {
            if !arrived(self, tag, pubno) {
                let detail = format!("{} never received {}", who(tag), self.pub_desc(pubno));
                self.fail(kind, detail);
            }
        }
        self.listen(Duration::from_millis(200));
    }

    /// Everyone else leaves; then every procedure can be registered from every shard (and called
    /// there from every other shard), and a publication from every shard to every topic reaches
    /// exactly the other probes, with one subscription id per topic.
    fn final_check(&mut self, probes: &[u64]) {
        let churners: Vec<u64> = self.slots.iter().flatten().copied().collect();
        for (i, tag) in churners.into_iter().enumerate() {
            if i % 2 == 0 {
                self.goodbye(tag);
            } else {
                self.decide_drop(tag);
            }
        }
        self.settle("everyone leaving");
        for (p, name) in PROCEDURES.iter().enumerate() {
            for &callee in probes {
                self.register(callee, p);
                self.settle("final REGISTER");
                if self.registered(callee, p).is_none() {
                    self.fail(
                        "final REGISTER refused",
                        format!("{}: {name} is still taken", who(callee)),
                    );
                    continue;
                }
                self.n.final_registrations += 1;
                for &caller in probes.iter().filter(|&&c| c != callee) {
                    self.call(caller, p);
                }
                self.settle("final calls");
                self.unregister(callee, p);
                self.settle("final UNREGISTER");
            }
        }
        for (i, &tag) in probes.iter().enumerate() {
            for t in 0..TOPICS.len() {
                self.subscribe(tag, t);
            }
            if i == 0 {
                // The others join the subscription the first one created, id included.
                self.settle("first probe subscribing");
            }
        }
        self.settle("probes subscribing");
        let mut expect = Vec::new();
        for t in 0..TOPICS.len() {
            for &publisher in probes {
                let pubno = self.publish(publisher, t);
                expect.extend(
                    probes
                        .iter()
                        .filter(|&&s| s != publisher)
                        .map(|&s| (s, pubno)),
                );
            }
        }
        self.settle("final publications");
        self.await_deliveries(&expect, "final EVENT not delivered");
        self.n.probe_deliveries += expect.len() as u64;
        for &tag in probes {
            for t in 0..TOPICS.len() {
                self.unsubscribe(tag, t);
            }
        }
        self.settle("probes unsubscribing");
        for &tag in probes {
            self.goodbye(tag);
        }
        self.settle("probes leaving");
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
    )
}

#[test]
fn churn_against_a_reference_model() {
    let seed = env_u64("WAMPD_CHURN_SEED").unwrap_or_else(|| fastrand::u64(..));
    let secs = env_u64("WAMPD_CHURN_SECS").unwrap_or(30);
    println!("churn: seed {seed} (WAMPD_CHURN_SEED={seed} replays it), {secs} s, {SHARDS} shards");
    let r = start_router();
    let mut w = World::new(r.addr.clone(), seed);
    let started = Instant::now();
    w.churn(secs);
    w.settle("after churn");
    // The router's own view: the authority, every shard's replica and every session agree.
    let problems = r.settle(Duration::from_secs(10));
    let report = r.report();
    println!(
        "churn: after churn the authority holds {} subscriptions and {} registrations; every shard's replica agrees: {}",
        report.authorities[0].subscriptions.len(),
        report.authorities[0].registrations.len(),
        problems.is_empty()
    );
    assert_eq!(
        problems,
        Vec::<String>::new(),
        "replicas disagree after churn"
    );
    w.check_meta();
    w.check_retention_and_history();
    let probes: Vec<u64> = (0..SHARDS).map(|_| w.connect()).collect();
    w.probe(&probes);
    w.final_check(&probes);
    assert_eq!(
        r.settle(Duration::from_secs(10)),
        Vec::<String>::new(),
        "replicas disagree at the end"
    );
    println!(
        "churn: done in {:.1} s; {:#?}",
        started.elapsed().as_secs_f64(),
        w.n
    );
    assert!(w.n.events_checked > 0 && w.n.must_deliver_satisfied > 0 && w.n.results > 0);
    assert!(
        w.n.retained_checked > 0 && w.n.history_events_checked > 0,
        "retention and history were checked against the model"
    );
    assert_eq!(
        w.n.meta_checks, 1,
        "the meta API was checked against the model"
    );
    if !w.faults.lines.is_empty() {
        println!("churn: failures by kind: {:#?}", w.faults.by_kind);
        panic!(
            "churn (seed {seed}): {} failures; first: {}",
            w.faults.lines.len(),
            w.faults.lines[0]
        );
    }
}

// ---- the meta API against the model ----------------------------------------------------------

impl World {
    /// With everything quiet: the meta API's counts agree with the model — sessions, each topic's
    /// subscription and subscribers, each procedure's registration and callee — asked from a
    /// session on every shard (one connection per shard keeps tag k on shard k % SHARDS).
    fn check_meta(&mut self) {
        let mut askers: Vec<common::Client> = (0..SHARDS)
            .map(|_| common::Client::join(&self.addr, Serializer::Json))
            .collect();
        let sessions = self.sessions.len() as u64 + SHARDS;
        let tags: Vec<u64> = self.sessions.keys().copied().collect();
        let subscribed = |w: &World, t: usize| -> Vec<u64> {
            tags.iter()
                .filter_map(|tag| {
                    let iv = w.sessions[tag].subs[t].as_ref()?;
                    (iv.observed.is_some() && iv.end_sent.is_none()).then_some(iv.id?)
                })
                .collect()
        };
        for m in &mut askers {
            let n = m.call1("wamp.session.count", vec![]).as_u64();
            if n != Some(sessions) {
                self.fail("meta", format!("session count {n:?}, model {sessions}"));
            }
            for (t, topic) in TOPICS.iter().enumerate() {
                let want = subscribed(self, t);
                let id = m.call1("wamp.subscription.lookup", vec![s(topic)]).as_u64();
                let count = id.map(|id| {
                    m.call1("wamp.subscription.count_subscribers", vec![Val::UInt(id)])
                        .as_u64()
                });
                if id != want.first().copied()
                    || count.flatten() != want.first().map(|_| want.len() as u64)
                {
                    self.fail(
                        "meta",
                        format!("{topic}: id {id:?} with {count:?} subscribers, model {want:?}"),
                    );
                }
            }
            for (p, procedure) in PROCEDURES.iter().enumerate() {
                let want: Vec<u64> = tags
                    .iter()
                    .filter_map(|&tag| self.registered(tag, p))
                    .collect();
                let id = m
                    .call1("wamp.registration.lookup", vec![s(procedure)])
                    .as_u64();
                let count = id.map(|id| {
                    m.call1("wamp.registration.count_callees", vec![Val::UInt(id)])
                        .as_u64()
                });
                if id != want.first().copied() || count.flatten() != want.first().map(|_| 1) {
                    self.fail(
                        "meta",
                        format!("{procedure}: id {id:?} with {count:?} callees, model {want:?}"),
                    );
                }
            }
        }
        self.n.meta_checks += 1;
        for m in &mut askers {
            m.leave();
        }
    }
}

// ---- retention and event history against the model ----------------------------------------------

/// How long a fresh subscriber waits, after its last SUBSCRIBED, for retained EVENTs that should not
/// come; the ones that should come follow their SUBSCRIBED at once.
const RETAINED_QUIET: Duration = Duration::from_millis(300);

/// A router on `SHARDS` shards keeping event history on the `HISTORY` patterns.
fn start_router() -> InProcess {
    let event_history = HISTORY
        .iter()
        .map(|&(policy, pattern, _, limit)| wampd::config::HistorySpec {
            policy,
            pattern: pattern.into(),
            limit,
        })
        .collect();
    let config = wampd::config::Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        shards: SHARDS as usize,
        pin_cores: false,
        event_history,
        ..Default::default()
    };
    let server = wampd::server::Server::start(config).expect("router starts");
    let addr = server.local_addrs()[0].to_string();
    InProcess {
        server: Some(server),
        addr,
    }
}

/// What one asker saw: per topic the retained publication (or what was wrong), per history
/// pattern the publications `get_events` listed, oldest first.
#[derive(PartialEq, Debug)]
struct Stores {
    retained: Vec<Result<Option<u64>, String>>,
    history: Vec<Result<Vec<u64>, String>>,
}

/// The publication number an EVENT (or a listed event) carries as its only argument.
fn pubno_of(args: Option<Val<'_>>) -> Option<u64> {
    match args.map(Val::into_owned) {
        Some(Val::List(items)) if items.len() == 1 => items[0].as_u64(),
        _ => None,
    }
}

/// Subscribes to every topic with `get_retained`; per topic, the retained EVENT that followed.
fn retained_events(m: &mut common::Client) -> Vec<Result<Option<u64>, String>> {
    let mut topic_of_request = HashMap::new();
    for (t, topic) in TOPICS.iter().enumerate() {
        let request = m.req();
        topic_of_request.insert(request, t);
        m.send(&Message::Subscribe {
            request,
            options: dict(&[("get_retained", Val::Bool(true))]),
            topic: Cow::Borrowed(topic),
        });
    }
    let mut out: Vec<Result<Option<u64>, String>> = vec![Ok(None); TOPICS.len()];
    let mut topic_of_sub = HashMap::new();
    for _ in 0..1000 {
        // SUBSCRIBED may wait for another shard; the retained EVENT is queued with it.
        let answered = topic_of_sub.len() == TOPICS.len();
        m.set_timeout(if answered {
            RETAINED_QUIET
        } else {
            common::TIMEOUT
        });
        let Some(frame) = m.recv() else { break };
        match Message::parse(m.ser, &frame).expect("valid message") {
            Message::Subscribed {
                request,
                subscription,
            } => {
                topic_of_sub.insert(subscription, topic_of_request[&request]);
            }
            Message::Event {
                subscription,
                details,
                args,
                ..
            } => {
                let Some(&t) = topic_of_sub.get(&subscription) else {
                    panic!("EVENT before SUBSCRIBED of subscription {subscription}");
                };
                let flagged = details.get("retained").and_then(|v| v.as_bool()) == Some(true);
                out[t] = match (&out[t], pubno_of(args)) {
                    (Ok(None), Some(n)) if flagged => Ok(Some(n)),
                    (prev, n) => Err(format!(
                        "after {prev:?}: EVENT of #{n:?}, retained flag {flagged}"
                    )),
                };
            }
            other => panic!("expected SUBSCRIBED or EVENT, got {other:?}"),
        }
    }
    m.set_timeout(common::TIMEOUT);
    assert_eq!(topic_of_sub.len(), TOPICS.len(), "every SUBSCRIBE answered");
    out
}

/// The publications `wamp.subscription.get_events` lists for history pattern `h`, oldest first.
fn history_events(m: &mut common::Client, h: usize) -> Result<Vec<u64>, String> {
    let (policy, pattern, _, _) = HISTORY[h];
    let options = match policy {
        MatchPolicy::Exact => Val::empty_dict(),
        _ => dict(&[("match", s("prefix"))]),
    };
    let sub = m.subscribe_opts(pattern, options);
    let listed = m.call1("wamp.subscription.get_events", vec![Val::UInt(sub)]);
    let Val::List(events) = listed else {
        return Err(format!("not a list: {listed:?}"));
    };
    events
        .iter()
        .map(|e| pubno_of(e.get("args")).ok_or_else(|| format!("event {e:?}")))
        .collect()
}

impl World {
    /// True when publication `x` certainly reached the router's stores before `y`: its PUBLISHED
    /// was seen before `y` was sent (both are recorded before the acknowledgement goes out).
    fn before(&self, x: u64, y: u64) -> bool {
        self.pubs[x as usize]
            .acked
            .is_some_and(|a| a < self.pubs[y as usize].sent)
    }

    fn acked(&self, x: u64) -> bool {
        self.pubs[x as usize].acked.is_some()
    }

    /// With everything quiet: a fresh subscriber with `get_retained` gets, on every shard, a
    /// retained publication of each topic the model allows as the last one; `get_events` lists
    /// a last N of each history pattern the model allows; and every shard gives the same answers.
    fn check_retention_and_history(&mut self) {
        let mut askers: Vec<common::Client> = (0..SHARDS)
            .map(|_| common::Client::join(&self.addr, Serializer::Json))
            .collect();
        let mut answers = Vec::new();
        for m in &mut askers {
            let retained = retained_events(m);
            let history = (0..HISTORY.len()).map(|h| history_events(m, h)).collect();
            let shard = common::meta::shard_of(m.session, SHARDS as usize);
            answers.push((shard, Stores { retained, history }));
        }
        for m in &mut askers {
            m.leave();
        }
        for (shard, got) in &answers {
            for (t, r) in got.retained.iter().enumerate() {
                self.check_retained(*shard, t, r);
            }
            for (h, l) in got.history.iter().enumerate() {
                self.check_history(*shard, h, l);
            }
            if got != &answers[0].1 {
                let detail = format!(
                    "shard {shard}: {got:?}, shard {}: {:?}",
                    answers[0].0, answers[0].1
                );
                self.fail("shards disagree on retention or history", detail);
            }
        }
    }

    /// The retained publication of topic `t` is one no acknowledged retained publication certainly
    /// followed; none only if no retained publication was acknowledged.
    fn check_retained(&mut self, shard: usize, t: usize, got: &Result<Option<u64>, String>) {
        let retained: Vec<u64> = self.by_topic[t]
            .iter()
            .copied()
            .filter(|&x| self.pubs[x as usize].retain)
            .collect();
        let last = |w: &World, x: u64| !retained.iter().any(|&y| w.acked(y) && w.before(x, y));
        let candidates: Vec<u64> = retained
            .iter()
            .copied()
            .filter(|&x| last(self, x))
            .collect();
        let must = retained.iter().any(|&x| self.acked(x));
        let ok = match got {
            Ok(None) => !must,
            Ok(Some(x)) => candidates.contains(x),
            Err(_) => false,
        };
        if !ok {
            self.fail(
                "retained event",
                format!("{} on shard {shard}: got {got:?}, model allows {candidates:?} (one required: {must})", TOPICS[t]),
            );
        }
        self.n.retained_checked += 1;
        self.n.retained_unambiguous += (candidates.len() == 1) as u64;
    }

    /// `got` is a last `limit` of the pattern's publications in an order the model allows: no
    /// listed one certainly preceded an earlier-listed one, none left out certainly followed a
    /// listed one, and it is full or holds every acknowledged publication.
    fn check_history(&mut self, shard: usize, h: usize, got: &Result<Vec<u64>, String>) {
        let (_, pattern, topics, limit) = HISTORY[h];
        let all: Vec<u64> = topics
            .iter()
            .flat_map(|&t| self.by_topic[t].iter().copied())
            .collect();
        let problem = match got {
            Err(e) => Some(e.clone()),
            Ok(l) => self.history_problem(&all, l, limit),
        };
        if let Some(p) = problem {
            let acked = all.iter().filter(|&&x| self.acked(x)).count();
            self.fail(
                "event history",
                format!("{pattern} on shard {shard}: {p}; listed {got:?} ({} publications, {acked} acknowledged, limit {limit})", all.len()),
            );
        }
        self.n.history_events_checked += got.as_ref().map_or(0, |l| l.len() as u64);
    }

    fn history_problem(&self, all: &[u64], l: &[u64], limit: usize) -> Option<String> {
        let listed: HashSet<u64> = l.iter().copied().collect();
        let acked = all.iter().filter(|&&x| self.acked(x)).count();
        if listed.len() != l.len() || l.iter().any(|x| !all.contains(x)) {
            return Some("a duplicate or foreign publication".into());
        }
        if l.len() > limit || l.len() < limit.min(acked) {
            return Some(format!("{} events", l.len()));
        }
        for (i, &x) in l.iter().enumerate() {
            if let Some(&y) = l[..i].iter().find(|&&y| self.before(x, y)) {
                return Some(format!("#{x} is listed after #{y}, which followed it"));
            }
        }
        for &z in all
            .iter()
            .filter(|&&z| self.acked(z) && !listed.contains(&z))
        {
            if l.len() < limit {
                return Some(format!("acknowledged #{z} missing from a history not full"));
            }
            if let Some(&x) = l.iter().find(|&&x| self.before(x, z)) {
                return Some(format!("#{z} left out though it followed listed #{x}"));
            }
        }
        None
    }
}
