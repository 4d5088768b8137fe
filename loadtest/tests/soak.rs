//! Soak: about 2,000 sessions doing mixed work against one wampd for a while — fanout over RawSocket
//! msgpack and WebSocket json, RPC over RawSocket cbor, and idle sessions — while the router's
//! resident memory and open file descriptors are sampled every second.
//!
//! Passes when no acknowledged publication is lost or duplicated, no call that should have
//! succeeded failed, the router's RSS is flat after warm-up, and its descriptors return to where they
//! started once the clients are gone. CI runs a short version (30 s); for the full one:
//! `WAMPD_SOAK_SECS=600 cargo test --release -p wampload --test soak -- --nocapture`
//! (or `bash loadtest/soak.sh`).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{find_wampd, start_router, Killed};

/// (RSS KiB, open descriptors) of process `pid`.
fn sample(pid: u32) -> (u64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

fn num(v: &serde_json::Value, key: &str) -> u64 {
    v.get(key).and_then(|x| x.as_u64()).unwrap_or(u64::MAX)
}

#[test]
fn two_thousand_sessions_mixed_load_stays_flat() {
    let wampd = find_wampd()
        .expect("no wampd binary found: build it first (cargo build --release --bin wampd)");
    let secs: u64 = std::env::var("WAMPD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    // The two fanout runs use the same topic names: separate realms keep them apart.
    let (router, addr) = start_router(
        &wampd,
        &["--shards", "2", "--realm", "realm1", "--realm", "realm2"],
    );
    let pid = router.0.id();
    std::thread::sleep(Duration::from_millis(300));
    let (_, fds_before) = sample(pid);
    let dir = std::env::temp_dir().join(format!("wampd-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = secs.to_string();
    let rs = format!("rs://{addr}");
    let ws = format!("ws://{addr}/ws");
    let json = |name: &str| dir.join(format!("{name}.json")).display().to_string();
    let runs: Vec<(&str, Vec<String>)> = vec![
        (
            "fanout-rs",
            [
                "fanout",
                "--url",
                &rs,
                "--serializer",
                "msgpack",
                "--publishers",
                "4",
                "--subscribers",
                "1200",
                "--topics",
                "12",
                "--payload",
                "128",
                "--rate",
                "200",
                "--duration",
                &d,
                "--threads",
                "1",
                "--json",
                &json("fanout-rs"),
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "fanout-ws",
            [
                "fanout",
                "--url",
                &ws,
                "--serializer",
                "json",
                "--publishers",
                "2",
                "--subscribers",
                "300",
                "--topics",
                "3",
                "--payload",
                "256",
                "--rate",
                "100",
                "--duration",
                &d,
                "--threads",
                "1",
                "--json",
                &json("fanout-ws"),
                "--realm",
                "realm2",
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "rpc",
            [
                "rpc",
                "--url",
                &rs,
                "--serializer",
                "cbor",
                "--callers",
                "100",
                "--inflight",
                "4",
                "--callees",
                "1",
                "--payload",
                "128",
                "--rate",
                "2000",
                "--duration",
                &d,
                "--threads",
                "1",
                "--json",
                &json("rpc"),
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "idle",
            [
                "connect",
                "--url",
                &rs,
                "--sessions",
                "400",
                "--rate",
                "400",
                "--hold",
                &d,
                "--threads",
                "1",
                "--json",
                &json("idle"),
            ]
            .map(String::from)
            .to_vec(),
        ),
    ];
    let mut clients: Vec<(&str, Killed)> = runs
        .iter()
        .map(|(name, args)| {
            let child = Command::new(env!("CARGO_BIN_EXE_wampload"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start wampload");
            (*name, Killed(child))
        })
        .collect();

    // Sample once a second until every client has finished (bounded).
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs + 120);
    let mut samples = Vec::new();
    while clients
        .iter_mut()
        .any(|(_, c)| c.0.try_wait().unwrap().is_none())
    {
        assert!(Instant::now() < deadline, "soak clients did not finish");
        samples.push((start.elapsed().as_secs_f64(), sample(pid)));
        std::thread::sleep(Duration::from_secs(1));
    }
    let statuses: Vec<_> = clients
        .iter_mut()
        .map(|(name, c)| (*name, c.0.wait().unwrap()))
        .collect();

    // Results: nothing lost, nothing failed.
    for (name, _) in &runs {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json(name)).unwrap()).unwrap();
        let status = statuses.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(status.success(), "{name}: wampload exit {status:?}: {v}");
        for key in ["lost", "duplicated", "errors"] {
            assert_eq!(num(&v, key), 0, "{name}: {key} in {v}");
        }
        if *name == "rpc" {
            assert_eq!(num(&v, "call_errors"), 0, "rpc: call_errors in {v}");
            assert!(num(&v, "results") > 0);
        } else if *name == "idle" {
            assert_eq!(num(&v, "established"), 400, "idle sessions: {v}");
        } else {
            assert!(num(&v, "delivered") > 0 && num(&v, "delivered") == num(&v, "expected"));
        }
    }

    // Memory flat after warm-up: the second half never exceeds the level reached by the end of the
    // first quarter by more than 25 % (plus a little allocator slack).
    let warm = samples
        .iter()
        .filter(|(t, _)| *t <= secs as f64 / 4.0 + 3.0)
        .map(|(_, (rss, _))| *rss)
        .max()
        .unwrap_or(0);
    let late = samples
        .iter()
        .filter(|(t, _)| *t >= secs as f64 / 2.0 && *t <= secs as f64)
        .map(|(_, (rss, _))| *rss)
        .max()
        .unwrap_or(0);
    let peak_fds = samples.iter().map(|(_, (_, f))| *f).max().unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    let (rss_end, fds_after) = sample(pid);
    eprintln!(
        "soak {secs} s: RSS after warm-up {warm} KiB, max in second half {late} KiB, at end {rss_end} KiB; \
         fds before {fds_before}, peak {peak_fds}, after {fds_after}"
    );
    assert!(
        peak_fds > fds_before + 1500,
        "the sessions were really open"
    );
    assert!(
        late <= warm + warm / 4 + 8 * 1024,
        "RSS grew: {warm} → {late} KiB"
    );
    assert!(
        fds_after <= fds_before + 2,
        "descriptors leaked: {fds_before} → {fds_after}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    drop(router);
}
