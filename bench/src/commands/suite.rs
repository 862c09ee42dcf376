//! `echo-bench suite` (also `echo-bench` alone, and so `cargo run --release`): every model
//! measured at every point of a profile, stored under `results/`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use echo_bench::Workload;
use echo_bench::render::terminal;
use echo_bench::suite::plan::{self, Selection};
use echo_bench::suite::{
    self, InterferencePolicy, Launcher, Profile, SuiteOptions, advice, output,
};
use echo_bench::suite::{Server, Status};
use echo_cli::{EXIT_FAILURE, exit_code, usage_exit};
use echo_loadgen::config::{
    MAX_CONNECTIONS, MAX_PAYLOAD, MAX_WAIT, bytes_within, count_within, duration_within,
    positive_at_most,
};
use echo_servers::Model;
use indicatif::{ProgressBar, ProgressStyle};

use super::PinArgs;

/// Options of `echo-bench suite`.
#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// quick (default, about 3 minutes), full (hours), or tiny (a smoke test).
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Models to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_parser = parse_model)]
    models: Option<Vec<Model>>,
    /// An outside server to measure beside the models, started by a command in which
    /// `{addr}` (or `{host}` and `{port}`) is a free loopback address: NAME=CMD, repeatable. It
    /// is measured over TCP; a command that takes `{cert}` or `{key}` serves TLS instead, and
    /// is measured at the TLS points alone (--transports tls), `{addr}` a tls: address and
    /// `{cert}`/`{key}` the paths of a self-signed certificate and key (PEM) made for the run
    /// and removed after it. To measure one server over both, name it twice.
    #[arg(long = "server", value_name = "NAME=CMD", value_parser = Server::parse_outside)]
    servers: Vec<Server>,
    /// Outside servers from a TOML file: a `[servers]` table of `NAME = "CMD"` lines, with the
    /// placeholders of --server.
    #[arg(long = "servers", value_name = "FILE")]
    servers_file: Option<PathBuf>,
    /// Add the tutorial's Python servers shipped in servers/python/ (blocking, threading,
    /// selectors, asyncio over TCP; ssl, the threading server over TLS, at the TLS points)
    /// when python3 is on PATH.
    #[arg(long)]
    python: bool,
    /// Workloads to run, comma-separated.
    #[arg(long, value_delimiter = ',', value_enum)]
    workloads: Option<Vec<Workload>>,
    /// Transports to measure, comma-separated: tcp, unix, udp, tls (default: tcp; the full
    /// profile: tcp,tls). Each gets its own tables and advice; tcp and unix together add a
    /// chart of their cost per message, tcp and tls a table of what TLS costs. Unix sockets
    /// measure every model (in the quick profile: ping-pong and open loop only), UDP the models
    /// that serve it (ping-pong and open loop), TLS the models and outside servers that serve
    /// it (in the quick profile: ping-pong, open loop and churn, every connection a full
    /// handshake).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    transports: Option<Vec<echo_servers::Transport>>,
    /// Connection counts for ping-pong, comma-separated, each 1 to 1000000 (10000 or more, with
    /// no --profile, asks for the C10K measurement of that many idle connections).
    #[arg(long, value_delimiter = ',', value_parser = count_within(1, MAX_CONNECTIONS as u64))]
    connections: Option<Vec<usize>>,
    /// Payloads for ping-pong, comma-separated (64,4k), each 1 to 64MiB.
    #[arg(long, value_delimiter = ',', value_parser = bytes_within(1, MAX_PAYLOAD))]
    payloads: Option<Vec<usize>>,
    /// Rounds: how often each point is measured, models shuffled within each round, 1 to 1000
    /// (profile default: quick and full 3, tiny 1). Points × rounds may be at most 100000
    /// trials.
    #[arg(long, alias = "repeat", value_parser = count_within(1, MAX_ROUNDS as u64))]
    rounds: Option<usize>,
    /// Seed of the rounds' order (default: from the clock; recorded in run.json).
    #[arg(long)]
    seed: Option<u64>,
    /// Cores that other tasks may take during a trial before it is re-run, above 0 and at most
    /// 1024.
    #[arg(long, default_value_t = 0.25, value_parser = positive_at_most(1024.0))]
    interference_limit: f64,
    /// Re-runs of a trial disturbed by other tasks, before it is kept and flagged, 0 to 10.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=10))]
    reruns: u32,
    /// CPU work per message in the servers to sweep, µs, comma-separated, each 0 to 1000000
    /// (full profile: 0,50,500).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    work_us: Option<Vec<u64>>,
    /// Measured time per trial, 1ms to 1h [default: the profile's: quick 450ms, full 5s, tiny
    /// 300ms].
    #[arg(long, value_parser = duration_within(Duration::from_millis(1), MAX_WAIT))]
    duration: Option<Duration>,
    /// Warm-up per trial, 0 to 1h [default: the profile's: quick 150ms, full 1s, tiny 100ms].
    #[arg(long, value_parser = duration_within(Duration::ZERO, MAX_WAIT))]
    warmup: Option<Duration>,
    #[command(flatten)]
    pin: PinArgs,
    /// The latency objective of the capacity search (capacity and full profiles): a
    /// percentile and its limit (p99=1ms, p50=200us, p999=5ms).
    #[arg(long, value_name = "pNN=D", default_value = "p99=1ms", value_parser = parse_objective)]
    objective: echo_bench::capacity::Objective,
    /// Where run folders are written.
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

/// The most rounds of a suite run.
const MAX_ROUNDS: usize = 1000;
/// The most trials (points × rounds) of a suite run: about 14 hours of the quick profile's.
const MAX_TRIALS: usize = 100_000;

fn parse_objective(s: &str) -> Result<echo_bench::capacity::Objective, String> {
    s.parse()
}

fn parse_model(s: &str) -> Result<Model, String> {
    s.parse::<Model>().map_err(|e| e.to_string())
}

/// Runs the suite; returns the exit code (1 when any point failed).
pub fn main(args: SuiteArgs) -> ExitCode {
    let options = match options(&args) {
        Ok(options) => options,
        Err(code) => return code,
    };
    if let Err(why) = echo_loadgen::files::check_folder_writable(&options.results_dir) {
        usage_exit("echo-bench", &format!("error: --results: {why}"));
    }
    announce(&options);
    let trials = options.points.len() * options.rounds;
    let bar = ProgressBar::new(trials as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    // On SIGINT or SIGTERM (once the servers are stopped): what was measured so far, written as
    // a partial run.
    let so_far = std::sync::Arc::new(std::sync::Mutex::new(suite::SuiteRun::default()));
    {
        let so_far = std::sync::Arc::clone(&so_far);
        let dir = options.results_dir.clone();
        let bar = bar.clone();
        echo_loadgen::child::on_interrupt(move || {
            bar.finish_and_clear();
            let run = so_far.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if !run.partial
                || (run.points.is_empty() && run.capacity.is_empty() && run.c10k.is_empty())
            {
                eprintln!("echo-bench: interrupted before any trial was measured; no run written");
                return;
            }
            match output::write(&dir, &run) {
                Ok(written) => eprintln!(
                    "echo-bench: wrote the partial run {} ({} trial(s) measured)",
                    written.display(),
                    run.points.len()
                ),
                Err(err) => eprintln!("echo-bench: cannot write the partial run: {err}"),
            }
        });
    }
    let run = suite::run_sharing(
        &options,
        &mut |done, _, label| {
            bar.set_position(done as u64);
            bar.set_message(label.to_owned());
        },
        &so_far,
    );
    bar.finish_and_clear();
    // Interrupted: the partial run is the signal handling's to write.
    echo_loadgen::child::settle();
    let aggregates = advice::aggregate(&run);
    print!("{}", terminal::report(&run, &aggregates, terminal::style()));
    match echo_loadgen::child::finishing(|| {
        output::write_with(&options.results_dir, &run, &aggregates)
    }) {
        Ok(dir) => println!("\nwrote {} (run.json, summary.md, charts)", dir.display()),
        Err(err) => {
            eprintln!("echo-bench: cannot write the results: {err}");
            return exit_code(EXIT_FAILURE);
        }
    }
    let failed = run.points.iter().filter(|p| !p.ok()).count();
    if failed > 0 {
        eprintln!("echo-bench: {failed} point(s) failed; see summary.md");
        return exit_code(EXIT_FAILURE);
    }
    let unsearched: Vec<String> = run
        .capacity
        .iter()
        .filter_map(|m| Some(format!("{} ({})", m.model, m.failure.as_ref()?)))
        .collect();
    if !unsearched.is_empty() {
        eprintln!(
            "echo-bench: the capacity search failed for {}",
            unsearched.join("; ")
        );
        return exit_code(EXIT_FAILURE);
    }
    // Not applicable (a bounded model) is a result; failed is not.
    let not_held: Vec<String> = run
        .c10k
        .iter()
        .filter(|h| h.status == Status::Failed)
        .map(|h| format!("{} ({})", h.model, h.note.clone().unwrap_or_default()))
        .collect();
    if !not_held.is_empty() {
        eprintln!(
            "echo-bench: holding idle connections failed for {}",
            not_held.join("; ")
        );
        return exit_code(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}

/// The outside servers asked for: `--server`, then `--servers FILE`, then `--python`; exits 2
/// with one line on a bad file or name.
fn outside_servers(args: &SuiteArgs) -> Vec<Server> {
    let mut servers = args.servers.clone();
    if let Some(path) = &args.servers_file {
        #[derive(serde::Deserialize)]
        struct File {
            servers: std::collections::BTreeMap<String, String>,
        }
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            usage_exit(
                "echo-bench",
                &format!("error: --servers {}: {e}", path.display()),
            )
        });
        let file: File = toml::from_str(&text).unwrap_or_else(|e| {
            usage_exit(
                "echo-bench",
                &format!(
                    "error: --servers {}: {} (expected a [servers] table of NAME = \"CMD\")",
                    path.display(),
                    e.message()
                ),
            )
        });
        for (name, command) in file.servers {
            servers.push(Server::outside(&name, &command).unwrap_or_else(|e| {
                usage_exit(
                    "echo-bench",
                    &format!("error: --servers {}: {e}", path.display()),
                )
            }));
        }
    }
    if args.python {
        servers.extend(python_servers());
    }
    if let Err(e) = echo_analysis::server::Registry::of(&servers) {
        usage_exit("echo-bench", &format!("error: {e}"));
    }
    servers
}

/// The Python servers shipped in servers/python/, as outside servers named `py-<kind>` (`py-ssl`
/// takes `{cert}` and `{key}`, so it is measured over TLS); none, with a note, when python3 is
/// not on PATH or the folder is missing.
fn python_servers() -> Vec<Server> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../servers/python");
    let python = std::process::Command::new("python3")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !python {
        eprintln!("echo-bench: --python: python3 is not on PATH; the Python servers are left out");
        return Vec::new();
    }
    if !dir.is_dir() {
        eprintln!(
            "echo-bench: --python: {} is missing (run from a clone of the project)",
            dir.display()
        );
        return Vec::new();
    }
    ["blocking", "threading", "selectors", "asyncio", "ssl"]
        .into_iter()
        .filter_map(|kind| {
            let script = dir.join(format!("{kind}_server.py"));
            let identity = if kind == "ssl" { " {cert} {key}" } else { "" };
            let command = format!("python3 {} {{addr}}{identity}", script.display());
            Server::outside(&format!("py-{kind}"), &command)
                .map_err(|e| eprintln!("echo-bench: --python: {e}"))
                .ok()
        })
        .collect()
}

/// The validated options of the run; exits 2 with one line on a usage error, returns the exit
/// code on a failure to prepare.
fn options(args: &SuiteArgs) -> Result<SuiteOptions, ExitCode> {
    // `suite --connections 10000` (no profile named) asks for the C10K measurement.
    let c10k_by_connections = args.profile.is_none()
        && args
            .connections
            .as_ref()
            .is_some_and(|c| c.iter().any(|&n| n >= C10K_CONNECTIONS));
    let profile = if c10k_by_connections {
        Profile::C10k
    } else {
        args.profile.unwrap_or_default()
    };
    let selection = Selection {
        models: args.models.clone(),
        workloads: args.workloads.clone(),
        connections: args.connections.clone(),
        payloads: args.payloads.clone(),
        rounds: args.rounds,
        work_us: args.work_us.clone(),
        outside: outside_servers(args),
        transports: args.transports.clone(),
    };
    if selection.rounds == Some(0) {
        usage_exit("echo-bench", "error: --rounds must be at least 1");
    }
    if selection
        .connections
        .as_ref()
        .is_some_and(|c| c.contains(&0))
    {
        usage_exit("echo-bench", "error: --connections must all be at least 1");
    }
    let (points, skipped) = suite::without_unavailable(plan::points(profile, &selection));
    let rounds = selection.rounds.unwrap_or_else(|| profile.rounds());
    match points.len().checked_mul(rounds) {
        Some(trials) if trials <= MAX_TRIALS => {}
        _ => usage_exit(
            "echo-bench",
            &format!(
                "error: {} points × {rounds} rounds is more than {MAX_TRIALS} trials",
                points.len()
            ),
        ),
    }
    for line in &skipped {
        eprintln!("echo-bench: skipping {line}");
    }
    // An outside server serves one transport (its command says which): one the selection
    // leaves out gets no point, which is said rather than left to be noticed in the tables.
    for server in &selection.outside {
        if !points.iter().any(|p| p.model == *server) {
            let why = if server.serves(echo_servers::Transport::Tls) {
                "its command takes {cert} or {key}, so it is measured over tls only"
            } else {
                "its command takes no {cert} or {key}, so it is measured over tcp only"
            };
            eprintln!("echo-bench: {server} has no point in this selection: {why}");
        }
    }
    let c10k = matches!(profile, Profile::C10k | Profile::Full).then(|| {
        let target = match profile {
            Profile::C10k => selection
                .connections
                .as_ref()
                .and_then(|c| c.iter().max().copied())
                .unwrap_or(C10K_CONNECTIONS),
            _ => C10K_CONNECTIONS,
        };
        let asked = selection
            .models
            .clone()
            .unwrap_or_else(|| echo_servers::Model::ALL.to_vec());
        // Over the transports asked for (TCP and TLS among them), TCP alone by default: the
        // full profile's default of tcp,tls is its points', not its C10K measurement's.
        let transports = suite::c10k::Plan::transports_of(selection.transports.as_deref());
        suite::c10k::Plan {
            models: echo_servers::Model::runnable(asked),
            target,
            transports,
        }
    });
    let capacity_models = if profile == Profile::Capacity {
        let asked = selection
            .models
            .clone()
            .unwrap_or_else(|| echo_servers::Model::ALL.to_vec());
        echo_servers::Model::runnable(asked)
    } else {
        Vec::new()
    };
    if points.is_empty()
        && capacity_models.is_empty()
        && c10k.as_ref().is_none_or(|plan| plan.holdings().is_empty())
    {
        usage_exit(
            "echo-bench",
            "error: the selection leaves no point to measure",
        );
    }
    let launcher = Launcher::this_binary().map_err(|err| {
        eprintln!("echo-bench: cannot find my own binary to start servers: {err}");
        exit_code(EXIT_FAILURE)
    })?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            & 0xffff_ffff
    });
    Ok(SuiteOptions {
        points,
        rounds,
        seed,
        interference: InterferencePolicy {
            limit_cores: args.interference_limit,
            reruns: args.reruns,
        },
        profile,
        duration: args.duration.unwrap_or_else(|| profile.duration()),
        warmup: args.warmup.unwrap_or_else(|| profile.warmup()),
        timeout: Duration::from_secs(5),
        pinning: args.pin.pinning(),
        capacity: matches!(profile, Profile::Capacity | Profile::Full)
            .then(|| suite::capacity::Settings::profile(args.objective, rounds)),
        capacity_models,
        results_dir: args.results.clone(),
        launcher,
        command_line: command_line(),
        skipped,
        c10k,
    })
}

/// Idle connections the C10K measurement holds unless `--connections` says otherwise.
const C10K_CONNECTIONS: usize = 10_000;

/// One line on stderr: what will run, for about how long, where, with which seed.
fn announce(options: &SuiteOptions) {
    let trials = options.points.len() * options.rounds;
    // Measured here: about 0.1 s per trial to start, connect and stop a fresh server.
    let per_point = options.duration + options.warmup + Duration::from_millis(100);
    let cpus = |list: &Option<Vec<usize>>| {
        list.as_ref().map_or("any".to_owned(), |cpus| {
            cpus.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    let mut knee = match &options.capacity {
        Some(settings) => format!(
            ", plus the capacity search at {} ({} rounds, about 20 s a model)",
            settings.objective, settings.plan.rounds
        ),
        None => String::new(),
    };
    if let Some(plan) = &options.c10k {
        let names: Vec<&str> = plan.transports.iter().map(|t| t.name()).collect();
        knee.push_str(&format!(
            ", plus {} idle connections held {} time(s) (models over {}, about 15 s each)",
            plan.target,
            plan.holdings().len(),
            names.join(", ")
        ));
    }
    eprintln!(
        "echo-bench suite: {} profile, {} points × {} round(s) = {trials} trials, about {:.0} s{knee}; \
         server CPUs {}, client CPUs {}; seed {}",
        options.profile.name(),
        options.points.len(),
        options.rounds,
        per_point.as_secs_f64() * trials as f64,
        cpus(&options.pinning.server_cpus),
        cpus(&options.pinning.client_cpus),
        options.seed
    );
}

/// The command as typed, for the record.
pub(crate) fn command_line() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .map(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map_or(p.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "echo-bench".into());
    std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}
