//! `echo-bench run`: one load against one address, the readable summary on stdout, and the
//! optional JSON, CSV and HDR exports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use echo_bench::{Engine, Report, RunConfig, RunOptions, Stop, Workload};
use echo_cli::{EXIT_FAILURE, Endpoint, exit_code, usage_exit};
use echo_loadgen::config::{
    MAX_CONNECTIONS, MAX_DURATION, MAX_PAYLOAD, MAX_PIPELINE, MAX_RATE, MAX_REQUESTS, MAX_THREADS,
    MAX_WAIT, bytes_within, count_within, duration_within, parse_cpu_list, positive_at_most,
};
use echo_loadgen::engine::{self, Progress};
use echo_loadgen::export::{self, Exports, RunResult};
use indicatif::{ProgressBar, ProgressStyle};

/// Options of `echo-bench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The echo server: HOST:PORT, [V6]:PORT, unix:PATH, udp:HOST:PORT or tls:HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    target: Endpoint,
    /// How a tls: target is spoken.
    #[command(flatten)]
    tls: super::TlsArgs,
    /// Traffic pattern.
    #[arg(long, value_enum, default_value = "ping-pong")]
    workload: Workload,
    /// Concurrent connections (churn: concurrent connect-echo-close loops), 1 to 1000000.
    #[arg(long, short = 'c', default_value_t = 16, value_parser = count_within(1, MAX_CONNECTIONS as u64))]
    connections: usize,
    /// Bytes per message (64, 4k, 1MiB), 1 to 64MiB.
    #[arg(long, value_name = "BYTES", default_value = "64", value_parser = bytes_within(1, MAX_PAYLOAD))]
    payload: usize,
    /// Messages in flight per connection (ping-pong), 1 to 4096.
    #[arg(long, default_value_t = 1, value_parser = count_within(1, MAX_PIPELINE as u64))]
    pipeline: usize,
    /// Total messages per second (rate workload), above 0 and at most 1e9.
    #[arg(long, value_name = "MSGS_PER_S", value_parser = positive_at_most(MAX_RATE))]
    rate: Option<f64>,
    /// How long to measure (10, 10s, 500ms), 1ms to 7 days [default: 5s, unless --requests is
    /// given].
    #[arg(long, short = 'd', value_name = "D", value_parser = duration_within(Duration::from_millis(1), MAX_DURATION), conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Stop after this many messages instead of after a duration, 1 to 10^12.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_REQUESTS))]
    requests: Option<u64>,
    /// Traffic before measuring, excluded from every figure, 0 to 1h.
    #[arg(long, value_name = "D", default_value = "1s", value_parser = duration_within(Duration::ZERO, MAX_WAIT))]
    warmup: Duration,
    /// How long one message or connect may take before it counts as a timeout, 1ms to 1h.
    #[arg(long, value_name = "D", default_value = "5s", value_parser = duration_within(Duration::from_millis(1), MAX_WAIT))]
    timeout: Duration,
    /// Open connections at this many per second, above 0 and at most 1e9 (default: all at
    /// once).
    #[arg(long, value_name = "PER_S", value_parser = positive_at_most(MAX_RATE))]
    connect_rate: Option<f64>,
    /// Client worker threads, 1 to 1024 (default: one per core).
    #[arg(long, value_parser = count_within(1, MAX_THREADS as u64))]
    threads: Option<usize>,
    /// Client engine: the event loop, or the naive thread-per-connection yardstick.
    #[arg(long, value_enum, default_value = "event-loop")]
    engine: Engine,
    /// Seed of the verification byte streams.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// The server's pid, to report its CPU, memory, threads and context switches (1 to
    /// 4194304, Linux's highest pid).
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..=MAX_PID))]
    server_pid: Option<u32>,
    /// Pin the client to these CPUs (0, 0-1, 0,2).
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    client_cpus: Option<CpuList>,
    /// Write the report as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write a CSV header and one row here.
    #[arg(long, value_name = "PATH")]
    csv: Option<PathBuf>,
    /// Write the latency histogram (HdrHistogram V2, µs) here.
    #[arg(long, value_name = "PATH")]
    hdr: Option<PathBuf>,
    /// Start at this wall-clock time (Unix seconds, fractions allowed; from now to a day
    /// ahead), so that agents on several machines open their measured windows together (see
    /// `echo-bench merge`).
    #[arg(long, value_name = "UNIX_TIME", conflicts_with = "start_in")]
    start_at: Option<f64>,
    /// Start after this long (10s, 500ms), 0 to 24h: `--start-at` relative to now.
    #[arg(long, value_name = "D", value_parser = duration_within(Duration::ZERO, MAX_START_WAIT))]
    start_in: Option<Duration>,
    /// Print a line per interval of this length while the run goes (1s, 500ms), 10ms to 1h;
    /// the report records intervals of this length [default: 100ms, not printed].
    #[arg(long, value_name = "D", value_parser = duration_within(MIN_INTERVAL, MAX_WAIT))]
    interval: Option<Duration>,
    /// Write each interval's latency histogram here as an HdrHistogram interval log.
    #[arg(long, value_name = "PATH")]
    hlog: Option<PathBuf>,
    /// Draw the latency over time (p50, p99, max per interval) here as SVG.
    #[arg(long, value_name = "PATH")]
    timeline: Option<PathBuf>,
    /// Serve the live figures at http://ADDR/metrics in the OpenMetrics text format while the
    /// run goes (updated as each interval closes).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// No summary on stdout (errors still go to stderr).
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// The shortest `--interval`.
const MIN_INTERVAL: Duration = echo_loadgen::engine::intervals::MIN_WIDTH;

/// One interval as the line `--interval` prints, as wrk2 and tcpkali print theirs.
pub fn interval_line(i: &echo_loadgen::engine::IntervalFigures) -> String {
    let server = i
        .server_cpu_cores
        .map_or_else(String::new, |c| format!("  server {c:.2} cores"));
    format!(
        "{:>8.1} s  {:>10.0} msg/s  p50 {:>6} µs  p99 {:>7} µs  max {:>7} µs  errors {}{server}",
        i.start_s + i.duration_s,
        i.throughput_rps,
        i.p50_us,
        i.p99_us,
        i.max_us,
        i.errors
    )
}

/// The highest pid Linux gives (`PID_MAX_LIMIT`).
pub const MAX_PID: i64 = 4_194_304;

/// The longest a run may be asked to wait for its start.
const MAX_START_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Waits until `--start-at` (or `--start-in`); a start in the past or more than a day ahead is
/// a usage error.
fn wait_for_start(args: &RunArgs) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let wait = match (args.start_at, args.start_in) {
        (Some(at), _) => {
            if !at.is_finite() || at < now - 1.0 {
                usage_exit(
                    "echo-bench",
                    &format!("error: --start-at {at} is {:.1} s in the past", now - at),
                );
            }
            Duration::from_secs_f64((at - now).max(0.0))
        }
        (None, Some(d)) => d,
        (None, None) => return,
    };
    if wait > MAX_START_WAIT {
        usage_exit(
            "echo-bench",
            &format!(
                "error: the start is {} s away (at most a day)",
                wait.as_secs()
            ),
        );
    }
    std::thread::sleep(wait);
}

/// A parsed `--client-cpus` list (a newtype, so clap takes it as one value).
#[derive(Debug, Clone)]
pub struct CpuList(pub Vec<usize>);

/// Parses a CPU list argument.
pub fn parse_cpus(text: &str) -> Result<CpuList, String> {
    parse_cpu_list(text).map(CpuList)
}

impl RunArgs {
    fn options(&self) -> RunOptions {
        let stop = match (self.requests, self.duration) {
            (Some(n), _) => Stop::Requests(n),
            (None, Some(d)) => Stop::Duration(d),
            (None, None) => Stop::Duration(Duration::from_secs(5)),
        };
        RunOptions {
            target: self.target.clone(),
            workload: self.workload,
            connections: self.connections,
            payload: self.payload,
            pipeline: self.pipeline,
            rate: self.rate,
            stop,
            warmup: self.warmup,
            timeout: self.timeout,
            connect_rate: self.connect_rate,
            threads: self
                .threads
                .unwrap_or_else(echo_loadgen::config::default_threads),
            engine: self.engine,
            seed: self.seed,
            server_pid: self.server_pid,
            client_cpus: self.client_cpus.as_ref().map(|c| c.0.clone()),
            tls: self.tls.options(),
        }
    }
}

/// A progress bar on a terminal; invisible otherwise.
pub fn progress_bar(config: &RunConfig) -> (ProgressBar, impl FnMut(Progress)) {
    let bar = match config.stop {
        Stop::Duration(d) => ProgressBar::new(d.as_millis() as u64),
        Stop::Requests(n) => ProgressBar::new(n),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:>12} [{bar:30}] {percent:>3}%")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let stop = config.stop;
    let updater = {
        let bar = bar.clone();
        move |p: Progress| {
            if p.warming_up {
                bar.set_message("warming up");
                bar.tick();
                return;
            }
            bar.set_message(format!("{} msgs", p.messages));
            bar.set_position(match stop {
                Stop::Duration(_) => p.elapsed.as_millis() as u64,
                Stop::Requests(_) => p.messages,
            });
        }
    };
    (bar, updater)
}

/// One line instead of a report of zeros, when no connection got as far as an echo: every
/// connect refused or failed, or the server closed every connection at once.
fn nothing_measured(report: &Report) -> Option<String> {
    let e = &report.errors;
    let connections = report.config.connections as u64;
    if report.messages > 0 {
        return None;
    }
    if e.refused >= connections && e.connect == 0 {
        return Some(format!("connection refused by {}", report.config.target));
    }
    if e.refused + e.connect >= connections {
        return Some(format!(
            "could not connect to {} ({} refused, {} failed)",
            report.config.target, e.refused, e.connect
        ));
    }
    if e.eof + e.reset >= connections {
        return Some(format!(
            "{} closed every connection at once ({} closed, {} reset)",
            report.config.target, e.eof, e.reset
        ));
    }
    None
}

/// The file formats asked for, each with its path.
fn exports<'a>(args: &RunArgs) -> Exports<'static, RunResult<'a>> {
    let mut exports = Exports::default();
    exports.add(export::Json, args.json.as_deref());
    exports.add(export::Csv, args.csv.as_deref());
    exports.add(export::Hdr, args.hdr.as_deref());
    exports
}

/// Runs the command; returns the process exit code.
pub fn main(args: RunArgs) -> ExitCode {
    let config = RunConfig::new(args.options())
        .unwrap_or_else(|reason| usage_exit("echo-bench", &format!("error: {reason}")));
    // What would only fail once the run is under way is checked first.
    let allowed = echo_loadgen::procfs::allowed_cpus();
    if let Some(cpu) = config
        .client_cpus
        .iter()
        .flatten()
        .find(|cpu| !allowed.contains(cpu))
    {
        usage_exit(
            "echo-bench",
            &format!("error: --client-cpus: CPU {cpu} is not available (have {allowed:?})"),
        );
    }
    if let Some(pid) = config.server_pid
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    {
        usage_exit(
            "echo-bench",
            &format!("error: --server-pid: no process {pid}"),
        );
    }
    if let Err(why) = exports(&args).check_writable() {
        usage_exit("echo-bench", &format!("error: {why}"));
    }
    for (option, path) in [("--hlog", &args.hlog), ("--timeline", &args.timeline)] {
        if let Some(path) = path
            && let Err(why) = echo_loadgen::files::check_writable(path)
        {
            usage_exit("echo-bench", &format!("error: {option}: {why}"));
        }
    }
    let live = std::sync::Arc::new(echo_bench::metrics::Live::new());
    let _exporter = match args.metrics_listen {
        Some(addr) => match echo_bench::metrics::Exporter::serve(addr, live.clone()) {
            Ok(exporter) => {
                eprintln!("echo-bench: metrics at http://{}/metrics", exporter.addr());
                Some(exporter)
            }
            Err(e) => usage_exit(
                "echo-bench",
                &format!("error: --metrics-listen {addr}: {e}"),
            ),
        },
        None => None,
    };
    wait_for_start(&args);
    let (bar, mut on_progress) = progress_bar(&config);
    let print_intervals = args.interval.is_some() && !args.quiet;
    let mut on_interval = |i: &echo_loadgen::engine::IntervalFigures| {
        live.observe(i);
        if print_intervals {
            // A hidden bar (stdout not a terminal) prints nothing through `println`.
            if bar.is_hidden() {
                println!("{}", interval_line(i));
            } else {
                bar.println(interval_line(i));
            }
        }
    };
    let observe = engine::Observe {
        width: args.interval.unwrap_or(engine::intervals::DEFAULT_WIDTH),
        histograms: args.hlog.is_some(),
        on_interval: &mut on_interval,
    };
    let outcome = match engine::run_observed(&config, &mut on_progress, observe) {
        Ok(outcome) => outcome,
        Err(err) => {
            bar.finish_and_clear();
            eprintln!("echo-bench: run failed: {err}");
            return exit_code(EXIT_FAILURE);
        }
    };
    bar.finish_and_clear();
    let report = Report::new(&config, &outcome);
    let nothing = nothing_measured(&report);
    if let Some(line) = &nothing {
        // One clear line instead of a report of zeros; the files asked for are still written.
        eprintln!("echo-bench: {line}");
    } else if !args.quiet {
        print!("{}", report.summary());
    } else if !report.is_clean() {
        // Quiet, but never about errors: their line still prints.
        for line in report.summary().lines().filter(|l| l.starts_with("errors")) {
            println!("{line}");
        }
    }
    let written = exports(&args).write(&RunResult {
        report: &report,
        latency: &outcome.stats.latency,
    });
    let mut write_failed = written.is_err();
    for line in written.err().unwrap_or_default() {
        eprintln!("echo-bench: {line}");
    }
    if let Some(path) = &args.timeline {
        let title = format!(
            "latency over time: {} {} at {}",
            config.workload,
            config
                .rate
                .map_or_else(String::new, |r| format!("{r:.0} msg/s")),
            config.target
        );
        if let Err(e) = echo_bench::render::charts::draw_timeline(path, &title, &outcome.intervals)
        {
            eprintln!("echo-bench: cannot write {}: {e}", path.display());
            write_failed = true;
        }
    }
    if let Some(path) = &args.hlog {
        let log = engine::intervals::interval_log(&outcome.intervals, report.window_start_unix_s);
        if let Err(e) = echo_loadgen::files::write(path, log) {
            eprintln!("echo-bench: cannot write {}: {e}", path.display());
            write_failed = true;
        }
    }
    if nothing.is_some() {
        return exit_code(EXIT_FAILURE);
    }
    if !report.is_clean() {
        let stalled = match report.errors.stalled {
            0 => String::new(),
            n => format!(" ({n} connection(s) stalled: the server stopped answering them)"),
        };
        eprintln!(
            "echo-bench: the run saw {} error(s){stalled}; see the errors line",
            report.errors.total()
        );
        return exit_code(EXIT_FAILURE);
    }
    if report.messages == 0 {
        eprintln!("echo-bench: no message completed in the measured window");
        return exit_code(EXIT_FAILURE);
    }
    if write_failed {
        return exit_code(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}
