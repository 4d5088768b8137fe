//! Shared by the authentication tests: one realm with a principal per method, and a router started
//! in process with those rules.

use wampd::config::file::{
    Action, Kdf, MatchKind, PermissionSpec, PrincipalSpec, ProcedureRef, RealmSpec, RoleSpec,
    ScramSpec, WampCraSpec,
};
use wampd::config::{AuthLimits, Config};

use super::InProcess;

pub const REALM: &str = "authrealm";
/// The realm where the dynamic authenticator of [`REALM`] is registered.
pub const AUTH_SERVICE_REALM: &str = "authsvc";
pub const AUTHENTICATOR: &str = "com.auth.authenticate";
pub const TICKET: &str = "tick-secret";
pub const CRA_SECRET: &str = "cra-secret";
pub const CRA_SALTED_SECRET: &str = "cra-secret2";
pub const CRA_SALT: &str = "salt123";
pub const SCRAM_PASSWORD: &str = "scram-pw";
/// Small KDF costs keep the tests fast; production defaults are far higher.
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_MEMORY: u32 = 1024;
pub const PBKDF2_ITERATIONS: u32 = 1000;
/// The Ed25519 secret key of principal `signer`.
pub const SIGNER_PRIVKEY: [u8; 32] = [0x4d; 32];

pub fn signer_pubkey_hex() -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&SIGNER_PRIVKEY);
    hex::encode(key.verifying_key().to_bytes())
}

fn principal(authid: &str, role: &str) -> PrincipalSpec {
    PrincipalSpec {
        authid: authid.into(),
        role: role.into(),
        ..Default::default()
    }
}

/// The realm every authentication test uses: no anonymous role, one principal per method.
pub fn realm_spec() -> RealmSpec {
    let scram = |kdf, iterations, memory| ScramSpec {
        password: SCRAM_PASSWORD.into(),
        kdf,
        iterations: Some(iterations),
        memory,
    };
    RealmSpec {
        name: REALM.into(),
        principal: vec![
            PrincipalSpec {
                ticket: Some(TICKET.into()),
                ..principal("tick", "frontend")
            },
            PrincipalSpec {
                wampcra: Some(WampCraSpec {
                    secret: CRA_SECRET.into(),
                    salt: None,
                    iterations: None,
                    keylen: None,
                }),
                ..principal("cra", "backend")
            },
            PrincipalSpec {
                wampcra: Some(WampCraSpec {
                    secret: CRA_SALTED_SECRET.into(),
                    salt: Some(CRA_SALT.into()),
                    iterations: Some(100),
                    keylen: Some(32),
                }),
                ..principal("crasalt", "backend")
            },
            PrincipalSpec {
                scram: Some(scram(
                    Kdf::Argon2id13,
                    ARGON2_ITERATIONS,
                    Some(ARGON2_MEMORY),
                )),
                ..principal("scrammer", "frontend")
            },
            PrincipalSpec {
                scram: Some(scram(Kdf::Pbkdf2, PBKDF2_ITERATIONS, None)),
                ..principal("pbkdfer", "frontend")
            },
            PrincipalSpec {
                cryptosign: Some(vec![signer_pubkey_hex()]),
                ..principal("signer", "backend")
            },
        ],
        authenticator: Some(ProcedureRef {
            procedure: AUTHENTICATOR.into(),
            realm: AUTH_SERVICE_REALM.into(),
            timeout: None,
        }),
        // Authentication is what these tests are about: every role they log in with may do
        // everything (a role the realm does not define may do nothing).
        role: ["frontend", "backend", "dynrole", "r2"]
            .into_iter()
            .map(|name| RoleSpec {
                name: name.into(),
                permission: vec![PermissionSpec {
                    uri: String::new(),
                    match_: MatchKind::Prefix,
                    allow: vec![
                        Action::Call,
                        Action::Register,
                        Action::Publish,
                        Action::Subscribe,
                    ],
                    disclose: vec![],
                }],
            })
            .collect(),
        ..Default::default()
    }
}

/// A router with `shards` shards serving realm1 and [`AUTH_SERVICE_REALM`] (open) and [`REALM`],
/// throttling after
/// `max_failures` failures (0: never).
pub fn start(shards: usize, max_failures: u32) -> InProcess {
    start_with(realm_spec(), shards, max_failures)
}

/// [`start`] with `spec` as [`REALM`]'s rules.
pub fn start_with(spec: RealmSpec, shards: usize, max_failures: u32) -> InProcess {
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        shards,
        pin_cores: false,
        realms: vec!["realm1".into(), REALM.into(), AUTH_SERVICE_REALM.into()],
        realm_specs: vec![spec],
        auth_limits: AuthLimits {
            max_failures,
            ..Default::default()
        },
        ..Default::default()
    };
    let server = wampd::server::Server::start(config).expect("router starts");
    let addr = server.local_addrs()[0].to_string();
    InProcess {
        server: Some(server),
        addr,
    }
}

// ---- raw-message helpers ------------------------------------------------------------------------

use std::borrow::Cow;

use wampd::protocol::{Message, Val};

use super::Client;

/// Sends HELLO to `realm` asking for `methods`, with `authid` and `authextra` when given.
pub fn send_hello(
    c: &mut Client,
    realm: &str,
    methods: &[&str],
    authid: Option<&str>,
    authextra: Val<'_>,
) {
    let mut details = vec![
        (
            Cow::Borrowed("roles"),
            Val::Dict(vec![
                (Cow::Borrowed("caller"), Val::empty_dict()),
                (Cow::Borrowed("callee"), Val::empty_dict()),
            ]),
        ),
        (
            Cow::Borrowed("authmethods"),
            Val::List(
                methods
                    .iter()
                    .map(|m| Val::Str(Cow::Borrowed(*m)))
                    .collect(),
            ),
        ),
        (Cow::Borrowed("authextra"), authextra),
    ];
    if let Some(a) = authid {
        details.push((Cow::Borrowed("authid"), Val::Str(Cow::Borrowed(a))));
    }
    c.send(&Message::Hello {
        realm: Cow::Borrowed(realm),
        details: Val::Dict(details),
    });
}

/// Expects CHALLENGE; returns its authmethod and extra.
pub fn recv_challenge(c: &mut Client) -> (String, Val<'static>) {
    c.recv_with(|m| match m {
        Message::Challenge { authmethod, extra } => {
            (authmethod.into_owned(), decoded(extra).into_owned())
        }
        other => panic!("expected CHALLENGE, got {other:?}"),
    })
}

/// Sends AUTHENTICATE.
pub fn send_authenticate(c: &mut Client, signature: &str, extra: Val<'_>) {
    c.send(&Message::Authenticate {
        signature: Cow::Borrowed(signature),
        extra,
    });
}

/// Expects WELCOME; returns the session id and its decoded details.
pub fn recv_welcome(c: &mut Client) -> (u64, Val<'static>) {
    c.recv_with(|m| match m {
        Message::Welcome { session, details } => (session, decoded(details).into_owned()),
        other => panic!("expected WELCOME, got {other:?}"),
    })
}

/// A fully decoded value (the parser leaves containers raw).
pub fn decoded(v: Val<'_>) -> Val<'_> {
    match v {
        Val::Raw(p) => Val::decode(p).expect("decodable"),
        other => other,
    }
}

/// A string attribute of a decoded dict.
pub fn get_str(v: &Val<'_>, key: &str) -> Option<String> {
    v.get(key).and_then(|x| x.as_str()).map(|s| s.into_owned())
}

/// Standard base64 (SCRAM and WAMP-CRA carry their binary values so).
pub fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// HMAC-SHA256, as SCRAM's client proof and server signature use it.
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().into()
}
