//! The per-datagram work of a worker: formatting the greeting into a reused
//! buffer, at the payload sizes that `benches/compare.sh` sweeps.
//!
//! ```text
//! cargo bench -p udp-greeter-baselines --bench greeting
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use udp_greeter::{greet_into, Greeter, Handler, Request};

fn greeting(c: &mut Criterion) {
    let mut group = c.benchmark_group("greet_into");
    for size in [16usize, 512, 8192] {
        let payload = vec![b'x'; size];
        // Grown once, as a worker's reply buffer is, then only reused.
        let mut reply = Vec::with_capacity(size + 8);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| {
                greet_into(black_box(p), &mut reply);
                black_box(reply.len())
            })
        });
    }
    group.finish();

    // Through the handler trait, as the worker calls it (reply cleared first).
    let mut group = c.benchmark_group("greeter_respond");
    let peer = "127.0.0.1:40000".parse().expect("an address");
    let local = "127.0.0.1:9999".parse().expect("an address");
    for size in [16usize, 512, 8192] {
        let payload = vec![b'x'; size];
        let mut reply = Vec::with_capacity(size + 8);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| {
                reply.clear();
                let request = Request::new(black_box(p), peer, local);
                black_box(Greeter.respond(&request, &mut reply));
                black_box(reply.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, greeting);
criterion_main!(benches);
