//! Router configuration: every limit the router enforces lives here, so that one struct says what a
//! deployment allows. The command line (see `main.rs`) fills it; tests build it directly.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What happens to a session whose outbound queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowConsumerPolicy {
    /// Close the slow session (with a log line) so that its queue cannot grow without bound.
    Disconnect,
}

/// The whole router configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// TCP addresses to listen on (WebSocket and RawSocket share each port).
    pub listen: Vec<SocketAddr>,
    /// Unix domain socket paths serving RawSocket.
    pub unix: Vec<PathBuf>,
    /// Number of shards (one thread, one runtime, one core each).
    pub shards: usize,
    /// Realms that exist; a HELLO naming another realm is refused.
    pub realms: Vec<String>,
    /// Largest WAMP message accepted or sent, in bytes (WebSocket message, RawSocket frame).
    pub max_message_size: usize,
    /// Bytes that may wait in one session's outbound queue before the slow-consumer policy applies.
    pub max_queue_bytes: usize,
    /// What to do with a session whose queue is full.
    pub slow_consumer: SlowConsumerPolicy,
    /// Connections served at once; more are refused (RawSocket handshake error 4, HTTP 503).
    pub max_sessions: usize,
    /// Largest HTTP upgrade request accepted.
    pub max_handshake_size: usize,
    /// Pin each shard thread to one core.
    pub pin_cores: bool,
    /// Force the epoll (legacy) driver even where io_uring works.
    pub force_epoll: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec!["127.0.0.1:8080".parse().expect("static address")],
            unix: Vec::new(),
            shards: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            realms: vec!["realm1".to_string()],
            max_message_size: 16 * 1024 * 1024,
            max_queue_bytes: 64 * 1024 * 1024,
            slow_consumer: SlowConsumerPolicy::Disconnect,
            max_sessions: 100_000,
            max_handshake_size: 16 * 1024,
            pin_cores: true,
            force_epoll: false,
        }
    }
}
