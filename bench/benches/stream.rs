//! `stream/<model>`: bulk echo of 1 MiB per iteration over one connection that writes while it
//! reads, for every model. Throughput is set in bytes, so the reports show MiB/s.

mod common;

use criterion::{BenchmarkId, Throughput, criterion_group, criterion_main};
use echo_bench::Workload;
use echo_servers::Transport;

const MIB: usize = 1 << 20;

fn stream(c: &mut criterion::Criterion) {
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Bytes(MIB as u64));
    for model in common::models() {
        let server = common::start_on(model, Transport::Tcp);
        group.bench_function(BenchmarkId::from_parameter(model.name()), |b| {
            b.iter_custom(|iters| common::time(server.endpoint(), Workload::Stream, 1, MIB, iters))
        });
        server.shutdown().expect("shutdown");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = stream
}
criterion_main!(benches);
