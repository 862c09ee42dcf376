//! The capacity search against a server whose capacity is known: one message at a time with a
//! fixed service time S, so no rate above 1/S can keep any objective; and `echo-bench
//! capacity`'s options, JSON and exit codes.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use echo_bench::capacity::{self, Load, Objective, Plan};

/// The tests of this file that load the machine run one at a time: a second spinning server
/// beside the first would take its core and lower the capacity measured.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The test server's service time.
const SERVICE: Duration = Duration::from_millis(1);
/// Bytes per message.
const PAYLOAD: usize = 64;
/// Cores other tasks may take during the search before its lower bound is not checked.
const QUIET_CORES: f64 = 0.25;
/// How long the test server lives at most.
const LIFETIME: Duration = Duration::from_secs(120);

/// A server that serves one message at a time: one thread, one mio loop over every
/// connection, which for each whole message spins for [`SERVICE`] and then echoes it. Its
/// capacity is at most 1/S; below it a message waits only behind the messages already there.
/// One thread, so a message costs no hand-over between threads (which a busy machine's
/// scheduler would make slow).
fn single_server() -> SocketAddr {
    use mio::net::TcpListener as MioListener;
    use mio::{Events, Interest, Poll, Token};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut listener = MioListener::from_std(listener);
    std::thread::spawn(move || {
        const LISTENER: Token = Token(usize::MAX);
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .unwrap();
        // Each connection: its socket, bytes read but not yet a whole message, bytes to write.
        let mut conns: slab::Slab<(mio::net::TcpStream, Vec<u8>, Vec<u8>)> = slab::Slab::new();
        let mut events = Events::with_capacity(256);
        let deadline = Instant::now() + LIFETIME;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if poll
                .poll(&mut events, Some(Duration::from_millis(100)))
                .is_err()
            {
                continue;
            }
            for event in events.iter() {
                if event.token() == LISTENER {
                    while let Ok((mut stream, _)) = listener.accept() {
                        let _ = stream.set_nodelay(true);
                        let entry = conns.vacant_entry();
                        let token = Token(entry.key());
                        poll.registry()
                            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                            .unwrap();
                        entry.insert((stream, Vec::new(), Vec::new()));
                    }
                    continue;
                }
                let key = event.token().0;
                let Some((stream, pending, out)) = conns.get_mut(key) else {
                    continue;
                };
                let mut closed = false;
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                let whole = pending.len() / PAYLOAD * PAYLOAD;
                for message in pending[..whole].chunks(PAYLOAD) {
                    let spin = Instant::now();
                    while spin.elapsed() < SERVICE {
                        std::hint::spin_loop();
                    }
                    out.extend_from_slice(message);
                    // Echo as it is served, as far as the socket takes it.
                    match stream.write(out) {
                        Ok(n) => {
                            out.drain(..n);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => closed = true,
                    }
                }
                pending.drain(..whole);
                if !out.is_empty()
                    && let Ok(n) = stream.write(out)
                {
                    out.drain(..n);
                }
                if closed {
                    let (mut stream, _, _) = conns.remove(key);
                    let _ = poll.registry().deregister(&mut stream);
                }
            }
        }
    });
    addr
}

/// `echo-bench ARGS`, given at most a minute.
fn cli(args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_echo-bench"));
    command.args(args);
    support::output_within(&mut command, Duration::from_secs(60)).expect("finished within 60 s")
}

fn load(addr: SocketAddr) -> Load {
    Load {
        target: addr.into(),
        connections: 8,
        payload: PAYLOAD,
        warmup: Duration::from_millis(100),
        shortest: Duration::from_millis(250),
        longest: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        threads: 1,
        server_pid: None,
        client_cpus: None,
    }
}

#[test]
fn a_server_of_known_capacity_is_found_below_one_over_s_and_near_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let addr = single_server();
    // The median within 20 S: with deterministic service even Poisson arrivals (M/D/1) keep
    // it there up to about 0.95 of 1/S, and the rate engine's evenly spaced sends (D/D/1) up
    // to 1/S itself; so theory puts the knee within a few hundredths below 1/S, and the test
    // leaves the machine's scheduler a few tenths. A limit of 20 ms also keeps a busy
    // machine's scheduling delays (milliseconds) from deciding.
    let objective: Objective = "p50=20ms".parse().unwrap();
    let plan = Plan {
        start_rps: 250.0,
        min_rps: 100.0,
        max_rps: 16_000.0,
        grid_steps: 5,
        rounds: 3,
        ..Plan::default()
    };
    let began = Instant::now();
    let (machine_before, own_before) = (
        echo_loadgen::procfs::CpuTimes::read(None),
        echo_loadgen::procfs::process_cpu_time(),
    );
    let run = capacity::run(&load(addr), &objective, &plan, &mut |_, _| {}).unwrap();
    // What other tasks took meanwhile (this process holds both the server and the client).
    let other_cores = match (machine_before, echo_loadgen::procfs::CpuTimes::read(None)) {
        (Some(before), Some(after)) => {
            let own = echo_loadgen::procfs::process_cpu_time().saturating_sub(own_before);
            echo_loadgen::procfs::MachineUsage::between(&before, &after, own, began.elapsed())
                .other_cores
        }
        _ => 0.0,
    };
    let Some(found) = run.capacity.capacity_rps else {
        // Every round ended beyond the grid: the knee moved between the ramp and the rounds,
        // which only a machine busy with other work does to this server.
        assert!(
            other_cores > QUIET_CORES,
            "no capacity on a quiet machine: {run:#?}"
        );
        eprintln!(
            "other tasks took {other_cores:.2} cores: no round crossed inside the grid, nothing \
             to check"
        );
        return;
    };
    let one_over_s = 1.0 / SERVICE.as_secs_f64();
    assert!(
        found < one_over_s,
        "{found} msg/s is above 1/S = {one_over_s}: {run:#?}"
    );
    // The lower bound is theory's for a server that runs when it has work: on a machine whose
    // other tasks kept its cores busy (a parallel build beside the tests), the server's thread
    // waits for a core and its real capacity is lower; the test then says so and checks only
    // the upper bound, as the suite flags a trial it could not measure on a quiet machine.
    if other_cores <= QUIET_CORES {
        assert!(
            found > 0.6 * one_over_s,
            "{found} msg/s is more than a few tenths below 1/S = {one_over_s}: {run:#?}"
        );
    } else {
        eprintln!(
            "other tasks took {other_cores:.2} cores during the search: the lower bound \
             ({found:.0} msg/s > 0.6/S) is not checked on a machine this busy"
        );
    }
    let [low, high] = run.capacity.capacity_interval.unwrap();
    assert!(
        low <= found && found <= high,
        "{found} outside [{low}, {high}]: {:?}",
        run.capacity.crossings
    );
    assert_eq!(run.rounds.len(), 3);
    assert!(run.ramp.len() >= 2, "{:?}", run.ramp);
    // Every step was long enough for 100 samples beyond the median at its offered rate (past
    // the knee fewer come back), or as long as allowed. A round's step in which no message
    // completed is a miss with no window (seen once in CI, with other tasks on 1.68 cores);
    // only a busy machine makes one for this server.
    let measured = |step: &&echo_analysis::capacity::Step| {
        step.messages > 0 || {
            assert!(
                other_cores > QUIET_CORES,
                "a step measured nothing on a quiet machine: {step:?}"
            );
            false
        }
    };
    for step in run
        .ramp
        .iter()
        .chain(run.rounds.iter().flatten())
        .filter(measured)
    {
        let planned = step.offered_rps * step.duration_s;
        assert!(
            planned >= 0.99 * objective.messages_needed() as f64 || step.duration_s >= 1.99,
            "a step of {} s at {} msg/s",
            step.duration_s,
            step.offered_rps
        );
    }
    assert!(began.elapsed() < Duration::from_secs(60));
}

#[test]
fn the_command_writes_the_capacity_and_every_step_and_refuses_bad_options() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let addr = single_server();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("capacity.json");
    let target = addr.to_string();
    let args = |objective: &str| {
        vec![
            "capacity",
            "--target",
            &target,
            "--objective",
            objective,
            "-c",
            "4",
            "--start-rate",
            "250",
            "--min-rate",
            "100",
            "--max-rate",
            "4000",
            "--rounds",
            "2",
            "--steps",
            "3",
            "--min-step",
            "200ms",
            "--max-step",
            "1s",
            "--warmup",
            "50ms",
            "--threads",
            "1",
            "--quiet",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<String>>()
    };
    let mut ok = args("p50=20ms");
    ok.extend(["--json".to_owned(), json.display().to_string()]);
    let refs: Vec<&str> = ok.iter().map(String::as_str).collect();
    let out = cli(&refs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("capacity at p50 ≤ 20ms"), "{stdout}");
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(value["tool"], "echo-bench capacity");
    // A figure when a round crossed inside the grid; on a machine busy enough to move the
    // knee between the ramp and the rounds, every round may end beyond the grid instead, and
    // then the file says so with a bound per round and no figure.
    match value["capacity_rps"].as_f64() {
        Some(rps) => {
            let interval = value["capacity_interval"].as_array().unwrap();
            assert_eq!(interval.len(), 2);
            assert!(interval[0].as_f64().unwrap() <= rps && rps <= interval[1].as_f64().unwrap());
        }
        None => {
            let crossings = value["crossings"].as_array().unwrap();
            assert!(
                crossings.iter().all(|c| c.is_null() || c["kind"] != "at"),
                "no figure although a round crossed in the grid: {value}"
            );
            eprintln!("no round crossed inside the grid (a busy machine): {crossings:?}");
        }
    }
    assert!(!value["ramp"].as_array().unwrap().is_empty());
    assert_eq!(value["rounds"].as_array().unwrap().len(), 2);
    assert_eq!(value["steps"].as_array().unwrap().len(), 3);
    // A second run replaces its own report...
    let again = cli(&refs);
    assert!(again.status.success());
    // ...but not a file it did not write.
    let foreign = dir.path().join("notes.json");
    std::fs::write(&foreign, "{\"mine\": true}\n").unwrap();
    let mut refused = args("p50=20ms");
    refused.extend(["--json".to_owned(), foreign.display().to_string()]);
    let refs: Vec<&str> = refused.iter().map(String::as_str).collect();
    let out = cli(&refs);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&foreign).unwrap(),
        "{\"mine\": true}\n"
    );
    for bad in ["p99", "p9=1ms", "p99=0s", "x99=1ms"] {
        let bad_args = args(bad);
        let refs: Vec<&str> = bad_args.iter().map(String::as_str).collect();
        let out = cli(&refs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{bad}: {stderr}");
    }
    let out = cli(&[
        "capacity",
        "--target",
        &target,
        "--objective",
        "p99=1ms",
        "--start-rate",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(2), "a start below the minimum rate");
}

#[test]
fn a_target_that_refuses_fails_with_one_line() {
    // A port just bound and released: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let out = cli(&[
        "capacity",
        "--target",
        &target,
        "--objective",
        "p50=1ms",
        "-c",
        "2",
        "--min-step",
        "100ms",
        "--warmup",
        "0s",
        "--timeout",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no message completed"), "{stderr}");
}
