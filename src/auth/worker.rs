//! Threads for slow key derivation at login time (a salted WAMP-CRA secret or a SCRAM password that
//! the dynamic authenticator hands over): a shard thread must keep routing while a derivation runs,
//! so the work is queued here and its result handed back to the shard.
//!
//! The queue is bounded: a flood of logins needing derivations is refused rather than piling up
//! memory or delaying every login behind it.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// Derivations waiting for a thread.
const QUEUE: usize = 256;
/// Threads that derive; few, since each keeps a core busy.
const THREADS: usize = 2;

static QUEUE_TX: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();

/// Queues `job`; false if the queue is full (or no thread could be started).
pub fn submit(job: impl FnOnce() + Send + 'static) -> bool {
    let Some(tx) = QUEUE_TX.get_or_init(start) else {
        return false;
    };
    match tx.try_send(Box::new(job)) {
        Ok(()) => true,
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
    }
}

fn start() -> Option<SyncSender<Job>> {
    let (tx, rx) = sync_channel::<Job>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    let mut started = 0;
    for i in 0..THREADS {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("wampd-kdf-{i}"))
            .spawn(move || serve(&rx));
        match spawned {
            Ok(_) => started += 1,
            Err(e) => tracing::error!("cannot start a key-derivation thread: {e}"),
        }
    }
    (started > 0).then_some(tx)
}

/// Runs jobs until every sender is gone; a panicking job loses only itself.
fn serve(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else {
            return;
        };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a key derivation panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_off_the_calling_thread() {
        let (tx, rx) = std::sync::mpsc::channel();
        let me = std::thread::current().id();
        assert!(submit(move || {
            let _ = tx.send(std::thread::current().id());
        }));
        let ran_on = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the job ran");
        assert_ne!(ran_on, me);
    }
}
