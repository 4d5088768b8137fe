//! Decisions of the auth module driven directly, including those that need a TLS connection (the
//! transport fills [`PeerInfo`]; here it is filled by hand).

use std::borrow::Cow;

use ed25519_dalek::{Signer, SigningKey};

use super::*;
use crate::config::file::{TlsPrincipalSpec, WampCraSpec};
use crate::transport::TlsInfo;

const CERT_SHA: [u8; 32] = [0xab; 32];

fn spec() -> RealmSpec {
    let signer = SigningKey::from_bytes(&[9; 32]);
    RealmSpec {
        name: "r".into(),
        principal: vec![
            PrincipalSpec {
                authid: "device-1".into(),
                role: "device".into(),
                tls: Some(TlsPrincipalSpec::default()),
                ..Default::default()
            },
            PrincipalSpec {
                authid: "pinned".into(),
                role: "device".into(),
                tls: Some(TlsPrincipalSpec {
                    fingerprint: Some(
                        hex::encode_upper(CERT_SHA)
                            .as_bytes()
                            .chunks(2)
                            .map(|c| std::str::from_utf8(c).unwrap())
                            .collect::<Vec<_>>()
                            .join(":"),
                    ),
                }),
                ..Default::default()
            },
            PrincipalSpec {
                authid: "signer".into(),
                role: "backend".into(),
                cryptosign: Some(vec![hex::encode(signer.verifying_key().to_bytes())]),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

fn auth() -> Auth {
    Auth::build(&[spec()], AuthLimits::default()).unwrap()
}

fn details(
    methods: &[&str],
    authid: Option<&str>,
    extra: Vec<(&'static str, Val<'static>)>,
) -> Val<'static> {
    let mut d = vec![
        (
            Cow::Borrowed("authmethods"),
            Val::List(methods.iter().map(|m| text(m)).collect()),
        ),
        (Cow::Borrowed("authextra"), dict(extra)),
    ];
    if let Some(a) = authid {
        d.push((Cow::Borrowed("authid"), text(a)));
    }
    Val::Dict(d)
}

fn tls_peer(cn: &str, sha: [u8; 32], binding: Option<Vec<u8>>) -> PeerInfo {
    PeerInfo {
        addr: Some("127.0.0.1:10001".parse().unwrap()),
        tls: Some(TlsInfo {
            client_cn: Some(cn.into()),
            client_sha256: Some(sha),
            channel_binding: binding,
        }),
    }
}

fn welcomed(h: Hello) -> Authenticated {
    match h {
        Hello::Welcome(a) => a,
        Hello::Challenge { authmethod, .. } => panic!("challenged with {authmethod}"),
        Hello::Refuse(r) => panic!("refused: {}", r.reason),
        Hello::Ask(_) => panic!("asked the dynamic authenticator"),
    }
}

fn refused(h: Hello) -> Refusal {
    match h {
        Hello::Refuse(r) => r,
        _ => panic!("not refused"),
    }
}

#[test]
fn tls_principals_are_named_by_the_certificate() {
    let a = auth();
    let who = welcomed(a.hello(
        "r",
        &details(&["tls"], None, vec![]),
        1,
        &tls_peer("device-1", [1; 32], None),
    ));
    assert_eq!(
        (
            who.authid.as_str(),
            who.authrole.as_str(),
            who.authmethod.as_str()
        ),
        ("device-1", "device", "tls")
    );
    // A pinned principal needs exactly that certificate.
    welcomed(a.hello(
        "r",
        &details(&["tls"], None, vec![]),
        1,
        &tls_peer("pinned", CERT_SHA, None),
    ));
    let r = refused(a.hello(
        "r",
        &details(&["tls"], None, vec![]),
        1,
        &tls_peer("pinned", [1; 32], None),
    ));
    assert_eq!(r.reason, errors::AUTHENTICATION_FAILED);
    // An authid other than the certificate's, or a CN nobody configured.
    refused(a.hello(
        "r",
        &details(&["tls"], Some("pinned"), vec![]),
        1,
        &tls_peer("device-1", [1; 32], None),
    ));
    refused(a.hello(
        "r",
        &details(&["tls"], None, vec![]),
        1,
        &tls_peer("stranger", [1; 32], None),
    ));
    // Without TLS the method is not on offer at all.
    let r = refused(a.hello(
        "r",
        &details(&["tls"], None, vec![]),
        1,
        &PeerInfo::default(),
    ));
    assert_eq!(r.reason, errors::NO_MATCHING_AUTH_METHOD);
}

/// Signs a cryptosign challenge as autobahn does: hex(signature ‖ data), data = challenge XOR binding.
fn sign(extra: &Val<'_>, key: &SigningKey, binding: Option<[u8; 32]>) -> String {
    let challenge =
        hex::decode(extra.get("challenge").unwrap().as_str().unwrap().as_ref()).unwrap();
    let mut data: Vec<u8> = challenge.clone();
    if let Some(b) = binding {
        data.iter_mut().zip(b).for_each(|(d, b)| *d ^= b);
    }
    let sig = key.sign(&data);
    format!("{}{}", hex::encode(sig.to_bytes()), hex::encode(&data))
}

fn cryptosign_login(
    a: &Auth,
    peer: &PeerInfo,
    key: &SigningKey,
    requested: Option<&str>,
    bind_with: Option<[u8; 32]>,
) -> Result<Authenticated, Refusal> {
    let mut extra = vec![("pubkey", text(&hex::encode(key.verifying_key().to_bytes())))];
    if let Some(r) = requested {
        extra.push(("channel_binding", text(r)));
    }
    match a.hello("r", &details(&["cryptosign"], None, extra), 1, peer) {
        Hello::Challenge { extra, pending, .. } => {
            let sig = sign(&extra, key, bind_with);
            match a.authenticate(pending, &sig, &Val::empty_dict(), 1, peer) {
                Verdict::Welcome(who) => Ok(who),
                Verdict::Refuse(r) => Err(r),
                Verdict::Ask(_) => panic!("no dynamic authenticator here"),
            }
        }
        Hello::Refuse(r) => Err(r),
        Hello::Welcome(_) => panic!("welcomed without a challenge"),
        Hello::Ask(_) => panic!("no dynamic authenticator here"),
    }
}

#[test]
fn cryptosign_with_and_without_tls_channel_binding() {
    let a = auth();
    let key = SigningKey::from_bytes(&[9; 32]);
    let plain = PeerInfo::default();
    let who = cryptosign_login(&a, &plain, &key, None, None).unwrap();
    assert_eq!(who.authid, "signer");
    // An unknown key, or a signature over something else, fails alike.
    assert!(cryptosign_login(&a, &plain, &SigningKey::from_bytes(&[8; 32]), None, None).is_err());
    assert!(cryptosign_login(&a, &plain, &key, None, Some([1; 32])).is_err());
    // Binding requested where there is no TLS: refused at HELLO.
    assert!(cryptosign_login(&a, &plain, &key, Some("tls-unique"), None).is_err());
    // On TLS: the signed data must be bound to this connection.
    let binding = [7u8; 32];
    let tls = tls_peer("x", [0; 32], Some(binding.to_vec()));
    cryptosign_login(&a, &tls, &key, Some("tls-unique"), Some(binding)).unwrap();
    assert!(cryptosign_login(&a, &tls, &key, Some("tls-unique"), Some([6; 32])).is_err());
    assert!(cryptosign_login(&a, &tls, &key, Some("tls-unique"), None).is_err());
    // A binding of another length is hashed to 32 bytes.
    let tls12 = tls_peer("x", [0; 32], Some(vec![5; 12]));
    cryptosign_login(&a, &tls12, &key, Some("tls-unique"), Some(sha256(&[5; 12]))).unwrap();
}

#[test]
fn wampcra_keys_match_autobahn() {
    // Values autobahn-python's derive_key and compute_wcs produce for these inputs.
    let key = wampcra::derive_key("cra-secret2", "salt123", 100, 32);
    assert_eq!(key, "RiVQbPCdaOwB8moNRyE42F2ttDRFM988shQ2dKMEY2g=");
    assert_eq!(
        wampcra::sign(key.as_bytes(), "{\"x\":1}"),
        "ngbWTS7yh8Xc9gk+TtQnGnU5XRJgpzOxMqo4Y2Jo7bw="
    );
    assert_eq!(
        wampcra::sign(b"cra-secret", "{\"x\":1}"),
        "X7d2eQmp5BUqwmNMTJMGegVPMQKdfL9+OAu2ibEcl1s="
    );
    let bad = WampCraSpec {
        secret: "s".into(),
        salt: Some("x".into()),
        iterations: Some(0),
        keylen: None,
    };
    assert!(wampcra::Key::derive(&bad).is_err());
}

#[test]
fn bad_keys_are_load_errors() {
    let mut s = spec();
    s.principal[2].cryptosign = Some(vec!["00ff".into()]);
    let err = Auth::build(&[s], AuthLimits::default())
        .err()
        .expect("a short key is refused");
    assert!(err.contains("signer"), "{err}");
}

#[test]
fn anonymous_needs_an_anonymous_role() {
    let a = auth();
    let r = refused(a.hello("r", &details(&[], None, vec![]), 1, &PeerInfo::default()));
    assert_eq!(r.reason, errors::NO_MATCHING_AUTH_METHOD);
    let mut s = spec();
    s.anonymous_role = Some("guest".into());
    let a = Auth::build(&[s], AuthLimits::default()).unwrap();
    let who = welcomed(a.hello("r", &details(&[], None, vec![]), 7, &PeerInfo::default()));
    assert_eq!(
        (who.authid.as_str(), who.authrole.as_str()),
        ("anonymous-7", "guest")
    );
    // A realm without rules: anonymous with role "anonymous".
    let who = welcomed(a.hello("open", &details(&[], None, vec![]), 8, &PeerInfo::default()));
    assert_eq!(who.authrole, "anonymous");
}

#[test]
fn dynamic_answers_must_carry_the_credentials_of_their_method() {
    use super::dynamic::{judge, AskCtx, Decided};
    let ctx = |method| AskCtx {
        realm: "r".into(),
        authid: "who".into(),
        method,
        authextra: None,
    };
    let answer = |d: Val<'static>| Val::List(vec![d]);
    let cra = ctx(wampcra::METHOD);
    // A bare role settles a ticket login, but a challenge method needs the secret.
    assert!(judge(&cra, Some(&answer(text("role1")))).is_err());
    assert!(judge(&cra, Some(&answer(dict(vec![("role", text("r1"))])))).is_err());
    assert!(judge(&cra, None).is_err());
    let plain = dict(vec![("role", text("r1")), ("secret", text("pw"))]);
    match judge(&cra, Some(&answer(plain))) {
        Ok(Decided::Challenge(g)) => assert!(!g.needs_derivation()),
        _ => panic!("a plain secret is challenged at once"),
    }
    let salted = dict(vec![
        ("role", text("r1")),
        ("secret", text("pw")),
        ("salt", text("s")),
        ("iterations", Val::UInt(10)),
    ]);
    let Ok(Decided::Challenge(mut g)) = judge(&cra, Some(&answer(salted))) else {
        panic!("a salted secret is accepted");
    };
    assert!(g.needs_derivation());
    assert!(g.derive());
    assert!(!g.needs_derivation());
    let bad_iterations = dict(vec![
        ("role", text("r1")),
        ("secret", text("pw")),
        ("salt", text("s")),
        ("iterations", text("many")),
    ]);
    assert!(judge(&cra, Some(&answer(bad_iterations))).is_err());
    let sign = ctx(cryptosign::METHOD);
    let key = hex::encode(SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes());
    let good = dict(vec![("role", text("r1")), ("pubkey", text(&key))]);
    assert!(matches!(
        judge(&sign, Some(&answer(good))),
        Ok(Decided::Challenge(_))
    ));
    let empty = dict(vec![("role", text("r1")), ("pubkey", Val::List(vec![]))]);
    assert!(judge(&sign, Some(&answer(empty))).is_err());
    let no_role = dict(vec![("pubkey", text(&key))]);
    assert!(judge(&sign, Some(&answer(no_role))).is_err());
}

/// The client's side of a SCRAM CHALLENGE: the ClientProof and the AuthMessage.
fn scram_client(
    dialect: scram::Dialect,
    authid: &str,
    client_nonce: &str,
    extra: &Val<'_>,
    salted: &[u8],
) -> (String, String) {
    let get = |k: &str| {
        extra
            .get(k)
            .map(|v| {
                v.as_str()
                    .map_or_else(|| v.as_u64().unwrap().to_string(), Cow::into_owned)
            })
            .unwrap()
    };
    let cbind = match dialect {
        scram::Dialect::Spec => "biws",
        scram::Dialect::Autobahn => "",
    };
    let nonce = get("nonce");
    let auth_message = format!(
        "n={authid},r={client_nonce},r={nonce},s={},i={},c={cbind},r={nonce}",
        get("salt"),
        get("iterations")
    );
    let client_key = hmac_sha256(salted, b"Client Key");
    let signature = hmac_sha256(&sha256(&client_key), auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(signature)
        .map(|(a, b)| a ^ b)
        .collect();
    (b64(&proof), auth_message)
}

#[test]
fn dynamic_scram_challenges_with_the_granted_credentials_in_both_dialects() {
    use super::dynamic::Decided;
    use super::scram::{salted_password, Dialect, Keys};
    use crate::config::file::{Kdf, ProcedureRef};
    let mut s = spec();
    s.authenticator = Some(ProcedureRef {
        procedure: "com.auth".into(),
        realm: "r".into(),
        timeout: None,
    });
    let a = Auth::build(&[s], AuthLimits::default()).unwrap();
    let peer = PeerInfo::default();
    let salt = [7u8; 16];
    let pbkdf2 = salted_password(Kdf::Pbkdf2, b"pw", &salt, 50, 0).unwrap();
    let keys = Keys::from_salted(&pbkdf2);
    let crossbar = dict(vec![
        ("role", text("dynrole")),
        ("kdf", text("pbkdf2")),
        ("salt", text(&hex::encode(salt))),
        ("iterations", Val::UInt(50)),
        ("stored-key", text(&hex::encode(keys.stored))),
        ("server-key", text(&hex::encode(keys.server))),
        ("authid", text("renamed")),
    ]);
    let password = dict(vec![
        ("role", text("dynrole")),
        ("password", text("pw")),
        ("kdf", text("argon2id13")),
        ("iterations", Val::UInt(1)),
        ("memory", Val::UInt(64)),
    ]);
    for dialect in [Dialect::Spec, Dialect::Autobahn] {
        for (answer, derived) in [(&crossbar, false), (&password, true)] {
            for good in [true, false] {
                let nonce = b64(b"client-nonce");
                let d = details(
                    &[dialect.method()],
                    Some("dyn"),
                    vec![("nonce", text(&nonce))],
                );
                let Hello::Ask(ask) = a.hello("r", &d, 5, &peer) else {
                    panic!("an unlisted authid goes to the authenticator");
                };
                let Val::List(args) = &ask.args else {
                    panic!("args")
                };
                let method = args[2].get("authmethod").and_then(|m| m.as_str());
                assert_eq!(method.as_deref(), Some(dialect.method()));
                let judged = a.judge(&ask.ctx, Some(&Val::List(vec![answer.clone()])), &peer);
                let Ok(Decided::Challenge(mut g)) = judged else {
                    panic!("the answer is usable");
                };
                assert_eq!(g.needs_derivation(), derived);
                assert!(g.derive());
                let Hello::Challenge {
                    authmethod,
                    extra,
                    pending,
                } = a.challenge_granted(&ask.ctx, g, 5, &peer)
                else {
                    panic!("challenged");
                };
                assert_eq!(authmethod, dialect.method());
                let salted = if derived {
                    let salt = unb64(&extra.get("salt").unwrap().as_str().unwrap()).unwrap();
                    let kdf = extra.get("kdf").unwrap().as_str().unwrap().into_owned();
                    assert_eq!(scram::kdf_from_name(&kdf), Some(Kdf::Argon2id13));
                    let raw = salted_password(Kdf::Argon2id13, b"pw", &salt, 1, 64).unwrap();
                    match dialect {
                        Dialect::Spec => raw.to_vec(),
                        Dialect::Autobahn => base64::engine::general_purpose::STANDARD_NO_PAD
                            .encode(raw)
                            .into_bytes(),
                    }
                } else {
                    pbkdf2.to_vec()
                };
                let client_salted = if good { salted.clone() } else { vec![0u8; 32] };
                let (proof, am) = scram_client(dialect, "dyn", &nonce, &extra, &client_salted);
                let auth_extra = dict(vec![("nonce", extra.get("nonce").unwrap())]);
                match a.authenticate(pending, &proof, &auth_extra, 5, &peer) {
                    Verdict::Welcome(who) if good => {
                        let want = if derived { "dyn" } else { "renamed" };
                        assert_eq!(who.authid, want);
                        assert_eq!(who.authrole, "dynrole");
                        assert_eq!(who.authprovider, dynamic::PROVIDER);
                        let server_key = hmac_sha256(&salted, b"Server Key");
                        let sig = b64(&hmac_sha256(&server_key, am.as_bytes()));
                        for k in ["verifier", "scram_server_signature"] {
                            let got = who.authextra.iter().find(|(n, _)| n == k);
                            let got = got.and_then(|(_, v)| v.as_str());
                            assert_eq!(got.as_deref(), Some(sig.as_str()), "{k}");
                        }
                    }
                    Verdict::Refuse(r) if !good => assert_eq!(r, Refusal::FAILED),
                    _ => panic!("{dialect:?} derived={derived} good={good}: wrong verdict"),
                }
            }
        }
    }
    // A HELLO without a nonce is refused before the authenticator is asked.
    let d = details(&["wamp-scram"], Some("dyn"), vec![]);
    assert_eq!(refused(a.hello("r", &d, 6, &peer)), Refusal::FAILED);
}

/// A WAMP-CRA challenge for an authid the realm does not list looks like a listed principal's: the
/// same keys, a role of the realm, a salt with the realm's parameters when its secrets are salted,
/// the same salt on every attempt, and nothing that a signature could answer.
#[test]
fn a_mock_wampcra_challenge_looks_like_a_real_one() {
    let mut s = spec();
    s.principal.push(PrincipalSpec {
        authid: "salted".into(),
        role: "operator".into(),
        wampcra: Some(WampCraSpec {
            secret: "pw".into(),
            salt: Some("realsalt".into()),
            iterations: Some(100),
            keylen: Some(32),
        }),
        ..Default::default()
    });
    let a = Auth::build(&[s], AuthLimits::default()).unwrap();
    let peer = PeerInfo::default();
    let challenge =
        |authid: &str| match a.hello("r", &details(&["wampcra"], Some(authid), vec![]), 7, &peer) {
            Hello::Challenge { extra, .. } => extra,
            _ => panic!("no challenge for {authid}"),
        };
    let keys = |v: &Val<'_>| {
        let mut k: Vec<String> = match v {
            Val::Dict(d) => d.iter().map(|(k, _)| k.to_string()).collect(),
            _ => panic!(),
        };
        k.sort();
        k
    };
    let real = challenge("salted");
    let mock = challenge("nobody");
    assert_eq!(keys(&real), keys(&mock));
    let field = |v: &Val<'_>, k: &str| v.get(k).map(|x| format!("{x:?}"));
    for k in ["iterations", "keylen"] {
        assert_eq!(field(&real, k), field(&mock, k), "{k}");
    }
    assert_ne!(field(&real, "salt"), field(&mock, "salt"));
    assert_eq!(
        field(&mock, "salt"),
        field(&challenge("nobody"), "salt"),
        "stable"
    );
    assert_ne!(
        field(&mock, "salt"),
        field(&challenge("other"), "salt"),
        "per authid"
    );
    let text = mock
        .get("challenge")
        .and_then(|c| c.as_str().map(|s| s.into_owned()))
        .unwrap();
    assert!(text.contains("\"authrole\":\"operator\""), "{text}");
}
