//! Payload passthru interop against a 2-shard wampd: autobahn-python (WebSocket and RawSocket ×
//! json/msgpack/cbor; it has no `ppt_*` API, so the script adds the wire attributes to its
//! messages) and wampy.js (WebSocket × json/msgpack/cbor; it speaks the mode natively). autobahn-js
//! 22.11 has no payload passthru mode. The scripts are `tests/interop/ppt_*`; a missing client
//! fails the test (install with `bash tests/interop/setup.sh`).

mod common;

use std::path::PathBuf;

use common::interop::{dir as interop_dir, require, run_all};

#[test]
fn autobahn_python_payload_passthru() {
    let python = interop_dir().join(".venv/bin/python");
    require(&python);
    let mut cases = Vec::new();
    for ws in [true, false] {
        for ser in ["json", "msgpack", "cbor"] {
            cases.push((python.clone(), "ppt_ab.py", ws, ser));
        }
    }
    run_all(cases);
}

#[test]
fn wampy_js_payload_passthru() {
    require(&interop_dir().join("node_modules/wampy/package.json"));
    let node = PathBuf::from("node");
    let cases = ["json", "msgpack", "cbor"]
        .into_iter()
        .map(|ser| (node.clone(), "ppt_wampy.mjs", true, ser))
        .collect();
    run_all(cases);
}
