//! Authentication over raw WAMP messages: the spec's `wamp-scram` dialect (Argon2id and PBKDF2)
//! computed here from the spec's formulas, WELCOME's details, the handshake's protocol rules,
//! throttling of failed logins, and a shard that keeps routing while 100 SCRAM logins are in
//! progress.

mod common;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};
use wampd::protocol::{Message, Serializer, Val};

use common::auth::{
    self as fixture, b64, get_str, hmac, recv_challenge, recv_welcome, send_authenticate,
    send_hello, REALM,
};
use common::{dict, s, Client};

const FAILED: &str = "wamp.error.authentication_failed";

/// SaltedPassword as the spec defines it, from the CHALLENGE's parameters.
fn salted(extra: &Val<'_>, password: &str) -> [u8; 32] {
    let salt = base64::engine::general_purpose::STANDARD
        .decode(get_str(extra, "salt").unwrap())
        .unwrap();
    let iterations = extra.get("iterations").and_then(|v| v.as_u64()).unwrap() as u32;
    let mut out = [0u8; 32];
    match get_str(extra, "kdf").unwrap().as_str() {
        "argon2id13" => {
            let memory = extra.get("memory").and_then(|v| v.as_u64()).unwrap() as u32;
            let params = argon2::Params::new(memory, iterations, 1, Some(32)).unwrap();
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(password.as_bytes(), &salt, &mut out)
                .unwrap();
        }
        "pbkdf2" => pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut out),
        other => panic!("unexpected kdf {other}"),
    }
    out
}

/// A `wamp-scram` login up to CHALLENGE: returns the client nonce and the challenge.
fn scram_hello(c: &mut Client, authid: &str, n: u64) -> (String, Val<'static>) {
    let client_nonce = b64(&n.to_be_bytes());
    send_hello(
        c,
        REALM,
        &["wamp-scram"],
        Some(authid),
        dict(&[("nonce", s(&client_nonce)), ("channel_binding", Val::Null)]),
    );
    let (method, extra) = recv_challenge(c);
    assert_eq!(method, "wamp-scram");
    (client_nonce, extra)
}

/// The rest of a `wamp-scram` login: sends the ClientProof; returns the AuthMessage and SaltedPassword.
fn scram_finish(
    c: &mut Client,
    authid: &str,
    client_nonce: &str,
    extra: &Val<'_>,
    salted_password: [u8; 32],
) -> String {
    let nonce = get_str(extra, "nonce").unwrap();
    assert!(
        nonce.starts_with(client_nonce),
        "the server nonce extends the client's"
    );
    let auth_message = format!(
        "n={authid},r={client_nonce},r={nonce},s={},i={},c=biws,r={nonce}",
        get_str(extra, "salt").unwrap(),
        extra.get("iterations").and_then(|v| v.as_u64()).unwrap()
    );
    let client_key = hmac(&salted_password, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(signature)
        .map(|(a, b)| a ^ b)
        .collect();
    send_authenticate(
        c,
        &b64(&proof),
        dict(&[
            ("nonce", s(&nonce)),
            ("channel_binding", Val::Null),
            ("cbind_data", Val::Null),
        ]),
    );
    auth_message
}

fn expect_verified_welcome(
    c: &mut Client,
    auth_message: &str,
    salted_password: [u8; 32],
) -> Val<'static> {
    let (_, details) = recv_welcome(c);
    let server_key = hmac(&salted_password, b"Server Key");
    let want = b64(&hmac(&server_key, auth_message.as_bytes()));
    let authextra = details.get("authextra").expect("authextra");
    assert_eq!(
        get_str(&authextra, "verifier").as_deref(),
        Some(want.as_str()),
        "server signature"
    );
    details
}

#[test]
fn spec_scram_argon2id_and_pbkdf2_log_in_and_are_verified() {
    let router = fixture::start(2, 0);
    for (authid, kdf) in [("scrammer", "argon2id13"), ("pbkdfer", "pbkdf2")] {
        let mut c = Client::rawsocket(&router.addr, Serializer::Json);
        let (cn, extra) = scram_hello(&mut c, authid, 1);
        assert_eq!(get_str(&extra, "kdf").as_deref(), Some(kdf));
        let sp = salted(&extra, fixture::SCRAM_PASSWORD);
        let am = scram_finish(&mut c, authid, &cn, &extra, sp);
        let details = expect_verified_welcome(&mut c, &am, sp);
        assert_eq!(get_str(&details, "authid").as_deref(), Some(authid));
        assert_eq!(get_str(&details, "authrole").as_deref(), Some("frontend"));
        assert_eq!(
            get_str(&details, "authmethod").as_deref(),
            Some("wamp-scram")
        );
        assert_eq!(get_str(&details, "authprovider").as_deref(), Some("static"));

        let mut bad = Client::rawsocket(&router.addr, Serializer::MsgPack);
        let (cn, extra) = scram_hello(&mut bad, authid, 2);
        let sp = salted(&extra, "wrong password");
        scram_finish(&mut bad, authid, &cn, &extra, sp);
        bad.expect_abort(FAILED);
    }
}

#[test]
fn unknown_authids_get_a_stable_mock_challenge_then_the_same_failure() {
    // Without a dynamic authenticator (which would decide unlisted authids instead).
    let spec = wampd::config::file::RealmSpec {
        authenticator: None,
        ..fixture::realm_spec()
    };
    let router = fixture::start_with(spec, 1, 0);
    let mut salts = Vec::new();
    for n in 0..2 {
        let mut c = Client::rawsocket(&router.addr, Serializer::Json);
        let (cn, extra) = scram_hello(&mut c, "nobody", n);
        salts.push(get_str(&extra, "salt").unwrap());
        let sp = salted(&extra, fixture::SCRAM_PASSWORD);
        scram_finish(&mut c, "nobody", &cn, &extra, sp);
        c.expect_abort(FAILED);
    }
    assert_eq!(
        salts[0], salts[1],
        "a mock salt must not change between attempts"
    );
}

#[test]
fn a_known_authid_with_a_wrong_nonce_is_refused() {
    let router = fixture::start(1, 0);
    let mut c = Client::rawsocket(&router.addr, Serializer::Json);
    let (cn, extra) = scram_hello(&mut c, "pbkdfer", 9);
    let sp = salted(&extra, fixture::SCRAM_PASSWORD);
    let mut tampered = extra.clone();
    if let Val::Dict(entries) = &mut tampered {
        for (k, v) in entries.iter_mut() {
            if k == "nonce" {
                *v = Val::Str(Cow::Owned(format!("{cn}AAAA")));
            }
        }
    }
    scram_finish(&mut c, "pbkdfer", &cn, &tampered, sp);
    c.expect_abort(FAILED);
}

#[test]
fn handshake_rules() {
    let router = fixture::start(1, 0);
    // Only methods the realm does not offer.
    let mut c = Client::rawsocket(&router.addr, Serializer::Json);
    send_hello(
        &mut c,
        REALM,
        &["anonymous", "made-up"],
        None,
        Val::empty_dict(),
    );
    c.expect_abort("wamp.error.no_matching_auth_method");
    // Anything but AUTHENTICATE after CHALLENGE breaks the protocol.
    let mut c = Client::rawsocket(&router.addr, Serializer::Json);
    send_hello(&mut c, REALM, &["ticket"], Some("tick"), Val::empty_dict());
    assert_eq!(recv_challenge(&mut c).0, "ticket");
    c.send_hello(REALM);
    c.expect_abort("wamp.error.protocol_violation");
    // The client's first choice among offered methods wins.
    let mut c = Client::rawsocket(&router.addr, Serializer::Json);
    send_hello(
        &mut c,
        REALM,
        &["cryptosign", "ticket"],
        Some("tick"),
        Val::empty_dict(),
    );
    assert_eq!(recv_challenge(&mut c).0, "cryptosign");
    // An open realm still welcomes anonymous sessions.
    let mut c = Client::rawsocket(&router.addr, Serializer::Json);
    c.hello("realm1");
    assert!(c.session > 0);
}

fn ticket_login(addr: &str, ticket: &str) -> Result<Val<'static>, String> {
    let mut c = Client::rawsocket(addr, Serializer::Json);
    send_hello(&mut c, REALM, &["ticket"], Some("tick"), Val::empty_dict());
    let frame = c.recv().expect("a reply to HELLO");
    match Message::parse(c.ser, &frame).unwrap() {
        Message::Challenge { .. } => {}
        Message::Abort { reason, .. } => return Err(reason.into_owned()),
        other => panic!("unexpected {other:?}"),
    }
    send_authenticate(&mut c, ticket, Val::empty_dict());
    let frame = c.recv().expect("a reply to AUTHENTICATE");
    match Message::parse(c.ser, &frame).unwrap() {
        Message::Welcome { details, .. } => Ok(common::auth::decoded(details).into_owned()),
        Message::Abort { reason, .. } => Err(reason.into_owned()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn repeated_failures_from_one_address_are_throttled() {
    let router = fixture::start(2, 3);
    let details = ticket_login(&router.addr, fixture::TICKET).expect("a good ticket logs in");
    assert_eq!(get_str(&details, "authmethod").as_deref(), Some("ticket"));
    for _ in 0..3 {
        assert_eq!(ticket_login(&router.addr, "wrong").unwrap_err(), FAILED);
    }
    // Now even the right ticket is refused, on every shard, before any challenge.
    for _ in 0..2 {
        assert_eq!(
            ticket_login(&router.addr, fixture::TICKET).unwrap_err(),
            FAILED
        );
    }
    let mut c = Client::rawsocket(&router.addr, Serializer::Json);
    c.hello("realm1");
    assert!(c.session > 0, "realms without rules are not throttled");
}

/// Sequential calls from one session to a callee on the same shard for `for_`: (calls, worst latency).
fn call_loop(caller: &mut Client, callee: &mut Client, for_: Duration) -> (u64, Duration) {
    let start = Instant::now();
    let (mut n, mut worst) = (0u64, Duration::ZERO);
    while start.elapsed() < for_ && n < 1_000_000 {
        let t0 = Instant::now();
        let req = caller.send_call("com.auth.ping", common::list(vec![Val::UInt(n)]));
        let (inv, _) = callee.invocation();
        callee.send_yield(inv, common::list(vec![Val::UInt(n)]));
        caller.result(req);
        worst = worst.max(t0.elapsed());
        n += 1;
    }
    (n, worst)
}

/// 100 SCRAM (Argon2id) logins in flight on a single shard while another session calls through it:
/// no KDF runs on the shard, so the calls go on at the same rate.
#[test]
fn a_shard_keeps_routing_during_100_scram_logins() {
    let router = fixture::start(1, 0);
    let addr = router.addr.clone();
    let mut callee = Client::join(&addr, Serializer::MsgPack);
    callee.register("com.auth.ping");
    let mut caller = Client::join(&addr, Serializer::MsgPack);
    let window = Duration::from_millis(1500);
    let (before, worst_before) = call_loop(&mut caller, &mut callee, window);

    // The client side derives the key once (the salt is fixed per principal) and shares it.
    let mut probe = Client::rawsocket(&addr, Serializer::Json);
    let (_, extra) = scram_hello(&mut probe, "scrammer", 0);
    let sp = salted(&extra, fixture::SCRAM_PASSWORD);
    drop(probe);
    let go = std::sync::Arc::new(std::sync::Barrier::new(101));
    let logins: Vec<_> = (0..100u64)
        .map(|i| {
            let (addr, go) = (addr.clone(), go.clone());
            std::thread::spawn(move || {
                let mut c = Client::rawsocket(&addr, Serializer::Json);
                let (cn, extra) = scram_hello(&mut c, "scrammer", 1000 + i);
                go.wait(); // all 100 are between CHALLENGE and AUTHENTICATE
                let t0 = Instant::now();
                let am = scram_finish(&mut c, "scrammer", &cn, &extra, sp);
                expect_verified_welcome(&mut c, &am, sp);
                t0.elapsed()
            })
        })
        .collect();
    go.wait();
    let (during, worst_during) = call_loop(&mut caller, &mut callee, window);
    let logins_took = logins
        .into_iter()
        .map(|l| l.join().expect("every login succeeds"))
        .max()
        .unwrap();
    println!(
        "calls/s before: {:.0} (worst {:?}); during 100 SCRAM logins: {:.0} (worst {:?}); slowest login (AUTHENTICATE to WELCOME) {:?}",
        before as f64 / window.as_secs_f64(),
        worst_before,
        during as f64 / window.as_secs_f64(),
        worst_during,
        logins_took
    );
    // A key derivation on the shard (Argon2id, tens of ms each, 100 of them) would stall the calls
    // for seconds; the margin is wide because the 100 client threads share the machine's cores
    // with the router and this loop.
    assert!(
        during * 4 >= before,
        "routing slowed down during logins: {during} vs {before} calls"
    );
    assert!(
        worst_during < Duration::from_millis(500),
        "a call waited {worst_during:?}"
    );
}
