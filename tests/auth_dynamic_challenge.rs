//! The dynamic authenticator for WAMP-CRA, SCRAM (both dialects) and cryptosign: the router asks it
//! at HELLO for the secret, credential or key of an authid the realm does not list, then challenges
//! and verifies as for a listed principal. Logins run on the other shard than the authenticator's
//! callee.

mod common;

use std::net::TcpStream;

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};
use wampd::auth::wampcra;
use wampd::protocol::{codes, Message, Serializer, Val};

use common::auth::{
    self as fixture, b64, decoded, get_str, hmac, send_authenticate, send_hello, AUTHENTICATOR,
    AUTH_SERVICE_REALM, REALM,
};
use common::{dict, s, Client};

const FAILED: &str = "wamp.error.authentication_failed";
const DYN_SECRET: &str = "dyn-cra-pw";
const DYN_SALT: &str = "dyn-salt";
const DYN_ITERATIONS: u64 = 100;
const DYN_KEY: [u8; 32] = [0x21; 32];

const DYN_SCRAM_PW: &str = "dyn-scram-pw";
const SCRAM_SALT: [u8; 16] = [0x5c; 16];
const PBKDF2_ITERATIONS: u32 = 64;
/// Argon2id costs small enough for a test.
const ARGON2_ITERATIONS: u32 = 1;
const ARGON2_MEMORY: u32 = 64;

/// An owned string value.
fn t(v: &str) -> Val<'static> {
    Val::Str(v.to_string().into())
}

/// SaltedPassword as the KDF gives it (32 bytes).
fn kdf(kdf: &str, password: &str, salt: &[u8], iterations: u32, memory: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    match kdf {
        "argon2id13" | "argon2id-13" => {
            let params = argon2::Params::new(memory, iterations, 1, Some(32)).unwrap();
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(password.as_bytes(), salt, &mut out)
                .unwrap();
        }
        "pbkdf2" => pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out),
        other => panic!("unexpected kdf {other}"),
    }
    out
}

/// A Crossbar SCRAM credential: hex salt, KDF parameters, hex StoredKey and ServerKey from the
/// SaltedPassword as the client will feed it to HMAC.
fn crossbar_credential(
    kdf_name: &str,
    salted: &[u8],
    iterations: u32,
    memory: Option<u32>,
) -> Vec<(&'static str, Val<'static>)> {
    let client_key = hmac(salted, b"Client Key");
    let stored: [u8; 32] = Sha256::digest(client_key).into();
    let mut d = vec![
        ("kdf", t(kdf_name)),
        ("salt", t(&hex::encode(SCRAM_SALT))),
        ("iterations", Val::UInt(iterations.into())),
        ("stored-key", t(&hex::encode(stored))),
        ("server-key", t(&hex::encode(hmac(salted, b"Server Key")))),
    ];
    if let Some(m) = memory {
        d.push(("memory", Val::UInt(m.into())));
    }
    d
}

/// The PBKDF2 credential: PBKDF2's output is fed to HMAC as it is in both dialects.
fn pbkdf2_credential() -> Vec<(&'static str, Val<'static>)> {
    let salted = kdf("pbkdf2", DYN_SCRAM_PW, &SCRAM_SALT, PBKDF2_ITERATIONS, 0);
    crossbar_credential("pbkdf2", &salted, PBKDF2_ITERATIONS, None)
}

/// The Argon2id credential as autobahn derives it (`scram` dialect: the output's unpadded base64).
fn argon2_autobahn_credential() -> Vec<(&'static str, Val<'static>)> {
    let raw = kdf(
        "argon2id13",
        DYN_SCRAM_PW,
        &SCRAM_SALT,
        ARGON2_ITERATIONS,
        ARGON2_MEMORY,
    );
    let salted = base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw);
    crossbar_credential(
        "argon2id-13",
        salted.as_bytes(),
        ARGON2_ITERATIONS,
        Some(ARGON2_MEMORY),
    )
}

/// `base` with `key` replaced by `value` (removed for None), plus a role.
fn altered(
    mut base: Vec<(&'static str, Val<'static>)>,
    key: &'static str,
    value: Option<Val<'static>>,
) -> Val<'static> {
    base.retain(|(k, _)| *k != key);
    base.extend(value.map(|v| (key, v)));
    base.push(("role", s("dynrole")));
    dict(&base).into_owned()
}

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
            // SCRAM, Crossbar's credential shape.
            "dscram" => altered(pbkdf2_credential(), "extra", None),
            "dscramab" => {
                let mut c = argon2_autobahn_credential();
                c.push(("authid", s("scrammed")));
                altered(c, "extra", Some(dict(&[("greeting", s("scram"))])))
            }
            // SCRAM, a password the router derives the keys from.
            "dscrampw" => dict(&[
                ("password", s(DYN_SCRAM_PW)),
                ("kdf", s("argon2id13")),
                ("iterations", Val::UInt(ARGON2_ITERATIONS.into())),
                ("memory", Val::UInt(ARGON2_MEMORY.into())),
                role,
            ]),
            "dscrampbkdf2" => dict(&[
                ("password", s(DYN_SCRAM_PW)),
                ("kdf", s("pbkdf2")),
                ("salt", t(&hex::encode(SCRAM_SALT))),
                ("iterations", Val::UInt(PBKDF2_ITERATIONS.into())),
                role,
            ]),
            // Unusable SCRAM answers.
            "s-badhex" => altered(pbkdf2_credential(), "stored-key", Some(t(&"zz".repeat(32)))),
            "s-shortkey" => altered(pbkdf2_credential(), "server-key", Some(s("abcd"))),
            "s-noserver" => altered(pbkdf2_credential(), "server-key", None),
            "s-nosalt" => altered(pbkdf2_credential(), "salt", None),
            "s-shortsalt" => altered(pbkdf2_credential(), "salt", Some(s("0102"))),
            "s-kdf" => altered(pbkdf2_credential(), "kdf", Some(s("scrypt"))),
            "s-iterations" => altered(pbkdf2_credential(), "iterations", Some(Val::UInt(1 << 40))),
            "s-nomemory" => altered(argon2_autobahn_credential(), "memory", None),
            "s-both" => altered(pbkdf2_credential(), "password", Some(s("pw"))),
            "s-bigmemory" => dict(&[
                ("password", s(DYN_SCRAM_PW)),
                ("kdf", s("argon2id13")),
                ("memory", Val::UInt(4_000_000)),
                role,
            ]),
            "s-nokdf" => dict(&[("password", s(DYN_SCRAM_PW)), role]),
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
    /// Places connections on a router's two shards in turn (connection n lands on shard n % 2).
    fn new(router: &common::InProcess) -> Self {
        Placer {
            addr: router.addr.clone(),
            next: 0,
        }
    }

    /// A session on `shard` of the authenticator's realm, with the authenticator registered.
    fn authenticator_on(&mut self, shard: usize) -> Client {
        let mut svc = self.client_on(shard);
        svc.hello(AUTH_SERVICE_REALM);
        svc.register(AUTHENTICATOR);
        svc
    }

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
    let mut placer = Placer::new(&router);
    // Nobody registered the authenticator yet: refused at HELLO.
    let mut c = placer.client_on(0);
    assert_eq!(abort(cra_login(&mut c, "dcra", DYN_SECRET)), FAILED);

    let svc = placer.authenticator_on(1);
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
    let mut placer = Placer::new(&router);
    let svc = placer.authenticator_on(0);
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

/// A SCRAM login in `dialect` (`wamp-scram` or `scram`) with `password`, computed here from the
/// CHALLENGE as a client would; a WELCOME's server signature is checked before it is returned.
fn scram_login(c: &mut Client, dialect: &str, authid: &str, password: &str) -> Reply {
    let client_nonce = b64(authid.as_bytes());
    send_hello(
        c,
        REALM,
        &[dialect],
        Some(authid),
        dict(&[("nonce", s(&client_nonce))]),
    );
    let extra = match reply(c) {
        Reply::Challenge(m, e) => {
            assert_eq!(m, dialect);
            e
        }
        other => return other,
    };
    let num = |k: &str| extra.get(k).and_then(|v| v.as_u64()).map(|n| n as u32);
    let kdf_name = get_str(&extra, "kdf").expect("kdf");
    let salt_b64 = get_str(&extra, "salt").expect("salt");
    let salt = base64::engine::general_purpose::STANDARD
        .decode(&salt_b64)
        .unwrap();
    let iterations = num("iterations").expect("iterations");
    let raw = kdf(
        &kdf_name,
        password,
        &salt,
        iterations,
        num("memory").unwrap_or(0),
    );
    let (salted, cbind) = match (dialect, kdf_name.as_str()) {
        ("scram", "argon2id-13") => (
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(raw)
                .into_bytes(),
            "",
        ),
        ("scram", "pbkdf2") => (raw.to_vec(), ""),
        ("wamp-scram", "argon2id13" | "pbkdf2") => (raw.to_vec(), "biws"),
        other => panic!("{other:?}: the KDF is named in the dialect's spelling"),
    };
    let nonce = get_str(&extra, "nonce").unwrap();
    assert!(nonce.starts_with(&client_nonce));
    let auth_message = format!(
        "n={authid},r={client_nonce},r={nonce},s={salt_b64},i={iterations},c={cbind},r={nonce}"
    );
    let client_key = hmac(&salted, b"Client Key");
    let signature = hmac(&Sha256::digest(client_key), auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(signature)
        .map(|(a, b)| a ^ b)
        .collect();
    send_authenticate(c, &b64(&proof), dict(&[("nonce", s(&nonce))]));
    let r = reply(c);
    if let Reply::Welcome(_, d) = &r {
        let want = b64(&hmac(
            &hmac(&salted, b"Server Key"),
            auth_message.as_bytes(),
        ));
        let extra = d.get("authextra").expect("authextra");
        let key = match dialect {
            "scram" => "scram_server_signature",
            _ => "verifier",
        };
        assert_eq!(get_str(&extra, key), Some(want), "server signature");
    }
    r
}

#[test]
fn scram_credentials_come_from_the_authenticator_in_both_dialects() {
    let router = fixture::start(2, 0);
    let mut placer = Placer::new(&router);
    // Nobody registered the authenticator yet: refused at HELLO.
    let mut c = placer.client_on(0);
    assert_eq!(
        abort(scram_login(&mut c, "scram", "dscram", DYN_SCRAM_PW)),
        FAILED
    );

    let svc = placer.authenticator_on(1);
    let login = 1 - shard_of(svc.session);
    let logins = [
        // Crossbar's credential (PBKDF2: the same keys serve both dialects).
        ("wamp-scram", "dscram", DYN_SCRAM_PW, Some("dscram")),
        ("scram", "dscram", DYN_SCRAM_PW, Some("dscram")),
        // Crossbar's credential as autobahn derives it for Argon2id, renaming the login.
        ("scram", "dscramab", DYN_SCRAM_PW, Some("scrammed")),
        // A password whose keys the router derives.
        ("wamp-scram", "dscrampw", DYN_SCRAM_PW, Some("dscrampw")),
        ("scram", "dscrampw", DYN_SCRAM_PW, Some("dscrampw")),
        (
            "wamp-scram",
            "dscrampbkdf2",
            DYN_SCRAM_PW,
            Some("dscrampbkdf2"),
        ),
        // Wrong passwords: refused after AUTHENTICATE.
        ("wamp-scram", "dscram", "wrong", None),
        ("scram", "dscramab", "wrong", None),
        ("scram", "dscrampw", "wrong", None),
    ];
    let answers = serve_authenticator(svc, logins.len());
    for (dialect, authid, password, welcomed) in logins {
        let mut c = placer.client_on(login);
        let r = scram_login(&mut c, dialect, authid, password);
        let Some(want) = welcomed else {
            assert_eq!(abort(r), FAILED, "{dialect} {authid} with a wrong password");
            continue;
        };
        let (id, d) = welcome(r);
        assert_eq!(shard_of(id), login, "the login ran on the other shard");
        assert_eq!(get_str(&d, "authid").as_deref(), Some(want));
        assert_eq!(get_str(&d, "authrole").as_deref(), Some("dynrole"));
        assert_eq!(get_str(&d, "authmethod").as_deref(), Some(dialect));
        assert_eq!(get_str(&d, "authprovider").as_deref(), Some("dynamic"));
        if authid == "dscramab" {
            let extra = d.get("authextra").expect("authextra");
            assert_eq!(get_str(&extra, "greeting").as_deref(), Some("scram"));
        }
    }
    let seen = answers.join().expect("authenticator thread");
    let methods: Vec<_> = seen
        .iter()
        .map(|(_, _, d)| get_str(d, "authmethod").unwrap())
        .collect();
    let want: Vec<_> = logins.iter().map(|l| l.0).collect();
    assert_eq!(methods, want);
    let nonce = get_str(&seen[0].2.get("authextra").unwrap(), "nonce");
    assert_eq!(
        nonce,
        Some(b64(b"dscram")),
        "HELLO's authextra is passed on"
    );

    // Listed SCRAM principals never reach the authenticator (it answers no more calls).
    let mut c = placer.client_on(login);
    let (_, d) = welcome(scram_login(
        &mut c,
        "wamp-scram",
        "pbkdfer",
        fixture::SCRAM_PASSWORD,
    ));
    assert_eq!(get_str(&d, "authprovider").as_deref(), Some("static"));
}

#[test]
fn unusable_scram_answers_refuse_the_login_without_saying_why() {
    let router = fixture::start(2, 0);
    let mut placer = Placer::new(&router);
    let svc = placer.authenticator_on(0);
    let cases = [
        // An ERROR from the authenticator.
        "denied",
        // Crossbar's shape, broken.
        "s-badhex",
        "s-shortkey",
        "s-noserver",
        "s-nosalt",
        "s-shortsalt",
        "s-kdf",
        "s-iterations",
        "s-nomemory",
        // Both shapes at once; a password without a KDF; more memory than the router derives with.
        "s-both",
        "s-nokdf",
        "s-bigmemory",
    ];
    let answers = serve_authenticator(svc, cases.len() * 2);
    for authid in cases {
        for dialect in ["wamp-scram", "scram"] {
            let r = scram_login(&mut placer.client_on(1), dialect, authid, DYN_SCRAM_PW);
            assert_eq!(abort(r), FAILED, "{dialect} {authid}");
        }
    }
    assert_eq!(
        answers.join().expect("authenticator thread").len(),
        cases.len() * 2
    );
    // A HELLO without a nonce is refused.
    let mut c = placer.client_on(1);
    send_hello(
        &mut c,
        REALM,
        &["wamp-scram"],
        Some("dscram"),
        Val::empty_dict(),
    );
    assert_eq!(abort(reply(&mut c)), FAILED);
}
