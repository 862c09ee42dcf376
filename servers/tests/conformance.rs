//! The conformance suite: every check runs against every registered model, through the
//! `EchoServer` trait or through the `echo-server` binary. The registry generates the tests
//! (`echo_servers::for_each_model!`), one per model and check, named `<model>::<check>`, so a new
//! model is covered by adding it to the registry, a failure names its model, and
//! `cargo test -p echo-servers tokio::` runs the tokio model's checks alone (`tokio` alone also
//! selects `tokio_current_thread` and `tokio_rayon`). `ECHO_MODELS=mio,tokio` narrows a run too.
//!
//! Bounds: every socket has read and write timeouts, every loop a limit or a deadline, and all
//! traffic goes to 127.0.0.1.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

fn start(model: Model) -> ServerHandle {
    start_with(model, ServerConfig::ephemeral())
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

/// Bytes of every value in a pseudo-random order, so a shifted or swapped byte shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn round_trip(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).expect("write");
    let mut echoed = vec![0; message.len()];
    stream.read_exact(&mut echoed).expect("read echo");
    assert!(echoed == message, "echo differs from what was sent");
}

/// Whether `stream` gets `message` echoed within `wait` (false on timeout).
fn echoed_within(stream: &mut TcpStream, message: &[u8], wait: Duration) -> bool {
    stream.write_all(message).expect("write");
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut echoed = vec![0; message.len()];
    let result = stream.read_exact(&mut echoed);
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    match result {
        Ok(()) => {
            assert!(echoed == message, "echo differs from what was sent");
            true
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("read: {e}"),
    }
}

/// Reads until EOF; returns what was read.
fn read_to_eof(mut stream: &TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read to EOF");
    all
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

/// The `echo-server` binary, started on a free port, killed when dropped.
struct BinaryServer {
    child: Child,
    addr: SocketAddr,
    /// Reads stdout after the `listening on` line; returns any further lines at EOF.
    rest_of_stdout: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl BinaryServer {
    fn start(model: Model, fd_limit: Option<u64>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_echo-server"));
        command
            .args(["--model", model.name(), "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(limit) = fd_limit {
            // SAFETY: setrlimit is async-signal-safe, as pre_exec requires.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("spawn echo-server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let rest_of_stdout = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep reading until the server exits, so a line printed later is noticed.
            lines.map_while(Result::ok).collect()
        });
        let line = match rx.recv_timeout(IO_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                panic!("no 'listening on' line from echo-server: {other:?}");
            }
        };
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        BinaryServer {
            child,
            addr,
            rest_of_stdout: Some(rest_of_stdout),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status; once it has exited, checks that
    /// it printed nothing after its `listening on` line.
    fn terminate(mut self, within: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The process is gone, so its stdout is at EOF and the reader ends.
                if let Some(reader) = self.rest_of_stdout.take() {
                    let extra = reader.join().expect("stdout reader");
                    assert!(
                        extra.is_empty(),
                        "echo-server printed more than one line: {extra:?}"
                    );
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) used so far by process `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

// ---------------------------------------------------------------------------------------------
// Checks through the trait

fn basic_echo(model: Model) {
    let server = start(model);
    let mut client = connect(server.local_addr());
    round_trip(&mut client, b"hello, echo");
    round_trip(&mut client, b"and again");
    drop(client);
    server.shutdown().expect("shutdown");
}

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

fn binary_data_16_kib(model: Model) {
    let server = start(model);
    let mut client = connect(server.local_addr());
    let mut data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    data.extend(pattern(12 * 1024, 16));
    round_trip(&mut client, &data);
    server.shutdown().expect("shutdown");
}

fn thousands_of_tiny_writes(model: Model) {
    let server = start(model);
    let client = connect(server.local_addr());
    client.set_nodelay(true).unwrap();
    let data = pattern(5000 * 3, 3);
    let mut writer = client.try_clone().unwrap();
    let sent = data.clone();
    let write = std::thread::spawn(move || {
        for chunk in sent.chunks(3) {
            writer.write_all(chunk).expect("tiny write");
        }
    });
    let mut echoed = vec![0; data.len()];
    (&client).read_exact(&mut echoed).expect("read echo");
    write.join().unwrap();
    assert!(echoed == data, "echo of tiny writes differs");
    server.shutdown().expect("shutdown");
}

fn sixteen_mib_while_reading_concurrently(model: Model) {
    const TOTAL: usize = 16 << 20;
    let server = start(model);
    let client = connect(server.local_addr());
    let data = pattern(TOTAL, 7);
    let mut writer = client.try_clone().unwrap();
    let sent = data.clone();
    let write = std::thread::spawn(move || {
        // Odd, varying chunk sizes so reads and writes never line up.
        let mut offset = 0;
        let mut size = 1;
        while offset < sent.len() {
            let end = (offset + size).min(sent.len());
            writer.write_all(&sent[offset..end]).expect("write");
            offset = end;
            size = size * 7 % 65_521 + 1;
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let echoed = read_to_eof(&client);
    write.join().unwrap();
    assert_eq!(echoed.len(), TOTAL, "echoed byte count");
    assert!(echoed == data, "16 MiB echo differs");
    server.shutdown().expect("shutdown");
}

fn half_close_echoes_everything_then_closes(model: Model) {
    let server = start(model);
    let client = connect(server.local_addr());
    let data = pattern(256 * 1024, 11);
    let mut writer = client.try_clone().unwrap();
    let sent = data.clone();
    let write = std::thread::spawn(move || {
        writer.write_all(&sent).expect("write");
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    // read_to_end returning proves the server closed after echoing.
    let echoed = read_to_eof(&client);
    write.join().unwrap();
    assert!(echoed == data, "half-closed echo differs");
    server.shutdown().expect("shutdown");
}

fn resetting_clients_only_end_their_own_connection(model: Model) {
    let server = start(model);
    let addr = server.local_addr();
    // The bounded models serve one connection per worker, so there a survivor held open
    // through the resets would queue them behind it: it connects afterwards instead.
    let mut survivor = model.serves_concurrently().then(|| {
        let mut survivor = connect(addr);
        round_trip(&mut survivor, b"before");
        survivor
    });
    for i in 0..200u64 {
        let client = connect(addr);
        let data = pattern(4096 + i as usize, i);
        (&client).write_all(&data).expect("write");
        if i % 2 == 0 {
            let mut some = [0; 100];
            let _ = (&client).read(&mut some);
        }
        // SO_LINGER 0: close sends RST instead of FIN, mid-stream.
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client);
    }
    // Garbage too: a connection that sends bytes and disappears without reading.
    let garbage = connect(addr);
    (&garbage).write_all(&[0xff; 1000]).unwrap();
    drop(garbage);
    let mut survivor = survivor.take().unwrap_or_else(|| connect(addr));
    round_trip(&mut survivor, b"still served");
    drop(survivor);
    let mut fresh = connect(addr);
    round_trip(&mut fresh, b"new client served");
    drop(fresh);
    server.shutdown().expect("shutdown");
}

fn sixty_four_clients_two_hundred_round_trips_each(model: Model) {
    let server = start(model);
    let addr = server.local_addr();
    std::thread::scope(|scope| {
        for c in 0..64u64 {
            scope.spawn(move || {
                let mut client = connect(addr);
                for r in 0..200u64 {
                    let message = pattern(1 + ((c * 31 + r) % 200) as usize, c * 1000 + r);
                    round_trip(&mut client, &message);
                }
            });
        }
    });
    server.shutdown().expect("shutdown");
}

fn idle_connections_block_only_where_the_model_says_so(model: Model) {
    let config = ServerConfig {
        threads: Some(2),
        ..ServerConfig::ephemeral()
    };
    let server = start_with(model, config.clone());
    let addr = server.local_addr();
    // Enough idle connections to occupy every worker of a bounded model (each proven
    // served by one echo, so it has been taken up), or a few for the others.
    let idle_count = model.concurrency_limit(&config).unwrap_or(3);
    let mut idle: Vec<TcpStream> = (0..idle_count)
        .map(|_| {
            let mut c = connect(addr);
            round_trip(&mut c, b"x");
            c
        })
        .collect();
    let mut next = connect(addr);
    let served = echoed_within(&mut next, b"next", Duration::from_secs(2));
    if model.serves_concurrently() {
        assert!(
            served,
            "an idle connection stopped another client from being served"
        );
    } else {
        assert!(
            !served,
            "{} idle connections should occupy every worker of this model",
            idle_count
        );
        // Freeing one worker lets the waiting client in, with its echo intact.
        drop(idle.pop());
        let mut echoed = [0; 4];
        next.read_exact(&mut echoed)
            .expect("served once a worker frees up");
        assert_eq!(&echoed, b"next");
    }
    drop(idle);
    server.shutdown().expect("shutdown");
}

fn a_thousand_connections_held_open(model: Model) {
    if !model.serves_concurrently() {
        return; // By design these serve one connection per worker; see idle check.
    }
    let server = start(model);
    let addr = server.local_addr();
    let mut clients: Vec<TcpStream> = (0..1000).map(|_| connect(addr)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.write_all(&(i as u32).to_le_bytes()).unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let mut echoed = [0; 4];
        client
            .read_exact(&mut echoed)
            .expect("echo on a held connection");
        assert_eq!(u32::from_le_bytes(echoed), i as u32);
    }
    drop(clients);
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

fn non_reading_client_keeps_server_memory_bounded(model: Model) {
    let server = BinaryServer::start(model, None);
    let hog = connect(server.addr);
    hog.set_nonblocking(true).unwrap();
    let rss_before = rss_kib(server.pid());
    let chunk = vec![0x5a; 64 * 1024];
    let mut pushed = 0usize;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last_progress = Instant::now();
    // Push without ever reading until the writes stall for a while (or time runs out).
    while Instant::now() < deadline && last_progress.elapsed() < Duration::from_millis(700) {
        match (&hog).write(&chunk) {
            Ok(n) => {
                pushed += n;
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    let grown_kib = rss_kib(server.pid()).saturating_sub(rss_before);
    // Kernel socket buffers on both sides absorb a few MiB; an unbounded server absorbs all.
    assert!(
        pushed < 64 << 20,
        "the server kept reading a client that never reads ({pushed} bytes taken)"
    );
    assert!(
        grown_kib < 16 * 1024,
        "server memory grew by {grown_kib} KiB behind a non-reading client"
    );
    if model.serves_concurrently() {
        let mut other = connect(server.addr);
        round_trip(&mut other, b"others are still served");
    }
}

/// Descriptors `pid` has open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Waits until `pid` holds `limit` descriptors, or a count that has not changed for 200 ms (a
/// model that accepts one connection at a time never reaches the limit); at most 3 s.
fn descriptors_settle(pid: u32, limit: usize) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let (mut last, mut since) = (open_descriptors(pid), Instant::now());
    while last < limit && since.elapsed() < Duration::from_millis(200) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
        let now = open_descriptors(pid);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

fn descriptor_exhaustion_is_survived_without_spinning(model: Model) {
    const CLIENTS: usize = 100;
    let server = BinaryServer::start(model, Some(64));
    let mut pending: Vec<Option<TcpStream>> = (0..CLIENTS)
        .map(|i| {
            let client = connect(server.addr);
            (&client).write_all(&(i as u32).to_le_bytes()).unwrap();
            client.set_nonblocking(true).unwrap();
            Some(client)
        })
        .collect();
    // Everything is connected: wait until the server holds every descriptor it will (the
    // models that accept eagerly run out of them).
    descriptors_settle(server.pid(), 64);
    let cpu_before = cpu_seconds(server.pid());
    std::thread::sleep(Duration::from_millis(1500));
    let cpu_used = cpu_seconds(server.pid()) - cpu_before;
    assert!(
        cpu_used < 0.3,
        "server used {cpu_used:.2} CPU-s in 1.5 s while out of descriptors (busy accept?)"
    );
    // Close each client once its echo arrived; the queued ones must then be served.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut served = 0;
    while served < CLIENTS {
        assert!(
            Instant::now() < deadline,
            "only {served} of {CLIENTS} clients served after descriptors freed up"
        );
        let mut progress = false;
        for (i, slot) in pending.iter_mut().enumerate() {
            let Some(client) = slot else { continue };
            let mut echoed = [0; 4];
            match client.peek(&mut echoed) {
                Ok(4) => {
                    client.read_exact(&mut echoed).unwrap();
                    assert_eq!(u32::from_le_bytes(echoed), i as u32);
                    *slot = None;
                    served += 1;
                    progress = true;
                }
                Ok(0) => panic!("client {i} was closed by the server without an echo"),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("client {i}: {e}"),
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("exit after SIGTERM");
    assert!(status.success(), "exit status after exhaustion: {status}");
}

fn binary_prints_listening_line_and_exits_0_on_sigterm_with_connections_open(model: Model) {
    let server = BinaryServer::start(model, None);
    let mut client = connect(server.addr);
    round_trip(&mut client, b"through the binary");
    let _idle = connect(server.addr);
    let began = Instant::now();
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("echo-server did not exit within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(began.elapsed() < Duration::from_secs(5));
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

/// A module per model, holding its checks.
macro_rules! conformance {
    ($($model:ident => $variant:path),* $(,)?) => {
        $(
            mod $model {
                const MODEL: echo_servers::Model = $variant;
                checks! {
                    basic_echo,
                    work_per_message_comes_before_each_echo,
                    binary_data_16_kib,
                    thousands_of_tiny_writes,
                    sixteen_mib_while_reading_concurrently,
                    half_close_echoes_everything_then_closes,
                    resetting_clients_only_end_their_own_connection,
                    sixty_four_clients_two_hundred_round_trips_each,
                    idle_connections_block_only_where_the_model_says_so,
                    a_thousand_connections_held_open,
                    shutdown_closes_connections_and_joins_every_thread,
                    non_reading_client_keeps_server_memory_bounded,
                    descriptor_exhaustion_is_survived_without_spinning,
                    binary_prints_listening_line_and_exits_0_on_sigterm_with_connections_open,
                }
            }
        )*
    };
}

echo_servers::for_each_model!(conformance);
