//! Lookup cost of the URI pattern matcher with many stored patterns.
//!
//! Mix per size: 80% exact, 10% prefix, 10% wildcard. Lookups cycle through
//! a fixed set of URIs: half are stored exact URIs (so prefix and wildcard
//! patterns also fire on some), half are unknown URIs of similar shape.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use wampd::protocol::uri::{is_valid_uri, MatchPolicy};
use wampd::router::trie::UriTrie;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `com.app<a>.<svc>.<obj>.<event>`-shaped URIs with realistic fan-out.
fn uri(r: &mut Rng, n: u64) -> String {
    let scale = (n / 1000).max(1);
    format!(
        "com.app{}.svc{}.obj{}.evt{}",
        r.below(10),
        r.below(20),
        r.below(50 * scale),
        r.below(10)
    )
}

fn build(n: u64) -> (UriTrie<u64>, Vec<String>) {
    let mut r = Rng(0x2545_f491_4f6c_dd1d ^ n);
    let mut t = UriTrie::new();
    let mut exact = Vec::new();
    let mut i = 0;
    while (t.len() as u64) < n {
        let u = uri(&mut r, n);
        let (p, pat) = match r.below(10) {
            0 => {
                // Cut at a component boundary or inside a component.
                let parts: Vec<&str> = u.split('.').collect();
                let k = 2 + r.below(3) as usize;
                let mut s = parts[..k].join(".");
                if r.below(2) == 0 {
                    s.push('.');
                }
                (MatchPolicy::Prefix, s)
            }
            1 => {
                let mut parts: Vec<&str> = u.split('.').collect();
                let w = 1 + r.below(4) as usize;
                parts[w] = "";
                if r.below(3) == 0 {
                    let w2 = 1 + r.below(4) as usize;
                    parts[w2] = "";
                }
                (MatchPolicy::Wildcard, parts.join("."))
            }
            _ => {
                exact.push(u.clone());
                (MatchPolicy::Exact, u)
            }
        };
        t.insert(p, &pat, i);
        i += 1;
    }
    let mut lookups = Vec::with_capacity(1024);
    for k in 0..1024 {
        if k % 2 == 0 {
            lookups.push(exact[r.below(exact.len() as u64) as usize].clone());
        } else {
            lookups.push(uri(&mut r, n));
        }
    }
    (t, lookups)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("trie");
    g.throughput(Throughput::Elements(1));
    for n in [10_000u64, 100_000] {
        let (t, lookups) = build(n);
        let mut total = 0usize;
        for u in &lookups {
            t.for_each_match(u, |_, _, _| total += 1);
        }
        eprintln!(
            "{n} entries, {} trie nodes, {:.2} matches per lookup",
            t.node_count(),
            total as f64 / lookups.len() as f64
        );
        g.bench_with_input(BenchmarkId::new("for_each_match", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                let u = &lookups[i & 1023];
                i += 1;
                let mut hits = 0u64;
                t.for_each_match(black_box(u), |_, _, v| hits += v);
                black_box(hits)
            })
        });
        g.bench_with_input(BenchmarkId::new("best_match", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                let u = &lookups[i & 1023];
                i += 1;
                black_box(t.best_match(black_box(u)).map(|m| *m.2))
            })
        });
        if n == 10_000 {
            g.bench_function("is_valid_uri/loose", |b| {
                let mut i = 0;
                b.iter(|| {
                    let u = &lookups[i & 1023];
                    i += 1;
                    black_box(is_valid_uri(black_box(u), false))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
