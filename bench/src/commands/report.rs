//! `echo-bench report RUN_DIR`: redraws a stored run's charts, summary.md and README.md from its
//! run.json alone, with this version's tables, charts and advice.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use echo_bench::ab::compare::read_run;
use echo_bench::suite::{advice, output};
use echo_cli::{EXIT_FAILURE, exit_code, usage_exit};

/// Options of `echo-bench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run's folder (holding run.json).
    run: PathBuf,
}

/// Redraws the run; exit 2 when there is no suite run there, 1 when a file cannot be written
/// or a file it would rewrite is not echo-bench's (that file is left as it was, and said so;
/// the rest is redrawn).
pub fn main(args: ReportArgs) -> ExitCode {
    if !args.run.is_dir() {
        usage_exit(
            "echo-bench",
            &format!("error: {} is not a run folder", args.run.display()),
        );
    }
    let run = read_run(&args.run)
        .unwrap_or_else(|why| usage_exit("echo-bench", &format!("error: {why}")));
    let aggregates = advice::aggregate(&run);
    match output::redraw(&args.run, &run, &aggregates) {
        Ok(redrawn) => {
            for path in &redrawn.stale_kept {
                eprintln!(
                    "echo-bench: note: kept {}: an older chart's name, but not echo-bench's file",
                    path.display()
                );
            }
            for path in &redrawn.left_alone {
                eprintln!(
                    "echo-bench: left {} alone: it is not echo-bench's (no generated-by mark)",
                    path.display()
                );
            }
            println!(
                "redrew {} (index.html, summary.md, README.md, charts, latency.hlog)",
                args.run.display()
            );
            if redrawn.left_alone.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "echo-bench: {} file(s) not redrawn; move them away to redraw them",
                    redrawn.left_alone.len()
                );
                exit_code(EXIT_FAILURE)
            }
        }
        Err(err) => {
            eprintln!(
                "echo-bench: cannot write into {}: {err}",
                args.run.display()
            );
            exit_code(EXIT_FAILURE)
        }
    }
}
