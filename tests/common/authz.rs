//! Helpers for tests that start wampd with a configuration file.

use std::path::PathBuf;

use super::Router;

/// The realm `auth` where trusted sessions register the router's helper procedures (dynamic
/// authenticator, authorizer): anonymous sessions there may do anything.
pub const TRUSTED_AUTH_REALM: &str = r#"
[[realm]]
name = "auth"
anonymous_role = "trusted"
  [[realm.role]]
  name = "trusted"
    [[realm.role.permission]]
    uri = ""
    match = "prefix"
    allow = ["call", "register", "publish", "subscribe"]
"#;

/// Writes `text` as configuration file `name` in this test build's scratch directory (inside
/// `target/`, so that nothing outside the repository is read) and returns its path.
pub fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("authz");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts wampd with `--config FILE` (listening on a free port: the flag overrides the file).
pub fn start_with_config(shards: usize, path: &std::path::Path) -> Router {
    Router::start(shards, &["--config", path.to_str().unwrap()])
}

/// Sends SIGHUP to the router (reload its configuration file).
pub fn sighup(router: &Router) {
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(router.pid() as i32, libc::SIGHUP) };
    assert_eq!(rc, 0, "kill(SIGHUP) failed");
}

/// Runs `wampd check --config FILE`; returns (exit code, stdout, stderr).
pub fn check(path: &std::path::Path) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wampd"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .expect("run wampd check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
