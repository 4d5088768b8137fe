//! The dynamic authorizer against a real wampd on two shards: a session in realm `auth` registers
//! the procedure, the asking session sits on the other shard. Allow and deny for every action, the
//! per-session cache, order kept behind a parked request, every failure denying, a session leaving
//! while parked, the static winner still deciding, `disclose` from the answer, and a reload
//! emptying the caches.

mod common;

use std::borrow::Cow;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::auth::{decoded, get_str};
use common::authz::{sighup, start_with_config, write_config, TRUSTED_AUTH_REALM};
use common::{dict, s, Client, Got, Router};
use wampd::protocol::{codes, Message, Serializer, Val};
use wampd::router::ids::shard_of_session;

const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
const AUTHORIZER: &str = "auth.authorize";

/// The application realm: `app.static.` is decided by a static permission (`app.static.no` takes
/// it back); everything else goes to the authorizer, which gives up after 1.5 s.
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
    [[realm.role.permission]]
    uri = "app.static.no"
    allow = []
  [realm.authorizer]
  procedure = "auth.authorize"
  realm = "auth"
  timeout = 1500
"#;

/// The whole configuration: the realms above and the trusted realm `auth` the procedures live in.
fn config() -> String {
    format!("{APP_CONFIG}{TRUSTED_AUTH_REALM}")
}

/// One question the authorizer was asked.
#[derive(Debug, Clone)]
struct Asked {
    session: u64,
    authrole: String,
    realm: String,
    uri: String,
    action: String,
    options: Val<'static>,
}

/// The authorizer: answers by the URI's last component — `allow`/`deny` (bools), `dict` (allow and
/// disclose), `nocache`, `err` (an ERROR), `bad` (a string), `slow` (true after 300 ms), `never`
/// (no answer). Runs until `stop` is dropped (bounded at 60 s); every question is reported.
fn serve(mut svc: Client, tx: mpsc::Sender<Asked>, stop: mpsc::Receiver<()>) {
    svc.set_timeout(Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && matches!(stop.try_recv(), Err(mpsc::TryRecvError::Empty)) {
        let Some(frame) = svc.recv() else { continue };
        let (request, args) = match Message::parse(svc.ser, &frame).unwrap() {
            Message::Invocation { request, args, .. } => {
                (request, decoded(args.expect("arguments")).into_owned())
            }
            _ => continue, // INTERRUPT for a question withdrawn
        };
        let Val::List(items) = args else {
            panic!("positional arguments")
        };
        let details = &items[0];
        let asked = Asked {
            session: details.get("session").and_then(|v| v.as_u64()).unwrap(),
            authrole: get_str(details, "authrole").unwrap(),
            realm: get_str(details, "realm").unwrap(),
            uri: items[1].as_str().unwrap().into_owned(),
            action: items[2].as_str().unwrap().into_owned(),
            options: items[3].clone(),
        };
        let last = asked.uri.rsplit('.').next().unwrap().to_string();
        let _ = tx.send(asked);
        let answer = match last.as_str() {
            "allow" => Val::Bool(true),
            "deny" => Val::Bool(false),
            "dict" => dict(&[("allow", Val::Bool(true)), ("disclose", Val::Bool(true))]),
            "nocache" => dict(&[("allow", Val::Bool(true)), ("cache", Val::Bool(false))]),
            "bad" => s("yes"),
            "slow" => {
                std::thread::sleep(Duration::from_millis(300));
                Val::Bool(true)
            }
            "never" => continue,
            _ => {
                svc.send(&Message::Error {
                    request_type: codes::INVOCATION,
                    request,
                    details: Val::empty_dict(),
                    error: "app.refused".into(),
                    args: None,
                    kwargs: None,
                });
                continue;
            }
        };
        svc.send_yield(request, common::list(vec![answer]));
    }
}

/// A router, its authorizer (on one shard) and a client of realm `app` on the other shard.
struct Setup {
    router: Router,
    asked: mpsc::Receiver<Asked>,
    _stop: mpsc::Sender<()>,
    app: Client,
}

fn setup(name: &str, register: bool) -> Setup {
    let path = write_config(name, &config());
    let router = start_with_config(2, &path);
    let mut svc = Client::rawsocket(&router.addr, Serializer::Json);
    svc.hello("auth");
    if register {
        svc.register(AUTHORIZER);
    }
    let app = on_other_shard(&router, svc.session, Serializer::MsgPack);
    let (tx, asked) = mpsc::channel();
    let (stop_tx, stop) = mpsc::channel();
    std::thread::spawn(move || serve(svc, tx, stop));
    Setup {
        router,
        asked,
        _stop: stop_tx,
        app,
    }
}

/// A client of realm `app` on another shard than session `of`.
fn on_other_shard(router: &Router, of: u64, ser: Serializer) -> Client {
    for _ in 0..8 {
        let mut c = Client::rawsocket(&router.addr, ser);
        c.hello("app");
        if shard_of_session(c.session, 2) != shard_of_session(of, 2) {
            return c;
        }
    }
    panic!("connections never reached the other shard");
}

/// Sends one request of `action` on `uri`; returns the request id.
fn send_request(c: &mut Client, action: &str, uri: &str, options: Val<'_>) -> u64 {
    let request = c.req();
    let uri = Cow::Owned(uri.to_string());
    c.send(&match action {
        "call" => Message::Call {
            request,
            options,
            procedure: uri,
            args: None,
            kwargs: None,
        },
        "register" => Message::Register {
            request,
            options,
            procedure: uri,
        },
        "subscribe" => Message::Subscribe {
            request,
            options,
            topic: uri,
        },
        _ => Message::Publish {
            request,
            options,
            topic: uri,
            args: None,
            kwargs: None,
        },
    });
    request
}

/// The answer to request `request`: Ok, or the ERROR's URI. A CALL without callee that got past
/// authorization (`no_such_procedure`) counts as Ok.
fn answer(c: &mut Client, request: u64) -> Result<(), String> {
    match c.recv_got().expect("an answer") {
        Got::Error {
            request: r, error, ..
        } => {
            assert_eq!(r, request);
            match error.as_str() {
                "wamp.error.no_such_procedure" => Ok(()),
                _ => Err(error),
            }
        }
        Got::Subscribed { request: r, .. }
        | Got::Registered { request: r, .. }
        | Got::Published { request: r, .. }
        | Got::Result { request: r, .. } => {
            assert_eq!(r, request);
            Ok(())
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn attempt(c: &mut Client, action: &str, uri: &str) -> Result<(), String> {
    let options = match action {
        "publish" => dict(&[("acknowledge", Val::Bool(true))]),
        _ => Val::empty_dict(),
    };
    let request = send_request(c, action, uri, options);
    answer(c, request)
}

/// The questions asked so far (waiting a little for stragglers).
fn drain(rx: &mpsc::Receiver<Asked>) -> Vec<Asked> {
    let mut out = Vec::new();
    while let Ok(a) = rx.recv_timeout(Duration::from_millis(200)) {
        out.push(a);
    }
    out
}

#[test]
fn every_action_is_allowed_or_denied_by_the_answer() {
    let mut t = setup("each_action.toml", true);
    for action in ["call", "register", "publish", "subscribe"] {
        assert_eq!(
            attempt(&mut t.app, action, &format!("app.{action}.allow")),
            Ok(())
        );
        assert_eq!(
            attempt(&mut t.app, action, &format!("app.{action}.deny")),
            Err(NOT_AUTHORIZED.to_string()),
            "{action}"
        );
    }
    // An unacknowledged PUBLISH that is denied is dropped silently: the next answer is the
    // acknowledged one's.
    send_request(&mut t.app, "publish", "app.quiet.deny", Val::empty_dict());
    assert_eq!(attempt(&mut t.app, "publish", "app.loud.allow"), Ok(()));
    // Pattern requests are asked with their pattern and options.
    let options = dict(&[("match", s("prefix"))]);
    let r = send_request(&mut t.app, "subscribe", "app.pattern.allow", options);
    assert_eq!(answer(&mut t.app, r), Ok(()));

    let asked = drain(&t.asked);
    assert_eq!(asked.len(), 11, "{asked:?}");
    let a = &asked[0];
    assert_eq!(
        (a.session, a.authrole.as_str(), a.realm.as_str()),
        (t.app.session, "guest", "app")
    );
    assert_eq!(
        (a.uri.as_str(), a.action.as_str()),
        ("app.call.allow", "call")
    );
    let pattern = asked.last().unwrap();
    assert_eq!(pattern.action, "subscribe");
    assert_eq!(
        get_str(&pattern.options, "match").as_deref(),
        Some("prefix")
    );
}

#[test]
fn answers_are_cached_per_session_unless_told_not_to() {
    let mut t = setup("cache.toml", true);
    for _ in 0..3 {
        assert_eq!(attempt(&mut t.app, "call", "app.c.allow"), Ok(()));
        assert_eq!(
            attempt(&mut t.app, "call", "app.c.deny"),
            Err(NOT_AUTHORIZED.into())
        );
        assert_eq!(attempt(&mut t.app, "call", "app.c.nocache"), Ok(()));
    }
    // Same URI, other action: another question.
    assert_eq!(attempt(&mut t.app, "subscribe", "app.c.allow"), Ok(()));
    let count = |asked: &[Asked], uri: &str, action: &str| {
        asked
            .iter()
            .filter(|a| a.uri == uri && a.action == action)
            .count()
    };
    let asked = drain(&t.asked);
    assert_eq!(count(&asked, "app.c.allow", "call"), 1, "{asked:?}");
    assert_eq!(count(&asked, "app.c.deny", "call"), 1);
    assert_eq!(count(&asked, "app.c.nocache", "call"), 3);
    assert_eq!(count(&asked, "app.c.allow", "subscribe"), 1);
    // The cache is the session's: another session is asked again.
    let mut other = Client::rawsocket(&t.router.addr, Serializer::Json);
    other.hello("app");
    assert_eq!(attempt(&mut other, "call", "app.c.allow"), Ok(()));
    let asked = drain(&t.asked);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].session, other.session);

    // A reload empties the caches: the next request is asked again.
    sighup(&t.router);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut asked_again = false;
    while !asked_again && Instant::now() < deadline {
        assert_eq!(attempt(&mut t.app, "call", "app.c.allow"), Ok(()));
        asked_again = !drain(&t.asked).is_empty();
    }
    assert!(asked_again, "the cache survived the reload");
}

#[test]
fn requests_behind_a_parked_one_keep_their_order() {
    let mut t = setup("order.toml", true);
    let mut callee = Client::rawsocket(&t.router.addr, Serializer::Json);
    callee.hello("app");
    callee.register("app.static.echo");
    // The authorizer answers the first PUBLISH after 300 ms; the second (same URI) and the CALL,
    // statically allowed, wait behind it.
    let ack = || dict(&[("acknowledge", Val::Bool(true))]);
    let p1 = send_request(&mut t.app, "publish", "app.o.slow", ack());
    let p2 = send_request(&mut t.app, "publish", "app.o.slow", ack());
    let call = t
        .app
        .send_call("app.static.echo", common::list(vec![Val::UInt(7)]));
    let (inv, _) = callee.invocation();
    callee.send_yield(inv, common::list(vec![Val::UInt(8)]));
    let order: Vec<u64> = (0..3)
        .map(|_| match t.app.recv_got().expect("an answer") {
            Got::Published { request, .. } | Got::Result { request, .. } => request,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(order, vec![p1, p2, call]);
    let asked = drain(&t.asked);
    assert_eq!(
        asked.len(),
        1,
        "the second PUBLISH was answered from the cache"
    );
}

#[test]
fn failures_deny() {
    let mut t = setup("failures.toml", true);
    for uri in ["app.f.err", "app.f.bad"] {
        for _ in 0..2 {
            assert_eq!(attempt(&mut t.app, "call", uri), Err(NOT_AUTHORIZED.into()));
        }
    }
    let started = Instant::now();
    assert_eq!(
        attempt(&mut t.app, "call", "app.f.never"),
        Err(NOT_AUTHORIZED.into())
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    // The session is fine afterwards, and failures are not cached.
    assert_eq!(attempt(&mut t.app, "call", "app.f.allow"), Ok(()));
    let asked = drain(&t.asked);
    let uris: Vec<&str> = asked.iter().map(|a| a.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "app.f.err",
            "app.f.err",
            "app.f.bad",
            "app.f.bad",
            "app.f.never",
            "app.f.allow"
        ]
    );
}

#[test]
fn nobody_registered_denies_at_once() {
    let mut t = setup("unregistered.toml", false);
    let started = Instant::now();
    for action in ["call", "subscribe"] {
        assert_eq!(
            attempt(&mut t.app, action, "app.u.allow"),
            Err(NOT_AUTHORIZED.into())
        );
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    // The static winner decides without the authorizer.
    assert_eq!(attempt(&mut t.app, "call", "app.static.x"), Ok(()));
}

#[test]
fn the_static_winner_decides_where_it_matches() {
    let mut t = setup("static.toml", true);
    for action in ["call", "register", "publish", "subscribe"] {
        let uri = format!("app.static.{action}");
        assert_eq!(attempt(&mut t.app, action, &uri), Ok(()));
        assert_eq!(
            attempt(&mut t.app, action, "app.static.no"),
            Err(NOT_AUTHORIZED.into())
        );
    }
    assert!(drain(&t.asked).is_empty(), "the authorizer was asked");
}

#[test]
fn a_session_leaving_while_parked_leaves_nothing_behind() {
    let mut t = setup("leaving.toml", true);
    send_request(&mut t.app, "call", "app.l.slow", Val::empty_dict());
    send_request(&mut t.app, "call", "app.l.allow", Val::empty_dict());
    drop(t.app);
    // The late answer finds nobody; the router serves the next session as before.
    std::thread::sleep(Duration::from_millis(400));
    let mut next = Client::rawsocket(&t.router.addr, Serializer::Json);
    next.hello("app");
    assert_eq!(attempt(&mut next, "call", "app.l.allow"), Ok(()));
    let asked = drain(&t.asked);
    let uris: Vec<&str> = asked.iter().map(|a| a.uri.as_str()).collect();
    assert_eq!(uris, ["app.l.slow", "app.l.allow"], "the queue was dropped");
}

#[test]
fn too_many_messages_behind_a_parked_request_close_the_session() {
    let mut t = setup("bound.toml", true);
    send_request(&mut t.app, "call", "app.b.never", Val::empty_dict());
    // One write, so that the router closing the connection cannot fail a later one.
    let mut bytes = Vec::new();
    for _ in 0..1100 {
        let mut body = Vec::new();
        let publish = Message::Publish {
            request: t.app.req(),
            options: Val::empty_dict(),
            topic: Cow::Borrowed("app.static.t"),
            args: None,
            kwargs: None,
        };
        publish.encode(t.app.ser, &mut body).unwrap();
        let len = body.len();
        bytes.extend_from_slice(&[0, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
        bytes.extend_from_slice(&body);
    }
    t.app.write_socket(&bytes);
    t.app.expect_abort("wamp.error.unavailable");
}

#[test]
fn disclose_in_the_answer_discloses_the_caller_and_publisher() {
    let mut t = setup("disclose.toml", true);
    let mut callee = Client::rawsocket(&t.router.addr, Serializer::Json);
    callee.hello("app");
    let reg = send_request(&mut callee, "register", "app.d.dict", Val::empty_dict());
    assert_eq!(answer(&mut callee, reg), Ok(()));
    let reg = send_request(&mut callee, "register", "app.d.allow", Val::empty_dict());
    assert_eq!(answer(&mut callee, reg), Ok(()));
    let sub = send_request(&mut callee, "subscribe", "app.e.dict", Val::empty_dict());
    assert_eq!(answer(&mut callee, sub), Ok(()));

    let caller_details = |callee: &mut Client| {
        callee.recv_with(|m| match m {
            Message::Invocation {
                request, details, ..
            } => (
                request,
                decoded(details).get("caller").and_then(|v| v.as_u64()),
            ),
            other => panic!("expected INVOCATION, got {other:?}"),
        })
    };
    for (uri, disclosed) in [("app.d.dict", Some(t.app.session)), ("app.d.allow", None)] {
        let call = t.app.send_call(uri, common::list(vec![]));
        let (inv, caller) = caller_details(&mut callee);
        assert_eq!(caller, disclosed, "{uri}");
        callee.send_yield(inv, common::list(vec![]));
        assert_eq!(answer(&mut t.app, call), Ok(()));
    }
    send_request(&mut t.app, "publish", "app.e.dict", Val::empty_dict());
    let publisher = callee.recv_with(|m| match m {
        Message::Event { details, .. } => {
            decoded(details).get("publisher").and_then(|v| v.as_u64())
        }
        other => panic!("expected EVENT, got {other:?}"),
    });
    assert_eq!(publisher, Some(t.app.session));
}
