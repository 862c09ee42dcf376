//! `echo-bench merge`: the reports of several agents that loaded one server at the same time
//! (`echo-bench run --json`, started together with `--start-at`), combined into one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use echo_bench::Report;
use echo_cli::{EXIT_FAILURE, exit_code, usage_exit};
use echo_loadgen::merge::merge;

/// Options of `echo-bench merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The agents' reports (`echo-bench run --json` files), 2 to 1000.
    #[arg(value_name = "RUN.json", num_args = 2..=1000, required = true)]
    reports: Vec<PathBuf>,
    /// Write the merged report as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// No summary on stdout (warnings and errors still go to stderr).
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Runs the command: exit 0 for a clean merge, 1 when an agent saw errors, 2 on bad input.
pub fn main(args: MergeArgs) -> ExitCode {
    if let Some(path) = &args.json
        && let Err(why) = echo_loadgen::files::check_writable(path)
    {
        usage_exit("echo-bench", &format!("error: {why}"));
    }
    let mut reports = Vec::new();
    for path in &args.reports {
        let name = path.display().to_string();
        let text = std::fs::read(path)
            .unwrap_or_else(|e| usage_exit("echo-bench", &format!("error: {name}: {e}")));
        let report: Report = serde_json::from_slice(&text).unwrap_or_else(|e| {
            usage_exit(
                "echo-bench",
                &format!("error: {name} is not an `echo-bench run --json` report: {e}"),
            )
        });
        reports.push((name, report));
    }
    let merged =
        merge(&reports).unwrap_or_else(|e| usage_exit("echo-bench", &format!("error: {e}")));
    if !args.quiet {
        print!("{}", merged.summary());
    } else {
        for w in &merged.warnings {
            eprintln!("echo-bench: warning: {w}");
        }
    }
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&merged)
            .map_err(std::io::Error::other)
            .and_then(|json| echo_loadgen::files::write(path, json + "\n"));
        if let Err(e) = written {
            eprintln!("echo-bench: cannot write {}: {e}", path.display());
            return exit_code(EXIT_FAILURE);
        }
    }
    if merged.errors.total() > 0 {
        eprintln!(
            "echo-bench: the agents saw {} error(s) in all; see the errors line",
            merged.errors.total()
        );
        return exit_code(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}
