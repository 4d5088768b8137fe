//! The router's own calls of the dynamic authorizer and the dynamic authenticator when whatever
//! asked goes away before the answer: a session whose request is parked leaves (ABORT, or its
//! connection drops; a GOODBYE waits behind the parked request), or a login waiting for the authenticator is abandoned (connection dropped,
//! ABORT). The callee's pending invocation is freed on its shard, a callee that announced
//! `call_canceling` gets INTERRUPT (`killnowait`) for exactly that INVOCATION, one that did not gets
//! nothing, and a late answer is ignored. Askers and callees sit on different shards and on the same
//! one; the routing state is checked for leftovers after each case.

mod common;

use std::borrow::Cow;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use wampd::protocol::{Message, Serializer, Val};
use wampd::router::ids::shard_of_session;

use common::auth::{decoded, get_str, recv_challenge, send_authenticate, send_hello};
use common::authz::TRUSTED_AUTH_REALM;
use common::{dict, list, s, Client, InProcess};

const SHARDS: usize = 2;
const AUTHORIZER: &str = "auth.authorize";
const AUTHENTICATOR: &str = "auth.authenticate";
const SECRET: &str = "login-secret";

/// Realm `app` asks the authorizer for everything but `app.static.`; realm `login` has no listed
/// principal, so every login is decided by the authenticator (realm `hasty` too, which gives up on
/// it after 300 ms). Both are registered in realm `auth`.
const APP_CONFIG: &str = r#"
[[realm]]
name = "app"
anonymous_role = "guest"
  [[realm.role]]
  name = "guest"
    [[realm.role.permission]]
    uri = "app.static."
    match = "prefix"
    allow = ["call", "register", "publish", "subscribe"]
  [realm.authorizer]
  procedure = "auth.authorize"
  realm = "auth"
  timeout = 20000
"#;

/// The realms listed after `auth` (the order names the realms' indexes).
const MORE_CONFIG: &str = r#"
[[realm]]
name = "login"
  [[realm.role]]
  name = "dynrole"
    [[realm.role.permission]]
    uri = ""
    match = "prefix"
    allow = ["call", "register", "publish", "subscribe"]
  [realm.authenticator]
  procedure = "auth.authenticate"
  realm = "auth"
  timeout = 20000
[[realm]]
name = "hasty"
  [realm.authenticator]
  procedure = "auth.authenticate"
  realm = "auth"
  timeout = 300
"#;

/// The whole configuration: the realms above and the trusted realm `auth` the procedures live in.
fn config_text() -> String {
    format!("{APP_CONFIG}{TRUSTED_AUTH_REALM}{MORE_CONFIG}")
}

/// A router with [`config_text`] on [`SHARDS`] shards, inside the test process. The answer timeouts are
/// long, so that nothing a test sees comes from them, except in realm `hasty`.
fn start() -> InProcess {
    let mut config = wampd::config::Config::default();
    wampd::config::load::load_str(&config_text(), std::path::Path::new("."), &mut config)
        .expect("the configuration is valid");
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.shards = SHARDS;
    config.pin_cores = false;
    let server = wampd::server::Server::start(config).expect("router starts");
    let addr = server.local_addrs()[0].to_string();
    InProcess {
        server: Some(server),
        addr,
    }
}

/// Connections go to the shards in turn: opens (and drops) placeholder connections until the next
/// one lands on the wanted shard.
struct Placer {
    addr: String,
    next: usize,
}

impl Placer {
    fn new(router: &InProcess) -> Placer {
        Placer {
            addr: router.addr.clone(),
            next: 0,
        }
    }

    fn client_on(&mut self, shard: usize) -> Client {
        while self.next % SHARDS != shard {
            drop(TcpStream::connect(&self.addr).expect("connect"));
            self.next += 1;
        }
        self.next += 1;
        Client::rawsocket(&self.addr, Serializer::Json)
    }
}

/// A session of realm `auth` on `shard` registering `procedure`; announces `call_canceling` as a
/// callee when `canceling`.
fn service(placer: &mut Placer, shard: usize, procedure: &str, canceling: bool) -> Client {
    let mut c = placer.client_on(shard);
    let features = if canceling {
        dict(&[("call_canceling", Val::Bool(true))])
    } else {
        Val::empty_dict()
    };
    let roles = Val::Dict(vec![
        (Cow::Borrowed("caller"), Val::empty_dict()),
        (
            Cow::Borrowed("callee"),
            Val::Dict(vec![(Cow::Borrowed("features"), features)]),
        ),
    ]);
    c.send(&Message::Hello {
        realm: Cow::Borrowed("auth"),
        details: Val::Dict(vec![(Cow::Borrowed("roles"), roles)]),
    });
    c.session = c.recv_with(|m| match m {
        Message::Welcome { session, .. } => session,
        other => panic!("expected WELCOME, got {other:?}"),
    });
    assert_eq!(shard_of_session(c.session, SHARDS), shard);
    c.register(procedure);
    c
}

/// The next INVOCATION: its request id and decoded positional arguments.
fn invocation(svc: &mut Client) -> (u64, Vec<Val<'static>>) {
    let (request, args) = svc.invocation();
    match args.map(decoded) {
        Some(Val::List(items)) => (request, items.into_iter().map(Val::into_owned).collect()),
        other => panic!("positional arguments, got {other:?}"),
    }
}

/// Expects INTERRUPT for `invocation` with mode `killnowait` (and reason `wamp.error.canceled`).
fn expect_interrupt(svc: &mut Client, invocation: u64) {
    let (request, options) = svc.recv_with(|m| match m {
        Message::Interrupt { request, options } => (request, decoded(options).into_owned()),
        other => panic!("expected INTERRUPT, got {other:?}"),
    });
    assert_eq!(request, invocation, "INTERRUPT for another INVOCATION");
    assert_eq!(get_str(&options, "mode").as_deref(), Some("killnowait"));
    assert_eq!(
        get_str(&options, "reason").as_deref(),
        Some("wamp.error.canceled")
    );
}

/// Pending invocations of session `callee`, as its shard reports them.
fn pending_of(router: &InProcess, callee: u64) -> usize {
    router
        .report()
        .shards
        .iter()
        .flat_map(|s| s.sessions.iter())
        .find(|s| s.session == callee)
        .map_or_else(
            || panic!("session {callee} is not in the report"),
            |s| s.pending_invocations,
        )
}

/// Waits (bounded) until session `callee` has no pending invocation; fails if it keeps one.
fn expect_no_pending(router: &InProcess, callee: u64) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while pending_of(router, callee) != 0 {
        assert!(
            Instant::now() < deadline,
            "the callee still has a pending invocation for an asker that is gone"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The routing state is consistent everywhere.
fn expect_settled(router: &InProcess) {
    let problems = router.settle(Duration::from_secs(5));
    assert!(problems.is_empty(), "{problems:?}");
}

// ---- the dynamic authorizer ----------------------------------------------------------------------

/// A session of realm `app` on `shard`.
fn app_session(placer: &mut Placer, shard: usize) -> Client {
    let mut c = placer.client_on(shard);
    c.hello("app");
    assert_eq!(shard_of_session(c.session, SHARDS), shard);
    c
}

/// SUBSCRIBE to `topic`; returns the request id.
fn send_subscribe(c: &mut Client, topic: &str) -> u64 {
    let request = c.req();
    c.send(&Message::Subscribe {
        request,
        options: Val::empty_dict(),
        topic: Cow::Owned(topic.to_string()),
    });
    request
}

/// A question of the authorizer for a SUBSCRIBE of `topic` by `asker`: its INVOCATION id.
fn asked_about(svc: &mut Client, asker: u64, topic: &str) -> u64 {
    let (inv, args) = invocation(svc);
    assert_eq!(
        args[0].get("session").and_then(|v| v.as_u64()),
        Some(asker),
        "{args:?}"
    );
    assert_eq!(args[1].as_str().as_deref(), Some(topic));
    inv
}

/// After the asker left: a late answer is ignored, and a new session's question is still asked and
/// its answer still decides.
fn authorizer_still_serves(router: &InProcess, placer: &mut Placer, svc: &mut Client, late: u64) {
    svc.send_yield(late, list(vec![Val::Bool(true)]));
    let mut next = app_session(placer, 1);
    let request = send_subscribe(&mut next, "app.after");
    let inv = asked_about(svc, next.session, "app.after");
    svc.send_yield(inv, list(vec![Val::Bool(true)]));
    next.recv_with(|m| match m {
        Message::Subscribed { request: r, .. } => assert_eq!(r, request),
        other => panic!("expected SUBSCRIBED, got {other:?}"),
    });
    expect_no_pending(router, svc.session);
    expect_settled(router);
}

/// How a session leaves without waiting for its parked request.
#[derive(Clone, Copy, Debug)]
enum Leave {
    Abort,
    Drop,
}

fn leave(mut c: Client, how: Leave) {
    match how {
        Leave::Abort => {
            c.send(&Message::Abort {
                details: Val::empty_dict(),
                reason: Cow::Borrowed("wamp.close.system_shutdown"),
            });
            c.expect_closed();
        }
        Leave::Drop => drop(c),
    }
}

#[test]
fn a_parked_session_that_leaves_has_the_authorizer_interrupted() {
    for how in [Leave::Abort, Leave::Drop] {
        // The authorizer on shard 0; the asking session on the other shard and on the same one.
        for asker_shard in [1, 0] {
            eprintln!("case: {how:?}, asker on shard {asker_shard}");
            let router = start();
            let mut placer = Placer::new(&router);
            let mut svc = service(&mut placer, 0, AUTHORIZER, true);
            let mut app = app_session(&mut placer, asker_shard);
            send_subscribe(&mut app, "app.parked");
            let inv = asked_about(&mut svc, app.session, "app.parked");
            assert_eq!(pending_of(&router, svc.session), 1);
            leave(app, how);
            expect_interrupt(&mut svc, inv);
            expect_no_pending(&router, svc.session);
            authorizer_still_serves(&router, &mut placer, &mut svc, inv);
        }
    }
}

/// GOODBYE is not a way out of a parked request: like every message but YIELD, ERROR and ABORT it
/// queues behind it, so the question stands (no INTERRUPT), its answer decides the request, and the
/// GOODBYE is handled after it.
#[test]
fn a_goodbye_behind_a_parked_request_waits_for_the_answer() {
    let router = start();
    let mut placer = Placer::new(&router);
    let mut svc = service(&mut placer, 0, AUTHORIZER, true);
    let mut app = app_session(&mut placer, 1);
    let request = send_subscribe(&mut app, "app.parked");
    app.send(&Message::Goodbye {
        details: Val::empty_dict(),
        reason: Cow::Borrowed("wamp.close.close_realm"),
    });
    let inv = asked_about(&mut svc, app.session, "app.parked");
    svc.expect_silence(Duration::from_millis(300));
    app.expect_silence(Duration::from_millis(100));
    svc.send_yield(inv, list(vec![Val::Bool(true)]));
    // The GOODBYE reply comes once the request is decided (its SUBSCRIBED, which waits for the
    // other shards, may or may not make it out before the session ends).
    let goodbye = loop {
        let frame = app.recv().expect("GOODBYE");
        match Message::parse(app.ser, &frame).unwrap() {
            Message::Subscribed { request: r, .. } => assert_eq!(r, request),
            Message::Goodbye { reason, .. } => break reason.into_owned(),
            other => panic!("expected SUBSCRIBED or GOODBYE, got {other:?}"),
        }
    };
    assert_eq!(goodbye, "wamp.close.goodbye_and_out");
    expect_no_pending(&router, svc.session);
    expect_settled(&router);
}

#[test]
fn an_authorizer_without_call_canceling_is_not_interrupted_but_freed() {
    let router = start();
    let mut placer = Placer::new(&router);
    let mut svc = service(&mut placer, 0, AUTHORIZER, false);
    let mut app = app_session(&mut placer, 1);
    send_subscribe(&mut app, "app.parked");
    let inv = asked_about(&mut svc, app.session, "app.parked");
    drop(app);
    expect_no_pending(&router, svc.session);
    svc.expect_silence(Duration::from_millis(300));
    authorizer_still_serves(&router, &mut placer, &mut svc, inv);
}

// ---- the dynamic authenticator -------------------------------------------------------------------

/// How a login is abandoned while the authenticator is asked.
#[derive(Clone, Copy, Debug)]
enum Abandon {
    Drop,
    Abort,
}

fn abandon(mut c: Client, how: Abandon) {
    match how {
        Abandon::Drop => drop(c),
        Abandon::Abort => {
            c.send(&Message::Abort {
                details: Val::empty_dict(),
                reason: Cow::Borrowed("wamp.close.system_shutdown"),
            });
            c.expect_closed();
        }
    }
}

/// A login of `authid` with `method` on `shard`, left where the authenticator is asked: for
/// WAMP-CRA at HELLO, for ticket after AUTHENTICATE. Returns the connection and the INVOCATION id.
fn login_until_asked(
    placer: &mut Placer,
    svc: &mut Client,
    shard: usize,
    method: &str,
    authid: &str,
) -> (Client, u64) {
    let mut c = placer.client_on(shard);
    send_hello(&mut c, "login", &[method], Some(authid), Val::empty_dict());
    if method == "ticket" {
        assert_eq!(recv_challenge(&mut c).0, "ticket");
        send_authenticate(&mut c, "some-ticket", Val::empty_dict());
    }
    let (inv, args) = invocation(svc);
    assert_eq!(args[1].as_str().as_deref(), Some(authid), "{args:?}");
    let session = args[2].get("session").and_then(|v| v.as_u64()).unwrap();
    assert_eq!(shard_of_session(session, SHARDS), shard);
    (c, inv)
}

/// The answer that grants `authid` a login with [`SECRET`] (WAMP-CRA) or any ticket.
fn grant(method: &str) -> Val<'static> {
    match method {
        "ticket" => s("dynrole").into_owned(),
        _ => dict(&[("secret", s(SECRET)), ("role", s("dynrole"))]).into_owned(),
    }
}

/// After the login was abandoned: a late answer is ignored, and a new login still works.
fn authenticator_still_serves(
    router: &InProcess,
    placer: &mut Placer,
    svc: &mut Client,
    late: u64,
    method: &str,
) {
    svc.send_yield(late, list(vec![grant(method)]));
    let (mut c, inv) = login_until_asked(placer, svc, 1, method, "next");
    svc.send_yield(inv, list(vec![grant(method)]));
    if method == "wampcra" {
        let (_, extra) = recv_challenge(&mut c);
        let challenge = get_str(&extra, "challenge").expect("challenge text");
        let signature = wampd::auth::wampcra::sign(SECRET.as_bytes(), &challenge);
        send_authenticate(&mut c, &signature, Val::empty_dict());
    }
    let details = c.recv_with(|m| match m {
        Message::Welcome { details, .. } => decoded(details).into_owned(),
        other => panic!("expected WELCOME, got {other:?}"),
    });
    assert_eq!(get_str(&details, "authid").as_deref(), Some("next"));
    assert_eq!(get_str(&details, "authrole").as_deref(), Some("dynrole"));
    expect_no_pending(router, svc.session);
    expect_settled(router);
}

#[test]
fn an_abandoned_login_has_the_authenticator_interrupted() {
    for method in ["wampcra", "ticket"] {
        for how in [Abandon::Drop, Abandon::Abort] {
            // The authenticator on shard 0; the login on the other shard and on the same one.
            for login_shard in [1, 0] {
                eprintln!("case: {method}, {how:?}, login on shard {login_shard}");
                let router = start();
                let mut placer = Placer::new(&router);
                let mut svc = service(&mut placer, 0, AUTHENTICATOR, true);
                let (c, inv) =
                    login_until_asked(&mut placer, &mut svc, login_shard, method, "gone");
                assert_eq!(pending_of(&router, svc.session), 1);
                abandon(c, how);
                expect_interrupt(&mut svc, inv);
                expect_no_pending(&router, svc.session);
                authenticator_still_serves(&router, &mut placer, &mut svc, inv, method);
            }
        }
    }
}

#[test]
fn an_authenticator_without_call_canceling_is_not_interrupted_but_freed() {
    for method in ["wampcra", "ticket"] {
        eprintln!("case: {method}");
        let router = start();
        let mut placer = Placer::new(&router);
        let mut svc = service(&mut placer, 0, AUTHENTICATOR, false);
        let (c, inv) = login_until_asked(&mut placer, &mut svc, 1, method, "gone");
        drop(c);
        expect_no_pending(&router, svc.session);
        svc.expect_silence(Duration::from_millis(300));
        authenticator_still_serves(&router, &mut placer, &mut svc, inv, method);
    }
}

/// A login whose authenticator does not answer in time is refused, and the router's call is
/// withdrawn as well (the call itself carries no timeout the callee's shard would enforce).
#[test]
fn a_login_refused_for_a_late_authenticator_has_it_interrupted() {
    let router = start();
    let mut placer = Placer::new(&router);
    let mut svc = service(&mut placer, 0, AUTHENTICATOR, true);
    let mut c = placer.client_on(1);
    send_hello(
        &mut c,
        "hasty",
        &["wampcra"],
        Some("slow"),
        Val::empty_dict(),
    );
    let (inv, args) = invocation(&mut svc);
    assert_eq!(args[1].as_str().as_deref(), Some("slow"));
    c.expect_abort("wamp.error.authentication_failed");
    expect_interrupt(&mut svc, inv);
    expect_no_pending(&router, svc.session);
    authenticator_still_serves(&router, &mut placer, &mut svc, inv, "wampcra");
}
