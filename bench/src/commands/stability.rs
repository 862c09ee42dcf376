//! `echo-bench stability RUN...`: whether the advice of several runs of the same profile agrees
//! (what `scripts/stability.sh` calls after its runs).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use echo_bench::ab::compare::read_run;
use echo_bench::suite::stability;
use echo_cli::{EXIT_FAILURE, exit_code, usage_exit};

/// Options of `echo-bench stability`.
#[derive(Debug, Args)]
pub struct StabilityArgs {
    /// Suite runs (folders or run.json files), 2 to 1000.
    #[arg(required = true, num_args = 2..=1000)]
    runs: Vec<PathBuf>,
    /// Where the report's folder is written.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Print the report without storing it.
    #[arg(long)]
    no_store: bool,
}

/// Prints the report, stores it, and exits 1 when any run contradicts another.
pub fn main(args: StabilityArgs) -> ExitCode {
    if !args.no_store
        && let Err(why) = echo_loadgen::files::check_folder_writable(&args.results)
    {
        usage_exit("echo-bench", &format!("error: --results: {why}"));
    }
    let mut runs = Vec::new();
    for path in &args.runs {
        match read_run(path) {
            Ok(run) => runs.push((path.clone(), run)),
            Err(err) => usage_exit("echo-bench", &format!("error: {err}")),
        }
    }
    let report = stability::check(&runs);
    let command = super::suite::command_line();
    println!(
        "{}",
        echo_bench::render::stability::markdown(&report, &command)
    );
    if !args.no_store {
        match stability::write(&report, &args.results, &command) {
            Ok(dir) => println!("wrote {}", dir.display()),
            Err(err) => {
                eprintln!("echo-bench: cannot write the report: {err}");
                return exit_code(EXIT_FAILURE);
            }
        }
    }
    if report.contradictions.is_empty() {
        ExitCode::SUCCESS
    } else {
        exit_code(EXIT_FAILURE)
    }
}
