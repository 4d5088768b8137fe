//! autobahn-python over TLS (wss and RawSocket over TLS with a client certificate) against a
//! 2-shard wampd, and its /metrics parsed by the Prometheus client's text parser. Fails, saying
//! what to install, when the venv is missing (`bash tests/interop/setup.sh`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::ca::TestCa;
use common::net::LoggedRouter;

#[test]
fn autobahn_python_over_tls_and_a_parsed_metrics_scrape() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "missing {}; install the clients with `bash tests/interop/setup.sh`",
        python.display()
    );
    let ca = TestCa::new("interop_net");
    ca.client("alice");
    let router = LoggedRouter::start(&[
        "--shards",
        "2",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &ca.path("server.crt"),
        "--tls-key",
        &ca.path("server.key"),
        "--tls-client-ca",
        &ca.path("ca.crt"),
        "--metrics",
        "127.0.0.1:0",
    ]);
    let port = router.addr("tls").rsplit(':').next().unwrap().to_string();
    let metrics = format!("http://{}/metrics", router.addr("http"));
    let mut child = Command::new(&python)
        .arg(dir.join("net_ab.py"))
        .args([
            &port,
            &ca.path("ca.crt"),
            &ca.path("alice.crt"),
            &ca.path("alice.key"),
            &metrics,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the python client");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK net"),
        "client failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
