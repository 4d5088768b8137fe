//! Connections: from accepted socket to complete WAMP messages and back.
//!
//! One connection is two tasks on its shard: the reader (handshake, frame decoding, handing each
//! message to the shard's [`Router`]) and the writer (draining the session's outbox). The writer only
//! runs once the task that queued frames has yielded, so everything queued for a connection during one
//! loop turn — say, events from a burst of publishes — leaves in one write call.
//!
//! WebSocket and RawSocket share each TCP port: a RawSocket client's first byte is always 0x7F, which
//! can never start an HTTP request.

pub mod rawsocket;
pub mod tls;
pub mod websocket;

use std::cell::RefCell;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};

use crate::config::Config;
use crate::router::session::{Closed, Peer};
use crate::router::{Router, ShardMesh};
use crate::transport::PeerInfo;

/// First read buffer of a connection; it grows for large messages and shrinks back when idle, so an
/// idle session costs little memory.
const READ_BUF_MIN: usize = 2048;
/// Largest read buffer growth step.
const READ_BUF_MAX: usize = 256 * 1024;
/// A writer coalesces up to this many bytes of queued frames into one write.
const WRITE_BATCH: usize = 256 * 1024;

/// What a connection needs from its shard.
pub struct Shard {
    pub id: usize,
    /// Connections being served by this shard (readers still running).
    pub live: std::cell::Cell<usize>,
    /// Connections being served by all shards; the acceptors admit against it.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    pub router: RefCell<Router>,
    pub config: Arc<Config>,
    pub mesh: Arc<ShardMesh>,
    /// A flush of the mesh staging is due at the end of this loop turn.
    pub flush_due: std::cell::Cell<bool>,
    /// The flusher task, parked until a flush is due.
    pub flusher: RefCell<Option<std::task::Waker>>,
}

impl Shard {
    /// What a shard's connections share: its router and the mesh.
    pub fn new(
        id: usize,
        router: Router,
        config: Arc<Config>,
        mesh: Arc<ShardMesh>,
        connections: Arc<std::sync::atomic::AtomicUsize>,
    ) -> Self {
        Shard {
            id,
            live: std::cell::Cell::new(0),
            connections,
            router: RefCell::new(router),
            config,
            mesh,
            flush_due: std::cell::Cell::new(false),
            flusher: RefCell::new(None),
        }
    }

    /// Pushes messages staged for other shards; if a ring was full, wakes this shard's mesh loop,
    /// which retries until the backlog is gone.
    pub fn flush(&self) {
        if self.router.borrow_mut().flush() {
            self.mesh.notify(self.id);
        }
    }

    /// Asks for a flush once every task already runnable in this loop turn has run, so that what
    /// many connections stage in one turn reaches each other shard in one batch with one wake-up
    /// (a wake costs microseconds; staging costs nanoseconds).
    pub fn request_flush(&self) {
        if !self.flush_due.replace(true) {
            if let Some(w) = self.flusher.borrow_mut().take() {
                w.wake();
            }
        }
    }
}

/// The task that flushes the mesh staging once per loop turn: woken by the first
/// [`Shard::request_flush`] of a turn, it is queued behind every task that was already runnable.
pub(crate) async fn flusher(shard: Rc<Shard>) {
    loop {
        std::future::poll_fn(|cx| {
            if shard.flush_due.get() {
                Poll::Ready(())
            } else {
                *shard.flusher.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        shard.flush_due.set(false);
        shard.flush();
    }
}

/// Spawns a task on this shard whose panic (a bug, never expected) ends only that task, with a log
/// line, instead of unwinding through the runtime and killing the shard with all its sessions.
pub(crate) fn spawn_contained<F: Future<Output = ()> + 'static>(fut: F) {
    monoio::spawn(Contained(Box::pin(fut)));
}

struct Contained<F>(Pin<Box<F>>);

impl<F: Future<Output = ()>> Future for Contained<F> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(p) => p,
            Err(_) => {
                tracing::error!("internal error in a connection task; that connection is closed");
                Poll::Ready(())
            }
        }
    }
}

/// Serves one accepted stream until it closes. With `tls`, a stream whose first byte starts a TLS
/// handshake is served over TLS, and plain streams are still served as they are, so one port can
/// take both.
pub async fn serve<S>(
    shard: Rc<Shard>,
    stream: S,
    fd: RawFd,
    refused: bool,
    info: PeerInfo,
    tls: Option<Arc<rustls::ServerConfig>>,
) where
    S: AsyncReadRent + AsyncWriteRent + Splitable + 'static,
    S::OwnedRead: AsyncReadRent + 'static,
    S::OwnedWrite: AsyncWriteRent + 'static,
{
    shard.live.set(shard.live.get() + 1);
    let _live = LiveGuard(&shard);
    let (mut rd, wr) = stream.into_split();
    let deadline = monoio::time::Instant::now() + shard.config.handshake_timeout;
    let Some(buf) = first_bytes(&mut rd, BytesMut::with_capacity(READ_BUF_MIN), deadline).await
    else {
        return;
    };
    match tls {
        Some(config) if buf[0] == tls::HANDSHAKE_RECORD => {
            serve_tls(
                shard.clone(),
                rd,
                wr,
                buf,
                fd,
                refused,
                info,
                config,
                deadline,
            )
            .await
        }
        _ => dispatch(shard.clone(), rd, wr, buf, fd, refused, info).await,
    }
}

/// Reads until `buf` holds at least one byte; None on end of stream, error or deadline.
async fn first_bytes<R: AsyncReadRent>(
    rd: &mut R,
    mut buf: BytesMut,
    deadline: monoio::time::Instant,
) -> Option<BytesMut> {
    while buf.is_empty() {
        let (res, b) = monoio::time::timeout_at(deadline, read_more(rd, buf))
            .await
            .ok()?;
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return None;
        }
    }
    Some(buf)
}

/// Completes the TLS handshake (within the transport handshake's time), then serves the plaintext
/// stream as a plain connection would be: RawSocket or WebSocket, told apart by its first byte.
#[allow(clippy::too_many_arguments)]
async fn serve_tls<R, W>(
    shard: Rc<Shard>,
    rd: R,
    wr: W,
    first: BytesMut,
    fd: RawFd,
    refused: bool,
    mut info: PeerInfo,
    config: Arc<rustls::ServerConfig>,
    deadline: monoio::time::Instant,
) where
    R: AsyncReadRent + 'static,
    W: AsyncWriteRent + 'static,
{
    let (mut rd, wr, tls_info) =
        match monoio::time::timeout_at(deadline, tls::accept(rd, wr, first, config)).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                tracing::debug!(peer = ?info.addr, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => return,
        };
    info.tls = Some(tls_info);
    let Some(buf) = first_bytes(&mut rd, BytesMut::with_capacity(READ_BUF_MIN), deadline).await
    else {
        return;
    };
    dispatch(shard, rd, wr, buf, fd, refused, info).await
}

/// Serves a stream whose first bytes are in `buf`: RawSocket (first byte 0x7F) or WebSocket, or
/// the refusal of either when the router is full.
async fn dispatch<R, W>(
    shard: Rc<Shard>,
    rd: R,
    wr: W,
    buf: BytesMut,
    fd: RawFd,
    refused: bool,
    info: PeerInfo,
) where
    R: AsyncReadRent,
    W: AsyncWriteRent + 'static,
{
    let rawsocket = buf[0] == crate::transport::rawsocket::MAGIC;
    match (rawsocket, refused) {
        (true, false) => rawsocket::serve(shard.clone(), rd, wr, buf, fd, info).await,
        (false, false) => websocket::serve(shard.clone(), rd, wr, buf, fd, info).await,
        (true, true) => rawsocket::refuse_full(wr).await,
        (false, true) => websocket::refuse_full(shard.clone(), rd, wr, buf).await,
    }
}

/// Counts a connection as live for as long as its reader runs.
struct LiveGuard<'a>(&'a Rc<Shard>);

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.0.live.set(self.0.live.get() - 1);
        self.0
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Reads more bytes onto the end of `buf`, growing it when it is full.
pub(crate) async fn read_more<R: AsyncReadRent>(
    rd: &mut R,
    buf: BytesMut,
) -> (std::io::Result<usize>, BytesMut) {
    let (res, buf, _) = read_sized(rd, buf, READ_BUF_MIN).await;
    (res, buf)
}

/// Reads more bytes onto the end of `buf` with room for at least `want` of them; also returns how
/// many bytes the read could have taken.
async fn read_sized<R: AsyncReadRent>(
    rd: &mut R,
    mut buf: BytesMut,
    want: usize,
) -> (std::io::Result<usize>, BytesMut, usize) {
    if buf.is_empty() && buf.capacity() > 4 * READ_BUF_MAX.max(want) {
        // A huge message passed through; don't keep its buffer for an idle session.
        buf = BytesMut::with_capacity(want);
    }
    let spare = buf.capacity() - buf.len();
    if spare < want {
        let grow = buf.capacity().clamp(want, READ_BUF_MAX.max(want));
        buf.reserve(grow);
    }
    let (len, cap) = (buf.len(), buf.capacity());
    let (res, slice) = rd.read(buf.slice_mut(len..cap)).await;
    (res, slice.into_inner(), cap - len)
}

/// How much room a session's next read gets. It doubles (up to [`READ_BUF_MAX`]) while reads come
/// back full, that is while the peer sends faster than the shard reads, and halves back while they
/// come back mostly empty. A busy publisher's messages then arrive many to a read, so that the
/// events for each of its subscribers leave many to a write instead of a few (a publication with
/// a list of excluded sessions is three times the size of a plain one, and with a fixed 2 KiB read
/// its subscribers' writes carried a third as many events each); a quiet session keeps a small
/// buffer.
struct ReadSize(usize);

impl ReadSize {
    fn new() -> Self {
        ReadSize(READ_BUF_MIN)
    }

    fn after(&mut self, asked: usize, got: usize) {
        if got >= asked {
            self.0 = (self.0 * 2).min(READ_BUF_MAX);
        } else if got < self.0 / 4 {
            self.0 = (self.0 / 2).max(READ_BUF_MIN);
        }
    }
}

/// The writer task: drains `peer`'s outbox into the socket, coalescing frames.
pub(crate) async fn write_loop<W: AsyncWriteRent>(mut wr: W, peer: Rc<Peer>, fd: RawFd) {
    let mut buf = Vec::new();
    loop {
        match peer.outbox.fill(&mut buf, WRITE_BATCH).await {
            Ok(()) => {
                let (res, b) = wr.write_all(buf).await;
                buf = b;
                if res.is_ok() {
                    crate::metrics::bytes_sent(buf.len());
                }
                buf.clear();
                if buf.capacity() > 64 * 1024 {
                    buf = Vec::new(); // don't hold a burst's buffer while idle
                }
                if res.is_err() {
                    peer.outbox.fail();
                    kick(fd);
                    return;
                }
            }
            Err(Closed::Graceful) => {
                let _ = wr.shutdown().await;
                kick(fd);
                return;
            }
            Err(_) => {
                kick(fd);
                return;
            }
        }
    }
}

/// Shuts the socket down both ways so that a reader blocked on it returns at once (used when the
/// writer decides the connection is over: slow consumer, write error, close).
pub(crate) fn kick(fd: RawFd) {
    // SAFETY: `fd` belongs to a stream still owned by the connection's tasks; shutdown does not
    // release it, it only ends the TCP conversation.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// Yields to the other tasks of this shard once.
pub(crate) fn yield_now() -> impl Future<Output = ()> {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow(false)
}

/// One decoded unit from a transport.
pub(crate) enum Inbound {
    /// A complete WAMP message.
    Message(bytes::Bytes),
    /// A transport-level answer to send back (pong).
    Reply(bytes::Bytes),
    /// Nothing to do (a pong, say).
    Nothing,
    /// The transport is over; send this last frame (if any) and close.
    Close(Option<bytes::Bytes>),
}

/// A transport's framing, as the session loop needs it.
pub(crate) trait Deframer {
    /// The next unit off the front of `buf`; None when more bytes are needed.
    fn next(&mut self, buf: &mut BytesMut) -> Option<Inbound>;
    /// The frame that ends the transport when the router ends the session (WebSocket close), if any.
    fn goodbye_frame(&self) -> Option<bytes::Bytes>;
    /// A transport-level ping, sent to an idle peer to see whether it is still there.
    fn ping_frame(&self) -> bytes::Bytes;
}

/// Watches an established connection: after `idle` without a byte from the peer it sends a ping;
/// after another `idle` of silence it shuts the socket down, which ends the reader (and the session)
/// as a closed connection would. It never cancels a read, so no received byte can be lost.
async fn idle_watchdog(
    idle: Duration,
    last_rx: Rc<std::cell::Cell<std::time::Instant>>,
    peer: Rc<Peer>,
    ping: bytes::Bytes,
    fd: RawFd,
) {
    let mut pinged = false;
    loop {
        monoio::time::sleep(idle).await;
        if peer.outbox.closed() != Closed::No {
            return;
        }
        if last_rx.get().elapsed() < idle {
            pinged = false;
        } else if !pinged {
            peer.outbox.push(ping.clone());
            pinged = true;
        } else {
            tracing::debug!(
                session = peer.id.get(),
                "closing a session idle for too long"
            );
            peer.outbox.fail();
            kick(fd);
            return;
        }
    }
}

/// Hands a frame to the router. A panic while handling it (a bug, never expected) is contained to
/// this session: it is logged, the session is ended and its connection closed, and the shard's
/// other sessions carry on.
fn on_frame_contained(
    shard: &Shard,
    conn: &mut crate::router::Conn,
    frame: &bytes::Bytes,
) -> crate::router::Flow {
    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shard.router.borrow_mut().on_frame(conn, frame)
    }));
    match handled {
        Ok(flow) => flow,
        Err(_) => {
            tracing::error!(
                session = conn.peer.id.get(),
                "internal error while handling a message; closing this session"
            );
            if let Ok(mut router) = shard.router.try_borrow_mut() {
                router.on_disconnect(conn);
            }
            crate::router::Flow::Close
        }
    }
}

/// A connection whose transport handshake is done.
pub(crate) struct Transport<R, W> {
    pub rd: R,
    pub wr: W,
    /// Bytes read past the handshake.
    pub buf: BytesMut,
    pub fd: RawFd,
    /// What is known of the peer, for authentication and logs.
    pub info: PeerInfo,
}

/// Serves a connection whose transport handshake succeeded: its outbox and writer, then the session
/// loop until the connection ends. `max_frame` is the largest frame the peer accepts.
pub(crate) async fn establish<R, W, D>(
    shard: &Shard,
    t: Transport<R, W>,
    enc: crate::router::wire::Encoding,
    max_frame: usize,
    mut deframer: D,
) where
    R: AsyncReadRent,
    W: AsyncWriteRent + 'static,
    D: Deframer,
{
    let cfg = &shard.config;
    let mut conn =
        crate::router::Conn::new(enc, cfg.max_queue_bytes, cfg.max_queue_messages, max_frame);
    conn.info = t.info;
    spawn_contained(write_loop(t.wr, conn.peer.clone(), t.fd));
    let mut rd = t.rd;
    run_session(shard, &mut rd, t.buf, &mut conn, &mut deframer, t.fd).await;
}

/// Runs an established transport: decodes messages and hands them to the router until the
/// connection ends, then cleans the session up.
pub(crate) async fn run_session<R: AsyncReadRent, D: Deframer>(
    shard: &Shard,
    rd: &mut R,
    mut buf: BytesMut,
    conn: &mut crate::router::Conn,
    deframer: &mut D,
    fd: RawFd,
) {
    let mut guard = SessionGuard {
        shard,
        conn,
        joined: None,
    };
    let hello_deadline = monoio::time::Instant::now() + shard.config.hello_timeout;
    let last_rx = Rc::new(std::cell::Cell::new(std::time::Instant::now()));
    if let Some(idle) = shard.config.idle_timeout {
        spawn_contained(idle_watchdog(
            idle,
            last_rx.clone(),
            guard.conn.peer.clone(),
            deframer.ping_frame(),
            fd,
        ));
    }
    let mut read_size = ReadSize::new();
    'conn: loop {
        // With debug logging, the session's span is entered for a whole batch of messages (not
        // per message), so every line logged meanwhile names the session. At the default level it
        // is not: entering a span costs a few percent of a shard at RPC rates, and the warnings
        // logged while routing name the session themselves.
        let span = guard
            .joined
            .as_ref()
            .filter(|_| tracing::enabled!(tracing::Level::DEBUG))
            .map(|(_, s)| s.clone());
        let entered = span.as_ref().map(|s| s.enter());
        let conn = &mut *guard.conn;
        while let Some(unit) = deframer.next(&mut buf) {
            match unit {
                Inbound::Message(frame) => {
                    let flow = on_frame_contained(shard, conn, &frame);
                    if guard.joined.is_none() && conn.session.is_some() {
                        guard.joined = joined(shard, conn);
                    }
                    if flow == crate::router::Flow::Close {
                        conn.peer.outbox.close(deframer.goodbye_frame());
                        break 'conn;
                    }
                }
                Inbound::Reply(frame) => {
                    conn.peer.outbox.push(frame);
                }
                Inbound::Nothing => {}
                Inbound::Close(last) => {
                    conn.peer.outbox.close(last);
                    break 'conn;
                }
            }
        }
        drop(entered); // never held across an await: other sessions' tasks run there
        shard.request_flush();
        // Back-pressure: while another shard's ring is full, stop reading this connection (its
        // peer's TCP window closes) rather than staging messages without bound.
        while shard.router.borrow().backlogged() {
            monoio::time::sleep(Duration::from_millis(1)).await;
            shard.flush();
        }
        if conn.peer.outbox.closed() != Closed::No {
            break; // the writer gave up (slow consumer, write error)
        }
        let (res, b) = if conn.session.is_none() {
            // No HELLO yet: a connection may not sit here forever holding a slot.
            match monoio::time::timeout_at(hello_deadline, read_more(rd, buf)).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!("closing connection: no HELLO in time");
                    conn.peer.outbox.close(deframer.goodbye_frame());
                    return;
                }
            }
        } else {
            let (res, b, asked) = read_sized(rd, buf, read_size.0).await;
            if let Ok(n) = res {
                read_size.after(asked, n);
            }
            (res, b)
        };
        buf = b;
        match res {
            Ok(n) if n > 0 => {
                let now = std::time::Instant::now();
                last_rx.set(now);
                shard.router.borrow_mut().set_now(now);
            }
            _ => break,
        }
    }
}

/// A session has just joined: counts it in its realm's gauge, logs the join with what the
/// transport knows of the peer, and returns its realm and log span.
fn joined(shard: &Shard, conn: &crate::router::Conn) -> Option<(usize, tracing::Span)> {
    let (realm, span) = shard.router.borrow().session_span(conn.session?)?;
    crate::metrics::session_delta(realm, 1);
    let tls = conn.info.tls.as_ref();
    span.in_scope(|| {
        tracing::debug!(
            peer = ?conn.info.addr,
            tls = tls.is_some(),
            tls_client_cn = tls.and_then(|t| t.client_cn.as_deref()),
            "session joined"
        )
    });
    Some((realm, span))
}

/// Ends a connection's session when its reader stops, however it stops — returning, or unwinding
/// from a panic (which [`spawn_contained`] then contains) — so that no session outlives its
/// connection in the routing state.
struct SessionGuard<'a> {
    shard: &'a Shard,
    conn: &'a mut crate::router::Conn,
    /// The realm and log span of the session once it joined.
    joined: Option<(usize, tracing::Span)>,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        let _entered = self.joined.as_ref().map(|(_, s)| s.enter());
        if let Some((realm, _)) = &self.joined {
            crate::metrics::session_delta(*realm, -1);
            tracing::debug!("session left");
        }
        if let Ok(mut router) = self.shard.router.try_borrow_mut() {
            router.on_disconnect(self.conn);
        }
        self.shard.request_flush();
        self.conn.peer.outbox.close(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_size_follows_the_peer() {
        let mut r = ReadSize::new();
        // Full reads: the peer has more waiting; the size doubles up to the cap.
        for _ in 0..20 {
            let asked = r.0;
            r.after(asked, asked);
        }
        assert_eq!(r.0, READ_BUF_MAX);
        // Reads about half full leave it where it is.
        r.after(r.0, r.0 / 2);
        assert_eq!(r.0, READ_BUF_MAX);
        // Mostly empty reads: it halves back to the floor, never below.
        for _ in 0..20 {
            r.after(r.0, 10);
        }
        assert_eq!(r.0, READ_BUF_MIN);
    }
}
