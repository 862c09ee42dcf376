//! `ping_pong/<payload>/<model>/<connections>`: the time of one round trip (one message sent and
//! its whole echo received) over connections opened beforehand, for every model, at 1 and 32
//! concurrent connections, payloads 64 B and 16 KiB. Throughput is set in bytes per message, so
//! the reports show MiB/s. `ping_pong_unix/...` is the same over a Unix stream socket, where the
//! TCP stack's cost is gone and the model's own is a larger share. `ping_pong_tls/...` is the same
//! over `tls:` for the models that serve it (handshakes done before the timing starts, so what
//! it adds to TCP is each record's encryption and the TLS layer's own buffering).
//!
//! `blocking` serves one connection at a time and `thread-pool` as many as it has workers
//! (cores × 2), so they are benched only at the connection counts they can serve: at 32 held
//! connections the rest would starve and the time would measure the starvation. The suite
//! (`cargo run --release`) measures that starvation instead.

mod common;

use criterion::{BenchmarkId, Throughput, criterion_group, criterion_main};
use echo_bench::Workload;
use echo_servers::{Model, ServerConfig, Transport};

fn ping_pong(c: &mut criterion::Criterion) {
    round_trips(c, "ping_pong", Transport::Tcp);
}

fn ping_pong_unix(c: &mut criterion::Criterion) {
    round_trips(c, "ping_pong_unix", Transport::Unix);
}

fn ping_pong_tls(c: &mut criterion::Criterion) {
    round_trips(c, "ping_pong_tls", Transport::Tls);
}

fn round_trips(c: &mut criterion::Criterion, name: &str, transport: Transport) {
    for payload in [64usize, 16 * 1024] {
        let label = if payload >= 1024 {
            format!("{}KiB", payload / 1024)
        } else {
            format!("{payload}B")
        };
        let mut group = c.benchmark_group(format!("{name}/{label}"));
        group.throughput(Throughput::Bytes(payload as u64));
        for model in common::serving(transport) {
            // One server per model for the group's benches at both connection counts.
            let server = common::start_on(model, transport);
            for connections in [1usize, 32] {
                if !serves(model, connections) {
                    continue;
                }
                group.bench_function(BenchmarkId::new(model.name(), connections), |b| {
                    b.iter_custom(|iters| {
                        common::time(
                            server.endpoint(),
                            Workload::PingPong,
                            connections,
                            payload,
                            iters,
                        )
                    })
                });
            }
            server.shutdown().expect("shutdown");
        }
        group.finish();
    }
}

/// Whether `model` serves `connections` at once by design (the others starve some of them, so
/// a round-trip time would measure the starvation, not the model).
fn serves(model: Model, connections: usize) -> bool {
    model
        .concurrency_limit(&ServerConfig::ephemeral())
        .is_none_or(|limit| connections <= limit)
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = ping_pong, ping_pong_unix, ping_pong_tls
}
criterion_main!(benches);
