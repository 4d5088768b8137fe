//! Dynamic authenticator interop: an autobahn-python component in realm "auth" answers for authids
//! the realm does not list; autobahn-python clients log in with WAMP-CRA (with and without salt)
//! and cryptosign, accepted and refused, on a router with 2 shards. The client is mandatory: a
//! missing venv fails the test (`bash tests/interop/setup.sh`).

mod common;

use common::auth::{realm_spec, AUTHENTICATOR, REALM};
use common::interop::{dir, require, run_script, url};
use common::InProcess;
use wampd::config::file::ProcedureRef;
use wampd::config::Config;

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
        ..Default::default()
    };
    let server = wampd::server::Server::start(config).expect("router starts");
    let addr = server.local_addrs()[0].to_string();
    InProcess {
        server: Some(server),
        addr,
    }
}

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
    for case in ["wampcra-salted", "cryptosign", "cryptosign-unknown-key"] {
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
