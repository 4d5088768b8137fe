//! Advanced RPC against a real wampd with two shards, with raw messages: caller identification,
//! progressive call results, call timeouts, call canceling, the per-caller cap, and the races
//! between them — each with the caller and the callee on different shards, and on the same one.

mod common;

use std::time::{Duration, Instant};

use common::rpc::{
    call_opts, call_with_id, cancel, invocation_error, register_opts, yield_arg, Rpc, Spots, ALL,
};
use common::{dict, Router};
use wampd::protocol::{Serializer, Val};

const SHARDS: usize = 2;
const QUIET: Duration = Duration::from_millis(300);
/// (caller shard, callee shard): across shards, then on one shard.
const PLACES: [(usize, usize); 2] = [(0, 1), (1, 1)];
const CALLEE_NO_CANCEL: &[(&str, &str)] = &[("callee", "progressive_call_results")];

fn b(v: bool) -> Val<'static> {
    Val::Bool(v)
}

/// The one final answer (RESULT without progress, or ERROR) for `request`, then nothing more.
fn expect_final(c: &mut common::Client, request: u64) -> Rpc {
    let got = c.recv_rpc();
    match &got {
        Rpc::Result {
            request: r,
            progress: false,
            ..
        }
        | Rpc::Error { request: r, .. } => assert_eq!(*r, request, "{got:?}"),
        other => panic!("expected the final answer to {request}, got {other:?}"),
    }
    got
}

#[test]
fn caller_identification_on_request_of_caller_or_callee() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Spots::new(&r.addr, SHARDS);
    for (i, (cs, es)) in PLACES.into_iter().enumerate() {
        let mut callee = at.join(es, Serializer::MsgPack, ALL);
        let mut caller = at.join(cs, Serializer::Json, ALL);
        let plain = format!("rpc.ident.plain.{i}");
        let told = format!("rpc.ident.told.{i}");
        register_opts(&mut callee, &plain, Val::empty_dict());
        register_opts(&mut callee, &told, dict(&[("disclose_caller", b(true))]));
        let who = |got: Rpc| match got {
            Rpc::Invocation {
                request,
                caller,
                caller_authid,
                caller_authrole,
                ..
            } => (request, caller, caller_authid, caller_authrole),
            other => panic!("expected INVOCATION, got {other:?}"),
        };
        let me = (
            Some(caller.session),
            Some(format!("anonymous-{}", caller.session)),
            Some("anonymous".to_string()),
        );
        for (procedure, options, disclosed) in [
            (&plain, Val::empty_dict(), false),
            (&plain, dict(&[("disclose_me", b(false))]), false),
            (&plain, dict(&[("disclose_me", b(true))]), true),
            (&told, Val::empty_dict(), true),
        ] {
            let request = call_opts(&mut caller, procedure, options, 1);
            let (inv, sid, authid, role) = who(callee.recv_rpc());
            if disclosed {
                assert_eq!((sid, authid, role), me.clone(), "{procedure}");
            } else {
                assert_eq!((sid, authid, role), (None, None, None), "{procedure}");
            }
            yield_arg(&mut callee, inv, false, 2);
            assert!(matches!(
                expect_final(&mut caller, request),
                Rpc::Result { arg: 2, .. }
            ));
        }
    }
}

#[test]
fn progressive_results_arrive_in_order_and_only_when_asked_for() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Spots::new(&r.addr, SHARDS);
    for (i, (cs, es)) in PLACES.into_iter().enumerate() {
        let mut callee = at.join(es, Serializer::Cbor, ALL);
        let mut caller = at.join(cs, Serializer::Json, ALL);
        let procedure = format!("rpc.progress.{i}");
        register_opts(&mut callee, &procedure, Val::empty_dict());

        let request = call_opts(
            &mut caller,
            &procedure,
            dict(&[("receive_progress", b(true))]),
            0,
        );
        let Rpc::Invocation {
            request: inv,
            receive_progress,
            ..
        } = callee.recv_rpc()
        else {
            panic!("expected INVOCATION")
        };
        assert!(receive_progress, "the callee is told to stream");
        for n in 1..=50 {
            yield_arg(&mut callee, inv, true, n);
        }
        yield_arg(&mut callee, inv, false, 1000);
        for n in 1..=50 {
            assert_eq!(
                caller.recv_rpc(),
                Rpc::Result {
                    request,
                    arg: n,
                    progress: true
                }
            );
        }
        assert!(matches!(
            expect_final(&mut caller, request),
            Rpc::Result { arg: 1000, .. }
        ));
        // The call has ended: a late progressive YIELD goes nowhere.
        yield_arg(&mut callee, inv, true, 1);
        assert_eq!(caller.try_recv_rpc(QUIET), None);

        // A caller that did not ask gets the final result only.
        let request = call_opts(&mut caller, &procedure, Val::empty_dict(), 0);
        let Rpc::Invocation {
            request: inv,
            receive_progress,
            ..
        } = callee.recv_rpc()
        else {
            panic!("expected INVOCATION")
        };
        assert!(!receive_progress);
        yield_arg(&mut callee, inv, true, 5);
        yield_arg(&mut callee, inv, false, 6);
        assert!(matches!(
            expect_final(&mut caller, request),
            Rpc::Result { arg: 6, .. }
        ));
    }
}

#[test]
fn a_callee_leaving_mid_stream_cancels_the_call_after_what_it_sent() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Spots::new(&r.addr, SHARDS);
    for (i, (cs, es)) in PLACES.into_iter().enumerate() {
        let mut callee = at.join(es, Serializer::MsgPack, ALL);
        let mut caller = at.join(cs, Serializer::MsgPack, ALL);
        let procedure = format!("rpc.leave.{i}");
        register_opts(&mut callee, &procedure, Val::empty_dict());
        let request = call_opts(
            &mut caller,
            &procedure,
            dict(&[("receive_progress", b(true))]),
            0,
        );
        let (inv, _) = callee.expect_invocation();
        for n in 1..=3 {
            yield_arg(&mut callee, inv, true, n);
        }
        drop(callee);
        for n in 1..=3 {
            assert!(
                matches!(caller.recv_rpc(), Rpc::Result { arg, progress: true, .. } if arg == n)
            );
        }
        assert_eq!(
            expect_final(&mut caller, request),
            Rpc::Error {
                request,
                error: "wamp.error.canceled".into()
            }
        );
        assert_eq!(caller.try_recv_rpc(QUIET), None);
    }
}

#[test]
fn timeouts_answer_the_caller_and_interrupt_a_callee_that_cancels() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Spots::new(&r.addr, SHARDS);
    for (i, (cs, es)) in PLACES.into_iter().enumerate() {
        for features in [ALL, CALLEE_NO_CANCEL] {
            let mut callee = at.join(es, Serializer::Json, features);
            let mut caller = at.join(cs, Serializer::Cbor, ALL);
            let procedure = format!("rpc.timeout.{i}.{}", features.len());
            register_opts(&mut callee, &procedure, Val::empty_dict());
            let started = Instant::now();
            let request = call_opts(
                &mut caller,
                &procedure,
                dict(&[("timeout", Val::UInt(150))]),
                0,
            );
            let (inv, _) = callee.expect_invocation();
            assert_eq!(
                expect_final(&mut caller, request),
                Rpc::Error {
                    request,
                    error: "wamp.error.timeout".into()
                }
            );
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(140) && took < Duration::from_secs(2),
                "timed out after {took:?}"
            );
            if features == ALL {
                assert_eq!(
                    callee.recv_rpc(),
                    Rpc::Interrupt {
                        request: inv,
                        mode: Some("killnowait".into()),
                        reason: Some("wamp.error.timeout".into())
                    }
                );
            } else {
                assert_eq!(
                    callee.try_recv_rpc(QUIET),
                    None,
                    "no INTERRUPT without call_canceling"
                );
            }
            // The callee's late answer is dropped, and it is no protocol violation.
            yield_arg(&mut callee, inv, false, 1);
            assert_eq!(caller.try_recv_rpc(QUIET), None);
            // A call with a timeout answered in time is a plain call.
            let request = call_opts(
                &mut caller,
                &procedure,
                dict(&[("timeout", Val::UInt(5000))]),
                3,
            );
            let (inv, arg) = callee.expect_invocation();
            yield_arg(&mut callee, inv, false, arg + 1);
            assert!(matches!(
                expect_final(&mut caller, request),
                Rpc::Result { arg: 4, .. }
            ));
        }
    }
}

/// A YIELD sent around the deadline: whichever the router sees first, the caller gets exactly one
/// answer.
#[test]
fn a_timeout_crossing_a_yield_gives_exactly_one_answer() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Spots::new(&r.addr, SHARDS);
    let mut callee = at.join(1, Serializer::MsgPack, ALL);
    let mut caller = at.join(0, Serializer::MsgPack, ALL);
    register_opts(&mut callee, "rpc.cross.timeout", Val::empty_dict());
    let (mut results, mut timeouts) = (0, 0);
    for n in 0..24u64 {
        let request = call_opts(
            &mut caller,
            "rpc.cross.timeout",
            dict(&[("timeout", Val::UInt(30))]),
            n,
        );
        let (inv, _) = callee.expect_invocation();
        std::thread::sleep(Duration::from_millis(24 + n % 12));
        yield_arg(&mut callee, inv, false, n);
        match expect_final(&mut caller, request) {
            Rpc::Result { arg, .. } => {
                assert_eq!(arg, n);
                results += 1
            }
            Rpc::Error { error, .. } => {
                assert_eq!(error, "wamp.error.timeout");
                timeouts += 1
            }
            _ => unreachable!(),
        }
        // Drain the INTERRUPT a timed-out invocation gets; nothing else may come.
        while let Some(got) = callee.try_recv_rpc(Duration::from_millis(5)) {
            assert!(
                matches!(got, Rpc::Interrupt { request, .. } if request == inv),
                "{got:?}"
            );
        }
    }
    assert_eq!(caller.try_recv_rpc(QUIET), None, "a second answer");
    assert_eq!(results + timeouts, 24);
}

#[test]
fn cancel_modes() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Spots::new(&r.addr, SHARDS);
    for (i, (cs, es)) in PLACES.into_iter().enumerate() {
        let mut callee = at.join(es, Serializer::Json, ALL);
        let mut plain_callee = at.join(es, Serializer::Json, CALLEE_NO_CANCEL);
        let mut caller = at.join(cs, Serializer::MsgPack, ALL);
        let procedure = format!("rpc.cancel.{i}");
        let plain = format!("rpc.cancel.plain.{i}");
        register_opts(&mut callee, &procedure, Val::empty_dict());
        register_opts(&mut plain_callee, &plain, Val::empty_dict());
        let canceled = |request| Rpc::Error {
            request,
            error: "wamp.error.canceled".into(),
        };

        // No mode means killnowait: the caller is answered at once, the callee interrupted, and
        // its answer dropped.
        for mode in [None, Some("killnowait")] {
            let request = call_opts(&mut caller, &procedure, Val::empty_dict(), 1);
            let (inv, _) = callee.expect_invocation();
            cancel(&mut caller, request, mode);
            assert_eq!(expect_final(&mut caller, request), canceled(request));
            assert_eq!(
                callee.recv_rpc(),
                Rpc::Interrupt {
                    request: inv,
                    mode: Some("killnowait".into()),
                    reason: None
                }
            );
            yield_arg(&mut callee, inv, false, 1);
            assert_eq!(caller.try_recv_rpc(QUIET), None);
        }

        // skip: answered at once, the callee is not told.
        let request = call_opts(&mut caller, &procedure, Val::empty_dict(), 1);
        let (inv, _) = callee.expect_invocation();
        cancel(&mut caller, request, Some("skip"));
        assert_eq!(expect_final(&mut caller, request), canceled(request));
        assert_eq!(callee.try_recv_rpc(QUIET), None);
        yield_arg(&mut callee, inv, false, 1);
        assert_eq!(caller.try_recv_rpc(QUIET), None);

        // kill: the callee is interrupted and its answer, whatever it is, is the caller's.
        for answer_with_error in [true, false] {
            let request = call_opts(&mut caller, &procedure, Val::empty_dict(), 1);
            let (inv, _) = callee.expect_invocation();
            cancel(&mut caller, request, Some("kill"));
            assert_eq!(
                callee.recv_rpc(),
                Rpc::Interrupt {
                    request: inv,
                    mode: Some("kill".into()),
                    reason: None
                }
            );
            assert_eq!(
                caller.try_recv_rpc(QUIET),
                None,
                "kill waits for the callee"
            );
            if answer_with_error {
                invocation_error(&mut callee, inv, "wamp.error.canceled");
                assert_eq!(expect_final(&mut caller, request), canceled(request));
            } else {
                yield_arg(&mut callee, inv, false, 9);
                assert!(matches!(
                    expect_final(&mut caller, request),
                    Rpc::Result { arg: 9, .. }
                ));
            }
        }

        // A callee without call_canceling: every mode is skip.
        let request = call_opts(&mut caller, &plain, Val::empty_dict(), 1);
        let (inv, _) = plain_callee.expect_invocation();
        cancel(&mut caller, request, Some("kill"));
        assert_eq!(expect_final(&mut caller, request), canceled(request));
        assert_eq!(plain_callee.try_recv_rpc(QUIET), None);
        yield_arg(&mut plain_callee, inv, false, 1);
        assert_eq!(caller.try_recv_rpc(QUIET), None);

        // Canceling an answered call changes nothing.
        let request = call_opts(&mut caller, &procedure, Val::empty_dict(), 1);
        let (inv, _) = callee.expect_invocation();
        yield_arg(&mut callee, inv, false, 2);
        assert!(matches!(
            expect_final(&mut caller, request),
            Rpc::Result { arg: 2, .. }
        ));
        cancel(&mut caller, request, None);
        assert_eq!(caller.try_recv_rpc(QUIET), None);
        assert_eq!(callee.try_recv_rpc(Duration::from_millis(50)), None);
    }
}

/// CANCEL and YIELD sent at the same moment from two connections: exactly one answer each time.
#[test]
fn a_cancel_crossing_a_yield_gives_exactly_one_answer() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Spots::new(&r.addr, SHARDS);
    let mut callee = at.join(1, Serializer::Cbor, ALL);
    let mut caller = at.join(0, Serializer::Json, ALL);
    register_opts(&mut callee, "rpc.cross.cancel", Val::empty_dict());
    let (mut results, mut canceled) = (0, 0);
    for n in 0..30u64 {
        let mode = ["kill", "killnowait", "skip"][n as usize % 3];
        let request = call_opts(&mut caller, "rpc.cross.cancel", Val::empty_dict(), n);
        let (inv, _) = callee.expect_invocation();
        std::thread::scope(|s| {
            s.spawn(|| yield_arg(&mut callee, inv, false, n));
            s.spawn(|| cancel(&mut caller, request, Some(mode)));
        });
        match expect_final(&mut caller, request) {
            Rpc::Result { arg, .. } => {
                assert_eq!(arg, n);
                results += 1
            }
            Rpc::Error { error, .. } => {
                assert_eq!(error, "wamp.error.canceled");
                canceled += 1
            }
            _ => unreachable!(),
        }
        while let Some(got) = callee.try_recv_rpc(Duration::from_millis(5)) {
            assert!(
                matches!(got, Rpc::Interrupt { request, .. } if request == inv),
                "{got:?}"
            );
        }
    }
    assert_eq!(caller.try_recv_rpc(QUIET), None, "a second answer");
    assert_eq!(results + canceled, 30);
}

/// A caller that leaves with calls in flight: the callee is interrupted and its slot freed (with a
/// one-call limit per callee, the next caller is served).
#[test]
fn a_caller_leaving_frees_its_calls_and_interrupts_the_callee() {
    let r = Router::start(SHARDS, &["--max-pending-invocations", "1"]);
    let mut at = Spots::new(&r.addr, SHARDS);
    for (i, (cs, es)) in PLACES.into_iter().enumerate() {
        let mut callee = at.join(es, Serializer::Json, ALL);
        let procedure = format!("rpc.gone.{i}");
        register_opts(&mut callee, &procedure, Val::empty_dict());
        let mut caller = at.join(cs, Serializer::Json, ALL);
        call_opts(&mut caller, &procedure, Val::empty_dict(), 1);
        let (inv, _) = callee.expect_invocation();
        drop(caller);
        assert_eq!(
            callee.recv_rpc(),
            Rpc::Interrupt {
                request: inv,
                mode: Some("killnowait".into()),
                reason: Some("wamp.error.canceled".into())
            }
        );
        let mut next = at.join(cs, Serializer::Json, ALL);
        let request = call_opts(&mut next, &procedure, Val::empty_dict(), 7);
        let (inv, arg) = callee.expect_invocation();
        assert_eq!(arg, 7);
        yield_arg(&mut callee, inv, false, 8);
        assert!(matches!(
            expect_final(&mut next, request),
            Rpc::Result { arg: 8, .. }
        ));
    }
}

#[test]
fn calls_in_flight_per_caller_are_capped() {
    let r = Router::start(SHARDS, &["--max-calls-per-caller", "2"]);
    let mut at = Spots::new(&r.addr, SHARDS);
    let mut callee = at.join(1, Serializer::Json, ALL);
    let mut caller = at.join(0, Serializer::Json, ALL);
    register_opts(&mut callee, "rpc.cap", Val::empty_dict());
    let first = call_opts(&mut caller, "rpc.cap", Val::empty_dict(), 1);
    let second = call_opts(&mut caller, "rpc.cap", Val::empty_dict(), 2);
    let (inv1, _) = callee.expect_invocation();
    let (inv2, _) = callee.expect_invocation();
    let third = call_opts(&mut caller, "rpc.cap", Val::empty_dict(), 3);
    assert_eq!(
        expect_final(&mut caller, third),
        Rpc::Error {
            request: third,
            error: "wamp.error.unavailable".into()
        }
    );
    yield_arg(&mut callee, inv1, false, 1);
    assert!(matches!(
        expect_final(&mut caller, first),
        Rpc::Result { .. }
    ));
    // One slot is free again — also after a cancel.
    cancel(&mut caller, second, Some("skip"));
    expect_final(&mut caller, second);
    let _ = inv2;
    let fourth = call_opts(&mut caller, "rpc.cap", Val::empty_dict(), 4);
    let fifth = call_opts(&mut caller, "rpc.cap", Val::empty_dict(), 5);
    for request in [fourth, fifth] {
        let (inv, arg) = callee.expect_invocation();
        yield_arg(&mut callee, inv, false, arg);
        assert!(matches!(
            expect_final(&mut caller, request),
            Rpc::Result { .. }
        ));
    }
}

/// Expects an INVOCATION; returns (request id, argument, progress flag).
fn chunk(c: &mut common::Client) -> (u64, u64, bool) {
    match c.recv_rpc() {
        Rpc::Invocation {
            request,
            arg,
            progress,
            ..
        } => (request, arg, progress),
        other => panic!("expected INVOCATION, got {other:?}"),
    }
}

#[test]
fn progressive_invocations_stream_to_one_callee_with_one_request_id() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Spots::new(&r.addr, SHARDS);
    for (i, (cs, es)) in PLACES.into_iter().enumerate() {
        let mut callee = at.join(es, Serializer::MsgPack, ALL);
        let mut caller = at.join(cs, Serializer::Json, ALL);
        let (upload, other) = (format!("rpc.upload.{i}"), format!("rpc.other.{i}"));
        register_opts(&mut callee, &upload, Val::empty_dict());
        register_opts(&mut callee, &other, Val::empty_dict());
        let progress = || dict(&[("progress", b(true))]);

        let request = call_opts(&mut caller, &upload, progress(), 1);
        let (inv, arg, more) = chunk(&mut callee);
        assert_eq!((arg, more), (1, true));
        // A new call in the middle takes the next request id; the chunks reuse the first one.
        let plain = call_opts(&mut caller, &other, Val::empty_dict(), 100);
        let (plain_inv, _, more) = chunk(&mut callee);
        assert!(!more);
        for n in 2..=5 {
            call_with_id(&mut caller, request, &upload, progress(), n);
        }
        call_with_id(&mut caller, request, &upload, Val::empty_dict(), 6);
        for n in 2..=6 {
            assert_eq!(chunk(&mut callee), (inv, n, n < 6), "chunk {n}");
        }
        yield_arg(&mut callee, plain_inv, false, 101);
        yield_arg(&mut callee, inv, false, 21);
        assert!(matches!(
            expect_final(&mut caller, plain),
            Rpc::Result { arg: 101, .. }
        ));
        assert!(matches!(
            expect_final(&mut caller, request),
            Rpc::Result { arg: 21, .. }
        ));

        // The callee answers before the caller's last chunk: later chunks are dropped, and the
        // caller's next new call is in sequence.
        let request = call_opts(&mut caller, &upload, progress(), 1);
        let (inv, ..) = chunk(&mut callee);
        yield_arg(&mut callee, inv, false, 7);
        assert!(matches!(
            expect_final(&mut caller, request),
            Rpc::Result { arg: 7, .. }
        ));
        call_with_id(&mut caller, request, &upload, progress(), 2);
        call_with_id(&mut caller, request, &upload, Val::empty_dict(), 3);
        assert_eq!(callee.try_recv_rpc(QUIET), None, "a chunk of an ended call");
        let next = call_opts(&mut caller, &other, Val::empty_dict(), 5);
        let (inv, arg, _) = chunk(&mut callee);
        assert_eq!(arg, 5);
        yield_arg(&mut callee, inv, false, 6);
        assert!(matches!(
            expect_final(&mut caller, next),
            Rpc::Result { arg: 6, .. }
        ));
    }
}

#[test]
fn progressive_invocations_need_the_features_and_end_when_the_caller_leaves() {
    let r = Router::start(SHARDS, &[]);
    let mut at = Spots::new(&r.addr, SHARDS);
    let mut callee = at.join(1, Serializer::Json, ALL);
    let mut plain_callee = at.join(1, Serializer::Json, CALLEE_NO_CANCEL);
    register_opts(&mut callee, "rpc.upload", Val::empty_dict());
    register_opts(&mut plain_callee, "rpc.upload.plain", Val::empty_dict());
    let progress = || dict(&[("progress", b(true))]);

    // A callee without the feature: an application error.
    let mut caller = at.join(0, Serializer::Json, ALL);
    let request = call_opts(&mut caller, "rpc.upload.plain", progress(), 1);
    assert_eq!(
        expect_final(&mut caller, request),
        Rpc::Error {
            request,
            error: "wamp.error.feature_not_supported".into()
        }
    );
    assert_eq!(plain_callee.try_recv_rpc(QUIET), None);

    // The caller leaves mid-stream: the callee is interrupted.
    call_opts(&mut caller, "rpc.upload", progress(), 1);
    let (inv, ..) = chunk(&mut callee);
    drop(caller);
    assert_eq!(
        callee.recv_rpc(),
        Rpc::Interrupt {
            request: inv,
            mode: Some("killnowait".into()),
            reason: Some("wamp.error.canceled".into())
        }
    );

    // A caller that did not announce the feature: a protocol violation.
    let mut unaware = at.join(0, Serializer::Json, &[]);
    call_opts(&mut unaware, "rpc.upload", progress(), 1);
    unaware.expect_abort("wamp.error.protocol_violation");
    assert_eq!(callee.try_recv_rpc(QUIET), None);
}

/// Streams outlive their calls when the callee answers early; they count against the cap until
/// the caller sends their last chunk.
#[test]
fn open_streams_per_caller_are_capped() {
    let r = Router::start(SHARDS, &["--max-calls-per-caller", "2"]);
    let mut at = Spots::new(&r.addr, SHARDS);
    let mut callee = at.join(1, Serializer::Json, ALL);
    let mut caller = at.join(0, Serializer::Json, ALL);
    register_opts(&mut callee, "rpc.streams", Val::empty_dict());
    let progress = || dict(&[("progress", b(true))]);
    let mut open = Vec::new();
    for n in 0..2 {
        let request = call_opts(&mut caller, "rpc.streams", progress(), n);
        let (inv, ..) = chunk(&mut callee);
        yield_arg(&mut callee, inv, false, n);
        expect_final(&mut caller, request);
        open.push(request);
    }
    let refused = call_opts(&mut caller, "rpc.streams", progress(), 9);
    assert_eq!(
        expect_final(&mut caller, refused),
        Rpc::Error {
            request: refused,
            error: "wamp.error.unavailable".into()
        }
    );
    // A plain call is not a stream.
    let plain = call_opts(&mut caller, "rpc.streams", Val::empty_dict(), 3);
    let (inv, ..) = chunk(&mut callee);
    yield_arg(&mut callee, inv, false, 3);
    expect_final(&mut caller, plain);
    // The last chunk of one frees its place (and goes nowhere: its call has ended).
    call_with_id(&mut caller, open[0], "rpc.streams", Val::empty_dict(), 0);
    let request = call_opts(&mut caller, "rpc.streams", progress(), 4);
    let (inv, arg, more) = chunk(&mut callee);
    assert_eq!((arg, more), (4, true));
    yield_arg(&mut callee, inv, false, 4);
    assert!(matches!(
        expect_final(&mut caller, request),
        Rpc::Result { arg: 4, .. }
    ));
}
