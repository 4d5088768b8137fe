//! Interoperability tests: third-party WAMP clients (autobahn-python,
//! autobahn-js and wampy.js) against a real `wampd` process.
//!
//! The clients live in `tests/interop/` and are installed by
//! `tests/interop/setup.sh` (`tests/run.sh` runs it first). When they are
//! missing the tests fail, saying what is missing: a skipped check must not
//! read as a passed one.
//!
//! Every case starts its own router with `--shards 2`; each client script
//! opens its sessions one after the other, so its two main sessions sit on
//! different shards and every check also crosses shards.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a client script may run before it is killed.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the router may take to print its start line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

const SERIALIZERS: [&str; 3] = ["json", "msgpack", "cbor"];

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

fn python_bin() -> PathBuf {
    interop_dir().join(".venv").join("bin").join("python")
}

/// Fails the test, saying what to do, when a client is not installed.
fn require_clients(what: &str, needed: &[PathBuf]) {
    let missing: Vec<String> = needed
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "interop ({what}) cannot run: missing {}; install the clients with `bash tests/interop/setup.sh`",
        missing.join(", ")
    );
}

/// Collects everything a pipe yields, in a background thread.
fn drain<R: Read + Send + 'static>(r: R) -> (Arc<Mutex<Vec<u8>>>, thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    let h = thread::spawn(move || {
        let mut r = r;
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => b.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    });
    (buf, h)
}

fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// A running router; killed when dropped, also when a test panics.
struct Router {
    child: Child,
    addr: String,
    unix: Option<PathBuf>,
    start_line: String,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Router {
    fn start(unix: Option<PathBuf>) -> Router {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wampd"));
        cmd.args(["--listen", "127.0.0.1:0", "--shards", "2"]);
        if let Some(p) = &unix {
            cmd.arg("--unix").arg(p);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn wampd");
        let (stderr, _) = drain(child.stderr.take().unwrap());

        // The first stdout line carries the address; the rest is kept.
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let out = stdout.clone();
            let pipe = child.stdout.take().unwrap();
            thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut first = String::new();
                let n = r.read_line(&mut first).unwrap_or(0);
                let _ = tx.send(if n == 0 { None } else { Some(first) });
                let mut rest = Vec::new();
                let _ = r.read_to_end(&mut rest);
                out.lock().unwrap().extend_from_slice(&rest);
            });
        }

        let mut router = Router {
            child,
            addr: String::new(),
            unix,
            start_line: String::new(),
            stdout,
            stderr,
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(line)) => line,
            Ok(None) => panic!(
                "wampd exited or closed stdout before printing its start line; stderr:\n{}",
                text(&router.stderr)
            ),
            Err(_) => panic!(
                "wampd printed no start line within {START_TIMEOUT:?}; stderr:\n{}",
                text(&router.stderr)
            ),
        };
        router.start_line = line.trim_end().to_string();
        router.addr = parse_tcp_addr(&router.start_line).unwrap_or_else(|| {
            panic!(
                "no tcp://HOST:PORT in wampd's start line {:?}",
                router.start_line
            )
        });
        if let Some(p) = &router.unix {
            let want = format!("unix://{}", p.display());
            assert!(
                router.start_line.contains(&want),
                "wampd's start line {:?} does not list {want}",
                router.start_line
            );
        }
        router
    }

    /// Router output, for failure reports.
    fn logs(&self) -> String {
        format!(
            "--- wampd start line: {}\n--- wampd stdout:\n{}\n--- wampd stderr:\n{}",
            self.start_line,
            text(&self.stdout),
            text(&self.stderr)
        )
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(p) = &self.unix {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Extracts `A.B.C.D:PORT` following `tcp://` (the `tcp://([0-9.]+:[0-9]+)` of the contract).
fn parse_tcp_addr(line: &str) -> Option<String> {
    let start = line.find("tcp://")? + "tcp://".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    let addr = rest[..end].trim_end_matches(':');
    let (host, port) = addr.rsplit_once(':')?;
    if host.is_empty() || port.is_empty() || port.parse::<u16>().ok()? == 0 {
        return None;
    }
    Some(addr.to_string())
}

struct ClientRun {
    status: Option<ExitStatus>,
    timed_out: bool,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

fn run_client(mut cmd: Command) -> ClientRun {
    let t0 = Instant::now();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let (out, hout) = drain(child.stdout.take().unwrap());
    let (err, herr) = drain(child.stderr.take().unwrap());
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if t0.elapsed() > CLIENT_TIMEOUT => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for client: {e}"),
        }
    };
    let _ = hout.join();
    let _ = herr.join();
    ClientRun {
        status,
        timed_out,
        stdout: text(&out),
        stderr: text(&err),
        elapsed: t0.elapsed(),
    }
}

/// The URL of a case, given the router it runs against.
enum Transport {
    WebSocket,
    RawSocketTcp,
    RawSocketUnix,
}

#[derive(Clone, Copy)]
enum Client {
    Python,
    Js,
    Wampy,
}

/// Runs one case against a fresh router; returns an error report on failure.
fn run_case(client: Client, transport: Transport, serializer: &str) -> Result<String, String> {
    let unix = match transport {
        Transport::RawSocketUnix => Some(unique_socket_path()),
        _ => None,
    };
    let router = Router::start(unix);
    let url = match transport {
        Transport::WebSocket => format!("ws://{}/ws", router.addr),
        Transport::RawSocketTcp => format!("rs://{}", router.addr),
        Transport::RawSocketUnix => {
            format!("rs://unix:{}", router.unix.as_ref().unwrap().display())
        }
    };
    let (name, cmd) = match client {
        Client::Python => {
            let mut c = Command::new(python_bin());
            c.arg(interop_dir().join("ab_python.py"))
                .arg(&url)
                .arg(serializer)
                .env("PYTHONUNBUFFERED", "1")
                .current_dir(interop_dir());
            ("python", c)
        }
        Client::Js => {
            let mut c = Command::new("node");
            c.arg("ab_js.js")
                .arg(&url)
                .arg(serializer)
                .current_dir(interop_dir());
            ("js", c)
        }
        Client::Wampy => {
            let mut c = Command::new("node");
            c.arg("wampy_js.mjs")
                .arg(&url)
                .arg(serializer)
                .current_dir(interop_dir());
            ("wampy", c)
        }
    };
    let case = format!("{name} {url} {serializer}");
    let run = run_client(cmd);
    let ok_line = format!("OK {case}");
    let passed = !run.timed_out
        && run.status.map(|s| s.success()).unwrap_or(false)
        && run.stdout.lines().any(|l| l.trim_end() == ok_line);
    // A router that died under the client fails the case even if the
    // client somehow passed.
    let mut router = router;
    let alive = matches!(router.child.try_wait(), Ok(None));
    let _ = router.child.kill();
    let _ = router.child.wait();
    let logs = router.logs();
    drop(router);
    if passed && alive {
        return Ok(format!("{ok_line} ({:.1} s)", run.elapsed.as_secs_f64()));
    }
    let why = if run.timed_out {
        format!("timed out after {CLIENT_TIMEOUT:?} (killed)")
    } else if !alive {
        "wampd exited during the run".to_string()
    } else {
        format!("exit status {:?}, no line {ok_line:?}", run.status)
    };
    Err(format!(
        "FAILED {case}: {why}\n--- client stdout:\n{}\n--- client stderr:\n{}\n{logs}\n",
        run.stdout, run.stderr
    ))
}

fn unique_socket_path() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("wampd-interop-{}-{nanos}.sock", std::process::id()))
}

/// Runs all cases (sequentially, each against its own router) and fails
/// with a report of every failed case.
fn run_cases(cases: Vec<(Client, Transport, &str)>) {
    let mut failures = Vec::new();
    let total = cases.len();
    for (client, transport, ser) in cases {
        match run_case(client, transport, ser) {
            Ok(line) => println!("{line}"),
            Err(report) => {
                eprintln!("{report}");
                failures.push(report.lines().next().unwrap_or_default().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} interop cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Fails the test when Node.js or the npm package `package_json` names is missing.
fn require_node(what: &str, package_json: &str) {
    let node_ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let needed = if node_ok {
        interop_dir().join(package_json)
    } else {
        PathBuf::from("node (in PATH)")
    };
    require_clients(what, &[needed]);
}

#[test]
fn autobahn_python() {
    require_clients(
        "autobahn-python",
        &[python_bin(), interop_dir().join(".venv/lib")],
    );
    let mut cases = Vec::new();
    for ser in SERIALIZERS {
        cases.push((Client::Python, Transport::WebSocket, ser));
    }
    for ser in SERIALIZERS {
        cases.push((Client::Python, Transport::RawSocketTcp, ser));
    }
    // autobahn-python's RawSocket client runs over any asyncio stream, so it
    // also covers RawSocket over a Unix domain socket (`--unix`).
    cases.push((Client::Python, Transport::RawSocketUnix, "msgpack"));
    run_cases(cases);
}

#[test]
fn autobahn_js() {
    require_node("autobahn-js", "node_modules/autobahn/package.json");
    // autobahn-js speaks RawSocket with json only (and only from Node), so
    // it is run over WebSocket with every serializer.
    let cases = SERIALIZERS
        .iter()
        .map(|ser| (Client::Js, Transport::WebSocket, *ser))
        .collect();
    run_cases(cases);
}

#[test]
fn wampy_js() {
    require_node("wampy.js", "node_modules/wampy/package.json");
    // wampy.js speaks WebSocket only; its msgpack (msgpackr) and cbor (cbor-x) encoders write
    // forms autobahn's do not (`undefined` in options, Uint8Array as a tagged byte string).
    let cases = SERIALIZERS
        .iter()
        .map(|ser| (Client::Wampy, Transport::WebSocket, *ser))
        .collect();
    run_cases(cases);
}

#[test]
fn start_line_parsing() {
    assert_eq!(
        parse_tcp_addr(
            "wampd: listening on tcp://127.0.0.1:12345, shards=2, driver=io_uring, realms=realm1"
        )
        .as_deref(),
        Some("127.0.0.1:12345")
    );
    assert_eq!(
        parse_tcp_addr("wampd: listening on tcp://127.0.0.1:80, unix:///tmp/x.sock, shards=1")
            .as_deref(),
        Some("127.0.0.1:80")
    );
    assert_eq!(
        parse_tcp_addr("wampd: listening on tcp://127.0.0.1:0, shards=1"),
        None
    );
    assert_eq!(parse_tcp_addr("no address here"), None);
}

/// Runs wampy.js (`serializer`, WebSocket) against an autobahn-python peer on the same router,
/// the peer on `peer_url_of(router address)` with `peer_ser`. The peer connects first, so the two
/// sessions sit on different shards.
fn run_mixed_case(
    serializer: &str,
    peer_ser: &str,
    rawsocket_peer: bool,
) -> Result<String, String> {
    let router = Router::start(None);
    let peer_url = if rawsocket_peer {
        format!("rs://{}", router.addr)
    } else {
        format!("ws://{}/ws", router.addr)
    };
    let mut peer = Command::new(python_bin())
        .arg(interop_dir().join("mixed_peer.py"))
        .arg(&peer_url)
        .arg(peer_ser)
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(interop_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mixed_peer.py");
    let (peer_err, _) = drain(peer.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    let peer_out = peer.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(peer_out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(START_TIMEOUT);
    let case = format!("wampy ws {serializer} with autobahn-python {peer_url} {peer_ser}");
    if ready.as_deref() != Ok("READY") {
        let _ = peer.kill();
        let _ = peer.wait();
        return Err(format!(
            "FAILED {case}: the peer did not get ready ({ready:?})\n--- peer stderr:\n{}\n{}",
            text(&peer_err),
            router.logs()
        ));
    }
    let mut c = Command::new("node");
    c.arg("mixed_wampy.mjs")
        .arg(format!("ws://{}/ws", router.addr))
        .arg(serializer)
        .current_dir(interop_dir());
    let run = run_client(c);
    let ok_line = format!("OK mixed-wampy ws://{}/ws {serializer}", router.addr);
    let wampy_ok = !run.timed_out
        && run.status.is_some_and(|s| s.success())
        && run.stdout.lines().any(|l| l.trim_end() == ok_line);
    // The peer exits by itself once wampy called com.mixed.done.
    let t0 = Instant::now();
    let peer_status = loop {
        match peer.try_wait() {
            Ok(Some(st)) => break Some(st),
            _ if t0.elapsed() > Duration::from_secs(10) => {
                let _ = peer.kill();
                let _ = peer.wait();
                break None;
            }
            _ => thread::sleep(Duration::from_millis(20)),
        }
    };
    if wampy_ok && peer_status.is_some_and(|s| s.success()) {
        return Ok(format!("OK {case}"));
    }
    Err(format!(
        "FAILED {case}: wampy {:?}, peer {peer_status:?}\n--- wampy stdout:\n{}\n--- wampy stderr:\n{}\n--- peer stderr:\n{}\n{}",
        run.status,
        run.stdout,
        run.stderr,
        text(&peer_err),
        router.logs()
    ))
}

/// wampy.js and autobahn-python in one realm, on different shards, with different serializers and
/// transports: RPC both ways of the serializer boundary, errors, PubSub with acknowledge.
#[test]
fn wampy_js_with_autobahn_python() {
    require_node("wampy.js", "node_modules/wampy/package.json");
    require_clients("autobahn-python", &[python_bin()]);
    let cases = [
        ("json", "msgpack", true),
        ("msgpack", "cbor", false),
        ("cbor", "json", true),
    ];
    let mut failures = Vec::new();
    for (ser, peer_ser, rs) in cases {
        match run_mixed_case(ser, peer_ser, rs) {
            Ok(line) => println!("{line}"),
            Err(report) => {
                eprintln!("{report}");
                failures.push(report.lines().next().unwrap_or_default().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
