//! connect: open N sessions at a given rate, hold them idle, measure router memory.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use wampd::protocol::Serializer;

use crate::session::{join, Inbound};
use crate::stats::{fmt_rate, stderr_is_tty, write_json, Lat};
use crate::url::Target;
use crate::util::{self, now_ns, sleep_until_ns, wait_flag, FdSet, Fds};
use crate::ConnectArgs;

const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

struct Shared {
    target: Target,
    ser: Serializer,
    realm: String,
    threads: usize,
    sessions: usize,
    rate: f64,
    start_ns: AtomicU64,
    go: AtomicBool,
    stop: AtomicBool,
    established: AtomicU64,
    failed: AtomicU64,
    closed_early: AtomicU64,
    last_established: AtomicU64,
    error_samples: Mutex<Vec<String>>,
}

impl Shared {
    fn error(&self, what: String) {
        let mut s = self.error_samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < 10 {
            s.push(what);
        }
    }
}

pub fn main(a: ConnectArgs) -> i32 {
    let target = match a.common.target() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("wampload: {e}");
            return 2;
        }
    };
    if a.sessions == 0
        || !util::positive(a.rate)
        || !(a.hold.is_finite() && a.hold >= 0.0)
        || a.hold > 86_400.0
    {
        eprintln!("wampload: --sessions and --rate must be > 0, --hold in [0, 86400]");
        return 2;
    }
    let progress = stderr_is_tty();
    let threads = a.common.threads();
    let sh = Arc::new(Shared {
        target,
        ser: a.common.serializer.ser(),
        realm: a.common.realm.clone(),
        threads,
        sessions: a.sessions,
        rate: a.rate,
        start_ns: AtomicU64::new(0),
        go: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        established: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        closed_early: AtomicU64::new(0),
        last_established: AtomicU64::new(0),
        error_samples: Mutex::new(Vec::new()),
    });
    let rss_before = a.common.router_pid.and_then(util::rss_kib);
    let cpu_before = a.common.router_pid.and_then(util::proc_cpu_secs);
    let sh2 = sh.clone();
    let handles = util::spawn_runtimes(threads, move |tid| thread_main(tid, sh2.clone()));
    let start = now_ns() + 20_000_000;
    sh.start_ns.store(start, Release);
    sh.go.store(true, Release);
    // Opening phase: bounded by the schedule plus the join timeout.
    let open_cap = start
        + (a.sessions as f64 / a.rate * 1e9) as u64
        + JOIN_TIMEOUT.as_nanos() as u64
        + 5_000_000_000;
    let mut last_print = start;
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let done = sh.established.load(Acquire) + sh.failed.load(Acquire);
        let now = now_ns();
        if progress && now >= last_print + 1_000_000_000 {
            eprintln!(
                "[{:5.1}s] established {} failed {}",
                now.saturating_sub(start) as f64 / 1e9,
                sh.established.load(Relaxed),
                sh.failed.load(Relaxed)
            );
            last_print = now;
        }
        if done >= a.sessions as u64 || now > open_cap {
            break;
        }
    }
    let opened_at = now_ns();
    let established = sh.established.load(Acquire);
    let failed = sh.failed.load(Acquire);
    let last = sh.last_established.load(Acquire).max(start + 1);
    let sessions_per_sec = established as f64 / ((last - start) as f64 / 1e9);
    // Let the router settle before reading its memory.
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = a.common.router_pid.and_then(util::rss_kib);
    let cpu_after = a.common.router_pid.and_then(util::proc_cpu_secs);
    let hold_until = opened_at + (a.hold * 1e9) as u64;
    while now_ns() < hold_until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rss_held = a.common.router_pid.and_then(util::rss_kib);
    let closed_early = sh.closed_early.load(Acquire);
    sh.stop.store(true, Release);
    let mut lat = Lat::default();
    let hard = std::time::Instant::now() + Duration::from_secs(20);
    for h in handles {
        while !h.is_finished() && std::time::Instant::now() < hard {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            if let Ok(l) = h.join() {
                lat.add(&l);
            }
        }
    }
    let per_session = match (rss_before, rss_after) {
        (Some(b), Some(a)) if established > 0 => {
            Some(((a as f64 - b as f64) / established as f64 * 100.0).round() / 100.0)
        }
        _ => None,
    };
    let router_cpu_us_per_session = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if established > 0 => Some(((a - b) * 1e6 / established as f64).round()),
        _ => None,
    };
    let errs = sh
        .error_samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let errors = failed + closed_early;
    let j = json!({
        "scenario": "connect",
        "url": sh.target.to_string(),
        "serializer": sh.ser.name(),
        "realm": sh.realm,
        "sessions": a.sessions,
        "rate": a.rate,
        "hold": a.hold,
        "threads": threads,
        "driver": util::DRIVER.get().cloned().unwrap_or_default(),
        "router_pid": a.common.router_pid,
        "sessions_per_sec": sessions_per_sec.round(),
        "established": established,
        "failed": failed,
        "closed_during_hold": closed_early,
        "published": a.sessions,
        "expected": a.sessions,
        "delivered": established,
        "lost": (a.sessions as u64).saturating_sub(established),
        "duplicated": 0,
        "out_of_order": 0,
        "errors": errors,
        "latency_us": lat.json(),
        "rss_kib_before": rss_before,
        "rss_kib_after": rss_after,
        "rss_kib_end_of_hold": rss_held,
        "rss_kib_per_session": per_session,
        "router_cpu_us_per_session": router_cpu_us_per_session,
        "error_samples": errs,
    });
    println!(
        "connect {} {}: {} sessions at {}/s, held {} s, {} thread(s)",
        sh.target,
        sh.ser.name(),
        a.sessions,
        fmt_rate(a.rate),
        a.hold,
        threads
    );
    println!(
        "  sessions/s {}   established {established}  failed {failed}  closed during hold {closed_early}",
        fmt_rate(sessions_per_sec)
    );
    println!(
        "  join latency (connect + handshake + HELLO→WELCOME) {}",
        lat.line()
    );
    if let (Some(b), Some(af)) = (rss_before, rss_after) {
        println!(
            "  router RSS {b} KiB → {af} KiB: {} KiB per session",
            per_session.map(|x| format!("{x:.2}")).unwrap_or("-".into())
        );
    }
    for e in &errs {
        println!("  error: {e}");
    }
    if let Some(p) = &a.common.json {
        write_json(p, &j);
    }
    i32::from(errors > 0)
}

async fn thread_main(tid: usize, sh: Arc<Shared>) -> Lat {
    let fds: Fds = Rc::new(FdSet::default());
    let lat = Rc::new(RefCell::new(Lat::default()));
    wait_flag(&sh.go).await;
    let start = sh.start_ns.load(Acquire);
    let mut handles = Vec::new();
    let n = sh.threads;
    let interval = 1e9 / sh.rate;
    for i in (tid..sh.sessions).step_by(n) {
        if sh.stop.load(Acquire) {
            break;
        }
        sleep_until_ns(start + (i as f64 * interval) as u64).await;
        handles.push(monoio::spawn(session(
            i,
            sh.clone(),
            fds.clone(),
            lat.clone(),
        )));
    }
    wait_flag(&sh.stop).await;
    fds.shutdown_all();
    for h in handles {
        let _ = monoio::time::timeout(Duration::from_secs(5), h).await;
    }
    let l = std::mem::take(&mut *lat.borrow_mut());
    l
}

async fn session(i: usize, sh: Arc<Shared>, fds: Fds, lat: Rc<RefCell<Lat>>) {
    let t0 = now_ns();
    let mut s = match join(&sh.target, sh.ser, &sh.realm, &fds, JOIN_TIMEOUT).await {
        Ok(s) => s,
        Err(e) => {
            sh.failed.fetch_add(1, Release);
            sh.error(format!("session {i}: {e}"));
            return;
        }
    };
    let now = now_ns();
    lat.borrow_mut().record_ns(now - t0);
    sh.last_established.fetch_max(now, Release);
    sh.established.fetch_add(1, Release);
    // Idle until the end (the shutdown at the end ends this read).
    loop {
        match s.next().await {
            Ok(Inbound::Msg(_)) => continue,
            _ => {
                if !sh.stop.load(Acquire) {
                    sh.closed_early.fetch_add(1, Release);
                    sh.error(format!("session {i}: closed by the router while idle"));
                }
                return;
            }
        }
    }
}
