//! `echo-server`: runs one model until SIGINT or SIGTERM.
//!
//! Prints exactly one line, `listening on IP:PORT`, on stdout once ready; `--list` prints the
//! model names. Usage errors: one line on stderr, exit 2. A clean shutdown exits 0.

use std::process::ExitCode;

use echo_servers::serve::{self, ServeArgs};

fn main() -> ExitCode {
    let args: ServeArgs = echo_cli::parse_or_exit("echo-server");
    serve::serve(args, "echo-server")
}
