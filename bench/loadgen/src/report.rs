//! The figures of a run as one serializable [`Report`], and its exporters: the readable summary,
//! JSON, CSV and the raw HDR histogram. The JSON field names are an interface: the suite, the
//! comparison tools and users' scripts read them, so they do not change.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::{RunConfig, RunOptions, Workload};
use crate::engine::{IntervalFigures, MinuteFigures, RunOutcome};
use crate::meta::Meta;
use crate::procfs::{MachineUsage, ServerUsage};
use crate::stats::{DatagramCounts, Errors, StoredHistograms, encode_histogram, jain_index};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// The percentiles of `h` (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// How evenly the connections were served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fairness {
    /// Jain's index over messages per connection: 1.0 perfectly even, 1/n one connection only.
    pub jain: f64,
    /// Fewest messages any connection completed.
    pub min: u64,
    /// Most messages any connection completed.
    pub max: u64,
    /// Mean messages per connection.
    pub mean: f64,
    /// Connections that completed no message in the window (starved).
    pub starved: u64,
}

/// The client's own cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientUsage {
    /// Worker threads (one per connection for the threads engine).
    pub threads: usize,
    /// CPU seconds the whole client process used in the window.
    pub cpu_s: f64,
    /// `cpu_s` over the window: 1.0 is one core busy.
    pub cpu_cores: f64,
    /// `cpu_cores` over the cores the client could use (1.0: all of them busy).
    pub utilisation: f64,
    /// True when the client, not the server, limited the result.
    pub saturated: bool,
}

/// Figures of the `churn` workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Churn {
    /// Connections opened, echoed once and closed, per second.
    pub connections_per_s: f64,
    /// Time to establish a connection.
    pub connect_latency_us: Latency,
    /// True when connects failed because the ephemeral ports ran out.
    pub ports_exhausted: bool,
}

/// Figures of a `tls:` run: its handshakes, and what a new connection waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsFigures {
    /// Handshakes completed in the window.
    pub handshakes: u64,
    /// Of those, the ones that resumed a session with a ticket.
    pub resumed: u64,
    /// Handshakes completed per second in the window.
    pub handshakes_per_s: f64,
    /// From the end of TCP's connect to the end of the handshake.
    pub handshake_latency_us: Latency,
    /// From the start of a connect to the first byte of its first echo.
    pub first_byte_latency_us: Latency,
    /// The server's CPU time per handshake, µs, when its pid was known and the run was churn
    /// (every connection one handshake and one echo).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_per_handshake_us: Option<f64>,
}

/// Figures of the `rate` workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenLoop {
    /// The rate asked for.
    pub offered_rps: f64,
    /// Messages actually sent per second.
    pub sent_rps: f64,
    /// Messages echoed per second.
    pub achieved_rps: f64,
    /// Latency from the actual send time, hiding queueing delay (wrk2's "uncorrected").
    pub latency_uncorrected_us: Latency,
}

/// One run's figures. Warm-up is excluded from every figure but `errors`, which counts the
/// whole run (an error during warm-up is still an error). Missing fields read as defaults, so
/// older or hand-made fixtures still load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Messages echoed per second.
    pub throughput_rps: f64,
    /// Payload MiB echoed per second.
    pub throughput_mib_s: f64,
    /// Latency per message, µs (for `rate`: from the intended send time).
    pub latency_us: Latency,
    /// Errors by kind.
    pub errors: Errors,
    /// Messages per connection.
    pub fairness: Fairness,
    /// The client's own cost.
    pub client: ClientUsage,
    /// The server's cost, when its pid was known.
    pub server: Option<ServerUsage>,
    /// The CPUs' use by every task in the window: how quiet the machine was.
    pub machine: Option<MachineUsage>,
    /// Messages completed in the window.
    pub messages: u64,
    /// Payload bytes echoed and verified in the window.
    pub bytes: u64,
    /// The measured window, seconds.
    pub duration_s: f64,
    /// When the measured window opened: seconds since the Unix epoch (0 in reports made before
    /// it was recorded).
    pub window_start_unix_s: f64,
    /// Churn figures.
    pub churn: Option<Churn>,
    /// Open-loop figures.
    pub open_loop: Option<OpenLoop>,
    /// `tls:` runs: the handshakes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFigures>,
    /// UDP runs: what happened to the datagrams (loss, reordering, duplication, corruption).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<DatagramCounts>,
    /// Things a reader must know to trust the numbers.
    pub warnings: Vec<String>,
    /// The window's figures per interval (100 ms unless `--interval` says otherwise):
    /// throughput, p50, p99, max, errors, the server's CPU and memory (absent in reports
    /// written before they were recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<IntervalFigures>,
    /// Per minute, for runs of two minutes or more: the drift of p99 and the server's memory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub minutes: Vec<MinuteFigures>,
    /// The full latency histograms (absent in reports written before they were stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histograms: Option<StoredHistograms>,
    /// Every option of the run.
    pub config: RunOptions,
    /// Where and with what it ran.
    pub meta: Meta,
}

/// Client utilisation above which the client is taken to be the bottleneck.
const SATURATED: f64 = 0.9;

impl Report {
    /// Builds the report of `outcome`, a run of `config`: every figure and warning, one field
    /// after another.
    pub fn new(config: &RunConfig, outcome: &RunOutcome) -> Self {
        let s = &outcome.stats;
        let window = outcome.window.as_secs_f64();
        let counts: Vec<u64> = s.per_connection.iter().map(|&(_, c)| c).collect();
        let fairness = Fairness {
            jain: jain_index(&counts),
            min: counts.iter().copied().min().unwrap_or(0),
            max: counts.iter().copied().max().unwrap_or(0),
            mean: counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64,
            starved: counts.iter().filter(|&&c| c == 0).count() as u64,
        };
        let usable_cores = config
            .client_cpus
            .as_ref()
            .map_or_else(crate::config::default_threads, Vec::len)
            .min(outcome.client_threads)
            .max(1);
        let cpu_s = outcome.client_cpu.as_secs_f64();
        let cpu_cores = cpu_s / window;
        let utilisation = cpu_cores / usable_cores as f64;
        // A single event-loop worker pegged at 100% limits the run even when others idle.
        let busiest_worker = match config.engine {
            crate::Engine::EventLoop => s.busiest_cpu.as_secs_f64() / window,
            crate::Engine::Threads => 0.0,
        };
        let saturated = utilisation >= SATURATED || busiest_worker >= SATURATED;
        let mut warnings = Vec::new();
        if saturated {
            warnings.push(format!(
                "client saturated: it used {cpu_cores:.2} of {usable_cores} core(s) it could use; \
                 these numbers measure the client as much as the server"
            ));
        }
        if s.ports_exhausted {
            warnings.push(
                "ephemeral ports exhausted: connects failed with EADDRNOTAVAIL (TIME_WAIT); \
                 churn was limited by the client's ports, not the server"
                    .to_owned(),
            );
        }
        if outcome.intervals_not_kept > 0 {
            warnings.push(format!(
                "{} interval(s) past the first {} were not kept in the report (a longer \
                 --interval keeps a longer run whole); the per-minute figures cover the whole run",
                outcome.intervals_not_kept,
                crate::engine::intervals::MAX_KEPT
            ));
        }
        if fairness.starved > 0 {
            warnings.push(format!(
                "{} of {} connections completed no message in the window (starved)",
                fairness.starved,
                counts.len()
            ));
        }
        let churn = (config.workload == Workload::Churn).then(|| Churn {
            connections_per_s: s.connections_closed as f64 / window,
            connect_latency_us: Latency::of(&s.connect_latency),
            ports_exhausted: s.ports_exhausted,
        });
        let open_loop = (config.workload == Workload::Rate).then(|| OpenLoop {
            offered_rps: config.rate.unwrap_or(0.0),
            sent_rps: s.sent as f64 / (window + config.warmup.as_secs_f64()),
            achieved_rps: s.messages as f64 / window,
            latency_uncorrected_us: Latency::of(&s.latency_uncorrected),
        });
        let server = outcome.server;
        let tls = (config.target.transport() == echo_cli::Transport::Tls).then(|| TlsFigures {
            handshakes: s.handshakes,
            resumed: s.resumed,
            handshakes_per_s: s.handshakes as f64 / window,
            handshake_latency_us: Latency::of(&s.handshake_latency),
            first_byte_latency_us: Latency::of(&s.first_byte_latency),
            server_cpu_per_handshake_us: server
                .as_ref()
                .filter(|_| config.workload == Workload::Churn && s.handshakes > 0)
                .map(|u| u.cpu_s * 1e6 / s.handshakes as f64),
        });
        Report {
            throughput_rps: s.messages as f64 / window,
            throughput_mib_s: s.bytes as f64 / window / (1024.0 * 1024.0),
            latency_us: Latency::of(&s.latency),
            errors: s.errors,
            fairness,
            client: ClientUsage {
                threads: outcome.client_threads,
                cpu_s,
                cpu_cores,
                utilisation,
                saturated,
            },
            server: outcome.server,
            machine: outcome.machine,
            messages: s.messages,
            bytes: s.bytes,
            duration_s: window,
            window_start_unix_s: outcome
                .window_start
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            churn,
            open_loop,
            tls,
            datagrams: config.is_datagram().then_some(s.datagrams),
            warnings,
            histograms: Some(StoredHistograms {
                latency: encode_histogram(&s.latency),
                latency_uncorrected: (config.workload == Workload::Rate)
                    .then(|| encode_histogram(&s.latency_uncorrected)),
            }),
            intervals: outcome.intervals.clone(),
            minutes: if outcome.minutes.len() > 1 {
                outcome.minutes.clone()
            } else {
                Vec::new()
            },
            config: config.options().clone(),
            meta: Meta::current(),
        }
    }

    /// Whether the run saw no error of any kind. For a UDP run, loss is not an error (it is the
    /// transport's nature, and reported as loss); corruption and duplication are.
    pub fn is_clean(&self) -> bool {
        self.errors.total() == 0
            && self
                .datagrams
                .is_none_or(|d| d.corrupted == 0 && d.duplicated == 0)
    }

    /// The readable summary printed on stdout, line by line from top to bottom (long as the
    /// summary is).
    pub fn summary(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!(
            "target {}  workload {}  connections {}  payload {} B{}  threads {}  engine {:?}",
            c.target,
            c.workload,
            c.connections,
            c.payload,
            if c.pipeline > 1 {
                format!("  pipeline {}", c.pipeline)
            } else {
                String::new()
            },
            self.client.threads,
            c.engine
        ));
        line(format!(
            "measured {:.2} s after {:.2} s warm-up",
            self.duration_s,
            c.warmup.as_secs_f64()
        ));
        line(String::new());
        line(format!(
            "throughput   {:>12.0} msg/s   {:>9.2} MiB/s   ({} messages)",
            self.throughput_rps, self.throughput_mib_s, self.messages
        ));
        let l = &self.latency_us;
        line(format!(
            "latency µs   p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  mean {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.p9999, l.max, l.mean
        ));
        if let Some(o) = &self.open_loop {
            let u = &o.latency_uncorrected_us;
            line(format!(
                "uncorrected  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (from actual send; hides queueing)",
                u.p50, u.p90, u.p99, u.p999, u.max
            ));
            line(format!(
                "rate         offered {:.0}/s  sent {:.0}/s  achieved {:.0}/s",
                o.offered_rps, o.sent_rps, o.achieved_rps
            ));
        }
        if let Some(ch) = &self.churn {
            let l = &ch.connect_latency_us;
            line(format!(
                "churn        {:.0} connections/s   connect µs p50 {}  p99 {}  max {}",
                ch.connections_per_s, l.p50, l.p99, l.max
            ));
        }
        // Connections opened before the window (ping-pong, stream, rate) shake hands unmeasured.
        if let Some(t) = self.tls.as_ref().filter(|t| t.handshakes > 0) {
            let (h, f) = (&t.handshake_latency_us, &t.first_byte_latency_us);
            line(format!(
                "tls          {} handshakes ({} resumed), {:.0}/s   handshake µs p50 {}  p99 {}  \
                 first byte µs p50 {}  p99 {}{}",
                t.handshakes,
                t.resumed,
                t.handshakes_per_s,
                h.p50,
                h.p99,
                f.p50,
                f.p99,
                t.server_cpu_per_handshake_us
                    .map_or_else(String::new, |c| format!(
                        "   server {c:.0} µs CPU/handshake"
                    ))
            ));
        }
        if let Some(d) = &self.datagrams {
            line(format!(
                "datagrams    sent {}  returned {}  lost {} ({:.2}%)  late {}  reordered {}  duplicated {}  corrupted {}",
                d.sent,
                d.returned,
                d.lost,
                d.loss_percent(),
                d.late,
                d.reordered,
                d.duplicated,
                d.corrupted
            ));
        }
        let e = &self.errors;
        line(format!(
            "errors       connect {}  refused {}  reset {}  eof {}  timeout {}  stalled {}  mismatch {}",
            e.connect, e.refused, e.reset, e.eof, e.timeout, e.stalled, e.mismatch
        ));
        let f = &self.fairness;
        line(format!(
            "fairness     Jain {:.3}  per-connection min {}  mean {:.1}  max {}  starved {}",
            f.jain, f.min, f.mean, f.max, f.starved
        ));
        line(format!(
            "client       {:.2} CPU-s = {:.2} cores ({:.0}% of usable){}",
            self.client.cpu_s,
            self.client.cpu_cores,
            self.client.utilisation * 100.0,
            if self.client.saturated {
                "  SATURATED"
            } else {
                ""
            }
        ));
        if let Some(s) = &self.server {
            // Socket send/recv are not counted in /proc/PID/io's syscr/syscw, so the count is
            // shown only when it says something.
            let syscalls = if s.syscalls > 0 {
                format!("  read/write syscalls {}", s.syscalls)
            } else {
                String::new()
            };
            line(format!(
                "server       pid {}  {:.2} CPU-s = {:.2} cores  peak RSS {:.1} MiB  threads {}  ctx switches {}{syscalls}",
                s.pid,
                s.cpu_s,
                s.cpu_cores,
                s.peak_rss_kib as f64 / 1024.0,
                s.threads,
                s.context_switches,
            ));
        }
        for m in &self.minutes {
            line(format!(
                "minute {:>3}   {:>10} messages  p99 {} µs  errors {}{}",
                m.minute,
                m.messages,
                m.p99_us,
                m.errors,
                m.server_rss_kib.map_or_else(String::new, |kib| format!(
                    "  server RSS {:.1} MiB",
                    kib as f64 / 1024.0
                ))
            ));
        }
        for w in &self.warnings {
            line(format!("warning: {w}"));
        }
        out
    }

    /// The CSV header matching [`Report::csv_row`].
    pub const CSV_HEADER: &'static str = "workload,connections,payload,pipeline,duration_s,throughput_rps,throughput_mib_s,p50_us,p90_us,p99_us,p999_us,p9999_us,max_us,mean_us,errors_connect,errors_refused,errors_reset,errors_eof,errors_timeout,errors_mismatch,fairness_jain,client_cpu_cores,client_saturated,server_cpu_cores,server_peak_rss_kib,errors_stalled";

    /// One CSV row of the headline figures.
    pub fn csv_row(&self) -> String {
        let l = &self.latency_us;
        let e = &self.errors;
        let server_cpu = self
            .server
            .map_or(String::new(), |s| format!("{:.3}", s.cpu_cores));
        let server_rss = self
            .server
            .map_or(String::new(), |s| s.peak_rss_kib.to_string());
        format!(
            "{},{},{},{},{:.3},{:.1},{:.3},{},{},{},{},{},{},{:.1},{},{},{},{},{},{},{:.4},{:.3},{},{},{},{}",
            self.config.workload,
            self.config.connections,
            self.config.payload,
            self.config.pipeline,
            self.duration_s,
            self.throughput_rps,
            self.throughput_mib_s,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.p9999,
            l.max,
            l.mean,
            e.connect,
            e.refused,
            e.reset,
            e.eof,
            e.timeout,
            e.mismatch,
            self.fairness.jain,
            self.client.cpu_cores,
            self.client.saturated,
            server_cpu,
            server_rss,
            e.stalled
        )
    }
}
