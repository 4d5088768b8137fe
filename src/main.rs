//! The `wampd` binary: command line → [`wampd::config::Config`] → [`wampd::server::run`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use mimalloc::MiMalloc;
use std::time::Duration;
use wampd::config::{Config, HistorySpec, LogFormat, SlowConsumerPolicy, TlsFiles, TlsListener};

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
    /// Largest WAMP message accepted, in bytes (WebSocket message, RawSocket frame). Default: 16 MiB.
    #[arg(long, value_name = "BYTES")]
    max_message_size: Option<usize>,
    /// Bytes that may wait in one session's outbound queue; beyond that the slow-consumer policy
    /// applies. Default: 64 MiB.
    #[arg(long, value_name = "BYTES")]
    max_queue_bytes: Option<usize>,
    /// Messages that may wait in one session's outbound queue. Default: 1000000.
    #[arg(long, value_name = "N")]
    max_queue_messages: Option<usize>,
    /// What happens to a session whose outbound queue is full: `disconnect` it, or `drop` EVENTs
    /// for it (counted and logged) while it stays connected. RPC results are never dropped. Default: disconnect.
    #[arg(long, value_name = "POLICY")]
    slow_consumer: Option<SlowConsumerPolicy>,
    /// The slow-consumer policy of one realm, as REALM=drop|disconnect (repeatable).
    #[arg(long = "slow-consumer-realm", value_name = "REALM=POLICY", value_parser = parse_realm_policy)]
    slow_consumer_realm: Vec<(String, SlowConsumerPolicy)>,
    /// Keep the last N events of a subscription pattern, in every realm, for
    /// wamp.subscription.get_events: [exact:|prefix:|wildcard:]PATTERN=N (repeatable).
    #[arg(long = "event-history", value_name = "[POLICY:]PATTERN=N")]
    event_history: Vec<HistorySpec>,
    /// Seconds a connection may take for its WebSocket or RawSocket handshake. Default: 10.
    #[arg(long, value_name = "SECS")]
    handshake_timeout: Option<u64>,
    /// Seconds within which HELLO must follow the transport handshake. Default: 10.
    #[arg(long, value_name = "SECS")]
    hello_timeout: Option<u64>,
    /// Seconds of silence after which a session is pinged (WebSocket ping, RawSocket PING); silent
    /// for as long again, it is closed. 0 turns this off. Default: 0.
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Longest topic or procedure URI accepted. Default: 2048.
    #[arg(long, value_name = "BYTES")]
    max_uri_length: Option<usize>,
    /// Accept session-scope request ids that do not count up by one per request (the spec makes
    /// that a protocol violation; some old clients send random ids).
    #[arg(long)]
    lenient_request_ids: bool,
    /// Subscriptions one session may hold (more get `wamp.error.unavailable`). Default: 10000.
    #[arg(long, value_name = "N")]
    max_subscriptions_per_session: Option<usize>,
    /// Registrations one session may hold (more get `wamp.error.unavailable`). Default: 10000.
    #[arg(long, value_name = "N")]
    max_registrations_per_session: Option<usize>,
    /// Unanswered calls one callee may have; further calls to it fail fast with
    /// `wamp.error.unavailable`. Default: 10000.
    #[arg(long, value_name = "N")]
    max_pending_invocations: Option<usize>,
    /// Unanswered calls one caller may have; further calls fail fast with `wamp.error.unavailable`.
    /// Default: 10000.
    #[arg(long, value_name = "N")]
    max_calls_per_caller: Option<usize>,
    /// Connections served at once; more are refused (RawSocket handshake error 4, WebSocket HTTP 503). Default: 100000.
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// Messages one shard-to-shard ring holds (a full ring pauses reading on the sending shard). Default: 8192.
    #[arg(long, value_name = "N")]
    ring_capacity: Option<usize>,
    /// Do not pin shard threads to cores.
    #[arg(long)]
    no_pin: bool,
    /// Log level: error, warn, info, debug or trace (or a tracing filter such as wampd=debug).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
    /// Log line format: `text`, or `json` (one object per line, for log collectors).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// TCP address of a TLS listener: wss and RawSocket over TLS, plain clients too (repeatable;
    /// needs --tls-cert and --tls-key).
    #[arg(long = "tls-listen", value_name = "ADDR:PORT", requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Vec<SocketAddr>,
    /// Server certificate chain (PEM) of the TLS listeners.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of the TLS listeners.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) whose client certificates the TLS listeners accept; clients may still connect
    /// without one.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Serve Prometheus metrics at GET /metrics on this address.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
    /// A TOML configuration file (see the README); flags given on the command line override it.
    /// SIGHUP rereads its realms, roles and principals.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Check a configuration file: print each error as FILE:LINE: key: message and exit 1, or exit 0.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Logs to stderr, as text or as one JSON object per line; in JSON the session's fields (session
/// id, realm, authid) come with every line written on its behalf, from its span.
fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

fn parse_realm_policy(s: &str) -> Result<(String, SlowConsumerPolicy), String> {
    let (realm, policy) = s
        .split_once('=')
        .ok_or_else(|| format!("expected REALM=POLICY, got {s:?}"))?;
    Ok((realm.to_string(), policy.parse()?))
}

/// `wampd check`: every error of the file, one per line, for an operator (or an editor) to jump to.
fn check(path: &Path) -> ! {
    match wampd::config::load::load(path, &mut Config::default()) {
        Ok(_) => {
            println!("{}: ok", path.display());
            std::process::exit(0)
        }
        Err(errors) => {
            print_errors(path, &errors);
            std::process::exit(1)
        }
    }
}

fn print_errors(path: &Path, errors: &[wampd::config::load::ConfigError]) {
    for e in errors {
        if e.line == 0 {
            eprintln!("{}: {}", path.display(), e.message);
        } else {
            eprintln!("{}:{}: {}: {}", path.display(), e.line, e.key, e.message);
        }
    }
}

/// Command-line flags win over the file: only those given replace a value.
fn apply_flags(args: Args, config: &mut Config) {
    if !args.listen.is_empty() || !args.unix.is_empty() || !args.tls_listen.is_empty() {
        config.listen = args.listen;
        config.unix = args.unix;
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        };
        config.tls_listen = args
            .tls_listen
            .iter()
            .map(|&addr| TlsListener {
                addr,
                files: files.clone(),
            })
            .collect();
    }
    config.log_format = args.log_format;
    set(&mut config.metrics, args.metrics.map(Some));
    set(&mut config.max_calls_per_caller, args.max_calls_per_caller);
    if !args.realm.is_empty() {
        config.realms = args.realm;
    }
    if !args.slow_consumer_realm.is_empty() {
        config.realm_policies = args.slow_consumer_realm;
    }
    let secs = Duration::from_secs;
    set(&mut config.shards, args.shards);
    set(&mut config.max_message_size, args.max_message_size);
    set(&mut config.max_queue_bytes, args.max_queue_bytes);
    set(&mut config.max_sessions, args.max_sessions);
    set(&mut config.max_queue_messages, args.max_queue_messages);
    set(&mut config.slow_consumer, args.slow_consumer);
    set(
        &mut config.handshake_timeout,
        args.handshake_timeout.map(secs),
    );
    set(&mut config.hello_timeout, args.hello_timeout.map(secs));
    set(&mut config.max_uri_length, args.max_uri_length);
    if let Some(s) = args.idle_timeout {
        config.idle_timeout = (s > 0).then(|| secs(s));
    }
    if args.lenient_request_ids {
        config.lenient_request_ids = true;
    }
    set(
        &mut config.max_subscriptions_per_session,
        args.max_subscriptions_per_session,
    );
    set(
        &mut config.max_registrations_per_session,
        args.max_registrations_per_session,
    );
    set(
        &mut config.max_pending_invocations,
        args.max_pending_invocations,
    );
    set(&mut config.ring_capacity, args.ring_capacity);
    if args.no_pin {
        config.pin_cores = false;
    }
    if !args.event_history.is_empty() {
        config.event_history = args.event_history;
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn main() {
    let args = Args::parse();
    if let Some(Command::Check { config }) = &args.command {
        check(config);
    }
    init_logging(&args.log_level, args.log_format);

    let mut config = Config::default();
    if let Some(path) = &args.config {
        if let Err(errors) = wampd::config::load::load(path, &mut config) {
            print_errors(path, &errors);
            std::process::exit(1);
        }
        config.config_file = Some(path.clone());
    }
    apply_flags(args, &mut config);

    if let Err(e) = wampd::server::run(config) {
        eprintln!("wampd: {e}");
        std::process::exit(1);
    }
}
