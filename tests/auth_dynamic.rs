//! The dynamic authenticator: a session in another realm registers the procedure; the router calls
//! it for ticket logins of authids the realm does not list, on the same shard and across shards,
//! and takes the role (or the refusal) from its answer.

mod common;

use std::time::Duration;

use wampd::protocol::{Message, Serializer, Val};

use common::auth::{
    self as fixture, decoded, get_str, recv_challenge, send_authenticate, send_hello,
    AUTHENTICATOR, AUTH_SERVICE_REALM, REALM,
};
use common::{dict, s, Client};

const FAILED: &str = "wamp.error.authentication_failed";

/// A ticket login: the WELCOME details, or the ABORT reason.
fn ticket_login(addr: &str, authid: &str, ticket: &str) -> Result<Val<'static>, String> {
    let mut c = Client::rawsocket(addr, Serializer::Json);
    send_hello(&mut c, REALM, &["ticket"], Some(authid), Val::empty_dict());
    assert_eq!(recv_challenge(&mut c).0, "ticket");
    send_authenticate(&mut c, ticket, Val::empty_dict());
    let frame = c.recv().expect("a reply to AUTHENTICATE");
    match Message::parse(c.ser, &frame).unwrap() {
        Message::Welcome { details, .. } => Ok(decoded(details).into_owned()),
        Message::Abort { reason, .. } => Err(reason.into_owned()),
        other => panic!("unexpected {other:?}"),
    }
}

/// Answers `n` authenticator calls: ticket "dyn-ok" → role "dynrole"; "dyn-dict" → a dict that
/// renames the authid; anything else → an ERROR. Returns what each call was asked.
fn serve_authenticator(
    mut svc: Client,
    n: usize,
) -> std::thread::JoinHandle<Vec<(String, String, String)>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..n {
            let (request, args) = svc.invocation();
            let args = args.map(decoded).expect("arguments");
            let item = |i: usize| match &args {
                Val::List(v) => v[i].clone(),
                _ => panic!("positional arguments"),
            };
            let (realm, authid, details) = (item(0), item(1), item(2));
            let ticket = get_str(&details, "ticket").unwrap();
            assert_eq!(get_str(&details, "authmethod").as_deref(), Some("ticket"));
            seen.push((
                realm.as_str().unwrap().into_owned(),
                authid.as_str().unwrap().into_owned(),
                ticket.clone(),
            ));
            match ticket.as_str() {
                "dyn-ok" => svc.send_yield(request, common::list(vec![s("dynrole")])),
                "dyn-dict" => svc.send_yield(
                    request,
                    common::list(vec![dict(&[("role", s("r2")), ("authid", s("renamed"))])]),
                ),
                _ => svc.send(&Message::Error {
                    request_type: wampd::protocol::codes::INVOCATION,
                    request,
                    details: Val::empty_dict(),
                    error: "com.auth.denied".into(),
                    args: None,
                    kwargs: None,
                }),
            }
        }
        seen
    })
}

#[test]
fn the_authenticator_decides_unlisted_authids_on_any_shard() {
    let router = fixture::start(2, 0);
    // Nobody registered the authenticator yet: refused.
    assert_eq!(
        ticket_login(&router.addr, "walter", "dyn-ok").unwrap_err(),
        FAILED
    );

    let mut svc = Client::rawsocket(&router.addr, Serializer::MsgPack);
    svc.hello(AUTH_SERVICE_REALM);
    svc.register(AUTHENTICATOR);
    let answers = serve_authenticator(svc, 4);

    // Consecutive connections: one login shares the authenticator's shard, the other does not.
    for _ in 0..2 {
        let d = ticket_login(&router.addr, "walter", "dyn-ok").expect("accepted");
        assert_eq!(get_str(&d, "authid").as_deref(), Some("walter"));
        assert_eq!(get_str(&d, "authrole").as_deref(), Some("dynrole"));
        assert_eq!(get_str(&d, "authmethod").as_deref(), Some("ticket"));
        assert_eq!(get_str(&d, "authprovider").as_deref(), Some("dynamic"));
    }
    let d = ticket_login(&router.addr, "wanda", "dyn-dict").expect("accepted");
    assert_eq!(get_str(&d, "authid").as_deref(), Some("renamed"));
    assert_eq!(get_str(&d, "authrole").as_deref(), Some("r2"));
    assert_eq!(
        ticket_login(&router.addr, "walter", "nope").unwrap_err(),
        FAILED
    );
    // Listed authids never reach the authenticator.
    let d = ticket_login(&router.addr, "tick", fixture::TICKET).expect("static ticket");
    assert_eq!(get_str(&d, "authprovider").as_deref(), Some("static"));
    assert_eq!(
        ticket_login(&router.addr, "tick", "dyn-ok").unwrap_err(),
        FAILED
    );

    let seen = answers.join().expect("authenticator thread");
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|(realm, _, _)| realm == REALM));
    assert_eq!(
        seen[2],
        (
            REALM.to_string(),
            "wanda".to_string(),
            "dyn-dict".to_string()
        )
    );
}

#[test]
fn a_session_admitted_by_the_authenticator_routes_normally() {
    let router = fixture::start(2, 0);
    let mut svc = Client::rawsocket(&router.addr, Serializer::Json);
    svc.hello(AUTH_SERVICE_REALM);
    svc.register(AUTHENTICATOR);
    let answers = serve_authenticator(svc, 2);
    let mut joined = Vec::new();
    for authid in ["a1", "a2"] {
        let mut c = Client::rawsocket(&router.addr, Serializer::Json);
        send_hello(&mut c, REALM, &["ticket"], Some(authid), Val::empty_dict());
        recv_challenge(&mut c);
        send_authenticate(&mut c, "dyn-ok", Val::empty_dict());
        c.recv_with(|m| assert!(matches!(m, Message::Welcome { .. }), "{m:?}"));
        joined.push(c);
    }
    answers.join().unwrap();
    let (mut callee, mut caller) = (joined.remove(0), joined.remove(0));
    callee.register("com.auth.after");
    let req = caller.send_call("com.auth.after", common::list(vec![Val::UInt(5)]));
    let (inv, _) = callee.invocation();
    callee.send_yield(inv, common::list(vec![Val::UInt(6)]));
    let res = caller.result(req).map(decoded);
    assert!(
        matches!(res, Some(Val::List(ref v)) if v[0].as_u64() == Some(6)),
        "{res:?}"
    );
    // Closing a connection mid-login leaves nothing behind.
    let mut c = Client::rawsocket(&router.addr, Serializer::Json);
    send_hello(&mut c, REALM, &["ticket"], Some("gone"), dict(&[]));
    recv_challenge(&mut c);
    drop(c);
    assert!(router.settle(Duration::from_secs(5)).is_empty());
}
