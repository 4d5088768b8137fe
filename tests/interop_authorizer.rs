//! autobahn-python and autobahn-js as the dynamic authorizer and as the sessions it decides for: a
//! realm without static permissions, the authorizer registered in realm `auth` on one shard, the
//! asking sessions on the other; bool and dict answers, the cache proven by the authorizer's own
//! invocation count. The clients are installed by `tests/interop/setup.sh`; a missing client fails
//! the test.

mod common;

use std::path::Path;

use common::authz::{start_with_config, write_config, TRUSTED_AUTH_REALM};
use common::interop::{dir, require, run_script, url};

const APP_CONFIG: &str = r#"
[[realm]]
name = "app"
anonymous_role = "guest"
  [[realm.role]]
  name = "guest"                # no permissions: the authorizer decides everything
  [realm.authorizer]
  procedure = "com.example.authorize"
  realm = "auth"
  timeout = 5000
"#;

/// The whole configuration: the realms above and the trusted realm `auth` the procedures live in.
fn config() -> String {
    format!("{APP_CONFIG}{TRUSTED_AUTH_REALM}")
}

/// Runs `program script URL ser` against a fresh 2-shard router started with [`config`], expecting
/// the line `{ok} {URL} {ser}`.
fn run(program: &Path, script: &str, ws: bool, ser: &str, ok: &str) {
    // One file per script: tests run in parallel, and a file being rewritten reads as empty.
    let path = write_config(&format!("interop_{script}.toml"), &config());
    let router = start_with_config(2, &path);
    let url = url(&router.addr, ws);
    let o = run_script(program, script, &[&url, ser]);
    let ok_line = format!("{ok} {url} {ser}");
    assert!(
        o.success() && o.stdout.lines().any(|l| l.trim_end() == ok_line),
        "FAILED {ok_line} (status {:?})\n--- stdout:\n{}\n--- stderr:\n{}",
        o.status,
        o.stdout,
        o.stderr
    );
    println!("{ok_line} ({:.1} s)", o.took.as_secs_f64());
}

#[test]
fn autobahn_python_authorizer_decides() {
    let python = dir().join(".venv/bin/python");
    require(&python);
    for (ws, ser) in [(false, "msgpack"), (true, "json"), (true, "cbor")] {
        run(&python, "authorizer_ab.py", ws, ser, "OK authorizer");
    }
}

#[test]
fn autobahn_js_authorizer_decides() {
    require(&dir().join("node_modules/autobahn/package.json"));
    run(
        Path::new("node"),
        "authorizer_ab.js",
        true,
        "json",
        "OK authorizer-js",
    );
}
