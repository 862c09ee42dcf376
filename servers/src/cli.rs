//! What the command-line tools share: the server front end ([`ServeArgs`], [`serve`]) used by
//! `echo-server` and `echo-bench serve`, and error reporting, so that every tool reports bad
//! input the same way: one line on stderr and exit code 2.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::{Model, ServerConfig};

/// Exit code for a usage error (bad flag, value or argument).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a run that saw failures.
pub const EXIT_FAILURE: u8 = 1;

/// Parses the command line with clap, turning clap's multi-line errors into one line on stderr
/// (`<tool>: error: ... [possible values: ...]`) and exit code 2. Help and version go to stdout
/// with exit 0, as usual.
pub fn parse_or_exit<T: clap::Parser>(tool: &str) -> T {
    match T::try_parse() {
        Ok(parsed) => parsed,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                err.exit();
            }
            usage_exit(tool, &one_line(&err.render().to_string()))
        }
    }
}

/// Prints `<tool>: <message>` on one line and exits with [`EXIT_USAGE`].
pub fn usage_exit(tool: &str, message: &str) -> ! {
    eprintln!("{tool}: {message}");
    std::process::exit(EXIT_USAGE.into())
}

/// clap's rendered error folded onto one line, without the "For more information" hint.
pub fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An [`ExitCode`] from a raw code.
pub fn exit_code(code: u8) -> ExitCode {
    ExitCode::from(code)
}

/// A TCP echo server built on the chosen concurrency model.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "echo-server", version)]
pub struct ServeArgs {
    /// The concurrency model (see --list).
    #[arg(long, value_name = "NAME", required_unless_present = "list", value_parser = parse_model)]
    pub model: Option<Model>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value_t = ServerConfig::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Worker threads, for the models that have them (default: the model's own).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Listen backlog.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::DEFAULT_BACKLOG,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub backlog: u32,
    /// Bytes of buffer per connection (the most held for a client that does not read).
    #[arg(long, value_name = "BYTES", default_value_t = ServerConfig::DEFAULT_BUFFER as u64,
          value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    pub buffer: u64,
    /// Microseconds of real CPU work (hashing, never sleeping) per message before its echo.
    #[arg(long, value_name = "US", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub work_us: u64,
    /// Testing aid: a busy wait of this many nanoseconds per message, added to --work-us, to
    /// make a known regression (as `echo-bench ab`'s own tests do). Never use it otherwise.
    #[arg(long, value_name = "NS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub handicap_ns: u64,
    /// Print the model names, one per line, and exit.
    #[arg(long)]
    pub list: bool,
    /// Testing aid: abort the process this long after start (e.g. 300ms), to check that tools
    /// report a server that crashes mid-run. Never use it for measurements.
    #[arg(long, value_name = "D", hide = true, value_parser = parse_millis)]
    pub abort_after: Option<std::time::Duration>,
}

fn parse_millis(s: &str) -> Result<std::time::Duration, String> {
    s.trim_end_matches("ms")
        .parse::<u64>()
        .map(std::time::Duration::from_millis)
        .map_err(|_| format!("'{s}' is not a number of milliseconds"))
}

fn parse_model(s: &str) -> Result<Model, String> {
    s.parse::<Model>()
        .map_err(|_| format!("valid models: {}", Model::names()))
}

/// Runs a server as `echo-server` does, until SIGINT or SIGTERM; `tool` names the program in
/// error messages. Shared by the `echo-server` binary and `echo-bench serve`.
pub fn serve(args: ServeArgs, tool: &str) -> ExitCode {
    if args.list {
        for model in Model::ALL {
            println!("{model}");
        }
        return ExitCode::SUCCESS;
    }
    let Some(model) = args.model else {
        usage_exit(tool, "error: --model is required");
    };
    let config = ServerConfig {
        listen: args.listen,
        backlog: args.backlog,
        buffer_size: args.buffer as usize,
        threads: args.threads.map(usize::from),
        work: crate::Work::new(
            std::time::Duration::from_micros(args.work_us)
                + std::time::Duration::from_nanos(args.handicap_ns),
        ),
    };
    if let Err(why) = model.available() {
        eprintln!("{tool}: {model} is not available on this machine: {why}");
        return exit_code(EXIT_FAILURE);
    }
    // Registered before the server starts, so a signal that arrives early is not lost.
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("{tool}: cannot install signal handlers: {err}");
            return exit_code(EXIT_FAILURE);
        }
    };
    let server = match model.server().start(&config) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("{tool}: {model}: cannot listen on {}: {err}", config.listen);
            return exit_code(EXIT_FAILURE);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {}", server.local_addr());
    let _ = stdout.flush();
    drop(stdout);

    if let Some(after) = args.abort_after {
        std::thread::spawn(move || {
            std::thread::sleep(after);
            std::process::abort();
        });
    }
    let _ = signals.forever().next();
    match server.shutdown() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{tool}: {model}: shutdown: {err}");
            exit_code(EXIT_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn folds_clap_errors_onto_one_line() {
        let rendered = "error: invalid value 'x' for '--model <MODEL>'\n  [possible values: a, b]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: invalid value 'x' for '--model <MODEL>' [possible values: a, b]"
        );
    }
}
