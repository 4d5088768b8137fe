//! wampd: a thread-per-core WAMP router (Broker + Dealer).
//!
//! Layers, each depending only on those above it:
//! - [`protocol`]: the wire format — message views over borrowed frames, json/msgpack/cbor, URIs.
//! - [`transport`]: WebSocket and RawSocket framing, sans IO.
//! - [`mesh`]: lock-free shard-to-shard channels.
//! - [`router`]: routing state (realms, broker, dealer, sessions) and the per-message hot path.
//! - [`link`]: connections — handshakes, read loop, corked writes.
//! - [`server`]: shards, runtimes, listeners.

pub mod auth;
pub mod config;
pub mod link;
pub mod mesh;
pub mod protocol;
pub mod router;
pub mod server;
pub mod transport;
