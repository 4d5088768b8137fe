//! Starting the router: one thread per shard, each pinned to a core and running its own monoio
//! runtime (io_uring, or epoll where io_uring cannot start), plus one acceptor thread per listener.
//!
//! Connections are accepted by plain blocking acceptor threads and handed to shards round-robin over
//! the mesh, rather than by one SO_REUSEPORT listener per shard. Reuseport spreads connections by a
//! hash of their addresses, which leaves shards uneven when there are few connections (a benchmark
//! with 10 callers, say) and makes placement unpredictable; round-robin is even and lets tests place
//! two sessions on two shards for sure. The price is one cross-thread hand-off per connection
//! (microseconds), paid once for the connection's whole life.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::{Config, HistorySpec};
use crate::link::tls::TlsContext;
use crate::link::{self, Shard};
use crate::metrics::Registry;
use crate::router::authorize::Rules;
use crate::router::inspect::StateReport;
use crate::router::realm::Realms;
use crate::router::{Handoff, Incoming, IncomingStream, Limits, Router, ShardMesh};

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

/// Binds every listener, starts the shards, prints the start line, and serves until SIGTERM or
/// SIGINT, then shuts down gracefully.
pub fn run(config: Config) -> io::Result<()> {
    // Registered before the shards start, so that a signal during start-up is not lost.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    let server = Server::start(config)?;
    if let Driver::Epoll(why) = &server.driver {
        tracing::warn!("io_uring unavailable ({why}); using the epoll driver");
    }
    let mut addrs: Vec<String> = server.addrs.iter().map(|a| format!("tcp://{a}")).collect();
    addrs.extend(server.tls_addrs.iter().map(|a| format!("tls://{a}")));
    if let Some(a) = server.metrics_addr {
        addrs.push(format!("metrics http://{a}/metrics"));
    }
    addrs.extend(
        server
            .config
            .unix
            .iter()
            .map(|p| format!("unix://{}", p.display())),
    );
    println!(
        "wampd: listening on {}, shards={}, driver={}, realms={}",
        addrs.join(", "),
        server.config.shards,
        server.driver.name(),
        server.config.realms.join(",")
    );
    for sig in signals.forever() {
        if sig == signal_hook::consts::SIGHUP {
            server.reload_file();
            if let Err(e) = server.reload_tls() {
                tracing::error!("TLS certificates not reloaded: {e}");
            }
            continue;
        }
        tracing::info!(signal = sig, "shutting down");
        break;
    }
    server.stop();
    Ok(())
}

/// A running router: its shard threads, listeners and shared state.
pub struct Server {
    config: Arc<Config>,
    mesh: Arc<ShardMesh>,
    realms: Arc<Realms>,
    /// The realm specs in force and the authentication rules built from them (reload replaces
    /// both).
    specs: std::sync::Mutex<(Vec<crate::config::file::RealmSpec>, Arc<crate::auth::Auth>)>,
    stopping: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    addrs: Vec<std::net::SocketAddr>,
    tls_addrs: Vec<std::net::SocketAddr>,
    /// One per TLS listener, in the order of `config.tls_listen`.
    tls: Vec<Arc<TlsContext>>,
    metrics_addr: Option<std::net::SocketAddr>,
    /// The IO driver the shards run on.
    pub driver: Driver,
}

impl Server {
    /// Binds every listener and starts the shards and acceptors; returns once all shards run.
    pub fn start(config: Config) -> io::Result<Server> {
        let config = Arc::new(config);
        if config.shards == 0 || config.shards > 64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--shards must be between 1 and 64",
            ));
        }
        // Key derivation for every principal happens here, before any shard runs.
        let auth = crate::auth::Auth::build(&config.realm_specs, config.auth_limits.clone())
            .map(Arc::new)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
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
        let addrs = tcp
            .iter()
            .map(|l| l.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let (tls_listeners, tls) = bind_tls(&config)?;
        let tls_addrs = tls_listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<io::Result<Vec<_>>>()?;

        let mesh = Arc::new(ShardMesh::new(config.shards, config.ring_capacity.max(2)));
        let realms = Arc::new(Realms::new(&config.realms).with_history(|name| {
            HistorySpec::for_realm(&config.event_history, &config.realm_specs, name)
        }));
        let rules = Arc::new(Rules::compile(&realm_names(&realms), &config.realm_specs));
        let stopping = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let metrics = Arc::new(Registry::new(config.shards, &config.realms));
        let metrics_addr = match config.metrics {
            Some(addr) => Some(crate::metrics::serve(addr, metrics.clone())?),
            None => None,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        for id in 0..config.shards {
            let ctx = ShardStart {
                id,
                config: config.clone(),
                mesh: mesh.clone(),
                realms: realms.clone(),
                auth: auth.clone(),
                rules: rules.clone(),
                stopping: stopping.clone(),
                connections: connections.clone(),
                metrics: metrics.clone(),
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
                .spawn(move || accept_tcp(l, &admission, None))?;
        }
        for (l, ctx) in tls_listeners.into_iter().zip(&tls) {
            let (admission, ctx) = (admission.clone(), ctx.clone());
            std::thread::Builder::new()
                .name("wampd-accept-tls".into())
                .spawn(move || accept_tcp(l, &admission, Some(&ctx)))?;
        }
        for l in unix {
            let admission = admission.clone();
            std::thread::Builder::new()
                .name("wampd-accept-unix".into())
                .spawn(move || accept_unix(l, &admission))?;
        }
        Ok(Server {
            specs: std::sync::Mutex::new((config.realm_specs.clone(), auth.clone())),
            config,
            mesh,
            realms,
            stopping,
            threads,
            addrs,
            tls_addrs,
            tls,
            metrics_addr,
            driver,
        })
    }

    /// Where `GET /metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_addr
    }

    /// The TLS listeners' addresses, in the order of `config.tls_listen`.
    pub fn tls_addrs(&self) -> &[std::net::SocketAddr] {
        &self.tls_addrs
    }

    /// Reads every TLS listener's certificate, key and client CA again; connections accepted from
    /// now on use them, established ones keep theirs. A listener whose files cannot be used keeps
    /// its old settings, and the error names the file.
    pub fn reload_tls(&self) -> Result<(), String> {
        let errors: Vec<String> = self.tls.iter().filter_map(|t| t.reload().err()).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The TCP addresses the router listens on (with the ports the system chose for port 0).
    pub fn local_addrs(&self) -> &[std::net::SocketAddr] {
        &self.addrs
    }

    /// The routing state of every shard and every realm authority, gathered by asking each shard
    /// between two of its loop turns. None if a shard does not answer within `timeout`.
    pub fn inspect(&self, timeout: Duration) -> Option<StateReport> {
        let (tx, rx) = std::sync::mpsc::channel();
        for shard in 0..self.mesh.shards() {
            self.mesh.push_conn(shard, Handoff::Inspect(tx.clone()));
        }
        let deadline = std::time::Instant::now() + timeout;
        let mut shards = Vec::new();
        for _ in 0..self.mesh.shards() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            shards.push(rx.recv_timeout(left).ok()?);
        }
        shards.sort_by_key(|s| s.shard);
        let authorities = (0..self.realms.len())
            .map(|r| self.realms.authority(r).snapshot())
            .collect();
        Some(StateReport {
            authorities,
            shards,
        })
    }

    /// Rereads the configuration file (SIGHUP) and hands every shard the new rules. A file with
    /// errors changes nothing (each error is logged).
    pub fn reload_file(&self) {
        let Some(path) = &self.config.config_file else {
            tracing::info!("SIGHUP: no configuration file to reload (started without --config)");
            return;
        };
        let mut fresh = Config::default();
        match crate::config::load::load(path, &mut fresh) {
            Ok(_) => self.reload(&fresh.realm_specs),
            Err(errors) => {
                for e in errors {
                    tracing::error!("{}:{e}", path.display());
                }
                tracing::error!("configuration not reloaded: the file has errors");
            }
        }
    }

    /// Replaces the realms' roles, permissions, principals and history patterns on every shard
    /// (a history pattern kept keeps its events, one dropped loses them). Sessions keep the
    /// role they joined with; decisions from now on use the new rules. Realms cannot be added or
    /// removed while running (their routing state is sized at start): a realm new in `specs` is
    /// ignored until a restart, and a realm missing from `specs` keeps its rules (opening it to
    /// everyone because a table was deleted would be the wrong surprise); both are logged.
    pub fn reload(&self, specs: &[crate::config::file::RealmSpec]) {
        let names = realm_names(&self.realms);
        for s in specs
            .iter()
            .filter(|s| !names.iter().any(|n| **n == *s.name))
        {
            tracing::warn!(realm = %s.name, "reload: a realm cannot be added while running; restart to serve it");
        }
        let mut current = self.specs.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = specs.to_vec();
        for old in current.0.iter() {
            if !specs.iter().any(|s| s.name == old.name) {
                tracing::warn!(realm = %old.name, "reload: realm no longer in the file; it keeps its rules until a restart");
                next.push(old.clone());
            }
        }
        // Key derivation for the principals runs here, on the signal thread, never on a shard.
        let auth = match current.1.rebuild(&next) {
            Ok(a) => Arc::new(a),
            Err(e) => {
                tracing::error!("configuration not reloaded: {e}");
                return;
            }
        };
        let rules = Arc::new(Rules::compile(&names, &next));
        // The global patterns are a `[router]` setting, fixed at start like the others.
        let global = &self.config.event_history;
        let history = self
            .realms
            .replace_history(|name| HistorySpec::for_realm(global, &next, name));
        *current = (next, auth.clone());
        for shard in 0..self.mesh.shards() {
            self.mesh
                .push_conn(shard, Handoff::Rules(rules.clone(), auth.clone()));
            self.mesh
                .push_conn(shard, Handoff::History(history.clone()));
        }
        tracing::info!(realms = specs.len(), "configuration reloaded");
    }

    /// Stops accepting, says GOODBYE to every session, lets the shards flush their queues (bounded
    /// by the shutdown grace period) and waits for the shard threads to end.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for shard in 0..self.mesh.shards() {
            self.mesh.notify(shard);
        }
        for t in self.threads {
            let _ = t.join();
        }
        for p in &self.config.unix {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn realm_names(realms: &Realms) -> Vec<Arc<str>> {
    (0..realms.len()).map(|i| realms.name(i).clone()).collect()
}

/// How long shards wait for sessions to be flushed and closed at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a shard thread starts with.
struct ShardStart {
    id: usize,
    config: Arc<Config>,
    mesh: Arc<ShardMesh>,
    realms: Arc<Realms>,
    auth: Arc<crate::auth::Auth>,
    rules: Arc<Rules>,
    stopping: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    metrics: Arc<Registry>,
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
    fn admit(&self, stream: IncomingStream, tls: Option<Arc<rustls::ServerConfig>>) {
        if self.stopping.load(Ordering::Relaxed) {
            return; // shutting down: refuse by closing
        }
        let refused = self.connections.fetch_add(1, Ordering::Relaxed) >= self.max;
        let shard = self.next.fetch_add(1, Ordering::Relaxed) % self.mesh.shards();
        self.mesh.push_conn(
            shard,
            Handoff::Conn(Incoming {
                stream,
                refused,
                tls,
            }),
        );
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

/// Binds the TLS listeners and loads their certificates; a certificate that cannot be used stops
/// the start with an error naming its file.
fn bind_tls(config: &Config) -> io::Result<(Vec<std::net::TcpListener>, Vec<Arc<TlsContext>>)> {
    let mut listeners = Vec::new();
    let mut contexts = Vec::new();
    for t in &config.tls_listen {
        let ctx = TlsContext::load(t.files.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        contexts.push(Arc::new(ctx));
        listeners.push(bind_tcp(t.addr)?);
    }
    Ok((listeners, contexts))
}

fn accept_tcp(l: std::net::TcpListener, admission: &Admission, tls: Option<&TlsContext>) {
    loop {
        match l.accept() {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                admission.admit(IncomingStream::Tcp(s), tls.map(|t| t.current()));
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
            Ok((s, _)) => admission.admit(IncomingStream::Unix(s), None),
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
                run_or_exit(id, || rt.block_on(shard_main(start)));
                return;
            }
            Err(e) => e.to_string(),
        }
    };
    match RuntimeBuilder::<LegacyDriver>::new().enable_timer().build() {
        Ok(mut rt) => {
            let _ = started.send(Ok(Driver::Epoll(why)));
            run_or_exit(id, || rt.block_on(shard_main(start)));
        }
        Err(e) => {
            let _ = started.send(Err(e));
        }
    }
}

/// Exit status of the process when a shard thread dies (EX_SOFTWARE).
pub const SHARD_DIED_EXIT_CODE: i32 = 70;

/// Runs a shard's runtime. Panics while handling a message are contained where they happen (the
/// session, the mesh message, the timer tick); one that still escapes has left the shard in an
/// unknown state, with its sessions and its share of every realm's routing unreachable. Rather than
/// keep serving with a black hole in it, the router exits non-zero so that its supervisor restarts it.
fn run_or_exit(id: usize, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!(
            shard = id,
            "shard thread died from an internal error; exiting with status {SHARD_DIED_EXIT_CODE} so that a supervisor restarts the router"
        );
        std::process::exit(SHARD_DIED_EXIT_CODE);
    }
}

/// The shard's own task: takes connections and cross-shard messages off the mesh.
async fn shard_main(start: ShardStart) {
    let ShardStart {
        id,
        config,
        mesh,
        realms,
        auth,
        rules,
        stopping,
        connections,
        metrics,
    } = start;
    metrics.install(id);
    let mut router = Router::new(id, mesh.clone(), realms, Limits::from_config(&config));
    router.set_auth(auth);
    router.set_metrics(metrics.shard(id));
    router.set_rules(rules);
    let shard = Rc::new(Shard::new(id, router, config, mesh.clone(), connections));
    link::spawn_contained(link::flusher(shard.clone()));
    link::spawn_contained(ticker(shard.clone()));
    link::spawn_contained(call_timer(shard.clone()));
    let mut batch = Vec::with_capacity(1024);
    const BUDGET: usize = 4096;
    let mut received = 0u64;
    loop {
        mesh.ready(id).await;
        if stopping.load(Ordering::SeqCst) {
            tracing::info!(
                shard = id,
                messages = received,
                wakes = mesh.wakes(id),
                "shard-to-shard messages received and wake-ups they took"
            );
            return shutdown(&shard).await;
        }
        loop {
            while let Some(handoff) = mesh.pop_conn(id) {
                match handoff {
                    Handoff::Conn(conn) => spawn_conn(&shard, conn),
                    Handoff::Inspect(reply) => {
                        let _ = reply.send(shard.router.borrow().inspect());
                    }
                    Handoff::Rules(rules, auth) => {
                        let mut router = shard.router.borrow_mut();
                        router.set_rules(rules);
                        router.set_auth(auth);
                    }
                    Handoff::History(history) => shard.router.borrow_mut().set_history(history),
                    Handoff::Derived(session, grant) => {
                        shard.router.borrow_mut().on_derived(session, grant);
                    }
                }
            }
            mesh.drain(id, BUDGET, &mut batch);
            let drained = batch.len();
            received += drained as u64;
            {
                let mut router = shard.router.borrow_mut();
                if drained > 0 {
                    router.set_now(std::time::Instant::now());
                }
                for (src, msg) in batch.drain(..) {
                    on_mesh_contained(&mut router, id, src, msg);
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

/// Hands one message from another shard to the router. A panic while handling it (a bug, never
/// expected) loses that one message, is logged, and the shard carries on.
fn on_mesh_contained(router: &mut Router, shard: usize, src: usize, msg: crate::router::ShardMsg) {
    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        router.on_mesh(src, msg);
    }));
    if handled.is_err() {
        tracing::error!(
            shard,
            from = src,
            "internal error while handling a message from another shard; the message was dropped"
        );
    }
}

/// How often a shard does its housekeeping (barrier timeouts).
const TICK: Duration = Duration::from_secs(1);

/// The shard's housekeeping task.
async fn ticker(shard: Rc<Shard>) {
    loop {
        monoio::time::sleep(TICK).await;
        let ticked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shard.router.borrow_mut().tick();
        }));
        if ticked.is_err() {
            tracing::error!(
                shard = shard.id,
                "internal error in the shard's housekeeping"
            );
        }
        shard.flush();
    }
}

/// How often a shard looks for call timeouts that came due while some are armed, and while none
/// are (a timeout armed in between is then late by at most this much).
const CALL_TIMER_ARMED: Duration = Duration::from_millis(2);
const CALL_TIMER_IDLE: Duration = Duration::from_millis(20);

/// The shard's call-timeout task: one per shard whatever the number of calls, asleep between
/// looks at the shard's deadline heap.
async fn call_timer(shard: Rc<Shard>) {
    loop {
        let armed = shard.router.borrow().has_call_timers();
        monoio::time::sleep(if armed {
            CALL_TIMER_ARMED
        } else {
            CALL_TIMER_IDLE
        })
        .await;
        if !shard.router.borrow().has_call_timers() {
            continue;
        }
        let expired = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shard.router.borrow_mut().expire_calls();
        }));
        if expired.is_err() {
            tracing::error!(
                shard = shard.id,
                "internal error while expiring call timeouts"
            );
        }
        shard.flush();
    }
}

/// How long the router waits for clients to answer its GOODBYE at shutdown.
const GOODBYE_WAIT: Duration = Duration::from_secs(2);

/// Says GOODBYE to every session of this shard, waits (bounded) for the clients' GOODBYE replies,
/// then closes and waits (bounded) for the connections to end.
async fn shutdown(shard: &Rc<Shard>) {
    let peers = shard.router.borrow_mut().shutdown();
    shard.flush();
    let replied = |p: &Rc<crate::router::session::Peer>| {
        p.outbox.closed() != crate::router::session::Closed::No
    };
    let goodbye_deadline = std::time::Instant::now() + GOODBYE_WAIT;
    while !peers.iter().all(replied) && std::time::Instant::now() < goodbye_deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    for p in &peers {
        Router::close_after_goodbye(p);
    }
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
    let (refused, tls) = (conn.refused, conn.tls);
    match conn.stream {
        IncomingStream::Tcp(s) => {
            let fd = s.as_raw_fd();
            let _ = s.set_nonblocking(true);
            let info = crate::transport::PeerInfo {
                addr: s.peer_addr().ok(),
                tls: None,
            };
            match monoio::net::TcpStream::from_std(s) {
                Ok(stream) => {
                    let serve = link::serve(shard.clone(), stream, fd, refused, info, tls);
                    link::spawn_contained(serve);
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
                    let info = crate::transport::PeerInfo::default();
                    let serve = link::serve(shard.clone(), stream, fd, refused, info, None);
                    link::spawn_contained(serve);
                }
                Err(e) => {
                    tracing::warn!("cannot adopt connection: {e}");
                    shard.connections.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::authority::Grant;
    use crate::router::ShardMsg;

    /// A mesh message that makes the router panic (here: a realm index no shard has) is dropped
    /// with a log line; the router keeps handling the next ones.
    #[test]
    fn a_panic_while_handling_a_mesh_message_is_contained() {
        let mesh = Arc::new(ShardMesh::new(2, 16));
        let realms = Arc::new(Realms::new(&["realm1".to_string()]));
        let mut router = Router::new(0, mesh, realms, Limits::default());
        let update = |realm| ShardMsg::SubUpdate {
            realm,
            grant: Grant { id: 7, rev: 1 },
            policy: crate::protocol::uri::MatchPolicy::Exact,
            uri: Arc::from("t"),
            add: true,
            token: 0,
        };
        on_mesh_contained(&mut router, 0, 1, update(99));
        on_mesh_contained(&mut router, 0, 1, update(0));
        let report = router.inspect();
        assert_eq!(report.realms[0].subscriptions.len(), 1);
        assert_eq!(report.realms[0].subscriptions[0].remote, 0b10);
    }

    /// A panicking connection task ends alone; the shard's other tasks run on.
    #[test]
    fn a_panicking_task_does_not_take_the_runtime_down() {
        let mut rt = RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        let survived = rt.block_on(async {
            link::spawn_contained(async { panic!("a bug in one connection") });
            let done = Rc::new(std::cell::Cell::new(false));
            let d = done.clone();
            link::spawn_contained(async move { d.set(true) });
            monoio::time::sleep(Duration::from_millis(20)).await;
            done.get()
        });
        assert!(survived);
    }
}
