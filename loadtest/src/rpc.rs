//! rpc: C callers, each with K calls in flight (or at a fixed rate), → E echoing callees.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wampd::protocol::{Message, Serializer, Val};

use crate::check::{Answer, CallCheck, Reader};
use crate::fanout::{pad_to, DRAIN_CAP_NS, QUIET_NS};
use crate::session::{args_with_padding, join, lead_u64s, raw_args, Batch, Inbound, Session};
use crate::stats::{fmt_rate, stderr_is_tty, write_json, Lat, Runs};
use crate::url::Target;
use crate::util::{self, now_ns, wait_flag, yield_now, FdSet, Fds, Notify};
use crate::RpcArgs;

const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
const PROC: &str = "wampload.rpc.echo";

pub struct Cfg {
    pub target: Target,
    /// Router process whose CPU time is measured.
    pub router_pid: Option<u32>,
    pub ser: Serializer,
    pub realm: String,
    pub threads: usize,
    pub callers: usize,
    pub inflight: usize,
    pub callees: usize,
    pub payload: usize,
    pub pad: &'static str,
    pub rate: Option<f64>,
    pub duration: f64,
    pub reader: Reader,
    pub progress: bool,
    /// Progressive RESULTs per call (0: plain calls).
    pub progressive: u64,
    /// Invocation policy of the shared registration (several callees).
    pub invoke: &'static str,
    /// Keys cycled over as `rkey` (0: none).
    pub rkeys: u64,
}

impl Cfg {
    pub fn from_args(a: &RpcArgs) -> Result<Cfg, String> {
        let target = a.common.target()?;
        if a.callers == 0 || a.callees == 0 || a.inflight == 0 {
            return Err("--callers, --callees and --inflight must be > 0".into());
        }
        util::check_run(a.duration, a.rate)?;
        let ser = a.common.serializer.ser();
        Ok(Cfg {
            target,
            router_pid: a.common.router_pid,
            ser,
            realm: a.common.realm.clone(),
            threads: a.common.threads(),
            callers: a.callers,
            inflight: a.inflight,
            callees: a.callees,
            payload: a.payload,
            pad: call_padding(ser, a.payload),
            rate: a.rate,
            duration: a.duration,
            reader: a.reader,
            progress: stderr_is_tty(),
            progressive: a.progressive,
            invoke: Box::leak(a.invoke.clone().into_boxed_str()),
            rkeys: a.rkeys,
        })
    }
}

/// Padding for a CALL of about `bytes` bytes: `[48, req, {}, proc, [c, seq, t, pad]]`.
fn call_padding(ser: Serializer, bytes: usize) -> &'static str {
    pad_to(bytes, |pad| {
        let pad: &'static str = Box::leak(pad.to_string().into_boxed_str());
        let m = Message::Call {
            request: 1_000_000,
            options: Val::empty_dict(),
            procedure: Cow::Borrowed(PROC),
            args: Some(args_with_padding(0, 1_000_000, 10_000_000_000, pad)),
            kwargs: None,
        };
        let mut out = Vec::new();
        let _ = m.encode(ser, &mut out);
        out
    })
}

struct Shared {
    cfg: Cfg,
    go: AtomicBool,
    stop: AtomicBool,
    start_ns: AtomicU64,
    end_ns: AtomicU64,
    ready: AtomicUsize,
    callees_tried: AtomicUsize,
    per_callee: AtomicBool,
    join_failures: AtomicU64,
    issued: AtomicU64,
    completed: AtomicU64,
    call_errors: AtomicU64,
    last_result: AtomicU64,
    callers_done: AtomicUsize,
    errors: AtomicU64,
    dup: AtomicU64,
    /// Results that arrived after the result of a later call (allowed, but worth seeing).
    out_of_order: AtomicU64,
    /// Results that did not echo the call they answer.
    wrong_result: AtomicU64,
    /// INVOCATIONs from one caller that reached a callee out of call order (a spec violation).
    invocations_out_of_order: AtomicU64,
    /// Progressive RESULTs received, and those that came after their call's final RESULT.
    progress_results: AtomicU64,
    progress_late: AtomicU64,
    p99: Vec<AtomicU64>,
    /// INVOCATIONs each callee answered (how a shared registration spread the calls).
    served: Vec<AtomicU64>,
    error_samples: Mutex<Vec<String>>,
}

impl Shared {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Relaxed);
        let mut s = self.error_samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < 10 {
            s.push(what);
        }
    }
}

#[derive(Default)]
struct ThreadStats {
    lat: Lat,
    send_lag: Lat,
}

pub struct Outcome {
    pub json: Value,
    pub lat: Lat,
    pub calls_per_sec: f64,
    pub lost: u64,
    pub errors: u64,
    pub p99: u64,
    pub summary: String,
}

pub fn main(a: RpcArgs) -> i32 {
    let cfg = match Cfg::from_args(&a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wampload: {e}");
            return 2;
        }
    };
    let out = run(cfg);
    print!("{}", out.summary);
    if let Some(p) = &a.common.json {
        write_json(p, &out.json);
    }
    if let Some(p) = &a.plot {
        crate::plot::latency_svg(p, "rpc: call latency by percentile", &out.lat);
    }
    let progress_short = out.json["progress_results"] != out.json["progress_expected"]
        || out.json["progress_late"] != json!(0);
    i32::from(out.errors > 0 || out.lost > 0 || progress_short)
}

pub fn run(cfg: Cfg) -> Outcome {
    let threads = cfg.threads;
    let sh = Arc::new(Shared {
        go: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        start_ns: AtomicU64::new(0),
        end_ns: AtomicU64::new(0),
        ready: AtomicUsize::new(0),
        callees_tried: AtomicUsize::new(0),
        per_callee: AtomicBool::new(false),
        join_failures: AtomicU64::new(0),
        issued: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        call_errors: AtomicU64::new(0),
        last_result: AtomicU64::new(0),
        callers_done: AtomicUsize::new(0),
        errors: AtomicU64::new(0),
        dup: AtomicU64::new(0),
        out_of_order: AtomicU64::new(0),
        wrong_result: AtomicU64::new(0),
        invocations_out_of_order: AtomicU64::new(0),
        progress_results: AtomicU64::new(0),
        progress_late: AtomicU64::new(0),
        p99: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        served: (0..cfg.callees).map(|_| AtomicU64::new(0)).collect(),
        error_samples: Mutex::new(Vec::new()),
        cfg,
    });
    let sh2 = sh.clone();
    let handles = util::spawn_runtimes(threads, move |tid| thread_main(tid, sh2.clone()));
    let cfg = &sh.cfg;
    let total = cfg.callers + cfg.callees;
    let setup_deadline = now_ns() + 120_000_000_000;
    while sh.ready.load(Acquire) < total && now_ns() < setup_deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = now_ns() + 10_000_000;
    let end = start + (cfg.duration * 1e9) as u64;
    sh.start_ns.store(start, Release);
    sh.end_ns.store(end, Release);
    sh.last_result.store(start, Release);
    sh.go.store(true, Release);
    let cpu_start = util::process_cpu_secs();
    let router_cpu = util::RouterCpu::start(cfg.router_pid);
    let mut last_print = start;
    let mut last_done = 0u64;
    let mut callers_done_at: Option<u64> = None;
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let now = now_ns();
        if cfg.progress && now >= last_print + 1_000_000_000 {
            let d = sh.completed.load(Relaxed);
            let p99 = sh.p99.iter().map(|a| a.load(Relaxed)).max().unwrap_or(0);
            eprintln!(
                "[{:5.1}s] calls {} results {} ({} /s) p99 {} µs{}",
                now.saturating_sub(start) as f64 / 1e9,
                sh.issued.load(Relaxed),
                d,
                fmt_rate((d - last_done) as f64 * 1e9 / (now - last_print) as f64),
                p99,
                if now > end { " (draining)" } else { "" }
            );
            last_print = now;
            last_done = d;
        }
        if now < end {
            continue;
        }
        if callers_done_at.is_none() && sh.callers_done.load(Acquire) >= cfg.callers {
            callers_done_at = Some(now);
        }
        if now > end + DRAIN_CAP_NS {
            break;
        }
        if let Some(t) = callers_done_at {
            let answered = sh.completed.load(Acquire) + sh.call_errors.load(Acquire);
            if answered >= sh.issued.load(Acquire) {
                break;
            }
            if now > sh.last_result.load(Acquire).max(t) + QUIET_NS {
                break;
            }
        }
    }
    let drain_end = now_ns();
    let router_spent = router_cpu.stop();
    sh.stop.store(true, Release);
    let hard = std::time::Instant::now() + Duration::from_secs(20);
    let mut lat = Lat::default();
    let mut send_lag = Lat::default();
    for h in handles {
        while !h.is_finished() && std::time::Instant::now() < hard {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            if let Ok(o) = h.join() {
                lat.add(&o.lat);
                send_lag.add(&o.send_lag);
            }
        } else {
            sh.error("a runtime thread did not finish in time".into());
        }
    }
    let cpu = util::process_cpu_secs();
    let issued = sh.issued.load(Relaxed);
    let completed = sh.completed.load(Relaxed);
    let call_errors = sh.call_errors.load(Relaxed);
    let errors = sh.errors.load(Relaxed);
    let lost = issued.saturating_sub(completed + call_errors);
    let last = sh.last_result.load(Relaxed).max(start + 1);
    let span = (last.min(drain_end) - start) as f64 / 1e9;
    let calls_per_sec = if span > 0.0 {
        completed as f64 / span
    } else {
        0.0
    };
    let run_secs = (drain_end - start) as f64 / 1e9;
    let cpu_pct = (cpu - cpu_start) / run_secs * 100.0;
    let per_callee = sh.per_callee.load(Relaxed);
    let registration = if cfg.callees == 1 {
        "single"
    } else if per_callee {
        "per-callee procedures (router refused shared registration)"
    } else {
        "shared"
    };
    let errs = sh
        .error_samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let checked = cfg.reader != Reader::Count;
    let if_checked = |v: u64| if checked { json!(v) } else { Value::Null };
    let mut json = json!({
        "scenario": "rpc",
        "url": cfg.target.to_string(),
        "serializer": cfg.ser.name(),
        "realm": cfg.realm,
        "callers": cfg.callers,
        "inflight": cfg.inflight,
        "callees": cfg.callees,
        "registration": registration,
        "invoke": if cfg.callees > 1 { cfg.invoke } else { "single" },
        "payload": cfg.payload,
        "padding": cfg.pad.len(),
        "rate": cfg.rate,
        "mode": if cfg.rate.is_some() { "open" } else { "closed" },
        "duration": cfg.duration,
        "threads": cfg.threads,
        "driver": util::DRIVER.get().cloned().unwrap_or_default(),
        "calls_per_sec": calls_per_sec.round(),
        "published": issued,
        "delivered": completed,
        "expected": issued,
        "calls": issued,
        "results": completed,
        "call_errors": call_errors,
        "lost": lost,
        "duplicated": if_checked(sh.dup.load(Relaxed)),
        "out_of_order": if_checked(sh.out_of_order.load(Relaxed)),
        "wrong_result": if_checked(sh.wrong_result.load(Relaxed)),
        "invocations_out_of_order": sh.invocations_out_of_order.load(Relaxed),
        "progressive": cfg.progressive,
        "progress_results": sh.progress_results.load(Relaxed),
        "progress_expected": completed * cfg.progressive,
        "progress_late": sh.progress_late.load(Relaxed),
        "reader": cfg.reader.name(),
        "errors": errors,
        "join_failures": sh.join_failures.load(Relaxed),
        "latency_us": lat.json(),
        "send_lag_us": send_lag.json(),
        "drain_secs": ((drain_end.saturating_sub(end)) as f64 / 1e7).round() / 100.0,
        "wampload_cpu_percent": (cpu_pct * 10.0).round() / 10.0,
        "error_samples": errs,
    });
    // Added apart: one json! with every field exceeds the macro's recursion limit.
    let served: Vec<u64> = sh.served.iter().map(|n| n.load(Relaxed)).collect();
    json["rkeys"] = json!(cfg.rkeys);
    util::RouterCpu::report(router_spent, completed, "router_cpu_us_per_call", &mut json);
    json["served_per_callee"] = json!(served);
    let mut summary = format!(
        "rpc {} {}: {} callers × {} → {} callee(s) [{}], ~{} B calls, {} for {} s, {} thread(s)\n",
        cfg.target,
        cfg.ser.name(),
        cfg.callers,
        match cfg.rate {
            Some(_) => format!("≤{} in flight", cfg.inflight),
            None => format!("{} in flight", cfg.inflight),
        },
        cfg.callees,
        registration,
        cfg.payload,
        match cfg.rate {
            Some(r) => format!("open loop at {} calls/s", fmt_rate(r)),
            None => "closed loop".into(),
        },
        cfg.duration,
        cfg.threads
    );
    summary += &format!("  calls/s {}\n", fmt_rate(calls_per_sec));
    summary += &format!(
        "  calls {issued}  results {completed}  call errors {call_errors}  lost {lost}  duplicated {}  out-of-order {}  wrong results {}  errors {errors}\n",
        sh.dup.load(Relaxed),
        sh.out_of_order.load(Relaxed),
        sh.wrong_result.load(Relaxed),
    );
    if cfg.progressive > 0 {
        summary += &format!(
            "  progressive results {} (expected {} for {completed} results)  after their final result {}\n",
            sh.progress_results.load(Relaxed),
            completed * cfg.progressive,
            sh.progress_late.load(Relaxed),
        );
    }
    if cfg.callees > 1 {
        let served: Vec<String> = sh
            .served
            .iter()
            .map(|n| n.load(Relaxed).to_string())
            .collect();
        summary += &format!("  served per callee {}\n", served.join(" "));
    }
    summary += &format!("  latency {}\n", lat.line());
    summary += &format!(
        "  drain {:.2} s after calling; wampload CPU {:.0}% (of one core)\n",
        drain_end.saturating_sub(end) as f64 / 1e9,
        cpu_pct
    );
    for e in &errs {
        summary += &format!("  error: {e}\n");
    }
    Outcome {
        p99: lat.q(0.99),
        json,
        lat,
        calls_per_sec,
        lost,
        errors,
        summary,
    }
}

async fn thread_main(tid: usize, sh: Arc<Shared>) -> ThreadStats {
    let fds: Fds = Rc::new(FdSet::default());
    let st = Rc::new(RefCell::new(ThreadStats::default()));
    let n = sh.cfg.threads;
    let mut handles = Vec::new();
    for e in (tid..sh.cfg.callees).step_by(n) {
        handles.push(monoio::spawn(callee(e, sh.clone(), fds.clone())));
    }
    // Callers join once every callee is registered (their procedure name depends on it).
    while sh.callees_tried.load(Acquire) < sh.cfg.callees * 2 && !sh.stop.load(Acquire) {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
    for c in (tid..sh.cfg.callers).step_by(n) {
        handles.push(monoio::spawn(caller(
            c,
            sh.clone(),
            fds.clone(),
            st.clone(),
        )));
    }
    let mut last_p99 = 0;
    while !sh.stop.load(Acquire) {
        monoio::time::sleep(Duration::from_millis(5)).await;
        let now = now_ns();
        if sh.cfg.progress && now > last_p99 + 1_000_000_000 {
            last_p99 = now;
            sh.p99[tid].store(st.borrow().lat.q(0.99), Relaxed);
        }
    }
    fds.shutdown_all();
    for h in handles {
        let _ = monoio::time::timeout(Duration::from_secs(5), h).await;
    }
    let mut s = st.borrow_mut();
    ThreadStats {
        lat: std::mem::take(&mut s.lat),
        send_lag: std::mem::take(&mut s.send_lag),
    }
}

/// REGISTER and wait for the answer: Ok(true) registered, Ok(false) refused.
async fn register(
    s: &mut Session,
    request: u64,
    procedure: &str,
    shared: Option<&'static str>,
) -> Result<bool, String> {
    let options = if let Some(policy) = shared {
        Val::Dict(vec![(
            Cow::Borrowed("invoke"),
            Val::Str(Cow::Borrowed(policy)),
        )])
    } else {
        Val::empty_dict()
    };
    s.send(&Message::Register {
        request,
        options,
        procedure: Cow::Borrowed(procedure),
    });
    loop {
        match monoio::time::timeout(JOIN_TIMEOUT, s.next()).await {
            Ok(Ok(Inbound::Msg(f))) => match Message::parse(s.ser, &f) {
                Ok(Message::Registered { request: r, .. }) if r == request => return Ok(true),
                Ok(Message::Error { request: r, .. }) if r == request => return Ok(false),
                Ok(_) => continue,
                Err(e) => return Err(format!("bad message: {e}")),
            },
            Ok(Ok(Inbound::Closed)) => return Err("connection closed before REGISTERED".into()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("no REGISTERED in time".into()),
        }
    }
}

async fn callee(e: usize, sh: Arc<Shared>, fds: Fds) {
    let cfg = &sh.cfg;
    // Two steps counted in callees_tried: the shared attempt, then the fallback decision.
    let mut s = match join(&cfg.target, cfg.ser, &cfg.realm, &fds, JOIN_TIMEOUT).await {
        Ok(s) => s,
        Err(err) => {
            sh.join_failures.fetch_add(1, Relaxed);
            sh.error(format!("callee {e}: join: {err}"));
            sh.callees_tried.fetch_add(2, Release);
            sh.ready.fetch_add(1, Release);
            return;
        }
    };
    let shared = (cfg.callees > 1).then_some(cfg.invoke);
    let first = register(&mut s, 1, PROC, shared).await;
    let mut ok = match first {
        Ok(true) => true,
        Ok(false) if shared.is_some() => {
            sh.per_callee.store(true, Release);
            false
        }
        Ok(false) => {
            sh.error(format!("callee {e}: REGISTER {PROC} refused"));
            false
        }
        Err(err) => {
            sh.error(format!("callee {e}: {err}"));
            sh.callees_tried.fetch_add(2, Release);
            sh.ready.fetch_add(1, Release);
            return;
        }
    };
    sh.callees_tried.fetch_add(1, Release);
    let deadline = now_ns() + 60_000_000_000;
    while sh.callees_tried.load(Acquire) < cfg.callees && now_ns() < deadline {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
    if sh.per_callee.load(Acquire) {
        let name = format!("{PROC}.{e}");
        match register(&mut s, 2, &name, None).await {
            Ok(true) => ok = true,
            Ok(false) => {
                sh.error(format!("callee {e}: REGISTER {name} refused"));
                ok = false;
            }
            Err(err) => {
                sh.error(format!("callee {e}: {err}"));
                ok = false;
            }
        }
    }
    sh.callees_tried.fetch_add(1, Release);
    sh.ready.fetch_add(1, Release);
    if !ok {
        return;
    }
    echo_invocations(e, &mut s, &sh).await;
}

/// The callee's work: answer every INVOCATION with a YIELD of the same arguments (raw bytes, not
/// re-encoded), checking that each caller's calls arrive in the order they were made.
async fn echo_invocations(e: usize, s: &mut Session, sh: &Shared) {
    let (out, ser) = (s.out.clone(), s.ser);
    let mut scratch = Vec::with_capacity(256);
    // Highest call number seen per caller (calls are numbered from 1).
    let mut last = vec![0u64; sh.cfg.callers];
    loop {
        let mut over = false;
        let r = s
            .frames(|frame| match Message::parse(ser, frame) {
                Ok(Message::Invocation {
                    request,
                    args,
                    kwargs,
                    ..
                }) => {
                    check_invocation_order(e, sh, &args, &mut last);
                    sh.served[e].fetch_add(1, Relaxed);
                    for _ in 0..sh.cfg.progressive {
                        let p = Message::Yield {
                            request,
                            options: progress_option(),
                            args: args.clone(),
                            kwargs: kwargs.clone(),
                        };
                        out.push_msg(&p, ser, &mut scratch);
                    }
                    let y = Message::Yield {
                        request,
                        options: Val::empty_dict(),
                        args,
                        kwargs,
                    };
                    out.push_msg(&y, ser, &mut scratch);
                }
                Ok(Message::Goodbye { reason, .. }) | Ok(Message::Abort { reason, .. }) => {
                    sh.error(format!(
                        "callee {e}: session closed by the router: {reason}"
                    ));
                    over = true;
                }
                Ok(Message::Error { error, .. }) => sh.error(format!("callee {e}: ERROR {error}")),
                Ok(_) => {}
                Err(err) => sh.error(format!("callee {e}: bad message: {err}")),
            })
            .await;
        let lost_link = !matches!(r, Ok(Batch::Done));
        if lost_link && !sh.stop.load(Acquire) {
            sh.error(format!("callee {e}: connection lost"));
        }
        if over || lost_link {
            return;
        }
    }
}

/// `{"progress": true}`: YIELD.Options of a progressive result.
fn progress_option() -> Val<'static> {
    Val::Dict(vec![(Cow::Borrowed("progress"), Val::Bool(true))])
}

/// CALL.Options: `{"receive_progress": true}` in progressive mode, `rkey` "k<seq % rkeys>" for a
/// sharded registration, else empty.
fn call_options(progressive: u64, rkeys: u64, seq: u64) -> Val<'static> {
    let mut options = Vec::new();
    if progressive > 0 {
        options.push((Cow::Borrowed("receive_progress"), Val::Bool(true)));
    }
    if rkeys > 0 {
        let key = Val::Str(Cow::Owned(format!("k{}", seq % rkeys)));
        options.push((Cow::Borrowed("rkey"), key));
    }
    if options.is_empty() {
        return Val::empty_dict();
    }
    Val::Dict(options)
}

/// In progressive mode: Some(request) for a RESULT with `progress`, which is counted apart.
fn progress_result(ser: Serializer, frame: &[u8]) -> Option<u64> {
    match Message::parse(ser, frame) {
        Ok(Message::Result {
            request, details, ..
        }) if details.get("progress").and_then(|v| v.as_bool()) == Some(true) => Some(request),
        _ => None,
    }
}

/// The spec guarantees that one caller's calls reach a callee in the order they were made.
fn check_invocation_order(e: usize, sh: &Shared, args: &Option<Val<'_>>, last: &mut [u64]) {
    let Some([caller, seq, _]) = raw_args(args).and_then(|a| lead_u64s::<3>(sh.cfg.ser, a)) else {
        sh.error(format!(
            "callee {e}: INVOCATION without [caller, seq, time] args"
        ));
        return;
    };
    let Some(prev) = last.get_mut(caller as usize) else {
        sh.error(format!(
            "callee {e}: INVOCATION from unknown caller {caller}"
        ));
        return;
    };
    if seq <= *prev {
        sh.invocations_out_of_order.fetch_add(1, Relaxed);
        sh.error(format!(
            "callee {e}: caller {caller}'s call {seq} arrived after its call {prev}"
        ));
    }
    *prev = seq.max(*prev);
}

async fn caller(c: usize, sh: Arc<Shared>, fds: Fds, st: Rc<RefCell<ThreadStats>>) {
    let cfg = &sh.cfg;
    let s = match join(&cfg.target, cfg.ser, &cfg.realm, &fds, JOIN_TIMEOUT).await {
        Ok(s) => s,
        Err(e) => {
            sh.join_failures.fetch_add(1, Relaxed);
            sh.error(format!("caller {c}: join: {e}"));
            sh.ready.fetch_add(1, Release);
            sh.callers_done.fetch_add(1, Release);
            return;
        }
    };
    sh.ready.fetch_add(1, Release);
    wait_flag(&sh.go).await;
    let start = sh.start_ns.load(Acquire);
    let end = sh.end_ns.load(Acquire);
    let procedure = if sh.per_callee.load(Acquire) {
        format!("{PROC}.{}", c % cfg.callees)
    } else {
        PROC.to_string()
    };
    let out = s.out.clone();
    let ser = s.ser;
    let inflight = Rc::new(Cell::new(0usize));
    let notify = Rc::new(Notify::default());
    let reader = monoio::spawn(caller_reader(
        c,
        s,
        sh.clone(),
        st.clone(),
        inflight.clone(),
        notify.clone(),
    ));
    util::pace_until_ns(start).await;
    let interval = cfg.rate.map(|r| 1e9 * cfg.callers as f64 / r);
    let mut scratch = Vec::with_capacity(256);
    let mut sent: u64 = 0;
    loop {
        if sh.stop.load(Relaxed) || out.failed() {
            break;
        }
        let now = now_ns();
        if now >= end {
            break;
        }
        let room = cfg.inflight.saturating_sub(inflight.get()) as u64;
        let due = match interval {
            Some(iv) => ((now.saturating_sub(start) as f64 / iv) as u64 + 1).saturating_sub(sent),
            None => u64::MAX,
        };
        let n = room.min(due);
        if n == 0 {
            if room == 0 {
                let _ = monoio::time::timeout(Duration::from_millis(50), notify.notified()).await;
            } else {
                let iv = interval.unwrap_or(1e6);
                util::pace_until_ns(start + (sent as f64 * iv) as u64).await;
            }
            continue;
        }
        for _ in 0..n {
            let t = match interval {
                Some(iv) => {
                    let sched = start + (sent as f64 * iv) as u64;
                    st.borrow_mut()
                        .send_lag
                        .record_ns(now.saturating_sub(sched));
                    sched
                }
                None => now,
            };
            sent += 1;
            let msg = Message::Call {
                request: sent,
                options: call_options(cfg.progressive, cfg.rkeys, sent),
                procedure: Cow::Borrowed(&procedure),
                args: Some(args_with_padding(c as u64, sent, t, cfg.pad)),
                kwargs: None,
            };
            out.push_msg(&msg, ser, &mut scratch);
        }
        inflight.set(inflight.get() + n as usize);
        sh.issued.fetch_add(n, Release);
        yield_now().await;
    }
    sh.callers_done.fetch_add(1, Release);
    let _ = reader.await;
}

async fn caller_reader(
    c: usize,
    mut s: Session,
    sh: Arc<Shared>,
    st: Rc<RefCell<ThreadStats>>,
    inflight: Rc<Cell<usize>>,
    notify: Rc<Notify>,
) {
    let cfg = &sh.cfg;
    let count = cfg.reader == Reader::Count;
    let mut check = CallCheck::new(s.ser, cfg.reader == Reader::Full, c as u64);
    // Progressive mode: which calls (by request id) had their final RESULT.
    let mut finals: Vec<bool> = Vec::new();
    loop {
        // One clock reading per socket read: the results of one read arrived together.
        let (mut now, mut done, mut freed, mut over) = (0u64, 0u64, 0usize, false);
        let mut runs = Runs::default();
        let r = s
            .frames(|frame| {
                if cfg.progressive > 0 {
                    if let Some(request) = progress_result(cfg.ser, frame) {
                        sh.progress_results.fetch_add(1, Relaxed);
                        let i = (request as usize).wrapping_sub(1);
                        if finals.get(i).copied().unwrap_or(false) {
                            sh.progress_late.fetch_add(1, Relaxed);
                        }
                        return;
                    }
                    if let Ok(Message::Result { request, .. }) = Message::parse(cfg.ser, frame) {
                        let i = (request as usize).saturating_sub(1);
                        if finals.len() <= i {
                            finals.resize(i + 1, false);
                        }
                        finals[i] = true;
                    }
                }
                if count {
                    done += 1;
                    return;
                }
                match check.on_frame(frame) {
                    Answer::New(sent) => {
                        if now == 0 {
                            now = now_ns();
                        }
                        if let Some(run) = runs.add_ns(now.saturating_sub(sent)) {
                            st.borrow_mut().lat.record_run(run);
                        }
                        done += 1;
                    }
                    Answer::Duplicate => {
                        sh.dup.fetch_add(1, Relaxed);
                    }
                    Answer::Bad(why) => {
                        freed += 1; // answered, wrongly: the call is no longer in flight
                        sh.error(format!("caller {c}: {why}"));
                    }
                    Answer::Other => over |= caller_other(c, &sh, &mut check, frame, &mut freed),
                }
            })
            .await;
        if let Some(run) = runs.take() {
            st.borrow_mut().lat.record_run(run);
        }
        if done > 0 {
            sh.completed.fetch_add(done, Release);
            sh.last_result
                .fetch_max(if now == 0 { now_ns() } else { now }, Release);
        }
        if done > 0 || freed > 0 {
            inflight.set(inflight.get().saturating_sub(done as usize + freed));
            notify.notify();
        }
        let lost_link = match r {
            Ok(Batch::Done) => false,
            Ok(Batch::Closed) | Err(_) => true,
        };
        if lost_link && !sh.stop.load(Acquire) {
            sh.error(format!("caller {c}: connection lost"));
        }
        if over || lost_link {
            break;
        }
    }
    sh.out_of_order.fetch_add(check.seen.out_of_order, Relaxed);
    sh.wrong_result.fetch_add(check.wrong_result, Relaxed);
    notify.notify();
}

/// A caller's message other than a RESULT; true when it ends the session. `freed` counts calls
/// that are no longer in flight.
fn caller_other(
    c: usize,
    sh: &Shared,
    check: &mut CallCheck,
    frame: &[u8],
    freed: &mut usize,
) -> bool {
    match Message::parse(sh.cfg.ser, frame) {
        Ok(Message::Error { request, error, .. }) => {
            if check.on_error(request) {
                *freed += 1;
                sh.call_errors.fetch_add(1, Relaxed);
            }
            sh.error(format!("caller {c}: CALL {request} failed: {error}"));
        }
        Ok(Message::Goodbye { reason, .. }) | Ok(Message::Abort { reason, .. }) => {
            sh.error(format!(
                "caller {c}: session closed by the router: {reason}"
            ));
            return true;
        }
        Ok(m) => sh.error(format!("caller {c}: unexpected message {}", m.code())),
        Err(e) => sh.error(format!("caller {c}: bad message: {e}")),
    }
    false
}
