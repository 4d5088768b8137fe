//! Advanced PubSub interop: autobahn-python (WebSocket and RawSocket × json/msgpack/cbor),
//! autobahn-js and wampy.js (WebSocket × json/msgpack/cbor) against a 2-shard wampd — black/white
//! listing, publisher identification, event retention (not in wampy.js, which does not send
//! `retain`). The scripts live in `tests/interop/pubsub_*`;
//! a missing client fails the test (install with `bash tests/interop/setup.sh`).

mod common;

use std::path::PathBuf;

use common::interop::{dir as interop_dir, require, run_all};

#[test]
fn autobahn_python_advanced_pubsub() {
    let python = interop_dir().join(".venv/bin/python");
    require(&python);
    let mut cases = Vec::new();
    for ws in [true, false] {
        for ser in ["json", "msgpack", "cbor"] {
            cases.push((python.clone(), "pubsub_ab.py", ws, ser));
        }
    }
    run_all(cases);
}

#[test]
fn autobahn_js_advanced_pubsub() {
    require(&interop_dir().join("node_modules/autobahn/package.json"));
    let node = PathBuf::from("node");
    let cases = ["json", "msgpack", "cbor"]
        .into_iter()
        .map(|ser| (node.clone(), "pubsub_ab.js", true, ser))
        .collect();
    run_all(cases);
}

#[test]
fn wampy_js_advanced_pubsub() {
    require(&interop_dir().join("node_modules/wampy/package.json"));
    let node = PathBuf::from("node");
    let cases = ["json", "msgpack", "cbor"]
        .into_iter()
        .map(|ser| (node.clone(), "pubsub_wampy.mjs", true, ser))
        .collect();
    run_all(cases);
}
