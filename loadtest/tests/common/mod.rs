//! What the end-to-end tests of wampload share: finding and starting a wampd router.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The router binary: next to this test's target directory, or under $CARGO_TARGET_DIR, or in the
/// workspace's target directory.
pub fn find_wampd() -> Option<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/<test>-<hash>
        if let Some(profile_dir) = exe.parent().and_then(|d| d.parent()) {
            dirs.push(profile_dir.to_path_buf());
            if let Some(target) = profile_dir.parent() {
                dirs.push(target.join("release"));
                dirs.push(target.join("debug"));
            }
        }
    }
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(&t).join("release"));
        dirs.push(PathBuf::from(&t).join("debug"));
    }
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    dirs.push(ws.join("release"));
    dirs.push(ws.join("debug"));
    dirs.into_iter()
        .map(|d| d.join("wampd"))
        .find(|p| p.is_file())
}

/// A child process killed on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts wampd on a free port with `extra` arguments; returns it and its `host:port`.
pub fn start_router(bin: &Path, extra: &[&str]) -> (Killed, String) {
    start_router_on(bin, extra, "tcp")
}

/// As [`start_router`], returning the address the start line gives for `scheme` (`tcp`, `tls`).
pub fn start_router_on(bin: &Path, extra: &[&str], scheme: &str) -> (Killed, String) {
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--log-level", "warn"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start wampd");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let router = Killed(child);
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("wampd start line");
    let addr = line
        .split(&format!("{scheme}://"))
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no {scheme} address in {line}"))
        .to_string();
    (router, addr)
}
