//! The TOML configuration file's schema (`wampd --config FILE`).
//!
//! The key names here are a published contract: deployments and outside tests use them. Keys may be
//! added; existing ones are never renamed. Paths are relative to the file that names them.

use std::path::PathBuf;

use serde::Deserialize;

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listeners: TCP (WebSocket and RawSocket on one port, optionally TLS) or a Unix socket.
    #[serde(default)]
    pub listen: Vec<ListenSpec>,
    /// The Prometheus endpoint.
    pub metrics: Option<MetricsSpec>,
    /// Realms, with their roles, principals and dynamic authenticator/authorizer.
    #[serde(default)]
    pub realm: Vec<RealmSpec>,
    /// Limits and tuning otherwise given as command-line flags (a flag given wins).
    pub router: Option<RouterSpec>,
}

/// `[router]`: the command line's limits, so that a deployment can keep them in one file. Each key
/// has the meaning and default of the flag of the same name (with `-` written `_`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    pub shards: Option<usize>,
    pub max_message_size: Option<usize>,
    pub max_queue_bytes: Option<usize>,
    pub max_queue_messages: Option<usize>,
    /// `drop` or `disconnect`.
    pub slow_consumer: Option<String>,
    pub max_sessions: Option<usize>,
    /// Seconds.
    pub handshake_timeout: Option<u64>,
    /// Seconds.
    pub hello_timeout: Option<u64>,
    /// Seconds; 0 turns idle pings off.
    pub idle_timeout: Option<u64>,
    pub max_uri_length: Option<usize>,
    pub lenient_request_ids: Option<bool>,
    pub max_subscriptions_per_session: Option<usize>,
    pub max_registrations_per_session: Option<usize>,
    pub max_pending_invocations: Option<usize>,
    pub max_calls_per_caller: Option<usize>,
    pub ring_capacity: Option<usize>,
    /// Subscription patterns whose last events are kept (every realm), each written as the
    /// `--event-history` flag: `"[exact:|prefix:|wildcard:]PATTERN=N"`.
    pub event_history: Option<Vec<String>>,
    /// Pin shard threads to cores (the opposite of `--no-pin`).
    pub pin: Option<bool>,
}

/// One `[[listen]]` table: exactly one of `address` and `unix`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSpec {
    /// `host:port` for TCP.
    pub address: Option<String>,
    /// A Unix socket path (RawSocket).
    pub unix: Option<PathBuf>,
    /// TLS on this TCP listener (wss and RawSocket over TLS).
    pub tls: Option<TlsSpec>,
}

/// Server certificate and key; `client_ca` asks for (optional) client certificates.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// `[metrics]`: where `GET /metrics` is served.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSpec {
    pub listen: String,
}

/// One `[[realm]]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmSpec {
    pub name: String,
    /// The role anonymous sessions get; absent: anonymous sessions are refused on this realm.
    pub anonymous_role: Option<String>,
    #[serde(default)]
    pub role: Vec<RoleSpec>,
    #[serde(default)]
    pub principal: Vec<PrincipalSpec>,
    /// Decides authids not listed as principals.
    pub authenticator: Option<ProcedureRef>,
    /// Dynamic authorization.
    pub authorizer: Option<ProcedureRef>,
    /// Event history kept in this realm, on top of `[router] event_history` (which every realm
    /// keeps); a pattern named in both keeps this table's limit.
    #[serde(default)]
    pub history: Vec<HistoryTableSpec>,
}

/// One `[[realm.history]]`: a subscription pattern whose last `limit` events are kept for
/// `wamp.subscription.get_events`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryTableSpec {
    pub uri: String,
    #[serde(rename = "match", default)]
    pub match_: MatchKind,
    pub limit: usize,
}

/// One `[[realm.role]]`: what sessions with this role may do.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    pub name: String,
    #[serde(default)]
    pub permission: Vec<PermissionSpec>,
}

/// One `[[realm.role.permission]]`: actions allowed on the URIs a pattern matches.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionSpec {
    pub uri: String,
    #[serde(rename = "match", default)]
    pub match_: MatchKind,
    #[serde(default)]
    pub allow: Vec<Action>,
    /// Disclosure the router enforces for this role: `caller` on calls, `publisher` on publications.
    #[serde(default)]
    pub disclose: Vec<Disclose>,
}

/// How a permission's `uri` matches (the same rules as pattern-based subscriptions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchKind {
    #[default]
    Exact,
    Prefix,
    Wildcard,
}

/// An action a permission allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Call,
    Register,
    Publish,
    Subscribe,
}

/// Whose identity the router discloses for a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Disclose {
    Caller,
    Publisher,
}

/// One `[[realm.principal]]`: an authid, its role, and the credentials it may log in with (any
/// number of methods).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSpec {
    pub authid: String,
    pub role: String,
    pub ticket: Option<String>,
    pub wampcra: Option<WampCraSpec>,
    pub scram: Option<ScramSpec>,
    /// Hex Ed25519 public keys.
    pub cryptosign: Option<Vec<String>>,
    /// Client-certificate login: the certificate's subject CN is the authid.
    pub tls: Option<TlsPrincipalSpec>,
}

/// WAMP-CRA credentials: `secret` is the password; with `salt` the key is derived (PBKDF2) as
/// WAMP-CRA specifies.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WampCraSpec {
    pub secret: String,
    pub salt: Option<String>,
    pub iterations: Option<u32>,
    pub keylen: Option<u32>,
}

/// SCRAM credentials.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScramSpec {
    pub password: String,
    #[serde(default)]
    pub kdf: Kdf,
    pub iterations: Option<u32>,
    /// Argon2 memory in KiB.
    pub memory: Option<u32>,
}

/// SCRAM key derivation function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Kdf {
    #[default]
    #[serde(rename = "argon2id13")]
    Argon2id13,
    #[serde(rename = "pbkdf2")]
    Pbkdf2,
}

/// Client-certificate principal; `fingerprint` (SHA-256 hex, case and colons ignored) pins it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPrincipalSpec {
    pub fingerprint: Option<String>,
}

/// A procedure the router calls, and the realm where a trusted session registered it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureRef {
    pub procedure: String,
    pub realm: String,
    /// Milliseconds the router waits for the answer before it refuses (default 10 000): a bound,
    /// so that a procedure that hangs cannot hold logins or requests forever.
    #[serde(default)]
    pub timeout: Option<u64>,
}

impl ProcedureRef {
    /// How long the router waits for this procedure's answer.
    pub fn answer_timeout(&self) -> std::time::Duration {
        self.timeout
            .map_or(DEFAULT_ANSWER_TIMEOUT, std::time::Duration::from_millis)
    }
}

/// How long the router waits for an authenticator's or authorizer's answer unless told otherwise.
pub const DEFAULT_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest `timeout` a procedure reference may name (ms): longer would park requests for
/// longer than any client waits.
pub const MAX_ANSWER_TIMEOUT_MS: u64 = 600_000;

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the README's contract parses key for key.
    #[test]
    fn contract_keys_parse() {
        let text = r#"
[[listen]]
address = "127.0.0.1:8443"
tls = { cert = "server.crt", key = "server.key", client_ca = "ca.crt" }
[[listen]]
unix = "/tmp/wampd.sock"
[metrics]
listen = "127.0.0.1:9100"
[[realm]]
name = "realm1"
anonymous_role = "anonymous"
  [[realm.role]]
  name = "frontend"
    [[realm.role.permission]]
    uri = "com.example."
    match = "prefix"
    allow = ["call", "subscribe"]
    disclose = ["caller"]
  [[realm.principal]]
  authid = "joe"
  role = "frontend"
  ticket = "secret"
  [[realm.principal]]
  authid = "ann"
  role = "frontend"
  wampcra = { secret = "pw", salt = "s", iterations = 100, keylen = 32 }
  scram = { password = "pw", kdf = "pbkdf2" }
  cryptosign = ["00ff"]
  tls = { fingerprint = "AB:CD" }
  [realm.authenticator]
  procedure = "com.example.authenticate"
  realm = "auth"
  [realm.authorizer]
  procedure = "com.example.authorize"
  realm = "auth"
  [[realm.history]]
  uri = "com.example.ticker."
  match = "prefix"
  limit = 100
"#;
        let c: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(
            c.listen[0].tls.as_ref().unwrap().client_ca.as_deref(),
            Some(std::path::Path::new("ca.crt"))
        );
        assert_eq!(c.metrics.unwrap().listen, "127.0.0.1:9100");
        let r = &c.realm[0];
        assert_eq!(r.anonymous_role.as_deref(), Some("anonymous"));
        assert_eq!(r.role[0].permission[0].match_, MatchKind::Prefix);
        assert_eq!(
            r.role[0].permission[0].allow,
            vec![Action::Call, Action::Subscribe]
        );
        assert_eq!(r.principal[1].scram.as_ref().unwrap().kdf, Kdf::Pbkdf2);
        assert_eq!(r.authorizer.as_ref().unwrap().realm, "auth");
        assert_eq!(
            r.history,
            [HistoryTableSpec {
                uri: "com.example.ticker.".into(),
                match_: MatchKind::Prefix,
                limit: 100,
            }]
        );
    }
}
