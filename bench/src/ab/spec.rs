//! What a benchmark is (`[counted:]WORKLOAD/MODEL/CONNECTIONS[/PAYLOAD][@RATE]`), the defaults,
//! and the metrics measured of it.

use super::*;

/// The default threshold for wall-clock metrics, %.
pub const DEFAULT_THRESHOLD_PCT: f64 = 3.0;
/// The default offered rate of a `rate` benchmark without `@RATE`, messages per second.
pub const DEFAULT_RATE: f64 = 5_000.0;
/// The benchmarks compared when none are named:
/// - the two most used async designs at one connection (latency-bound: every microsecond a
///   message costs shows), and connection churn on a work-stealing runtime and on async-std,
///   where, on a 2-core machine with the client on one core, the server sets the pace;
/// - loaded benchmarks that see concurrency, one per model family: open loop at a fixed rate
///   over 256 connections (the mio loop) and 64 (the tokio scheduler, a thread per connection),
///   judged on the server's CPU per message at equal offered load, which a busy client does not
///   distort. The rates keep each duet's two servers about two-thirds busy on one core
///   (measured: the A/A noise floor is then 0.4–1.2%).
pub const DEFAULT_BENCHMARKS: &str = "ping-pong/tokio/1,ping-pong/mio/1,churn/tokio/1,\
     churn/async-std/1,rate/mio/256@30000,rate/tokio/64@25000,rate/thread-per-connection/64@20000";

/// One benchmark: `WORKLOAD/MODEL/CONNECTIONS[/PAYLOAD][@RATE]`, or `counted:` and a
/// ping-pong, churn or stream benchmark for its instructions counted under valgrind
/// ([`counted`](super::counted)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkSpec {
    /// Counted: the server's instructions per message under valgrind, not timed figures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counted: bool,
    /// The traffic pattern.
    pub workload: Workload,
    /// The server: a model, or an outside server named with `--server` (by name in JSON).
    pub model: echo_analysis::server::Server,
    /// Concurrent connections.
    pub connections: usize,
    /// Bytes per message.
    pub payload: usize,
    /// Offered messages per second (rate workload only).
    pub rate: Option<f64>,
}

impl BenchmarkSpec {
    /// Parses `ping-pong/tokio/1`, `rate/mio/64@20000`, `ping-pong/mio/16/4k`; MODEL may name
    /// an outside server of `outside`.
    pub fn parse(text: &str, outside: &echo_analysis::server::Registry) -> Result<Self, String> {
        let bad = |why: &str| format!("benchmark '{text}': {why}");
        let (counted, timed) = match text.strip_prefix(super::counted::PREFIX) {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (path, rate) = match timed.split_once('@') {
            Some((path, rate)) => (
                path,
                Some(
                    rate.parse::<f64>()
                        .ok()
                        .filter(|r| {
                            r.is_finite() && *r > 0.0 && *r <= echo_loadgen::config::MAX_RATE
                        })
                        .ok_or_else(|| {
                            bad("the rate after @ must be a number above 0 and at most 1e9")
                        })?,
                ),
            ),
            None => (timed, None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        if !(3..=4).contains(&parts.len()) {
            return Err(bad("expected WORKLOAD/MODEL/CONNECTIONS[/PAYLOAD][@RATE]"));
        }
        let workload = <Workload as clap::ValueEnum>::from_str(parts[0], true)
            .map_err(|_| bad("workload must be ping-pong, rate, churn or stream"))?;
        let model = match parts[1].parse::<echo_servers::Model>() {
            Ok(model) => echo_analysis::server::Server::Model(model),
            Err(_) => outside.get(parts[1]).cloned().ok_or_else(|| {
                bad(&format!(
                    "valid models: {} (or an outside server named with --server)",
                    echo_servers::Model::names()
                ))
            })?,
        };
        let connections = parts[2]
            .parse::<usize>()
            .ok()
            .filter(|&c| c > 0 && c <= echo_loadgen::config::MAX_CONNECTIONS)
            .ok_or_else(|| bad("connections must be a number from 1 to 1000000"))?;
        let payload = match parts.get(3) {
            Some(p) => echo_loadgen::config::bytes_within(1, echo_loadgen::config::MAX_PAYLOAD)(p)
                .map_err(|e| bad(&e))?,
            None => 64,
        };
        if rate.is_some() && workload != Workload::Rate {
            return Err(bad("@RATE applies to the rate workload only"));
        }
        let rate = match workload {
            Workload::Rate => Some(rate.unwrap_or(DEFAULT_RATE)),
            _ => None,
        };
        if counted {
            super::counted::check(workload, &model, connections).map_err(|why| bad(&why))?;
        }
        Ok(Self {
            counted,
            workload,
            model,
            connections,
            payload,
            rate,
        })
    }

    /// The canonical name, as parsed.
    pub fn name(&self) -> String {
        let prefix = if self.counted {
            super::counted::PREFIX
        } else {
            ""
        };
        let mut name = format!(
            "{prefix}{}/{}/{}",
            self.workload, self.model, self.connections
        );
        if self.payload != 64 {
            name.push_str(&format!("/{}", self.payload));
        }
        if let Some(rate) = self.rate {
            name.push_str(&format!("@{rate}"));
        }
        name
    }

    /// The metric the verdict is made on: throughput for closed loops; for an open loop, whose
    /// throughput is fixed by the offered rate, the server's CPU per message; for a counted
    /// benchmark its instructions per message (per connection for churn).
    pub fn primary(&self) -> Metric {
        match self.workload {
            Workload::Churn if self.counted => Metric::InstructionsPerConnection,
            _ if self.counted => Metric::InstructionsPerMessage,
            Workload::Rate => Metric::ServerCpuPerMessage,
            _ => Metric::Throughput,
        }
    }

    /// The same benchmark counted (`counted: true`), if it can be: ping-pong, churn and stream
    /// of a model, churn and stream on one connection.
    pub fn as_counted(&self) -> Option<Self> {
        super::counted::check(self.workload, &self.model, self.connections).ok()?;
        Some(Self {
            counted: true,
            ..self.clone()
        })
    }
}

/// A figure taken from each trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Messages per second.
    Throughput,
    /// Median latency, µs.
    P50,
    /// 99th-percentile latency, µs.
    P99,
    /// Server CPU time per message, µs.
    ServerCpuPerMessage,
    /// Server context switches per message.
    ContextSwitchesPerMessage,
    /// Server read/write syscalls per message (from /proc/PID/io; absent where it counts none).
    SyscallsPerMessage,
    /// The server's user-space instructions per message, counted under valgrind (counted
    /// benchmarks only).
    InstructionsPerMessage,
    /// The server's user-space instructions per connection opened, echoed once and closed,
    /// counted under valgrind (counted churn only).
    InstructionsPerConnection,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 8] = [
        Metric::Throughput,
        Metric::P50,
        Metric::P99,
        Metric::ServerCpuPerMessage,
        Metric::ContextSwitchesPerMessage,
        Metric::SyscallsPerMessage,
        Metric::InstructionsPerMessage,
        Metric::InstructionsPerConnection,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput",
            Metric::P50 => "p50",
            Metric::P99 => "p99",
            Metric::ServerCpuPerMessage => "server_cpu_per_msg",
            Metric::ContextSwitchesPerMessage => "ctx_switches_per_msg",
            Metric::SyscallsPerMessage => "syscalls_per_msg",
            Metric::InstructionsPerMessage => "instructions_per_msg",
            Metric::InstructionsPerConnection => "instructions_per_conn",
        }
    }

    /// Its unit.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Throughput => "msg/s",
            Metric::P50 | Metric::P99 | Metric::ServerCpuPerMessage => "µs",
            Metric::ContextSwitchesPerMessage | Metric::SyscallsPerMessage => "per msg",
            Metric::InstructionsPerMessage => "instr/msg",
            Metric::InstructionsPerConnection => "instr/conn",
        }
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        self == Metric::Throughput
    }

    /// Whether it is counted under valgrind rather than measured in a timed trial.
    pub fn is_counted(self) -> bool {
        matches!(
            self,
            Metric::InstructionsPerMessage | Metric::InstructionsPerConnection
        )
    }

    /// The value in a trial's report, if it has one (a counted metric never is: its samples
    /// come from [`counted`](super::counted)).
    pub fn of(self, report: &Report) -> Option<f64> {
        let messages = report.messages as f64;
        let per_message = |x: f64| (messages > 0.0).then(|| x / messages);
        let value = match self {
            Metric::Throughput => Some(report.throughput_rps),
            Metric::P50 => Some(report.latency_us.p50 as f64),
            Metric::P99 => Some(report.latency_us.p99 as f64),
            Metric::ServerCpuPerMessage => report
                .server
                .as_ref()
                .and_then(|s| per_message(s.cpu_s * 1e6)),
            Metric::ContextSwitchesPerMessage => report
                .server
                .as_ref()
                .and_then(|s| per_message(s.context_switches as f64)),
            Metric::SyscallsPerMessage => report
                .server
                .as_ref()
                .filter(|s| s.syscalls > 0)
                .and_then(|s| per_message(s.syscalls as f64)),
            Metric::InstructionsPerMessage | Metric::InstructionsPerConnection => None,
        };
        value.filter(|v| v.is_finite() && *v > 0.0)
    }
}
