//! What the test files share: short runs against a model or an address, deliberately broken
//! servers, and the `echo-bench` binary. Each test file uses part of it.
#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use echo_bench::{Report, RunConfig, Stop, Workload, engine};
use echo_servers::{Model, ServerConfig};

pub fn short(target: impl Into<echo_servers::Endpoint>, workload: Workload) -> RunConfig {
    RunConfig {
        target: target.into(),
        workload,
        connections: 4,
        payload: 100,
        stop: Stop::Duration(Duration::from_millis(400)),
        warmup: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        threads: 2,
        ..RunConfig::default()
    }
}

pub fn run(config: &RunConfig) -> Report {
    config.validate().expect("valid config");
    let outcome = engine::run(config, &mut |_| {}).expect("run");
    Report::new(config, &outcome)
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
