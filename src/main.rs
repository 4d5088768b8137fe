//! The `wampd` binary: command line → [`wampd::config::Config`] → [`wampd::server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use mimalloc::MiMalloc;
use std::time::Duration;
use wampd::config::{Config, HistorySpec, SlowConsumerPolicy};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// A thread-per-core WAMP router (Broker + Dealer). WebSocket (wamp.2.json, wamp.2.msgpack,
/// wamp.2.cbor) and RawSocket share each TCP port.
#[derive(Parser, Debug)]
#[command(name = "wampd", version, about)]
struct Args {
    /// TCP address to listen on (repeatable). Default: 127.0.0.1:8080.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Serve RawSocket on a Unix domain socket at PATH (repeatable).
    #[arg(long = "unix", value_name = "PATH")]
    unix: Vec<PathBuf>,
    /// Number of shards (threads, one per core). Default: the number of cores.
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// A realm clients may join (repeatable). Default: realm1. Anonymous sessions may do everything.
    #[arg(long = "realm", value_name = "NAME")]
    realm: Vec<String>,
    /// Largest WAMP message accepted, in bytes (WebSocket message, RawSocket frame).
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    max_message_size: usize,
    /// Bytes that may wait in one session's outbound queue; beyond that the slow-consumer policy
    /// applies.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    max_queue_bytes: usize,
    /// Messages that may wait in one session's outbound queue.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    max_queue_messages: usize,
    /// What happens to a session whose outbound queue is full: `disconnect` it, or `drop` EVENTs
    /// for it (counted and logged) while it stays connected. RPC results are never dropped.
    #[arg(long, value_name = "POLICY", default_value = "disconnect")]
    slow_consumer: SlowConsumerPolicy,
    /// The slow-consumer policy of one realm, as REALM=drop|disconnect (repeatable).
    #[arg(long = "slow-consumer-realm", value_name = "REALM=POLICY", value_parser = parse_realm_policy)]
    slow_consumer_realm: Vec<(String, SlowConsumerPolicy)>,
    /// Keep the last N events of a subscription pattern, in every realm, for
    /// wamp.subscription.get_events: [exact:|prefix:|wildcard:]PATTERN=N (repeatable).
    #[arg(long = "event-history", value_name = "[POLICY:]PATTERN=N")]
    event_history: Vec<HistorySpec>,
    /// Seconds a connection may take for its WebSocket or RawSocket handshake.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    handshake_timeout: u64,
    /// Seconds within which HELLO must follow the transport handshake.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    hello_timeout: u64,
    /// Seconds of silence after which a session is pinged (WebSocket ping, RawSocket PING); silent
    /// for as long again, it is closed. 0 turns this off.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    idle_timeout: u64,
    /// Longest topic or procedure URI accepted.
    #[arg(long, value_name = "BYTES", default_value_t = 2048)]
    max_uri_length: usize,
    /// Accept session-scope request ids that do not count up by one per request (the spec makes
    /// that a protocol violation; some old clients send random ids).
    #[arg(long)]
    lenient_request_ids: bool,
    /// Subscriptions one session may hold (more get `wamp.error.unavailable`).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_subscriptions_per_session: usize,
    /// Registrations one session may hold (more get `wamp.error.unavailable`).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_registrations_per_session: usize,
    /// Unanswered calls one callee may have; further calls to it fail fast with
    /// `wamp.error.unavailable`.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_pending_invocations: usize,
    /// Unanswered calls one caller may have; further calls fail fast with `wamp.error.unavailable`.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_calls_per_caller: usize,
    /// Connections served at once; more are refused (RawSocket handshake error 4, WebSocket HTTP 503).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_sessions: usize,
    /// Messages one shard-to-shard ring holds (a full ring pauses reading on the sending shard).
    #[arg(long, value_name = "N", default_value_t = wampd::mesh::RING_CAPACITY)]
    ring_capacity: usize,
    /// Do not pin shard threads to cores.
    #[arg(long)]
    no_pin: bool,
    /// Log level: error, warn, info, debug or trace (or a tracing filter such as wampd=debug).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
}

fn parse_realm_policy(s: &str) -> Result<(String, SlowConsumerPolicy), String> {
    let (realm, policy) = s
        .split_once('=')
        .ok_or_else(|| format!("expected REALM=POLICY, got {s:?}"))?;
    Ok((realm.to_string(), policy.parse()?))
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let mut config = Config::default();
    if !args.listen.is_empty() || !args.unix.is_empty() {
        config.listen = args.listen;
    }
    config.unix = args.unix;
    if let Some(n) = args.shards {
        config.shards = n;
    }
    if !args.realm.is_empty() {
        config.realms = args.realm;
    }
    config.max_message_size = args.max_message_size;
    config.max_queue_bytes = args.max_queue_bytes;
    config.max_sessions = args.max_sessions;
    config.max_queue_messages = args.max_queue_messages;
    config.slow_consumer = args.slow_consumer;
    config.realm_policies = args.slow_consumer_realm;
    config.handshake_timeout = Duration::from_secs(args.handshake_timeout);
    config.hello_timeout = Duration::from_secs(args.hello_timeout);
    config.max_uri_length = args.max_uri_length;
    config.idle_timeout = (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    config.lenient_request_ids = args.lenient_request_ids;
    config.max_subscriptions_per_session = args.max_subscriptions_per_session;
    config.max_registrations_per_session = args.max_registrations_per_session;
    config.max_pending_invocations = args.max_pending_invocations;
    config.max_calls_per_caller = args.max_calls_per_caller;
    config.ring_capacity = args.ring_capacity;
    config.pin_cores = !args.no_pin;
    config.event_history = args.event_history;

    if let Err(e) = wampd::server::run(config) {
        eprintln!("wampd: {e}");
        std::process::exit(1);
    }
}
