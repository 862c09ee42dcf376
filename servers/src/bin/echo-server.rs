//! `echo-server`: runs one model until SIGINT or SIGTERM.
//!
//! Prints exactly one line, `listening on IP:PORT`, on stdout once ready; `--list` prints the
//! model names. Usage errors: one line on stderr, exit 2. A clean shutdown exits 0.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use echo_servers::cli::{self, EXIT_FAILURE};
use echo_servers::{Model, ServerConfig};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// A TCP echo server built on the chosen concurrency model.
#[derive(Debug, Parser)]
#[command(name = "echo-server", version)]
struct Args {
    /// The concurrency model (see --list).
    #[arg(long, value_name = "NAME", required_unless_present = "list", value_parser = parse_model)]
    model: Option<Model>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value_t = ServerConfig::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Worker threads, for the models that have them (default: the model's own).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Listen backlog.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::DEFAULT_BACKLOG,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    backlog: u32,
    /// Bytes of buffer per connection (the most held for a client that does not read).
    #[arg(long, value_name = "BYTES", default_value_t = ServerConfig::DEFAULT_BUFFER as u64,
          value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    buffer: u64,
    /// Print the model names, one per line, and exit.
    #[arg(long)]
    list: bool,
}

fn parse_model(s: &str) -> Result<Model, String> {
    s.parse::<Model>()
        .map_err(|_| format!("valid models: {}", Model::names()))
}

fn main() -> ExitCode {
    let args: Args = cli::parse_or_exit("echo-server");
    if args.list {
        for model in Model::ALL {
            println!("{model}");
        }
        return ExitCode::SUCCESS;
    }
    let Some(model) = args.model else {
        cli::usage_exit("echo-server", "error: --model is required");
    };
    let config = ServerConfig {
        listen: args.listen,
        backlog: args.backlog,
        buffer_size: args.buffer as usize,
        threads: args.threads.map(usize::from),
    };
    // Registered before the server starts, so a signal that arrives early is not lost.
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("echo-server: cannot install signal handlers: {err}");
            return cli::exit_code(EXIT_FAILURE);
        }
    };
    let server = match model.server().start(&config) {
        Ok(server) => server,
        Err(err) => {
            eprintln!(
                "echo-server: {model}: cannot listen on {}: {err}",
                config.listen
            );
            return cli::exit_code(EXIT_FAILURE);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {}", server.local_addr());
    let _ = stdout.flush();
    drop(stdout);

    let _ = signals.forever().next();
    match server.shutdown() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo-server: {model}: shutdown: {err}");
            cli::exit_code(EXIT_FAILURE)
        }
    }
}
