//! A small synchronous WAMP client and a router launcher for integration tests. Built on the crate's
//! own codec for messages, tungstenite for WebSocket, and plain sockets for RawSocket.
#![allow(dead_code)]

pub mod auth;
pub mod ca;
pub mod net;

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub mod authz;
pub mod interop;

use tungstenite::client::IntoClientRequest;
use tungstenite::Message as WsMessage;
use wampd::protocol::{Message, Serializer, Val};

pub mod ppt;
pub mod pubsub;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A wampd process started for one test; killed on drop.
pub struct Router {
    child: Child,
    pub addr: String,
    pub start_line: String,
}

impl Router {
    /// Starts wampd on a free port with `shards` shards and extra arguments.
    pub fn start(shards: usize, extra: &[&str]) -> Router {
        Self::start_env(shards, extra, &[])
    }

    /// Like [`Router::start`], with environment variables.
    pub fn start_env(shards: usize, extra: &[&str], env: &[(&str, &str)]) -> Router {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wampd"));
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--shards",
            &shards.to_string(),
            "--no-pin",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start wampd");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {} // keep the pipe drained
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("wampd start line");
        let addr = line
            .split("tcp://")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .expect("address in start line")
            .to_string();
        Router {
            child,
            addr,
            start_line: line,
        }
    }

    /// Sends SIGTERM and waits (up to `within`) for the process to exit; returns its exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The router's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Link {
    Ws(Box<tungstenite::WebSocket<TcpStream>>),
    Rs(TcpStream),
    RsUnix(UnixStream),
}

/// A WAMP peer over one connection.
pub struct Client {
    link: Link,
    pub ser: Serializer,
    pub session: u64,
    next: u64,
}

fn rs_handshake<S: Read + Write>(s: &mut S, ser: Serializer) {
    s.write_all(&[0x7F, 0xF0 | ser.rawsocket_id(), 0, 0])
        .unwrap();
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], 0x7F);
    assert_eq!(
        reply[1] & 0x0F,
        ser.rawsocket_id(),
        "handshake refused: {reply:?}"
    );
}

impl Client {
    /// Connects over RawSocket/TCP (no WAMP session yet).
    pub fn rawsocket(addr: &str, ser: Serializer) -> Client {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        rs_handshake(&mut s, ser);
        Client::with(Link::Rs(s), ser)
    }

    /// Connects over RawSocket on a Unix socket.
    pub fn unix(path: &str, ser: Serializer) -> Client {
        let mut s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        rs_handshake(&mut s, ser);
        Client::with(Link::RsUnix(s), ser)
    }

    /// Connects over WebSocket (no WAMP session yet).
    pub fn websocket(addr: &str, ser: Serializer) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            ser.ws_subprotocol().parse().unwrap(),
        );
        let (ws, resp) = tungstenite::client(req, s).expect("websocket upgrade");
        assert_eq!(
            resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
            ser.ws_subprotocol()
        );
        Client::with(Link::Ws(Box::new(ws)), ser)
    }

    fn with(link: Link, ser: Serializer) -> Client {
        Client {
            link,
            ser,
            session: 0,
            next: 0,
        }
    }

    /// Connects over RawSocket and joins `realm1`.
    pub fn join(addr: &str, ser: Serializer) -> Client {
        let mut c = Client::rawsocket(addr, ser);
        c.hello("realm1");
        c
    }

    /// Connects over WebSocket and joins `realm1`.
    pub fn join_ws(addr: &str, ser: Serializer) -> Client {
        let mut c = Client::websocket(addr, ser);
        c.hello("realm1");
        c
    }

    /// Sends HELLO for `realm` and expects WELCOME.
    pub fn hello(&mut self, realm: &str) {
        self.send_hello(realm);
        self.session = self.recv_with(|m| match m {
            Message::Welcome { session, .. } => session,
            other => panic!("expected WELCOME, got {other:?}"),
        });
    }

    /// Sends HELLO for `realm`.
    pub fn send_hello(&mut self, realm: &str) {
        let roles = Val::Dict(vec![(
            Cow::Borrowed("roles"),
            Val::Dict(
                ["caller", "callee", "publisher", "subscriber"]
                    .iter()
                    .map(|r| (Cow::Borrowed(*r), Val::empty_dict()))
                    .collect(),
            ),
        )]);
        self.send(&Message::Hello {
            realm: Cow::Borrowed(realm),
            details: roles,
        });
    }

    /// The next request id.
    pub fn req(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Sends one message.
    pub fn send(&mut self, msg: &Message<'_>) {
        let mut v = Vec::new();
        msg.encode(self.ser, &mut v).unwrap();
        self.send_raw(&v);
    }

    /// Sends bytes as one transport frame.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        match &mut self.link {
            Link::Ws(ws) => {
                let m = if self.ser.is_binary() {
                    WsMessage::Binary(bytes.to_vec())
                } else {
                    WsMessage::Text(String::from_utf8(bytes.to_vec()).unwrap())
                };
                ws.send(m).unwrap();
            }
            Link::Rs(s) => rs_send(s, bytes),
            Link::RsUnix(s) => rs_send(s, bytes),
        }
    }

    /// Writes raw bytes to the socket, bypassing framing (for malformed-input tests).
    pub fn write_socket(&mut self, bytes: &[u8]) {
        match &mut self.link {
            Link::Ws(ws) => ws.get_mut().write_all(bytes).unwrap(),
            Link::Rs(s) => s.write_all(bytes).unwrap(),
            Link::RsUnix(s) => s.write_all(bytes).unwrap(),
        }
    }

    /// The next message frame, or None when the connection closed or nothing came in time.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        match &mut self.link {
            Link::Ws(ws) => loop {
                match ws.read() {
                    Ok(WsMessage::Binary(b)) => return Some(b.to_vec()),
                    Ok(WsMessage::Text(t)) => return Some(t.as_bytes().to_vec()),
                    Ok(WsMessage::Close(_)) | Err(_) => return None,
                    Ok(_) => continue,
                }
            },
            Link::Rs(s) => rs_recv(s),
            Link::RsUnix(s) => rs_recv(s),
        }
    }

    /// Receives one message and hands its parsed view to `f`.
    pub fn recv_with<R>(&mut self, f: impl FnOnce(Message<'_>) -> R) -> R {
        let frame = self.recv().expect("a message");
        let msg = Message::parse(self.ser, &frame).expect("router sent a valid message");
        f(msg)
    }

    /// Expects the connection to end promptly (after at most an ABORT or GOODBYE); a connection that
    /// merely stays silent fails this.
    pub fn expect_closed(&mut self) {
        let start = std::time::Instant::now();
        self.set_timeout(Duration::from_secs(6));
        while let Some(frame) = self.recv() {
            let msg = Message::parse(self.ser, &frame).expect("valid message");
            assert!(
                matches!(msg, Message::Abort { .. } | Message::Goodbye { .. }),
                "expected the connection to close, got {msg:?}"
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the connection was not closed (only silent)"
        );
        self.set_timeout(TIMEOUT);
    }

    /// Expects ABORT with `reason`.
    pub fn expect_abort(&mut self, reason: &str) {
        self.recv_with(|m| match m {
            Message::Abort { reason: r, .. } => assert_eq!(r, reason),
            other => panic!("expected ABORT {reason}, got {other:?}"),
        });
    }

    /// Subscribes with options; returns the subscription id.
    pub fn subscribe_opts(&mut self, topic: &str, options: Val<'_>) -> u64 {
        let request = self.req();
        self.send(&Message::Subscribe {
            request,
            options,
            topic: Cow::Borrowed(topic),
        });
        self.recv_with(|m| match m {
            Message::Subscribed {
                request: r,
                subscription,
            } => {
                assert_eq!(r, request);
                subscription
            }
            other => panic!("expected SUBSCRIBED, got {other:?}"),
        })
    }

    /// Subscribes (exact match).
    pub fn subscribe(&mut self, topic: &str) -> u64 {
        self.subscribe_opts(topic, Val::empty_dict())
    }

    /// Registers (exact match); returns the registration id.
    pub fn register(&mut self, procedure: &str) -> u64 {
        let request = self.req();
        self.send(&Message::Register {
            request,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed(procedure),
        });
        self.recv_with(|m| match m {
            Message::Registered {
                request: r,
                registration,
            } => {
                assert_eq!(r, request);
                registration
            }
            other => panic!("expected REGISTERED, got {other:?}"),
        })
    }

    /// Publishes with acknowledge and the given options; returns the publication id.
    pub fn publish_ack(&mut self, topic: &str, args: Val<'_>) -> u64 {
        let request = self.req();
        self.send(&Message::Publish {
            request,
            options: dict(&[("acknowledge", Val::Bool(true))]),
            topic: Cow::Borrowed(topic),
            args: Some(args),
            kwargs: None,
        });
        self.recv_with(|m| match m {
            Message::Published {
                request: r,
                publication,
            } => {
                assert_eq!(r, request);
                publication
            }
            other => panic!("expected PUBLISHED, got {other:?}"),
        })
    }

    /// Publishes without acknowledgement.
    pub fn publish(
        &mut self,
        topic: &str,
        options: Val<'_>,
        args: Option<Val<'_>>,
        kwargs: Option<Val<'_>>,
    ) {
        let request = self.req();
        self.send(&Message::Publish {
            request,
            options,
            topic: Cow::Borrowed(topic),
            args,
            kwargs,
        });
    }

    /// Receives an EVENT; returns (subscription, details, args, kwargs) fully decoded.
    pub fn event(
        &mut self,
    ) -> (
        u64,
        Val<'static>,
        Option<Val<'static>>,
        Option<Val<'static>>,
    ) {
        self.recv_with(|m| match m {
            Message::Event {
                subscription,
                details,
                args,
                kwargs,
                ..
            } => (
                subscription,
                details.into_owned(),
                args.map(|a| a.into_owned()),
                kwargs.map(|k| k.into_owned()),
            ),
            other => panic!("expected EVENT, got {other:?}"),
        })
    }

    /// Sets how long `recv` waits.
    pub fn set_timeout(&mut self, t: Duration) {
        match &mut self.link {
            Link::Ws(ws) => ws.get_mut().set_read_timeout(Some(t)).unwrap(),
            Link::Rs(s) => s.set_read_timeout(Some(t)).unwrap(),
            Link::RsUnix(s) => s.set_read_timeout(Some(t)).unwrap(),
        }
    }

    /// Asserts that nothing arrives within `t`.
    pub fn expect_silence(&mut self, t: Duration) {
        self.set_timeout(t);
        if let Some(frame) = self.recv() {
            let msg = Message::parse(self.ser, &frame).map(|m| format!("{m:?}"));
            panic!("expected nothing, got {msg:?}");
        }
        self.set_timeout(TIMEOUT);
    }
}

fn rs_send<S: Write>(s: &mut S, bytes: &[u8]) {
    let len = bytes.len();
    s.write_all(&[0, (len >> 16) as u8, (len >> 8) as u8, len as u8])
        .unwrap();
    s.write_all(bytes).unwrap();
}

fn rs_recv<S: Read>(s: &mut S) -> Option<Vec<u8>> {
    loop {
        let mut h = [0u8; 4];
        s.read_exact(&mut h).ok()?;
        let len = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).ok()?;
        if h[0] & 0x07 == 0 {
            return Some(body);
        }
    }
}

/// A dictionary value from pairs.
pub fn dict<'a>(pairs: &[(&'a str, Val<'a>)]) -> Val<'a> {
    Val::Dict(
        pairs
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
            .collect(),
    )
}

/// A list of values.
pub fn list<'a>(items: Vec<Val<'a>>) -> Val<'a> {
    Val::List(items)
}

/// A string value.
pub fn s(v: &str) -> Val<'_> {
    Val::Str(Cow::Borrowed(v))
}

impl Client {
    /// Connects over RawSocket announcing that it accepts messages up to `1 << (9 + exp)` bytes,
    /// and joins `realm1`.
    pub fn join_rs_max(addr: &str, ser: Serializer, exp: u8) -> Client {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(&[0x7F, (exp << 4) | ser.rawsocket_id(), 0, 0])
            .unwrap();
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply).unwrap();
        assert_eq!(reply[1] & 0x0F, ser.rawsocket_id(), "handshake refused");
        let mut c = Client::with(Link::Rs(s), ser);
        c.hello("realm1");
        c
    }

    /// Sends CALL with positional arguments; returns the request id.
    pub fn send_call(&mut self, procedure: &str, args: Val<'_>) -> u64 {
        let request = self.req();
        self.send(&Message::Call {
            request,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed(procedure),
            args: Some(args),
            kwargs: None,
        });
        request
    }

    /// Expects an INVOCATION; returns its request id and decoded arguments.
    pub fn invocation(&mut self) -> (u64, Option<Val<'static>>) {
        self.recv_with(|m| match m {
            Message::Invocation { request, args, .. } => (request, args.map(|a| a.into_owned())),
            other => panic!("expected INVOCATION, got {other:?}"),
        })
    }

    /// Sends YIELD for INVOCATION `request` with positional arguments.
    pub fn send_yield(&mut self, request: u64, args: Val<'_>) {
        self.send(&Message::Yield {
            request,
            options: Val::empty_dict(),
            args: Some(args),
            kwargs: None,
        });
    }

    /// Expects RESULT for `request`; returns its decoded arguments.
    pub fn result(&mut self, request: u64) -> Option<Val<'static>> {
        self.recv_with(|m| match m {
            Message::Result {
                request: r, args, ..
            } => {
                assert_eq!(r, request, "RESULT for another call");
                args.map(|a| a.into_owned())
            }
            other => panic!("expected RESULT for {request}, got {other:?}"),
        })
    }

    /// Expects ERROR `uri` for a request of type `request_type` with id `request`.
    pub fn expect_error_uri(&mut self, request_type: u64, request: u64, uri: &str) {
        self.recv_with(|m| match m {
            Message::Error {
                request_type: t,
                request: r,
                error,
                ..
            } => {
                assert_eq!((t, r), (request_type, request), "ERROR for another request");
                assert_eq!(error, uri);
            }
            other => panic!("expected ERROR {uri}, got {other:?}"),
        })
    }
}

/// A router running inside the test process, so that a test can inspect its routing state.
pub struct InProcess {
    pub server: Option<wampd::server::Server>,
    pub addr: String,
}

impl InProcess {
    /// Starts `shards` shards on a free port, not pinned to cores.
    pub fn start(shards: usize) -> InProcess {
        let config = wampd::config::Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            shards,
            pin_cores: false,
            ..Default::default()
        };
        let server = wampd::server::Server::start(config).expect("router starts");
        let addr = server.local_addrs()[0].to_string();
        InProcess {
            server: Some(server),
            addr,
        }
    }

    /// Waits (bounded) until the routing state is consistent everywhere; returns the problems left.
    pub fn settle(&self, within: Duration) -> Vec<String> {
        let server = self.server.as_ref().unwrap();
        let deadline = std::time::Instant::now() + within;
        loop {
            let report = server
                .inspect(Duration::from_secs(5))
                .expect("every shard answers");
            let problems = report.problems();
            if problems.is_empty() || std::time::Instant::now() > deadline {
                return problems;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The current routing state.
    pub fn report(&self) -> wampd::router::inspect::StateReport {
        let server = self.server.as_ref().unwrap();
        server
            .inspect(Duration::from_secs(5))
            .expect("every shard answers")
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }
}

/// WebSocket framing helpers: for tests of what a subprotocol allows.
impl Client {
    /// Sends `bytes` as one WebSocket message of the type the session's subprotocol does not use:
    /// text under `wamp.2.msgpack` and `wamp.2.cbor`, binary under `wamp.2.json`.
    pub fn send_ws_other_type(&mut self, bytes: &[u8]) {
        let Link::Ws(ws) = &mut self.link else {
            panic!("not a WebSocket client")
        };
        let m = if self.ser.is_binary() {
            WsMessage::Text(String::from_utf8_lossy(bytes).into_owned())
        } else {
            WsMessage::Binary(bytes.to_vec())
        };
        ws.send(m).unwrap();
    }

    /// Reads until the router's WebSocket Close frame; returns the messages before it, its close
    /// code (None: the connection ended without a Close frame), and whether the TCP connection then
    /// ended (EOF within the read timeout).
    pub fn ws_close(&mut self) -> (Vec<Vec<u8>>, Option<u16>, bool) {
        let Link::Ws(ws) = &mut self.link else {
            panic!("not a WebSocket client")
        };
        let mut before = Vec::new();
        for _ in 0..1000 {
            match ws.read() {
                Ok(WsMessage::Close(frame)) => {
                    let code = frame.map(|f| u16::from(f.code));
                    let _ = ws.flush(); // our half of the close handshake
                    let mut byte = [0u8; 1];
                    let eof = matches!(ws.get_mut().read(&mut byte), Ok(0));
                    return (before, code, eof);
                }
                Ok(WsMessage::Binary(b)) => before.push(b.to_vec()),
                Ok(WsMessage::Text(t)) => before.push(t.as_bytes().to_vec()),
                Ok(_) => continue,
                Err(_) => return (before, None, true),
            }
        }
        panic!("no Close frame after 1000 messages");
    }
}

/// A RawSocket/TCP connection after the handshake, for tests that read on one thread and write on
/// another (`try_clone` the stream); frames go through [`rawsocket_write`] and [`rawsocket_read`].
pub fn rawsocket_stream(addr: &str, ser: Serializer) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    rs_handshake(&mut s, ser);
    s
}

/// Writes one RawSocket message frame.
pub fn rawsocket_write(s: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let len = bytes.len();
    let header = [0, (len >> 16) as u8, (len >> 8) as u8, len as u8];
    s.write_all(&header)?;
    s.write_all(bytes)
}

/// The next RawSocket message frame (PING/PONG skipped), or None when the connection ended.
pub fn rawsocket_read(s: &mut TcpStream) -> Option<Vec<u8>> {
    rs_recv(s)
}

/// A router's message decoded into owned values (integer arguments only), so that it can cross
/// threads and outlive its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Welcome {
        session: u64,
    },
    Subscribed {
        request: u64,
        subscription: u64,
    },
    Unsubscribed {
        request: u64,
    },
    Published {
        request: u64,
        publication: u64,
    },
    Event {
        subscription: u64,
        args: Vec<u64>,
    },
    Registered {
        request: u64,
        registration: u64,
    },
    Unregistered {
        request: u64,
    },
    Invocation {
        request: u64,
        registration: u64,
        args: Vec<u64>,
    },
    Result {
        request: u64,
        args: Vec<u64>,
    },
    Error {
        request_type: u64,
        request: u64,
        error: String,
    },
    Goodbye {
        reason: String,
    },
    Abort {
        reason: String,
    },
    Other(String),
}

/// The integer elements of a positional-arguments list (anything else reads as `u64::MAX`).
fn int_args(args: Option<Val<'_>>) -> Vec<u64> {
    match args.map(Val::into_owned) {
        Some(Val::List(items)) => items
            .iter()
            .map(|v| v.as_u64().unwrap_or(u64::MAX))
            .collect(),
        _ => Vec::new(),
    }
}

/// Decodes one frame the router sent; a frame that does not parse becomes [`Got::Other`].
pub fn got(ser: Serializer, frame: &[u8]) -> Got {
    let msg = match Message::parse(ser, frame) {
        Ok(m) => m,
        Err(e) => return Got::Other(format!("unparseable frame: {e}")),
    };
    match msg {
        Message::Welcome { session, .. } => Got::Welcome { session },
        Message::Subscribed {
            request,
            subscription,
        } => Got::Subscribed {
            request,
            subscription,
        },
        Message::Unsubscribed { request, .. } => Got::Unsubscribed { request },
        Message::Published {
            request,
            publication,
        } => Got::Published {
            request,
            publication,
        },
        Message::Event {
            subscription, args, ..
        } => Got::Event {
            subscription,
            args: int_args(args),
        },
        Message::Registered {
            request,
            registration,
        } => Got::Registered {
            request,
            registration,
        },
        Message::Unregistered { request, .. } => Got::Unregistered { request },
        Message::Invocation {
            request,
            registration,
            args,
            ..
        } => Got::Invocation {
            request,
            registration,
            args: int_args(args),
        },
        Message::Result { request, args, .. } => Got::Result {
            request,
            args: int_args(args),
        },
        Message::Error {
            request_type,
            request,
            error,
            ..
        } => Got::Error {
            request_type,
            request,
            error: error.into_owned(),
        },
        Message::Goodbye { reason, .. } => Got::Goodbye {
            reason: reason.into_owned(),
        },
        Message::Abort { reason, .. } => Got::Abort {
            reason: reason.into_owned(),
        },
        other => Got::Other(format!("{other:?}")),
    }
}

/// A list of unsigned integers, the payload the ordering and churn tests send.
pub fn uints(items: &[u64]) -> Val<'static> {
    Val::List(items.iter().map(|&n| Val::UInt(n)).collect())
}

impl Client {
    /// The next message decoded into owned values, or None when the connection closed or nothing
    /// came within the read timeout.
    pub fn recv_got(&mut self) -> Option<Got> {
        let frame = self.recv()?;
        Some(got(self.ser, &frame))
    }
}
pub mod meta;
pub mod rpc;
