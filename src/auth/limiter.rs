//! Per-address throttling of failed logins: after `max_failures` failures within `window` from one
//! IP address, its HELLOs to realms with rules are refused for `block`. Shared by all shards behind a
//! mutex: it is touched once per HELLO and per failure, never on the routing path. Unix-socket peers
//! (no address) are not throttled: who may connect there is decided by the socket file's mode.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::AuthLimits;

/// Entries beyond which stale ones are dropped, bounding memory under a spray of addresses.
const PRUNE_AT: usize = 10_000;

struct Entry {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

pub struct Limiter {
    limits: AuthLimits,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl Limiter {
    pub fn new(limits: AuthLimits) -> Limiter {
        Limiter {
            limits,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// True while `addr` is refused.
    pub fn blocked(&self, addr: Option<IpAddr>) -> bool {
        let Some(addr) = addr else { return false };
        if self.limits.max_failures == 0 {
            return false;
        }
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&addr)
            .and_then(|e| e.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Counts one failed attempt from `addr`.
    pub fn record_failure(&self, addr: Option<IpAddr>) {
        let Some(addr) = addr else { return };
        if self.limits.max_failures == 0 {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= PRUNE_AT {
            let limits = &self.limits;
            entries.retain(|_, e| !stale(e, now, limits));
        }
        let e = entries.entry(addr).or_insert(Entry {
            failures: 0,
            window_start: now,
            blocked_until: None,
        });
        if now.duration_since(e.window_start) > self.limits.window {
            e.failures = 0;
            e.window_start = now;
        }
        e.failures += 1;
        if e.failures >= self.limits.max_failures {
            e.blocked_until = Some(now + self.limits.block);
            tracing::warn!(
                address = %addr,
                failures = e.failures,
                "refusing logins from this address for {:?} after repeated failures",
                self.limits.block
            );
            e.failures = 0;
            e.window_start = now;
        }
    }
}

fn stale(e: &Entry, now: Instant, limits: &AuthLimits) -> bool {
    now.duration_since(e.window_start) > limits.window
        && e.blocked_until.is_none_or(|until| now >= until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max: u32, block_ms: u64) -> AuthLimits {
        AuthLimits {
            max_failures: max,
            window: Duration::from_secs(10),
            block: Duration::from_millis(block_ms),
        }
    }

    #[test]
    fn blocks_after_max_failures_then_lets_go() {
        let l = Limiter::new(limits(3, 150));
        let a = Some("127.0.0.1".parse().unwrap());
        let b = Some("127.0.0.2".parse().unwrap());
        l.record_failure(a);
        l.record_failure(a);
        assert!(!l.blocked(a));
        l.record_failure(a);
        assert!(l.blocked(a));
        assert!(!l.blocked(b), "another address is not affected");
        std::thread::sleep(Duration::from_millis(200));
        assert!(!l.blocked(a), "the block expires");
    }

    #[test]
    fn zero_means_off_and_unix_peers_are_exempt() {
        let off = Limiter::new(limits(0, 1000));
        let a = Some("10.0.0.1".parse().unwrap());
        for _ in 0..10 {
            off.record_failure(a);
        }
        assert!(!off.blocked(a));
        let on = Limiter::new(limits(1, 1000));
        on.record_failure(None);
        assert!(!on.blocked(None));
    }
}
