//! What the bench files share: criterion's settings (with the short mode), starting a
//! model in-process, and timing messages through the load generator.

use std::time::Duration;

use criterion::Criterion;
use echo_bench::{RunConfig, RunOptions, Workload};
use echo_loadgen::engine;
use echo_servers::{Endpoint, Model, ServerConfig, ServerHandle, Transport};

/// Criterion as configured for this suite: 1 s warm-up, 3 s measurement, 100 samples.
/// `ECHO_BENCH_QUICK=1` selects the short mode (10 samples, 0.3 s warm-up, 1 s measurement,
/// 10,000 resamples and no plots per bench) used in CI and for a first look.
pub fn criterion() -> Criterion {
    let base = Criterion::default();
    if std::env::var_os("ECHO_BENCH_QUICK").is_some_and(|v| v != "0") {
        // Fewer resamples and no plots: criterion's own analysis would otherwise take longer
        // than the measurements.
        base.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .nresamples(10_000)
            .without_plots()
    } else {
        // Shorter than criterion's defaults (3 s + 5 s) so every group over every model stays
        // within 10 minutes on 2 cores: each sample also opens and closes its connections,
        // which criterion's budget does not count (measured: 2 s + 4 s took 12 min 13 s for
        // 68 benches). Still 100 samples per bench.
        base.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .nresamples(20_000)
    }
    .configure_from_args()
}

/// Starts `model` in this process on `transport`: a free loopback port (TCP, UDP), or a socket
/// file named for this process and model in the temporary directory (Unix; removed at shutdown).
pub fn start_on(model: Model, transport: Transport) -> ServerHandle {
    let listen = match transport {
        Transport::Tcp => ServerConfig::ephemeral().listen,
        Transport::Unix => Endpoint::Unix(std::env::temp_dir().join(format!(
            "echo-bench-{}-{}.sock",
            std::process::id(),
            model.name()
        ))),
        Transport::Udp => Endpoint::Udp("127.0.0.1:0".parse().expect("an address")),
        // The benches' client speaks no TLS yet, as the load generator does not.
        Transport::Tls => panic!("{model}: the criterion benches do not drive tls: yet"),
    };
    model
        .server()
        .start(&ServerConfig::at(listen))
        .unwrap_or_else(|e| panic!("{model}: cannot start on {transport}: {e}"))
}

/// Times `iters` messages of `workload` against `target`. One client thread, so the other core
/// is left to the server.
pub fn time(
    target: &Endpoint,
    workload: Workload,
    connections: usize,
    payload: usize,
    iters: u64,
) -> Duration {
    let options = RunOptions {
        target: target.clone(),
        workload,
        connections,
        payload,
        threads: 1,
        timeout: Duration::from_secs(10),
        ..RunOptions::default()
    };
    let config = RunConfig::new(options).unwrap_or_else(|e| panic!("{e}"));
    engine::time_messages(&config, iters).unwrap_or_else(|e| panic!("{e}"))
}

/// The models this machine can run; the others are skipped with a note on stderr.
pub fn models() -> Vec<Model> {
    Model::runnable(Model::ALL.iter().copied())
}
