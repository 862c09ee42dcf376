//! `echo-bench ab`: the options, the progress line, and the outputs of a paired comparison.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use echo_bench::ab::{self, AbOptions, AbReport, BenchmarkSpec, Build, export};
use echo_cli::{EXIT_FAILURE, EXIT_SUCCESS, EXIT_USAGE, exit_code, usage_exit};
use echo_loadgen::config::{MAX_WAIT, duration_within};
use echo_loadgen::export::Exports;
use indicatif::{ProgressBar, ProgressStyle};

use super::PinArgs;

/// Options of `echo-bench ab`.
#[derive(Debug, Args)]
pub struct AbArgs {
    /// The reference build: an echo-bench binary.
    #[arg(long, value_name = "BIN")]
    base: PathBuf,
    /// The build under test: an echo-bench binary (the same as --base for an A/A calibration).
    #[arg(long, value_name = "BIN")]
    head: PathBuf,
    /// Benchmarks, comma-separated WORKLOAD/MODEL/CONNECTIONS[/PAYLOAD][@RATE] (CONNECTIONS 1 to
    /// 1000000, PAYLOAD 1 to 64MiB, RATE above 0 and at most 1e9), at most 100; MODEL may be
    /// an outside server's NAME [default: the defaults, plus ping-pong/NAME/1 for each
    /// --server].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    benchmarks: Option<Vec<String>>,
    /// An outside server to benchmark with both builds' load generators, started by a command
    /// in which `{addr}` is a free loopback address: NAME=CMD, repeatable. Both sides run the
    /// same server, so a change shows the load generator's effect on it.
    #[arg(long = "server", value_name = "NAME=CMD", value_parser = echo_bench::suite::Server::parse_outside)]
    servers: Vec<echo_bench::suite::Server>,
    /// Pairs of trials per benchmark, 2 to 1000.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pairs: u32,
    /// Smallest change worth flagging, %, from 0 up to (not including) 100 (raised to a
    /// benchmark's calibrated noise floor).
    #[arg(long, value_name = "PCT", default_value_t = ab::DEFAULT_THRESHOLD_PCT, value_parser = parse_pct)]
    threshold: f64,
    /// Measured time per trial, 50ms to 1h.
    #[arg(long, value_name = "D", default_value = "500ms", value_parser = duration_within(Duration::from_millis(50), MAX_WAIT))]
    trial: Duration,
    /// Warm-up per trial, 0 to 1h.
    #[arg(long, value_name = "D", default_value = "200ms", value_parser = duration_within(Duration::ZERO, MAX_WAIT))]
    warmup: Duration,
    /// A previous A/A run's --json: each benchmark's threshold is at least its noise floor.
    #[arg(long, value_name = "PATH")]
    calibration: Option<PathBuf>,
    /// Seed of the ABBA/BAAB order and the bootstrap (default: from the clock; recorded).
    #[arg(long)]
    seed: Option<u64>,
    /// Report a regression without re-running the flagged benchmarks to confirm it.
    #[arg(long)]
    no_confirm: bool,
    /// Run each pair's trials one after the other instead of at the same time (a duet). Far
    /// noisier on a shared machine; for when the two must not compete for the CPUs.
    #[arg(long)]
    sequential: bool,
    /// Fail (exit 1) on inconclusive benchmarks too.
    #[arg(long)]
    strict: bool,
    /// An extra argument for the base build's servers (repeatable).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    base_server_arg: Vec<String>,
    /// An extra argument for the head build's servers (repeatable), e.g. --head-server-arg=--handicap-ns=2000.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    head_server_arg: Vec<String>,
    /// What to compare: `time` (the timed benchmarks), `instructions` (each server's
    /// instructions per message counted under valgrind: the `counted:` benchmarks, or each
    /// named benchmark counted) or `both`. Where valgrind is missing, `both` skips the counted
    /// benchmarks with one line and `instructions` is an error.
    #[arg(long, value_enum, default_value_t = MetricChoice::Time)]
    metric: MetricChoice,
    /// Messages of a counted sample's window (read while the server runs, an empty window's
    /// count taken off; churn opens a tenth as many connections), 10 to 1000000.
    #[arg(long, value_name = "N", default_value_t = ab::counted::DEFAULT_MESSAGES,
          value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
    count_messages: u64,
    /// Pairs per counted benchmark, 2 to 1000.
    #[arg(long, value_name = "N", default_value_t = ab::counted::DEFAULT_PAIRS as u32,
          value_parser = clap::value_parser!(u32).range(2..=1000))]
    count_pairs: u32,
    /// The counted benchmarks' threshold, %, from 0 up to (not including) 100 (raised to a
    /// benchmark's calibrated noise floor).
    #[arg(long, value_name = "PCT", default_value_t = ab::counted::DEFAULT_THRESHOLD_PCT, value_parser = parse_pct)]
    count_threshold: f64,
    /// The valgrind program for counted benchmarks [default: valgrind on the PATH].
    #[arg(long, value_name = "PATH")]
    valgrind: Option<PathBuf>,
    #[command(flatten)]
    pin: PinArgs,
    /// Write the whole report (every sample, pair, interval, both builds) as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write a Markdown summary (for a pull-request comment) here.
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    /// Write Bencher Metric Format JSON here.
    #[arg(long, value_name = "PATH")]
    bmf: Option<PathBuf>,
    /// Write github-action-benchmark custom JSON (customSmallerIsBetter) here.
    #[arg(long, value_name = "PATH")]
    github_action: Option<PathBuf>,
    /// No table on stdout.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// The most benchmarks of one `ab` run.
const MAX_BENCHMARKS: usize = 100;

/// What `--metric` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MetricChoice {
    /// The timed benchmarks.
    Time,
    /// Instructions counted under valgrind.
    Instructions,
    /// Both, side by side.
    Both,
}

fn parse_pct(text: &str) -> Result<f64, String> {
    text.trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|p| p.is_finite() && *p >= 0.0 && *p < 100.0)
        .ok_or_else(|| format!("'{text}' is not a percentage between 0 and 100"))
}

/// The build at `binary`, which must be a file: the path as given, relative to the current
/// folder (a bare NAME is `./NAME`, never a program found on PATH), made absolute so that the
/// file checked is the file run.
fn build(binary: PathBuf, server_args: Vec<String>, flag: &str) -> Build {
    if !binary.is_file() {
        usage_exit(
            "echo-bench",
            &format!("error: {flag} {}: not a file", binary.display()),
        );
    }
    let binary = std::path::absolute(&binary).unwrap_or_else(|e| {
        usage_exit(
            "echo-bench",
            &format!("error: {flag} {}: {e}", binary.display()),
        )
    });
    Build {
        binary,
        server_args,
        meta: None,
    }
}

/// The benchmarks asked for, parsed once every `--server` is registered (clap parses the
/// options in command-line order); a usage error names a bad one.
fn benchmarks(
    asked: Option<&[String]>,
    servers: &[echo_bench::suite::Server],
    metric: MetricChoice,
) -> Vec<BenchmarkSpec> {
    let defaults = |list: &str| list.split(',').map(str::to_owned).collect::<Vec<_>>();
    let mut names: Vec<String> = match (asked, metric) {
        (Some(list), _) => list.to_vec(),
        (None, MetricChoice::Time) => defaults(ab::DEFAULT_BENCHMARKS),
        (None, MetricChoice::Instructions) => defaults(ab::counted::DEFAULT_BENCHMARKS),
        (None, MetricChoice::Both) => [
            defaults(ab::DEFAULT_BENCHMARKS),
            defaults(ab::counted::DEFAULT_BENCHMARKS),
        ]
        .concat(),
    };
    if asked.is_none() && metric != MetricChoice::Instructions {
        names.extend(servers.iter().map(|s| format!("ping-pong/{s}/1")));
    }
    if names.len() > MAX_BENCHMARKS {
        usage_exit(
            "echo-bench",
            &format!(
                "error: --benchmarks: {} benchmarks, at most {MAX_BENCHMARKS}",
                names.len()
            ),
        );
    }
    let registry = echo_analysis::server::Registry::of(servers)
        .unwrap_or_else(|e| usage_exit("echo-bench", &format!("error: --server: {e}")));
    let parsed: Vec<BenchmarkSpec> = names
        .iter()
        .map(|name| {
            BenchmarkSpec::parse(name.trim(), &registry)
                .unwrap_or_else(|e| usage_exit("echo-bench", &format!("error: --benchmarks: {e}")))
        })
        .collect();
    if asked.is_none() {
        return parsed;
    }
    // Named benchmarks: `instructions` counts each one, `both` adds each one's counted twin
    // where it can be counted.
    let mut specs = Vec::new();
    for spec in parsed {
        match metric {
            MetricChoice::Time => specs.push(spec),
            MetricChoice::Instructions if spec.counted => specs.push(spec),
            MetricChoice::Instructions => specs.push(spec.as_counted().unwrap_or_else(|| {
                usage_exit(
                    "echo-bench",
                    &format!(
                        "error: --metric instructions: {} cannot be counted (a model's \
                         ping-pong, or churn or stream on one connection can)",
                        spec.name()
                    ),
                )
            })),
            MetricChoice::Both => {
                let twin = (!spec.counted).then(|| spec.as_counted()).flatten();
                specs.push(spec);
                specs.extend(twin);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    specs.retain(|s| seen.insert(s.name()));
    if specs.len() > MAX_BENCHMARKS {
        usage_exit(
            "echo-bench",
            &format!(
                "error: --benchmarks: {} benchmarks, at most {MAX_BENCHMARKS}",
                specs.len()
            ),
        );
    }
    specs
}

/// Runs the command; returns the process exit code.
pub fn main(args: AbArgs) -> ExitCode {
    let calibration = match &args.calibration {
        Some(path) => match AbReport::read(path) {
            Ok(report) => report.noise_floors(),
            Err(why) => usage_exit("echo-bench", &format!("error: --calibration: {why}")),
        },
        None => Default::default(),
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let valgrind = match args.valgrind {
        Some(path) if path.is_file() => Some(std::path::absolute(&path).unwrap_or(path)),
        Some(path) => usage_exit(
            "echo-bench",
            &format!("error: --valgrind {}: not a file", path.display()),
        ),
        None => ab::counted::find_valgrind(),
    };
    let mut specs = benchmarks(args.benchmarks.as_deref(), &args.servers, args.metric);
    // Without valgrind the counted benchmarks are left out with one line, never failed; only
    // a run that asked for nothing else is refused.
    let mut skipped = None;
    if valgrind.is_none() && specs.iter().any(|s| s.counted) {
        if args.metric == MetricChoice::Instructions {
            usage_exit(
                "echo-bench",
                "error: --metric instructions: valgrind not found (apt-get install valgrind, \
                 or name it with --valgrind)",
            );
        }
        let left_out = specs.iter().filter(|s| s.counted).count();
        specs.retain(|s| !s.counted);
        skipped = Some(format!(
            "{left_out} counted benchmark(s) skipped: valgrind not found (apt-get install \
             valgrind)"
        ));
        if specs.is_empty() {
            usage_exit(
                "echo-bench",
                "error: --benchmarks: only counted benchmarks, and valgrind not found",
            );
        }
    }
    let options = AbOptions {
        base: build(args.base, args.base_server_arg, "--base"),
        head: build(args.head, args.head_server_arg, "--head"),
        benchmarks: specs,
        pairs: args.pairs as usize,
        trial: args.trial,
        warmup: args.warmup,
        threshold_pct: args.threshold,
        calibration,
        seed,
        confirm: !args.no_confirm,
        pinning: args.pin.pinning(),
        duet: !args.sequential,
        strict: args.strict,
        count: ab::counted::CountOptions {
            valgrind,
            messages: args.count_messages,
            pairs: args.count_pairs as usize,
            threshold_pct: args.count_threshold,
        },
    };
    if options.trial < Duration::from_millis(50) {
        usage_exit("echo-bench", "error: --trial must be at least 50ms");
    }
    let mut exports = Exports::default();
    exports.add(export::Json, args.json.as_deref());
    exports.add(export::Markdown, args.markdown.as_deref());
    exports.add(export::Bmf, args.bmf.as_deref());
    exports.add(export::GithubAction, args.github_action.as_deref());
    if let Err(why) = exports.check_writable() {
        usage_exit("echo-bench", &format!("error: {why}"));
    }

    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut on_trial = |done: usize, total: usize, what: &str| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(what.to_owned());
    };
    let mut report = ab::run(&options, &super::suite::command_line(), &mut on_trial);
    report.warnings.extend(skipped);
    bar.finish_and_clear();
    // Interrupted: the trials since are invalid; nothing of them is reported or written.
    echo_loadgen::child::settle();

    if !args.quiet {
        print!("{}", export::table(&report));
    }
    let written = exports.write(&report);
    let failed = written.is_err();
    for line in written.err().unwrap_or_default() {
        eprintln!("echo-bench: {line}");
    }
    for warning in &report.warnings {
        eprintln!("echo-bench: warning: {warning}");
    }
    let code = match report.exit_code {
        EXIT_SUCCESS if failed => EXIT_FAILURE,
        code => code,
    };
    debug_assert!(code <= EXIT_USAGE);
    exit_code(code)
}
