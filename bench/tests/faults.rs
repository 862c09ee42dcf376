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
fn a_server_that_stops_echoing_is_stalled_and_the_run_exits_1_within_the_window() {
    // The server echoes 2000 bytes per connection, then reads without answering. The timeout
    // (5 s, the default) is longer than the window, so no message times out: without the
    // stall count this run reported nothing but starvation, and exited 0.
    let server = Faulty::start(stalling);
    let target = server.addr.to_string();
    let began = Instant::now();
    let output = echo_bench(&[
        "run",
        "--target",
        &target,
        "-c",
        "4",
        "--payload",
        "512",
        "-d",
        "1s",
        "--warmup",
        "200ms",
    ]);
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "took {:?}",
        began.elapsed()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    let stalled: u64 = stdout
        .lines()
        .find(|l| l.starts_with("errors"))
        .and_then(|l| l.split("stalled").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stalled count: {stdout}"));
    assert_eq!(stalled, 4, "{stdout}");
    assert!(stderr.contains("4 connection(s) stalled"), "{stderr}");

    // Quiet, the errors line still prints, and nothing else.
    let quiet = echo_bench(&[
        "run", "--target", &target, "-c", "2", "-d", "300ms", "--warmup", "100ms", "-q",
    ]);
    let stdout = String::from_utf8_lossy(&quiet.stdout);
    assert_eq!(quiet.status.code(), Some(1), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("errors") && stdout.contains("stalled 2"),
        "{stdout}"
    );
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
