//! The load generator on the other transports: every workload over a Unix socket, and over UDP
//! the datagrams' fates (loss, reordering, duplication, corruption) counted against servers
//! that misbehave on purpose, each a thread of this test on loopback.
//!
//! Bounds: every socket has a read timeout, every server thread a deadline and a stop flag.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use echo_bench::{RunOptions, Stop, Workload};
use echo_servers::{Endpoint, Model, ServerConfig, Transport};
use support::{echo_bench, run, short};

fn socket_path(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "echo-bench-transports-{}-{name}.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn every_workload_runs_over_a_unix_socket() {
    let path = socket_path("workloads");
    let server = Model::Mio
        .server()
        .start(&ServerConfig::at(Endpoint::Unix(path.clone())))
        .unwrap();
    for workload in [
        Workload::PingPong,
        Workload::Rate,
        Workload::Churn,
        Workload::Stream,
    ] {
        let config = RunOptions {
            rate: (workload == Workload::Rate).then_some(2_000.0),
            ..short(server.endpoint().clone(), workload)
        };
        let report = run(&config);
        assert!(report.is_clean(), "{workload}: {:?}", report.errors);
        assert!(report.messages > 0, "{workload}: nothing echoed");
        assert_eq!(report.config.target.transport(), Transport::Unix);
        assert!(report.datagrams.is_none());
    }
    server.shutdown().unwrap();
    assert!(!path.exists(), "the server removes its socket file");
}

/// A UDP server on a thread of this test: `answer` gets the n-th datagram (from 0) and returns
/// what to send back, each to the sender (none: dropped).
struct DatagramServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DatagramServer {
    fn start(mut answer: impl FnMut(u64, &[u8]) -> Vec<Vec<u8>> + Send + 'static) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut buf = vec![0; 65_536];
            let mut n = 0;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                for reply in answer(n, &buf[..len]) {
                    let _ = socket.send_to(&reply, peer);
                }
                n += 1;
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Udp(self.addr)
    }
}

impl Drop for DatagramServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn udp_run(target: Endpoint, workload: Workload) -> RunOptions {
    RunOptions {
        target,
        workload,
        connections: 4,
        payload: 64,
        rate: (workload == Workload::Rate).then_some(2_000.0),
        stop: Stop::Duration(Duration::from_millis(800)),
        warmup: Duration::from_millis(100),
        // Short, so a dropped datagram is declared lost (and replaced) many times a run.
        timeout: Duration::from_millis(50),
        threads: 1,
        ..RunOptions::default()
    }
}

#[test]
fn loss_is_reported_against_a_server_that_drops_every_tenth_datagram() {
    let server = DatagramServer::start(|n, d| {
        if n % 10 == 9 {
            Vec::new()
        } else {
            vec![d.to_vec()]
        }
    });
    for workload in [Workload::PingPong, Workload::Rate] {
        let report = run(&udp_run(server.endpoint(), workload));
        let d = report.datagrams.expect("a UDP run reports its datagrams");
        assert!(d.returned > 100, "{workload}: {d:?}");
        let loss = d.loss_percent();
        assert!(
            (5.0..=15.0).contains(&loss),
            "{workload}: {loss:.1}% lost, expected about 10%: {d:?}"
        );
        assert_eq!((d.corrupted, d.duplicated), (0, 0), "{workload}: {d:?}");
        // Loss is the transport's nature, not an error, and never a stuck connection.
        assert!(report.is_clean(), "{workload}: {:?}", report.errors);
        assert_eq!(report.errors.timeout + report.errors.stalled, 0);
        assert!(report.summary().contains("lost"), "{}", report.summary());
    }
}

#[test]
fn a_faithful_server_loses_nothing() {
    let server = DatagramServer::start(|_, d| vec![d.to_vec()]);
    let report = run(&udp_run(server.endpoint(), Workload::PingPong));
    let d = report.datagrams.unwrap();
    assert!(d.returned > 100, "{d:?}");
    assert_eq!(
        (d.lost, d.late, d.reordered, d.duplicated, d.corrupted),
        (0, 0, 0, 0, 0)
    );
    assert!(report.latency_us.p50 > 0);
}

#[test]
fn corrupted_and_duplicated_datagrams_are_counted_and_fail_the_run() {
    let server = DatagramServer::start(|n, d| {
        let mut d = d.to_vec();
        match n % 10 {
            3 => {
                let last = d.len() - 1;
                d[last] ^= 0x01;
                vec![d]
            }
            7 => vec![d.clone(), d],
            _ => vec![d],
        }
    });
    let report = run(&udp_run(server.endpoint(), Workload::Rate));
    let d = report.datagrams.unwrap();
    assert!(d.corrupted > 0, "{d:?}");
    assert!(d.duplicated > 0, "{d:?}");
    assert!(!report.is_clean());
}

#[test]
fn reordering_is_counted() {
    // Holds every even datagram and sends it after the next one.
    let mut held: Option<Vec<u8>> = None;
    let server = DatagramServer::start(move |_, d| match held.take() {
        None => {
            held = Some(d.to_vec());
            Vec::new()
        }
        Some(earlier) => vec![d.to_vec(), earlier],
    });
    let config = RunOptions {
        connections: 1,
        timeout: Duration::from_millis(500),
        ..udp_run(server.endpoint(), Workload::Rate)
    };
    let report = run(&config);
    let d = report.datagrams.unwrap();
    assert!(d.returned > 100, "{d:?}");
    assert!(
        d.reordered * 3 >= d.returned,
        "about half came back after a later one: {d:?}"
    );
    assert_eq!(d.corrupted, 0);
}

#[test]
fn a_model_serves_udp_to_the_load_generator() {
    let server = Model::Mio
        .server()
        .start(&ServerConfig::at(Endpoint::Udp(
            "127.0.0.1:0".parse().unwrap(),
        )))
        .unwrap();
    let report = run(&RunOptions {
        timeout: Duration::from_secs(2),
        ..udp_run(server.endpoint().clone(), Workload::PingPong)
    });
    let d = report.datagrams.unwrap();
    assert!(
        d.returned > 100 && d.corrupted == 0 && d.duplicated == 0,
        "{d:?}"
    );
    server.shutdown().unwrap();
}

#[test]
fn datagram_limits_and_workloads_are_usage_errors() {
    let cases: &[&[&str]] = &[
        // One byte over the IPv4 limit.
        &["run", "--target", "udp:127.0.0.1:9", "--payload", "65508"],
        // Too small to carry the sequence number.
        &["run", "--target", "udp:127.0.0.1:9", "--payload", "4"],
        &["run", "--target", "udp:127.0.0.1:9", "--workload", "churn"],
        &["run", "--target", "udp:127.0.0.1:9", "--workload", "stream"],
        &["run", "--target", "udp:127.0.0.1:9", "--engine", "threads"],
        &["run", "--target", "unix:"],
        &["run", "--target", "tcp://127.0.0.1:9"],
    ];
    for args in cases {
        let output = echo_bench(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[test]
fn run_prints_datagram_fates_and_exits_0_despite_loss() {
    let server = DatagramServer::start(|n, d| {
        if n % 10 == 9 {
            Vec::new()
        } else {
            vec![d.to_vec()]
        }
    });
    let target = server.endpoint().to_string();
    let output = echo_bench(&[
        "run",
        "--target",
        &target,
        "-c",
        "2",
        "-d",
        "500ms",
        "--warmup",
        "100ms",
        "--timeout",
        "50ms",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("datagrams"), "{stdout}");
    assert!(stdout.contains(&format!("target {target}")), "{stdout}");
}
