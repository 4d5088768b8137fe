//! Running the third-party client scripts of `tests/interop/` against a fresh 2-shard router: one
//! place for spawning, the time limit and collecting what a failing client printed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::Router;

/// How long one client script may run before it is killed.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `tests/interop`, where the scripts, the venv and node_modules live.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Fails the test (never skips it) when a client is not installed.
pub fn require(path: &Path) {
    assert!(
        path.exists(),
        "interop cannot run: missing {}; install the clients with `bash tests/interop/setup.sh`",
        path.display()
    );
}

/// What a client script did.
pub struct Outcome {
    /// None: killed at [`CLIENT_TIMEOUT`].
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `program script args…` in [`dir`], bounded by [`CLIENT_TIMEOUT`]. Both pipes are read on
/// their own threads so that a chatty client never blocks on a full pipe.
pub fn run_script(program: &Path, script: &str, args: &[&str]) -> Outcome {
    let mut child = Command::new(program)
        .arg(script)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if t0.elapsed() > CLIENT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        took: t0.elapsed(),
    }
}

/// The URL of a router address over WebSocket (`ws`) or RawSocket.
pub fn url(addr: &str, ws: bool) -> String {
    if ws {
        format!("ws://{addr}/ws")
    } else {
        format!("rs://{addr}")
    }
}

/// Runs `program script URL ser` against a fresh 2-shard router; Ok when it exits 0 having printed
/// a line starting with `OK `, else everything it printed.
pub fn run_case(program: &Path, script: &str, ws: bool, ser: &str) -> Result<String, String> {
    let router = Router::start(2, &[]);
    let url = url(&router.addr, ws);
    let o = run_script(program, script, &[&url, ser]);
    let case = format!("{script} {url} {ser}");
    if o.success() && o.stdout.lines().any(|l| l.starts_with("OK ")) {
        Ok(case)
    } else {
        Err(format!(
            "FAILED {case} (status {:?})\n--- stdout:\n{}\n--- stderr:\n{}",
            o.status, o.stdout, o.stderr
        ))
    }
}

/// Runs every case, then fails naming all that failed.
pub fn run_all(cases: Vec<(PathBuf, &str, bool, &str)>) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(program, script, ws, ser)| run_case(program, script, *ws, ser).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `program script URL ser` against a fresh 2-shard router and asserts that it exits 0 having
/// printed exactly the line `{ok} {URL} {ser}`.
pub fn run_expecting(program: &Path, script: &str, ws: bool, ser: &str, ok: &str) {
    if program.components().count() > 1 {
        require(program);
    }
    let router = Router::start(2, &[]);
    let url = url(&router.addr, ws);
    let o = run_script(program, script, &[&url, ser]);
    let ok_line = format!("{ok} {url} {ser}");
    assert!(
        o.success() && o.stdout.lines().any(|l| l.trim_end() == ok_line),
        "FAILED {ok_line} (status {:?})\n--- stdout:\n{}\n--- stderr:\n{}",
        o.status,
        o.stdout,
        o.stderr
    );
    println!("{ok_line} ({:.1} s)", o.took.as_secs_f64());
}
