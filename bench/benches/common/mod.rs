//! What the bench files share: criterion's settings (with the short mode), starting a
//! model in-process (over `tls:` with a self-signed certificate), and timing messages through the
//! load generator.

use std::time::Duration;

use criterion::Criterion;
use echo_bench::{RunConfig, RunOptions, Workload};
use echo_loadgen::config::TlsOptions;
use echo_loadgen::engine;
use echo_servers::{
    Endpoint, Model, ServerConfig, ServerHandle, TlsServer, TlsVersions, Transport,
};

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

/// Starts `model` in this process on `transport`: a free loopback port (TCP, UDP, and TLS with
/// a self-signed certificate made now), or a socket file named for this process and model in
/// the temporary directory (Unix; removed at shutdown).
pub fn start_on(model: Model, transport: Transport) -> ServerHandle {
    let mut tls = None;
    let listen = match transport {
        Transport::Tcp => ServerConfig::ephemeral().listen,
        Transport::Unix => Endpoint::Unix(std::env::temp_dir().join(format!(
            "echo-bench-{}-{}.sock",
            std::process::id(),
            model.name()
        ))),
        Transport::Udp => Endpoint::Udp("127.0.0.1:0".parse().expect("an address")),
        Transport::Tls => {
            let server = TlsServer::self_signed(TlsVersions::TLS13)
                .unwrap_or_else(|e| panic!("cannot make a certificate: {e}"));
            tls = Some(server);
            Endpoint::Tls("127.0.0.1:0".parse().expect("an address"))
        }
    };
    let config = ServerConfig {
        tls,
        ..ServerConfig::at(listen)
    };
    model
        .server()
        .start(&config)
        .unwrap_or_else(|e| panic!("{model}: cannot start on {transport}: {e}"))
}

/// Times `iters` messages of `workload` against `target`. One client thread, so the other core
/// is left to the server. A `tls:` target is trusted without its chain (`--insecure`: the
/// handshake's signatures are still checked), full handshakes (no resumption).
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
        tls: TlsOptions {
            insecure: target.transport() == Transport::Tls,
            ..TlsOptions::default()
        },
        ..RunOptions::default()
    };
    let config = RunConfig::new(options).unwrap_or_else(|e| panic!("{e}"));
    engine::time_messages(&config, iters).unwrap_or_else(|e| panic!("{e}"))
}

/// The models this machine can run; the others are skipped with a note on stderr.
pub fn models() -> Vec<Model> {
    Model::runnable(Model::ALL.iter().copied())
}

/// Those of [`models`] that serve `transport`.
#[allow(
    dead_code,
    reason = "not every bench file has a transport some models lack"
)]
pub fn serving(transport: Transport) -> Vec<Model> {
    let mut models = models();
    models.retain(|m| m.serves(transport));
    models
}
