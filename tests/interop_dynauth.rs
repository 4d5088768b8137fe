//! Dynamic authenticator interop: an autobahn-python component in realm "auth" answers for authids
//! the realm does not list; autobahn-python clients log in with WAMP-CRA (with and without salt),
//! SCRAM (autobahn's `scram` dialect: Crossbar credentials the authenticator computes, one made by
//! autobahn's `derive_scram_credential`, and a password wampd derives the keys from) and
//! cryptosign, accepted and refused, on a router with 2 shards. The client is mandatory: a
//! missing venv fails the test (`bash tests/interop/setup.sh`).

mod common;

use common::auth::{realm_spec, AUTHENTICATOR, REALM};
use common::interop::{dir, require, run_script, url};
use common::InProcess;
use wampd::config::file::ProcedureRef;
use wampd::config::{AuthLimits, Config};

const SERVICE_REALM: &str = "auth";
const FAILED: &str = "wamp.error.authentication_failed";

/// A router whose [`REALM`] asks an authenticator registered in [`SERVICE_REALM`].
fn start() -> InProcess {
    let mut spec = realm_spec();
    spec.authenticator = Some(ProcedureRef {
        procedure: AUTHENTICATOR.into(),
        realm: SERVICE_REALM.into(),
        timeout: None,
    });
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        shards: 2,
        pin_cores: false,
        realms: vec![REALM.into(), SERVICE_REALM.into()],
        realm_specs: vec![spec],
        // More refused cases than the failure limit allows from one address.
        auth_limits: AuthLimits {
            max_failures: 0,
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

/// The salt of the SCRAM credentials the authenticator computes (hex, as Crossbar stores it).
const SCRAM_SALT: &str = "a1a2a3a4a5a6a7a8b1b2b3b4b5b6b7b8";

fn spec() -> serde_json::Value {
    use serde_json::json;
    let privkey = [0x5au8; 32];
    let pubkey = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&privkey)
            .verifying_key()
            .to_bytes(),
    );
    let stranger = hex::encode([0x6bu8; 32]);
    json!({
        "realm": REALM,
        "service_realm": SERVICE_REALM,
        "procedure": AUTHENTICATOR,
        "principals": {
            "dyncra": {"secret": "dyn-pw", "role": "dynrole"},
            "dynsalt": {"secret": "dyn-pw2", "salt": "pepper", "iterations": 200, "keylen": 32,
                        "role": "r2"},
        },
        "keys": {pubkey.clone(): {"pubkey": pubkey, "role": "backend", "authid": "keyholder"}},
        "scram": {
            "dynscram": {"shape": "crossbar", "password": "dyn-scram", "salt": SCRAM_SALT,
                         "iterations": 2, "memory": 1024, "role": "dynrole"},
            "dynscrambad": {"shape": "crossbar", "password": "dyn-scram", "salt": SCRAM_SALT,
                            "iterations": 2, "memory": 1024, "role": "dynrole",
                            "break": "stored-key"},
            "dynscramab": {"shape": "autobahn", "credential_authid": "user@example.com",
                           "password": "dyn-scram3", "role": "backend", "authid": "scrammed"},
            "dynscrampw": {"shape": "password", "role": "r2",
                           "answer": {"password": "dyn-scram2", "kdf": "argon2id13",
                                      "iterations": 2, "memory": 2048}},
        },
        "cases": [
            {"name": "wampcra", "method": "wampcra", "role": "dynrole",
             "args": {"authid": "dyncra", "secret": "dyn-pw"}, "expect": "ok"},
            {"name": "wampcra-salted", "method": "wampcra", "role": "r2",
             "args": {"authid": "dynsalt", "secret": "dyn-pw2"}, "expect": "ok"},
            {"name": "cryptosign", "method": "cryptosign", "role": "backend", "authid": "keyholder",
             "args": {"privkey": hex::encode(privkey)}, "expect": "ok"},
            {"name": "wampcra-wrong", "method": "wampcra",
             "args": {"authid": "dyncra", "secret": "nope"}, "expect": FAILED},
            {"name": "wampcra-salted-wrong", "method": "wampcra",
             "args": {"authid": "dynsalt", "secret": "dyn-pw"}, "expect": FAILED},
            {"name": "scram-crossbar", "method": "scram", "role": "dynrole",
             "args": {"authid": "dynscram", "password": "dyn-scram"}, "expect": "ok"},
            {"name": "scram-autobahn-credential", "method": "scram", "role": "backend",
             "authid": "scrammed",
             "args": {"authid": "dynscramab", "password": "dyn-scram3"}, "expect": "ok"},
            {"name": "scram-password", "method": "scram", "role": "r2",
             "args": {"authid": "dynscrampw", "password": "dyn-scram2"}, "expect": "ok"},
            {"name": "scram-crossbar-wrong", "method": "scram",
             "args": {"authid": "dynscram", "password": "nope"}, "expect": FAILED},
            {"name": "scram-password-wrong", "method": "scram",
             "args": {"authid": "dynscrampw", "password": "dyn-scram"}, "expect": FAILED},
            {"name": "scram-malformed", "method": "scram",
             "args": {"authid": "dynscrambad", "password": "dyn-scram"}, "expect": FAILED},
            {"name": "scram-unknown", "method": "scram",
             "args": {"authid": "stranger", "password": "dyn-scram"}, "expect": FAILED},
            {"name": "wampcra-unknown", "method": "wampcra",
             "args": {"authid": "stranger", "secret": "dyn-pw"}, "expect": FAILED},
            {"name": "cryptosign-unknown-key", "method": "cryptosign",
             "args": {"privkey": stranger}, "expect": FAILED},
        ]
    })
}

fn run(ws: bool, ser: &str) {
    let python = dir().join(".venv/bin/python");
    require(&python);
    let router = start();
    let url = url(&router.addr, ws);
    let o = run_script(&python, "dynauth_ab.py", &[&url, ser, &spec().to_string()]);
    let ok_line = format!("OK dynauth {url} {ser}");
    assert!(
        o.success() && o.stdout.lines().any(|l| l.trim_end() == ok_line),
        "FAILED {ok_line} (status {:?})\n--- stdout:\n{}\n--- stderr:\n{}",
        o.status,
        o.stdout,
        o.stderr
    );
    for case in [
        "wampcra-salted",
        "cryptosign",
        "cryptosign-unknown-key",
        "scram-crossbar",
        "scram-autobahn-credential",
        "scram-password",
        "scram-crossbar-wrong",
        "scram-malformed",
    ] {
        assert!(o.stdout.contains(&format!("OK dynauth {case}\n")), "{case}");
    }
}

#[test]
fn autobahn_python_rawsocket_json() {
    run(false, "json");
}

#[test]
fn autobahn_python_websocket_msgpack() {
    run(true, "msgpack");
}
