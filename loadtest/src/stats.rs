//! Latency histograms, result documents and the human summary.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latency histogram in microseconds (1 µs .. 1 h, 3 significant digits).
pub struct Lat(pub Histogram<u64>);

impl Default for Lat {
    fn default() -> Self {
        Lat(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds"))
    }
}

impl Lat {
    pub fn record_ns(&mut self, ns: u64) {
        let us = (ns / 1000).clamp(1, 3_600_000_000);
        let _ = self.0.record(us);
    }
    pub fn add(&mut self, other: &Lat) {
        let _ = self.0.add(&other.0);
    }
    pub fn q(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(q)
        }
    }
    pub fn json(&self) -> Value {
        json!({
            "p50": self.q(0.5),
            "p90": self.q(0.9),
            "p99": self.q(0.99),
            "p999": self.q(0.999),
            "max": if self.0.is_empty() { 0 } else { self.0.max() },
            "mean": (self.0.mean() * 10.0).round() / 10.0,
            "count": self.0.len(),
        })
    }
    pub fn line(&self) -> String {
        format!(
            "p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            self.q(0.5),
            self.q(0.9),
            self.q(0.99),
            self.q(0.999),
            if self.0.is_empty() { 0 } else { self.0.max() }
        )
    }
}

pub fn write_json(path: &str, v: &Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    if let Err(e) = std::fs::write(path, text + "\n") {
        eprintln!("wampload: cannot write {path}: {e}");
    }
}

/// Whether progress lines go to stderr.
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty has no preconditions.
    unsafe { libc::isatty(2) == 1 }
}

/// Formats a rate with thousands separators.
pub fn fmt_rate(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}
