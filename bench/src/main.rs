//! `echo-bench`: the suite's command-line front end.
//!
//! - `echo-bench` or `echo-bench suite [options]`: measure every model, store the run in
//!   `results/`, print the tables and the advice.
//! - `echo-bench run --target HOST:PORT [options]`: drive one echo server and report.
//! - `echo-bench capacity --target HOST:PORT --objective p99=1ms`: the highest open-loop rate
//!   that keeps the objective, with its interval over rounds.
//! - `echo-bench ab --base BIN --head BIN`: paired comparison of two builds, with a verdict.
//! - `echo-bench compare OLD NEW`: two stored suite runs side by side (unpaired).
//! - `echo-bench stability RUN...`: whether several suite runs' advice agrees.
//! - `echo-bench report RUN_DIR`: redraw a stored run's summary and charts from its run.json.
//! - `echo-bench conformance --command CMD` (or `--target ADDR`): check any echo server for the
//!   classic bugs.
//! - `echo-bench history append|report`: results over commits, and their change points.
//! - `echo-bench merge REPORT...`: combine the reports of agents that loaded one server at once.
//! - `echo-bench serve --model NAME`: run one server model (what the suite starts).
//!
//! Exit codes: 0 clean run, 1 a run that saw errors (for `ab`, a confirmed regression), 2 usage
//! error (one line on stderr) or, for `ab`, an invalid comparison, 130 stopped by SIGINT, 143
//! stopped by SIGTERM (every child process is stopped first, and an interrupted suite writes
//! what it measured as a partial run). `serve` exits 0 on SIGINT or SIGTERM, as `echo-server`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use echo_cli::parse_or_exit;

/// Compare server concurrency models: drive TCP echo servers and measure them.
#[derive(Debug, Parser)]
#[command(
    name = "echo-bench",
    version,
    propagate_version = true,
    after_help = "Exit codes: 0 success; 1 the run saw failures (for ab, a confirmed \
                  regression); 2 usage error or out-of-range value (one line on stderr), for ab \
                  also an invalid comparison; 130 stopped by SIGINT, 143 by SIGTERM (child \
                  servers stopped first; an interrupted suite writes a partial run.json). \
                  serve exits 0 on either signal."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure every model at every point of a profile (the default command).
    Suite(commands::suite::SuiteArgs),
    /// Drive one echo server at an address and report what it did.
    Run(commands::run::RunArgs),
    /// The highest open-loop rate at which a server keeps a latency objective (p99=1ms), with
    /// its interval over rounds.
    Capacity(commands::capacity::CapacityArgs),
    /// Compare two builds (base and head) in interleaved pairs; exit 1 on a confirmed regression.
    Ab(commands::ab::AbArgs),
    /// Compare two stored suite runs (unpaired: a lead to confirm with `ab`).
    Compare(commands::compare::CompareArgs),
    /// Check any echo server for the classic bugs: the checks every model passes.
    Conformance(commands::conformance::ConformanceArgs),
    /// Track results over commits: a store of one record per commit, and its change points.
    History(commands::history::HistoryArgs),
    /// Combine the reports of several agents that loaded one server at the same time.
    Merge(commands::merge::MergeArgs),
    /// Redraw a stored run's index.html, charts, summary.md and README.md from its run.json.
    Report(commands::report::ReportArgs),
    /// Check whether several suite runs' advice agrees; exit 1 on a contradiction.
    Stability(commands::stability::StabilityArgs),
    /// Run one server model, as `echo-server` does.
    Serve(echo_servers::serve::ServeArgs),
}

fn main() -> ExitCode {
    let code = run();
    // After SIGINT or SIGTERM the exit code is the signal's, whatever the command returned.
    echo_loadgen::child::settle();
    code
}

fn run() -> ExitCode {
    let args: Args = parse_or_exit("echo-bench");
    // Every tool but a server stops its children and exits 130/143 on SIGINT/SIGTERM; a server
    // handles the signals itself as its normal stop.
    if !matches!(args.command, Some(Command::Serve(_)))
        && let Err(err) = echo_loadgen::child::handle_signals("echo-bench")
    {
        eprintln!("echo-bench: cannot install signal handlers: {err}");
        return echo_cli::exit_code(echo_cli::EXIT_FAILURE);
    }
    match args.command {
        None => {
            // No subcommand: the suite with its defaults, exactly as `echo-bench suite`.
            let Args { command } = Args::parse_from(["echo-bench", "suite"]);
            match command {
                Some(Command::Suite(suite)) => commands::suite::main(suite),
                _ => unreachable!("parsed as the suite subcommand"),
            }
        }
        Some(Command::Suite(suite)) => commands::suite::main(suite),
        Some(Command::Run(run)) => commands::run::main(run),
        Some(Command::Ab(ab)) => commands::ab::main(ab),
        Some(Command::Capacity(c)) => commands::capacity::main(c),
        Some(Command::Compare(compare)) => commands::compare::main(compare),
        Some(Command::Stability(stability)) => commands::stability::main(stability),
        Some(Command::Report(report)) => commands::report::main(report),
        Some(Command::Merge(merge)) => commands::merge::main(merge),
        Some(Command::Conformance(c)) => commands::conformance::main(c),
        Some(Command::History(h)) => commands::history::main(h),
        Some(Command::Serve(serve)) => echo_servers::serve::serve(serve, "echo-bench serve"),
    }
}
