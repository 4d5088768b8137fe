//! Routing beyond the plain invocation policies, with callees and callers on both shards of a
//! two-shard router: `least_loaded`, sharded registration (`rkey`), and call rerouting after a
//! callee's `wamp.error.unavailable` (with a CANCEL, a timeout and a caller's departure racing it).

mod common;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use common::rpc::{call_opts, cancel, invocation_error, register_opts, yield_arg, Rpc, Spots, ALL};
use common::{dict, Client, InProcess};
use wampd::protocol::{Serializer, Val};

const SHARDS: usize = 2;
const QUICK: Duration = Duration::from_millis(30);

fn invoke(policy: &str) -> Val<'_> {
    dict(&[("invoke", Val::Str(Cow::Borrowed(policy)))])
}

fn rkey(key: &str) -> Val<'_> {
    dict(&[("rkey", Val::Str(Cow::Borrowed(key)))])
}

/// Callees on the given shards, all registered to `procedure` with `policy`.
fn callees_on(at: &mut Spots, shards: &[usize], procedure: &str, policy: &str) -> Vec<Client> {
    let mut cs: Vec<Client> = shards
        .iter()
        .map(|&s| at.join(s, Serializer::Json, ALL))
        .collect();
    for c in cs.iter_mut() {
        register_opts(c, procedure, invoke(policy));
    }
    cs
}

/// The callee that got the next INVOCATION: (its index, INVOCATION id, argument).
fn who_got(callees: &mut [Client]) -> (usize, u64, u64) {
    for wait in [QUICK, Duration::from_secs(2)] {
        for (i, c) in callees.iter_mut().enumerate() {
            match c.try_recv_rpc(wait) {
                Some(Rpc::Invocation { request, arg, .. }) => return (i, request, arg),
                Some(other) => panic!("callee {i}: {other:?}"),
                None => {}
            }
        }
    }
    panic!("no callee got the call");
}

fn expect_result(caller: &mut Client, request: u64, arg: u64) {
    match caller.recv_rpc() {
        Rpc::Result {
            request: r, arg: a, ..
        } => assert_eq!((r, a), (request, arg)),
        other => panic!("expected RESULT, got {other:?}"),
    }
}

fn expect_error(caller: &mut Client, request: u64, error: &str) {
    match caller.recv_rpc() {
        Rpc::Error {
            request: r,
            error: e,
        } => assert_eq!((r, e.as_str()), (request, error)),
        other => panic!("expected ERROR {error}, got {other:?}"),
    }
}

fn quiet(clients: &mut [Client]) {
    for c in clients.iter_mut() {
        c.expect_silence(Duration::from_millis(50));
    }
}

/// Calls in flight are spread over idle callees first; a callee that does not answer gets no
/// further call while others are free, whichever shard it is on; each caller shard counts its own
/// calls, so callers on both shards see the same.
#[test]
fn least_loaded_avoids_busy_callees_across_shards() {
    let r = InProcess::start(SHARDS);
    let mut at = Spots::new(&r.addr, SHARDS);
    let mut cs = callees_on(&mut at, &[0, 1, 0], "ll.p", "least_loaded");
    for shard in [1, 0] {
        let mut caller = at.join(shard, Serializer::MsgPack, ALL);
        // Three calls in flight: one each.
        let calls: Vec<u64> = (0..3)
            .map(|k| call_opts(&mut caller, "ll.p", Val::empty_dict(), k))
            .collect();
        let mut held: Vec<(usize, u64, u64)> = (0..3).map(|_| who_got(&mut cs)).collect();
        held.sort();
        assert_eq!(
            held.iter().map(|h| h.0).collect::<Vec<_>>(),
            vec![0, 1, 2],
            "caller on shard {shard}"
        );
        // Callee 1 (the other shard for one caller, the same for the other) and callee 2 answer;
        // callee 0 keeps its call. Twelve more calls, each answered at once, avoid callee 0.
        for &(i, inv, arg) in &held[1..] {
            yield_arg(&mut cs[i], inv, false, arg);
            expect_result(&mut caller, calls[arg as usize], arg);
        }
        let mut counts = [0u32; 3];
        for k in 10..22 {
            let request = call_opts(&mut caller, "ll.p", Val::empty_dict(), k);
            let (i, inv, arg) = who_got(&mut cs);
            assert_eq!(arg, k);
            counts[i] += 1;
            yield_arg(&mut cs[i], inv, false, arg);
            expect_result(&mut caller, request, k);
        }
        assert_eq!(counts[0], 0, "the busy callee got no call: {counts:?}");
        assert!(counts[1] >= 3 && counts[2] >= 3, "{counts:?}");
        // Callee 0 answers: it is the least loaded again, with the others.
        let (_, inv, arg) = held[0];
        yield_arg(&mut cs[0], inv, false, arg);
        expect_result(&mut caller, calls[arg as usize], arg);
        let mut any0 = false;
        for k in 30..36 {
            let request = call_opts(&mut caller, "ll.p", Val::empty_dict(), k);
            let (i, inv, _) = who_got(&mut cs);
            any0 |= i == 0;
            yield_arg(&mut cs[i], inv, false, k);
            expect_result(&mut caller, request, k);
        }
        assert!(any0, "callee 0 is called again once it answered");
        quiet(&mut cs);
    }
    let problems = r.settle(Duration::from_secs(5));
    assert!(problems.is_empty(), "{problems:#?}");
}

/// One `rkey` reaches one callee, from callers on either shard and whatever the policy; several
/// keys use several callees; an `rkey` that is not a string is a protocol violation.
#[test]
fn rkey_routes_to_one_callee_from_every_shard() {
    let r = InProcess::start(SHARDS);
    let mut at = Spots::new(&r.addr, SHARDS);
    let mut cs = callees_on(&mut at, &[0, 1, 0], "sharded.p", "roundrobin");
    let mut callers: Vec<Client> = [0, 1]
        .into_iter()
        .map(|s| at.join(s, Serializer::Cbor, ALL))
        .collect();
    let mut owner = Vec::new();
    for key in 0..8u64 {
        let name = format!("customer-{key}");
        let mut seen = Vec::new();
        for _ in 0..2 {
            for caller in callers.iter_mut() {
                let request = call_opts(caller, "sharded.p", rkey(&name), key);
                let (i, inv, arg) = who_got(&mut cs);
                assert_eq!(arg, key);
                yield_arg(&mut cs[i], inv, false, arg);
                expect_result(caller, request, key);
                seen.push(i);
            }
        }
        assert!(seen.iter().all(|&i| i == seen[0]), "{name}: {seen:?}");
        owner.push(seen[0]);
    }
    owner.sort();
    owner.dedup();
    assert!(owner.len() >= 2, "8 keys over 3 callees use more than one");
    quiet(&mut cs);
    let mut bad = at.join(1, Serializer::Json, ALL);
    call_opts(&mut bad, "sharded.p", dict(&[("rkey", Val::UInt(5))]), 0);
    bad.expect_abort("wamp.error.protocol_violation");
}

/// `unavailable` moves the call on in the policy's order, across shards, to callees that have not
/// refused it; when all have, the caller gets `no_available_callee`. A `single` registration has
/// no other callee: `no_available_callee` at once.
#[test]
fn unavailable_moves_the_call_to_the_next_callee() {
    let r = InProcess::start(SHARDS);
    let mut at = Spots::new(&r.addr, SHARDS);
    for policy in ["roundrobin", "first", "last", "random", "least_loaded"] {
        let procedure = format!("reroute.{policy}");
        let mut cs = callees_on(&mut at, &[0, 1, 0], &procedure, policy);
        let mut caller = at.join(1, Serializer::MsgPack, ALL);
        // Two refuse, the third answers.
        let request = call_opts(&mut caller, &procedure, Val::empty_dict(), 7);
        let mut refused = Vec::new();
        for _ in 0..2 {
            let (i, inv, arg) = who_got(&mut cs);
            assert_eq!(arg, 7, "{policy}: the call's own arguments");
            assert!(
                !refused.contains(&i),
                "{policy}: back to a callee that refused"
            );
            refused.push(i);
            invocation_error(&mut cs[i], inv, "wamp.error.unavailable");
        }
        let (i, inv, _) = who_got(&mut cs);
        assert!(!refused.contains(&i), "{policy}");
        if policy == "first" {
            assert_eq!(
                (refused.as_slice(), i),
                (&[0, 1][..], 2),
                "registration order"
            );
        }
        if policy == "last" {
            assert_eq!(
                (refused.as_slice(), i),
                (&[2, 1][..], 0),
                "registration order"
            );
        }
        yield_arg(&mut cs[i], inv, false, 70);
        expect_result(&mut caller, request, 70);
        // All refuse.
        let request = call_opts(&mut caller, &procedure, Val::empty_dict(), 8);
        for _ in 0..3 {
            let (i, inv, _) = who_got(&mut cs);
            invocation_error(&mut cs[i], inv, "wamp.error.unavailable");
        }
        expect_error(&mut caller, request, "wamp.error.no_available_callee");
        // Any other error is the caller's answer as it is.
        let request = call_opts(&mut caller, &procedure, Val::empty_dict(), 9);
        let (i, inv, _) = who_got(&mut cs);
        invocation_error(&mut cs[i], inv, "app.error.busy");
        expect_error(&mut caller, request, "app.error.busy");
        quiet(&mut cs);
        caller.expect_silence(Duration::from_millis(50));
    }
    let mut single = at.join(0, Serializer::Json, ALL);
    single.register("reroute.single");
    let mut caller = at.join(1, Serializer::Json, ALL);
    let request = call_opts(&mut caller, "reroute.single", Val::empty_dict(), 1);
    let (inv, _) = single.expect_invocation();
    invocation_error(&mut single, inv, "wamp.error.unavailable");
    expect_error(&mut caller, request, "wamp.error.no_available_callee");
    let problems = r.settle(Duration::from_secs(5));
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The first callee (shard 0) refuses and the call moves to the second (shard 1) while the
/// caller's CANCEL — or the caller's departure — is on its way: whichever wins, the caller gets
/// exactly one answer, and a callee that got the moved call is interrupted.
#[test]
fn cancel_and_departure_racing_a_reroute() {
    let r = InProcess::start(SHARDS);
    let mut at = Spots::new(&r.addr, SHARDS);
    let mut cs = callees_on(&mut at, &[0, 1], "race.p", "first");
    for round in 0..12u64 {
        let leave = round % 3 == 2;
        let mut caller = at.join((round % 2) as usize, Serializer::Json, ALL);
        let request = call_opts(&mut caller, "race.p", Val::empty_dict(), round);
        let (inv0, _) = cs[0].expect_invocation();
        invocation_error(&mut cs[0], inv0, "wamp.error.unavailable");
        if leave {
            drop(caller);
        } else {
            cancel(&mut caller, request, Some("killnowait"));
            expect_error(&mut caller, request, "wamp.error.canceled");
            caller.expect_silence(Duration::from_millis(50));
        }
        // The CANCEL reached the first callee's shard before its refusal (it is interrupted and
        // the call never moves), or the second callee got the moved call and is told to stop.
        let first_interrupted = match cs[0].try_recv_rpc(Duration::from_millis(100)) {
            None => false,
            Some(Rpc::Interrupt { request: i, .. }) => i == inv0,
            Some(other) => panic!("round {round}: {other:?}"),
        };
        let moved = match cs[1].try_recv_rpc(Duration::from_millis(200)) {
            None => false,
            Some(Rpc::Invocation { request: inv1, .. }) => match cs[1].recv_rpc() {
                Rpc::Interrupt { request: i, .. } => {
                    assert_eq!(i, inv1);
                    yield_arg(&mut cs[1], inv1, false, 0); // too late: dropped
                    true
                }
                other => panic!("round {round}: expected INTERRUPT, got {other:?}"),
            },
            Some(other) => panic!("round {round}: {other:?}"),
        };
        assert!(
            first_interrupted != moved,
            "round {round}: one callee is told to stop"
        );
        quiet(&mut cs);
    }
    let problems = r.settle(Duration::from_secs(5));
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A rerouted call keeps what is left of its timeout: it does not start over at each callee.
#[test]
fn a_rerouted_call_keeps_its_deadline() {
    let r = InProcess::start(SHARDS);
    let mut at = Spots::new(&r.addr, SHARDS);
    let mut cs = callees_on(&mut at, &[0, 1], "deadline.p", "first");
    let mut caller = at.join(1, Serializer::Json, ALL);
    let t0 = Instant::now();
    let timeout = dict(&[("timeout", Val::UInt(1000))]);
    let request = call_opts(&mut caller, "deadline.p", timeout, 1);
    let (inv0, _) = cs[0].expect_invocation();
    std::thread::sleep(Duration::from_millis(700));
    invocation_error(&mut cs[0], inv0, "wamp.error.unavailable");
    let (inv1, _) = cs[1].expect_invocation();
    expect_error(&mut caller, request, "wamp.error.timeout");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(1600),
        "timed out after {took:?}, not after ~1 s"
    );
    match cs[1].recv_rpc() {
        Rpc::Interrupt {
            request, reason, ..
        } => {
            assert_eq!(request, inv1);
            assert_eq!(reason.as_deref(), Some("wamp.error.timeout"));
        }
        other => panic!("expected INTERRUPT, got {other:?}"),
    }
}
