//! Authentication interop: autobahn-python's own authenticators (ticket, WAMP-CRA with and without
//! salt, SCRAM in autobahn's dialect with Argon2id, cryptosign), each accepted and refused, against
//! a router with 2 shards; two authenticated sessions on different shards then call and publish to
//! each other. The client is mandatory: a missing venv fails the test (`bash tests/interop/setup.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::auth::{self as fixture, REALM};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn python() -> PathBuf {
    let py = interop_dir().join(".venv/bin/python");
    assert!(
        py.exists(),
        "interop (auth) cannot run: missing {}; install the clients with `bash tests/interop/setup.sh`",
        py.display()
    );
    py
}

/// The cases: every method accepted once and refused at least once.
fn cases() -> serde_json::Value {
    use serde_json::json;
    let failed = "wamp.error.authentication_failed";
    let stranger_key = hex::encode([0x22u8; 32]);
    json!({
        "realm": REALM,
        "cases": [
            {"name": "ticket", "method": "ticket", "role": "frontend",
             "args": {"authid": "tick", "ticket": fixture::TICKET}, "expect": "ok"},
            {"name": "cryptosign", "method": "cryptosign", "role": "backend", "authid": "signer",
             "args": {"privkey": hex::encode(fixture::SIGNER_PRIVKEY)}, "expect": "ok"},
            {"name": "wampcra", "method": "wampcra", "role": "backend",
             "args": {"authid": "cra", "secret": fixture::CRA_SECRET}, "expect": "ok"},
            {"name": "wampcra-salted", "method": "wampcra", "role": "backend",
             "args": {"authid": "crasalt", "secret": fixture::CRA_SALTED_SECRET}, "expect": "ok"},
            {"name": "scram-argon2id", "method": "scram", "role": "frontend",
             "args": {"authid": "scrammer", "password": fixture::SCRAM_PASSWORD}, "expect": "ok"},
            {"name": "ticket-wrong", "method": "ticket",
             "args": {"authid": "tick", "ticket": "nope"}, "expect": failed},
            {"name": "ticket-unknown-authid", "method": "ticket",
             "args": {"authid": "nobody", "ticket": fixture::TICKET}, "expect": failed},
            {"name": "wampcra-wrong", "method": "wampcra",
             "args": {"authid": "cra", "secret": "nope"}, "expect": failed},
            {"name": "wampcra-salted-wrong", "method": "wampcra",
             "args": {"authid": "crasalt", "secret": fixture::CRA_SECRET}, "expect": failed},
            {"name": "scram-wrong", "method": "scram",
             "args": {"authid": "scrammer", "password": "nope"}, "expect": failed},
            {"name": "scram-unknown-authid", "method": "scram",
             "args": {"authid": "nobody", "password": fixture::SCRAM_PASSWORD}, "expect": failed},
            {"name": "cryptosign-unknown-key", "method": "cryptosign",
             "args": {"privkey": stranger_key}, "expect": failed},
            {"name": "anonymous-refused", "method": "anonymous",
             "args": {}, "expect": "wamp.error.no_matching_auth_method"},
        ]
    })
}

fn run_python(url: &str, ser: &str) {
    let t0 = Instant::now();
    let mut child = Command::new(python())
        .arg(interop_dir().join("auth_ab.py"))
        .args([url, ser, &cases().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if t0.elapsed() > CLIENT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("client output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.is_some_and(|s| s.success()),
        "autobahn-python auth client failed ({url} {ser}, status {status:?}, {:?}):\n{stdout}\n{stderr}",
        t0.elapsed()
    );
    for name in [
        "ticket",
        "scram-argon2id",
        "cryptosign-unknown-key",
        "cross-shard",
    ] {
        assert!(
            stdout.contains(&format!("OK auth {name}\n")),
            "case {name} not reported:\n{stdout}"
        );
    }
}

#[test]
fn autobahn_python_rawsocket_json() {
    let router = fixture::start(2, 0);
    run_python(&format!("rs://{}", router.addr), "json");
}

#[test]
fn autobahn_python_websocket_msgpack() {
    let router = fixture::start(2, 0);
    run_python(&format!("ws://{}/ws", router.addr), "msgpack");
}
