//! fanout: P publishers → T topics → S subscribers.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wampd::protocol::{Message, Serializer, Val};

use crate::check::{EventCheck, Reader, Seen};
use crate::session::{args_with_padding, join, Batch, Inbound, Session};
use crate::stats::{fmt_rate, stderr_is_tty, write_json, Lat, Runs};
use crate::url::Target;
use crate::util::{self, now_ns, wait_flag, yield_now, FdSet, Fds, Notify, PerThread};
use crate::{FanoutArgs, MatchArg};

const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
const JOIN_CONCURRENCY: usize = 64;
/// The delivery stream counts as finished after this long without deliveries.
pub const QUIET_NS: u64 = 2_000_000_000;
/// Hard cap on the drain after the publish phase.
pub const DRAIN_CAP_NS: u64 = 30_000_000_000;
const BATCH: u64 = 512;

pub struct Cfg {
    pub target: Target,
    /// Router process whose CPU time is measured.
    pub router_pid: Option<u32>,
    pub ser: Serializer,
    pub realm: String,
    pub threads: usize,
    pub publishers: usize,
    pub subscribers: usize,
    pub topics: usize,
    pub payload: usize,
    pub pad: &'static str,
    pub rate: Option<f64>,
    pub duration: f64,
    pub ack_every: u64,
    pub windows: u64,
    pub reader: Reader,
    pub policy: MatchArg,
    pub progress: bool,
    /// Options every publication carries besides `acknowledge` (listing, disclosure).
    pub publish_options: Vec<(&'static str, Val<'static>)>,
}

impl Cfg {
    pub fn from_args(a: &FanoutArgs) -> Result<Cfg, String> {
        let target = a.common.target()?;
        if a.publishers == 0 || a.subscribers == 0 || a.topics == 0 {
            return Err("--publishers, --subscribers and --topics must be > 0".into());
        }
        util::check_run(a.duration, a.rate)?;
        let ser = a.common.serializer.ser();
        Ok(Cfg {
            target,
            router_pid: a.common.router_pid,
            ser,
            realm: a.common.realm.clone(),
            threads: a.common.threads(),
            publishers: a.publishers,
            subscribers: a.subscribers,
            topics: a.topics,
            payload: a.payload,
            pad: event_padding(ser, a.payload),
            rate: a.rate,
            duration: a.duration,
            ack_every: a.ack_every.max(1),
            windows: a.windows.max(1),
            reader: a.reader,
            policy: a.match_policy,
            progress: stderr_is_tty(),
            publish_options: publish_options(a),
        })
    }
}

/// The options `--exclude`, `--eligible-authrole` and `--disclose` ask every publication to carry.
fn publish_options(a: &FanoutArgs) -> Vec<(&'static str, Val<'static>)> {
    let mut o = Vec::new();
    if a.exclude > 0 {
        // Session ids are at most 2^53; these are unlikely to be anyone's (and the run would show
        // it as lost events if one were).
        let ids = (0..a.exclude)
            .map(|_| Val::UInt(fastrand::u64(1..=1u64 << 53)))
            .collect();
        o.push(("exclude", Val::List(ids)));
    }
    if let Some(role) = &a.eligible_authrole {
        o.push((
            "eligible_authrole",
            Val::List(vec![Val::Str(Cow::Owned(role.clone()))]),
        ));
    }
    if a.disclose {
        o.push(("disclose_me", Val::Bool(true)));
    }
    o
}

/// The topic publications to topic `k` go to. Pattern runs add a last component, so that the
/// pattern `wampload.fanout.<k>.` matches exactly the topics of `k` (and not those of `k0`).
pub fn topic_name(k: usize, policy: MatchArg) -> String {
    match policy {
        MatchArg::Exact => format!("wampload.fanout.{k}"),
        _ => format!("wampload.fanout.{k}.e"),
    }
}

/// What subscribers of topic `k` subscribe to.
fn subscription_uri(k: usize, policy: MatchArg) -> String {
    match policy {
        MatchArg::Exact => topic_name(k, policy),
        _ => format!("wampload.fanout.{k}."),
    }
}

fn subscribe_options(policy: MatchArg) -> Val<'static> {
    match policy {
        MatchArg::Exact => Val::empty_dict(),
        p => Val::Dict(vec![(
            Cow::Borrowed("match"),
            Val::Str(Cow::Borrowed(p.name())),
        )]),
    }
}

/// A `'static` run of `n` ASCII 'x' (the padding string).
pub fn padding(n: usize) -> &'static str {
    if n == 0 {
        return "";
    }
    Box::leak("x".repeat(n).into_boxed_str())
}

/// Padding length so that a typical encoded message built by `make` is about `target` bytes.
pub fn pad_to(target: usize, make: impl Fn(&str) -> Vec<u8>) -> &'static str {
    let bare = make("").len();
    if target <= bare + 1 {
        return "";
    }
    let big = "x".repeat(target);
    let mut n = target - bare;
    while n > 0 && make(&big[..n]).len() > target {
        n -= 1;
    }
    padding(n)
}

/// Padding for an EVENT of about `bytes` bytes: `[36, sub, pub, {}, [p, seq, t, pad]]`
/// with representative ids and numbers.
pub fn event_padding(ser: Serializer, bytes: usize) -> &'static str {
    pad_to(bytes, |pad| {
        let pad: &'static str = Box::leak(pad.to_string().into_boxed_str());
        let m = Message::Event {
            subscription: 1 << 50,
            publication: 1 << 50,
            details: Val::empty_dict(),
            args: Some(args_with_padding(0, 100_000, 10_000_000_000, pad)),
            kwargs: None,
        };
        let mut out = Vec::new();
        let _ = m.encode(ser, &mut out);
        out
    })
}

struct Shared {
    cfg: Cfg,
    topics: Vec<String>,
    subs_on_topic: Vec<u64>,
    go: AtomicBool,
    stop: AtomicBool,
    start_ns: AtomicU64,
    end_ns: AtomicU64,
    ready: AtomicUsize,
    join_failures: AtomicU64,
    subscribed: AtomicUsize,
    published: AtomicU64,
    expected: AtomicU64,
    /// Distinct deliveries (frames for the count reader), per runtime thread.
    delivered: PerThread,
    /// Time of the latest delivery, per runtime thread.
    last_delivery: PerThread,
    pubs_done: AtomicUsize,
    errors: AtomicU64,
    p99: Vec<AtomicU64>,
    counts: Mutex<Vec<Vec<u64>>>,
    error_samples: Mutex<Vec<String>>,
}

impl Shared {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Relaxed);
        let mut s = self.error_samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < 10 {
            s.push(what);
        }
    }
}

/// What one subscriber brings home: its checks, or its frame count.
enum Received {
    Checked(EventCheck),
    Counted(u64),
}

#[derive(Default)]
struct ThreadStats {
    lat: Lat,
    send_lag: Lat,
    /// (topic, what was received) per subscriber that got going.
    subs: Vec<(usize, Received)>,
}

struct ThreadOut {
    lat: Lat,
    send_lag: Lat,
    subs: Vec<(usize, Received)>,
}

/// What a run measured (also used by the sweep).
pub struct Outcome {
    pub json: Value,
    pub lat: Lat,
    pub deliveries_per_sec: f64,
    pub offered_deliveries_per_sec: Option<f64>,
    pub lost: u64,
    pub errors: u64,
    pub p99: u64,
    pub summary: String,
}

/// Totals over all subscribers.
#[derive(Default)]
struct Tally {
    subscribers: usize,
    expected: u64,
    delivered: u64,
    lost: u64,
    dup: u64,
    ooo: u64,
    wrong_subscription: u64,
    wrong_topic: u64,
    malformed: u64,
    parsed_in_full: u64,
    /// Count reader: frames beyond the events expected.
    extra: u64,
}

impl Tally {
    /// Adds one subscriber of `topic`; `counts[p][k]` = publications publisher p sent to topic k.
    fn add(&mut self, topic: usize, r: &mut Received, counts: &[Vec<u64>]) {
        self.subscribers += 1;
        let sent: u64 = counts.iter().map(|c| c[topic]).sum();
        self.expected += sent;
        match r {
            Received::Checked(c) => {
                for (p, t) in c.trackers.iter_mut().enumerate() {
                    t.finish(counts[p][topic]);
                    self.delivered += t.received;
                    self.lost += t.lost;
                    self.dup += t.duplicated;
                    self.ooo += t.out_of_order;
                }
                self.wrong_subscription += c.wrong_subscription;
                self.wrong_topic += c.wrong_topic;
                self.malformed += c.malformed;
                self.parsed_in_full += c.parsed_in_full;
            }
            Received::Counted(n) => {
                self.delivered += (*n).min(sent);
                self.lost += sent.saturating_sub(*n);
                self.extra += n.saturating_sub(sent);
            }
        }
    }

    fn line(&self, published: u64, checked: bool, errors: u64) -> String {
        let (e, d, l) = (self.expected, self.delivered, self.lost);
        let mut s = format!("  published {published}  expected {e}  delivered {d}  lost {l}");
        if checked {
            s += &format!(
                "  duplicated {}  out-of-order {}  wrong subscription {}  wrong topic {}",
                self.dup, self.ooo, self.wrong_subscription, self.wrong_topic
            );
        } else {
            s += &format!("  extra frames {}", self.extra);
        }
        s + &format!("  errors {errors}\n")
    }
}

pub fn main(a: FanoutArgs) -> i32 {
    let cfg = match Cfg::from_args(&a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wampload: {e}");
            return 2;
        }
    };
    let out = run(cfg);
    print!("{}", out.summary);
    if let Some(p) = &a.common.json {
        write_json(p, &out.json);
    }
    if let Some(p) = &a.plot {
        crate::plot::latency_svg(p, "fanout: event latency by percentile", &out.lat);
    }
    i32::from(out.errors > 0 || out.lost > 0)
}

pub fn run(cfg: Cfg) -> Outcome {
    let threads = cfg.threads;
    let mut subs_on_topic = vec![0u64; cfg.topics];
    for i in 0..cfg.subscribers {
        subs_on_topic[i % cfg.topics] += 1;
    }
    let sh = Arc::new(Shared {
        topics: (0..cfg.topics).map(|k| topic_name(k, cfg.policy)).collect(),
        subs_on_topic,
        go: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        start_ns: AtomicU64::new(0),
        end_ns: AtomicU64::new(0),
        ready: AtomicUsize::new(0),
        join_failures: AtomicU64::new(0),
        subscribed: AtomicUsize::new(0),
        published: AtomicU64::new(0),
        expected: AtomicU64::new(0),
        delivered: PerThread::new(threads),
        last_delivery: PerThread::new(threads),
        pubs_done: AtomicUsize::new(0),
        errors: AtomicU64::new(0),
        p99: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        counts: Mutex::new(vec![vec![0; cfg.topics]; cfg.publishers]),
        error_samples: Mutex::new(Vec::new()),
        cfg,
    });
    let cpu0 = util::process_cpu_secs();
    let sh2 = sh.clone();
    let handles = util::spawn_runtimes(threads, move |tid| thread_main(tid, sh2.clone()));
    let cfg = &sh.cfg;
    let total = cfg.publishers + cfg.subscribers;

    // Setup: every session joined (or failed), bounded.
    let setup_deadline = now_ns() + 120_000_000_000;
    while sh.ready.load(Acquire) < total && now_ns() < setup_deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let setup_secs = now_ns() as f64 / 1e9;
    let start = now_ns() + 10_000_000;
    let end = start + (cfg.duration * 1e9) as u64;
    sh.start_ns.store(start, Release);
    sh.end_ns.store(end, Release);
    sh.last_delivery.set_all(start);
    sh.go.store(true, Release);
    let cpu_start = util::process_cpu_secs();
    let router_cpu = util::RouterCpu::start(cfg.router_pid);

    // Publish phase, then drain until quiet / complete / capped.
    let mut last_print = start;
    let mut last_del = 0u64;
    let mut pubs_done_at: Option<u64> = None;
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let now = now_ns();
        if cfg.progress && now >= last_print + 1_000_000_000 {
            let d = sh.delivered.sum();
            let p99 = sh.p99.iter().map(|a| a.load(Relaxed)).max().unwrap_or(0);
            eprintln!(
                "[{:5.1}s] published {} delivered {} ({} /s) p99 {} µs{}",
                (now.saturating_sub(start)) as f64 / 1e9,
                sh.published.load(Relaxed),
                d,
                fmt_rate((d - last_del) as f64 * 1e9 / (now - last_print) as f64),
                p99,
                if now > end { " (draining)" } else { "" }
            );
            last_print = now;
            last_del = d;
        }
        if now < end {
            continue;
        }
        if pubs_done_at.is_none() && sh.pubs_done.load(Acquire) >= cfg.publishers {
            pubs_done_at = Some(now);
        }
        if now > end + DRAIN_CAP_NS {
            break;
        }
        if let Some(t) = pubs_done_at {
            let delivered = sh.delivered.sum();
            let expected = sh.expected.load(Acquire);
            if delivered >= expected {
                break;
            }
            let last = sh.last_delivery.max().max(t);
            if now > last + QUIET_NS {
                break;
            }
        }
    }
    let drain_end = now_ns();
    let router_spent = router_cpu.stop();
    sh.stop.store(true, Release);
    let hard = std::time::Instant::now() + Duration::from_secs(20);
    let mut outs = Vec::new();
    for h in handles {
        while !h.is_finished() && std::time::Instant::now() < hard {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            if let Ok(o) = h.join() {
                outs.push(o);
            }
        } else {
            sh.error("a runtime thread did not finish in time".into());
        }
    }
    let cpu = util::process_cpu_secs();
    let _ = cpu0;

    // Accounting.
    let counts = sh.counts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut lat = Lat::default();
    let mut send_lag = Lat::default();
    let mut tally = Tally::default();
    for mut o in outs {
        lat.add(&o.lat);
        send_lag.add(&o.send_lag);
        for (topic, r) in o.subs.iter_mut() {
            tally.add(*topic, r, &counts);
        }
    }
    let Tally {
        delivered,
        lost,
        expected,
        ..
    } = tally;
    let checked = cfg.reader != Reader::Count;
    // The count reader cannot tell duplicates or reordering: say so rather than report 0.
    let if_checked = |v: u64| if checked { json!(v) } else { Value::Null };
    let published: u64 = counts.iter().flatten().sum();
    let errors = sh.errors.load(Relaxed);
    let last = sh.last_delivery.max().max(start + 1);
    let span = (last.min(drain_end) - start) as f64 / 1e9;
    let publish_secs = cfg.duration;
    let deliveries_per_sec = if span > 0.0 {
        delivered as f64 / span
    } else {
        0.0
    };
    let publications_per_sec = published as f64 / publish_secs;
    let run_secs = (drain_end - start) as f64 / 1e9;
    let cpu_pct = (cpu - cpu_start) / run_secs * 100.0;
    let offered = cfg
        .rate
        .map(|r| r * cfg.subscribers as f64 / cfg.topics as f64);
    let errs = sh
        .error_samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();

    let json = json!({
        "scenario": "fanout",
        "url": cfg.target.to_string(),
        "serializer": cfg.ser.name(),
        "realm": cfg.realm,
        "publishers": cfg.publishers,
        "subscribers": cfg.subscribers,
        "topics": cfg.topics,
        "payload": cfg.payload,
        "padding": cfg.pad.len(),
        "rate": cfg.rate,
        "mode": if cfg.rate.is_some() { "open" } else { "closed" },
        "duration": cfg.duration,
        "threads": cfg.threads,
        "driver": util::DRIVER.get().cloned().unwrap_or_default(),
        "ack_every": cfg.ack_every,
        "windows": cfg.windows,
        "reader": cfg.reader.name(),
        "match": cfg.policy.name(),
        "deliveries_per_sec": deliveries_per_sec.round(),
        "publications_per_sec": publications_per_sec.round(),
        "published": published,
        "delivered": delivered,
        "expected": expected,
        "lost": lost,
        "duplicated": if_checked(tally.dup),
        "out_of_order": if_checked(tally.ooo),
        "wrong_subscription": if_checked(tally.wrong_subscription),
        "wrong_topic": if_checked(tally.wrong_topic),
        "malformed": if_checked(tally.malformed),
        "frames_parsed_in_full": if_checked(tally.parsed_in_full),
        "extra_frames": tally.extra,
        "errors": errors,
        "join_failures": sh.join_failures.load(Relaxed),
        "subscribers_ready": tally.subscribers,
        "latency_us": lat.json(),
        "send_lag_us": send_lag.json(),
        "setup_secs": (setup_secs * 100.0).round() / 100.0,
        "delivery_secs": (span * 1000.0).round() / 1000.0,
        "drain_secs": ((drain_end.saturating_sub(end)) as f64 / 1e7).round() / 100.0,
        "wampload_cpu_percent": (cpu_pct * 10.0).round() / 10.0,
        "error_samples": errs,
    });
    let mut json = json;
    util::RouterCpu::report(
        router_spent,
        delivered,
        "router_cpu_us_per_delivery",
        &mut json,
    );
    json["publish_options"] = cfg
        .publish_options
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .into();
    let mut summary = String::new();
    summary += &format!(
        "fanout {} {}: {} pub → {} topic(s) → {} sub, ~{} B events, {} for {} s, {} thread(s)\n",
        cfg.target,
        cfg.ser.name(),
        cfg.publishers,
        cfg.topics,
        cfg.subscribers,
        cfg.payload,
        match cfg.rate {
            Some(r) => format!("open loop at {} publications/s", fmt_rate(r)),
            None => "closed loop".into(),
        },
        cfg.duration,
        cfg.threads
    );
    summary += &format!(
        "  deliveries/s {}   (publications/s {})\n",
        fmt_rate(deliveries_per_sec),
        fmt_rate(publications_per_sec)
    );
    summary += &tally.line(published, checked, errors);
    if !checked {
        summary += "  reader: count (frames counted, nothing checked: a ceiling reference)\n";
    }
    summary += &format!("  latency {}\n", lat.line());
    summary += &format!(
        "  drain {:.2} s after publishing; wampload CPU {:.0}% (of one core)\n",
        (drain_end.saturating_sub(end)) as f64 / 1e9,
        cpu_pct
    );
    for e in &errs {
        summary += &format!("  error: {e}\n");
    }
    Outcome {
        p99: lat.q(0.99),
        json,
        lat,
        deliveries_per_sec,
        offered_deliveries_per_sec: offered,
        lost,
        errors,
        summary,
    }
}

async fn thread_main(tid: usize, sh: Arc<Shared>) -> ThreadOut {
    let fds: Fds = Rc::new(FdSet::default());
    let st = Rc::new(RefCell::new(ThreadStats::default()));
    let joining = Rc::new(Cell::new(0usize));
    let n = sh.cfg.threads;
    let mut handles = Vec::new();
    // Subscribers first, so they are all in place before anyone publishes.
    for i in (tid..sh.cfg.subscribers).step_by(n) {
        while joining.get() >= JOIN_CONCURRENCY {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        joining.set(joining.get() + 1);
        handles.push(monoio::spawn(subscriber(
            i,
            sh.clone(),
            fds.clone(),
            st.clone(),
            joining.clone(),
            tid,
        )));
    }
    for j in (tid..sh.cfg.publishers).step_by(n) {
        handles.push(monoio::spawn(publisher(
            j,
            sh.clone(),
            fds.clone(),
            st.clone(),
        )));
    }
    let mut last_p99 = 0;
    while !sh.stop.load(Acquire) {
        monoio::time::sleep(Duration::from_millis(5)).await;
        let now = now_ns();
        if sh.cfg.progress && now > last_p99 + 1_000_000_000 {
            last_p99 = now;
            sh.p99[tid].store(st.borrow().lat.q(0.99), Relaxed);
        }
    }
    fds.shutdown_all();
    for h in handles {
        let _ = monoio::time::timeout(Duration::from_secs(5), h).await;
    }
    let mut s = st.borrow_mut();
    ThreadOut {
        lat: std::mem::take(&mut s.lat),
        send_lag: std::mem::take(&mut s.send_lag),
        subs: std::mem::take(&mut s.subs),
    }
}

async fn subscriber(
    i: usize,
    sh: Arc<Shared>,
    fds: Fds,
    st: Rc<RefCell<ThreadStats>>,
    joining: Rc<Cell<usize>>,
    tid: usize,
) {
    let cfg = &sh.cfg;
    let topic = i % cfg.topics;
    let joined = join(&cfg.target, cfg.ser, &cfg.realm, &fds, JOIN_TIMEOUT).await;
    let subscribed = match joined {
        Ok(mut s) => subscribe(i, &mut s, &sh, topic).await.map(|id| (s, id)),
        Err(e) => {
            sh.join_failures.fetch_add(1, Relaxed);
            sh.error(format!("subscriber {i}: join: {e}"));
            None
        }
    };
    joining.set(joining.get() - 1);
    sh.ready.fetch_add(1, Release);
    let Some((mut s, subscription)) = subscribed else {
        return;
    };
    sh.subscribed.fetch_add(1, Relaxed);
    let received = if cfg.reader == Reader::Count {
        Received::Counted(count_frames(i, &mut s, &sh, tid).await)
    } else {
        let pattern = (cfg.policy != MatchArg::Exact).then(|| sh.topics[topic].as_str());
        let full = cfg.reader == Reader::Full;
        let check = EventCheck::new(cfg.ser, full, subscription, pattern, cfg.publishers);
        Received::Checked(check_events(i, &mut s, &sh, &st, tid, check).await)
    };
    st.borrow_mut().subs.push((topic, received));
}

/// SUBSCRIBE and wait for SUBSCRIBED; the subscription id, or `None` (error counted).
async fn subscribe(i: usize, s: &mut Session, sh: &Shared, topic: usize) -> Option<u64> {
    let cfg = &sh.cfg;
    let uri = subscription_uri(topic, cfg.policy);
    s.send(&Message::Subscribe {
        request: 1,
        options: subscribe_options(cfg.policy),
        topic: Cow::Borrowed(&uri),
    });
    let why = loop {
        match monoio::time::timeout(JOIN_TIMEOUT, s.next()).await {
            Ok(Ok(Inbound::Msg(f))) => match Message::parse(cfg.ser, &f) {
                Ok(Message::Subscribed { subscription, .. }) => return Some(subscription),
                Ok(Message::Error { error, .. }) => break format!("SUBSCRIBE refused: {error}"),
                Ok(_) => continue,
                Err(e) => break format!("bad message: {e}"),
            },
            Ok(Ok(Inbound::Closed)) => break "connection closed before SUBSCRIBED".into(),
            Ok(Err(e)) => break e,
            Err(_) => break "no SUBSCRIBED in time".into(),
        }
    };
    sh.error(format!("subscriber {i}: {why}"));
    None
}

/// The default reader: every event read lightly and checked; returns the checks at the end.
async fn check_events(
    i: usize,
    s: &mut Session,
    sh: &Shared,
    st: &RefCell<ThreadStats>,
    tid: usize,
    mut check: EventCheck,
) -> EventCheck {
    let ser = sh.cfg.ser;
    loop {
        // One clock reading per socket read: the events of one read arrived together.
        let (mut now, mut new, mut over) = (0u64, 0u64, false);
        let mut runs = Runs::default();
        let r = s
            .frames(|frame| match check.on_frame(frame) {
                Seen::New(sent) => {
                    if now == 0 {
                        now = now_ns();
                    }
                    if let Some(run) = runs.add_ns(now.saturating_sub(sent)) {
                        st.borrow_mut().lat.record_run(run);
                    }
                    new += 1;
                }
                Seen::Duplicate => {}
                Seen::Bad(why) => sh.error(format!("subscriber {i}: {why}")),
                Seen::Other => over |= other_message(i, sh, ser, frame),
            })
            .await;
        if let Some(run) = runs.take() {
            st.borrow_mut().lat.record_run(run);
        }
        if new > 0 {
            sh.delivered.add(tid, new);
            sh.last_delivery.raise(tid, now);
        }
        if over || !batch_ok(i, sh, r) {
            return check;
        }
    }
}

/// The ceiling reference: frames are counted and nothing else; returns the count.
async fn count_frames(i: usize, s: &mut Session, sh: &Shared, tid: usize) -> u64 {
    let mut total = 0;
    loop {
        let mut n = 0u64;
        let r = s.frames(|_| n += 1).await;
        if n > 0 {
            total += n;
            sh.delivered.add(tid, n);
            sh.last_delivery.raise(tid, now_ns());
        }
        if !batch_ok(i, sh, r) {
            return total;
        }
    }
}

/// Whether the subscriber reads on after a batch (an unexpected end is counted as an error).
fn batch_ok(i: usize, sh: &Shared, r: Result<Batch, String>) -> bool {
    let why = match r {
        Ok(Batch::Done) => return true,
        Ok(Batch::Closed) => "connection closed by the router".to_string(),
        Err(e) => e,
    };
    if !sh.stop.load(Acquire) {
        sh.error(format!("subscriber {i}: {why}"));
    }
    false
}

/// A message other than an EVENT; true when it ends the session.
fn other_message(i: usize, sh: &Shared, ser: Serializer, frame: &[u8]) -> bool {
    match Message::parse(ser, frame) {
        Ok(Message::Error { error, .. }) => sh.error(format!("subscriber {i}: ERROR {error}")),
        Ok(Message::Goodbye { reason, .. }) | Ok(Message::Abort { reason, .. }) => {
            sh.error(format!(
                "subscriber {i}: session closed by the router: {reason}"
            ));
            return true;
        }
        Ok(m) => sh.error(format!("subscriber {i}: unexpected message {}", m.code())),
        Err(e) => sh.error(format!("subscriber {i}: bad message: {e}")),
    }
    false
}

async fn publisher(j: usize, sh: Arc<Shared>, fds: Fds, st: Rc<RefCell<ThreadStats>>) {
    let cfg = &sh.cfg;
    let s = match join(&cfg.target, cfg.ser, &cfg.realm, &fds, JOIN_TIMEOUT).await {
        Ok(s) => s,
        Err(e) => {
            sh.join_failures.fetch_add(1, Relaxed);
            sh.error(format!("publisher {j}: join: {e}"));
            sh.ready.fetch_add(1, Release);
            sh.pubs_done.fetch_add(1, Release);
            return;
        }
    };
    sh.ready.fetch_add(1, Release);
    wait_flag(&sh.go).await;
    let start = sh.start_ns.load(Acquire);
    let end = sh.end_ns.load(Acquire);
    let out = s.out.clone();
    let ser = s.ser;
    let acked = Rc::new(Cell::new(0u64));
    let notify = Rc::new(Notify::default());
    let reader = monoio::spawn(publisher_reader(
        j,
        s,
        sh.clone(),
        acked.clone(),
        notify.clone(),
    ));
    util::pace_until_ns(start).await;

    let per_pub = cfg.rate.map(|r| r / cfg.publishers as f64);
    let interval = per_pub.map(|r| 1e9 / r);
    let max_unacked = match per_pub {
        // Open loop: allow ~100 ms worth of unacknowledged publications.
        Some(r) => (cfg.ack_every * cfg.windows).max((r * 0.1) as u64),
        None => cfg.ack_every * cfg.windows,
    };
    let avg_fanout = (cfg.subscribers as u64).div_ceil(cfg.topics as u64).max(1);
    // Deliveries published but not yet received, over all publishers: enough to keep the
    // router busy for many milliseconds, small enough not to measure queueing alone. Each receiving
    // thread gets its own share, so that more threads (for a router with more cores) are not
    // throttled by one thread's window.
    let lag_cap = 65536 * cfg.threads as u64;
    let lag_limit = (max_unacked * cfg.publishers as u64 * avg_fanout).clamp(4096, lag_cap);
    let opts = |ack: bool| {
        let mut o: Vec<(Cow<'static, str>, Val<'static>)> = cfg
            .publish_options
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
            .collect();
        if ack {
            o.push((Cow::Borrowed("acknowledge"), Val::Bool(true)));
        }
        Val::Dict(o)
    };
    let mut scratch = Vec::with_capacity(256);
    let mut sent: u64 = 0;
    let mut seqs = vec![0u64; cfg.topics];
    let mut k = j % cfg.topics;
    loop {
        if sh.stop.load(Relaxed) || out.failed() {
            break;
        }
        let now = now_ns();
        if now >= end {
            break;
        }
        let window = max_unacked.saturating_sub(sent - acked.get());
        let due = match interval {
            Some(iv) => {
                let due_total = (now.saturating_sub(start) as f64 / iv) as u64 + 1;
                due_total.saturating_sub(sent)
            }
            None => u64::MAX,
        };
        let mut n = window.min(due).min(BATCH);
        if n > 0 && interval.is_none() {
            // Closed loop: don't run ahead of what subscribers have received.
            let lag = sh.expected.load(Relaxed).saturating_sub(sh.delivered.sum());
            n = n.min(lag_limit.saturating_sub(lag).div_ceil(avg_fanout));
        }
        if n == 0 {
            if window == 0 {
                let _ = monoio::time::timeout(Duration::from_millis(50), notify.notified()).await;
            } else if due == 0 {
                let iv = interval.unwrap_or(1e6);
                util::pace_until_ns(start + (sent as f64 * iv) as u64).await;
            } else {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            continue;
        }
        let mut exp_add = 0;
        for _ in 0..n {
            let t = match interval {
                Some(iv) => {
                    let sched = start + (sent as f64 * iv) as u64;
                    st.borrow_mut()
                        .send_lag
                        .record_ns(now.saturating_sub(sched));
                    sched
                }
                None => now,
            };
            sent += 1;
            let topic = k;
            k = (k + 1) % cfg.topics;
            let seq = seqs[topic];
            seqs[topic] += 1;
            let msg = Message::Publish {
                request: sent,
                options: opts(sent.is_multiple_of(cfg.ack_every)),
                topic: Cow::Borrowed(&sh.topics[topic]),
                args: Some(args_with_padding(j as u64, seq, t, cfg.pad)),
                kwargs: None,
            };
            out.push_msg(&msg, ser, &mut scratch);
            exp_add += sh.subs_on_topic[topic];
        }
        sh.published.fetch_add(n, Relaxed);
        sh.expected.fetch_add(exp_add, Release);
        yield_now().await;
    }
    sh.counts.lock().unwrap_or_else(|e| e.into_inner())[j] = seqs;
    sh.pubs_done.fetch_add(1, Release);
    let _ = reader.await;
}

async fn publisher_reader(
    j: usize,
    mut s: crate::session::Session,
    sh: Arc<Shared>,
    acked: Rc<Cell<u64>>,
    notify: Rc<Notify>,
) {
    loop {
        let f = match s.next().await {
            Ok(Inbound::Msg(f)) => f,
            Ok(Inbound::Closed) | Err(_) => {
                if !sh.stop.load(Acquire) {
                    sh.error(format!("publisher {j}: connection lost"));
                }
                notify.notify();
                return;
            }
        };
        match Message::parse(s.ser, &f) {
            Ok(Message::Published { request, .. }) => {
                if request > acked.get() {
                    acked.set(request);
                }
                notify.notify();
            }
            Ok(Message::Error { request, error, .. }) => {
                sh.error(format!("publisher {j}: PUBLISH {request} refused: {error}"));
                if request > acked.get() {
                    acked.set(request);
                }
                notify.notify();
            }
            Ok(Message::Goodbye { reason, .. }) | Ok(Message::Abort { reason, .. }) => {
                sh.error(format!(
                    "publisher {j}: session closed by the router: {reason}"
                ));
                notify.notify();
                return;
            }
            Ok(_) => {}
            Err(e) => sh.error(format!("publisher {j}: bad message: {e}")),
        }
    }
}
