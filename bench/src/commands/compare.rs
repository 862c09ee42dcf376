//! `echo-bench compare OLD NEW`: two stored suite runs in `ab`'s table.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use echo_bench::ab::{compare, export};
use echo_cli::{EXIT_FAILURE, exit_code, usage_exit};
use echo_loadgen::export::Exports;

/// Options of `echo-bench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The older run: a run.json or its results folder.
    old: PathBuf,
    /// The newer run.
    new: PathBuf,
    /// Change of a point's primary metric that counts as a regression, %, 0 to 1000.
    #[arg(long, value_name = "PCT", default_value_t = 10.0,
          value_parser = echo_loadgen::config::number_within(0.0, 1000.0))]
    threshold: f64,
    /// Also write the comparison as Markdown here.
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    /// Also write it as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

/// Runs the command; returns the process exit code.
pub fn main(args: CompareArgs) -> ExitCode {
    if !(args.threshold.is_finite() && (0.0..100.0).contains(&args.threshold)) {
        usage_exit("echo-bench", "error: --threshold must be between 0 and 100");
    }
    let mut exports = Exports::default();
    exports.add(export::Markdown, args.markdown.as_deref());
    exports.add(export::Json, args.json.as_deref());
    if let Err(why) = exports.check_writable() {
        usage_exit("echo-bench", &format!("error: {why}"));
    }
    let read = |path: &PathBuf| {
        compare::read_run(path)
            .unwrap_or_else(|why| usage_exit("echo-bench", &format!("error: {why}")))
    };
    let (old, new) = (read(&args.old), read(&args.new));
    let report = compare::compare(&old, &new, args.threshold, &super::suite::command_line());
    print!("{}", export::table(&report));
    if let Err(failures) = exports.write(&report) {
        for line in failures {
            eprintln!("echo-bench: {line}");
        }
        return exit_code(EXIT_FAILURE);
    }
    exit_code(report.exit_code)
}
