//! The meta API, testaments and event history with third-party clients (autobahn-python,
//! autobahn-js) against a two-shard `wampd`: the scripts `tests/interop/meta_ab.py`,
//! `meta_history_ab.py` and `meta_ab.js` open their sessions
//! one after the other, so they sit on different shards. The clients are installed by
//! `tests/interop/setup.sh`; when they are missing the tests fail, saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Router;

/// How long one client script may run before it is killed.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn require(path: &Path) {
    assert!(
        path.exists(),
        "interop cannot run: missing {}; install the clients with `bash tests/interop/setup.sh`",
        path.display()
    );
}

/// Runs `program script url serializer` against a fresh two-shard router started with `extra`
/// arguments; fails unless it prints `OK <name> <url> <serializer>`.
fn run_case(program: &Path, script: &str, name: &str, ws: bool, ser: &str, extra: &[&str]) {
    let router = Router::start(2, extra);
    let url = if ws {
        format!("ws://{}/ws", router.addr)
    } else {
        format!("rs://{}", router.addr)
    };
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
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > CLIENT_TIMEOUT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ok = format!("OK {name} {url} {ser}");
    assert!(
        out.status.success() && stdout.lines().any(|l| l.trim_end() == ok),
        "{name} {url} {ser} failed ({:?}):\n--- stdout:\n{stdout}\n--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn meta_api_with_autobahn_python() {
    let python = interop_dir().join(".venv/bin/python");
    require(&python);
    for (ws, ser) in [(false, "json"), (true, "msgpack"), (false, "cbor")] {
        run_case(&python, "meta_ab.py", "meta-python", ws, ser, &[]);
    }
}

#[test]
fn meta_api_with_autobahn_js() {
    require(&interop_dir().join("node_modules/autobahn/package.json"));
    for ser in ["json", "cbor"] {
        let history = ["--event-history", "prefix:com.metajs.hist=10"];
        run_case(
            Path::new("node"),
            "meta_ab.js",
            "meta-js",
            true,
            ser,
            &history,
        );
    }
}

#[test]
fn event_history_shared_registration_meta_and_kill_all_with_autobahn_python() {
    let python = interop_dir().join(".venv/bin/python");
    require(&python);
    let history = ["--event-history", "prefix:com.hist=10"];
    for (ws, ser) in [(false, "json"), (true, "msgpack"), (false, "cbor")] {
        let name = "meta-history-python";
        run_case(&python, "meta_history_ab.py", name, ws, ser, &history);
    }
}
