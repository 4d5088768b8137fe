//! Advanced RPC interop: autobahn-python and autobahn-js (`tests/interop/rpc_ab.py`,
//! `tests/interop/rpc_ab.js`) against a real wampd with two shards, the callee and the caller on
//! different shards: progressive call results, call timeouts, call canceling, caller
//! identification, shared registration (round-robin). A missing client fails the test (`bash tests/interop/setup.sh` installs them).

mod common;

use std::path::Path;

use common::interop::{dir as interop_dir, require, run_expecting};

#[test]
fn autobahn_python_advanced_rpc() {
    let python = interop_dir().join(".venv").join("bin").join("python");
    run_expecting(&python, "rpc_ab.py", true, "json", "OK rpc-python");
    run_expecting(&python, "rpc_ab.py", false, "msgpack", "OK rpc-python");
    run_expecting(&python, "rpc_ab.py", false, "cbor", "OK rpc-python");
}

#[test]
fn autobahn_js_advanced_rpc() {
    require(&interop_dir().join("node_modules/autobahn/package.json"));
    for ser in ["json", "msgpack", "cbor"] {
        run_expecting(Path::new("node"), "rpc_ab.js", true, ser, "OK rpc-js");
    }
}
