//! The 20-rule permission set of loadtest/compare.sh (`wampd-rules`) lets wampload's load through:
//! otherwise that row would measure refusals, not decisions.

mod common;

use std::process::Command;

use common::{find_wampd, start_router};

fn run(args: &[&str], name: &str) -> serde_json::Value {
    let json =
        std::env::temp_dir().join(format!("wampload-rules-{}-{name}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_wampload"))
        .args(args)
        .args([
            "--threads",
            "1",
            "--serializer",
            "msgpack",
            "--duration",
            "1",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run wampload");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    let v = serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
        .expect("valid json");
    let _ = std::fs::remove_file(&json);
    assert!(out.status.success(), "{name}: {v}");
    v
}

#[test]
fn the_twenty_rules_allow_fanout_and_rpc() {
    let bin = find_wampd().expect("no wampd binary found: build it first");
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules20.toml");
    let text = std::fs::read_to_string(rules).unwrap();
    assert_eq!(text.matches("[[realm.role.permission]]").count(), 20);
    let check = Command::new(&bin)
        .args(["check", "--config", rules])
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    let (_router, addr) = start_router(&bin, &["--shards", "1", "--config", rules]);
    let url = format!("rs://{addr}");
    let f = run(&["fanout", "--url", &url, "--subscribers", "10"], "fanout");
    assert_eq!(f["errors"], 0, "{f}");
    assert!(f["delivered"].as_u64().unwrap() > 0, "{f}");
    assert_eq!(f["delivered"], f["expected"], "{f}");
    let r = run(&["rpc", "--url", &url, "--callers", "2"], "rpc");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["call_errors"], 0, "{r}");
    assert!(r["results"].as_u64().unwrap() > 0, "{r}");
}
