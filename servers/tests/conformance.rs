//! The conformance suite: every check runs against every registered model. The checks any echo
//! server must pass are defined once, in `echo_loadgen::conformance` (which `echo-bench
//! conformance` runs against any server), and run here on the `echo-server` binary; the checks
//! only a model of this project can pass (work before each echo, threads joined at shutdown,
//! one line on stdout, exit 0) are here. The registry generates the tests
//! (`echo_servers::for_each_model!`), one per model and check, named `<model>::<check>`, so a new
//! model is covered by adding it to the registry, a failure names its model, and
//! `cargo test -p echo-servers tokio::` runs the tokio model's checks alone (`tokio` alone also
//! selects `tokio_current_thread` and `tokio_rayon`). `ECHO_MODELS=mio,tokio` narrows a run too.
//!
//! Bounds: every socket has read and write timeouts, every loop a limit or a deadline, and all
//! traffic goes to 127.0.0.1.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use echo_loadgen::conformance::{self, ServerCommand, Subject, pattern};
use echo_servers::{Model, ServerConfig, ServerHandle};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Harness

/// Runs `check` against `model`, unless this machine cannot run the model (said on stderr) or
/// `ECHO_MODELS` names others. The descriptor limit is raised to its hard limit first: the
/// models' tests run side by side in one process, and a thousand held connections per model
/// need two thousand descriptors each.
fn run(model: Model, check: fn(Model)) {
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

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

fn round_trip(stream: &mut TcpStream, message: &[u8]) {
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

fn work_per_message_comes_before_each_echo(model: Model) {
    const WORK: Duration = Duration::from_millis(25);
    let config = ServerConfig {
        work: echo_servers::Work::new(WORK),
        ..ServerConfig::ephemeral()
    };
    let server = start_with(model, config);
    let mut client = connect(server.local_addr());
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

fn shutdown_closes_connections_and_joins_every_thread(model: Model) {
    let server = start_with(
        model,
        ServerConfig {
            threads: Some(2),
            ..ServerConfig::ephemeral()
        },
    );
    let prefix = server.thread_prefix();
    let addr = server.local_addr();
    // One busy-ish, several idle, some maybe still queued behind busy workers.
    let mut first = connect(addr);
    round_trip(&mut first, b"served");
    let mut clients = vec![first];
    clients.extend((0..9).map(|_| connect(addr)));
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
    // And the port is closed.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
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

/// Runs the shared check `name` on `model` through the binary. It must pass; the only skip
/// allowed is a check that does not apply to a model bounded by design.
fn shared(model: Model, name: &str) {
    let check = conformance::find(name).unwrap_or_else(|| panic!("no shared check {name}"));
    let subject = Subject {
        command: Some(binary(model)),
        serial: serial(model),
        ..Subject::default()
    };
    let outcome = conformance::run(check, &subject);
    let bounded_skip = outcome.status == "skip" && serial(model).is_some();
    assert!(
        outcome.passed() || bounded_skip,
        "{model} {name}: {} ({})",
        outcome.status,
        outcome.reason.unwrap_or_default()
    );
}

fn binary_prints_listening_line_and_exits_0_on_sigterm_with_connections_open(model: Model) {
    let mut server = binary(model).launch(None).expect("echo-server starts");
    let mut client = connect(server.addr());
    round_trip(&mut client, b"through the binary");
    let _idle = connect(server.addr());
    let began = Instant::now();
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("echo-server did not exit within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(began.elapsed() < Duration::from_secs(5));
    let printed = server.output().expect("exited, so its stdout is complete");
    assert_eq!(
        printed.len(),
        1,
        "echo-server printed more than one line: {printed:?}"
    );
    assert!(printed[0].starts_with("listening on "), "{printed:?}");
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
    let expected: Vec<String> = Model::ALL.iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(listed, expected);
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

/// `#[test] fn <check>()` running `super::<check>` on the module's `MODEL`, for each check.
macro_rules! checks {
    ($($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                super::run(MODEL, super::$check);
            }
        )*
    };
}

/// `#[test] fn <check>()` running the shared check of that name on the module's `MODEL`.
macro_rules! shared_checks {
    ($($check:ident),* $(,)?) => {
        /// The shared checks this module runs, to compare with the shared list.
        #[allow(dead_code)]
        pub const SHARED: &[&str] = &[$(stringify!($check)),*];
        $(
            #[test]
            fn $check() {
                super::run(MODEL, |model| super::shared(model, stringify!($check)));
            }
        )*
    };
}

/// A module per model, holding its checks.
macro_rules! conformance {
    ($($model:ident => $variant:path),* $(,)?) => {
        $(
            mod $model {
                const MODEL: echo_servers::Model = $variant;
                checks! {
                    work_per_message_comes_before_each_echo,
                    shutdown_closes_connections_and_joins_every_thread,
                    binary_prints_listening_line_and_exits_0_on_sigterm_with_connections_open,
                }
                shared_checks! {
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
                }
            }
        )*
    };
}

echo_servers::for_each_model!(conformance);

#[test]
fn every_shared_check_runs_on_every_model() {
    let mut listed: Vec<&str> = mio::SHARED.to_vec();
    let mut defined: Vec<&str> = conformance::CHECKS.iter().map(|c| c.name).collect();
    listed.sort_unstable();
    defined.sort_unstable();
    assert_eq!(
        listed, defined,
        "shared_checks! must list every shared check"
    );
}
