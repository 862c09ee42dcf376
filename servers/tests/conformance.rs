//! The conformance suite: every check runs against every registered model, on every transport
//! it applies to. The checks any echo server must pass are defined once, in
//! `echo_loadgen::conformance` (which `echo-bench conformance` runs against any server), and run
//! here on the `echo-server` binary; the checks only a model of this project can pass (work
//! before each echo, threads joined at shutdown, one line on stdout, exit 0, the socket file's
//! life) are here. The registry generates the tests (`echo_servers::for_each_model!`), one per
//! model, transport and check: `<model>::<check>` over TCP, `<model>::unix::<check>` over a Unix
//! socket, `<model>::udp::<check>` over UDP (where a model does not serve UDP, each of those
//! tests checks that it refuses `udp:` as documented). So a new model is covered by adding it to
//! the registry, a failure names its model and transport, and `cargo test -p echo-servers
//! tokio::` runs the tokio model's checks alone (`tokio` alone also selects
//! `tokio_current_thread` and `tokio_rayon`). `ECHO_MODELS=mio,tokio` narrows a run too.
//!
//! Bounds: every socket has read and write timeouts, every loop a limit or a deadline, and all
//! traffic goes to 127.0.0.1 or to socket files in the temporary directory.

use std::io::{ErrorKind, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use echo_loadgen::conformance::{self, ServerCommand, Subject, pattern};
use echo_loadgen::socket::Client;
use echo_servers::{Endpoint, Model, ServerConfig, ServerHandle, Transport};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Harness

/// Runs `check` against `model`, unless this machine cannot run the model (said on stderr) or
/// `ECHO_MODELS` names others. The descriptor limit is raised to its hard limit first: the
/// models' tests run side by side in one process, and a thousand held connections per model
/// need two thousand descriptors each.
fn run(model: Model, check: impl FnOnce(Model)) {
    static RAISE: std::sync::Once = std::sync::Once::new();
    RAISE.call_once(raise_descriptor_limit);
    if let Ok(list) = std::env::var("ECHO_MODELS")
        && !list.trim().is_empty()
        && !list.split(',').any(|name| name.trim() == model.name())
    {
        eprintln!("skipping {model}: not in ECHO_MODELS");
        return;
    }
    if Model::runnable([model]).is_empty() {
        return;
    }
    check(model);
}

/// Raises this process's soft descriptor limit to the hard one, and says so when the hard
/// limit is too low for every model's thousand-connection check at once.
fn raise_descriptor_limit() {
    // SAFETY: getrlimit and setrlimit write and read only the local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            eprintln!(
                "conformance: cannot raise the descriptor limit to {}",
                limit.rlim_max
            );
        }
        let needed = (Model::ALL.len() * 2_100) as u64;
        if limit.rlim_max < needed {
            eprintln!(
                "conformance: the descriptor limit ({}) is below the {needed} that every \
                 model's thousand-connection check needs at once; run fewer tests at a time \
                 (--test-threads) if they fail to connect",
                limit.rlim_max
            );
        }
    }
}

fn start_with(model: Model, config: ServerConfig) -> ServerHandle {
    model
        .server()
        .start(&config)
        .unwrap_or_else(|e| panic!("start: {e}"))
}

/// A config listening on `transport`: a free loopback port, or a fresh socket file.
fn config_on(transport: Transport) -> ServerConfig {
    ServerConfig::at(match transport {
        Transport::Tcp => ServerConfig::ephemeral().listen,
        Transport::Unix => Endpoint::Unix(socket_path()),
        Transport::Udp => Endpoint::Udp("127.0.0.1:0".parse().unwrap()),
        // Over TLS only the shared checks run (through the binary, which makes its own
        // certificate), and the checks of tests/tls.rs; the models' own checks here do not.
        Transport::Tls => unreachable!("the models' own checks do not run over tls:"),
    })
}

/// A socket path no other test uses, in the temporary directory.
fn socket_path() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "echo-servers-test-{}-{}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    path
}

fn connect(endpoint: &Endpoint) -> Client {
    let stream = Client::connect(&endpoint.clone().into(), IO_TIMEOUT).expect("connect");
    stream.set_timeouts(Some(IO_TIMEOUT)).unwrap();
    stream
}

fn round_trip(stream: &mut Client, message: &[u8]) {
    stream.write_all(message).expect("write");
    let mut echoed = vec![0; message.len()];
    stream.read_exact(&mut echoed).expect("read echo");
    assert!(echoed == message, "echo differs from what was sent");
}

/// The names of this process's threads that start with `prefix`.
fn threads_named(prefix: &str) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checks through the trait

fn work_per_message_comes_before_each_echo(model: Model, transport: Transport) {
    const WORK: Duration = Duration::from_millis(25);
    let config = ServerConfig {
        work: echo_servers::Work::new(WORK),
        ..config_on(transport)
    };
    let server = start_with(model, config);
    let mut client = connect(server.endpoint());
    for i in 0..3 {
        let message = pattern(64, i);
        let sent = Instant::now();
        round_trip(&mut client, &message);
        let took = sent.elapsed();
        assert!(
            took >= WORK,
            "echo {i} came back after {took:?}, before the work"
        );
    }
    server.shutdown().expect("shutdown");
}

fn shutdown_closes_connections_and_joins_every_thread(model: Model, transport: Transport) {
    let server = start_with(
        model,
        ServerConfig {
            threads: Some(2),
            ..config_on(transport)
        },
    );
    let prefix = server.thread_prefix();
    let endpoint = server.endpoint().clone();
    // One busy-ish, several idle, some maybe still queued behind busy workers.
    let mut first = connect(&endpoint);
    round_trip(&mut first, b"served");
    let mut clients = vec![first];
    clients.extend((0..9).map(|_| connect(&endpoint)));
    (&clients[1]).write_all(b"pending").unwrap();
    assert!(
        !threads_named(&prefix).is_empty(),
        "the server's threads should be named {prefix}*"
    );

    let began = Instant::now();
    server.shutdown().expect("shutdown");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        began.elapsed()
    );
    // A joined thread's /proc entry can outlive the join by a moment (the kernel wakes the
    // joiner before it reaps the task), so give the entries a short while to go.
    let settle = Instant::now() + Duration::from_millis(500);
    let mut left = threads_named(&prefix);
    while !left.is_empty() && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(10));
        left = threads_named(&prefix);
    }
    assert!(left.is_empty(), "threads left after shutdown: {left:?}");
    // Every client sees its connection end (EOF or reset), none hangs.
    for mut client in clients {
        client
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut sink = [0; 64];
        loop {
            match client.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("a connection stayed open after shutdown")
                }
                Err(_) => break,
            }
        }
    }
    // And the port is closed; a Unix socket's file is gone.
    assert!(Client::connect(&endpoint.clone().into(), Duration::from_secs(1)).is_err());
    if let Some(path) = endpoint.unix_path() {
        assert!(!path.exists(), "{} left behind", path.display());
    }
}

/// A socket file left by a server that died is replaced at bind; one a live server listens on,
/// or a file that is not a socket, makes the bind fail and is left alone.
fn stale_socket_file_is_replaced_but_a_live_one_is_not(model: Model, _: Transport) {
    let path = socket_path();
    // A socket bound and dropped without unlinking: what a killed server leaves.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let config = ServerConfig::at(Endpoint::Unix(path.clone()));
    let server = start_with(model, config.clone());
    round_trip(&mut connect(server.endpoint()), b"over the stale file");
    let second = model.server().start(&config);
    assert!(
        second.is_err(),
        "a second server took over a live server's socket"
    );
    round_trip(&mut connect(server.endpoint()), b"first still served");
    server.shutdown().expect("shutdown");
    assert!(!path.exists(), "the socket file outlived its server");
    std::fs::write(&path, b"not a socket").unwrap();
    let err = model.server().start(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    std::fs::remove_file(&path).unwrap();
}

/// UDP through the trait: a datagram echoed, then shutdown joins every thread and nothing answers.
fn datagram_shutdown_joins_every_thread_and_stops_answering(model: Model, _: Transport) {
    let server = start_with(
        model,
        ServerConfig {
            threads: Some(2),
            ..config_on(Transport::Udp)
        },
    );
    let prefix = server.thread_prefix();
    let addr = server.local_addr();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut echoed = [0; 64];
    let mut answered = false;
    for _ in 0..3 {
        client.send_to(b"one datagram", addr).unwrap();
        if let Ok((n, from)) = client.recv_from(&mut echoed) {
            assert_eq!((&echoed[..n], from), (&b"one datagram"[..], addr));
            answered = true;
            break;
        }
    }
    assert!(answered, "no echo in 3 tries");
    let began = Instant::now();
    server.shutdown().expect("shutdown");
    assert!(began.elapsed() < Duration::from_secs(5));
    let settle = Instant::now() + Duration::from_millis(500);
    while !threads_named(&prefix).is_empty() && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(threads_named(&prefix), Vec::<String>::new());
    // Nothing answers there any more. (Binding the port again would race with the other tests'
    // sockets, which may be given the freed port.)
    // An echo of a retried datagram may still arrive late; only an echo of what is sent now
    // would be an answer.
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let _ = client.send_to(b"anyone?", addr);
    for _ in 0..10 {
        match client.recv_from(&mut echoed) {
            Ok((n, _)) => assert_ne!(&echoed[..n], b"anyone?", "answered after shutdown"),
            Err(_) => break,
        }
    }
}

/// A model that does not serve UDP refuses `udp:`: through the trait with an `Unsupported`
/// error, and through the binary with one line naming the models that do, and exit 2.
fn refuses_udp(model: Model) {
    let err = model
        .server()
        .start(&config_on(Transport::Udp))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    let output = Command::new(env!("CARGO_BIN_EXE_echo-server"))
        .args(["--model", model.name(), "--listen", "udp:127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for serving in Model::ALL.iter().filter(|m| m.serves(Transport::Udp)) {
        assert!(stderr.contains(serving.name()), "{stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Checks through the binary

/// The `echo-server` command line of `model`, on a free port with two workers (so the bounded
/// models' limit is known: [`serial`]).
fn binary(model: Model) -> ServerCommand {
    ServerCommand::new(&format!(
        "{} --model {} --threads 2 --listen {{addr}}",
        env!("CARGO_BIN_EXE_echo-server"),
        model.name()
    ))
    .expect("a command")
}

/// How many clients `model` serves at once under [`binary`]'s options, if bounded.
fn serial(model: Model) -> Option<usize> {
    model.concurrency_limit(&ServerConfig {
        threads: Some(2),
        ..ServerConfig::default()
    })
}

/// Runs the shared check `name` on `model` over `transport` through the binary. It must pass;
/// the only skip allowed is a check that does not apply to a model bounded by design.
fn shared(model: Model, transport: Transport, name: &str) {
    let check = conformance::find(name).unwrap_or_else(|| panic!("no shared check {name}"));
    let subject = Subject {
        command: Some(binary(model)),
        serial: serial(model),
        transport,
        ..Subject::default()
    };
    let outcome = conformance::run(check, &subject);
    let bounded_skip = outcome.status == "skip" && serial(model).is_some();
    // What cannot be checked over TLS says so, and is checked over TCP.
    let tls_skip = outcome.status == "skip"
        && transport == Transport::Tls
        && outcome
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("over tls:"));
    // Datagrams from port 0 need a raw socket; as root (CI) that part must run.
    // SAFETY: geteuid has no preconditions.
    let unprivileged_skip = outcome.status == "skip"
        && outcome
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("passed, but"))
        && unsafe { libc::geteuid() } != 0;
    assert!(
        outcome.passed() || bounded_skip || unprivileged_skip || tls_skip,
        "{model} {name}: {} ({})",
        outcome.status,
        outcome.reason.unwrap_or_default()
    );
}

/// The shared fairness check against a server that does 20 µs of work per message on one
/// thread: there, a client that writes as fast as it can always has bytes waiting, so a loop
/// with no budget per turn serves it alone (the unloaded check cannot show that on two cores:
/// the greedy client is no faster than the server).
///
/// `may` is the known exception, left out with the reason: on one worker its scheduler polls
/// for I/O only when its run queue is empty, so the greedy coroutine's yields bring it back at
/// once and the polite clients' readiness waits (3 of 6 runs starved some of them past 10 s).
fn greedy_client_beside_a_busy_one_thread_server(model: Model, transport: Transport) {
    if model == Model::May {
        eprintln!(
            "may left out: its scheduler polls for I/O only when its run queue is empty, so one \
             busy worker serves a greedy client first (README: Safety)"
        );
        return;
    }
    let server = start_with(
        model,
        ServerConfig {
            threads: Some(1),
            work: echo_servers::Work::new(Duration::from_micros(20)),
            ..config_on(transport)
        },
    );
    let check = conformance::find("one_greedy_client_does_not_starve_sixty_four_others")
        .expect("the shared check");
    let limit = model.concurrency_limit(&ServerConfig {
        threads: Some(1),
        ..ServerConfig::default()
    });
    let outcome = conformance::run(
        check,
        &Subject {
            target: Some(server.endpoint().clone()),
            serial: limit,
            ..Subject::default()
        },
    );
    assert!(
        outcome.passed() || (outcome.status == "skip" && limit.is_some()),
        "{model}: {} ({})",
        outcome.status,
        outcome.reason.unwrap_or_default()
    );
}

/// Shuts down, from outside, every listening socket of process `pid` (through `pidfd_getfd`,
/// which a parent may use on its child): what a listener failing under a running server looks
/// like to the server. Returns how many it found.
fn shut_down_listeners_of(pid: u32) -> usize {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: plain system calls; every descriptor they return is owned here and closed.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let mut found = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the server's descriptors") {
        let Some(target) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())
        else {
            continue;
        };
        let fd = unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                std::os::fd::AsRawFd::as_raw_fd(&pidfd),
                target,
                0,
            )
        };
        if fd < 0 {
            continue;
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let socket = socket2::SockRef::from(&fd);
        if socket.is_listener().unwrap_or(false) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
            found += 1;
        }
    }
    found
}

/// When the listener fails under a running server (shut down from outside), the binary says so
/// and exits 1 within seconds: it never goes on printing that it listens while nothing accepts.
fn binary_exits_1_when_its_listener_fails(model: Model, transport: Transport) {
    let mut server = binary(model)
        .launch(transport, None, None)
        .expect("echo-server starts");
    let endpoint = server.endpoint().clone();
    round_trip(&mut connect(&endpoint), b"before the failure");
    assert!(
        shut_down_listeners_of(server.pid()) > 0,
        "no listening socket found"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{model} still running 10 s after its listener failed"
        );
        // A connection attempt wakes a loop that has not looked at its listener yet.
        let _ = Client::connect(&endpoint.clone().into(), Duration::from_millis(100));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1), "{model}: exit status {status}");
}

fn binary_prints_listening_line_and_exits_0_on_sigterm_with_connections_open(
    model: Model,
    transport: Transport,
) {
    let mut server = binary(model)
        .launch(transport, None, None)
        .expect("echo-server starts");
    let endpoint = server.endpoint().clone();
    let mut client = connect(&endpoint);
    round_trip(&mut client, b"through the binary");
    let _idle = connect(&endpoint);
    let began = Instant::now();
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("echo-server did not exit within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(began.elapsed() < Duration::from_secs(5));
    let printed = server.output().expect("exited, so its stdout is complete");
    assert_eq!(
        printed.len(),
        2,
        "echo-server printed other than its two lines: {printed:?}"
    );
    assert_eq!(printed[0], format!("listening on {endpoint}"));
    assert_eq!(printed[1], format!("driver: {}", model.server().driver()));
    if let Some(path) = endpoint.unix_path() {
        assert!(!path.exists(), "the socket file outlived the binary");
    }
}

#[test]
fn binary_lists_the_models() {
    let output = Command::new(env!("CARGO_BIN_EXE_echo-server"))
        .arg("--list")
        .output()
        .unwrap();
    assert!(output.status.success());
    let listed: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    // `name<TAB>transports<TAB>driver`, the transports as `listen` takes them.
    let expected: Vec<String> = Model::ALL
        .iter()
        .map(|m| {
            let transports: Vec<&str> = m.transports().iter().map(|t| t.name()).collect();
            format!(
                "{}\t{}\t{}",
                m.name(),
                transports.join(","),
                m.server().driver()
            )
        })
        .collect();
    assert_eq!(listed, expected);
    assert!(listed.iter().all(|l| l.contains("tcp,unix")));
    let serving = |name: &str| {
        listed
            .iter()
            .filter(|l| {
                l.split('\t')
                    .nth(1)
                    .is_some_and(|t| t.split(',').any(|t| t == name))
            })
            .count()
    };
    assert!(
        serving("udp") >= 5,
        "blocking, thread-pool, mio, tokio and tokio-uring at least serve udp:"
    );
    assert!(serving("tls") >= 8, "the rustls models serve tls:");
}

/// A model that cannot start everything it serves with (5,000 threads where a cgroup allows
/// 64 tasks) exits 1 with the reason within seconds, and never says it listens. thread-pool once
/// printed `listening on` and served nothing; tokio panicked building its runtime and then hung,
/// immune to SIGTERM. Needs root, for a cgroup of its own (the pids controller, v1 or v2).
#[test]
fn binary_that_cannot_start_its_threads_exits_1_without_listening() {
    use std::os::unix::process::CommandExt;
    let Some(cgroup) = PidsCgroup::new(64) else {
        eprintln!("skipped: no pids cgroup could be made here (needs root)");
        return;
    };
    for model in [Model::ThreadPool, Model::Tokio] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_echo-server"));
        command
            .args([
                "--model",
                model.name(),
                "--threads",
                "5000",
                "--listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let procs = std::ffi::CString::new(cgroup.procs.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: open, write and close are async-signal-safe; the path was made before fork.
        unsafe {
            command.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        let mut child = command.spawn().expect("echo-server runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        let Some(status) = echo_loadgen::child::wait_until(&mut child, deadline).expect("wait")
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{model} with 5,000 threads allowed 64 still running after 20 s");
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(
            status.code(),
            Some(1),
            "{model}: {status}; stderr: {stderr}"
        );
        assert!(
            !stdout.contains("listening on"),
            "{model} said it listens: {stdout}"
        );
        assert!(
            stderr.contains("cannot start") || stderr.contains("did not start"),
            "{model}: {stderr}"
        );
    }
}

/// A pids cgroup of this test's own, removed when dropped.
struct PidsCgroup {
    dir: std::path::PathBuf,
    procs: std::path::PathBuf,
}

impl PidsCgroup {
    /// A cgroup allowing `max` tasks, under the v1 pids hierarchy or the v2 one.
    fn new(max: u32) -> Option<Self> {
        let name = format!("echo-servers-test-{}", std::process::id());
        for root in [
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup",
        ] {
            let dir = std::path::Path::new(root).join(&name);
            if std::fs::create_dir(&dir).is_err() {
                continue;
            }
            if std::fs::write(dir.join("pids.max"), max.to_string()).is_ok() {
                let procs = dir.join("cgroup.procs");
                return Some(Self { dir, procs });
            }
            let _ = std::fs::remove_dir(&dir);
        }
        None
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Empty by now: every process put in it has been waited for.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn binary_rejects_bad_arguments_with_one_line_and_exit_2() {
    let cases: &[&[&str]] = &[
        &["--model", "nonsense"],
        &["--model", "mio", "--listen", "not-an-address"],
        &["--model", "mio", "--threads", "0"],
        &["--model", "mio", "--threads", "many"],
        &["--model", "mio", "--backlog", "-1"],
        &["--model", "mio", "--buffer", "0"],
        &["--model", "mio", "--no-such-flag"],
        &[],
    ];
    for args in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_echo-server"))
            .args(*args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "exit code for {args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("echo-server: "), "{stderr}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_echo-server"))
        .args(["--model", "nonsense"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    for model in Model::ALL {
        assert!(
            stderr.contains(model.name()),
            "error should name {model}: {stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// One test per model and check

/// `#[test] fn <check>()` running `crate::<check>` on the module's `MODEL` over `$transport`;
/// over UDP, for a model that does not serve it, the refusal instead.
macro_rules! checks {
    ($transport:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                crate::run(MODEL, |model| crate::on(model, $transport, |m| crate::$check(m, $transport)));
            }
        )*
    };
}

/// `#[test] fn <check>()` running the shared check of that name on the module's `MODEL` over
/// `$transport` (for a model that does not serve it, the refusal instead).
macro_rules! shared_checks {
    ($transport:expr; $($check:ident),* $(,)?) => {
        /// The shared checks this module runs, to compare with the shared list.
        #[allow(dead_code)]
        pub const SHARED: &[&str] = &[$(stringify!($check)),*];
        $(
            #[test]
            fn $check() {
                crate::run(MODEL, |model| {
                    crate::on(model, $transport, |m| crate::shared(m, $transport, stringify!($check)))
                });
            }
        )*
    };
}

/// Every check of a stream transport: the models' own and the shared stream checks.
macro_rules! stream_checks {
    ($transport:expr) => {
        checks! {
            $transport;
            work_per_message_comes_before_each_echo,
            shutdown_closes_connections_and_joins_every_thread,
            greedy_client_beside_a_busy_one_thread_server,
            binary_prints_listening_line_and_exits_0_on_sigterm_with_connections_open,
        }
        shared_stream_checks!($transport);
    };
}

/// The shared checks of a stream transport (TCP, Unix, TLS).
macro_rules! shared_stream_checks {
    ($transport:expr) => {
        shared_checks! {
            $transport;
            basic_echo,
            binary_data_16_kib,
            thousands_of_tiny_writes,
            sixteen_mib_while_reading_concurrently,
            half_close_echoes_everything_then_closes,
            resetting_clients_only_end_their_own_connection,
            sixty_four_clients_two_hundred_round_trips_each,
            idle_connections_block_only_where_the_model_says_so,
            a_thousand_connections_held_open,
            non_reading_client_keeps_server_memory_bounded,
            exits_on_sigterm_with_connections_open,
            descriptor_exhaustion_is_survived_without_spinning,
            one_greedy_client_does_not_starve_sixty_four_others,
            sustained_stream_traffic_is_served_throughout,
        }
    };
}

/// A module per model: its TCP checks, and a module each for Unix sockets and UDP.
macro_rules! conformance {
    ($($model:ident => $variant:path),* $(,)?) => {
        $(
            mod $model {
                const MODEL: echo_servers::Model = $variant;
                stream_checks!(echo_servers::Transport::Tcp);
                // TCP only: a Unix listener that is shut down goes on blocking in accept, so
                // there is no failing one from outside.
                checks! {
                    echo_servers::Transport::Tcp;
                    binary_exits_1_when_its_listener_fails,
                }

                pub mod unix {
                    use super::MODEL;
                    stream_checks!(echo_servers::Transport::Unix);
                    checks! {
                        echo_servers::Transport::Unix;
                        stale_socket_file_is_replaced_but_a_live_one_is_not,
                    }
                }

                /// The shared stream checks over TLS, through a client that accepts the
                /// server's self-signed certificate (the echo is judged, not the certificate).
                pub mod tls {
                    use super::MODEL;
                    shared_stream_checks!(echo_servers::Transport::Tls);
                }

                pub mod udp {
                    use super::MODEL;
                    checks! {
                        echo_servers::Transport::Udp;
                        datagram_shutdown_joins_every_thread_and_stops_answering,
                    }
                    shared_checks! {
                        echo_servers::Transport::Udp;
                        datagrams_from_1_byte_to_the_largest_come_back_whole,
                        fifty_senders_a_thousand_datagrams_each_answered_to_its_sender,
                        a_burst_beyond_the_socket_buffer_is_loss_not_a_crash,
                        hostile_datagrams_cost_only_themselves,
                        sustained_datagrams_are_answered_throughout,
                        exits_on_sigterm_while_serving_datagrams,
                    }
                }
            }
        )*
    };
}

/// The io-uring model's ablation (`--uring-features`), the cumulative steps the benchmark runs:
/// each passes, on both stream transports and through the binary, the shared checks of what a
/// feature changes (how bytes are received, held and sent back, how connections are accepted
/// and closed, how the ring is set up and stopped). Every step with every check is also what
/// `echo-bench conformance --command '... --uring-features LIST ...'` runs.
mod io_uring_ablation {
    use echo_loadgen::conformance::{self, ServerCommand, Subject};
    use echo_servers::{Model, Transport};

    const CHECKS: &[&str] = &[
        "basic_echo",
        "binary_data_16_kib",
        "thousands_of_tiny_writes",
        "sixteen_mib_while_reading_concurrently",
        "half_close_echoes_everything_then_closes",
        "resetting_clients_only_end_their_own_connection",
        "a_thousand_connections_held_open",
        "non_reading_client_keeps_server_memory_bounded",
        "descriptor_exhaustion_is_survived_without_spinning",
        "exits_on_sigterm_with_connections_open",
    ];

    fn step(features: &str) {
        crate::run(Model::IoUring, |model| {
            for transport in [Transport::Tcp, Transport::Unix] {
                let command = ServerCommand::new(&format!(
                    "{} --model {} --threads 2 --uring-features {features} --listen {{addr}}",
                    env!("CARGO_BIN_EXE_echo-server"),
                    model.name()
                ))
                .expect("a command");
                for name in CHECKS {
                    let check = conformance::find(name).expect("a shared check");
                    let outcome = conformance::run(
                        check,
                        &Subject {
                            command: Some(command.clone()),
                            transport,
                            ..Subject::default()
                        },
                    );
                    assert!(
                        outcome.passed(),
                        "--uring-features {features} over {transport}: {name}: {} ({})",
                        outcome.status,
                        outcome.reason.unwrap_or_default()
                    );
                }
            }
        });
    }

    #[test]
    fn none() {
        step("none");
    }

    #[test]
    fn multishot_accept() {
        step("multishot-accept");
    }

    #[test]
    fn and_multishot_recv() {
        step("multishot-accept,multishot-recv");
    }

    #[test]
    fn and_batch() {
        step("multishot-accept,multishot-recv,batch");
    }

    #[test]
    fn and_defer_taskrun() {
        step("multishot-accept,multishot-recv,batch,defer-taskrun");
    }

    #[test]
    fn all() {
        step("all");
    }
}

/// `--uring-features` takes a comma-separated list of the features, `all` or `none`; anything
/// else is one line and exit 2, whatever the model.
#[test]
fn binary_rejects_a_bad_uring_feature_list_with_one_line_and_exit_2() {
    for list in [
        "",
        "multishot",
        "all,batch",
        "batch,,fixed-files",
        "batch,batch",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_echo-server"))
            .args(["--model", "mio", "--uring-features", list])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "exit code for {list:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{list:?}: {stderr}");
        assert!(
            stderr.contains("--uring-features") && stderr.contains("multishot-recv"),
            "{list:?}: {stderr}"
        );
    }
}

/// Runs `check` on `model` over `transport`; a model that does not serve UDP or TLS must refuse
/// it instead ([`refuses_udp`]; for TLS, through the trait here, and through the binary in
/// `tests/tls.rs`).
fn on(model: Model, transport: Transport, check: impl FnOnce(Model)) {
    if model.serves(transport) {
        check(model);
    } else if transport == Transport::Tls {
        let err = model
            .server()
            .start(&ServerConfig::at(Endpoint::Tls(
                "127.0.0.1:0".parse().unwrap(),
            )))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{model}: {err}");
    } else {
        assert_eq!(transport, Transport::Udp, "every model serves TCP and Unix");
        refuses_udp(model);
    }
}

echo_servers::for_each_model!(conformance);

#[test]
fn every_shared_check_runs_on_every_model_and_transport_it_applies_to() {
    for (transport, listed) in [
        (Transport::Tcp, mio::SHARED),
        (Transport::Unix, mio::unix::SHARED),
        (Transport::Tls, mio::tls::SHARED),
        (Transport::Udp, mio::udp::SHARED),
    ] {
        let mut listed = listed.to_vec();
        let mut defined: Vec<&str> = conformance::checks_for(transport).map(|c| c.name).collect();
        listed.sort_unstable();
        defined.sort_unstable();
        assert_eq!(
            listed, defined,
            "shared_checks! must list every shared check of {transport}"
        );
    }
}
