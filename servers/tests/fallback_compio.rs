//! compio's fallback: with `ECHO_SERVERS_DISABLE_IO_URING=1` the `compio` model must run on its
//! polling (epoll) driver, say so (`driver: epoll`, the binary's second stdout line), hold no
//! io_uring ring, and pass every shared conformance check, as it does on io_uring. The server is
//! the `echo-server` binary with the variable in its environment only, so no other test in any
//! process sees it. Every read has a timeout and every wait a deadline.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::Command;
use std::time::Duration;

use echo_loadgen::conformance::{self, Launched, ServerCommand, Subject};
use echo_loadgen::socket::Client;
use echo_servers::{Endpoint, IO_URING_DISABLE_ENV, Model, Transport, io_uring_refused};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The compio model through the binary, two runtimes, with io_uring disabled.
fn fallback_command() -> ServerCommand {
    ServerCommand::new(&format!(
        "env {IO_URING_DISABLE_ENV}=1 {} --model compio --threads 2 --listen {{addr}}",
        env!("CARGO_BIN_EXE_echo-server")
    ))
    .expect("a command")
}

/// Starts the binary on `transport` with `env` added to its environment.
fn launch(transport: Transport, env: &[(&str, &str)]) -> Launched {
    let template = ServerCommand::new(&format!(
        "{} --model compio --threads 2 --listen {{addr}}",
        env!("CARGO_BIN_EXE_echo-server")
    ))
    .expect("a command");
    let (mut command, addr, dir): (Command, Endpoint, _) =
        template.prepare(transport).expect("a free address");
    command.envs(env.iter().copied());
    Launched::spawn(command, addr, dir).expect("echo-server starts")
}

fn connect(endpoint: &Endpoint) -> Client {
    let client = Client::connect(&endpoint.clone().into(), IO_TIMEOUT).expect("connect");
    client.set_timeouts(Some(IO_TIMEOUT)).unwrap();
    client
}

/// The kinds of anonymous descriptors (`[io_uring]`, `[eventpoll]`, ...) process `pid` holds.
fn anon_descriptors(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("anon_inode:")
                .map(str::to_owned)
        })
        .collect()
}

/// Echoes a message, half-closes, gets the rest of the echo and then end-of-file, exits 0 on
/// SIGTERM; returns the driver line the binary printed.
fn serve_one_client_and_stop(mut server: Launched) -> (String, Vec<String>) {
    let endpoint = server.endpoint().clone();
    let mut client = connect(&endpoint);
    client.write_all(b"over the fallback").unwrap();
    let mut echoed = [0; 17];
    client.read_exact(&mut echoed).expect("the echo");
    assert_eq!(&echoed, b"over the fallback");

    let descriptors = anon_descriptors(server.pid());

    client.write_all(b"then half-closed").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client
        .read_to_end(&mut rest)
        .expect("everything echoed, then end-of-file");
    assert_eq!(rest, b"then half-closed");

    let _idle = connect(&endpoint);
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("echo-server did not exit within 5 s of SIGTERM");
    assert!(
        status.success(),
        "exit status {status}; stderr: {:?}",
        server.stderr_tail()
    );
    let stdout = server.output().expect("its stdout, once it exited");
    assert!(
        stdout
            .first()
            .is_some_and(|l| l.starts_with("listening on ")),
        "{stdout:?}"
    );
    let driver = stdout.get(1).cloned().unwrap_or_default();
    (driver, descriptors)
}

fn says_epoll_holds_no_ring_echoes_half_closes_and_exits_0(transport: Transport) {
    let server = launch(transport, &[(IO_URING_DISABLE_ENV, "1")]);
    let (driver, descriptors) = serve_one_client_and_stop(server);
    assert_eq!(driver, "driver: epoll");
    assert!(
        !descriptors.iter().any(|d| d == "[io_uring]"),
        "the fallback holds an io_uring ring: {descriptors:?}"
    );
    assert!(
        descriptors.iter().any(|d| d == "[eventpoll]"),
        "the fallback holds no epoll instance: {descriptors:?}"
    );
}

#[test]
fn fallback_says_epoll_holds_no_ring_echoes_half_closes_and_exits_0_on_sigterm() {
    says_epoll_holds_no_ring_echoes_half_closes_and_exits_0(Transport::Tcp);
}

#[test]
fn unix_fallback_says_epoll_holds_no_ring_echoes_half_closes_and_exits_0_on_sigterm() {
    says_epoll_holds_no_ring_echoes_half_closes_and_exits_0(Transport::Unix);
}

/// Without the variable, where the kernel allows io_uring, the same binary runs on a ring:
/// what makes the test above a test of the fallback.
#[test]
fn without_the_variable_compio_runs_on_io_uring_where_the_kernel_allows_it() {
    if let Some(why) = io_uring_refused() {
        eprintln!("skipped: {why}");
        return;
    }
    let server = launch(Transport::Tcp, &[]);
    let (driver, descriptors) = serve_one_client_and_stop(server);
    assert_eq!(driver, "driver: io_uring");
    assert!(
        descriptors.iter().any(|d| d == "[io_uring]"),
        "no io_uring ring: {descriptors:?}"
    );
}

/// Every shared check on `transport`, against the fallback. The only skip allowed is the part
/// of the hostile-datagram check that needs a raw socket, unprivileged.
fn every_shared_check_passes_on_the_fallback(transport: Transport) {
    assert!(Model::Compio.serves(transport));
    let subject = Subject {
        command: Some(fallback_command()),
        transport,
        ..Subject::default()
    };
    let mut failures = Vec::new();
    for check in conformance::checks_for(transport) {
        let outcome = conformance::run(check, &subject);
        // SAFETY: geteuid has no preconditions.
        let unprivileged_skip = outcome.status == "skip"
            && outcome
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with("passed, but"))
            && unsafe { libc::geteuid() } != 0;
        if !(outcome.passed() || unprivileged_skip) {
            failures.push(format!(
                "{}: {} ({})",
                outcome.check,
                outcome.status,
                outcome.reason.unwrap_or_default()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn fallback_passes_every_shared_check() {
    every_shared_check_passes_on_the_fallback(Transport::Tcp);
}

#[test]
fn unix_fallback_passes_every_shared_check() {
    every_shared_check_passes_on_the_fallback(Transport::Unix);
}

#[test]
fn udp_fallback_passes_every_shared_check() {
    every_shared_check_passes_on_the_fallback(Transport::Udp);
}
