//! SIGHUP rereads principals as well as roles: a changed ticket takes effect for new logins, a
//! principal added to the file can log in, a session that joined before keeps routing, and failed
//! logins are counted by method on the metrics endpoint.

mod common;

use std::time::{Duration, Instant};

use wampd::protocol::{Message, Serializer, Val};

use common::auth::{recv_challenge, send_authenticate, send_hello};
use common::authz::write_config;
use common::net::{http_get, LoggedRouter};
use common::Client;

fn config(principals: &str) -> String {
    format!(
        r#"[[realm]]
name = "realm1"
  [[realm.role]]
  name = "app"
    [[realm.role.permission]]
    uri = "app."
    match = "prefix"
    allow = ["call", "register", "publish", "subscribe"]
{principals}"#
    )
}

fn principal(authid: &str, ticket: &str) -> String {
    format!("  [[realm.principal]]\n  authid = \"{authid}\"\n  role = \"app\"\n  ticket = \"{ticket}\"\n")
}

/// A ticket login; the joined client, or the ABORT reason.
fn login(addr: &str, authid: &str, ticket: &str) -> Result<Client, String> {
    let mut c = Client::rawsocket(addr, Serializer::Json);
    send_hello(
        &mut c,
        "realm1",
        &["ticket"],
        Some(authid),
        Val::empty_dict(),
    );
    let (method, _) = recv_challenge(&mut c);
    assert_eq!(method, "ticket");
    send_authenticate(&mut c, ticket, Val::empty_dict());
    let outcome = c.recv_with(|m| match m {
        Message::Welcome { session, .. } => Ok(session),
        Message::Abort { reason, .. } => Err(reason.into_owned()),
        other => panic!("expected WELCOME or ABORT, got {other:?}"),
    });
    outcome.map(|session| {
        c.session = session;
        c
    })
}

fn ticket_failures(metrics: &str) -> u64 {
    let (status, body) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .find(|l| l.starts_with("wampd_auth_failures_total{method=\"ticket\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a ticket failure series")
}

#[test]
fn sighup_reloads_principals_and_failures_are_counted() {
    const FAILED: &str = "wamp.error.authentication_failed";
    let path = write_config("principals.toml", &config(&principal("joe", "one")));
    let router = LoggedRouter::start(&[
        "--shards",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--config",
        path.to_str().unwrap(),
    ]);
    let addr = router.addr("tcp");
    let metrics = router.addr("http");

    let before = ticket_failures(&metrics);
    assert_eq!(login(&addr, "joe", "wrong").err().as_deref(), Some(FAILED));
    assert!(ticket_failures(&metrics) > before, "the failure is counted");
    let mut live = login(&addr, "joe", "one").expect("joe logs in");
    live.subscribe("app.news");

    let both = principal("joe", "two") + &principal("ann", "three");
    write_config("principals.toml", &config(&both));
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(router.pid() as i32, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ann = loop {
        match login(&addr, "ann", "three") {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("the added principal never got in: {e}"),
        }
    };
    assert!(login(&addr, "joe", "two").is_ok(), "the new ticket works");
    assert_eq!(
        login(&addr, "joe", "one").err().as_deref(),
        Some(FAILED),
        "the old ticket no longer works"
    );
    // The session that joined before the reload still receives.
    ann.publish_ack("app.news", Val::List(vec![Val::UInt(5)]));
    let (_, _, args, _) = live.event();
    assert!(format!("{args:?}").contains('5'), "{args:?}");
}
