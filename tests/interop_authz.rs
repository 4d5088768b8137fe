//! autobahn-python against a wampd whose configuration file restricts what the anonymous role may do:
//! denials surface as `ApplicationError(wamp.error.not_authorized)`, allowed actions work across two
//! shards. The client is installed by `tests/interop/setup.sh`; a missing client fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::authz::{start_with_config, write_config};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

const CONFIG: &str = r#"
[[realm]]
name = "realm1"
anonymous_role = "app"
  [[realm.role]]
  name = "app"
    [[realm.role.permission]]
    uri = "app."
    match = "prefix"
    allow = ["call", "register", "publish", "subscribe"]
    [[realm.role.permission]]
    uri = "app.admin."
    match = "prefix"
    allow = []
"#;

fn python_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/.venv/bin/python")
}

/// Runs the client script for one URL and serializer; returns (success, output).
fn run_client(url: &str, serializer: &str) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/authz_ab.py");
    let mut child = Command::new(python_bin())
        .arg(script)
        .arg(url)
        .arg(serializer)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed() < CLIENT_TIMEOUT {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn autobahn_python_sees_not_authorized() {
    let python = python_bin();
    assert!(
        python.exists(),
        "interop (authz) cannot run: missing {}; install the clients with `bash tests/interop/setup.sh`",
        python.display()
    );
    let path = write_config("interop.toml", CONFIG);
    for (scheme, serializer) in [("ws", "json"), ("rs", "msgpack"), ("ws", "cbor")] {
        let router = start_with_config(2, &path);
        let url = match scheme {
            "ws" => format!("ws://{}/ws", router.addr),
            _ => format!("rs://{}", router.addr),
        };
        let (ok, out) = run_client(&url, serializer);
        assert!(ok, "{url} {serializer}:\n{out}");
        assert!(
            out.contains(&format!("OK authz {url} {serializer}")),
            "{out}"
        );
    }
}
