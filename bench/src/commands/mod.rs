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

use std::path::PathBuf;

use clap::Args;
use echo_bench::suite::Pinning;
use echo_cli::{TlsVersions, usage_exit};
use echo_loadgen::config::TlsOptions;

use run::{CpuList, parse_cpus};

/// How a `tls:` target is spoken (`run` and `conformance`).
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// tls: targets: trust the certificates in this PEM file (echo-server prints the path of
    /// its own self-signed one).
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// tls: targets: accept any certificate (the handshake's signatures are still checked, so
    /// it costs what a verifying client's does, less the chain).
    #[arg(long)]
    insecure: bool,
    /// tls: targets: the versions to offer (1.3, 1.2, or 1.2,1.3).
    #[arg(long, value_name = "LIST", default_value_t = TlsVersions::TLS13,
          value_parser = |s: &str| s.parse::<TlsVersions>())]
    tls_versions: TlsVersions,
    /// tls: targets: resume sessions with the server's tickets, so that churn measures
    /// resumed handshakes rather than full ones.
    #[arg(long)]
    tls_resume: bool,
    /// tls: targets: the server name to ask for and verify (default: the target's IP).
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
}

impl TlsArgs {
    /// The options, as a run stores them.
    pub fn options(&self) -> TlsOptions {
        TlsOptions {
            ca: self.ca.clone(),
            insecure: self.insecure,
            versions: self.tls_versions,
            resume: self.tls_resume,
            server_name: self.tls_server_name.clone(),
        }
    }
}

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
