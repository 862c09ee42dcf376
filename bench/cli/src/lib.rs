//! The command-line conventions that every tool of the project shares (`echo-server`,
//! `echo-bench` and its subcommands), so that they all report bad input the same way: one line
//! on stderr, `<tool>: <message>`, and a documented exit code.
//!
//! | code | meaning |
//! |---|---|
//! | [`EXIT_SUCCESS`] = 0 | success (or `--help`, `--version`) |
//! | [`EXIT_FAILURE`] = 1 | the run worked but saw failures (echo errors, a regression, a crash) |
//! | [`EXIT_USAGE`] = 2 | a usage error: bad flag, value, argument or path, found before any work |
//! | [`EXIT_SIGINT`] = 130 | stopped by SIGINT (its child processes stopped first) |
//! | [`EXIT_SIGTERM`] = 143 | stopped by SIGTERM (its child processes stopped first) |
//!
//! 130 and 143 are 128 + the signal's number, what a shell reports for a process the signal
//! killed. A server (`echo-server`, `echo-bench serve`) instead treats SIGINT and SIGTERM as its
//! normal stop and exits 0 after a clean shutdown.
//!
//! It also holds the one address syntax of every tool ([`Endpoint`]: `HOST:PORT`, `unix:PATH`,
//! `udp:HOST:PORT`, `tls:HOST:PORT`) and the TLS versions both sides of `tls:` take
//! ([`TlsVersions`]). It lives in a crate of its own, depending on clap only, because both the
//! servers and the load generator need it and neither may depend on the other.

#![deny(missing_docs)]

use std::process::ExitCode;

mod endpoint;
pub use endpoint::{BadEndpoint, Endpoint, Transport, UNIX_PATH_MAX};
mod tls;
pub use tls::TlsVersions;

/// Exit code for success (what `ExitCode::SUCCESS` is), for a tool that computes its code.
pub const EXIT_SUCCESS: u8 = 0;
/// Exit code for a usage error (bad flag, value or argument).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a run that saw failures.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a tool stopped by SIGINT (128 + 2).
pub const EXIT_SIGINT: u8 = 130;
/// Exit code of a tool stopped by SIGTERM (128 + 15).
pub const EXIT_SIGTERM: u8 = 143;

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
