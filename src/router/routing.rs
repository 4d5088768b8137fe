//! Where a call goes beyond the plain pick of its invocation policy: `least_loaded`, a sharded
//! registration's `rkey`, and call rerouting after a callee's `wamp.error.unavailable`.
//!
//! Everything here is reached only by calls that use one of these (an `rkey`, a `least_loaded`
//! registration, a shared registration with several callees), so a plain call pays nothing for it.

use std::sync::Arc;

use ahash::AHashMap;

use crate::protocol::errors;
use crate::router::calls::CancelMode;
use crate::router::dealer::Invoke;
use crate::router::session::Identity;
use crate::router::{Router, ShardMsg};

/// What a call carries for the features of this module. The default (all empty) is a plain call;
/// an empty `Vec` does not allocate.
#[derive(Clone, Debug, Default)]
pub struct CallRoute {
    /// The callee whose in-flight count on the caller's shard this call raised (`least_loaded`);
    /// 0 when it raised none.
    pub counted: u64,
    /// The callee's shard keeps the call so it can move it to another callee of the shared
    /// registration when the callee answers `wamp.error.unavailable`.
    pub reroutable: bool,
    /// Callees that already answered `wamp.error.unavailable` for this call.
    pub tried: Vec<u64>,
    /// When (callee shard's clock, ms) the call reached its current callee's shard: a rerouted
    /// call keeps only what is left of its timeout.
    pub reached_ms: u64,
    /// A callee answered `wamp.error.unavailable`: when no callee is left the caller hears
    /// `no_available_callee`; a call whose callees all left hears `no_such_procedure`.
    pub refused: bool,
    /// The caller, for a callee further on that registered with `disclose_caller`; None when the
    /// call is disclosed to every callee anyway (`Invoke::disclosed` holds it) or cannot move.
    pub identity: Option<Arc<Identity>>,
}

/// Hash of an `rkey`. FNV-1a: fixed and seedless, so every shard (and every router run) maps one
/// key to the same callee.
pub fn rkey_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Jump consistent hash (Lamping and Veach, 2014): the bucket in `0..buckets` for `key`. When a
/// bucket is added at the end only about 1/n of the keys move, all of them to the new bucket.
pub fn jump(mut key: u64, buckets: usize) -> usize {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

/// Invocations this shard sent to each callee of a `least_loaded` registration and that have not
/// ended yet. Entries exist only while non-zero, so the map is bounded by the calls in flight.
#[derive(Default, Debug)]
pub struct Loads {
    inflight: AHashMap<u64, u32>,
}

impl Loads {
    /// Calls in flight from this shard to `callee`.
    pub fn of(&self, callee: u64) -> u32 {
        self.inflight.get(&callee).copied().unwrap_or(0)
    }

    pub fn raise(&mut self, callee: u64) {
        *self.inflight.entry(callee).or_insert(0) += 1;
    }

    pub fn lower(&mut self, callee: u64) {
        if let Some(n) = self.inflight.get_mut(&callee) {
            *n -= 1;
            if *n == 0 {
                self.inflight.remove(&callee);
            }
        }
    }

    /// Number of callees with calls in flight (for tests).
    pub fn len(&self) -> usize {
        self.inflight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }
}

/// How long a shard remembers where it rerouted a call: a CANCEL or a caller's departure sent to
/// every shard may overtake the rerouted call on its way, so the shard that moved it forwards them
/// behind it for this long.
pub const REROUTE_MEMORY_MS: u64 = 3_000;

/// Calls this shard moved to another shard, by (caller, caller's request): the destination shard
/// and when.
#[derive(Default, Debug)]
pub struct Rerouted {
    to: AHashMap<(u64, u64), (usize, u64)>,
}

impl Rerouted {
    pub fn remember(&mut self, caller: u64, request: u64, shard: usize, now_ms: u64) {
        self.to.insert((caller, request), (shard, now_ms));
    }

    /// The shard call `request` of `caller` was moved to, if it was moved from here.
    pub fn of(&self, caller: u64, request: u64) -> Option<usize> {
        self.to.get(&(caller, request)).map(|&(s, _)| s)
    }

    /// Like [`Rerouted::of`], forgetting it.
    pub fn take(&mut self, caller: u64, request: u64) -> Option<usize> {
        self.to.remove(&(caller, request)).map(|(s, _)| s)
    }

    /// Shards calls of `caller` were moved to (each once), forgetting them.
    pub fn take_caller(&mut self, caller: u64) -> Vec<usize> {
        let mut shards = Vec::new();
        self.to.retain(|&(c, _), &mut (s, _)| {
            if c == caller && !shards.contains(&s) {
                shards.push(s);
            }
            c != caller
        });
        shards
    }

    /// Forgets moves older than [`REROUTE_MEMORY_MS`].
    pub fn expire(&mut self, now_ms: u64) {
        self.to
            .retain(|_, &mut (_, at)| now_ms.saturating_sub(at) < REROUTE_MEMORY_MS);
    }

    pub fn is_empty(&self) -> bool {
        self.to.is_empty()
    }
}

/// A shard's state for the features of this module.
#[derive(Default, Debug)]
pub struct RoutingState {
    pub loads: Loads,
    pub rerouted: Rerouted,
}

impl Router {
    /// A call that raised `counted`'s in-flight count on `caller_shard` (`least_loaded`) ended
    /// there; 0 means it raised none.
    pub(crate) fn unload(&mut self, caller_shard: usize, counted: u64) {
        if counted == 0 {
            return;
        }
        if caller_shard == self.shard {
            self.routing.loads.lower(counted);
        } else {
            self.out
                .send(caller_shard, ShardMsg::Unloaded { callee: counted });
        }
    }

    /// The call, boxed, as a pending invocation keeps it for rerouting; its load count stays with
    /// the pending invocation.
    pub(crate) fn keep_for_reroute(&self, mut call: Invoke) -> Box<Invoke> {
        call.route.counted = 0;
        call.route.reached_ms = self.timers.now_ms();
        Box::new(call)
    }

    /// Callee `from` answered `wamp.error.unavailable`: the call moves on (see [`Router::move_call`]).
    pub(crate) fn reroute(&mut self, from: u64, mut call: Box<Invoke>) {
        call.route.refused = true;
        self.move_call(from, call);
    }

    /// The callee a call was on its way to left or unregistered before the call reached it. A call
    /// that may be rerouted moves on to the next callee, as if that callee had never been there;
    /// any other call ends with `no_such_procedure`.
    pub(crate) fn callee_gone(&mut self, mut call: Invoke) {
        if !call.route.reroutable {
            let text = "the callee left before the call reached it";
            call.fail(self, errors::NO_SUCH_PROCEDURE, text);
            return;
        }
        // Its clock on this shard starts now (it never was pending here).
        call.route.reached_ms = self.timers.now_ms();
        let from = call.callee;
        self.move_call(from, Box::new(call));
    }

    /// Moves a call away from callee `from` to the next callee of its registration that it has not
    /// been to (as this shard's replica knows them), with what is left of its timeout and the
    /// disclosure that callee asked for. When none is left: `no_available_callee` if a callee
    /// refused the call (the spec's failure scenario), else `no_such_procedure` (every callee it
    /// went to left: the procedure has none).
    pub(crate) fn move_call(&mut self, from: u64, mut call: Box<Invoke>) {
        call.route.tried.push(from);
        if call.timeout_ms > 0 {
            let spent = self.timers.now_ms().saturating_sub(call.route.reached_ms);
            if spent >= call.timeout_ms {
                call.fail(self, errors::TIMEOUT, "the call timed out");
                return;
            }
            call.timeout_ms -= spent;
        }
        let next = self.local[call.realm]
            .dealer
            .get(call.registration)
            .and_then(|reg| reg.next_callee(from, &call.route.tried))
            .copied();
        let Some(next) = next else {
            let (error, text) = if call.route.refused {
                let text = "every callee of the procedure answered wamp.error.unavailable";
                (errors::NO_AVAILABLE_CALLEE, text)
            } else {
                let text = "every callee of the procedure left before the call reached it";
                (errors::NO_SUCH_PROCEDURE, text)
            };
            call.fail(self, error, text);
            return;
        };
        call.callee = next.session;
        if let Some(who) = &call.route.identity {
            call.disclosed = next.disclose_caller.then(|| (call.caller, who.clone()));
        }
        if next.shard == self.shard {
            self.on_invoke(*call);
            return;
        }
        let now = self.timers.now_ms();
        self.routing
            .rerouted
            .remember(call.caller, call.caller_request, next.shard, now);
        self.out.send(next.shard, ShardMsg::Invoke(call));
    }

    /// A CANCEL found nothing here: if this shard moved that call to another shard, the CANCEL
    /// follows it there (behind it on the same ring, so it cannot overtake it). Forwarded once.
    pub(crate) fn forward_cancel(&mut self, caller: u64, request: u64, mode: CancelMode) {
        if self.routing.rerouted.is_empty() {
            return;
        }
        if let Some(shard) = self.routing.rerouted.take(caller, request) {
            if shard != self.shard {
                let msg = ShardMsg::Cancel {
                    caller,
                    request,
                    mode,
                };
                self.out.send(shard, msg);
            }
        }
    }

    /// A caller left: shards its calls were moved to from here hear it behind those calls.
    pub(crate) fn forward_caller_gone(&mut self, caller: u64) {
        if self.routing.rerouted.is_empty() {
            return;
        }
        for shard in self.routing.rerouted.take_caller(caller) {
            if shard != self.shard {
                self.out.send(shard, ShardMsg::CallerGone { caller });
            }
        }
    }

    /// Forgets old reroutes (each second).
    pub(crate) fn expire_reroutes(&mut self) {
        if !self.routing.rerouted.is_empty() {
            let now = self.timers.now_ms();
            self.routing.rerouted.expire(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_is_stable_and_moves_few_keys_when_a_bucket_is_added() {
        let keys: Vec<u64> = (0..2000).map(|k| rkey_hash(&format!("key-{k}"))).collect();
        let at4: Vec<usize> = keys.iter().map(|&k| jump(k, 4)).collect();
        let at5: Vec<usize> = keys.iter().map(|&k| jump(k, 5)).collect();
        assert!(at4.iter().all(|&b| b < 4));
        let moved: Vec<usize> = (0..keys.len()).filter(|&i| at4[i] != at5[i]).collect();
        assert!(
            moved.iter().all(|&i| at5[i] == 4),
            "keys move only to the new bucket"
        );
        assert!(
            (250..550).contains(&moved.len()),
            "about 1/5 move: {}",
            moved.len()
        );
        for b in 0..4 {
            let n = at4.iter().filter(|&&x| x == b).count();
            assert!((350..650).contains(&n), "bucket {b} holds {n}");
        }
        assert_eq!(jump(rkey_hash("a"), 1), 0);
        assert_eq!(rkey_hash("user-7"), rkey_hash("user-7"));
    }

    #[test]
    fn loads_and_reroutes_forget_what_ended() {
        let mut l = Loads::default();
        l.raise(7);
        l.raise(7);
        l.lower(7);
        assert_eq!(l.of(7), 1);
        l.lower(7);
        l.lower(7);
        assert!(l.is_empty());
        let mut r = Rerouted::default();
        r.remember(1, 10, 1, 100);
        r.remember(1, 11, 1, 200);
        r.remember(2, 10, 0, 200);
        assert_eq!(r.of(1, 10), Some(1));
        r.expire(100 + REROUTE_MEMORY_MS);
        assert_eq!(r.of(1, 10), None);
        assert_eq!(r.take_caller(1), vec![1]);
        assert_eq!(r.of(2, 10), Some(0));
    }
}
