//! Every workload against every server model, one test per model and check generated from the
//! registry (`<model>::<check>`: `cargo test -p echo-bench --test workloads tokio::`), and the
//! requests mode and the threads engine. Loopback only; every run is bounded by its duration
//! plus its timeout.

mod support;

use std::time::Duration;

use echo_bench::{Engine, Stop, Workload};
use echo_servers::Model;
use support::*;

fn ping_pong(model: Model) {
    let server = start(model);
    let mut config = short(server.local_addr(), Workload::PingPong);
    config.pipeline = 3;
    let report = run(&config);
    // The only errors allowed are stalled connections, and each is a starved one: a connection
    // a bounded model never got to.
    assert_eq!(
        report.errors.total(),
        report.errors.stalled,
        "errors: {:?}",
        report.errors
    );
    assert_eq!(report.errors.stalled, report.fairness.starved, "{report:?}");
    assert!(report.messages > 0);
    assert_eq!(report.bytes, report.messages * 100);
    assert!(report.latency_us.p50 > 0 && report.latency_us.p50 <= report.latency_us.p99);
    assert!(report.latency_us.p99 <= report.latency_us.max);
    assert!(report.client.cpu_s > 0.0);
    if model.serves_concurrently() {
        assert_eq!(report.fairness.starved, 0, "{:?}", report.fairness);
        assert!(
            report.fairness.min > 0 && report.fairness.jain > 0.5,
            "{:?}",
            report.fairness
        );
    } else if model == Model::Blocking {
        // One connection at a time: the other three starve, stall, and the report says so.
        assert_eq!(report.fairness.starved, 3, "{:?}", report.fairness);
        assert_eq!(report.errors.stalled, 3, "{:?}", report.errors);
        assert!(report.warnings.iter().any(|w| w.contains("starved")));
    }
    server.shutdown().unwrap();
}

fn stream_churn_and_rate(model: Model) {
    let server = start(model);
    let addr = server.local_addr();
    let concurrency = if model.serves_concurrently() { 4 } else { 1 };

    let mut stream = short(addr, Workload::Stream);
    stream.connections = concurrency;
    stream.payload = 16 * 1024;
    let report = run(&stream);
    assert!(report.is_clean(), "stream errors: {:?}", report.errors);
    assert!(report.bytes >= 16 * 1024 && report.throughput_mib_s > 0.0);

    let mut churn = short(addr, Workload::Churn);
    churn.connections = 2;
    let report = run(&churn);
    assert!(report.is_clean(), "churn errors: {:?}", report.errors);
    let figures = report.churn.expect("churn figures");
    assert!(figures.connections_per_s > 0.0);
    assert!(figures.connect_latency_us.p50 > 0);
    // Each churned connection carries exactly one echo.
    assert_eq!(
        report.messages as f64,
        (figures.connections_per_s * report.duration_s).round()
    );

    let mut rate = short(addr, Workload::Rate);
    rate.connections = concurrency;
    rate.rate = Some(2000.0);
    rate.stop = Stop::Duration(Duration::from_millis(500));
    let report = run(&rate);
    assert!(report.is_clean(), "rate errors: {:?}", report.errors);
    let open = report.open_loop.expect("open-loop figures");
    assert_eq!(open.offered_rps, 2000.0);
    // An open loop sends on schedule whatever the server does: 1000 messages, give or take.
    assert!(
        (500..=1500).contains(&report.messages),
        "{} messages",
        report.messages
    );
    // Corrected latency counts queueing from the intended time, so it is never smaller.
    assert!(report.latency_us.p99 >= open.latency_uncorrected_us.p99 / 2);
    server.shutdown().unwrap();
}

#[test]
fn requests_mode_and_the_threads_engine() {
    let server = start(Model::Tokio);
    let mut config = short(server.local_addr(), Workload::PingPong);
    config.stop = Stop::Requests(1000);
    config.warmup = Duration::ZERO;
    let report = run(&config);
    assert!(report.is_clean());
    assert!(
        (1000..=1004).contains(&report.messages),
        "{}",
        report.messages
    );

    config.engine = Engine::Threads;
    config.stop = Stop::Duration(Duration::from_millis(300));
    let report = run(&config);
    assert!(report.is_clean(), "{:?}", report.errors);
    assert!(report.messages > 0);
    assert_eq!(report.client.threads, 4);
    server.shutdown().unwrap();
}

/// A module per model holding its checks, skipped with a note where the model cannot run.
macro_rules! workloads {
    ($($model:ident => $variant:path),* $(,)?) => {
        $(
            mod $model {
                #[test]
                fn ping_pong() {
                    if !echo_servers::Model::runnable([$variant]).is_empty() {
                        super::ping_pong($variant);
                    }
                }
                #[test]
                fn stream_churn_and_rate() {
                    if !echo_servers::Model::runnable([$variant]).is_empty() {
                        super::stream_churn_and_rate($variant);
                    }
                }
            }
        )*
    };
}

echo_servers::for_each_model!(workloads);
