//! Authorization and the configuration file against a real wampd: `wampd check`, `--config` with
//! flags overriding it, the permission matrix (every action × allowed/denied × exact/prefix/wildcard)
//! on two shards, anonymous_role, and SIGHUP reload with a live session.

mod common;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use common::authz::{check, sighup, start_with_config, write_config};
use common::{dict, s, Client, Got};
use wampd::protocol::codes;
use wampd::protocol::{Message, Serializer, Val};

const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
const ACTIONS: [&str; 4] = ["call", "register", "publish", "subscribe"];

/// The unsigned integers of a positional-arguments list.
fn ints(args: Option<Val<'_>>) -> Vec<u64> {
    match args {
        Some(Val::List(items)) => items.iter().filter_map(|v| v.as_u64()).collect(),
        Some(Val::Raw(raw)) => ints(Val::decode(raw).ok()),
        _ => Vec::new(),
    }
}

/// What the router answered to one request.
#[derive(Debug, PartialEq)]
enum Answer {
    Ok,
    Error(String),
}

/// Sends one request of `action` on `uri` (with match policy `policy` for subscribe/register) and
/// returns the router's answer. A CALL that passes authorization finds no callee here, so its
/// `no_such_procedure` counts as passing (the full path is covered in `allowed_actions_work`).
fn attempt(c: &mut Client, action: &str, uri: &str, policy: &str) -> Answer {
    let request = c.req();
    let topic = Cow::Owned(uri.to_string());
    let msg = match action {
        "call" => Message::Call {
            request,
            options: Val::empty_dict(),
            procedure: topic,
            args: None,
            kwargs: None,
        },
        "register" => Message::Register {
            request,
            options: dict(&[("match", s(policy))]),
            procedure: topic,
        },
        "subscribe" => Message::Subscribe {
            request,
            options: dict(&[("match", s(policy))]),
            topic,
        },
        _ => Message::Publish {
            request,
            options: dict(&[("acknowledge", Val::Bool(true))]),
            topic,
            args: None,
            kwargs: None,
        },
    };
    c.send(&msg);
    match c.recv_got().expect("an answer") {
        Got::Error {
            request: r, error, ..
        } => {
            assert_eq!(r, request);
            if error == "wamp.error.no_such_procedure" {
                Answer::Ok
            } else {
                Answer::Error(error)
            }
        }
        Got::Subscribed { request: r, .. }
        | Got::Registered { request: r, .. }
        | Got::Published { request: r, .. } => {
            assert_eq!(r, request);
            Answer::Ok
        }
        other => panic!("unexpected answer to {action} {uri}: {other:?}"),
    }
}

/// A role that may do exactly one action on each of three URIs per match policy.
fn matrix_config() -> String {
    let mut t = String::from(
        "[[realm]]\nname = \"realm1\"\nanonymous_role = \"m\"\n[[realm.role]]\nname = \"m\"\n",
    );
    for a in ACTIONS {
        for (pattern, m) in [
            (format!("x.exact.{a}"), "exact"),
            (format!("x.prefix.{a}."), "prefix"),
            (format!("x.wild.{a}..end"), "wildcard"),
        ] {
            t += &format!(
                "  [[realm.role.permission]]\n  uri = \"{pattern}\"\n  match = \"{m}\"\n  allow = [\"{a}\"]\n"
            );
        }
    }
    t
}

#[test]
fn permission_matrix() {
    let path = write_config("matrix.toml", &matrix_config());
    let router = start_with_config(2, &path);
    let mut c = Client::join(&router.addr, Serializer::Json);
    let mut checked = 0;
    for granted in ACTIONS {
        let uris = [
            format!("x.exact.{granted}"),
            format!("x.prefix.{granted}.some.thing"),
            format!("x.wild.{granted}.any.end"),
        ];
        for uri in &uris {
            for action in ACTIONS {
                let got = attempt(&mut c, action, uri, "exact");
                if action == granted {
                    assert_eq!(got, Answer::Ok, "{action} on {uri} should be allowed");
                } else {
                    assert_eq!(
                        got,
                        Answer::Error(NOT_AUTHORIZED.into()),
                        "{action} on {uri} should be denied"
                    );
                }
                checked += 1;
            }
        }
        // URIs that no permission matches: denied for every action.
        for uri in [
            format!("x.exact.{granted}.more"),
            format!("x.wild.{granted}.end"),
        ] {
            assert_eq!(
                attempt(&mut c, granted, &uri, "exact"),
                Answer::Error(NOT_AUTHORIZED.into()),
                "{granted} on {uri}"
            );
        }
    }
    assert_eq!(checked, 48);
    // The meta API's URIs follow the same rules: nothing grants `wamp.` here.
    assert_eq!(
        attempt(&mut c, "subscribe", "wamp.session.on_join", "exact"),
        Answer::Error(NOT_AUTHORIZED.into())
    );
    assert_eq!(
        attempt(&mut c, "call", "wamp.session.count", "exact"),
        Answer::Error(NOT_AUTHORIZED.into())
    );
}

#[test]
fn unacknowledged_denied_publications_vanish() {
    let path = write_config(
        "silent.toml",
        r#"[[realm]]
name = "realm1"
anonymous_role = "r"
[[realm.role]]
name = "r"
[[realm.role.permission]]
uri = "t.both"
allow = ["publish", "subscribe"]
[[realm.role.permission]]
uri = "t.sub"
allow = ["subscribe"]
"#,
    );
    let router = start_with_config(2, &path);
    // Two connections: two shards.
    let mut sub = Client::join(&router.addr, Serializer::MsgPack);
    let mut publisher = Client::join(&router.addr, Serializer::Json);
    sub.subscribe("t.sub");
    sub.subscribe("t.both");
    publisher.publish("t.sub", Val::empty_dict(), None, None);
    // The allowed publication after it shows the denied one was dropped, not merely late.
    publisher.publish_ack("t.both", Val::List(vec![Val::UInt(7)]));
    let (_, _, args, _) = sub.event();
    assert_eq!(ints(args), vec![7]);
    sub.expect_silence(Duration::from_millis(300));
    // Acknowledged, the same publication is answered.
    let request = publisher.req();
    publisher.send(&Message::Publish {
        request,
        options: dict(&[("acknowledge", Val::Bool(true))]),
        topic: Cow::Borrowed("t.sub"),
        args: None,
        kwargs: None,
    });
    publisher.expect_error_uri(codes::PUBLISH, request, NOT_AUTHORIZED);
}

const APP: &str = r#"
[[realm]]
name = "realm1"
anonymous_role = "app"
  [[realm.role]]
  name = "app"
    [[realm.role.permission]]
    uri = "app."
    match = "prefix"
    allow = ["call", "register", "publish", "subscribe"]
    [[realm.role.permission]]
    uri = "app.admin."
    match = "prefix"
    allow = []
[[realm]]
name = "closed"
  [[realm.role]]
  name = "nobody"
"#;

#[test]
fn allowed_actions_work_across_shards() {
    let path = write_config("app.toml", APP);
    let router = start_with_config(2, &path);
    let mut callee = Client::join(&router.addr, Serializer::Cbor);
    let mut caller = Client::join(&router.addr, Serializer::Json);
    callee.register("app.add");
    let request = caller.send_call("app.add", Val::List(vec![Val::UInt(2), Val::UInt(3)]));
    let (inv, args) = callee.invocation();
    assert_eq!(ints(args), vec![2, 3]);
    callee.send_yield(inv, Val::List(vec![Val::UInt(5)]));
    assert_eq!(ints(caller.result(request)), vec![5]);
    callee.subscribe("app.news");
    caller.publish_ack("app.news", Val::List(vec![Val::UInt(1)]));
    assert_eq!(ints(callee.event().2), vec![1]);
    // A more specific permission takes back what a wider one gives.
    let r = caller.send_call("app.admin.reset", Val::List(vec![]));
    caller.expect_error_uri(codes::CALL, r, NOT_AUTHORIZED);
}

#[test]
fn a_realm_without_anonymous_role_refuses_anonymous_sessions() {
    let path = write_config("closed.toml", APP);
    let router = start_with_config(1, &path);
    let mut c = Client::rawsocket(&router.addr, Serializer::Json);
    c.send_hello("closed");
    c.expect_abort("wamp.error.no_matching_auth_method");
}

#[test]
fn flags_override_the_file() {
    let path = write_config(
        "flags.toml",
        "[[listen]]\naddress = \"127.0.0.1:1\"\n[router]\nshards = 1\n[[realm]]\nname = \"filerealm\"\nanonymous_role = \"a\"\n[[realm.role]]\nname = \"a\"\n",
    );
    // The harness passes --listen 127.0.0.1:0 and --shards 3: both win over the file.
    let router = start_with_config(3, &path);
    assert!(
        router.start_line.contains("shards=3"),
        "{}",
        router.start_line
    );
    assert!(
        router.start_line.contains("realms=filerealm"),
        "{}",
        router.start_line
    );
    let mut c = Client::rawsocket(&router.addr, Serializer::Json);
    c.hello("filerealm");
    assert!(c.session > 0);
}

#[test]
fn check_reports_every_error_with_its_line() {
    let good = write_config("good.toml", APP);
    let (rc, out, err) = check(&good);
    assert_eq!(rc, 0, "stdout: {out} stderr: {err}");
    let bad = write_config(
        "bad.toml",
        "[[realm]]\nname = \"r\"\nanonymous_role = \"ghost\"\n[[realm.role]]\nname = \"a\"\ncolour = 1\n[router]\nshards = 0\n",
    );
    let (rc, _, err) = check(&bad);
    assert_eq!(rc, 1);
    let lines: Vec<&str> = err.lines().collect();
    let file = bad.display().to_string();
    assert_eq!(
        lines,
        vec![
            format!("{file}:3: realm[0].anonymous_role: role \"ghost\" is not defined in this realm"),
            format!("{file}:6: realm[0].role[0].colour: unknown field `colour`, expected `name` or `permission`"),
            format!("{file}:8: router.shards: must be between 1 and 64"),
        ]
    );
    // Running with a bad file refuses to start, with the same report.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wampd"))
        .args(["--config", bad.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":3: realm[0].anonymous_role"));
}

/// Retries `f` until it returns true (at most `within`).
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn sighup_reloads_rules_and_sessions_survive() {
    let path = write_config("reload.toml", APP);
    let router = start_with_config(2, &path);
    let mut live = Client::join(&router.addr, Serializer::Json);
    let mut other = Client::join(&router.addr, Serializer::MsgPack);
    live.subscribe("app.news");
    assert_eq!(attempt(&mut live, "call", "app.x", "exact"), Answer::Ok);

    // The new rules take calls away from role "app" but leave subscribe and publish.
    let reduced = APP.replace(
        "allow = [\"call\", \"register\", \"publish\", \"subscribe\"]",
        "allow = [\"publish\", \"subscribe\"]",
    );
    write_config("reload.toml", &reduced);
    sighup(&router);
    assert!(
        eventually(Duration::from_secs(5), || {
            attempt(&mut live, "call", "app.x", "exact") == Answer::Error(NOT_AUTHORIZED.into())
        }),
        "the reloaded rules never took effect"
    );
    // The session that joined before the reload is still there, and receives events.
    other.publish_ack("app.news", Val::List(vec![Val::UInt(9)]));
    assert_eq!(ints(live.event().2), vec![9]);

    // A file with errors changes nothing.
    write_config(
        "reload.toml",
        "[[realm]]\nname = \"realm1\"\nanonymous_role = \"gone\"\n",
    );
    sighup(&router);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        attempt(&mut live, "call", "app.x", "exact"),
        Answer::Error(NOT_AUTHORIZED.into())
    );
    assert_eq!(
        attempt(&mut live, "subscribe", "app.more", "exact"),
        Answer::Ok
    );
    // New sessions join under the rules in force.
    let mut late = Client::join(&router.addr, Serializer::Cbor);
    assert_eq!(
        attempt(&mut late, "publish", "app.news", "exact"),
        Answer::Ok
    );
    assert!(live.event().2.is_none());
}

#[test]
fn a_role_with_disclose_names_callers_and_publishers_unasked() {
    let path = write_config(
        "disclose.toml",
        r#"
[[realm]]
name = "realm1"
anonymous_role = "app"
  [[realm.role]]
  name = "app"
    [[realm.role.permission]]
    uri = "app."
    match = "prefix"
    allow = ["call", "register", "publish", "subscribe"]
    disclose = ["caller", "publisher"]
    [[realm.role.permission]]
    uri = "app.quiet."
    match = "prefix"
    allow = ["call", "register", "publish", "subscribe"]
"#,
    );
    let router = start_with_config(2, &path);
    let mut callee = Client::join(&router.addr, Serializer::Json);
    let mut caller = Client::join(&router.addr, Serializer::MsgPack);
    let details_of_invocation = |callee: &mut Client| {
        callee.recv_with(|m| match m {
            Message::Invocation {
                request, details, ..
            } => (request, common::auth::decoded(details).into_owned()),
            other => panic!("expected INVOCATION, got {other:?}"),
        })
    };
    for (procedure, forced) in [("app.proc", true), ("app.quiet.proc", false)] {
        callee.register(procedure);
        caller.send_call(procedure, common::list(vec![Val::UInt(1)]));
        let (request, details) = details_of_invocation(&mut callee);
        assert_eq!(
            details.get("caller").and_then(|v| v.as_u64()),
            forced.then_some(caller.session),
            "{procedure}: {details:?}"
        );
        if forced {
            assert_eq!(
                common::auth::get_str(&details, "caller_authrole").as_deref(),
                Some("app")
            );
            assert!(common::auth::get_str(&details, "caller_authid").is_some());
        }
        callee.send(&Message::Yield {
            request,
            options: Val::empty_dict(),
            args: None,
            kwargs: None,
        });
        caller.recv_with(|m| assert!(matches!(m, Message::Result { .. }), "{m:?}"));
    }
    for (topic, forced) in [("app.news", true), ("app.quiet.news", false)] {
        callee.subscribe(topic);
        caller.publish_ack(topic, common::list(vec![Val::UInt(2)]));
        let (_, details, _, _) = callee.event();
        let details = common::auth::decoded(details);
        assert_eq!(
            details.get("publisher").and_then(|v| v.as_u64()),
            forced.then_some(caller.session),
            "{topic}: {details:?}"
        );
    }
}
