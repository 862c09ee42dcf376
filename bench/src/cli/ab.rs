//! `echo-bench ab`: the options, the progress line, and the outputs of a paired comparison.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use echo_bench::ab::{self, AbOptions, AbReport, BenchmarkSpec, Build, export};
use echo_bench::config::{MAX_WAIT, duration_within};
use echo_bench::export::Exports;
use echo_cli::{EXIT_FAILURE, EXIT_SUCCESS, EXIT_USAGE, exit_code, usage_exit};
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
) -> Vec<BenchmarkSpec> {
    let mut names: Vec<String> = match asked {
        Some(list) => list.to_vec(),
        None => ab::DEFAULT_BENCHMARKS
            .split(',')
            .map(str::to_owned)
            .collect(),
    };
    if asked.is_none() {
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
    let registry = echo_bench::suite::server::Registry::of(servers)
        .unwrap_or_else(|e| usage_exit("echo-bench", &format!("error: --server: {e}")));
    names
        .iter()
        .map(|name| {
            BenchmarkSpec::parse(name.trim(), &registry)
                .unwrap_or_else(|e| usage_exit("echo-bench", &format!("error: --benchmarks: {e}")))
        })
        .collect()
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
    let options = AbOptions {
        base: build(args.base, args.base_server_arg, "--base"),
        head: build(args.head, args.head_server_arg, "--head"),
        benchmarks: benchmarks(args.benchmarks.as_deref(), &args.servers),
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
    let report = ab::run(&options, &super::suite::command_line(), &mut on_trial);
    bar.finish_and_clear();
    // Interrupted: the trials since are invalid; nothing of them is reported or written.
    echo_bench::child::settle();

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
