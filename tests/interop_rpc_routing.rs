//! Call routing interop: autobahn-python and autobahn-js (`tests/interop/rpc_routing_ab.py`,
//! `tests/interop/rpc_routing_ab.js`) against a real wampd with two shards, callees and callers on
//! both shards: `least_loaded`, sharded registration (`rkey`) and call rerouting. A missing client
//! fails the test (`bash tests/interop/setup.sh` installs them).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::Router;

/// How long one client script may run before it is killed.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

/// Runs one client script against a fresh router; Err with everything it printed on failure.
fn run(program: &Path, script: &str, url_of: impl Fn(&str) -> String, ser: &str, ok: &str) {
    assert!(
        program.exists() || program.components().count() == 1,
        "interop cannot run: missing {}; install the clients with `bash tests/interop/setup.sh`",
        program.display()
    );
    let router = Router::start(2, &[]);
    let url = url_of(&router.addr);
    let mut child = Command::new(program)
        .arg(script)
        .arg(&url)
        .arg(ser)
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(interop_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if t0.elapsed() > CLIENT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (reader.join().unwrap(), err_reader.join().unwrap());
    let ok_line = format!("{ok} {url} {ser}");
    assert!(
        status.is_some_and(|s| s.success()) && stdout.lines().any(|l| l.trim_end() == ok_line),
        "FAILED {ok_line} (status {status:?})\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
    );
    println!("{ok_line} ({:.1} s)", t0.elapsed().as_secs_f64());
}

#[test]
fn autobahn_python_call_routing() {
    let python = interop_dir().join(".venv").join("bin").join("python");
    let ws = |a: &str| format!("ws://{a}/ws");
    let rs = |a: &str| format!("rs://{a}");
    run(
        &python,
        "rpc_routing_ab.py",
        ws,
        "json",
        "OK routing-python",
    );
    run(
        &python,
        "rpc_routing_ab.py",
        rs,
        "msgpack",
        "OK routing-python",
    );
}

#[test]
fn autobahn_js_call_routing() {
    assert!(
        interop_dir().join("node_modules").join("autobahn").exists(),
        "interop cannot run: autobahn-js is missing; install the clients with `bash tests/interop/setup.sh`"
    );
    let ws = |a: &str| format!("ws://{a}/ws");
    for ser in ["json", "cbor"] {
        run(
            Path::new("node"),
            "rpc_routing_ab.js",
            ws,
            ser,
            "OK routing-js",
        );
    }
}
