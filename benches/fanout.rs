//! The router's fan-out machinery without sockets: building one EVENT per encoding for a publication
//! and queueing it on N subscribers' outboxes, then draining those outboxes as writers would; and the
//! cross-shard hand-off of messages in batches between two threads.

use std::borrow::Cow;
use std::hint::black_box;
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

criterion_group!(benches, event_build, fanout_to_outboxes, mesh_handoff);
criterion_main!(benches);
