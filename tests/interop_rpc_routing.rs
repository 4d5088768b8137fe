//! Call routing interop: autobahn-python and autobahn-js (`tests/interop/rpc_routing_ab.py`,
//! `tests/interop/rpc_routing_ab.js`) against a real wampd with two shards, callees and callers on
//! both shards: `least_loaded`, sharded registration (`rkey`) and call rerouting. A missing client
//! fails the test (`bash tests/interop/setup.sh` installs them).

mod common;

use std::path::Path;

use common::interop::{dir as interop_dir, require, run_expecting};

#[test]
fn autobahn_python_call_routing() {
    let python = interop_dir().join(".venv").join("bin").join("python");
    run_expecting(
        &python,
        "rpc_routing_ab.py",
        true,
        "json",
        "OK routing-python",
    );
    run_expecting(
        &python,
        "rpc_routing_ab.py",
        false,
        "msgpack",
        "OK routing-python",
    );
}

#[test]
fn autobahn_js_call_routing() {
    require(&interop_dir().join("node_modules/autobahn/package.json"));
    for ser in ["json", "cbor"] {
        run_expecting(
            Path::new("node"),
            "rpc_routing_ab.js",
            true,
            ser,
            "OK routing-js",
        );
    }
}
