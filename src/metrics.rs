//! Counters for Prometheus, and the `GET /metrics` endpoint that exposes them.
//!
//! Each shard owns one [`ShardMetrics`] and is its only writer, so an increment is a load and a
//! store of a relaxed atomic on memory no other core writes: as cheap as a plain add, with no lock
//! and no contended cache line. A scrape reads every shard's counters and sums or labels them.
//! Code on the hot path reaches its shard's counters through a thread-local set when the shard
//! starts; on any other thread (unit tests, helpers) the calls do nothing.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::codes;

/// A counter written by one thread only.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    fn add(&self, n: u64) {
        // Single writer: no read-modify-write instruction needed.
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Upper bounds of the call-latency buckets, in microseconds (Prometheus `le`, in seconds).
const LATENCY_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Largest WAMP message type code (YIELD) plus one.
const TYPES: usize = 71;

/// The authentication methods counted separately; anything else counts as `other`.
pub const AUTH_METHODS: [&str; 8] = [
    "anonymous",
    "ticket",
    "wampcra",
    "wamp-scram",
    "cryptosign",
    "tls",
    "dynamic",
    "other",
];

/// Failed authentications by method, for the whole process: they may be counted off the shard
/// threads (key derivation runs elsewhere), and they are rare enough for a shared atomic.
static AUTH_FAILURES: [AtomicU64; AUTH_METHODS.len()] =
    [const { AtomicU64::new(0) }; AUTH_METHODS.len()];

/// Counts one failed authentication with `method` (`wampd_auth_failures_total{method}`).
pub fn auth_failure(method: &str) {
    // autobahn's SCRAM dialect names the method `scram`: one series for both.
    let method = if method == "scram" {
        "wamp-scram"
    } else {
        method
    };
    let i = AUTH_METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(AUTH_METHODS.len() - 1);
    AUTH_FAILURES[i].fetch_add(1, Relaxed);
}

/// One shard's counters.
pub struct ShardMetrics {
    shard: usize,
    received: [Counter; TYPES],
    sent: [Counter; TYPES],
    events_delivered: Counter,
    bytes_sent: Counter,
    slow_disconnect: Counter,
    slow_drop: Counter,
    ring_full: Counter,
    /// Sessions joined, by realm index.
    sessions: Vec<AtomicI64>,
    latency_buckets: [Counter; LATENCY_BOUNDS_US.len()],
    latency_count: Counter,
    latency_sum_us: Counter,
}

impl ShardMetrics {
    fn new(shard: usize, realms: usize) -> Self {
        ShardMetrics {
            shard,
            received: std::array::from_fn(|_| Counter::default()),
            sent: std::array::from_fn(|_| Counter::default()),
            events_delivered: Counter::default(),
            bytes_sent: Counter::default(),
            slow_disconnect: Counter::default(),
            slow_drop: Counter::default(),
            ring_full: Counter::default(),
            sessions: (0..realms).map(|_| AtomicI64::new(0)).collect(),
            latency_buckets: std::array::from_fn(|_| Counter::default()),
            latency_count: Counter::default(),
            latency_sum_us: Counter::default(),
        }
    }

    /// Counters of a router that no registry scrapes (unit tests, tools): counted, never read.
    pub fn detached() -> Arc<Self> {
        Arc::new(ShardMetrics::new(0, 0))
    }

    /// A WAMP message of type `code` arrived.
    #[inline]
    pub fn received(&self, code: u64) {
        self.received[(code as usize).min(TYPES - 1)].add(1)
    }

    /// A WAMP message of type `code` was queued for a client.
    #[inline]
    pub fn sent(&self, code: u64) {
        self.sent[(code as usize).min(TYPES - 1)].add(1)
    }

    /// An EVENT was queued for a subscriber (also counted as a sent EVENT).
    #[inline]
    pub fn event_delivered(&self) {
        self.events_delivered.add(1);
        self.sent[codes::EVENT as usize].add(1);
    }

    /// A session was disconnected because its queue was full.
    pub fn slow_consumer_disconnected(&self) {
        self.slow_disconnect.add(1)
    }

    /// An EVENT was dropped for a slow session (policy `drop`).
    pub fn slow_consumer_dropped(&self) {
        self.slow_drop.add(1)
    }

    /// This shard found another shard's ring full.
    pub fn mesh_ring_full(&self) {
        self.ring_full.add(1)
    }

    /// A call took `d` (see the histogram's help text for where it is measured).
    pub fn call_latency(&self, d: Duration) {
        self.observe_latency(d)
    }

    /// A call took `us` microseconds.
    #[inline]
    pub fn call_latency_us(&self, us: u64) {
        self.observe_latency_us(us)
    }

    fn observe_latency(&self, d: Duration) {
        self.observe_latency_us(d.as_micros().min(u64::MAX as u128) as u64)
    }

    fn observe_latency_us(&self, us: u64) {
        // The first bound not below `us`, by binary search: four comparisons, not sixteen.
        let i = LATENCY_BOUNDS_US.partition_point(|&b| b < us);
        if let Some(bucket) = self.latency_buckets.get(i) {
            bucket.add(1);
        }
        self.latency_count.add(1);
        self.latency_sum_us.add(us);
    }
}

/// Reads one per-shard counter.
type Getter = fn(&ShardMetrics) -> u64;

/// Every shard's counters, for a scrape.
pub struct Registry {
    realms: Vec<String>,
    shards: Vec<Arc<ShardMetrics>>,
}

impl Registry {
    pub fn new(shards: usize, realms: &[String]) -> Self {
        Registry {
            realms: realms.to_vec(),
            shards: (0..shards)
                .map(|s| Arc::new(ShardMetrics::new(s, realms.len())))
                .collect(),
        }
    }

    /// The counters of `shard`, for its router to write directly (no thread-local lookup on the
    /// hot path).
    pub fn shard(&self, shard: usize) -> Arc<ShardMetrics> {
        self.shards[shard].clone()
    }

    /// Makes `shard`'s counters the ones this thread's calls add to.
    pub fn install(&self, shard: usize) {
        let m = self.shards[shard].clone();
        CURRENT.with(|c| *c.borrow_mut() = Some(m));
    }

    /// The Prometheus text exposition (format 0.0.4) of every counter.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        self.render_sessions(&mut out);
        self.render_by_type(&mut out, "received", |m| &m.received);
        self.render_by_type(&mut out, "sent", |m| &m.sent);
        let simple: [(&str, &str, Getter); 3] = [
            (
                "events_delivered_total",
                "EVENTs queued for subscribers.",
                |m| m.events_delivered.get(),
            ),
            (
                "bytes_sent_total",
                "Bytes written to clients (after TLS, before TCP).",
                |m| m.bytes_sent.get(),
            ),
            (
                "mesh_ring_full_total",
                "Times a shard found another shard's ring full and paused reading.",
                |m| m.ring_full.get(),
            ),
        ];
        for (name, help, get) in simple {
            header(&mut out, name, help, "counter");
            for m in &self.shards {
                let _ = writeln!(out, "wampd_{name}{{shard=\"{}\"}} {}", m.shard, get(m));
            }
        }
        self.render_slow_consumers(&mut out);
        render_auth_failures(&mut out);
        self.render_latency(&mut out);
        out
    }

    fn render_sessions(&self, out: &mut String) {
        header(
            out,
            "sessions",
            "Sessions joined, by realm and shard.",
            "gauge",
        );
        for m in &self.shards {
            for (realm, n) in self.realms.iter().zip(&m.sessions) {
                let _ = writeln!(
                    out,
                    "wampd_sessions{{realm=\"{}\",shard=\"{}\"}} {}",
                    escape(realm),
                    m.shard,
                    n.load(Relaxed)
                );
            }
        }
    }

    fn render_by_type(
        &self,
        out: &mut String,
        dir: &str,
        pick: fn(&ShardMetrics) -> &[Counter; TYPES],
    ) {
        let name = format!("messages_{dir}_total");
        header(
            out,
            &name,
            &format!("WAMP messages {dir}, by type."),
            "counter",
        );
        for code in 1..TYPES {
            let total: u64 = self.shards.iter().map(|m| pick(m)[code].get()).sum();
            let label = codes::name(code as u64);
            if total > 0 || is_known(label) {
                let _ = writeln!(out, "wampd_{name}{{type=\"{label}\"}} {total}");
            }
        }
    }

    fn render_slow_consumers(&self, out: &mut String) {
        let name = "slow_consumer_total";
        let help = "Slow consumers: sessions disconnected, or EVENTs dropped, for a full queue.";
        header(out, name, help, "counter");
        let disconnect: u64 = self.shards.iter().map(|m| m.slow_disconnect.get()).sum();
        let drop: u64 = self.shards.iter().map(|m| m.slow_drop.get()).sum();
        let _ = writeln!(out, "wampd_{name}{{action=\"disconnect\"}} {disconnect}");
        let _ = writeln!(out, "wampd_{name}{{action=\"drop\"}} {drop}");
    }

    fn render_latency(&self, out: &mut String) {
        let name = "call_duration_seconds";
        let help = "From INVOCATION sent to YIELD or ERROR received, on the callee's shard.";
        header(out, name, help, "histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
            cumulative += self
                .shards
                .iter()
                .map(|m| m.latency_buckets[i].get())
                .sum::<u64>();
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "wampd_{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count: u64 = self.shards.iter().map(|m| m.latency_count.get()).sum();
        let sum: u64 = self.shards.iter().map(|m| m.latency_sum_us.get()).sum();
        let _ = writeln!(out, "wampd_{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "wampd_{name}_sum {}", sum as f64 / 1e6);
        let _ = writeln!(out, "wampd_{name}_count {count}");
    }
}

fn render_auth_failures(out: &mut String) {
    let name = "auth_failures_total";
    header(out, name, "Failed authentications, by method.", "counter");
    for (m, n) in AUTH_METHODS.iter().zip(&AUTH_FAILURES) {
        let _ = writeln!(out, "wampd_{name}{{method=\"{m}\"}} {}", n.load(Relaxed));
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP wampd_{name} {help}");
    let _ = writeln!(out, "# TYPE wampd_{name} {kind}");
}

fn is_known(label: &str) -> bool {
    !label.is_empty() && label.chars().all(|c| c.is_ascii_uppercase())
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<ShardMetrics>>> = const { RefCell::new(None) };
}

#[inline]
fn with(f: impl FnOnce(&ShardMetrics)) {
    CURRENT.with(|c| {
        if let Some(m) = &*c.borrow() {
            f(m)
        }
    })
}

/// Bytes written to a client's socket.
#[inline]
pub fn bytes_sent(n: usize) {
    with(|m| m.bytes_sent.add(n as u64))
}

/// A session joined (`+1`) or left (`-1`) realm index `realm` on this shard.
pub fn session_delta(realm: usize, delta: i64) {
    with(|m| {
        if let Some(g) = m.sessions.get(realm) {
            g.store(g.load(Relaxed) + delta, Relaxed);
        }
    })
}

/// Longest a scrape request may take to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `GET /metrics` on its own thread, one request at a time: scrapes are rare, and keeping
/// them off the shards means a slow scraper can never delay routing.
pub fn serve(addr: SocketAddr, registry: Arc<Registry>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("wampd-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => {
                        let _ = answer(s, &registry);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(local)
}

fn answer(mut s: TcpStream, registry: &Registry) -> std::io::Result<()> {
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    let path = loop {
        let n = s.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                break (req.method == Some("GET")).then(|| req.path.unwrap_or("").to_string());
            }
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            _ => break None,
        }
    };
    let (status, kind, body) = match path.as_deref() {
        Some("/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            registry.render(),
        ),
        _ => ("404 Not Found", "text/plain", "GET /metrics\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_reach_the_exposition_of_their_shard() {
        let reg = Registry::new(2, &["realm1".to_string()]);
        session_delta(0, 1); // not installed: ignored
        std::thread::scope(|s| {
            s.spawn(|| {
                reg.install(1);
                let m = reg.shard(1);
                m.received(codes::PUBLISH);
                m.received(codes::PUBLISH);
                m.event_delivered();
                session_delta(0, 1);
                m.call_latency(Duration::from_micros(300));
                m.call_latency(Duration::from_secs(60));
            });
        });
        let text = reg.render();
        assert!(text.contains("# TYPE wampd_messages_received_total counter"));
        assert!(text.contains("wampd_messages_received_total{type=\"PUBLISH\"} 2"));
        assert!(text.contains("wampd_messages_sent_total{type=\"EVENT\"} 1"));
        assert!(text.contains("wampd_events_delivered_total{shard=\"1\"} 1"));
        assert!(text.contains("wampd_sessions{realm=\"realm1\",shard=\"1\"} 1"));
        assert!(text.contains("wampd_sessions{realm=\"realm1\",shard=\"0\"} 0"));
        assert!(text.contains("wampd_call_duration_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("wampd_call_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("wampd_call_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("wampd_call_duration_seconds_count 2"));
    }

    #[test]
    fn auth_failures_are_counted_by_method_from_any_thread() {
        let before = |m: &str| {
            AUTH_FAILURES[AUTH_METHODS.iter().position(|x| *x == m).unwrap()].load(Relaxed)
        };
        let (scram, other) = (before("wamp-scram"), before("other"));
        std::thread::spawn(|| {
            auth_failure("scram");
            auth_failure("wamp-scram");
            auth_failure("made-up");
        })
        .join()
        .unwrap();
        assert!(before("wamp-scram") >= scram + 2);
        assert!(before("other") > other);
        let text = Registry::new(1, &[]).render();
        assert!(text.contains("# TYPE wampd_auth_failures_total counter"));
        assert!(text.contains("wampd_auth_failures_total{method=\"ticket\"}"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
