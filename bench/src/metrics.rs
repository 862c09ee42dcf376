//! Live figures of a run in the Prometheus/OpenMetrics text format (`run --metrics-listen
//! ADDR`), so a long soak can be scraped while it goes: counters of messages and errors, and the
//! last closed interval's throughput, percentiles and server CPU and memory. The exposition is
//! `prometheus-client`'s; the HTTP side is the smallest that serves `GET /metrics` on one
//! thread, each request bounded in time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use echo_loadgen::engine::IntervalFigures;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// How long one request may take to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the server looks for a connection, and for its stop.
const ACCEPT_NAP: Duration = Duration::from_millis(20);

/// The figures served, updated as intervals close.
#[derive(Debug)]
pub struct Live {
    registry: Registry,
    messages: Counter,
    errors: Counter,
    intervals: Counter,
    throughput: Gauge<f64, AtomicU64>,
    p50: Gauge<f64, AtomicU64>,
    p99: Gauge<f64, AtomicU64>,
    max: Gauge<f64, AtomicU64>,
    server_cpu: Gauge<f64, AtomicU64>,
    server_rss: Gauge,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    /// The metrics, all zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("echo_bench");
        // The metrics are handles on shared atomics: the registry keeps one clone of each.
        let mut live = Live {
            messages: Counter::default(),
            errors: Counter::default(),
            intervals: Counter::default(),
            throughput: Gauge::default(),
            p50: Gauge::default(),
            p99: Gauge::default(),
            max: Gauge::default(),
            server_cpu: Gauge::default(),
            server_rss: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "messages",
            "Messages echoed and verified in the measured window",
            live.messages.clone(),
        );
        registry.register(
            "errors",
            "Errors of any kind (the first interval includes the warm-up's)",
            live.errors.clone(),
        );
        registry.register("intervals", "Intervals closed", live.intervals.clone());
        registry.register(
            "interval_throughput",
            "Messages per second in the last closed interval",
            live.throughput.clone(),
        );
        registry.register_with_unit(
            "interval_latency_p50",
            "Median latency in the last closed interval",
            Unit::Seconds,
            live.p50.clone(),
        );
        registry.register_with_unit(
            "interval_latency_p99",
            "99th percentile latency in the last closed interval",
            Unit::Seconds,
            live.p99.clone(),
        );
        registry.register_with_unit(
            "interval_latency_max",
            "Largest latency in the last closed interval",
            Unit::Seconds,
            live.max.clone(),
        );
        registry.register(
            "server_cpu_cores",
            "Cores the server used in the last closed interval (when its pid is known)",
            live.server_cpu.clone(),
        );
        registry.register_with_unit(
            "server_rss",
            "The server's resident memory (when its pid is known)",
            Unit::Bytes,
            live.server_rss.clone(),
        );
        live.registry = registry;
        live
    }

    /// Takes in one closed interval.
    pub fn observe(&self, interval: &IntervalFigures) {
        self.messages.inc_by(interval.messages);
        self.errors.inc_by(interval.errors);
        self.intervals.inc();
        self.throughput.set(interval.throughput_rps);
        self.p50.set(interval.p50_us as f64 / 1e6);
        self.p99.set(interval.p99_us as f64 / 1e6);
        self.max.set(interval.max_us as f64 / 1e6);
        if let Some(cores) = interval.server_cpu_cores {
            self.server_cpu.set(cores);
        }
        if let Some(kib) = interval.server_rss_kib {
            self.server_rss
                .set(i64::try_from(kib.saturating_mul(1024)).unwrap_or(i64::MAX));
        }
    }

    /// The exposition, as served.
    pub fn text(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("encoding into a String cannot fail");
        out
    }
}

/// The endpoint serving [`Live`]: stops (and its thread is joined) when dropped.
#[derive(Debug)]
pub struct Exporter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    /// Listens on `addr` and serves `live` at `/metrics` from a thread of its own.
    pub fn serve(addr: SocketAddr, live: Arc<Live>) -> std::io::Result<Exporter> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => answer(stream, &live),
                        Err(_) => std::thread::sleep(ACCEPT_NAP),
                    }
                }
            })?;
        Ok(Exporter {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request: the exposition for `GET /metrics` (or `/`), 404 for another path,
/// 405 for another method. A client that sends nothing in time gets nothing.
fn answer(mut stream: TcpStream, live: &Live) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (status, kind, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics" | "/") => ("200 OK", CONTENT_TYPE, live.text()),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n".into(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_shows_in_the_exposition() {
        let live = Live::new();
        live.observe(&IntervalFigures {
            messages: 120,
            errors: 2,
            throughput_rps: 1200.0,
            p50_us: 150,
            p99_us: 2_500,
            max_us: 9_000,
            server_cpu_cores: Some(0.5),
            server_rss_kib: Some(2048),
            ..IntervalFigures::default()
        });
        let text = live.text();
        for line in [
            "echo_bench_messages_total 120",
            "echo_bench_errors_total 2",
            "echo_bench_interval_throughput 1200.0",
            "echo_bench_interval_latency_p99_seconds 0.0025",
            "echo_bench_server_rss_bytes 2097152",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
