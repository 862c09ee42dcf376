//! The server front end: [`ServeArgs`] and [`serve`], the command line of `echo-server` and of
//! `echo-bench serve`. Exit codes and one-line usage errors come from the `echo-cli` crate,
//! which every tool shares.

use std::io::Write;
use std::process::ExitCode;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use echo_cli::{EXIT_FAILURE, Endpoint, TlsVersions, exit_code, usage_exit};

use crate::{Ended, Model, ServerConfig, UringFeatures};

/// A TCP echo server built on the chosen concurrency model.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "echo-server", version)]
pub struct ServeArgs {
    /// The concurrency model (see --list).
    #[arg(long, value_name = "NAME", required_unless_present = "list", value_parser = parse_model)]
    pub model: Option<Model>,
    /// Where to listen: HOST:PORT, [V6]:PORT, unix:PATH, udp:HOST:PORT or tls:HOST:PORT (see
    /// --list for the models that serve udp: and tls:); port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value_t = Endpoint::Tcp(ServerConfig::DEFAULT_LISTEN))]
    pub listen: Endpoint,
    /// Worker threads, for the models that have them, 1 to 65535 (default: the model's own).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Listen backlog, 1 to 1000000.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::DEFAULT_BACKLOG,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub backlog: u32,
    /// Bytes of buffer per connection (the most held for a client that does not read), 1 to
    /// 67108864 (64 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = ServerConfig::DEFAULT_BUFFER as u64,
          value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    pub buffer: u64,
    /// Microseconds of real CPU work (hashing, never sleeping) per message before its echo, 0
    /// to 1000000.
    #[arg(long, value_name = "US", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub work_us: u64,
    /// Testing aid: a busy wait of this many nanoseconds per message, added to --work-us, to
    /// make a known regression (as `echo-bench ab`'s own tests do), 0 to 1000000000. Never use
    /// it otherwise.
    #[arg(long, value_name = "NS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub handicap_ns: u64,
    /// Testing aid: this many extra instructions per message (a loop the optimizer cannot
    /// remove), to make a known regression that `echo-bench ab --metric instructions` counts, 0
    /// to 1000000000. Never use it otherwise.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub handicap_instructions: u64,
    /// The io_uring techniques the io-uring model uses, for an ablation: a comma-separated list
    /// of multishot-accept, multishot-recv, batch, defer-taskrun and fixed-files, or all, or
    /// none. A feature left out is done the plain way (one-shot accept; one-shot receive into
    /// the connection's own buffer; an io_uring_enter per operation; COOP_TASKRUN only; plain
    /// descriptors). Every other model ignores it.
    #[arg(long, value_name = "LIST", default_value_t = UringFeatures::ALL,
          value_parser = parse_uring_features)]
    pub uring_features: UringFeatures,
    /// For a tls: address: the certificate chain (PEM, leaf first). Without --cert and --key the
    /// server makes a self-signed certificate (--tls-cert-kind) for localhost and prints where its
    /// PEM is (a private temporary folder, removed at exit) and its SHA-256.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<std::path::PathBuf>,
    /// For a tls: address: the private key of --cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
    /// For a tls: address without --cert: the key of the self-signed certificate, ecdsa-p256 or
    /// rsa2048 (whose signature makes a full handshake several times dearer).
    #[arg(
        long,
        value_name = "KIND",
        value_enum,
        default_value_t,
        conflicts_with = "cert"
    )]
    pub tls_cert_kind: crate::CertKind,
    /// For a tls: address: the TLS versions accepted, comma-separated: 1.3, 1.2 or 1.2,1.3.
    #[arg(long, value_name = "LIST", default_value_t = TlsVersions::TLS13,
          value_parser = |s: &str| s.parse::<TlsVersions>())]
    pub tls_versions: TlsVersions,
    /// For a tls: address: milliseconds a client may take over its handshake before the server
    /// closes its connection, 1 to 600000.
    #[arg(long, value_name = "MS", default_value_t = crate::DEFAULT_HANDSHAKE_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub tls_handshake_timeout: u64,
    /// Print the model names, one per line with the transports each serves and the driver it
    /// would wait on here (name, transports, driver; tab-separated), and exit.
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

fn parse_uring_features(s: &str) -> Result<UringFeatures, String> {
    s.parse::<UringFeatures>().map_err(|err| err.to_string())
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
            let transports: Vec<&str> = model.transports().iter().map(|t| t.name()).collect();
            println!(
                "{model}\t{}\t{}",
                transports.join(","),
                model.server().driver()
            );
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
        )
        .with_instructions(args.handicap_instructions),
        uring: args.uring_features,
        tls: None,
    };
    let transport = config.listen.transport();
    if !model.serves(transport) {
        usage_exit(
            tool,
            &format!(
                "error: {model} does not serve {transport}: (models that do: {})",
                Model::serving(transport)
            ),
        );
    }
    let mut config = config;
    if config.listen.transport() == echo_cli::Transport::Tls {
        let tls = match (&args.cert, &args.key) {
            (Some(cert), Some(key)) => {
                crate::TlsServer::from_pem_files(cert, key, args.tls_versions)
                    .unwrap_or_else(|err| usage_exit(tool, &format!("error: {err}")))
            }
            _ => match crate::TlsServer::self_signed_with(args.tls_cert_kind, args.tls_versions) {
                Ok(tls) => tls,
                Err(err) => {
                    eprintln!("{tool}: cannot make a self-signed certificate: {err}");
                    return exit_code(EXIT_FAILURE);
                }
            },
        };
        let timeout = std::time::Duration::from_millis(args.tls_handshake_timeout);
        config.tls = Some(tls.with_handshake_timeout(timeout));
    } else if args.cert.is_some() {
        usage_exit(tool, "error: --cert and --key are for a tls: address");
    } else if args.tls_cert_kind != crate::CertKind::default() {
        usage_exit(tool, "error: --tls-cert-kind is for a tls: address");
    }
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
    let server = match start_within(model, &config, START_LIMIT) {
        Ok(server) => server,
        Err(Unstarted::Failed(err)) => {
            eprintln!("{tool}: {model}: cannot listen on {}: {err}", config.listen);
            return exit_code(EXIT_FAILURE);
        }
        Err(Unstarted::Panicked(why)) => {
            eprintln!("{tool}: {model}: cannot start on {}: {why}", config.listen);
            return exit_code(EXIT_FAILURE);
        }
        Err(Unstarted::TimedOut) => {
            eprintln!(
                "{tool}: {model}: did not start on {} within {START_LIMIT:?}",
                config.listen
            );
            // The start may be stuck in a runtime's drop after a panic: leave without it.
            std::process::exit(EXIT_FAILURE.into());
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {}", server.endpoint());
    // A second line, so a tool can record what really ran (a fallback is not the model's
    // first choice); tools that read only the first line are not disturbed.
    let _ = writeln!(stdout, "driver: {}", server.driver());
    // A third line for a tls: listener: what a client is to trust.
    if let Some(tls) = &config.tls {
        let ca = tls
            .ca_file()
            .map_or_else(String::new, |ca| format!(" ca={}", ca.display()));
        let _ = writeln!(stdout, "tls: sha256={}{ca}", tls.fingerprint());
    }
    let _ = stdout.flush();
    drop(stdout);

    if let Some(after) = args.abort_after {
        std::thread::spawn(move || {
            std::thread::sleep(after);
            std::process::abort();
        });
    }
    // A signal interrupts the wait below; so does a loop of the server dying, which ends the
    // process with exit 1 rather than leave it listening while nothing serves.
    let health = server.health();
    {
        let health = health.clone();
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                health.interrupt();
            }
        });
    }
    if let Ended::Died(why) = health.wait() {
        eprintln!("{tool}: {model}: stopping: {why}");
        let _ = server.shutdown();
        return exit_code(EXIT_FAILURE);
    }
    match server.shutdown() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{tool}: {model}: shutdown: {err}");
            exit_code(EXIT_FAILURE)
        }
    }
}

/// How long a model may take to start before the binary gives up on it (a start takes
/// milliseconds; one stuck in a runtime's teardown after a failed thread spawn never ends).
const START_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a server did not start.
enum Unstarted {
    /// `start` returned an error.
    Failed(std::io::Error),
    /// `start` panicked (a runtime that cannot spawn its threads does), with the message.
    Panicked(String),
    /// `start` had not returned by the limit.
    TimedOut,
}

/// Starts `model` on a thread of its own and waits at most `limit` for it, so a start that
/// panics or hangs is a failure with a reason, never a process that lingers.
fn start_within(
    model: Model,
    config: &ServerConfig,
    limit: std::time::Duration,
) -> Result<crate::ServerHandle, Unstarted> {
    let (started, outcome) = std::sync::mpsc::channel();
    let config = config.clone();
    let spawned = std::thread::Builder::new()
        .name("start".into())
        .spawn(move || {
            // AssertUnwindSafe: a start that panics is reported and the process gives the
            // server up; nothing observes the config (its TLS settings) after a panic.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                model.server().start(&config)
            }));
            let _ = started.send(result);
        });
    if let Err(err) = spawned {
        return Err(Unstarted::Failed(err));
    }
    match outcome.recv_timeout(limit) {
        Ok(Ok(Ok(server))) => Ok(server),
        Ok(Ok(Err(err))) => Err(Unstarted::Failed(err)),
        Ok(Err(panic)) => Err(Unstarted::Panicked(
            crate::server::panic_text(&*panic).to_owned(),
        )),
        Err(_) => Err(Unstarted::TimedOut),
    }
}
