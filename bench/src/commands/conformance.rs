//! `echo-bench conformance`: the conformance checks the models pass, run against any echo
//! server: one started from a command for each check, or one already running; the stream checks
//! on a TCP or Unix socket, the datagram checks on UDP.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use echo_cli::{EXIT_FAILURE, Endpoint, Transport, exit_code, usage_exit};
use echo_loadgen::conformance::{self, CHECKS, Check, ServerCommand, Subject};

/// Options of `echo-bench conformance`.
#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// Start the server with this command for each check; `{addr}` is replaced with a free
    /// loopback address of --transport in the tools' syntax, `{host}` and `{port}` with its
    /// parts (TCP, UDP), `{path}` with the socket path (Unix), and `{cert}` and `{key}` (a TLS
    /// server's: with --transport tls) with the files of a certificate and key made for the
    /// run, which the checks trust unless --ca names another. Ready when it accepts connections
    /// (answers a datagram) there, or when it prints `listening on ADDR`.
    #[arg(
        long,
        value_name = "CMD",
        required_unless_present = "target",
        conflicts_with = "target"
    )]
    command: Option<String>,
    /// Check a server already running at this address: HOST:PORT, unix:PATH, udp:HOST:PORT or
    /// tls:HOST:PORT (checks that must start or signal the server are skipped).
    #[arg(long, value_name = "ADDR")]
    target: Option<Endpoint>,
    /// How a tls: server is spoken to. Without --ca, any certificate is accepted: the checks
    /// judge the echo, not the certificate.
    #[command(flatten)]
    tls: super::TlsArgs,
    /// With --command: the transport to start the server on (tcp, unix, udp, tls).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "tcp",
        conflicts_with = "target"
    )]
    transport: Transport,
    /// With --target: the server's pid, for the memory check (1 to 4194304).
    #[arg(long, value_name = "PID", requires = "target",
          value_parser = clap::value_parser!(u32).range(1..=super::run::MAX_PID))]
    server_pid: Option<u32>,
    /// The server serves one client at a time by design (a blocking accept/recv loop).
    #[arg(long)]
    expect_serial: bool,
    /// Run only these checks (comma-separated; see --list).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    checks: Option<Vec<String>>,
    /// List the checks and exit.
    #[arg(long, exclusive = true)]
    list: bool,
    /// Write the results as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// How long the sustained-load checks drive the server at full speed (1s to 1h; default
    /// 12s). Minutes make millions of datagrams.
    #[arg(long, value_name = "D", value_parser = parse_sustain)]
    sustain: Option<std::time::Duration>,
}

/// A sustain time from 1 s to 1 h.
fn parse_sustain(s: &str) -> Result<std::time::Duration, String> {
    let d = echo_loadgen::config::parse_duration(s)?;
    if (std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(3600)).contains(&d) {
        Ok(d)
    } else {
        Err(format!("'{s}' is outside 1s..1h"))
    }
}

/// The checks asked for, in the shared order (by default those that apply to `transport`); a
/// usage error names an unknown one.
fn selected(names: Option<&[String]>, transport: Transport) -> Vec<&'static Check> {
    let Some(names) = names else {
        return conformance::checks_for(transport).collect();
    };
    for name in names {
        if conformance::find(name).is_none() {
            let valid: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
            usage_exit(
                "echo-bench",
                &format!(
                    "error: unknown check '{name}' (valid: {})",
                    valid.join(", ")
                ),
            );
        }
    }
    CHECKS
        .iter()
        .filter(|c| names.iter().any(|n| n == c.name))
        .collect()
}

/// Runs the command: exit 0 when every check passed (or was skipped), 1 when any failed.
pub fn main(args: ConformanceArgs) -> ExitCode {
    if args.list {
        for check in CHECKS {
            let kind = if check.datagram {
                "udp"
            } else {
                "tcp,unix,tls"
            };
            println!("{:<65} {kind:<12} {}", check.name, check.about);
        }
        return ExitCode::SUCCESS;
    }
    let transport = args
        .target
        .as_ref()
        .map_or(args.transport, Endpoint::transport);
    let command = args.command.as_deref().map(|c| {
        ServerCommand::new(c).unwrap_or_else(|e| usage_exit("echo-bench", &format!("error: {e}")))
    });
    let serves_tls = command.as_ref().is_some_and(ServerCommand::serves_tls);
    if serves_tls && transport != Transport::Tls {
        usage_exit(
            "echo-bench",
            "error: --command takes {cert} or {key}, so it serves tls only: add --transport tls",
        );
    }
    let checks = selected(args.checks.as_deref(), transport);
    // The output is checked before any work, and written only once the result exists: a file
    // already there stays as it was until then.
    if let Some(path) = &args.json
        && let Err(why) = echo_loadgen::files::check_writable(path)
    {
        usage_exit("echo-bench", &format!("error: {why}"));
    }
    let address = args.target.as_ref().and_then(Endpoint::socket_addr);
    // The TLS client as asked for, checked before anything is made (an exit drops nothing).
    let asked = (transport == Transport::Tls).then(|| {
        let mut options = args.tls.options();
        options.insecure |= options.ca.is_none();
        let client = options
            .client_for(address)
            .unwrap_or_else(|e| usage_exit("echo-bench", &format!("error: {e}")));
        (options, client)
    });
    // A command that takes {cert} or {key} serves TLS with a certificate made for this run,
    // which the checks' client trusts unless --ca names another.
    let certified = if serves_tls {
        match echo_bench::suite::Certified::new() {
            Ok(certified) => Some(certified),
            Err(e) => {
                eprintln!("echo-bench: cannot make a certificate for the server: {e}");
                return exit_code(EXIT_FAILURE);
            }
        }
    } else {
        None
    };
    let tls = match (asked, &certified) {
        (Some((mut options, _)), Some(certified)) if args.tls.options().ca.is_none() => {
            options.ca = Some(certified.files().cert().to_owned());
            options.insecure = args.tls.options().insecure;
            match options.client_for(address) {
                Ok(client) => Some(client),
                Err(e) => {
                    eprintln!("echo-bench: cannot trust the certificate made for the server: {e}");
                    return exit_code(EXIT_FAILURE);
                }
            }
        }
        (asked, _) => asked.map(|(_, client)| client),
    };
    // A thousand held connections take a descriptor each here, and in a server started here
    // (which inherits the limit).
    echo_loadgen::config::raise_fd_limit();
    let subject = Subject {
        command,
        identity: certified
            .as_ref()
            .map(|c| (c.files().cert().to_owned(), c.files().key().to_owned())),
        target: args.target.clone(),
        transport,
        pid: args.server_pid,
        serial: args.expect_serial.then_some(1),
        sustain: args.sustain,
        tls,
    };
    if let Some(target) = &subject.target
        && target.transport().is_stream()
        && let Err(e) = echo_loadgen::socket::Client::connect(
            &echo_loadgen::socket::Peer {
                endpoint: target.clone(),
                tls: subject.tls.clone(),
            },
            std::time::Duration::from_secs(5),
        )
    {
        eprintln!("echo-bench: cannot connect to {target}: {e}");
        return exit_code(EXIT_FAILURE);
    }
    let mut outcomes = Vec::new();
    for check in checks {
        let outcome = conformance::run(check, &subject);
        // Interrupted: this check was cut short, and no other runs.
        echo_loadgen::child::settle();
        let reason = outcome
            .reason
            .as_deref()
            .map_or(String::new(), |r| format!(": {r}"));
        println!(
            "{:<4}  {}{reason} ({:.2} s)",
            outcome.status.to_uppercase(),
            outcome.check,
            outcome.seconds
        );
        outcomes.push(outcome);
    }
    let count = |status: &str| outcomes.iter().filter(|o| o.status == status).count();
    println!(
        "{} passed, {} failed, {} skipped",
        count("pass"),
        count("fail"),
        count("skip")
    );
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "server": args.command.clone().or(args.target.as_ref().map(ToString::to_string)),
            "transport": transport.name(),
            "expect_serial": args.expect_serial,
            "checks": outcomes,
        });
        if let Err(e) = echo_loadgen::files::write(path, format!("{json:#}\n")) {
            eprintln!("echo-bench: cannot write {}: {e}", path.display());
            return exit_code(EXIT_FAILURE);
        }
    }
    if count("fail") > 0 {
        exit_code(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}
