//! Sans-IO transport codecs.
//!
//! Everything here works on byte buffers only (no sockets, no async), so the
//! same code serves the router's connection tasks and the load-generator
//! client, and can be tested exhaustively without a network.

pub mod rawsocket;
pub mod websocket;
