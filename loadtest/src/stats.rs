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
    fn us(ns: u64) -> u64 {
        (ns / 1000).clamp(1, 3_600_000_000)
    }

    pub fn record_ns(&mut self, ns: u64) {
        let _ = self.0.record(Lat::us(ns));
    }

    /// Records a run of `n` equal latencies of `us` µs (from [`Runs`]).
    pub fn record_run(&mut self, (us, n): (u64, u64)) {
        let _ = self.0.record_n(us, n);
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

/// Latencies run-length coded before they reach the histogram. The events of one socket read that
/// were sent together (closed loop publishes in batches with one send time) have the same latency,
/// and one histogram update per run costs much less than one per event.
#[derive(Default)]
pub struct Runs {
    us: u64,
    n: u64,
}

impl Runs {
    /// Adds one latency; returns the finished run when this one starts a new one.
    #[inline]
    pub fn add_ns(&mut self, ns: u64) -> Option<(u64, u64)> {
        let us = Lat::us(ns);
        if us == self.us {
            self.n += 1;
            return None;
        }
        let done = (self.n > 0).then_some((self.us, self.n));
        (self.us, self.n) = (us, 1);
        done
    }

    /// The run in progress, if any (and starts afresh).
    pub fn take(&mut self) -> Option<(u64, u64)> {
        let done = (self.n > 0).then_some((self.us, self.n));
        self.n = 0;
        done
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_record_every_latency() {
        let mut lat = Lat::default();
        let mut runs = Runs::default();
        for ns in [5_000, 5_400, 5_999, 9_000, 5_000, 2_000_000] {
            if let Some(r) = runs.add_ns(ns) {
                lat.record_run(r);
            }
        }
        if let Some(r) = runs.take() {
            lat.record_run(r);
        }
        assert!(runs.take().is_none());
        assert_eq!(lat.0.len(), 6);
        assert_eq!(lat.0.count_at(5), 4);
        assert_eq!(lat.0.count_at(9), 1);
        assert_eq!(lat.0.max(), lat.0.highest_equivalent(2000));
    }
}
