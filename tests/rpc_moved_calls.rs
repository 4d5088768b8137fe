//! Calls that move between callees (call rerouting) when the next callee leaves on the way, the
//! caller's disclosure on a moved call, and the per-shard index that CANCEL and a caller's
//! departure use, with sessions on every shard of a multi-shard router.

mod common;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::Duration;

use common::rpc::{call_opts, cancel, invocation_error, register_opts, yield_arg, Rpc, Spots, ALL};
use common::{dict, Client, InProcess};
use wampd::protocol::{Message, Serializer, Val};

const SETTLE: Duration = Duration::from_secs(5);

fn invoke(policy: &str) -> Val<'_> {
    dict(&[("invoke", Val::Str(Cow::Borrowed(policy)))])
}

fn invoke_disclosing(policy: &str) -> Val<'_> {
    dict(&[
        ("invoke", Val::Str(Cow::Borrowed(policy))),
        ("disclose_caller", Val::Bool(true)),
    ])
}

/// The next INVOCATION of `c`: (id, argument, caller disclosed in Details).
fn invocation(c: &mut Client) -> (u64, u64, Option<(u64, String, String)>) {
    match c.recv_rpc() {
        Rpc::Invocation {
            request,
            arg,
            caller,
            caller_authid,
            caller_authrole,
            ..
        } => {
            let who = caller.map(|s| (s, caller_authid.unwrap(), caller_authrole.unwrap()));
            (request, arg, who)
        }
        other => panic!("expected INVOCATION, got {other:?}"),
    }
}

/// The caller's one final answer: Ok(result argument) or Err(error URI); nothing may follow.
fn final_answer(caller: &mut Client, request: u64) -> Result<u64, String> {
    let got = match caller.recv_rpc() {
        Rpc::Result {
            request: r,
            arg,
            progress: false,
        } if r == request => Ok(arg),
        Rpc::Error { request: r, error } if r == request => Err(error),
        other => panic!("expected the answer to call {request}, got {other:?}"),
    };
    caller.expect_silence(Duration::from_millis(50));
    got
}

fn unregister(c: &mut Client, registration: u64) {
    let request = c.req();
    c.send(&Message::Unregister {
        request,
        registration,
    });
}

/// A callee reached by a reroute is told who calls exactly as a first choice would be: the callee
/// that registered with `disclose_caller` gets `caller`, `caller_authid` and `caller_authrole`
/// whether it came first or second, and the one that did not ask gets none.
#[test]
fn a_moved_call_is_disclosed_to_the_callee_that_asked() {
    let r = InProcess::start(2);
    let mut at = Spots::new(&r.addr, 2);
    let mut plain = at.join(0, Serializer::Json, ALL);
    register_opts(&mut plain, "disclose.a", invoke("first"));
    let mut asking = at.join(1, Serializer::MsgPack, ALL);
    register_opts(&mut asking, "disclose.a", invoke_disclosing("first"));
    let mut asking2 = at.join(1, Serializer::Cbor, ALL);
    register_opts(&mut asking2, "disclose.b", invoke_disclosing("first"));
    let mut plain2 = at.join(0, Serializer::Json, ALL);
    register_opts(&mut plain2, "disclose.b", invoke("first"));
    for shard in [1, 0] {
        let mut caller = at.join(shard, Serializer::Json, ALL);
        let me = Some((
            caller.session,
            format!("anonymous-{}", caller.session),
            "anonymous".to_string(),
        ));
        // First choice does not ask, the second does.
        let request = call_opts(&mut caller, "disclose.a", Val::empty_dict(), 1);
        let (inv, _, who) = invocation(&mut plain);
        assert_eq!(who, None);
        invocation_error(&mut plain, inv, "wamp.error.unavailable");
        let (inv, arg, who) = invocation(&mut asking);
        assert_eq!((arg, &who), (1, &me), "caller on shard {shard}");
        yield_arg(&mut asking, inv, false, 10);
        assert_eq!(final_answer(&mut caller, request), Ok(10));
        // First choice asks, the second does not.
        let request = call_opts(&mut caller, "disclose.b", Val::empty_dict(), 2);
        let (inv, _, who) = invocation(&mut asking2);
        assert_eq!(who, me);
        invocation_error(&mut asking2, inv, "wamp.error.unavailable");
        let (inv, _, who) = invocation(&mut plain2);
        assert_eq!(who, None, "not disclosed to a callee that did not ask");
        yield_arg(&mut plain2, inv, false, 20);
        assert_eq!(final_answer(&mut caller, request), Ok(20));
        // The caller asks: every callee on the way is told.
        let request = call_opts(
            &mut caller,
            "disclose.a",
            dict(&[("disclose_me", Val::Bool(true))]),
            3,
        );
        let (inv, _, who) = invocation(&mut plain);
        assert_eq!(who, me);
        invocation_error(&mut plain, inv, "wamp.error.unavailable");
        let (inv, _, who) = invocation(&mut asking);
        assert_eq!(who, me);
        yield_arg(&mut asking, inv, false, 30);
        assert_eq!(final_answer(&mut caller, request), Ok(30));
    }
    assert_eq!(r.settle(SETTLE), Vec::<String>::new());
}

/// The INVOCATION id of `c`'s call within `t` (its argument is the round), if one comes.
fn invocation_within(c: &mut Client, round: u64, t: Duration) -> Option<u64> {
    match c.try_recv_rpc(t) {
        None => None,
        Some(Rpc::Invocation {
            request: inv, arg, ..
        }) => {
            assert_eq!(arg, round);
            Some(inv)
        }
        Some(other) => panic!("round {round}: C got {other:?}"),
    }
}

/// How a round of the race ends for the next callee (B) and the caller.
#[derive(Clone, Copy, Debug)]
enum Twist {
    /// B leaves (its connection drops) just after A refuses.
    Leaves,
    /// B unregisters just after A refuses (and refuses a call that reached it first).
    Unregisters,
    /// B leaves and the caller cancels.
    LeavesAndCancel,
    /// B leaves and so does the caller.
    LeavesAndCallerLeaves,
}

/// Callee A (shard 0) refuses while the next callee B (shard 1) leaves or unregisters, over many
/// rounds with the caller on every shard of three: the call is never lost to B's departure (no
/// `no_such_procedure`: it moves on to C on shard 2), the caller gets exactly one answer, and a
/// CANCEL or the caller's departure crossing both moves still reaches whichever callee holds the
/// call.
#[test]
fn the_next_callee_leaving_mid_move_sends_the_call_further() {
    const SHARDS: usize = 3;
    let r = InProcess::start(SHARDS);
    let mut at = Spots::new(&r.addr, SHARDS);
    let twists = [
        Twist::Leaves,
        Twist::Unregisters,
        Twist::LeavesAndCancel,
        Twist::LeavesAndCallerLeaves,
    ];
    let mut reached_c = 0;
    for round in 0..16u64 {
        let twist = twists[round as usize % twists.len()];
        let procedure = format!("mid.move.{round}");
        let mut a = at.join(0, Serializer::Json, ALL);
        register_opts(&mut a, &procedure, invoke("first"));
        let mut b = at.join(1, Serializer::MsgPack, ALL);
        let b_reg = register_opts(&mut b, &procedure, invoke("first"));
        let mut c = at.join(2, Serializer::Cbor, ALL);
        register_opts(&mut c, &procedure, invoke("first"));
        let mut caller = Some(at.join((round as usize) % SHARDS, Serializer::Json, ALL));
        let request = call_opts(
            caller.as_mut().unwrap(),
            &procedure,
            Val::empty_dict(),
            round,
        );
        let (inv_a, _, _) = invocation(&mut a);
        invocation_error(&mut a, inv_a, "wamp.error.unavailable");
        match twist {
            Twist::Unregisters => {
                unregister(&mut b, b_reg);
                // B may have got the call before its UNREGISTER: it refuses it too.
                for _ in 0..2 {
                    match b.recv_rpc() {
                        Rpc::Invocation { request: inv, .. } => {
                            invocation_error(&mut b, inv, "wamp.error.unavailable")
                        }
                        Rpc::Other(m) if m.starts_with("Unregistered") => break,
                        other => panic!("round {round}: {other:?}"),
                    }
                }
            }
            _ => drop(b),
        }
        match twist {
            Twist::LeavesAndCancel => cancel(caller.as_mut().unwrap(), request, Some("killnowait")),
            Twist::LeavesAndCallerLeaves => drop(caller.take()),
            _ => {}
        }
        // C either gets the call (and is interrupted when the caller canceled or left) or not.
        let mut early = None;
        let c_got = match twist {
            Twist::Unregisters => invocation_within(&mut c, round, common::TIMEOUT),
            Twist::Leaves => {
                // C gets the call, or the caller hears that B left holding it.
                let mut got = None;
                for _ in 0..100 {
                    got = invocation_within(&mut c, round, Duration::from_millis(50));
                    if got.is_some() {
                        break;
                    }
                    early = caller
                        .as_mut()
                        .unwrap()
                        .try_recv_rpc(Duration::from_millis(50));
                    if early.is_some() {
                        break;
                    }
                }
                got
            }
            _ => invocation_within(&mut c, round, Duration::from_millis(500)),
        };
        let ended = !matches!(twist, Twist::Leaves | Twist::Unregisters);
        if let Some(inv) = c_got {
            reached_c += 1;
            if ended {
                match c.recv_rpc() {
                    Rpc::Interrupt { request: i, .. } => assert_eq!(i, inv),
                    other => panic!("round {round}: expected INTERRUPT, got {other:?}"),
                }
            }
            yield_arg(&mut c, inv, false, 100 + round); // too late when ended: dropped
        }
        if let Some(Rpc::Error { request: r, error }) = early {
            assert_eq!((r, error.as_str()), (request, "wamp.error.canceled"));
            assert!(c_got.is_none(), "round {round}: one answer");
            caller
                .as_mut()
                .unwrap()
                .expect_silence(Duration::from_millis(50));
        } else if let Some(caller) = caller.as_mut() {
            assert!(early.is_none(), "round {round}: {early:?}");
            let answer = final_answer(caller, request);
            match twist {
                Twist::Unregisters => assert_eq!(answer, Ok(100 + round), "round {round}"),
                // B got the call before it left: that is a callee leaving with a call in flight.
                Twist::Leaves if c_got.is_none() => {
                    assert_eq!(answer, Err("wamp.error.canceled".into()), "round {round}")
                }
                Twist::Leaves => assert_eq!(answer, Ok(100 + round), "round {round}"),
                _ => assert_eq!(answer, Err("wamp.error.canceled".into()), "round {round}"),
            }
        }
        // A was interrupted only if the CANCEL reached it before its refusal.
        match a.try_recv_rpc(Duration::from_millis(20)) {
            None => {}
            Some(Rpc::Interrupt { request: i, .. }) if i == inv_a && ended => {}
            Some(other) => panic!("round {round}: A got {other:?}"),
        }
        c.expect_silence(Duration::from_millis(30));
    }
    assert!(
        reached_c >= 4,
        "the call reached C in {reached_c} of 16 rounds"
    );
    assert_eq!(r.settle(SETTLE), Vec::<String>::new());
}

/// Every pending invocation of every session on every shard (from the routing state report).
fn pending_everywhere(r: &InProcess) -> usize {
    r.report()
        .shards
        .iter()
        .flat_map(|s| s.sessions.iter())
        .map(|s| s.pending_invocations)
        .sum()
}

/// A caller with many calls in flight on callees of both shards leaves: every callee that
/// announced call canceling is interrupted for exactly the calls it held, the one that did not is
/// told nothing, and every slot is freed (the index and the pending invocations agree).
#[test]
fn a_caller_leaving_with_many_calls_frees_every_slot() {
    const CALLS: u64 = 240;
    let r = InProcess::start(2);
    let mut at = Spots::new(&r.addr, 2);
    let mut callees: Vec<Client> = (0..4)
        .map(|i| at.join(i % 2, Serializer::MsgPack, ALL))
        .collect();
    callees.push(at.join(1, Serializer::Json, &[]));
    for c in callees.iter_mut() {
        register_opts(c, "many.p", invoke("roundrobin"));
    }
    let mut bystander = at.join(1, Serializer::Json, ALL);
    let kept = call_opts(&mut bystander, "many.p", Val::empty_dict(), 9999);
    let mut caller = at.join(0, Serializer::Cbor, ALL);
    for k in 0..CALLS {
        call_opts(&mut caller, "many.p", Val::empty_dict(), k);
    }
    let mut held: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); callees.len()];
    let mut bystanders = Vec::new();
    for (i, c) in callees.iter_mut().enumerate() {
        while let Some(Rpc::Invocation { request, arg, .. }) =
            c.try_recv_rpc(Duration::from_millis(300))
        {
            if arg == 9999 {
                bystanders.push((i, request));
            } else {
                held[i].insert(request);
            }
        }
    }
    assert_eq!(held.iter().map(|h| h.len() as u64).sum::<u64>(), CALLS);
    assert_eq!(pending_everywhere(&r), CALLS as usize + 1);
    drop(caller);
    for (i, c) in callees.iter_mut().enumerate().take(4) {
        let mut interrupted = BTreeSet::new();
        while interrupted.len() < held[i].len() {
            match c.recv_rpc() {
                Rpc::Interrupt {
                    request, reason, ..
                } => {
                    assert_eq!(reason.as_deref(), Some("wamp.error.canceled"));
                    interrupted.insert(request);
                }
                other => panic!("callee {i}: {other:?}"),
            }
        }
        assert_eq!(interrupted, held[i], "callee {i}");
    }
    callees[4].expect_silence(Duration::from_millis(100));
    assert!(
        !held[4].is_empty(),
        "the callee without call canceling held calls too"
    );
    assert_eq!(r.settle(SETTLE), Vec::<String>::new());
    assert_eq!(
        pending_everywhere(&r),
        1,
        "only the bystander's call is left"
    );
    let (i, inv) = bystanders[0];
    yield_arg(&mut callees[i], inv, false, 1);
    assert_eq!(final_answer(&mut bystander, kept), Ok(1));
    assert_eq!(pending_everywhere(&r), 0);
}

/// With hundreds of sessions on the shards and several callers with calls in flight, a CANCEL
/// ends exactly the call it names (the callee holding it is interrupted, nobody else), and the
/// other calls are answered as usual.
#[test]
fn cancel_finds_its_call_among_many_sessions() {
    let r = InProcess::start(2);
    let mut at = Spots::new(&r.addr, 2);
    let _idle: Vec<Client> = (0..200)
        .map(|i| at.join(i % 2, Serializer::Json, ALL))
        .collect();
    let mut callees: Vec<Client> = (0..2)
        .map(|i| at.join(i, Serializer::MsgPack, ALL))
        .collect();
    for c in callees.iter_mut() {
        register_opts(c, "crowd.p", invoke("roundrobin"));
    }
    let mut callers: Vec<Client> = (0..3)
        .map(|i| at.join(i % 2, Serializer::Json, ALL))
        .collect();
    let mut requests = Vec::new();
    for (ci, caller) in callers.iter_mut().enumerate() {
        for k in 0..10u64 {
            let arg = ci as u64 * 100 + k;
            requests.push((
                ci,
                call_opts(caller, "crowd.p", Val::empty_dict(), arg),
                arg,
            ));
        }
    }
    // (callee, invocation) of each argument.
    let mut at_callee = std::collections::BTreeMap::new();
    for (i, c) in callees.iter_mut().enumerate() {
        while let Some(Rpc::Invocation { request, arg, .. }) =
            c.try_recv_rpc(Duration::from_millis(300))
        {
            at_callee.insert(arg, (i, request));
        }
    }
    assert_eq!(at_callee.len(), requests.len());
    let (ci, request, arg) = requests[14]; // caller 1's fifth call
    cancel(&mut callers[ci], request, Some("killnowait"));
    assert_eq!(
        final_answer(&mut callers[ci], request),
        Err("wamp.error.canceled".into())
    );
    let (holder, inv) = at_callee[&arg];
    match callees[holder].recv_rpc() {
        Rpc::Interrupt { request: i, .. } => assert_eq!(i, inv),
        other => panic!("expected INTERRUPT, got {other:?}"),
    }
    callees[1 - holder].expect_silence(Duration::from_millis(50));
    for &(c, req, a) in &requests {
        if a == arg {
            continue;
        }
        let (i, inv) = at_callee[&a];
        yield_arg(&mut callees[i], inv, false, a + 1);
        assert_eq!(final_answer(&mut callers[c], req), Ok(a + 1));
    }
    assert_eq!(r.settle(SETTLE), Vec::<String>::new());
    assert_eq!(pending_everywhere(&r), 0);
}
