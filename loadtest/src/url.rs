//! Router addresses: `ws://host:port/path`, `rs://host:port`, `unix:///path`, and over TLS
//! `wss://host:port/path`, `rss://host:port` (also spelt `rs+tls://`).

use std::fmt;

use crate::tls::{Tls, Trust};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// WebSocket over TCP (TLS when `tls` is set).
    Ws {
        host: String,
        port: u16,
        path: String,
        tls: Option<Tls>,
    },
    /// RawSocket over TCP (TLS when `tls` is set).
    Rs {
        host: String,
        port: u16,
        tls: Option<Tls>,
    },
    /// RawSocket over a Unix domain socket.
    Unix { path: String },
}

impl Target {
    /// A plain-TCP or Unix target (TLS URLs are refused: they need a trust setting).
    #[cfg(test)]
    pub fn parse(url: &str) -> Result<Target, String> {
        Target::parse_with(url, &Trust::Unset)
    }

    /// Any target; TLS ones check the server as `trust` says.
    pub fn parse_with(url: &str, trust: &Trust) -> Result<Target, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("bad url {url:?}: expected scheme://..."))?;
        let scheme = scheme.to_ascii_lowercase();
        let secure = matches!(scheme.as_str(), "wss" | "rss" | "rs+tls");
        let tls = |host: &str| -> Result<Option<Tls>, String> {
            match secure {
                true => Tls::new(host, trust)
                    .map(Some)
                    .map_err(|e| format!("{url}: {e}")),
                false => Ok(None),
            }
        };
        match scheme.as_str() {
            "ws" | "wss" => {
                let (authority, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                let (host, port) = host_port(authority, if secure { 443 } else { 80 }, url)?;
                Ok(Target::Ws {
                    tls: tls(&host)?,
                    host,
                    port,
                    path: path.to_string(),
                })
            }
            "rs" | "tcp" | "rawsocket" | "rss" | "rs+tls" => {
                let authority = rest.trim_end_matches('/');
                if authority.contains('/') {
                    return Err(format!("bad url {url:?}: rs:// takes no path"));
                }
                let (host, port) = host_port(authority, 8080, url)?;
                Ok(Target::Rs {
                    tls: tls(&host)?,
                    host,
                    port,
                })
            }
            "unix" => {
                if rest.is_empty() {
                    return Err(format!("bad url {url:?}: missing socket path"));
                }
                Ok(Target::Unix {
                    path: rest.to_string(),
                })
            }
            other => Err(format!(
                "bad url {url:?}: unknown scheme {other:?} (use ws://, wss://, rs://, rss:// or unix://)"
            )),
        }
    }

    /// `host:port` to connect to (TCP targets only).
    pub fn addr(&self) -> Option<String> {
        match self {
            Target::Ws { host, port, .. } | Target::Rs { host, port, .. } => {
                if host.contains(':') {
                    Some(format!("[{host}]:{port}"))
                } else {
                    Some(format!("{host}:{port}"))
                }
            }
            Target::Unix { .. } => None,
        }
    }

    /// The TLS settings of a TLS target.
    pub fn tls(&self) -> Option<&Tls> {
        match self {
            Target::Ws { tls, .. } | Target::Rs { tls, .. } => tls.as_ref(),
            Target::Unix { .. } => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ws { path, tls, .. } => {
                let scheme = if tls.is_some() { "wss" } else { "ws" };
                write!(f, "{scheme}://{}{}", self.addr().unwrap_or_default(), path)
            }
            Target::Rs { tls, .. } => {
                let scheme = if tls.is_some() { "rss" } else { "rs" };
                write!(f, "{scheme}://{}", self.addr().unwrap_or_default())
            }
            Target::Unix { path } => write!(f, "unix://{path}"),
        }
    }
}

fn host_port(authority: &str, default_port: u16, url: &str) -> Result<(String, u16), String> {
    if authority.is_empty() {
        return Err(format!("bad url {url:?}: missing host"));
    }
    // [v6]:port
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("bad url {url:?}: unclosed ["))?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p, url)?,
            None if after.is_empty() => default_port,
            None => return Err(format!("bad url {url:?}")),
        };
        return Ok((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => {
            if h.is_empty() {
                return Err(format!("bad url {url:?}: missing host"));
            }
            Ok((h.to_string(), parse_port(p, url)?))
        }
        None => Ok((authority.to_string(), default_port)),
    }
}

fn parse_port(p: &str, url: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("bad url {url:?}: bad port {p:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        assert_eq!(
            Target::parse("ws://127.0.0.1:8080/ws").unwrap(),
            Target::Ws {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/ws".into(),
                tls: None,
            }
        );
        assert_eq!(
            Target::parse("ws://localhost:9000").unwrap(),
            Target::Ws {
                host: "localhost".into(),
                port: 9000,
                path: "/".into(),
                tls: None,
            }
        );
        assert_eq!(
            Target::parse("WS://example.org/a/b?x=1").unwrap(),
            Target::Ws {
                host: "example.org".into(),
                port: 80,
                path: "/a/b?x=1".into(),
                tls: None,
            }
        );
        let v6 = Target::parse("ws://[::1]:8080/").unwrap();
        assert_eq!(v6.addr().unwrap(), "[::1]:8080");
        assert_eq!(v6.to_string(), "ws://[::1]:8080/");
    }

    #[test]
    fn rawsocket_urls() {
        assert_eq!(
            Target::parse("rs://127.0.0.1:15000").unwrap(),
            Target::Rs {
                host: "127.0.0.1".into(),
                port: 15000,
                tls: None,
            }
        );
        assert_eq!(
            Target::parse("rs://127.0.0.1:15000/")
                .unwrap()
                .addr()
                .unwrap(),
            "127.0.0.1:15000"
        );
        assert_eq!(
            Target::parse("unix:///tmp/wampd.sock").unwrap(),
            Target::Unix {
                path: "/tmp/wampd.sock".into()
            }
        );
        assert_eq!(
            Target::parse("unix:///tmp/x.sock").unwrap().to_string(),
            "unix:///tmp/x.sock"
        );
    }

    #[test]
    fn tls_urls() {
        let insecure = Trust::Insecure;
        let wss = Target::parse_with("wss://localhost:8443/ws", &insecure).unwrap();
        assert!(wss.tls().is_some());
        assert_eq!(wss.to_string(), "wss://localhost:8443/ws");
        for url in ["rss://127.0.0.1:8443", "RS+TLS://127.0.0.1:8443/"] {
            let rss = Target::parse_with(url, &insecure).unwrap();
            assert!(matches!(rss, Target::Rs { port: 8443, .. }), "{url}");
            assert!(rss.tls().is_some(), "{url}");
            assert_eq!(rss.to_string(), "rss://127.0.0.1:8443");
        }
        let wss = Target::parse_with("wss://example.org", &insecure).unwrap();
        assert_eq!(wss.addr().unwrap(), "example.org:443");
        // Trust settings leave plain targets plain.
        let rs = Target::parse_with("rs://127.0.0.1:1", &insecure).unwrap();
        assert!(rs.tls().is_none());
        let missing = Trust::Ca("/nonexistent/ca.pem".into());
        let e = Target::parse_with("rss://127.0.0.1:1", &missing).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let e = Target::parse("wss://127.0.0.1:1/").unwrap_err();
        assert!(e.contains("--ca"), "{e}");
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "127.0.0.1:8080",
            "http://x:1/",
            "wss://x:1/",
            "rss://x:1",
            "ws://:80/",
            "ws://host:0/",
            "ws://host:99999/",
            "ws://host:abc/",
            "rs://host:1/path",
            "unix://",
            "ws://[::1:80/",
            "",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
