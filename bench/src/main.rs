//! `echo-bench`: the suite's command-line front end.
//!
//! - `echo-bench run --target HOST:PORT [options]`: drive one echo server and report.
//!
//! Exit codes: 0 clean run, 1 a run that saw errors, 2 usage error (one line on stderr).

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use echo_servers::cli::parse_or_exit;

/// Compare server concurrency models: drive TCP echo servers and measure them.
#[derive(Debug, Parser)]
#[command(name = "echo-bench", version, propagate_version = true)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive one echo server at an address and report what it did.
    Run(cli::run::RunArgs),
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit("echo-bench");
    match args.command {
        Command::Run(run) => cli::run::main(run),
    }
}
