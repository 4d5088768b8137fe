//! End to end: start a wampd router and run short fanout, rpc and connect scenarios against it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The router binary: next to this test's target directory, or under $CARGO_TARGET_DIR.
fn find_wampd() -> Option<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/smoke-<hash>
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
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target");
    dirs.push(ws.join("release"));
    dirs.push(ws.join("debug"));
    dirs.into_iter()
        .map(|d| d.join("wampd"))
        .find(|p| p.is_file())
}

struct Router(Child);

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

fn start_router(bin: &PathBuf) -> (Router, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--shards", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wampd");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    let _ = tx.send(());
                }
            }
        });
        let router = Router(child);
        if rx.recv_timeout(Duration::from_secs(10)).is_ok() {
            return (router, port);
        }
    }
    panic!("wampd did not start");
}

fn wampload(args: &[&str]) -> serde_json::Value {
    let json = std::env::temp_dir().join(format!(
        "wampload-smoke-{}-{}.json",
        std::process::id(),
        args[0]
    ));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wampload"));
    cmd.args(args)
        .arg("--threads")
        .arg("1")
        .arg("--json")
        .arg(&json);
    let t = Instant::now();
    let out = cmd.output().expect("run wampload");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "wampload {args:?} failed");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "wampload {args:?} took too long"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    let _ = std::fs::remove_file(&json);
    v
}

#[test]
fn fanout_rpc_connect_against_wampd() {
    let Some(bin) = find_wampd() else {
        eprintln!("smoke test skipped: no wampd binary found (run `cargo build --release --bin wampd` first)");
        return;
    };
    let (router, port) = start_router(&bin);
    let rs = format!("rs://127.0.0.1:{port}");
    let ws = format!("ws://127.0.0.1:{port}/ws");

    let f = wampload(&[
        "fanout",
        "--url",
        &rs,
        "--serializer",
        "msgpack",
        "--publishers",
        "1",
        "--subscribers",
        "20",
        "--topics",
        "1",
        "--payload",
        "64",
        "--duration",
        "2",
    ]);
    assert_eq!(f["lost"], 0, "{f}");
    assert_eq!(f["errors"], 0, "{f}");
    assert_eq!(f["duplicated"], 0, "{f}");
    assert!(f["delivered"].as_u64().unwrap() > 0, "{f}");
    assert_eq!(f["delivered"], f["expected"], "{f}");
    assert!(f["deliveries_per_sec"].as_f64().unwrap() > 0.0);

    let r = wampload(&[
        "rpc",
        "--url",
        &ws,
        "--serializer",
        "json",
        "--callers",
        "4",
        "--inflight",
        "8",
        "--callees",
        "1",
        "--payload",
        "64",
        "--duration",
        "2",
    ]);
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["calls_per_sec"].as_f64().unwrap() > 0.0, "{r}");

    let pid = router.0.id().to_string();
    let c = wampload(&[
        "connect",
        "--url",
        &rs,
        "--serializer",
        "cbor",
        "--sessions",
        "50",
        "--rate",
        "500",
        "--hold",
        "0.5",
        "--router-pid",
        &pid,
    ]);
    assert_eq!(c["established"], 50, "{c}");
    assert_eq!(c["errors"], 0, "{c}");
    assert!(c["rss_kib_per_session"].is_number(), "{c}");
    drop(router);
}
