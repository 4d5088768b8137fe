//! Shared by the authentication tests: one realm with a principal per method, and a router started
//! in process with those rules.

use wampd::config::file::{Kdf, PrincipalSpec, RealmSpec, ScramSpec, WampCraSpec};
use wampd::config::{AuthLimits, Config};

use super::InProcess;

pub const REALM: &str = "authrealm";
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
        ..Default::default()
    }
}

/// A router with `shards` shards serving realm1 (open) and [`REALM`], throttling after
/// `max_failures` failures (0: never).
pub fn start(shards: usize, max_failures: u32) -> InProcess {
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        shards,
        pin_cores: false,
        realms: vec!["realm1".into(), REALM.into()],
        realm_specs: vec![realm_spec()],
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
