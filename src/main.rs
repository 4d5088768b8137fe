//! The `wampd` binary: command line → [`wampd::config::Config`] → [`wampd::server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use mimalloc::MiMalloc;
use wampd::config::Config;

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
    /// Bytes that may wait in one session's outbound queue; a session that lets more pile up (a slow
    /// consumer) is disconnected.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    max_queue_bytes: usize,
    /// Connections served at once; more are refused (RawSocket handshake error 4, WebSocket HTTP 503).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_sessions: usize,
    /// Do not pin shard threads to cores.
    #[arg(long)]
    no_pin: bool,
    /// Log level: error, warn, info, debug or trace (or a tracing filter such as wampd=debug).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
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
    config.pin_cores = !args.no_pin;

    if let Err(e) = wampd::server::run(config) {
        eprintln!("wampd: {e}");
        std::process::exit(1);
    }
}
