use super::*;
use crate::config::HistorySpec;

fn load(text: &str) -> Result<(Loaded, Config), Vec<ConfigError>> {
    let mut config = Config::default();
    let loaded = load_str(text, Path::new("/etc/wampd"), &mut config)?;
    Ok((loaded, config))
}

fn errors(text: &str) -> Vec<ConfigError> {
    match load(text) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts that exactly the (line, key) pairs given were reported, with `fragment` in each message.
fn assert_errors(text: &str, want: &[(usize, &str, &str)]) {
    let got = errors(text);
    let pairs: Vec<(usize, &str)> = got.iter().map(|e| (e.line, e.key.as_str())).collect();
    let wanted: Vec<(usize, &str)> = want.iter().map(|(l, k, _)| (*l, *k)).collect();
    assert_eq!(pairs, wanted, "errors: {got:#?}");
    for (e, (_, _, frag)) in got.iter().zip(want) {
        assert!(e.message.contains(frag), "{:?} lacks {frag:?}", e.message);
    }
}

const GOOD: &str = r#"
[[listen]]
address = "127.0.0.1:18080"
[[listen]]
unix = "wampd.sock"
[router]
shards = 3
slow_consumer = "drop"
idle_timeout = 0
[[realm]]
name = "realm1"
anonymous_role = "guest"
  [[realm.role]]
  name = "guest"
    [[realm.role.permission]]
    uri = "com.example."
    match = "prefix"
    allow = ["call", "subscribe"]
  [[realm.principal]]
  authid = "joe"
  role = "guest"
  ticket = "secret"
[[realm]]
name = "auth"
"#;

#[test]
fn a_good_file_applies() {
    let (loaded, c) = load(GOOD).unwrap();
    assert_eq!(c.listen, vec!["127.0.0.1:18080".parse().unwrap()]);
    assert_eq!(c.unix, vec![PathBuf::from("/etc/wampd/wampd.sock")]);
    assert_eq!(c.shards, 3);
    assert_eq!(c.slow_consumer, SlowConsumerPolicy::Drop);
    assert_eq!(c.realms, vec!["realm1".to_string(), "auth".to_string()]);
    assert_eq!(c.realm_specs.len(), 2);
    assert_eq!(loaded.file.realm[0].role[0].permission.len(), 1);
    assert_eq!(loaded.base_dir, PathBuf::from("/etc/wampd"));
}

#[test]
fn an_empty_file_keeps_the_defaults() {
    let (_, c) = load("").unwrap();
    let d = Config::default();
    assert_eq!(c.listen, d.listen);
    assert_eq!(c.realms, d.realms);
    assert!(c.realm_specs.is_empty());
}

#[test]
fn syntax_errors_name_their_line() {
    let got = errors("[router]\nshards = 2\nthis is not toml\n");
    assert!(!got.is_empty());
    assert_eq!(got[0].line, 3, "{got:?}");
}

#[test]
fn unknown_keys_everywhere_are_all_reported() {
    assert_errors(
        r#"colour = "blue"
[[listen]]
address = "127.0.0.1:1"
port = 3
[[realm]]
name = "r"
anonymous_role = "a"
  [[realm.role]]
  name = "a"
  colour = 1
    [[realm.role.permission]]
    uri = "x"
    allowed = ["call"]
  [[realm.principal]]
  authid = "j"
  role = "a"
  tiket = "s"
"#,
        &[
            (1, "colour", "unknown key"),
            (4, "listen[0].port", "unknown field"),
            (10, "realm[0].role[0].colour", "unknown field"),
            (
                13,
                "realm[0].role[0].permission[0].allowed",
                "unknown field",
            ),
            (17, "realm[0].principal[0].tiket", "unknown field"),
        ],
    );
}

#[test]
fn bad_values_are_reported_at_their_key() {
    assert_errors(
        r#"[[realm]]
name = "r"
anonymous_role = "a"
  [[realm.role]]
  name = "a"
    [[realm.role.permission]]
    uri = "x"
    match = "regex"
    [[realm.role.permission]]
    uri = "y"
    allow = ["call", "delete"]
    [[realm.role.permission]]
    uri = "z"
    disclose = ["callee"]
"#,
        &[
            (8, "realm[0].role[0].permission[0].match", "unknown variant"),
            (
                11,
                "realm[0].role[0].permission[1].allow[1]",
                "unknown variant",
            ),
            (
                14,
                "realm[0].role[0].permission[2].disclose[0]",
                "unknown variant",
            ),
        ],
    );
}

#[test]
fn undefined_roles_are_errors() {
    assert_errors(
        r#"[[realm]]
name = "r"
anonymous_role = "nobody"
  [[realm.role]]
  name = "a"
  [[realm.principal]]
  authid = "j"
  role = "b"
  ticket = "t"
"#,
        &[
            (3, "realm[0].anonymous_role", "not defined"),
            (8, "realm[0].principal[0].role", "not defined"),
        ],
    );
}

#[test]
fn duplicates_are_errors() {
    assert_errors(
        r#"[[realm]]
name = "r"
  [[realm.role]]
  name = "a"
    [[realm.role.permission]]
    uri = "x."
    match = "prefix"
    [[realm.role.permission]]
    uri = "x."
    match = "prefix"
  [[realm.role]]
  name = "a"
  [[realm.principal]]
  authid = "j"
  role = "a"
  ticket = "t"
  [[realm.principal]]
  authid = "j"
  role = "a"
  ticket = "u"
[[realm]]
name = "r"
"#,
        &[
            (9, "realm[0].role[0].permission[1].uri", "already given"),
            (12, "realm[0].role[1].name", "defined twice"),
            (18, "realm[0].principal[1].authid", "defined twice"),
            (22, "realm[1].name", "defined twice"),
        ],
    );
}

#[test]
fn bad_uris_and_realm_names() {
    assert_errors(
        r#"[[realm]]
name = "bad realm"
  [[realm.role]]
  name = "a"
    [[realm.role.permission]]
    uri = "com..x"
    [[realm.role.permission]]
    uri = "com.#.x"
    match = "wildcard"
    [[realm.role.permission]]
    uri = ""
    match = "prefix"
"#,
        &[
            (2, "realm[0].name", "not a valid realm name"),
            (
                6,
                "realm[0].role[0].permission[0].uri",
                "not a valid exact pattern",
            ),
            (
                8,
                "realm[0].role[0].permission[1].uri",
                "not a valid wildcard pattern",
            ),
        ],
    );
}

#[test]
fn bad_addresses_and_listeners() {
    assert_errors(
        r#"[[listen]]
address = "localhost"
[[listen]]
[[listen]]
address = "127.0.0.1:1"
unix = "/tmp/x"
[[listen]]
unix = "/tmp/y"
tls = { cert = "c", key = "k" }
"#,
        &[
            (2, "listen[0].address", "not an address"),
            (3, "listen[1]", "exactly one"),
            (4, "listen[2]", "exactly one"),
            (9, "listen[3].tls", "TCP listeners only"),
        ],
    );
}

#[test]
fn tls_listeners_and_metrics_are_mapped_relative_to_the_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = Config::default();
    load_str(
        r#"[[listen]]
address = "127.0.0.1:18443"
tls = { cert = "Cargo.toml", key = "Cargo.lock", client_ca = "README.md" }
[[listen]]
address = "127.0.0.1:18080"
[metrics]
listen = "127.0.0.1:19100"
"#,
        dir,
        &mut config,
    )
    .expect("valid");
    assert_eq!(config.listen, vec!["127.0.0.1:18080".parse().unwrap()]);
    assert_eq!(config.tls_listen.len(), 1);
    let t = &config.tls_listen[0];
    assert_eq!(t.addr, "127.0.0.1:18443".parse().unwrap());
    assert_eq!(t.files.cert, dir.join("Cargo.toml"));
    assert_eq!(t.files.client_ca, Some(dir.join("README.md")));
    assert_eq!(config.metrics, Some("127.0.0.1:19100".parse().unwrap()));
}

#[test]
fn missing_certificates_and_bad_metrics_name_their_keys() {
    assert_errors(
        r#"[[listen]]
address = "127.0.0.1:18443"
tls = { cert = "missing.crt", key = "missing.key" }
[metrics]
listen = "nine"
"#,
        &[
            (3, "listen[0].tls.cert", "/etc/wampd/missing.crt"),
            (3, "listen[0].tls.key", "/etc/wampd/missing.key"),
            (5, "metrics.listen", "not an address"),
        ],
    );
}

#[test]
fn event_history_and_call_cap_come_from_the_router_table() {
    let (_, config) = load(
        "[router]\nmax_calls_per_caller = 7\nevent_history = [\"com.a=5\", \"prefix:com.b.=9\"]\n",
    )
    .expect("valid");
    assert_eq!(config.max_calls_per_caller, 7);
    let kept: Vec<(String, usize)> = config
        .event_history
        .iter()
        .map(|h| (h.pattern.clone(), h.limit))
        .collect();
    assert_eq!(kept, vec![("com.a".into(), 5), ("com.b.".into(), 9)]);
    assert_errors(
        "[router]\nevent_history = [\"com.a=5\",\n  \"com.b=0\"]\n",
        &[(3, "router.event_history[1]", "1..=100000")],
    );
}

#[test]
fn bad_credentials() {
    assert_errors(
        r#"[[realm]]
name = "r"
  [[realm.role]]
  name = "a"
  [[realm.principal]]
  authid = "nothing"
  role = "a"
  [[realm.principal]]
  authid = "keys"
  role = "a"
  cryptosign = ["00ff"]
  tls = { fingerprint = "AB:CD" }
  wampcra = { secret = "s", iterations = 0 }
"#,
        &[
            (5, "realm[0].principal[0]", "at least one"),
            (11, "realm[0].principal[1].cryptosign[0]", "64 hex"),
            (12, "realm[0].principal[1].tls.fingerprint", "64 hex"),
            (13, "realm[0].principal[1].wampcra.iterations", "at least 1"),
        ],
    );
}

#[test]
fn authenticator_and_authorizer_refer_to_defined_realms() {
    assert_errors(
        r#"[[realm]]
name = "r"
  [realm.authenticator]
  procedure = "com.example.authenticate"
  realm = "auth"
  [realm.authorizer]
  procedure = "not a uri"
  realm = "r"
"#,
        &[
            (5, "realm[0].authenticator.realm", "not defined"),
            (7, "realm[0].authorizer.procedure", "not a valid procedure"),
        ],
    );
}

#[test]
fn router_values_are_checked() {
    assert_errors(
        r#"[router]
shards = 0
max_queue_bytes = 0
slow_consumer = "ignore"
pin = "yes"
"#,
        &[(5, "router.pin", "invalid type")],
    );
    assert_errors(
        "[router]\nshards = 0\nmax_queue_bytes = 0\nslow_consumer = \"ignore\"\n",
        &[
            (2, "router.shards", "between 1 and 64"),
            (3, "router.max_queue_bytes", "at least 1"),
            (4, "router.slow_consumer", "unknown slow-consumer policy"),
        ],
    );
}

#[test]
fn procedure_timeouts_are_bounded() {
    let text = |t: u64| {
        format!(
            r#"[[realm]]
name = "r"
  [realm.authorizer]
  procedure = "com.example.authorize"
  realm = "r"
  timeout = {t}
"#
        )
    };
    assert_errors(&text(0), &[(6, "realm[0].authorizer.timeout", "1 to")]);
    assert_errors(
        &text(MAX_ANSWER_TIMEOUT_MS + 1),
        &[(6, "realm[0].authorizer.timeout", "milliseconds")],
    );
    let (_, config) = load(&text(1500)).expect("a valid timeout");
    let authorizer = config.realm_specs[0].authorizer.as_ref().unwrap();
    assert_eq!(
        authorizer.answer_timeout(),
        std::time::Duration::from_millis(1500)
    );
}

const REALM_HISTORY: &str = r#"[router]
event_history = ["com.shared=5", "prefix:com.all.=7"]
[[realm]]
name = "a"
  [[realm.history]]
  uri = "com.example.ticker."
  match = "prefix"
  limit = 100
  [[realm.history]]
  uri = "com.shared"
  limit = 50
[[realm]]
name = "b"
"#;

/// Realm tables add to the `[router]` patterns of their realm only; a pattern in both keeps the
/// realm's limit (the store lets the later entry win, and the realm's come later).
#[test]
fn realm_history_adds_to_the_global_patterns() {
    let (loaded, config) = load(REALM_HISTORY).expect("valid");
    let of = |realm| {
        HistorySpec::for_realm(&config.event_history, &loaded.file.realm, realm)
            .into_iter()
            .map(|h| (h.policy, h.pattern, h.limit))
            .collect::<Vec<_>>()
    };
    let global = [
        (MatchPolicy::Exact, "com.shared".to_string(), 5),
        (MatchPolicy::Prefix, "com.all.".to_string(), 7),
    ];
    assert_eq!(of("b"), global);
    let mut a = global.to_vec();
    a.push((MatchPolicy::Prefix, "com.example.ticker.".into(), 100));
    a.push((MatchPolicy::Exact, "com.shared".into(), 50));
    assert_eq!(of("a"), a);
    assert_eq!(of("not-in-the-file"), global);
}

#[test]
fn bad_realm_history_entries_name_line_and_key() {
    assert_errors(
        r#"[[realm]]
name = "r"
  [[realm.history]]
  uri = "com.a"
  match = "sometimes"
  limit = 3
  [[realm.history]]
  uri = "com.b"
  limit = 0
  [[realm.history]]
  uri = "com.c"
  limit = 100001
  [[realm.history]]
  uri = "com..d"
  limit = 4
  [[realm.history]]
  uri = "com..d"
  match = "wildcard"
  limit = 4
  [[realm.history]]
  uri = "com..d"
  match = "wildcard"
  limit = 9
  [[realm.history]]
  uri = "com.e"
  limit = 1
  colour = "red"
"#,
        &[
            (5, "realm[0].history[0].match", "sometimes"),
            (9, "realm[0].history[1].limit", "1..=100000"),
            (12, "realm[0].history[2].limit", "1..=100000"),
            (14, "realm[0].history[3].uri", "not a valid exact pattern"),
            (21, "realm[0].history[5].uri", "already configured"),
            (27, "realm[0].history[6].colour", "unknown field"),
        ],
    );
    assert_errors(
        "[[realm]]\nname = \"r\"\nhistory = 3\n",
        &[(3, "realm[0].history", "expected an array")],
    );
}
