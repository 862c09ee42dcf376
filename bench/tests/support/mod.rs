//! What the test files share: short runs against a model or an address, deliberately broken
//! servers, and the `echo-bench` binary. Each test file uses part of it.
#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use echo_bench::{Report, RunConfig, RunOptions, Stop, Workload};
use echo_loadgen::engine;
use echo_servers::{Model, ServerConfig};

pub fn short(target: impl Into<echo_servers::Endpoint>, workload: Workload) -> RunOptions {
    RunOptions {
        target: target.into(),
        workload,
        connections: 4,
        payload: 100,
        stop: Stop::Duration(Duration::from_millis(400)),
        warmup: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        threads: 2,
        ..RunOptions::default()
    }
}

pub fn run(options: &RunOptions) -> Report {
    let config = RunConfig::new(options.clone()).expect("valid config");
    let outcome = engine::run(&config, &mut |_| {}).expect("run");
    Report::new(&config, &outcome)
}

pub fn start(model: Model) -> echo_servers::ServerHandle {
    model
        .server()
        .start(&ServerConfig::ephemeral())
        .expect("start server")
}

/// A server whose per-connection behaviour is `serve`, one thread per connection.
pub struct Faulty {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Faulty {
    pub fn start(serve: fn(TcpStream)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
                        std::thread::spawn(move || serve(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Faulty { addr, stop }
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Echoes, but flips one bit of the 1000th byte.
pub fn corrupting(mut stream: TcpStream) {
    let mut buf = [0; 4096];
    let mut total = 0usize;
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            return;
        }
        if (total..total + n).contains(&1000) {
            buf[1000 - total] ^= 0x10;
        }
        total += n;
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Echoes 2000 bytes, then drops the connection.
pub fn dropping(mut stream: TcpStream) {
    let mut buf = [0; 4096];
    let mut total = 0usize;
    while let Ok(n) = stream.read(&mut buf) {
        let n = n.min(2000 - total);
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            return;
        }
        total += n;
        if total >= 2000 {
            return;
        }
    }
}

/// Echoes 2000 bytes, then keeps reading but never answers again.
pub fn stalling(mut stream: TcpStream) {
    let mut buf = [0; 4096];
    let mut total = 0usize;
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            return;
        }
        let echo = n.min(2000usize.saturating_sub(total));
        total += n;
        if echo > 0 && stream.write_all(&buf[..echo]).is_err() {
            return;
        }
    }
}

pub fn echo_bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_echo-bench"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run echo-bench")
}

/// Runs `command` (stdin closed, stdout and stderr captured) and waits at most `limit`: its
/// output, or `None` (it is then killed) when it took longer.
pub fn output_within(command: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read on threads, so a full pipe never stalls the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let Some(status) = echo_loadgen::child::wait_until(&mut child, Instant::now() + limit).unwrap()
    else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    Some(Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    })
}

/// A string unique to this test run, to mark (in their environment) the processes it starts.
pub fn marker(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

/// The environment variable that carries a [`marker`].
pub const MARK: &str = "ECHO_BENCH_TEST_MARK";

/// The live processes (not zombies: this machine's pid 1 may never reap the orphans) whose
/// environment holds `MARK=marker`, read from /proc.
pub fn live_marked(marker: &str) -> Vec<u32> {
    let needle = format!("{MARK}={marker}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !environ.split(|&b| b == 0).any(|v| v == needle.as_bytes()) {
            continue;
        }
        let state = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')')?.1.trim().chars().next())
            .unwrap_or('Z');
        if state != 'Z' && state != 'X' {
            found.push(pid);
        }
    }
    found
}

/// Waits up to `limit` until no live process holds `marker`; those left.
pub fn none_left(marker: &str, limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left = live_marked(marker);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The children of `pid` (from /proc/*/stat), live ones only.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == pid && state != "Z" {
            found.push(child);
        }
    }
    found
}

/// Kills every live process holding `marker` (a test's cleanup after a failure).
pub fn kill_marked(marker: &str) {
    for pid in live_marked(marker) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}
