//! `udp/<model>`: the time of one datagram's round trip (64 bytes sent, its echo received and
//! checked) from 8 client sockets at once, for every model that serves UDP. Each datagram
//! carries its sequence number; a lost one would wait out the timeout and fail the sample
//! rather than be timed.

mod common;

use criterion::{BenchmarkId, Throughput, criterion_group, criterion_main};
use echo_bench::Workload;
use echo_servers::Transport;

fn udp(c: &mut criterion::Criterion) {
    let mut group = c.benchmark_group("udp");
    group.throughput(Throughput::Bytes(64));
    for model in common::models() {
        if !model.serves(Transport::Udp) {
            continue;
        }
        let server = common::start_on(model, Transport::Udp);
        group.bench_function(BenchmarkId::from_parameter(model.name()), |b| {
            b.iter_custom(|iters| common::time(server.endpoint(), Workload::PingPong, 8, 64, iters))
        });
        server.shutdown().expect("shutdown");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = udp
}
criterion_main!(benches);
