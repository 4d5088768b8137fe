//! One shard's router driven by hand: frames in, the mesh's rings and the sessions' outboxes out.
//! The other shard is played by the test, so the order in which acknowledgements and cross-shard
//! messages arrive is chosen exactly — the races that an end-to-end test can only hope to hit.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::mesh::Mesh;
use crate::protocol::{codes, Message, Serializer};
use crate::router::realm::Realms;
use crate::router::wire::{Encoding, Wire};
use crate::router::{Conn, Limits, Router, ShardMesh, ShardMsg};

const ENC: Encoding = Encoding {
    ser: Serializer::Json,
    wire: Wire::RawSocket,
};

/// Shard 0 of a two-shard router; the test plays shard 1.
struct Harness {
    router: Router,
    mesh: Arc<ShardMesh>,
}

impl Harness {
    fn new(limits: Limits) -> Self {
        let mesh: Arc<ShardMesh> = Arc::new(Mesh::new(2, 64));
        let realms = Arc::new(Realms::new(&["realm1".to_string()]));
        Harness {
            router: Router::new(0, mesh.clone(), realms, limits),
            mesh,
        }
    }

    fn join(&mut self) -> Conn {
        let mut conn = Conn::new(ENC, 1 << 20, 1000, 1 << 20);
        self.send(&mut conn, br#"[1,"realm1",{}]"#);
        let got = codes_of(&conn);
        assert_eq!(got, vec![codes::WELCOME]);
        conn
    }

    fn send(&mut self, conn: &mut Conn, frame: &[u8]) {
        let flow = self.router.on_frame(conn, &Bytes::copy_from_slice(frame));
        assert_eq!(
            flow,
            crate::router::Flow::Continue,
            "{:?}",
            std::str::from_utf8(frame)
        );
    }

    /// What shard 0 sent shard 1 so far.
    fn sent_to_other_shard(&mut self) -> Vec<ShardMsg> {
        self.router.flush();
        let mut out = Vec::new();
        self.mesh.drain(1, 1000, &mut out);
        out.into_iter().map(|(_, m)| m).collect()
    }

    /// The token of the one update that waits for shard 1's acknowledgement.
    fn pending_token(&mut self) -> u64 {
        let tokens: Vec<u64> = self
            .sent_to_other_shard()
            .into_iter()
            .filter_map(|m| match m {
                ShardMsg::SubUpdate { token, .. } | ShardMsg::RegUpdate { token, .. }
                    if token != 0 =>
                {
                    Some(token)
                }
                _ => None,
            })
            .collect();
        assert_eq!(tokens.len(), 1);
        tokens[0]
    }
}

/// Message codes queued for a session (and takes them off its queue).
fn codes_of(conn: &Conn) -> Vec<u64> {
    conn.peer
        .outbox
        .take_queued()
        .iter()
        .map(|f| {
            let body = &f[4..]; // RawSocket header
            Message::parse(Serializer::Json, body)
                .expect("valid")
                .code()
        })
        .collect()
}

#[test]
fn no_event_reaches_a_subscriber_before_its_subscribed() {
    let mut h = Harness::new(Limits::default());
    let mut sub = h.join();
    let mut publ = h.join();
    h.send(&mut sub, br#"[32,1,{},"t"]"#);
    let token = h.pending_token();
    // Published on the subscriber's own shard while shard 1 has not acknowledged yet.
    h.send(&mut publ, br#"[16,1,{},"t",[1]]"#);
    assert_eq!(
        codes_of(&sub),
        Vec::<u64>::new(),
        "nothing before SUBSCRIBED"
    );
    h.router.on_mesh(1, ShardMsg::Ack { token });
    h.send(&mut publ, br#"[16,2,{},"t",[2]]"#);
    assert_eq!(codes_of(&sub), vec![codes::SUBSCRIBED, codes::EVENT]);

    // A second local subscriber joins an established subscription: SUBSCRIBED at once.
    let mut sub2 = h.join();
    h.send(&mut sub2, br#"[32,1,{},"t"]"#);
    h.send(&mut publ, br#"[16,3,{},"t",[3]]"#);
    assert_eq!(codes_of(&sub2), vec![codes::SUBSCRIBED, codes::EVENT]);
}

#[test]
fn a_second_subscriber_during_the_announcement_waits_for_it_too() {
    let mut h = Harness::new(Limits::default());
    let mut a = h.join();
    let mut b = h.join();
    let mut publ = h.join();
    h.send(&mut a, br#"[32,1,{},"t"]"#);
    let token = h.pending_token();
    h.send(&mut b, br#"[32,1,{},"t"]"#);
    h.send(&mut publ, br#"[16,1,{},"t",[1]]"#);
    assert!(codes_of(&a).is_empty() && codes_of(&b).is_empty());
    h.router.on_mesh(1, ShardMsg::Ack { token });
    h.send(&mut publ, br#"[16,2,{},"t",[2]]"#);
    assert_eq!(codes_of(&a), vec![codes::SUBSCRIBED, codes::EVENT]);
    assert_eq!(codes_of(&b), vec![codes::SUBSCRIBED, codes::EVENT]);
}

#[test]
fn a_call_that_arrives_before_the_registration_is_confirmed_waits_for_registered() {
    let mut h = Harness::new(Limits::default());
    let mut callee = h.join();
    h.send(&mut callee, br#"[64,1,{},"p"]"#);
    let (token, grant) = match h.sent_to_other_shard().pop() {
        Some(ShardMsg::RegUpdate { token, grant, .. }) => (token, grant),
        _ => panic!("expected the registration's announcement"),
    };
    // Shard 1 applied it and routes a CALL here before its acknowledgement is handled.
    let invoke = crate::router::dealer::Invoke {
        realm: 0,
        registration: grant.id,
        callee: callee.peer.id.get(),
        caller_shard: 1,
        caller: 42,
        caller_request: 1,
        caller_enc: ENC,
        caller_max_frame: 1 << 20,
        procedure: None,
        ser: Serializer::Json,
        payload: Default::default(),
        receive_progress: false,
        timeout_ms: 0,
        disclosed: None,
        progress: false,
        route: Default::default(),
        continuation: false,
        caller_ppt: false,
    };
    h.router.on_mesh(1, ShardMsg::Invoke(Box::new(invoke)));
    assert!(
        codes_of(&callee).is_empty(),
        "no INVOCATION before REGISTERED"
    );
    h.router.on_mesh(1, ShardMsg::Ack { token });
    assert_eq!(
        codes_of(&callee),
        vec![codes::REGISTERED, codes::INVOCATION]
    );
}

#[test]
fn an_unacknowledged_update_times_out_with_an_error_and_is_undone() {
    let limits = Limits {
        barrier_timeout: Duration::from_millis(30),
        ..Limits::default()
    };
    let mut h = Harness::new(limits);
    let mut sub = h.join();
    let mut callee = h.join();
    h.send(&mut sub, br#"[32,1,{},"t"]"#);
    h.send(&mut callee, br#"[64,1,{},"p"]"#);
    h.sent_to_other_shard();
    std::thread::sleep(Duration::from_millis(40));
    h.router.tick();
    assert_eq!(codes_of(&sub), vec![codes::ERROR]);
    assert_eq!(codes_of(&callee), vec![codes::ERROR]);
    // Both were undone: the authority and the replica hold nothing, the procedure is free.
    let report = h.router.inspect();
    assert!(report.realms[0].subscriptions.is_empty());
    assert!(report.realms[0].registrations.is_empty());
    let retire: Vec<bool> = h
        .sent_to_other_shard()
        .into_iter()
        .map(|m| {
            matches!(
                m,
                ShardMsg::SubUpdate { add: false, .. } | ShardMsg::RegUpdate { callee: None, .. }
            )
        })
        .collect();
    assert_eq!(retire, vec![true, true], "shard 1 is told to forget both");
    let mut again = h.join();
    h.send(&mut again, br#"[64,1,{},"p"]"#);
    assert!(
        codes_of(&again).is_empty(),
        "registering again waits for shard 1, not refused"
    );
}

#[test]
fn published_waits_until_every_subscribers_shard_has_queued_the_event() {
    let mut h = Harness::new(Limits::default());
    let mut publ = h.join();
    // Shard 1 has a subscriber of "t".
    h.router.on_mesh(
        1,
        ShardMsg::SubUpdate {
            realm: 0,
            grant: crate::router::authority::Grant { id: 77, rev: 1 },
            policy: crate::protocol::uri::MatchPolicy::Exact,
            uri: Arc::from("t"),
            add: true,
            token: 0,
        },
    );
    h.send(&mut publ, br#"[16,1,{"acknowledge":true},"t",[1]]"#);
    let token = match h.sent_to_other_shard().pop() {
        Some(ShardMsg::Event { token, .. }) => token,
        _ => panic!("expected the EVENT for shard 1"),
    };
    assert_ne!(token, 0);
    assert!(
        codes_of(&publ).is_empty(),
        "no PUBLISHED before shard 1 queued the EVENT"
    );
    h.router.on_mesh(1, ShardMsg::Ack { token });
    assert_eq!(codes_of(&publ), vec![codes::PUBLISHED]);
    // Unacknowledged publications carry no token and cost no acknowledgement.
    h.send(&mut publ, br#"[16,2,{},"t",[2]]"#);
    assert!(matches!(
        h.sent_to_other_shard().pop(),
        Some(ShardMsg::Event { token: 0, .. })
    ));
}

/// A callee of `p` (policy `first`) on shard 1, as shard 1 would announce it after the authority
/// admitted it.
fn remote_callee(h: &mut Harness, session: u64, disclose_caller: bool) {
    use crate::protocol::uri::MatchPolicy;
    use crate::router::authority::InvokePolicy;
    let joined = h
        .router
        .realms
        .authority(0)
        .register(MatchPolicy::Exact, "p", 1, session, InvokePolicy::First)
        .expect("admitted");
    h.router.on_mesh(
        1,
        ShardMsg::RegUpdate {
            realm: 0,
            grant: joined.grant,
            policy: MatchPolicy::Exact,
            uri: Arc::from("p"),
            callee: Some(session),
            session,
            order: joined.order,
            invoke: InvokePolicy::First,
            disclose_caller,
            token: 0,
        },
    );
}

/// Callee `session` of shard 1 left: shard 1 tells shard 0.
fn remote_callee_left(h: &mut Harness, registration: u64, session: u64) {
    use crate::protocol::uri::MatchPolicy;
    use crate::router::authority::{Grant, InvokePolicy};
    h.router.on_mesh(
        1,
        ShardMsg::RegUpdate {
            realm: 0,
            grant: Grant {
                id: registration,
                rev: 0,
            },
            policy: MatchPolicy::Exact,
            uri: Arc::from("p"),
            callee: None,
            session,
            order: 0,
            invoke: InvokePolicy::Single,
            disclose_caller: false,
            token: 0,
        },
    );
}

/// Callee A (shard 1) refused caller 42's call; shard 1 moved it to callee B (here), which left
/// while the call was on its way.
fn moved_call(registration: u64, b: u64, refused: bool) -> crate::router::dealer::Invoke {
    let who = Arc::new(crate::router::session::Identity::anonymous(42, "anonymous"));
    crate::router::dealer::Invoke {
        realm: 0,
        registration,
        callee: b,
        caller_shard: 1,
        caller: 42,
        caller_request: 7,
        caller_enc: ENC,
        caller_max_frame: 1 << 20,
        procedure: None,
        ser: Serializer::Json,
        payload: Default::default(),
        receive_progress: false,
        timeout_ms: 0,
        disclosed: None,
        progress: false,
        route: crate::router::routing::CallRoute {
            reroutable: true,
            tried: vec![1001],
            refused,
            identity: Some(who),
            ..Default::default()
        },
        continuation: false,
        caller_ppt: false,
    }
}

/// The error URI of a frame shard 0 sent as a call's final answer.
fn answer_error(msgs: Vec<ShardMsg>) -> String {
    let frames: Vec<Bytes> = msgs
        .into_iter()
        .filter_map(|m| match m {
            ShardMsg::Answer {
                session: 42,
                frame: Some(f),
            } => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 1, "exactly one answer");
    match Message::parse(Serializer::Json, &frames[0][4..]).expect("valid") {
        Message::Error { error, .. } => error.into_owned(),
        other => panic!("expected ERROR, got {other:?}"),
    }
}

/// The race of a moved call and its next callee's departure, in the exact order that an
/// end-to-end test can only hope for: the call moves on to the callee after (C, on shard 1, which
/// asked for disclosure and so gets the caller), shard 0 remembers where it sent it (a CANCEL that
/// overtook the call follows it), and with no callee left the caller hears `no_available_callee`
/// when a callee refused the call, `no_such_procedure` when every callee it went to left.
#[test]
fn a_call_moved_to_a_callee_that_left_moves_on() {
    let mut h = Harness::new(Limits::default());
    remote_callee(&mut h, 1001, false); // A
    let mut b = h.join();
    h.send(&mut b, br#"[64,1,{"invoke":"first"},"p"]"#);
    let token = h.pending_token();
    h.router.on_mesh(1, ShardMsg::Ack { token });
    assert_eq!(codes_of(&b), vec![codes::REGISTERED]);
    let registration = h.router.local[0].dealer.route("p").expect("registered").id;
    remote_callee(&mut h, 1003, true); // C, disclose_caller
    let b_sid = b.peer.id.get();
    h.router.on_disconnect(&mut b);
    h.sent_to_other_shard();

    h.router.on_mesh(
        1,
        ShardMsg::Invoke(Box::new(moved_call(registration, b_sid, true))),
    );
    let sent = h.sent_to_other_shard();
    let moved: Vec<&crate::router::dealer::Invoke> = sent
        .iter()
        .filter_map(|m| match m {
            ShardMsg::Invoke(inv) => Some(&**inv),
            _ => None,
        })
        .collect();
    assert_eq!(moved.len(), 1, "moved on, not answered");
    assert_eq!(moved[0].callee, 1003);
    assert_eq!(moved[0].route.tried, vec![1001, b_sid]);
    let disclosed = moved[0]
        .disclosed
        .as_ref()
        .map(|(sid, who)| (*sid, who.authid.to_string()));
    assert_eq!(disclosed, Some((42, "anonymous-42".to_string())));
    h.router.on_mesh(
        1,
        ShardMsg::Cancel {
            caller: 42,
            request: 7,
            mode: crate::router::calls::CancelMode::KillNoWait,
        },
    );
    let forwarded = h.sent_to_other_shard();
    assert!(
        matches!(
            forwarded.as_slice(),
            [ShardMsg::Cancel {
                caller: 42,
                request: 7,
                ..
            }]
        ),
        "the CANCEL follows the moved call"
    );

    remote_callee_left(&mut h, registration, 1003);
    h.router.on_mesh(
        1,
        ShardMsg::Invoke(Box::new(moved_call(registration, b_sid, true))),
    );
    assert_eq!(
        answer_error(h.sent_to_other_shard()),
        crate::protocol::errors::NO_AVAILABLE_CALLEE
    );
    remote_callee_left(&mut h, registration, 1001);
    h.router.on_mesh(
        1,
        ShardMsg::Invoke(Box::new(moved_call(registration, b_sid, false))),
    );
    assert_eq!(
        answer_error(h.sent_to_other_shard()),
        crate::protocol::errors::NO_SUCH_PROCEDURE
    );
}
