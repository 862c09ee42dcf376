//! `churn/<model>`: the time to connect, echo one 64-byte message and close, for every model
//! (one connection at a time, so every model can serve it).

mod common;

use criterion::{BenchmarkId, criterion_group, criterion_main};
use echo_bench::Workload;
use echo_servers::Transport;

fn churn(c: &mut criterion::Criterion) {
    let mut group = c.benchmark_group("churn");
    for model in common::models() {
        let server = common::start_on(model, Transport::Tcp);
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
    targets = churn
}
criterion_main!(benches);
