//! Clock, small single-thread sync primitives, runtime threads.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Checks the options every timed scenario shares: `--duration` and `--rate`.
pub fn check_run(duration: f64, rate: Option<f64>) -> Result<(), String> {
    if !positive(duration) || duration > 86_400.0 {
        return Err("--duration must be in (0, 86400]".into());
    }
    if rate.is_some_and(|r| !positive(r)) {
        return Err("--rate must be > 0".into());
    }
    Ok(())
}

/// A finite number > 0 (refuses NaN too).
pub fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Starts the process-wide clock (call once early in main).
pub fn init_clock() {
    EPOCH.get_or_init(Instant::now);
}

/// Nanoseconds since the process-wide epoch; monotonic, shared by all threads.
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Sleeps (on a monoio runtime) until the shared clock reaches `t_ns`.
/// The runtime timer has millisecond granularity, so this may wake up to ~1 ms late.
pub async fn sleep_until_ns(t_ns: u64) {
    let now = now_ns();
    if t_ns > now {
        monoio::time::sleep(Duration::from_nanos(t_ns - now)).await;
    }
}

/// Open-loop pacing: waits until the shared clock reaches `t_ns` with sub-millisecond precision.
///
/// The runtime's timer has millisecond granularity, so it only covers the bulk of a long wait. The
/// last stretch is timed by a small process-wide timer thread (`std::thread::sleep` uses the
/// kernel's high-resolution timers) which then wakes the waiting task. The task's thread meanwhile
/// parks on its IO driver like any idle thread: spinning or yielding there instead would keep the
/// runtime from reaping IO completions, and the generator would delay its own receives.
pub async fn pace_until_ns(t_ns: u64) {
    let now = now_ns();
    if t_ns <= now {
        return;
    }
    if t_ns - now > 2_500_000 {
        monoio::time::sleep(Duration::from_nanos(t_ns - now - 2_000_000)).await;
    }
    PreciseWait {
        at: t_ns,
        armed: None,
    }
    .await
}

/// A wait that the timer thread completes.
struct PreciseWait {
    at: u64,
    armed: Option<Arc<AtomicBool>>,
}

impl Future for PreciseWait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if now_ns() >= self.at
            || self
                .armed
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Acquire))
        {
            return Poll::Ready(());
        }
        if self.armed.is_none() {
            let fired = Arc::new(AtomicBool::new(false));
            timer_thread().arm(self.at, cx.waker().clone(), fired.clone());
            self.armed = Some(fired);
        }
        Poll::Pending
    }
}

/// Deadlines waiting to be woken, earliest first, served by one thread.
struct TimerThread {
    queue: std::sync::Mutex<std::collections::BinaryHeap<Due>>,
    cv: std::sync::Condvar,
}

struct Due(u64, Waker, Arc<AtomicBool>);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.cmp(&self.0) // min-heap on the deadline
    }
}

impl TimerThread {
    fn arm(&self, at: u64, waker: Waker, fired: Arc<AtomicBool>) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Due(at, waker, fired));
        self.cv.notify_one();
    }

    fn run(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = now_ns();
            match q.peek().map(|d| d.0) {
                None => q = self.cv.wait(q).unwrap_or_else(|e| e.into_inner()),
                Some(at) if at <= now => {
                    let Due(_, waker, fired) = q.pop().expect("peeked");
                    fired.store(true, Ordering::Release);
                    waker.wake();
                }
                Some(at) => {
                    let wait = Duration::from_nanos(at - now);
                    q = self
                        .cv
                        .wait_timeout(q, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
}

fn timer_thread() -> &'static TimerThread {
    static TIMER: OnceLock<&'static TimerThread> = OnceLock::new();
    TIMER.get_or_init(|| {
        let t: &'static TimerThread = Box::leak(Box::new(TimerThread {
            queue: std::sync::Mutex::new(std::collections::BinaryHeap::new()),
            cv: std::sync::Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("wampload-timer".into())
            .spawn(move || t.run())
            .expect("timer thread");
        t
    })
}

/// A single-thread "something happened" flag with one waiting task.
#[derive(Default)]
pub struct Notify {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Completes once `notify` has been called since the last completion.
    pub fn notified(&self) -> Notified<'_> {
        Notified(self)
    }
}

pub struct Notified<'a>(&'a Notify);

impl Future for Notified<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.set.replace(false) {
            Poll::Ready(())
        } else {
            *self.0.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Lets the other tasks of this runtime run once.
pub async fn yield_now() {
    struct Y(bool);
    impl Future for Y {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
    Y(false).await
}

/// Waits (polling every millisecond) until `flag` is set.
pub async fn wait_flag(flag: &AtomicBool) {
    while !flag.load(Ordering::Acquire) {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Sockets of one runtime thread, so that they can all be shut down at the
/// end, which ends every pending read and write on them.
#[derive(Default)]
pub struct FdSet {
    fds: RefCell<std::collections::HashSet<i32>>,
}

impl FdSet {
    pub fn add(&self, fd: i32) {
        self.fds.borrow_mut().insert(fd);
    }
    pub fn remove(&self, fd: i32) {
        self.fds.borrow_mut().remove(&fd);
    }
    pub fn shutdown_all(&self) {
        for &fd in self.fds.borrow().iter() {
            // SAFETY: every fd in the set belongs to a live socket owned by this thread
            // (sockets remove themselves before they are closed).
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
        }
    }
}

pub type Fds = Rc<FdSet>;

/// Which event loop a runtime thread got.
pub static DRIVER: OnceLock<String> = OnceLock::new();

/// Starts `n` threads, each pinned to one of the cores this process may use
/// (round robin) and running one monoio runtime (io_uring, or epoll where
/// io_uring is unavailable or `MONOIO_FORCE_LEGACY_DRIVER` is set).
pub fn spawn_runtimes<T, F, Fut>(n: usize, f: F) -> Vec<std::thread::JoinHandle<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + 'static,
{
    let f = Arc::new(f);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    (0..n)
        .map(|tid| {
            let f = f.clone();
            let core = if cores.is_empty() {
                None
            } else {
                Some(cores[tid % cores.len()])
            };
            std::thread::Builder::new()
                .name(format!("wampload-{tid}"))
                .spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    run_on_runtime(|| f(tid))
                })
                .expect("spawn thread")
        })
        .collect()
}

fn run_on_runtime<T, Fut: Future<Output = T>>(fut: impl FnOnce() -> Fut) -> T {
    let forced =
        std::env::var("MONOIO_FORCE_LEGACY_DRIVER").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut why = "forced by MONOIO_FORCE_LEGACY_DRIVER".to_string();
    if !forced {
        for coop in [true, false] {
            match uring_runtime(coop) {
                Ok(mut rt) => {
                    let name = if coop {
                        "io_uring (coop taskrun)"
                    } else {
                        "io_uring"
                    };
                    let _ = DRIVER.set(name.into());
                    return rt.block_on(fut());
                }
                Err(e) => why = e.to_string(),
            }
        }
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("cannot build an epoll runtime either");
    let _ = DRIVER.set(format!("epoll ({why})"));
    rt.block_on(fut())
}

/// An io_uring runtime. With `coop`, completions are handed to the thread when it next enters the
/// kernel instead of by interrupting it: with a thousand busy sockets per thread, the interrupts
/// otherwise cost a fair share of the generator's CPU (kernels before 5.19 refuse the flag).
fn uring_runtime(
    coop: bool,
) -> std::io::Result<monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>> {
    let mut urb = io_uring_06::IoUring::builder();
    if coop {
        urb.setup_coop_taskrun();
    }
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(4096)
        .uring_builder(urb)
        .enable_timer()
        .build()
}

/// Raises the open-files limit to its hard maximum (many sessions = many sockets).
pub fn raise_nofile_limit() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// This process's CPU time (user + system) in seconds.
pub fn process_cpu_secs() -> f64 {
    // SAFETY: getrusage fills a local struct.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    }
}

/// VmRSS of a process in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) of another process in seconds, from /proc/PID/stat.
pub fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / hz.max(1.0))
}

/// The router's CPU time over a phase of a run (nothing without `--router-pid`).
pub struct RouterCpu {
    pid: Option<u32>,
    start: Option<f64>,
}

impl RouterCpu {
    pub fn start(pid: Option<u32>) -> RouterCpu {
        RouterCpu {
            pid,
            start: pid.and_then(proc_cpu_secs),
        }
    }

    /// CPU seconds since `start`, read at the end of the phase (before sessions close).
    pub fn stop(&self) -> Option<f64> {
        Some(self.pid.and_then(proc_cpu_secs)? - self.start?)
    }

    /// Adds the CPU seconds and the µs of them per unit of work to a result (null if unknown).
    pub fn report(
        spent: Option<f64>,
        units: u64,
        per_unit_key: &str,
        json: &mut serde_json::Value,
    ) {
        let round = |v: f64, k: f64| (v * k).round() / k;
        json["router_cpu_secs"] = spent.map(|s| round(s, 100.0)).into();
        json[per_unit_key] = spent
            .filter(|_| units > 0)
            .map(|s| round(s * 1e6 / units as f64, 1000.0))
            .into();
    }
}

/// A counter on its own cache line, so that threads updating neighbours do not contend.
#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// One counter per runtime thread: each thread updates its own, anyone may read them all.
pub struct PerThread(Vec<Padded>);

impl PerThread {
    pub fn new(threads: usize) -> Self {
        PerThread((0..threads.max(1)).map(|_| Padded::default()).collect())
    }

    pub fn add(&self, tid: usize, v: u64) {
        self.0[tid].0.fetch_add(v, Ordering::Release);
    }

    pub fn raise(&self, tid: usize, v: u64) {
        self.0[tid].0.fetch_max(v, Ordering::Release);
    }

    /// Sets every thread's value (before the threads start using them).
    pub fn set_all(&self, v: u64) {
        for p in &self.0 {
            p.0.store(v, Ordering::Release);
        }
    }

    pub fn sum(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Ordering::Acquire)).sum()
    }

    pub fn max(&self) -> u64 {
        self.0
            .iter()
            .map(|p| p.0.load(Ordering::Acquire))
            .max()
            .unwrap_or(0)
    }
}
