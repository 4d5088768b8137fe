//! Helpers for TLS, metrics and log tests: a CA made by the test, TLS clients, and a router
//! process whose log lines the test reads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use wampd::protocol::{Message, Serializer, Val};

/// Still reachable here for tests written before the CA moved to its own file.
#[allow(unused_imports)]
pub use super::ca::TestCa;

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Opens a TLS connection to `addr` trusting `ca`, presenting `client` if given.
pub fn tls_connect(
    addr: &str,
    ca: &CertificateDer<'static>,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> std::io::Result<TlsStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// A WAMP session over RawSocket (msgpack) on any byte stream.
pub struct RsSession<S: Read + Write> {
    pub s: S,
    pub session: u64,
    next: u64,
}

impl<S: Read + Write> RsSession<S> {
    /// RawSocket handshake, then HELLO for `realm` and WELCOME.
    pub fn join(mut s: S, realm: &str) -> RsSession<S> {
        s.write_all(&[0x7F, 0xF2, 0, 0]).unwrap();
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply).unwrap();
        assert_eq!(&reply[..2], &[0x7F, 0xF2], "RawSocket handshake refused");
        let mut me = RsSession {
            s,
            session: 0,
            next: 0,
        };
        me.send(&Message::Hello {
            realm: realm.into(),
            details: Val::Dict(vec![(
                "roles".into(),
                Val::Dict(vec![
                    ("publisher".into(), Val::empty_dict()),
                    ("subscriber".into(), Val::empty_dict()),
                ]),
            )]),
        });
        me.session = me.recv_with(|m| match m {
            Message::Welcome { session, .. } => session,
            other => panic!("expected WELCOME, got {other:?}"),
        });
        me
    }

    /// RawSocket handshake, then HELLO for `realm` offering `authmethods`: the session and
    /// WELCOME's details, or ABORT's reason.
    pub fn login(
        mut s: S,
        realm: &str,
        authmethods: &[&str],
    ) -> Result<(RsSession<S>, Val<'static>), String> {
        s.write_all(&[0x7F, 0xF2, 0, 0]).unwrap();
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply).unwrap();
        let mut me = RsSession {
            s,
            session: 0,
            next: 0,
        };
        let methods = authmethods.iter().map(|m| Val::Str((*m).into())).collect();
        me.send(&Message::Hello {
            realm: realm.into(),
            details: Val::Dict(vec![
                (
                    "roles".into(),
                    Val::Dict(vec![("subscriber".into(), Val::empty_dict())]),
                ),
                ("authmethods".into(), Val::List(methods)),
            ]),
        });
        let outcome = me.recv_with(|m| match m {
            Message::Welcome { session, details } => {
                Ok((session, super::auth::decoded(details).into_owned()))
            }
            Message::Abort { reason, .. } => Err(reason.into_owned()),
            other => panic!("expected WELCOME or ABORT, got {other:?}"),
        });
        outcome.map(|(session, details)| {
            me.session = session;
            (me, details)
        })
    }

    pub fn send(&mut self, m: &Message<'_>) {
        let mut v = Vec::new();
        m.encode(Serializer::MsgPack, &mut v).unwrap();
        let len = v.len();
        let mut f = vec![0, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        f.extend_from_slice(&v);
        self.s.write_all(&f).unwrap();
        self.s.flush().unwrap();
    }

    pub fn recv_with<R>(&mut self, f: impl FnOnce(Message<'_>) -> R) -> R {
        loop {
            let mut h = [0u8; 4];
            self.s.read_exact(&mut h).unwrap();
            let len = (h[1] as usize) << 16 | (h[2] as usize) << 8 | h[3] as usize;
            let mut body = vec![0u8; len];
            self.s.read_exact(&mut body).unwrap();
            if h[0] & 7 == 0 {
                return f(Message::parse(Serializer::MsgPack, &body).unwrap());
            }
        }
    }

    fn req(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// SUBSCRIBE and SUBSCRIBED; returns the subscription id.
    pub fn subscribe(&mut self, topic: &str) -> u64 {
        let request = self.req();
        self.send(&Message::Subscribe {
            request,
            options: Val::empty_dict(),
            topic: topic.into(),
        });
        self.recv_with(|m| match m {
            Message::Subscribed { subscription, .. } => subscription,
            other => panic!("expected SUBSCRIBED, got {other:?}"),
        })
    }

    /// PUBLISH with acknowledge and one integer argument, and PUBLISHED.
    pub fn publish_ack(&mut self, topic: &str, n: u64) {
        self.publish_ack_padded(topic, n, 0)
    }

    /// PUBLISH with acknowledge, an integer and a string of `pad` bytes, and PUBLISHED.
    pub fn publish_ack_padded(&mut self, topic: &str, n: u64, pad: usize) {
        let request = self.req();
        let padding = Val::Str("p".repeat(pad).into());
        self.send(&Message::Publish {
            request,
            options: Val::Dict(vec![("acknowledge".into(), Val::Bool(true))]),
            topic: topic.into(),
            args: Some(Val::List(vec![Val::UInt(n), padding])),
            kwargs: None,
        });
        self.recv_with(|m| assert!(matches!(m, Message::Published { .. }), "{m:?}"));
    }

    /// The next EVENT's first argument.
    pub fn event_arg(&mut self) -> u64 {
        self.recv_with(|m| match m {
            Message::Event { args: Some(a), .. } => match a.into_owned() {
                Val::List(items) => items.first().and_then(|v| v.as_u64()).expect("a number"),
                other => panic!("unexpected arguments {other:?}"),
            },
            other => panic!("expected EVENT, got {other:?}"),
        })
    }
}

/// A wampd process whose stderr (log lines) the test reads; killed on drop.
pub struct LoggedRouter {
    child: Child,
    pub start_line: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl LoggedRouter {
    pub fn start(args: &[&str]) -> LoggedRouter {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wampd"))
            .args(["--no-pin"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wampd");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        let start_line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("wampd start line");
        LoggedRouter {
            child,
            start_line,
            lines,
        }
    }

    /// The router process's id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address after `scheme://` in the start line.
    pub fn addr(&self, scheme: &str) -> String {
        self.start_line
            .split(&format!("{scheme}://"))
            .nth(1)
            .and_then(|s| s.split([',', '/']).next())
            .unwrap_or_else(|| panic!("no {scheme} address in {}", self.start_line))
            .to_string()
    }

    /// Waits (bounded) for a log line satisfying `pred`.
    pub fn wait_line(&self, within: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for LoggedRouter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` over plain HTTP/1.1; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}
