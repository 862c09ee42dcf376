//! The subcommands of `echo-bench`, one module each, and the options they share.

pub mod ab;
pub mod capacity;
pub mod compare;
pub mod conformance;
pub mod history;
pub mod merge;
pub mod report;
pub mod run;
pub mod stability;
pub mod suite;

use clap::Args;
use echo_bench::suite::Pinning;
use echo_cli::usage_exit;

use run::{CpuList, parse_cpus};

/// How the server and the client are pinned (`suite` and `ab`).
#[derive(Debug, Args)]
pub struct PinArgs {
    /// CPUs for the servers (default: the first half).
    #[arg(long, value_parser = parse_cpus)]
    server_cpus: Option<CpuList>,
    /// CPUs for the client (default: the second half).
    #[arg(long, value_parser = parse_cpus)]
    client_cpus: Option<CpuList>,
    /// Pin nothing.
    #[arg(long, conflicts_with_all = ["server_cpus", "client_cpus"])]
    no_pin: bool,
}

impl PinArgs {
    /// The pinning asked for; exits with a usage error naming a CPU this process may not use.
    pub fn pinning(&self) -> Pinning {
        let pinning = if self.no_pin {
            Pinning::default()
        } else {
            let halves = Pinning::halves();
            Pinning {
                server_cpus: self.server_cpus.clone().map(|c| c.0).or(halves.server_cpus),
                client_cpus: self.client_cpus.clone().map(|c| c.0).or(halves.client_cpus),
            }
        };
        let allowed = echo_loadgen::procfs::allowed_cpus();
        for cpu in pinning
            .server_cpus
            .iter()
            .chain(&pinning.client_cpus)
            .flatten()
        {
            if !allowed.contains(cpu) {
                usage_exit(
                    "echo-bench",
                    &format!("error: CPU {cpu} is not available (have {allowed:?})"),
                );
            }
        }
        pinning
    }
}
