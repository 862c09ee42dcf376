//! The load generator over `tls:`: every workload against a TLS model, through both engines,
//! trusting the server's own self-signed certificate; full handshakes by default and resumed
//! ones with `--tls-resume`, counted and timed apart from TCP's connect; a certificate the client
//! does not trust is a failed connect, never an echo; and the options that make no sense are
//! refused before any traffic, with one line and exit 2 from the binary.
//!
//! Bounds: every run is bounded by its duration plus its timeout; all traffic goes to
//! 127.0.0.1.

mod support;

use std::path::PathBuf;

use echo_bench::{ConfigError, Engine, RunConfig, Workload};
use echo_loadgen::config::TlsOptions;
use echo_servers::{Endpoint, Model, ServerConfig, ServerHandle, TlsServer, TlsVersions};
use support::*;

/// A server of `model` on `tls:127.0.0.1:0` with a fresh self-signed certificate, that
/// certificate's file, and the `TlsServer` that keeps the file (removed with its last clone).
fn tls_server(model: Model) -> (ServerHandle, PathBuf, TlsServer) {
    let tls = TlsServer::self_signed(TlsVersions::TLS13).unwrap();
    let ca = tls.ca_file().unwrap().to_owned();
    let config = ServerConfig {
        tls: Some(tls.clone()),
        ..ServerConfig::at(Endpoint::Tls("127.0.0.1:0".parse().unwrap()))
    };
    (model.server().start(&config).unwrap(), ca, tls)
}

fn trusting(ca: &std::path::Path) -> TlsOptions {
    TlsOptions {
        ca: Some(ca.to_owned()),
        ..TlsOptions::default()
    }
}

#[test]
fn every_workload_over_tls_is_verified_through_both_engines() {
    let (server, ca, _tls) = tls_server(Model::Tokio);
    let target = server.endpoint().clone();

    let mut ping = short(target.clone(), Workload::PingPong);
    ping.tls = trusting(&ca);
    ping.pipeline = 3;
    let report = run(&ping);
    assert!(report.is_clean(), "{:?}", report.errors);
    assert!(report.messages > 0);
    assert_eq!(report.bytes, report.messages * 100);
    assert!(report.tls.is_some(), "a tls: run reports its handshakes");

    ping.engine = Engine::Threads;
    ping.pipeline = 1;
    let report = run(&ping);
    assert!(report.is_clean(), "threads engine: {:?}", report.errors);
    assert!(report.messages > 0);

    let mut stream = short(target.clone(), Workload::Stream);
    stream.tls = trusting(&ca);
    stream.payload = 40_000; // more than two TLS records per message
    let report = run(&stream);
    assert!(report.is_clean(), "stream: {:?}", report.errors);
    assert!(report.bytes >= 40_000);

    let mut rate = short(target, Workload::Rate);
    rate.tls = trusting(&ca);
    rate.rate = Some(1000.0);
    let report = run(&rate);
    assert!(report.is_clean(), "rate: {:?}", report.errors);
    assert!(report.messages > 0);
    server.shutdown().unwrap();
}

#[test]
fn churn_counts_full_handshakes_and_with_resume_resumed_ones() {
    let (server, ca, _tls) = tls_server(Model::Tokio);
    let mut churn = short(server.endpoint().clone(), Workload::Churn);
    churn.connections = 2;
    churn.tls = trusting(&ca);
    // The pid is this process: the figure per handshake is then defined (if not meaningful).
    churn.server_pid = Some(std::process::id());

    let report = run(&churn);
    assert!(report.is_clean(), "{:?}", report.errors);
    let tls = report.tls.expect("tls figures");
    assert!(tls.handshakes > 0);
    assert_eq!(tls.resumed, 0, "resumption is off by default");
    // One handshake per churned connection, each carrying one echo; at the window's edges a
    // connection may have its handshake on one side and its echo on the other.
    assert!(
        tls.handshakes.abs_diff(report.messages) <= churn.connections as u64,
        "{} handshakes, {} echoes",
        tls.handshakes,
        report.messages
    );
    assert!(tls.handshake_latency_us.p50 > 0);
    assert!(
        tls.first_byte_latency_us.p50 >= tls.handshake_latency_us.p50,
        "the first byte comes after the handshake: {tls:?}"
    );
    assert!(tls.server_cpu_per_handshake_us.is_some_and(|c| c > 0.0));

    churn.tls.resume = true;
    let report = run(&churn);
    assert!(report.is_clean(), "{:?}", report.errors);
    let tls = report.tls.expect("tls figures");
    assert!(tls.handshakes > 0);
    // Each connection resumes with a ticket from an earlier one (the first ones, in the
    // warm-up, are full).
    assert!(
        tls.resumed * 10 >= tls.handshakes * 9,
        "{} of {} resumed",
        tls.resumed,
        tls.handshakes
    );
    server.shutdown().unwrap();
}

#[test]
fn a_certificate_the_client_does_not_trust_is_a_failed_connect() {
    let (server, _ca, _tls) = tls_server(Model::Tokio);
    // Another server's certificate.
    let other = TlsServer::self_signed(TlsVersions::TLS13).unwrap();
    let mut ping = short(server.endpoint().clone(), Workload::PingPong);
    ping.tls = trusting(other.ca_file().unwrap());
    let report = run(&ping);
    assert_eq!(report.messages, 0);
    assert!(
        report.errors.connect + report.errors.refused + report.errors.reset > 0,
        "{:?}",
        report.errors
    );
    server.shutdown().unwrap();
}

#[test]
fn tls_options_that_cannot_work_are_refused_before_any_traffic() {
    let tls_target = || {
        short(
            Endpoint::Tls("127.0.0.1:9".parse().unwrap()),
            Workload::PingPong,
        )
    };
    let refused = |options: echo_bench::RunOptions| match RunConfig::new(options) {
        Err(ConfigError::Invalid(why)) => why,
        other => panic!("accepted: {other:?}"),
    };
    assert!(refused(tls_target()).contains("--insecure"));

    let mut both = tls_target();
    both.tls = TlsOptions {
        ca: Some("/nonexistent.pem".into()),
        insecure: true,
        ..TlsOptions::default()
    };
    assert!(refused(both).contains("do not go together"));

    let mut missing = tls_target();
    missing.tls = trusting(std::path::Path::new("/nonexistent/ca.pem"));
    assert!(refused(missing).contains("/nonexistent/ca.pem"));

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let mut no_cert = tls_target();
    no_cert.tls = trusting(&empty);
    assert!(refused(no_cert).contains("no usable certificate"));

    let mut plain = short(
        Endpoint::Tcp("127.0.0.1:9".parse().unwrap()),
        Workload::PingPong,
    );
    plain.tls.insecure = true;
    assert!(refused(plain).contains("tls: targets only"));

    // Through the binary: one line, exit 2.
    let output = echo_bench(&["run", "--target", "tls:127.0.0.1:9", "-d", "1"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--ca"), "{stderr}");
}

/// Shutting both directions of a TLS stream is an abort: it returns at once and wakes another
/// handle's write that a peer which does not read has blocked, instead of queueing a
/// `close_notify` behind that write and waiting out its timeout (the conformance checks shut a
/// client down this way to end their writer thread).
#[test]
fn shutting_both_directions_wakes_a_blocked_writer_at_once() {
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use echo_loadgen::tls::{TlsClient, TlsStream, Trust};

    const TIMEOUT: Duration = Duration::from_secs(10);
    let tls = TlsServer::self_signed(TlsVersions::TLS13).unwrap();
    let ca = tls.ca_file().unwrap().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = tls.config();
    let (release, released) = std::sync::mpsc::channel::<()>();
    // A peer that shakes hands and then reads nothing until released.
    let peer = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        socket.set_write_timeout(Some(TIMEOUT)).unwrap();
        let mut conn = rustls::ServerConnection::new(config).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut socket).unwrap();
        }
        let _ = released.recv_timeout(Duration::from_secs(30));
    });

    let socket = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(TIMEOUT)).unwrap();
    let client = TlsClient::new(
        &Trust::Ca(ca),
        TlsVersions::TLS13,
        false,
        TlsClient::name_for(addr.ip()),
    )
    .unwrap();
    let stream = TlsStream::handshake(socket, client.connection().unwrap()).unwrap();
    let writer = stream.try_clone().unwrap();
    let writing = std::thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        let started = Instant::now();
        // Bounded: the socket buffers fill within a few MiB, and the write timeout ends a
        // write the shutdown does not.
        while started.elapsed() < Duration::from_secs(30) {
            if (&writer).write_all(&chunk).is_err() {
                return true;
            }
        }
        false
    });
    // Until the writer is blocked: the peer reads nothing, so its buffers fill.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let _ = stream.shutdown(Shutdown::Both);
    let shut_in = started.elapsed();
    let writer_failed = writing.join().unwrap();
    let writer_ended_in = started.elapsed();
    release.send(()).unwrap();
    peer.join().unwrap();
    assert!(shut_in < TIMEOUT / 4, "shutdown(Both) took {shut_in:?}");
    assert!(writer_failed, "the blocked write never failed");
    assert!(
        writer_ended_in < TIMEOUT / 4,
        "the blocked writer ended {writer_ended_in:?} after the shutdown: the write timeout, not the shutdown, ended it"
    );
}

/// A server that serves one client at a time (`blocking`) answers the other clients'
/// ClientHellos never: over TLS they are starved and stalled, as over TCP, not connect timeouts,
/// and the run does not wait out the timeout before it starts.
#[test]
fn clients_a_bounded_server_never_answers_are_stalled_over_tls_as_over_tcp() {
    let (server, ca, _tls) = tls_server(Model::Blocking);
    let tcp_server = start(Model::Blocking);
    let mut over_tls = short(server.endpoint().clone(), Workload::PingPong);
    over_tls.tls = trusting(&ca);
    let over_tcp = short(tcp_server.endpoint().clone(), Workload::PingPong);
    for options in [over_tcp, over_tls] {
        let began = std::time::Instant::now();
        let report = run(&options);
        let elapsed = began.elapsed();
        let unserved = options.connections as u64 - 1;
        assert!(report.messages > 0, "one client is served: {report:?}");
        assert_eq!(
            (report.errors.timeout, report.errors.stalled),
            (0, unserved),
            "{:?}: {:?}",
            options.target,
            report.errors
        );
        assert_eq!(report.fairness.starved, unserved);
        assert!(
            elapsed < options.timeout,
            "{:?}: the run took {elapsed:?}, the timeout is {:?}",
            options.target,
            options.timeout
        );
    }
    server.shutdown().unwrap();
    tcp_server.shutdown().unwrap();
}
