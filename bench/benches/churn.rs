//! `churn/<model>`: the time to connect, echo one 64-byte message and close, for every model
//! (one connection at a time, so every model can serve it). `churn_tls/<model>` adds a full TLS
//! 1.3 handshake to each connection, for the models that serve `tls:`: the client's side of the
//! handshake is in the time too, so compare it across models, not with the server-only
//! `tls_handshake` bench.

mod common;

use criterion::{BenchmarkId, criterion_group, criterion_main};
use echo_bench::Workload;
use echo_servers::Transport;

fn churn(c: &mut criterion::Criterion) {
    connections(c, "churn", Transport::Tcp);
}

fn churn_tls(c: &mut criterion::Criterion) {
    connections(c, "churn_tls", Transport::Tls);
}

fn connections(c: &mut criterion::Criterion, name: &str, transport: Transport) {
    let mut group = c.benchmark_group(name);
    for model in common::serving(transport) {
        let server = common::start_on(model, transport);
        group.bench_function(BenchmarkId::from_parameter(model.name()), |b| {
            b.iter_custom(|iters| common::time(server.endpoint(), Workload::Churn, 1, 64, iters))
        });
        server.shutdown().expect("shutdown");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = churn, churn_tls
}
criterion_main!(benches);
