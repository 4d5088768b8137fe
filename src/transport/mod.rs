//! Sans-IO transport codecs.
//!
//! Everything here works on byte buffers only (no sockets, no async), so the
//! same code serves the router's connection tasks and the load-generator
//! client, and can be tested exhaustively without a network.

pub mod rawsocket;
pub mod websocket;

/// What the transport knows about the other end, for authentication and logs.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    /// The remote address (TCP); None on a Unix socket.
    pub addr: Option<std::net::SocketAddr>,
    /// Present on TLS connections.
    pub tls: Option<TlsInfo>,
}

/// What a TLS connection established.
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    /// The client certificate's subject common name, if a client certificate was presented and
    /// verified.
    pub client_cn: Option<String>,
    /// SHA-256 of the client certificate (DER).
    pub client_sha256: Option<[u8; 32]>,
    /// Channel binding data (`tls-exporter`, or `tls-unique` where the client asks for it) for
    /// cryptosign's TLS channel binding.
    pub channel_binding: Option<Vec<u8>>,
}
