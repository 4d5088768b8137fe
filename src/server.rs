//! Starting the router: one thread per shard, each pinned to a core and running its own monoio
//! runtime (io_uring, or epoll where io_uring cannot start), plus one acceptor thread per listener.
//!
//! Connections are accepted by plain blocking acceptor threads and handed to shards round-robin over
//! the mesh, rather than by one SO_REUSEPORT listener per shard. Reuseport spreads connections by a
//! hash of their addresses, which leaves shards uneven when there are few connections (a benchmark
//! with 10 callers, say) and makes placement unpredictable; round-robin is even and lets tests place
//! two sessions on two shards for sure. The price is one cross-thread hand-off per connection
//! (microseconds), paid once for the connection's whole life.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::Config;
use crate::link::{self, Shard};
use crate::router::realm::Realms;
use crate::router::{Incoming, IncomingStream, Limits, Router, ShardMesh};

/// Which IO driver a shard runs on.
#[derive(Clone, Debug)]
pub enum Driver {
    IoUring,
    /// The epoll fallback, with the reason io_uring was not used.
    Epoll(String),
}

impl Driver {
    fn name(&self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll(_) => "epoll",
        }
    }
}

/// Binds every listener, starts the shards, prints the start line, and serves until the process ends.
pub fn run(config: Config) -> io::Result<()> {
    let config = Arc::new(config);
    if config.shards == 0 || config.shards > 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--shards must be between 1 and 64",
        ));
    }
    let tcp = config
        .listen
        .iter()
        .map(|a| bind_tcp(*a))
        .collect::<io::Result<Vec<_>>>()?;
    let unix = config
        .unix
        .iter()
        .map(|p| {
            // A socket file left by an earlier run would make bind fail.
            let _ = std::fs::remove_file(p);
            UnixListener::bind(p)
        })
        .collect::<io::Result<Vec<_>>>()?;

    let mesh = Arc::new(ShardMesh::new(config.shards, config.ring_capacity.max(2)));
    let realms = Arc::new(Realms::new(&config.realms));
    let stopping = Arc::new(AtomicBool::new(false));
    let connections = Arc::new(AtomicUsize::new(0));
    // Registered before the shards start, so that a signal during start-up is not lost.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut threads = Vec::new();
    for id in 0..config.shards {
        let ctx = ShardStart {
            id,
            config: config.clone(),
            mesh: mesh.clone(),
            realms: realms.clone(),
            stopping: stopping.clone(),
            connections: connections.clone(),
        };
        let tx = tx.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("wampd-shard-{id}"))
                .spawn(move || shard_thread(ctx, tx))?,
        );
    }
    drop(tx);
    let mut driver = None;
    for _ in 0..config.shards {
        match rx.recv() {
            Ok(Ok(d)) => driver = Some(d),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("a shard failed to start")),
        }
    }
    let driver = driver.expect("at least one shard");
    if let Driver::Epoll(why) = &driver {
        tracing::warn!("io_uring unavailable ({why}); using the epoll driver");
    }

    let mut addrs: Vec<String> = tcp
        .iter()
        .map(|l| l.local_addr().map(|a| format!("tcp://{a}")))
        .collect::<io::Result<_>>()?;
    addrs.extend(
        config
            .unix
            .iter()
            .map(|p| format!("unix://{}", p.display())),
    );
    println!(
        "wampd: listening on {}, shards={}, driver={}, realms={}",
        addrs.join(", "),
        config.shards,
        driver.name(),
        config.realms.join(",")
    );

    let admission = Arc::new(Admission {
        mesh: mesh.clone(),
        next: AtomicUsize::new(0),
        stopping: stopping.clone(),
        max: config.max_sessions,
        connections: connections.clone(),
    });
    for l in tcp {
        let admission = admission.clone();
        std::thread::Builder::new()
            .name("wampd-accept".into())
            .spawn(move || accept_tcp(l, &admission))?;
    }
    for l in unix {
        let admission = admission.clone();
        std::thread::Builder::new()
            .name("wampd-accept-unix".into())
            .spawn(move || accept_unix(l, &admission))?;
    }

    // Serve until SIGTERM or SIGINT, then shut down gracefully: stop accepting, GOODBYE every
    // session, let the shards flush their queues (bounded by SHUTDOWN_GRACE), exit.
    if let Some(sig) = signals.forever().next() {
        tracing::info!(signal = sig, "shutting down");
    }
    stopping.store(true, Ordering::SeqCst);
    for shard in 0..mesh.shards() {
        mesh.notify(shard);
    }
    for t in threads {
        let _ = t.join();
    }
    for p in &config.unix {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// How long shards wait for sessions to be flushed and closed at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a shard thread starts with.
struct ShardStart {
    id: usize,
    config: Arc<Config>,
    mesh: Arc<ShardMesh>,
    realms: Arc<Realms>,
    stopping: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

/// What acceptor threads share: where connections go and whether they are admitted.
struct Admission {
    mesh: Arc<ShardMesh>,
    next: AtomicUsize,
    stopping: Arc<AtomicBool>,
    max: usize,
    /// Connections being served, over all shards (decremented by the shards as they end).
    connections: Arc<AtomicUsize>,
}

impl Admission {
    /// Hands a connection to the next shard, marked refused when over the session limit (it is still
    /// handed over, so that the refusal is a proper handshake answer rather than a reset).
    fn admit(&self, stream: IncomingStream) {
        if self.stopping.load(Ordering::Relaxed) {
            return; // shutting down: refuse by closing
        }
        let refused = self.connections.fetch_add(1, Ordering::Relaxed) >= self.max;
        let shard = self.next.fetch_add(1, Ordering::Relaxed) % self.mesh.shards();
        self.mesh.push_conn(shard, Incoming { stream, refused });
    }
}

fn bind_tcp(addr: std::net::SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn accept_tcp(l: std::net::TcpListener, admission: &Admission) {
    loop {
        match l.accept() {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                admission.admit(IncomingStream::Tcp(s));
            }
            Err(e) => {
                // Out of descriptors or similar: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn accept_unix(l: UnixListener, admission: &Admission) {
    loop {
        match l.accept() {
            Ok((s, _)) => admission.admit(IncomingStream::Unix(s)),
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

type Started = std::sync::mpsc::Sender<io::Result<Driver>>;

/// Body of one shard thread: pin, build the runtime (io_uring first), run the shard loop forever.
fn shard_thread(start: ShardStart, started: Started) {
    let (id, config) = (start.id, start.config.clone());
    if config.pin_cores {
        if let Some(cores) = core_affinity::get_core_ids() {
            if !cores.is_empty() {
                core_affinity::set_for_current(cores[id % cores.len()]);
            }
        }
    }
    let force_epoll = config.force_epoll
        || std::env::var("MONOIO_FORCE_LEGACY_DRIVER").is_ok_and(|v| !v.is_empty() && v != "0");
    let why = if force_epoll {
        "forced by configuration".to_string()
    } else {
        match RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(4096)
            .enable_timer()
            .build()
        {
            Ok(mut rt) => {
                let _ = started.send(Ok(Driver::IoUring));
                rt.block_on(shard_main(start));
                return;
            }
            Err(e) => e.to_string(),
        }
    };
    match RuntimeBuilder::<LegacyDriver>::new().enable_timer().build() {
        Ok(mut rt) => {
            let _ = started.send(Ok(Driver::Epoll(why)));
            rt.block_on(shard_main(start));
        }
        Err(e) => {
            let _ = started.send(Err(e));
        }
    }
}

/// The shard's own task: takes connections and cross-shard messages off the mesh.
async fn shard_main(start: ShardStart) {
    let ShardStart {
        id,
        config,
        mesh,
        realms,
        stopping,
        connections,
    } = start;
    let router = Router::new(id, mesh.clone(), realms, Limits::from_config(&config));
    let shard = Rc::new(Shard {
        id,
        live: std::cell::Cell::new(0),
        connections,
        router: RefCell::new(router),
        config,
        mesh: mesh.clone(),
    });
    let mut batch = Vec::with_capacity(1024);
    const BUDGET: usize = 4096;
    loop {
        mesh.ready(id).await;
        if stopping.load(Ordering::SeqCst) {
            return shutdown(&shard).await;
        }
        loop {
            while let Some(conn) = mesh.pop_conn(id) {
                spawn_conn(&shard, conn);
            }
            mesh.drain(id, BUDGET, &mut batch);
            let drained = batch.len();
            {
                let mut router = shard.router.borrow_mut();
                for (src, msg) in batch.drain(..) {
                    router.on_mesh(src, msg);
                }
            }
            let backlog = shard.router.borrow_mut().flush();
            if backlog {
                // A destination ring is full: give that shard a moment, keep serving ours.
                monoio::time::sleep(Duration::from_millis(1)).await;
            } else if drained >= BUDGET {
                link::yield_now().await; // let writers and readers run between big batches
            } else {
                break;
            }
        }
    }
}

/// Says GOODBYE to every session of this shard and waits (bounded) for their connections to close.
async fn shutdown(shard: &Rc<Shard>) {
    shard.router.borrow_mut().shutdown();
    shard.flush();
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    while shard.live.get() > 0 && std::time::Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    if shard.live.get() > 0 {
        tracing::warn!(
            shard = shard.id,
            connections = shard.live.get(),
            "connections still open after the shutdown grace period"
        );
    }
}

fn spawn_conn(shard: &Rc<Shard>, conn: Incoming) {
    let refused = conn.refused;
    match conn.stream {
        IncomingStream::Tcp(s) => {
            let fd = s.as_raw_fd();
            let _ = s.set_nonblocking(true);
            match monoio::net::TcpStream::from_std(s) {
                Ok(stream) => {
                    monoio::spawn(link::serve(shard.clone(), stream, fd, refused));
                }
                Err(e) => {
                    tracing::warn!("cannot adopt connection: {e}");
                    shard.connections.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        IncomingStream::Unix(s) => {
            let fd = s.as_raw_fd();
            let _ = s.set_nonblocking(true);
            match monoio::net::UnixStream::from_std(s) {
                Ok(stream) => {
                    monoio::spawn(link::serve(shard.clone(), stream, fd, refused));
                }
                Err(e) => {
                    tracing::warn!("cannot adopt connection: {e}");
                    shard.connections.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}
