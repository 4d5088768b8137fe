//! Event history from the configuration file's `[[realm.history]]` tables, read by autobahn-python
//! (`tests/interop/history_config_ab.py`) from sessions on both shards of a two-shard router. The
//! client is installed by `tests/interop/setup.sh`; a missing client fails the test.

mod common;

use common::authz::{start_with_config, write_config};
use common::interop::{dir, require, run_script, url};

const CONFIG: &str = r#"
[[realm]]
name = "realm1"
anonymous_role = "anon"
  [[realm.role]]
  name = "anon"
    [[realm.role.permission]]
    uri = ""
    match = "prefix"
    allow = ["call", "register", "publish", "subscribe"]
  [[realm.history]]
  uri = "com.hist."
  match = "prefix"
  limit = 3
  [[realm.history]]
  uri = "wamp.session.on_join"
  limit = 10
"#;

#[test]
fn realm_history_from_the_file_with_autobahn_python() {
    let python = dir().join(".venv/bin/python");
    require(&python);
    let path = write_config("interop_history.toml", CONFIG);
    let mut failures = Vec::new();
    for (ws, ser) in [(false, "json"), (true, "msgpack"), (false, "cbor")] {
        // A fresh router per case: the on_join history must hold exactly the script's sessions.
        let router = start_with_config(2, &path);
        let url = url(&router.addr, ws);
        let o = run_script(&python, "history_config_ab.py", &[&url, ser]);
        let ok = format!("OK history-config-python {url} {ser}");
        if !(o.success() && o.stdout.lines().any(|l| l.trim_end() == ok)) {
            failures.push(format!(
                "{url} {ser} failed ({:?}):\n--- stdout:\n{}\n--- stderr:\n{}",
                o.status, o.stdout, o.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
