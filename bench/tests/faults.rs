//! Faults caught from deliberately broken servers: corrupted bytes, dropped connections, a
//! stalled server, a refused target.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use echo_bench::{Stop, Workload};
use support::*;

#[test]
fn a_corrupted_byte_is_a_mismatch() {
    let server = Faulty::start(corrupting);
    let report = run(&short(server.addr, Workload::PingPong));
    assert!(report.errors.mismatch >= 1, "{:?}", report.errors);
    assert!(!report.is_clean());
}

#[test]
fn a_dropped_connection_is_an_eof_or_reset() {
    let server = Faulty::start(dropping);
    let report = run(&short(server.addr, Workload::PingPong));
    assert!(
        report.errors.eof + report.errors.reset >= 1,
        "{:?}",
        report.errors
    );
    assert_eq!(report.errors.mismatch, 0);
}

#[test]
fn a_stalled_server_is_a_timeout_within_duration_plus_timeout() {
    let server = Faulty::start(stalling);
    let mut config = short(server.addr, Workload::PingPong);
    config.timeout = Duration::from_millis(300);
    config.stop = Stop::Duration(Duration::from_secs(1));
    let began = Instant::now();
    let report = run(&config);
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "took {:?}",
        began.elapsed()
    );
    assert!(report.errors.timeout >= 1, "{:?}", report.errors);
}

#[test]
fn a_refused_target_is_counted() {
    // Bind then drop: nothing listens on this port now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let report = run(&short(addr, Workload::PingPong));
    assert!(report.errors.refused >= 1, "{:?}", report.errors);
    let report = run(&short(addr, Workload::Churn));
    assert!(report.errors.refused >= 1, "{:?}", report.errors);
}
