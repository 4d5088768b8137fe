//! Payload passthru interop against a 2-shard wampd: autobahn-python (WebSocket and RawSocket ×
//! json/msgpack/cbor; it has no `ppt_*` API, so the script adds the wire attributes to its
//! messages) and wampy.js (WebSocket × json/msgpack/cbor; it speaks the mode natively). autobahn-js
//! 22.11 has no payload passthru mode. The scripts are `tests/interop/ppt_*`; a missing client
//! fails the test (install with `bash tests/interop/setup.sh`).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Router;

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

/// Runs `program script url ser` against a fresh 2-shard router; returns its stdout, or the
/// reason it failed.
fn run_case(program: &Path, script: &str, ws: bool, ser: &str) -> Result<String, String> {
    let router = Router::start(2, &[]);
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
        .map_err(|e| format!("spawn {}: {e}", program.display()))?;
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        if start.elapsed() > CLIENT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).ok();
    child.stderr.take().unwrap().read_to_string(&mut err).ok();
    let case = format!("{script} {url} {ser}");
    let ok = status.is_some_and(|s| s.success()) && out.lines().any(|l| l.starts_with("OK "));
    if ok {
        Ok(case)
    } else {
        Err(format!(
            "FAILED {case} (status {status:?})\n--- stdout:\n{out}\n--- stderr:\n{err}"
        ))
    }
}

fn run_all(cases: Vec<(PathBuf, &str, bool, &str)>) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(program, script, ws, ser)| run_case(program, script, *ws, ser).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn autobahn_python_payload_passthru() {
    let python = interop_dir().join(".venv/bin/python");
    require(&python);
    let mut cases = Vec::new();
    for ws in [true, false] {
        for ser in ["json", "msgpack", "cbor"] {
            cases.push((python.clone(), "ppt_ab.py", ws, ser));
        }
    }
    run_all(cases);
}

#[test]
fn wampy_js_payload_passthru() {
    require(&interop_dir().join("node_modules/wampy/package.json"));
    let node = PathBuf::from("node");
    let cases = ["json", "msgpack", "cbor"]
        .into_iter()
        .map(|ser| (node.clone(), "ppt_wampy.mjs", true, ser))
        .collect();
    run_all(cases);
}
