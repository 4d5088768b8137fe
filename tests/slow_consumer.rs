//! A subscriber that never reads must not cost the router unbounded memory nor cost other
//! subscribers a single event: 100 subscribers that read receive everything in order while one that
//! does not is handled by the realm's policy (disconnect, or drop its events).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dict, list, Client, Router};
use wampd::protocol::{Message, Serializer, Val};

const TOPIC: &str = "slow.consumer.t";
const READERS: usize = 100;
const RATE: u64 = 400; // publications per second
const SECONDS: u64 = 20;
const PAYLOAD: usize = 2048;
/// How much the router's RSS may grow while the events flow (every session already in place).
/// Measured on the 2-core development VM: 2.0 to 5.6 MiB with the 1 MiB queue bound of these
/// tests, 22 MiB with a bound of 1 GiB (the slow subscriber's queue then holds most of the 16 MiB
/// of events). Growth beyond this means a queue is not bounded.
const MAX_RSS_GROWTH_KIB: u64 = 10 * 1024;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Outcome {
    /// Kept so the router lives until the test's last check (killed on drop).
    _router: Router,
    base_rss_kib: u64,
    max_rss_kib: u64,
    slow: Client,
    published: u64,
}

/// The scenarios run one at a time: each is a load test of its own.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the scenario against a router started with `extra` flags; asserts the readers' side.
fn run(extra: &[&str]) -> Outcome {
    let r = Router::start(2, extra);
    let pid = r.pid();

    // The slow one joins first and never reads.
    let mut slow = Client::join(&r.addr, Serializer::MsgPack);
    slow.subscribe(TOPIC);

    let total = RATE * SECONDS;
    let failed = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|i| {
            let (addr, failed, received, ready) = (
                r.addr.clone(),
                failed.clone(),
                received.clone(),
                ready.clone(),
            );
            std::thread::spawn(move || {
                let ser = [Serializer::MsgPack, Serializer::Json, Serializer::Cbor][i % 3];
                let joined = std::panic::catch_unwind(|| {
                    let mut c = Client::join(&addr, ser);
                    c.subscribe(TOPIC);
                    c
                });
                let Ok(mut c) = joined else {
                    failed.store(true, Ordering::SeqCst);
                    panic!("reader {i} could not join");
                };
                ready.fetch_add(1, Ordering::SeqCst);
                for want in 0..total {
                    let (_, _, args, _) = c.event();
                    let got = match args {
                        Some(Val::List(items)) => items.first().and_then(|v| v.as_u64()),
                        _ => None,
                    };
                    if got != Some(want) {
                        failed.store(true, Ordering::SeqCst);
                        panic!("reader {i}: expected event {want}, got {got:?}");
                    }
                    received.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::SeqCst) < READERS as u64 {
        assert!(!failed.load(Ordering::SeqCst), "a reader failed to join");
        assert!(Instant::now() < deadline, "readers did not join in time");
        std::thread::sleep(Duration::from_millis(10));
    }

    let mut publisher = Client::join(&r.addr, Serializer::MsgPack);
    // Every session is in place: from here on, growth is what the events cost.
    let base_rss = rss_kib(pid);
    let pad = "p".repeat(PAYLOAD);
    let start = Instant::now();
    let mut max_rss = 0;
    for seq in 0..total {
        let due = start + Duration::from_micros(seq * 1_000_000 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let ack = seq % 100 == 99;
        let options = if ack {
            dict(&[("acknowledge", Val::Bool(true))])
        } else {
            Val::empty_dict()
        };
        publisher.publish(
            TOPIC,
            options,
            Some(list(vec![Val::UInt(seq), common::s(&pad)])),
            None,
        );
        if ack {
            publisher.recv_with(|m| assert!(matches!(m, Message::Published { .. }), "{m:?}"));
            max_rss = max_rss.max(rss_kib(pid));
        }
        assert!(!failed.load(Ordering::SeqCst), "a reader failed");
    }
    for t in readers {
        t.join().expect("reader saw every event in order");
    }
    assert_eq!(received.load(Ordering::SeqCst), total * READERS as u64);
    eprintln!(
        "slow consumer run {extra:?}: {} events × {READERS} readers, router RSS {} KiB at start, max {} KiB",
        total, base_rss, max_rss
    );
    Outcome {
        _router: r,
        base_rss_kib: base_rss,
        max_rss_kib: max_rss,
        slow,
        published: total,
    }
}

fn assert_rss_flat(base_kib: u64, max_kib: u64) {
    assert!(base_kib > 0 && max_kib > 0, "router RSS not measured");
    assert!(
        max_kib < base_kib + MAX_RSS_GROWTH_KIB,
        "router RSS grew from {base_kib} KiB to {max_kib} KiB (allowed: {MAX_RSS_GROWTH_KIB} KiB): \
         an outbound queue is not bounded"
    );
}

#[test]
fn slow_subscriber_is_disconnected_and_others_lose_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Outcome {
        _router,
        base_rss_kib,
        max_rss_kib,
        mut slow,
        published,
    } = run(&["--max-queue-bytes", "1048576"]);
    assert_rss_flat(base_rss_kib, max_rss_kib);
    // What the slow one gets: whatever fitted in socket buffers, then the connection ends.
    slow.set_timeout(Duration::from_secs(5));
    let mut got = 0u64;
    while slow.recv().is_some() {
        got += 1;
    }
    assert!(
        got < published,
        "the slow subscriber was cut off ({got} of {published})"
    );
}

#[test]
fn slow_subscriber_loses_events_under_the_drop_policy_but_stays() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Outcome {
        _router,
        base_rss_kib,
        max_rss_kib,
        mut slow,
        published,
    } = run(&["--max-queue-bytes", "1048576", "--slow-consumer", "drop"]);
    assert_rss_flat(base_rss_kib, max_rss_kib);
    // It receives a prefix-ordered subset with gaps, and its session still works.
    slow.set_timeout(Duration::from_secs(2));
    let mut last = None;
    let mut got = 0u64;
    while let Some(frame) = slow.recv() {
        let msg = Message::parse(slow.ser, &frame).unwrap();
        let Message::Event { args, .. } = msg else {
            panic!("expected EVENT")
        };
        let seq = args.unwrap().into_owned();
        let seq = match seq {
            Val::List(items) => items[0].as_u64().unwrap(),
            _ => panic!(),
        };
        assert!(last.is_none_or(|l| seq > l), "events stay in order");
        last = Some(seq);
        got += 1;
    }
    assert!(
        got < published,
        "some events were dropped ({got} of {published})"
    );
    slow.set_timeout(common::TIMEOUT);
    slow.publish_ack("slow.consumer.alive", list(vec![]));
}
