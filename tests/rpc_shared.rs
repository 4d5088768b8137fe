//! Shared registrations against a router with two shards: callees on both shards, callers on
//! both, each invocation policy, refusals, callees leaving, and replicas that agree with the realm's
//! authority afterwards.

mod common;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use common::rpc::{call_opts, register_opts, yield_arg, Rpc, Spots, ALL};
use common::{dict, Client, InProcess};
use wampd::protocol::{Message, Serializer, Val};

const SHARDS: usize = 2;

fn invoke(policy: &str) -> Val<'_> {
    dict(&[("invoke", Val::Str(Cow::Borrowed(policy)))])
}

/// Makes `n` calls from `caller`, one after the other; returns how many each callee answered.
fn spread(caller: &mut Client, callees: &mut [Client], procedure: &str, n: u64) -> Vec<u64> {
    let mut answered = vec![0; callees.len()];
    for k in 0..n {
        let request = call_opts(caller, procedure, Val::empty_dict(), k);
        // Whichever callee got it answers with its index.
        let (i, inv) = callees
            .iter_mut()
            .enumerate()
            .find_map(|(i, c)| match c.try_recv_rpc(Duration::from_millis(30)) {
                Some(Rpc::Invocation { request, arg, .. }) => {
                    assert_eq!(arg, k);
                    Some((i, request))
                }
                Some(other) => panic!("callee {i}: {other:?}"),
                None => None,
            })
            .or_else(|| {
                // Slow machine: wait longer on each in turn.
                callees.iter_mut().enumerate().find_map(|(i, c)| {
                    c.try_recv_rpc(Duration::from_secs(2)).map(|got| match got {
                        Rpc::Invocation { request, .. } => (i, request),
                        other => panic!("callee {i}: {other:?}"),
                    })
                })
            })
            .expect("some callee got the call");
        yield_arg(&mut callees[i], inv, false, i as u64);
        match caller.recv_rpc() {
            Rpc::Result {
                request: r, arg, ..
            } => assert_eq!((r, arg), (request, i as u64)),
            other => panic!("expected RESULT, got {other:?}"),
        }
        answered[i] += 1;
    }
    answered
}

fn register_error(c: &mut Client, procedure: &str, options: Val<'_>) -> String {
    let request = c.req();
    c.send(&Message::Register {
        request,
        options,
        procedure: Cow::Borrowed(procedure),
    });
    match c.recv_rpc() {
        Rpc::Error { error, .. } => error,
        other => panic!("expected ERROR, got {other:?}"),
    }
}

#[test]
fn shared_registrations_across_shards() {
    let r = InProcess::start(SHARDS);
    let mut at = Spots::new(&r.addr, SHARDS);

    // Round-robin: registration order c0 (shard 0), c1 (shard 1), c2 (shard 0); each caller
    // shard rotates over all three.
    let mut callees: Vec<Client> = [0, 1, 0]
        .into_iter()
        .map(|s| at.join(s, Serializer::Json, ALL))
        .collect();
    let ids: Vec<u64> = callees
        .iter_mut()
        .map(|c| register_opts(c, "shared.rr", invoke("roundrobin")))
        .collect();
    assert!(ids.iter().all(|&id| id == ids[0]), "one registration id");
    for shard in [0, 1] {
        let mut caller = at.join(shard, Serializer::MsgPack, ALL);
        assert_eq!(
            spread(&mut caller, &mut callees, "shared.rr", 9),
            vec![3, 3, 3]
        );
    }
    // A callee leaves: the others share its calls.
    drop(callees.remove(1));
    std::thread::sleep(Duration::from_millis(100));
    let mut caller = at.join(1, Serializer::Cbor, ALL);
    assert_eq!(
        spread(&mut caller, &mut callees, "shared.rr", 4),
        vec![2, 2]
    );

    // Refusals: another policy, `single`, and the same session twice.
    let mut other = at.join(1, Serializer::Json, ALL);
    assert_eq!(
        register_error(&mut other, "shared.rr", invoke("first")),
        "wamp.error.procedure_exists_with_different_invocation_policy"
    );
    assert_eq!(
        register_error(&mut other, "shared.rr", Val::empty_dict()),
        "wamp.error.procedure_already_exists"
    );
    assert_eq!(
        register_error(&mut callees[0], "shared.rr", invoke("roundrobin")),
        "wamp.error.procedure_already_exists"
    );

    // first / last follow the authority's registration order, across shards.
    for (policy, winner_after) in [("first", [0usize, 1]), ("last", [2, 1])] {
        let procedure = format!("shared.{policy}");
        let mut cs: Vec<Client> = [1, 0, 1]
            .into_iter()
            .map(|s| at.join(s, Serializer::Json, ALL))
            .collect();
        let reg_ids: Vec<u64> = cs
            .iter_mut()
            .map(|c| register_opts(c, &procedure, invoke(policy)))
            .collect();
        let mut caller = at.join(0, Serializer::Json, ALL);
        let got = spread(&mut caller, &mut cs, &procedure, 3);
        let mut want = vec![0; 3];
        want[winner_after[0]] = 3;
        assert_eq!(got, want, "{policy}");
        // The chosen one unregisters: the next in order takes over.
        let w = winner_after[0];
        let request = cs[w].req();
        cs[w].send(&Message::Unregister {
            request,
            registration: reg_ids[w],
        });
        assert!(matches!(cs[w].recv_rpc(), Rpc::Other(m) if m.contains("Unregistered")));
        std::thread::sleep(Duration::from_millis(100));
        let got = spread(&mut caller, &mut cs, &procedure, 2);
        let mut want = vec![0; 3];
        want[winner_after[1]] = 2;
        assert_eq!(got, want, "{policy} after the first choice left");
    }

    // random: every callee gets some of 60 calls.
    let mut cs: Vec<Client> = [0, 1, 1]
        .into_iter()
        .map(|s| at.join(s, Serializer::MsgPack, ALL))
        .collect();
    for c in cs.iter_mut() {
        register_opts(c, "shared.random", invoke("random"));
    }
    let mut caller = at.join(1, Serializer::MsgPack, ALL);
    let got = spread(&mut caller, &mut cs, "shared.random", 60);
    assert!(got.iter().all(|&n| n > 0), "{got:?}");

    // The authority and every replica agree: one record per callee, the registrations of those
    // that left retired.
    let problems = r.settle(Duration::from_secs(5));
    assert!(problems.is_empty(), "{problems:#?}");
    let report = r.report();
    let mut per_id: BTreeMap<u64, usize> = BTreeMap::new();
    for rec in &report.authorities[0].registrations {
        *per_id.entry(rec.grant.id).or_default() += 1;
    }
    let mut sizes: Vec<usize> = per_id.values().copied().collect();
    sizes.sort();
    assert_eq!(
        sizes,
        vec![2, 3],
        "shared.rr (2 left) and shared.random (3)"
    );
    drop(cs);
    drop(callees);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !r.report().authorities[0].registrations.is_empty()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let problems = r.settle(Duration::from_secs(5));
    assert!(problems.is_empty(), "{problems:#?}");
    let left = r.report().authorities[0].registrations.len();
    assert_eq!(left, 0, "every callee left");
}
