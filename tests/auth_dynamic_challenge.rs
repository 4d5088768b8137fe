//! The dynamic authenticator for WAMP-CRA and cryptosign: the router asks it at HELLO for the
//! secret or key of an authid the realm does not list, then challenges and verifies as for a listed
//! principal. Logins run on the other shard than the authenticator's callee.

mod common;

use std::net::TcpStream;

use ed25519_dalek::{Signer, SigningKey};
use wampd::auth::wampcra;
use wampd::protocol::{codes, Message, Serializer, Val};

use common::auth::{
    self as fixture, decoded, get_str, send_authenticate, send_hello, AUTHENTICATOR,
    AUTH_SERVICE_REALM, REALM,
};
use common::{dict, s, Client};

const FAILED: &str = "wamp.error.authentication_failed";
const DYN_SECRET: &str = "dyn-cra-pw";
const DYN_SALT: &str = "dyn-salt";
const DYN_ITERATIONS: u64 = 100;
const DYN_KEY: [u8; 32] = [0x21; 32];

fn dyn_pubkey() -> String {
    hex::encode(SigningKey::from_bytes(&DYN_KEY).verifying_key().to_bytes())
}

/// One call of the authenticator as it arrived: (realm, authid, details).
type Seen = (Val<'static>, Val<'static>, Val<'static>);

/// The answer the test authenticator gives for `authid`: a dict, or None for an ERROR.
fn answer_for(authid: &str) -> Option<Val<'static>> {
    let role = ("role", s("dynrole"));
    let pubkey = dyn_pubkey();
    Some(
        match authid {
            "dcra" => dict(&[("secret", s(DYN_SECRET)), role]),
            "dcrasalt" => dict(&[
                ("secret", s(DYN_SECRET)),
                ("salt", s(DYN_SALT)),
                ("iterations", Val::UInt(DYN_ITERATIONS)),
                ("keylen", Val::UInt(32)),
                ("role", s("r2")),
                ("authid", s("renamed")),
                ("extra", dict(&[("greeting", s("hi"))])),
            ]),
            "dsign" => dict(&[("pubkey", s(&pubkey)), role]),
            // cryptosign without an authid in HELLO: the authenticator names the login.
            "" => dict(&[("pubkey", s(&pubkey)), role, ("authid", s("keyholder"))]),
            "nosecret" => dict(&[role]),
            "badkey" => dict(&[("pubkey", s("zz")), role]),
            "badsalt" => dict(&[
                ("secret", s(DYN_SECRET)),
                ("salt", s(DYN_SALT)),
                ("keylen", Val::UInt(5000)),
                role,
            ]),
            _ => return None,
        }
        .into_owned(),
    )
}

/// Answers `n` authenticator calls per [`answer_for`]; returns what each call was asked.
fn serve_authenticator(mut svc: Client, n: usize) -> std::thread::JoinHandle<Vec<Seen>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..n {
            let (request, args) = svc.invocation();
            let Some(Val::List(items)) = args.map(decoded) else {
                panic!("positional arguments");
            };
            let [realm, authid, details] = <[Val<'static>; 3]>::try_from(items).expect("3 args");
            let key = authid.as_str().map(|a| a.into_owned()).unwrap_or_default();
            match answer_for(&key) {
                Some(a) => svc.send_yield(request, common::list(vec![a])),
                None => svc.send(&Message::Error {
                    request_type: codes::INVOCATION,
                    request,
                    details: Val::empty_dict(),
                    error: "com.auth.denied".into(),
                    args: None,
                    kwargs: None,
                }),
            }
            seen.push((realm, authid, decoded(details).into_owned()));
        }
        seen
    })
}

/// Connections go to the shards in turn: this opens (and drops) placeholder connections until the
/// next one lands on `shard` of 2.
struct Placer {
    addr: String,
    next: usize,
}

impl Placer {
    fn client_on(&mut self, shard: usize) -> Client {
        while self.next % 2 != shard {
            drop(TcpStream::connect(&self.addr).expect("connect"));
            self.next += 1;
        }
        self.next += 1;
        Client::rawsocket(&self.addr, Serializer::Json)
    }
}

/// The reply to HELLO or AUTHENTICATE: CHALLENGE (method, extra), WELCOME (session, details), or
/// the ABORT reason.
enum Reply {
    Challenge(String, Val<'static>),
    Welcome(u64, Val<'static>),
    Abort(String),
}

fn reply(c: &mut Client) -> Reply {
    c.recv_with(|m| match m {
        Message::Challenge { authmethod, extra } => {
            Reply::Challenge(authmethod.into_owned(), decoded(extra).into_owned())
        }
        Message::Welcome { session, details } => {
            Reply::Welcome(session, decoded(details).into_owned())
        }
        Message::Abort { reason, .. } => Reply::Abort(reason.into_owned()),
        other => panic!("unexpected {other:?}"),
    })
}

fn welcome(r: Reply) -> (u64, Val<'static>) {
    match r {
        Reply::Welcome(id, d) => (id, d),
        Reply::Challenge(m, _) => panic!("expected WELCOME, got CHALLENGE {m}"),
        Reply::Abort(why) => panic!("expected WELCOME, got ABORT {why}"),
    }
}

fn abort(r: Reply) -> String {
    match r {
        Reply::Abort(why) => why,
        _ => panic!("expected ABORT"),
    }
}

/// A WAMP-CRA login with `password` (the key derived when the challenge names a salt).
fn cra_login(c: &mut Client, authid: &str, password: &str) -> Reply {
    send_hello(c, REALM, &["wampcra"], Some(authid), Val::empty_dict());
    let (method, extra) = match reply(c) {
        Reply::Challenge(m, e) => (m, e),
        other => return other,
    };
    assert_eq!(method, "wampcra");
    let challenge = get_str(&extra, "challenge").expect("challenge text");
    let key = match get_str(&extra, "salt") {
        Some(salt) => {
            let it = extra.get("iterations").and_then(|v| v.as_u64()).unwrap();
            let len = extra.get("keylen").and_then(|v| v.as_u64()).unwrap();
            wampcra::derive_key(password, &salt, it as u32, len as u32).into_bytes()
        }
        None => password.as_bytes().to_vec(),
    };
    let sent: serde_json::Value = serde_json::from_str(&challenge).expect("JSON challenge");
    assert_eq!(sent["authprovider"], "dynamic");
    send_authenticate(c, &wampcra::sign(&key, &challenge), Val::empty_dict());
    reply(c)
}

/// A cryptosign login with `key`, naming `authid` when given.
fn cryptosign_login(c: &mut Client, authid: Option<&str>, key: &SigningKey) -> Reply {
    let pubkey = hex::encode(key.verifying_key().to_bytes());
    send_hello(
        c,
        REALM,
        &["cryptosign"],
        authid,
        dict(&[("pubkey", s(&pubkey))]),
    );
    let extra = match reply(c) {
        Reply::Challenge(m, e) => {
            assert_eq!(m, "cryptosign");
            e
        }
        other => return other,
    };
    let challenge = hex::decode(get_str(&extra, "challenge").unwrap()).unwrap();
    let sig = key.sign(&challenge);
    let signature = format!("{}{}", hex::encode(sig.to_bytes()), hex::encode(&challenge));
    send_authenticate(c, &signature, Val::empty_dict());
    reply(c)
}

fn shard_of(session: u64) -> usize {
    ((session - 1) % 2) as usize
}

#[test]
fn wampcra_and_cryptosign_secrets_come_from_the_authenticator_on_another_shard() {
    let router = fixture::start(2, 0);
    let mut placer = Placer {
        addr: router.addr.clone(),
        next: 0,
    };
    // Nobody registered the authenticator yet: refused at HELLO.
    let mut c = placer.client_on(0);
    assert_eq!(abort(cra_login(&mut c, "dcra", DYN_SECRET)), FAILED);

    let mut svc = placer.client_on(1);
    svc.hello(AUTH_SERVICE_REALM);
    svc.register(AUTHENTICATOR);
    let svc_shard = shard_of(svc.session);
    let login = 1 - svc_shard;
    let answers = serve_authenticator(svc, 5);

    let mut c = placer.client_on(login);
    let (id, d) = welcome(cra_login(&mut c, "dcra", DYN_SECRET));
    assert_eq!(shard_of(id), login, "the login ran on the other shard");
    assert_eq!(get_str(&d, "authid").as_deref(), Some("dcra"));
    assert_eq!(get_str(&d, "authrole").as_deref(), Some("dynrole"));
    assert_eq!(get_str(&d, "authmethod").as_deref(), Some("wampcra"));
    assert_eq!(get_str(&d, "authprovider").as_deref(), Some("dynamic"));
    let cra_session = id;

    let mut c = placer.client_on(login);
    let (_, d) = welcome(cra_login(&mut c, "dcrasalt", DYN_SECRET));
    assert_eq!(get_str(&d, "authid").as_deref(), Some("renamed"));
    assert_eq!(get_str(&d, "authrole").as_deref(), Some("r2"));
    let extra = d.get("authextra").expect("authextra");
    assert_eq!(get_str(&extra, "greeting").as_deref(), Some("hi"));

    let key = SigningKey::from_bytes(&DYN_KEY);
    let mut c = placer.client_on(login);
    let (_, d) = welcome(cryptosign_login(&mut c, Some("dsign"), &key));
    assert_eq!(get_str(&d, "authid").as_deref(), Some("dsign"));
    assert_eq!(get_str(&d, "authmethod").as_deref(), Some("cryptosign"));
    assert_eq!(get_str(&d, "authprovider").as_deref(), Some("dynamic"));

    let mut c = placer.client_on(login);
    let (_, d) = welcome(cryptosign_login(&mut c, None, &key));
    assert_eq!(get_str(&d, "authid").as_deref(), Some("keyholder"));

    // A wrong password is refused after AUTHENTICATE (the authenticator was asked).
    let mut c = placer.client_on(login);
    assert_eq!(abort(cra_login(&mut c, "dcra", "wrong")), FAILED);

    // Listed authids never reach the authenticator.
    let mut c = placer.client_on(login);
    let (_, d) = welcome(cra_login_static(&mut c));
    assert_eq!(get_str(&d, "authprovider").as_deref(), Some("static"));

    let seen = answers.join().expect("authenticator thread");
    let methods: Vec<_> = seen
        .iter()
        .map(|(_, _, d)| get_str(d, "authmethod").unwrap())
        .collect();
    assert_eq!(
        methods,
        ["wampcra", "wampcra", "cryptosign", "cryptosign", "wampcra"]
    );
    let (realm, authid, details) = &seen[0];
    assert_eq!(realm.as_str().as_deref(), Some(REALM));
    assert_eq!(authid.as_str().as_deref(), Some("dcra"));
    assert_eq!(
        details.get("session").and_then(|v| v.as_u64()),
        Some(cra_session)
    );
    assert!(get_str(&details.get("transport").unwrap(), "peer")
        .unwrap()
        .starts_with("tcp:127.0.0.1:"));
    let (_, authid, details) = &seen[3];
    assert!(authid.is_null(), "HELLO named no authid: {authid:?}");
    let pubkey = get_str(&details.get("authextra").unwrap(), "pubkey");
    assert_eq!(pubkey, Some(dyn_pubkey()));
}

/// The listed principal `cra` (static secret).
fn cra_login_static(c: &mut Client) -> Reply {
    send_hello(c, REALM, &["wampcra"], Some("cra"), Val::empty_dict());
    let Reply::Challenge(_, extra) = reply(c) else {
        panic!("expected CHALLENGE");
    };
    let challenge = get_str(&extra, "challenge").unwrap();
    let sig = wampcra::sign(fixture::CRA_SECRET.as_bytes(), &challenge);
    send_authenticate(c, &sig, Val::empty_dict());
    reply(c)
}

#[test]
fn unusable_answers_refuse_the_login_without_saying_why() {
    let router = fixture::start(2, 0);
    let mut placer = Placer {
        addr: router.addr.clone(),
        next: 0,
    };
    let mut svc = placer.client_on(0);
    svc.hello(AUTH_SERVICE_REALM);
    svc.register(AUTHENTICATOR);
    let answers = serve_authenticator(svc, 5);
    let key = SigningKey::from_bytes(&DYN_KEY);
    let refused = [
        // An ERROR from the authenticator.
        cra_login(&mut placer.client_on(1), "denied", DYN_SECRET),
        // No secret in the answer.
        cra_login(&mut placer.client_on(1), "nosecret", DYN_SECRET),
        // Key derivation parameters out of range.
        cra_login(&mut placer.client_on(1), "badsalt", DYN_SECRET),
        // A public key that is not one.
        cryptosign_login(&mut placer.client_on(1), Some("badkey"), &key),
        // The client signs with another key than the one the authenticator named.
        cryptosign_login(
            &mut placer.client_on(1),
            Some("dsign"),
            &SigningKey::from_bytes(&[0x33; 32]),
        ),
    ];
    for r in refused {
        assert_eq!(abort(r), FAILED);
    }
    assert_eq!(answers.join().expect("authenticator thread").len(), 5);
}
