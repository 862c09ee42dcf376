//! The main job: start every model as its own process, measure it at every point of a profile,
//! and store the run (figures, charts, advice) under `results/`.
//!
//! Each point is measured in interleaved rounds ([`plan::schedule`]); each trial gets a fresh
//! server process, pinned to the server's CPUs, so one trial's memory or a crash never leaks
//! into the next. A model that fails to start or crashes is recorded as failed and the suite
//! goes on. Each trial also records how much CPU the rest of the machine took from it; a trial
//! above the interference limit is re-run a bounded number of times and flagged if it stays
//! above.
//!
//! An outside server whose command takes `{cert}` or `{key}` is measured at the TLS points
//! ([`plan`]) with a self-signed certificate and key made once per run, in a private temporary
//! folder the run removes when it ends (an interrupt too). At every TLS point the client
//! accepts any certificate but checks the handshake's signatures (`--insecure`), for a model
//! (which makes its own certificate) and an outside server alike: the same client work per
//! handshake for every server, so their rows compare.

pub mod advice;
pub mod c10k;
pub mod capacity;
pub mod output;
pub mod plan;
pub mod process;
pub mod stability;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use echo_servers::Model;

// The types of what a suite run stores (echo-analysis's), named here because `SuiteOptions`
// and `run` take and return them: a caller of the suite needs no second import. Their modules
// are not re-exported.
pub use echo_analysis::run::{
    InterferencePolicy, OutsideServer, Pinning, PointResult, SCHEMAS, Status, SuiteRun, recognise,
};
pub use echo_analysis::server::Server;

use echo_loadgen::config::{RunConfig, RunOptions, Stop};
use echo_loadgen::engine;
use echo_loadgen::meta::Meta;
use echo_loadgen::report::Report;
pub use plan::{Point, Profile};
pub use process::Launcher;

/// Everything a suite run needs.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The points to measure (one per model and load).
    pub points: Vec<Point>,
    /// How many rounds measure each point.
    pub rounds: usize,
    /// Seed of the rounds' order (recorded, so the order can be reproduced).
    pub seed: u64,
    /// When a trial is re-run for interference.
    pub interference: InterferencePolicy,
    /// The profile they came from (recorded).
    pub profile: Profile,
    /// Measured time per point.
    pub duration: Duration,
    /// Warm-up per point.
    pub warmup: Duration,
    /// Per-message timeout.
    pub timeout: Duration,
    /// CPU split.
    pub pinning: Pinning,
    /// The capacity search under a latency objective (capacity and full profiles).
    pub capacity: Option<capacity::Settings>,
    /// Where run folders go.
    pub results_dir: PathBuf,
    /// How servers are started.
    pub launcher: Launcher,
    /// The command line, recorded for reproduction.
    pub command_line: String,
    /// Models left out because this machine cannot run them, with the reason.
    pub skipped: Vec<String>,
    /// The C10K measurement: the models, the idle connections each must hold, and over which
    /// transports (TCP, TLS; each model over those it serves).
    pub c10k: Option<c10k::Plan>,
    /// Models whose capacity is searched beside those of the points (the capacity profile
    /// has no points).
    pub capacity_models: Vec<Model>,
}

/// Removes the points of models this machine cannot run ([`Model::available`]); returns the
/// rest and one `model: reason` line per model removed.
pub fn without_unavailable(points: Vec<Point>) -> (Vec<Point>, Vec<String>) {
    let mut skipped: Vec<String> = Vec::new();
    let mut unavailable: Vec<Server> = Vec::new();
    let kept = points
        .into_iter()
        .filter(|point| {
            if unavailable.contains(&point.model) {
                return false;
            }
            match point.model.available() {
                Ok(()) => true,
                Err(why) => {
                    unavailable.push(point.model.clone());
                    skipped.push(format!("{}: {why}", point.model));
                    false
                }
            }
        })
        .collect();
    (kept, skipped)
}

/// Runs the suite, calling `on_point(done, total, label)` before each trial.
pub fn run(options: &SuiteOptions, on_point: &mut dyn FnMut(usize, usize, &str)) -> SuiteRun {
    run_sharing(
        options,
        on_point,
        &std::sync::Mutex::new(SuiteRun::default()),
    )
}

/// [`run`], keeping `so_far` up to date after each trial (and capacity search, and C10K
/// measurement): a
/// [`SuiteRun::partial`] run of what was measured until then, for an interrupt to write. A
/// trial that ends after an interrupt ([`echo_loadgen::child::interrupted`]) is not kept.
pub fn run_sharing(
    options: &SuiteOptions,
    on_point: &mut dyn FnMut(usize, usize, &str),
    so_far: &std::sync::Mutex<SuiteRun>,
) -> SuiteRun {
    let began = Instant::now();
    let header = SuiteRun {
        schema: SCHEMAS[SCHEMAS.len() - 1] as u32,
        profile: options.profile,
        rounds: options.rounds.max(1),
        seed: options.seed,
        interference: options.interference,
        command: options.command_line.clone(),
        meta: Meta::current(),
        pinning: options.pinning.clone(),
        duration_s: options.duration.as_secs_f64(),
        warmup_s: options.warmup.as_secs_f64(),
        capacity_objective: options.capacity.as_ref().map(|c| c.objective),
        skipped: options.skipped.clone(),
        outside: outside_of(&options.points),
        partial: true,
        ..SuiteRun::default()
    };
    let share = |add: &dyn Fn(&mut SuiteRun)| {
        if echo_loadgen::child::interrupted() {
            return;
        }
        let mut run = so_far.lock().unwrap_or_else(|e| e.into_inner());
        add(&mut run);
        run.elapsed_s = began.elapsed().as_secs_f64();
    };
    share(&|run| *run = header.clone());
    let order = plan::schedule(&options.points, options.rounds.max(1), options.seed);
    let total = order.len();
    let mut points = Vec::with_capacity(total.min(1 << 16));
    // Made once for the run and removed when it ends, or on an interrupt.
    let certificate = certificate_for(&options.points);
    for (i, point) in order.iter().enumerate() {
        on_point(i, total, &point.label());
        let mut result = trial_with(options, point, &certificate);
        result.order = i;
        share(&|run| run.points.push(result.clone()));
        points.push(result);
    }
    let mut searches = Vec::new();
    if let Some(settings) = &options.capacity {
        let mut models: Vec<Model> = options
            .points
            .iter()
            .filter_map(|p| p.model.model())
            .chain(options.capacity_models.iter().copied())
            .collect();
        let mut seen = Vec::new();
        models.retain(|m| {
            let new = !seen.contains(m);
            seen.push(*m);
            new
        });
        searches = capacity::measure(options, settings, &models, &mut |label| {
            on_point(total, total, label)
        });
        share(&|run| run.capacity = searches.clone());
    }
    let mut holdings = Vec::new();
    if let Some(plan) = &options.c10k {
        for (model, transport) in plan.holdings() {
            let over = if transport == echo_servers::Transport::Tcp {
                String::new()
            } else {
                format!(" over {transport}")
            };
            on_point(
                total,
                total,
                &format!("{model}: holding {} connections{over}", plan.target),
            );
            let holding = c10k::measure(options, model, transport, plan.target);
            share(&|run| run.c10k.push(holding.clone()));
            holdings.push(holding);
        }
    }
    SuiteRun {
        elapsed_s: began.elapsed().as_secs_f64(),
        points,
        capacity: searches,
        c10k: holdings,
        partial: false,
        ..header
    }
}

/// The outside servers among `points`, in order.
fn outside_of(points: &[Point]) -> Vec<OutsideServer> {
    let mut outside: Vec<OutsideServer> = Vec::new();
    for server in points.iter().map(|p| &p.model).filter(|s| s.is_outside()) {
        if !outside.iter().any(|o| o.name == server.name()) {
            outside.push(OutsideServer {
                name: server.name().to_owned(),
                command: server
                    .command()
                    .map_or_else(String::new, |c| c.template().to_owned()),
            });
        }
    }
    outside
}

/// The certificate and key of the outside TLS servers among `points`: `None` when none of
/// them needs one, else the files (or why they could not be made, for each such trial to say).
type Certificate = Option<Result<Certified, String>>;

/// A run's certificate and key, whose folder an interrupt removes too (its exit drops nothing):
/// the suite's outside TLS servers', and `conformance --command`'s with `{cert}`.
#[derive(Debug)]
pub struct Certified(echo_servers::CertFiles);

impl Certified {
    /// The files.
    pub fn files(&self) -> &echo_servers::CertFiles {
        &self.0
    }

    /// A self-signed certificate and key ([`echo_servers::CertFiles::self_signed`]).
    pub fn new() -> std::io::Result<Self> {
        echo_loadgen::child::make_removed_on_interrupt(
            echo_servers::CertFiles::self_signed,
            echo_servers::CertFiles::folder,
        )
        .map(Self)
    }
}

impl Drop for Certified {
    /// The files' own drop, right after, removes the folder.
    fn drop(&mut self) {
        echo_loadgen::child::forget_on_interrupt(self.0.folder());
    }
}

/// Whether `point` starts an outside server that is given the run's certificate and key.
fn needs_certificate(point: &Point) -> bool {
    point.transport == echo_servers::Transport::Tls
        && point.model.is_outside()
        && point.model.serves(echo_servers::Transport::Tls)
}

/// A self-signed certificate and key for the outside TLS servers among `points`, if any.
fn certificate_for(points: &[Point]) -> Certificate {
    points.iter().any(needs_certificate).then(|| {
        Certified::new()
            .map_err(|e| format!("cannot make a certificate for the outside servers: {e}"))
    })
}

/// Measures one trial, re-running it while other tasks take more than the interference limit
/// (at most `reruns` times); the last attempt is kept and flagged if it is still disturbed. An
/// outside TLS server gets a certificate made for this trial alone ([`run`] makes one per run).
pub fn trial(options: &SuiteOptions, point: &Point) -> PointResult {
    trial_with(
        options,
        point,
        &certificate_for(std::slice::from_ref(point)),
    )
}

/// [`trial`] with the run's certificate.
fn trial_with(options: &SuiteOptions, point: &Point, certificate: &Certificate) -> PointResult {
    let policy = options.interference;
    let mut discarded = Vec::new();
    loop {
        let mut result = measure_with(options, point, certificate);
        let other = result.interference_cores().unwrap_or(0.0);
        let disturbed = other > policy.limit_cores;
        if disturbed && (discarded.len() as u32) < policy.reruns {
            discarded.push(other);
            continue;
        }
        result.attempts = discarded.len() as u32 + 1;
        result.discarded_interference = discarded;
        result.interfered = disturbed;
        return result;
    }
}

/// Measures one point on a fresh server process (an outside TLS server with a certificate made
/// for this measurement alone).
pub fn measure(options: &SuiteOptions, point: &Point) -> PointResult {
    measure_with(
        options,
        point,
        &certificate_for(std::slice::from_ref(point)),
    )
}

/// [`measure`] with the run's certificate.
fn measure_with(options: &SuiteOptions, point: &Point, certificate: &Certificate) -> PointResult {
    let failed = |why: String, report: Option<Report>| PointResult {
        point: point.clone(),
        status: Status::Failed,
        failure: Some(why),
        report,
        ..PointResult::default()
    };
    let work = if point.work_us > 0 {
        vec!["--work-us".to_owned(), point.work_us.to_string()]
    } else {
        Vec::new()
    };
    let identity = match certificate {
        Some(Ok(Certified(files))) if needs_certificate(point) => {
            Some(echo_loadgen::conformance::Identity {
                cert: files.cert(),
                key: files.key(),
            })
        }
        Some(Err(why)) if needs_certificate(point) => {
            return failed(format!("server did not start: {why}"), None);
        }
        _ => None,
    };
    let server = match options.launcher.start_identified(
        point.model.clone(),
        point.transport,
        options.pinning.server_cpus.as_deref(),
        &work,
        identity,
    ) {
        Ok(server) => server,
        Err(err) => return failed(format!("server did not start: {err}"), None),
    };
    let client_threads = options.pinning.client_threads();
    let options = RunOptions {
        target: server.endpoint().clone(),
        workload: point.workload,
        connections: point.connections,
        payload: point.payload,
        rate: point.rate,
        stop: Stop::Duration(options.duration),
        warmup: options.warmup,
        timeout: options.timeout,
        threads: client_threads.max(1),
        server_pid: Some(server.pid()),
        client_cpus: options.pinning.client_cpus.clone(),
        seed: 0x5eed ^ point.round as u64,
        // A model's tls: server makes a self-signed certificate at start, an outside one is
        // given the run's: the client checks the handshake's signatures but not the chain
        // for both (the same client work per handshake for every server at a point, so their
        // rows compare). It keeps no session (churn is full handshakes) unless the point
        // resumes them with the server's tickets.
        tls: echo_loadgen::config::TlsOptions {
            insecure: point.transport == echo_servers::Transport::Tls,
            resume: point.tls_resume,
            ..Default::default()
        },
        ..RunOptions::default()
    };
    let config = match RunConfig::new(options) {
        Ok(config) => config,
        Err(err) => return failed(format!("invalid point: {err}"), None),
    };
    let outcome = engine::run(&config, &mut |_| {});
    let driver = server.driver();
    let report = match outcome {
        Ok(outcome) => Report::new(&config, &outcome),
        Err(err) => {
            return PointResult {
                driver,
                ..failed(format!("load generator failed: {err}"), None)
            };
        }
    };
    match server.stop() {
        Ok(()) => PointResult {
            point: point.clone(),
            status: Status::Ok,
            report: Some(report),
            driver,
            ..PointResult::default()
        },
        Err(why) => PointResult {
            driver,
            ..failed(why, Some(report))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_never_gets_fewer_cpus_than_the_server() {
        for n in 2..=9 {
            let cpus: Vec<usize> = (0..n).collect();
            let split = Pinning::split(&cpus);
            let (server, client) = (split.server_cpus.unwrap(), split.client_cpus.unwrap());
            assert!(
                client.len() >= server.len(),
                "{n} CPUs: {server:?} / {client:?}"
            );
            assert_eq!(server.len() + client.len(), n);
            assert!(server.iter().all(|c| !client.contains(c)));
        }
        assert_eq!(Pinning::split(&[3]), Pinning::default());
        let two = Pinning::split(&[0, 1]);
        assert_eq!(two.describe(), "1 server core (0), 1 client core (1)");
    }

    /// A minimal run.json of `schema` whose one trial measured `model`.
    fn stored_run(schema: u32, model: &str) -> serde_json::Value {
        serde_json::json!({
            "schema": schema, "profile": "tiny", "command": "x",
            "meta": {"host": "h", "time": "t"}, "duration_s": 0.3, "warmup_s": 0.1,
            "points": [{"point": {"model": model}, "status": "ok"}],
            "skipped": [format!("{model}: no ring here")],
        })
    }

    #[test]
    fn an_old_runs_io_uring_reads_back_as_tokio_uring_and_a_new_runs_as_itself() {
        let old = SuiteRun::from_value(stored_run(2, "io-uring")).unwrap();
        assert_eq!(old.points[0].point.model.name(), "tokio-uring");
        assert_eq!(old.skipped, ["tokio-uring: no ring here"]);
        let new = SuiteRun::from_value(stored_run(3, "io-uring")).unwrap();
        assert_eq!(new.points[0].point.model.name(), "io-uring");
        let other = SuiteRun::from_value(stored_run(2, "mio")).unwrap();
        assert_eq!(other.points[0].point.model.name(), "mio");
    }

    #[test]
    fn a_stored_runs_unknown_server_is_refused_unless_the_run_lists_it_as_outside() {
        let err = SuiteRun::from_value(stored_run(3, "since-renamed")).unwrap_err();
        assert!(err.contains("'since-renamed'"), "{err}");
        assert!(err.contains("neither a model"), "{err}");
        let mut listed = stored_run(3, "py-test");
        listed["outside"] =
            serde_json::json!([{"name": "py-test", "command": "python3 x.py {addr}"}]);
        let run = SuiteRun::from_value(listed).unwrap();
        let server = &run.points[0].point.model;
        assert!(server.is_outside());
        assert_eq!(server.name(), "py-test");
        assert!(server.command().is_none(), "reading a run starts nothing");
        assert_eq!(run.registry().outside(), std::slice::from_ref(server));
    }

    #[test]
    fn a_trials_driver_is_stored_by_name_and_a_bad_one_is_refused() {
        let mut value = stored_run(3, "mio");
        value["points"][0]["driver"] = "io_uring".into();
        let run = SuiteRun::from_value(value.clone()).unwrap();
        assert_eq!(run.points[0].driver, Some(echo_servers::Driver::IoUring));
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["points"][0]["driver"], "io_uring");
        value["points"][0]["driver"] = "kqueue".into();
        let err = SuiteRun::from_value(value).unwrap_err();
        assert!(err.contains("'kqueue' is not a driver"), "{err}");
    }
}
