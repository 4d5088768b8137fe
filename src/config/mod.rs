//! Router configuration: every limit the router enforces lives here, so that one struct says what a
//! deployment allows. The command line (see `main.rs`) fills it; tests build it directly.

pub mod file;
pub mod load;
pub mod net;

use std::net::SocketAddr;
use std::path::PathBuf;

/// What happens to a session whose outbound queue is full. RPC results and errors are never
/// dropped: a caller whose answer cannot be queued is disconnected under either policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowConsumerPolicy {
    /// Close the slow session (ABORT-less close with a log line) so its queue cannot grow.
    Disconnect,
    /// Drop EVENTs for the slow session while its queue is full, counting them; it stays connected.
    Drop,
}

impl std::str::FromStr for SlowConsumerPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disconnect" => Ok(SlowConsumerPolicy::Disconnect),
            "drop" => Ok(SlowConsumerPolicy::Drop),
            other => Err(format!(
                "unknown slow-consumer policy {other:?} (drop|disconnect)"
            )),
        }
    }
}

/// A subscription pattern whose last `limit` events the router keeps (`--event-history`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistorySpec {
    pub policy: crate::protocol::uri::MatchPolicy,
    pub pattern: String,
    pub limit: usize,
}

/// Events one pattern may keep at most (its bytes are capped separately).
pub const MAX_HISTORY_LIMIT: usize = 100_000;

impl std::str::FromStr for HistorySpec {
    type Err = String;
    /// `[exact:|prefix:|wildcard:]PATTERN=N`, exact when no policy is named.
    fn from_str(s: &str) -> Result<Self, String> {
        use crate::protocol::uri::{self, MatchPolicy};
        let (pattern, n) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("{s:?}: expected [POLICY:]PATTERN=N"))?;
        let named = [
            MatchPolicy::Exact,
            MatchPolicy::Prefix,
            MatchPolicy::Wildcard,
        ]
        .into_iter()
        .find_map(|p| Some((p, pattern.strip_prefix(p.as_str())?.strip_prefix(':')?)));
        let (policy, pattern) = named.unwrap_or((MatchPolicy::Exact, pattern));
        let limit: usize = n.parse().map_err(|_| format!("{n:?} is not a count"))?;
        if limit == 0 || limit > MAX_HISTORY_LIMIT {
            return Err(format!("the count must be 1..={MAX_HISTORY_LIMIT}"));
        }
        if !uri::is_valid_pattern(pattern, policy, false) {
            return Err(format!(
                "{pattern:?} is not a valid {} pattern",
                policy.as_str()
            ));
        }
        Ok(HistorySpec {
            policy,
            pattern: pattern.to_string(),
            limit,
        })
    }
}

impl HistorySpec {
    /// The history realm `name` keeps: the global patterns (`--event-history`, `[router]
    /// event_history`) and then the realm's `[[realm.history]]` tables. The order matters: the store
    /// gives a pattern named twice its later limit, so the realm's own entry wins.
    pub fn for_realm(global: &[HistorySpec], specs: &[file::RealmSpec], name: &str) -> Vec<Self> {
        let own = specs.iter().filter(|r| r.name == name);
        let tables = own.flat_map(|r| r.history.iter()).map(|h| HistorySpec {
            policy: load::match_policy(h.match_),
            pattern: h.uri.clone(),
            limit: h.limit,
        });
        global.iter().cloned().chain(tables).collect()
    }
}

/// Throttling of failed logins per source address.
#[derive(Clone, Debug)]
pub struct AuthLimits {
    /// Failures within `window` after which an address is refused; 0 turns throttling off.
    pub max_failures: u32,
    pub window: std::time::Duration,
    /// How long a throttled address is refused.
    pub block: std::time::Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            max_failures: 5,
            window: std::time::Duration::from_secs(10),
            block: std::time::Duration::from_secs(60),
        }
    }
}

/// Where a TLS listener's certificate, key and optional client CA live (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With a client CA, clients are asked for a certificate but need not present one: a client
    /// without one may still log in by another method.
    pub client_ca: Option<PathBuf>,
}

/// A TCP listener speaking TLS (a client that starts in plain text is still served plainly).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsListener {
    pub addr: SocketAddr,
    pub files: TlsFiles,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (text|json)")),
        }
    }
}

/// The whole router configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// TCP addresses to listen on (WebSocket and RawSocket share each port).
    pub listen: Vec<SocketAddr>,
    /// Unix domain socket paths serving RawSocket.
    pub unix: Vec<PathBuf>,
    /// TCP listeners speaking TLS (wss and RawSocket over TLS on each).
    pub tls_listen: Vec<TlsListener>,
    /// Address of the Prometheus metrics endpoint (`GET /metrics`), if any.
    pub metrics: Option<SocketAddr>,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Number of shards (one thread, one runtime, one core each).
    pub shards: usize,
    /// Realms that exist; a HELLO naming another realm is refused.
    pub realms: Vec<String>,
    /// Per-realm security settings from the config file (roles, principals, anonymous role,
    /// authenticator, authorizer). A realm in `realms` without an entry here is open: anonymous
    /// sessions join with role `anonymous`, which may do everything.
    pub realm_specs: Vec<file::RealmSpec>,
    /// Throttling of failed logins per source address.
    pub auth_limits: AuthLimits,
    /// Largest WAMP message accepted or sent, in bytes (WebSocket message, RawSocket frame).
    pub max_message_size: usize,
    /// Bytes that may wait in one session's outbound queue before the slow-consumer policy applies.
    pub max_queue_bytes: usize,
    /// Messages that may wait in one session's outbound queue before the policy applies.
    pub max_queue_messages: usize,
    /// What to do with a session whose queue is full, for realms not named in `realm_policies`.
    pub slow_consumer: SlowConsumerPolicy,
    /// Per-realm slow-consumer policies.
    pub realm_policies: Vec<(String, SlowConsumerPolicy)>,
    /// Seconds a connection may take for its transport handshake.
    pub handshake_timeout: std::time::Duration,
    /// Seconds after the transport handshake within which HELLO must arrive.
    pub hello_timeout: std::time::Duration,
    /// A session silent this long gets a transport ping; silent for as long again, it is closed.
    pub idle_timeout: Option<std::time::Duration>,
    /// Longest URI accepted (topics, procedures, patterns).
    pub max_uri_length: usize,
    /// Accept request ids that do not count up by one (the spec requires they do; some old clients
    /// send random ids).
    pub lenient_request_ids: bool,
    /// Subscriptions one session may hold.
    pub max_subscriptions_per_session: usize,
    /// Registrations one session may hold.
    pub max_registrations_per_session: usize,
    /// Unanswered INVOCATIONs one callee may have before new calls to it fail fast.
    pub max_pending_invocations: usize,
    /// Calls one caller may have unanswered; further calls fail with `wamp.error.unavailable`.
    pub max_calls_per_caller: usize,
    /// Connections served at once; more are refused (RawSocket handshake error 4, HTTP 503).
    pub max_sessions: usize,
    /// Largest HTTP upgrade request accepted.
    pub max_handshake_size: usize,
    /// Messages one shard-to-shard ring holds; a full ring makes the sending shard stop reading the
    /// connections that feed it until the receiver catches up.
    pub ring_capacity: usize,
    /// Pin each shard thread to one core.
    pub pin_cores: bool,
    /// Force the epoll (legacy) driver even where io_uring works.
    pub force_epoll: bool,
    /// The configuration file this came from, reread on SIGHUP.
    pub config_file: Option<PathBuf>,
    /// Subscription patterns whose recent events are kept, in every realm.
    pub event_history: Vec<HistorySpec>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec!["127.0.0.1:8080".parse().expect("static address")],
            unix: Vec::new(),
            tls_listen: Vec::new(),
            metrics: None,
            log_format: LogFormat::Text,
            shards: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            realms: vec!["realm1".to_string()],
            realm_specs: Vec::new(),
            auth_limits: AuthLimits::default(),
            max_message_size: 16 * 1024 * 1024,
            max_queue_bytes: 64 * 1024 * 1024,
            max_queue_messages: 1_000_000,
            slow_consumer: SlowConsumerPolicy::Disconnect,
            realm_policies: Vec::new(),
            handshake_timeout: std::time::Duration::from_secs(10),
            hello_timeout: std::time::Duration::from_secs(10),
            idle_timeout: None,
            max_uri_length: 2048,
            lenient_request_ids: false,
            max_subscriptions_per_session: 10_000,
            max_registrations_per_session: 10_000,
            max_pending_invocations: 10_000,
            max_calls_per_caller: 10_000,
            max_sessions: 100_000,
            max_handshake_size: 16 * 1024,
            ring_capacity: crate::mesh::RING_CAPACITY,
            pin_cores: true,
            force_epoll: false,
            config_file: None,
            event_history: Vec::new(),
        }
    }
}
