//! The epoll fallback of the models that have one (monoio): with `ECHO_SERVERS_DISABLE_IO_URING`
//! set, as on a kernel that refuses io_uring, the `echo-server` binary must say on its second
//! line that it waits on epoll, and pass every shared check of every transport it serves, as it
//! does on io_uring in `conformance.rs`.
//!
//! Bounds: every check has its own timeouts; all traffic goes to loopback or to socket files in
//! private temporary folders.

use std::time::Duration;

use echo_loadgen::conformance::{self, ServerCommand, Subject};
use echo_servers::{Driver, IO_URING_DISABLE_ENV, Model, Transport};

/// The models that fall back to epoll where io_uring is refused.
const WITH_FALLBACK: &[Model] = &[Model::Monoio];

/// `model`'s `echo-server` command line with io_uring disabled, on a free address.
fn binary_without_io_uring(model: Model) -> ServerCommand {
    // `env` execs the server in its place, so the pid the checks signal is the server's.
    ServerCommand::new(&format!(
        "env {IO_URING_DISABLE_ENV}=1 {} --model {} --threads 2 --listen {{addr}}",
        env!("CARGO_BIN_EXE_echo-server"),
        model.name()
    ))
    .expect("a command")
}

#[test]
fn without_io_uring_the_binary_says_it_runs_on_epoll_and_echoes() {
    for &model in WITH_FALLBACK {
        for transport in [Transport::Tcp, Transport::Unix] {
            let mut server = binary_without_io_uring(model)
                .launch(transport, None, None)
                .expect("echo-server starts");
            let endpoint = server.endpoint().clone();
            let mut client = echo_loadgen::socket::Client::connect(
                &endpoint.clone().into(),
                Duration::from_secs(10),
            )
            .expect("connect");
            client.set_timeouts(Some(Duration::from_secs(10))).unwrap();
            use std::io::{Read, Write};
            client.write_all(b"on epoll").unwrap();
            let mut echoed = [0; 8];
            client.read_exact(&mut echoed).unwrap();
            assert_eq!(&echoed, b"on epoll");
            let status = server
                .terminate(Duration::from_secs(5))
                .expect("echo-server did not exit within 5 s of SIGTERM");
            assert!(status.success(), "{model}: exit status {status}");
            let printed = server.output().expect("exited, so its stdout is complete");
            assert_eq!(printed.len(), 2, "{model}: {printed:?}");
            assert_eq!(printed[0], format!("listening on {endpoint}"));
            assert_eq!(printed[1], format!("driver: {}", Driver::Epoll));
        }
    }
}

/// Every shared check of `transport` against `model` on epoll.
fn every_shared_check_without_io_uring(transport: Transport) {
    for &model in WITH_FALLBACK {
        if !model.serves(transport) {
            continue;
        }
        let mut failed = Vec::new();
        for check in conformance::checks_for(transport) {
            let subject = Subject {
                command: Some(binary_without_io_uring(model)),
                transport,
                ..Subject::default()
            };
            let outcome = conformance::run(check, &subject);
            // Datagrams from port 0 need a raw socket; as root (CI) that part must run.
            // SAFETY: geteuid has no preconditions.
            let unprivileged_skip = outcome.status == "skip"
                && outcome
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("passed, but"))
                && unsafe { libc::geteuid() } != 0;
            if !(outcome.passed() || unprivileged_skip) {
                failed.push(format!(
                    "{}: {} ({})",
                    check.name,
                    outcome.status,
                    outcome.reason.unwrap_or_default()
                ));
            }
        }
        assert!(
            failed.is_empty(),
            "{model} on epoll over {transport}: {failed:#?}"
        );
    }
}

#[test]
fn every_tcp_check_passes_without_io_uring() {
    every_shared_check_without_io_uring(Transport::Tcp);
}

#[test]
fn every_unix_check_passes_without_io_uring() {
    every_shared_check_without_io_uring(Transport::Unix);
}

#[test]
fn every_udp_check_passes_without_io_uring() {
    every_shared_check_without_io_uring(Transport::Udp);
}

/// monoio's first choice is io_uring whatever this machine allows, so a report can tell a run
/// that fell back to epoll from one that did not.
#[test]
fn monoio_names_io_uring_as_its_first_choice() {
    assert_eq!(Model::Monoio.first_choice(), Driver::IoUring);
}
