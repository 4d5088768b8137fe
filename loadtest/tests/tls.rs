//! wampload over TLS: short fanout (RawSocket over TLS) and rpc (wss) runs against a wampd TLS
//! listener whose certificate the test's own CA signed; a client trusting another CA gets nowhere.

mod common;

#[path = "../../tests/common/ca.rs"]
#[allow(dead_code)]
mod ca;

use std::process::Command;
use std::time::{Duration, Instant};

use ca::TestCa;
use common::{find_wampd, start_router_on};

/// Runs wampload; returns its exit code and JSON result.
fn wampload(name: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let json =
        std::env::temp_dir().join(format!("wampload-tls-{}-{name}.json", std::process::id()));
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_wampload"))
        .args(args)
        .args(["--threads", "1", "--json"])
        .arg(&json)
        .output()
        .expect("run wampload");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t.elapsed() < Duration::from_secs(40),
        "{name} took too long"
    );
    let text = std::fs::read_to_string(&json).unwrap_or_else(|_| "null".into());
    let _ = std::fs::remove_file(&json);
    let v = serde_json::from_str(&text).expect("valid json");
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn fanout_and_rpc_over_tls() {
    let bin = find_wampd()
        .expect("no wampd binary found: build it first (cargo build --release --bin wampd)");
    let ca = TestCa::new("wampload_tls");
    let other = TestCa::new("wampload_tls_other");
    let (router, addr) = start_router_on(
        &bin,
        &[
            "--shards",
            "1",
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &ca.path("server.crt"),
            "--tls-key",
            &ca.path("server.key"),
        ],
        "tls",
    );
    let ca_file = ca.path("ca.crt");
    let pid = router.0.id().to_string();
    let rss = format!("rss://{addr}");
    let wss = format!("wss://{addr}/ws");

    let (code, f) = wampload(
        "fanout",
        &[
            "fanout",
            "--url",
            &rss,
            "--ca",
            &ca_file,
            "--serializer",
            "msgpack",
            "--subscribers",
            "20",
            "--payload",
            "64",
            "--duration",
            "1",
            "--router-pid",
            &pid,
        ],
    );
    assert_eq!(code, 0, "{f}");
    assert_eq!(f["errors"], 0, "{f}");
    assert_eq!(f["lost"], 0, "{f}");
    assert!(f["delivered"].as_u64().unwrap() > 0, "{f}");
    assert_eq!(f["delivered"], f["expected"], "{f}");
    // The router worked for it: its CPU time is read from /proc and shared out per delivery.
    assert!(
        f["router_cpu_us_per_delivery"].as_f64().unwrap() > 0.0,
        "{f}"
    );

    let (code, r) = wampload(
        "rpc",
        &[
            "rpc",
            "--url",
            &wss,
            "--insecure",
            "--serializer",
            "json",
            "--callers",
            "2",
            "--inflight",
            "8",
            "--duration",
            "1",
        ],
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert!(r["results"].as_u64().unwrap() > 0, "{r}");

    // Trusting another CA: no session is established, and the run says so.
    let (code, c) = wampload(
        "connect",
        &[
            "connect",
            "--url",
            &rss,
            "--ca",
            &other.path("ca.crt"),
            "--sessions",
            "3",
            "--rate",
            "100",
            "--hold",
            "0",
        ],
    );
    assert_ne!(code, 0, "{c}");
    assert_eq!(c["established"], 0, "{c}");
    assert_eq!(c["errors"], 3, "{c}");
    drop(router);
}
