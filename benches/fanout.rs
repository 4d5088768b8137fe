//! The router's fan-out machinery without sockets: building one EVENT per encoding for a publication
//! and queueing it on N subscribers' outboxes, then draining those outboxes as writers would; and the
//! cross-shard hand-off of messages in batches between two threads — with a consumer that spins, and
//! with one that sleeps in its runtime and must be woken, as a shard does.

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wampd::mesh::{Mesh, Outgoing};
use wampd::protocol::{Message, Serializer, Val};
use wampd::router::wire::{AppPayload, Encoding, EventFrames, Wire};
use wampd::router::Conn;

/// A PUBLISH frame with a 64-byte payload, encoded with `ser`.
fn publish_frame(ser: Serializer) -> Bytes {
    let pad = "x".repeat(48);
    let msg = Message::Publish {
        request: 1,
        options: Val::empty_dict(),
        topic: Cow::Borrowed("com.example.topic"),
        args: Some(Val::List(vec![
            Val::UInt(1),
            Val::UInt(123_456),
            Val::Str(Cow::Owned(pad)),
        ])),
        kwargs: None,
    };
    let mut v = Vec::new();
    msg.encode(ser, &mut v).unwrap();
    Bytes::from(v)
}

fn frames_for(frame: &Bytes, ser: Serializer) -> EventFrames {
    let parsed = Message::parse(ser, frame).unwrap();
    let Message::Publish { args, kwargs, .. } = parsed else {
        unreachable!()
    };
    EventFrames::new(
        77,
        88,
        None,
        ser,
        AppPayload::from_frame(frame, &args, &kwargs),
    )
}

fn event_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("event_build");
    for ser in Serializer::ALL {
        let frame = publish_frame(ser);
        g.bench_function(BenchmarkId::new("same_serializer", ser.name()), |b| {
            b.iter(|| {
                let f = frames_for(&frame, ser);
                black_box(f.get(Encoding {
                    ser,
                    wire: Wire::RawSocket,
                }))
            })
        });
        g.bench_function(BenchmarkId::new("all_six_encodings", ser.name()), |b| {
            b.iter(|| {
                let f = frames_for(&frame, ser);
                for s in Serializer::ALL {
                    for wire in [Wire::WebSocket, Wire::RawSocket] {
                        black_box(f.get(Encoding { ser: s, wire }));
                    }
                }
            })
        });
    }
    g.finish();
}

fn fanout_to_outboxes(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_outboxes");
    let ser = Serializer::MsgPack;
    let frame = publish_frame(ser);
    for n in [100usize, 1000] {
        let enc = Encoding {
            ser,
            wire: Wire::RawSocket,
        };
        let conns: Vec<Conn> = (0..n)
            .map(|_| Conn::new(enc, 1 << 30, 1 << 24, 1 << 24))
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("publish_to", n), |b| {
            let mut buf = Vec::with_capacity(4096);
            b.iter(|| {
                let f = frames_for(&frame, ser);
                for c in &conns {
                    if let Some(b) = f.get(c.peer.enc) {
                        c.peer.outbox.push(b);
                    }
                }
                // Drain as the writers would (one fill per connection).
                for c in &conns {
                    buf.clear();
                    let fut = c.peer.outbox.fill(&mut buf, 1 << 20);
                    let _ = poll_once(fut);
                }
            })
        });
    }
    g.finish();
}

/// Polls a future that is known to be ready.
fn poll_once<F: std::future::Future>(f: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

fn mesh_handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("mesh_handoff");
    for batch in [1usize, 64, 1024] {
        g.throughput(Throughput::Elements(100_000));
        g.bench_function(BenchmarkId::new("batch", batch), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += handoff(100_000, batch);
                }
                total
            })
        });
    }
    g.finish();
}

/// Moves `n` messages from one thread to another in batches of `batch`; returns the elapsed time.
fn handoff(n: u64, batch: usize) -> Duration {
    let mesh: Arc<Mesh<u64, ()>> = Arc::new(Mesh::new(2, 8192));
    let m2 = mesh.clone();
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let mut out = Outgoing::new(0, 2);
        for i in 0..n {
            out.send(1, i);
            if (i as usize + 1).is_multiple_of(batch) {
                while out.flush(&m2) {
                    std::hint::spin_loop();
                }
            }
        }
        while out.flush(&m2) {
            std::hint::spin_loop();
        }
    });
    let mut got = 0u64;
    let mut buf = Vec::with_capacity(4096);
    while got < n {
        buf.clear();
        mesh.drain(1, 4096, &mut buf);
        got += buf.len() as u64;
    }
    producer.join().unwrap();
    start.elapsed()
}

/// The consumer side of a shard: a monoio runtime thread that waits on `Mesh::ready` (parked in its
/// IO driver while the rings are empty, so every producer flush after that costs a cross-thread
/// wake) and drains; publishes how many messages it has taken in `drained`. Ends after `total`.
fn shard_like_consumer(
    mesh: Arc<Mesh<u64, ()>>,
    drained: Arc<AtomicU64>,
    total: u64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut buf = Vec::with_capacity(4096);
            let mut got = 0u64;
            while got < total {
                mesh.ready(1).await;
                buf.clear();
                mesh.drain(1, 4096, &mut buf);
                got += buf.len() as u64;
                drained.store(got, Ordering::Release);
            }
        })
    })
}

/// Pushes `batch` messages and rings the doorbell once, retrying while the ring is full.
fn push_batch(out: &mut Outgoing<u64>, mesh: &Mesh<u64, ()>, first: u64, batch: usize) {
    for i in 0..batch as u64 {
        out.send(1, first + i);
    }
    while out.flush(mesh) {
        std::hint::spin_loop();
    }
}

/// Streams `n` messages in batches of `batch` to a shard-like consumer; elapsed time. The consumer
/// sleeps whenever it catches up, so small batches pay a wake each.
fn handoff_woken(n: u64, batch: usize) -> Duration {
    let mesh: Arc<Mesh<u64, ()>> = Arc::new(Mesh::new(2, 8192));
    let drained = Arc::new(AtomicU64::new(0));
    let consumer = shard_like_consumer(mesh.clone(), drained.clone(), n);
    let start = Instant::now();
    let mut out = Outgoing::new(0, 2);
    let mut sent = 0u64;
    while sent < n {
        let b = batch.min((n - sent) as usize);
        push_batch(&mut out, &mesh, sent, b);
        sent += b as u64;
    }
    while drained.load(Ordering::Acquire) < n {
        std::hint::spin_loop();
    }
    let elapsed = start.elapsed();
    consumer.join().unwrap();
    elapsed
}

/// `rounds` batches, each pushed while the consumer is asleep; the summed time from the first push
/// of a batch until the consumer has drained it: the cost of one batch including its wake.
fn woken_batches(rounds: u64, batch: usize) -> Duration {
    let mesh: Arc<Mesh<u64, ()>> = Arc::new(Mesh::new(2, 8192));
    let drained = Arc::new(AtomicU64::new(0));
    let consumer = shard_like_consumer(mesh.clone(), drained.clone(), rounds * batch as u64);
    let mut out = Outgoing::new(0, 2);
    let mut total = Duration::ZERO;
    for r in 0..rounds {
        // Long enough for the consumer to go back to sleep in its driver (it takes microseconds).
        std::thread::sleep(Duration::from_micros(50));
        let first = r * batch as u64;
        let start = Instant::now();
        push_batch(&mut out, &mesh, first, batch);
        while drained.load(Ordering::Acquire) < first + batch as u64 {
            std::hint::spin_loop();
        }
        total += start.elapsed();
    }
    consumer.join().unwrap();
    total
}

fn mesh_wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("mesh_wake");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(500));
    for batch in [1usize, 64, 1024] {
        g.throughput(Throughput::Elements(100_000));
        g.bench_function(BenchmarkId::new("stream_batch", batch), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| handoff_woken(100_000, batch)).sum())
        });
    }
    // One iteration = one batch delivered to a sleeping consumer (push, wake, drain).
    for batch in [1usize, 64, 1024] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(BenchmarkId::new("asleep_batch", batch), |b| {
            b.iter_custom(|iters| woken_batches(iters, batch))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    event_build,
    fanout_to_outboxes,
    mesh_handoff,
    mesh_wake
);
criterion_main!(benches);
