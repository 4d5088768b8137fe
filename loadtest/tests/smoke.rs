//! End to end: start a wampd router and run short fanout, rpc and connect scenarios against it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{find_wampd, start_router};

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
    let bin = find_wampd()
        .expect("no wampd binary found: build it first (cargo build --release --bin wampd)");
    let (router, addr) = start_router(&bin, &["--shards", "1"]);
    let rs = format!("rs://{addr}");
    let ws = format!("ws://{addr}/ws");

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

    // Pattern subscriptions: every event must name its concrete topic, and the count-only reader
    // must see the same number of frames.
    for (reader, policy) in [("check", "wildcard"), ("count", "prefix")] {
        let p = wampload(&[
            "fanout",
            "--url",
            &rs,
            "--serializer",
            "cbor",
            "--publishers",
            "2",
            "--subscribers",
            "30",
            "--topics",
            "3",
            "--duration",
            "1",
            "--match",
            policy,
            "--reader",
            reader,
        ]);
        assert_eq!(p["lost"], 0, "{p}");
        assert_eq!(p["errors"], 0, "{p}");
        assert_eq!(p["delivered"], p["expected"], "{p}");
        assert!(p["delivered"].as_u64().unwrap() > 0, "{p}");
        if reader == "check" {
            assert_eq!(p["wrong_topic"], 0, "{p}");
            assert_eq!(p["wrong_subscription"], 0, "{p}");
            assert_eq!(p["frames_parsed_in_full"], 0, "{p}");
        } else {
            assert!(
                p["duplicated"].is_null(),
                "the count reader checks nothing: {p}"
            );
        }
    }

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
    assert_eq!(r["wrong_result"], 0, "{r}");
    assert_eq!(r["invocations_out_of_order"], 0, "{r}");
    assert!(r["calls_per_sec"].as_f64().unwrap() > 0.0, "{r}");

    // Progressive call results: every call gets its 3 progressive RESULTs before the final one.
    let r = wampload(&[
        "rpc",
        "--url",
        &rs,
        "--serializer",
        "msgpack",
        "--callers",
        "2",
        "--inflight",
        "4",
        "--progressive",
        "3",
        "--duration",
        "1",
    ]);
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["results"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["progress_results"], r["progress_expected"], "{r}");
    assert_eq!(r["progress_late"], 0, "{r}");

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
