//! The main job: start every model as its own process, measure it at every point of a profile,
//! and store the run (figures, charts, advice) under `results/`.
//!
//! Each point is measured in interleaved rounds ([`plan::schedule`]); each trial gets a fresh
//! server process, pinned to the server's CPUs, so one trial's memory or a crash never leaks
//! into the next. A model that fails to start or crashes is recorded as failed and the suite
//! goes on. Each trial also records how much CPU the rest of the machine took from it; a trial
//! above the interference limit is re-run a bounded number of times and flagged if it stays
//! above.

pub mod ablation;
pub mod advice;
pub mod c10k;
pub mod capacity;
pub mod charts;
pub mod html;
pub mod output;
pub mod plan;
pub mod process;
pub mod server;
pub mod stability;
pub mod transports;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use echo_servers::Model;

pub use self::server::Server;
use serde::{Deserialize, Serialize};

use crate::config::{RunConfig, Stop};
use crate::engine;
use crate::meta::Meta;
use crate::report::Report;
pub use plan::{Point, Profile};
pub use process::Launcher;

/// How the CPUs are split between the server and the client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinning {
    /// CPUs the server processes run on (`None`: not pinned).
    pub server_cpus: Option<Vec<usize>>,
    /// CPUs the client runs on (`None`: not pinned).
    pub client_cpus: Option<Vec<usize>>,
}

impl Pinning {
    /// The default split of the CPUs this process may use ([`Pinning::split`]).
    pub fn halves() -> Self {
        Self::split(&crate::procfs::allowed_cpus())
    }

    /// `cpus` split in two, server first, the client never given fewer than the server: it does
    /// the same kernel work per message as the server (measured for tokio at 50–256
    /// connections: client 7.4–7.8 µs per message, server 6.5–7.1), plus the verification. With
    /// an odd count the extra CPU goes to the client. Fewer than two CPUs: not pinned.
    pub fn split(cpus: &[usize]) -> Self {
        if cpus.len() < 2 {
            return Self::default();
        }
        let (server, client) = cpus.split_at(cpus.len() / 2);
        Self {
            server_cpus: Some(server.to_vec()),
            client_cpus: Some(client.to_vec()),
        }
    }

    /// `server cores / client cores` for the record, e.g. `1 server core, 1 client core`.
    pub fn describe(&self) -> String {
        let count = |cpus: &Option<Vec<usize>>, who: &str| match cpus {
            Some(cpus) => format!(
                "{} {who} core{} ({})",
                cpus.len(),
                if cpus.len() == 1 { "" } else { "s" },
                cpus.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => format!("{who} not pinned"),
        };
        format!(
            "{}, {}",
            count(&self.server_cpus, "server"),
            count(&self.client_cpus, "client")
        )
    }
}

/// When a trial counts as disturbed, and what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InterferencePolicy {
    /// Cores used by other tasks (plus steal) above which a trial is re-run. The quiet baseline
    /// here is 0–0.07 cores (10 ms ticks over a short window); a spinning process takes about
    /// 0.67 of two busy cores.
    pub limit_cores: f64,
    /// Re-runs of a disturbed trial before it is kept, flagged.
    pub reruns: u32,
}

impl Default for InterferencePolicy {
    fn default() -> Self {
        Self {
            limit_cores: 0.25,
            reruns: 2,
        }
    }
}

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
    /// The C10K measurement: the models and the idle connections each must hold.
    pub c10k: Option<(Vec<Model>, usize)>,
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
                    unavailable.push(point.model);
                    skipped.push(format!("{}: {why}", point.model));
                    false
                }
            }
        })
        .collect();
    (kept, skipped)
}

/// One measured trial: a model at one load in one round.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PointResult {
    /// What was measured.
    pub point: Point,
    /// Position in the run's order (0-based).
    pub order: usize,
    /// `ok`, or `failed` when the server did not start, crashed, or did not exit cleanly.
    pub status: String,
    /// Why it failed.
    pub failure: Option<String>,
    /// The load generator's report (present when the load ran, even if the server then failed).
    pub report: Option<Report>,
    /// Times the trial ran: 1, plus a re-run for each attempt disturbed by interference.
    pub attempts: u32,
    /// Cores that other tasks (and steal) took in each discarded attempt.
    pub discarded_interference: Vec<f64>,
    /// True when the kept attempt was still above the interference limit.
    pub interfered: bool,
    /// The I/O driver the model's server said it waited on (its `driver:` line); none for an
    /// outside server, a server that did not start, and runs stored before schema 3.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "plan::driver_name"
    )]
    pub driver: Option<echo_servers::Driver>,
}

impl PointResult {
    /// Whether the point ran and the server behaved.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }

    /// Cores other tasks took during the kept attempt, if measured.
    pub fn interference_cores(&self) -> Option<f64> {
        self.report.as_ref()?.machine.map(|m| m.other_cores)
    }
}

/// A whole suite run, as stored in `run.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SuiteRun {
    /// Format version of this file.
    pub schema: u32,
    /// The profile.
    pub profile: Profile,
    /// The command that produced it.
    pub command: String,
    /// Machine and build.
    pub meta: Meta,
    /// CPU split used.
    pub pinning: Pinning,
    /// Rounds per point.
    pub rounds: usize,
    /// Seed of the rounds' order: `plan::schedule(points, rounds, seed)` gives it again.
    pub seed: u64,
    /// The interference limit and re-runs used.
    pub interference: InterferencePolicy,
    /// Measured seconds per point.
    pub duration_s: f64,
    /// Warm-up seconds per point.
    pub warmup_s: f64,
    /// Wall-clock seconds the whole run took.
    pub elapsed_s: f64,
    /// Every trial, in the order run.
    pub points: Vec<PointResult>,
    /// Each model's capacity under the objective (capacity and full profiles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity: Vec<capacity::ModelCapacity>,
    /// The objective of the capacity search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_objective: Option<crate::capacity::Objective>,
    /// Models this machine could not run, with the reason.
    pub skipped: Vec<String>,
    /// The outside servers measured beside the models, with their commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside: Vec<OutsideServer>,
    /// The C10K measurement, per model (c10k and full profiles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub c10k: Vec<c10k::Holding>,
    /// True when the run was interrupted (SIGINT, SIGTERM): it holds only the trials measured
    /// before, and the reports say so.
    #[serde(default, skip_serializing_if = "is_false")]
    pub partial: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// The `schema` versions of run.json this version reads (and, the last, writes). Schema 3 added
/// each trial's `driver` and gave the name `io-uring` to the model written on the ring itself:
/// in runs before it, `io-uring` is the model now called `tokio-uring`.
pub const SCHEMAS: [u64; 3] = [1, 2, 3];

/// The model names a run of an older schema used for a model since renamed: (before, now).
const RENAMED_BEFORE_SCHEMA_3: [(&str, &str); 1] = [("io-uring", "tokio-uring")];

/// Renames, in a run.json of schema 1 or 2, every server name that has since been renamed
/// (in points, capacity searches, C10K holdings and the skipped list), so the old run reads back as the
/// models it measured and not as the newer model that took the name.
fn rename_old_models(value: &mut serde_json::Value) {
    use serde_json::Value;
    if value
        .get("schema")
        .and_then(Value::as_u64)
        .is_none_or(|s| s >= 3)
    {
        return;
    }
    let renamed = |name: &str| {
        RENAMED_BEFORE_SCHEMA_3
            .iter()
            .find(|(before, _)| *before == name)
            .map(|(_, now)| *now)
    };
    let rename_field = |item: &mut Value, field: &str| {
        if let Some(Value::String(name)) = item.get_mut(field)
            && let Some(now) = renamed(name)
        {
            *name = now.to_owned();
        }
    };
    for point in value
        .get_mut("points")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(inner) = point.get_mut("point") {
            rename_field(inner, "model");
        }
    }
    for section in ["capacity", "c10k"] {
        for item in value
            .get_mut(section)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            rename_field(item, "model");
        }
    }
    for skipped in value
        .get_mut("skipped")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Value::String(text) = skipped {
            for (before, now) in RENAMED_BEFORE_SCHEMA_3 {
                if let Some(rest) = text.strip_prefix(&format!("{before}:")) {
                    *text = format!("{now}:{rest}");
                }
            }
        }
    }
}

/// Checks that `value` has the fields every run.json any version wrote has, each of its type
/// (`schema` one of [`SCHEMAS`], `profile`, `command`, `meta` with `host` and `time`, `points`
/// whose entries have `point` and `status`, `duration_s`, `warmup_s`): a JSON object that is
/// not a suite run is refused, not read as an empty run (every field has a serde default).
/// `Err` says, in a few words, what is missing.
pub fn recognise(value: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    let field = |name: &str| value.get(name);
    let has = |name: &str, ok: fn(&Value) -> bool| match field(name) {
        Some(v) if ok(v) => Ok(()),
        Some(_) => Err(format!("its `{name}` is not what a suite run holds")),
        None => Err(format!("it has no `{name}`")),
    };
    if !value.is_object() {
        return Err("it is not a JSON object".into());
    }
    match field("schema").and_then(Value::as_u64) {
        Some(schema) if SCHEMAS.contains(&schema) => {}
        Some(schema) => return Err(format!("its schema {schema} is not one this version reads")),
        None => return Err("it has no numeric `schema`".into()),
    }
    has("profile", Value::is_string)?;
    has("command", Value::is_string)?;
    has("meta", |m| {
        m.get("host").is_some_and(Value::is_string) && m.get("time").is_some_and(Value::is_string)
    })?;
    has("duration_s", Value::is_number)?;
    has("warmup_s", Value::is_number)?;
    has("points", |p| {
        p.as_array().is_some_and(|points| {
            points.iter().all(|p| {
                p.get("point").is_some_and(Value::is_object)
                    && p.get("status").is_some_and(Value::is_string)
            })
        })
    })
}

impl SuiteRun {
    /// A suite run from run.json's text, recognised by its fields first ([`recognise`]).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("it is not JSON: {e}"))?;
        Self::from_value(value)
    }

    /// [`SuiteRun::from_json`] of parsed JSON.
    pub fn from_value(mut value: serde_json::Value) -> Result<Self, String> {
        recognise(&value)?;
        rename_old_models(&mut value);
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
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
/// trial that ends after an interrupt ([`crate::child::interrupted`]) is not kept.
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
        if crate::child::interrupted() {
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
    for (i, point) in order.iter().enumerate() {
        on_point(i, total, &point.label());
        let mut result = trial(options, point);
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
    if let Some((models, target)) = &options.c10k {
        for model in models {
            on_point(
                total,
                total,
                &format!("{model}: holding {target} connections"),
            );
            let holding = c10k::measure(options, *model, *target);
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

/// An outside server as run.json records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutsideServer {
    /// Its name in the tables.
    pub name: String,
    /// The command that started it.
    pub command: String,
}

/// The outside servers among `points`, in order.
fn outside_of(points: &[Point]) -> Vec<OutsideServer> {
    let mut outside: Vec<OutsideServer> = Vec::new();
    for server in points.iter().map(|p| p.model).filter(|s| s.is_outside()) {
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

/// Measures one trial, re-running it while other tasks take more than the interference limit
/// (at most `reruns` times); the last attempt is kept and flagged if it is still disturbed.
pub fn trial(options: &SuiteOptions, point: &Point) -> PointResult {
    let policy = options.interference;
    let mut discarded = Vec::new();
    loop {
        let mut result = measure(options, point);
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

/// Measures one point on a fresh server process.
pub fn measure(options: &SuiteOptions, point: &Point) -> PointResult {
    let failed = |why: String, report: Option<Report>| PointResult {
        point: point.clone(),
        status: "failed".into(),
        failure: Some(why),
        report,
        ..PointResult::default()
    };
    let work = if point.work_us > 0 {
        vec!["--work-us".to_owned(), point.work_us.to_string()]
    } else {
        Vec::new()
    };
    let server = match options.launcher.start_with(
        point.model,
        point.transport,
        options.pinning.server_cpus.as_deref(),
        &work,
    ) {
        Ok(server) => server,
        Err(err) => return failed(format!("server did not start: {err}"), None),
    };
    let client_threads = options
        .pinning
        .client_cpus
        .as_ref()
        .map_or_else(crate::config::default_threads, Vec::len);
    let config = RunConfig {
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
        ..RunConfig::default()
    };
    if let Err(err) = config.validate() {
        return failed(format!("invalid point: {err}"), None);
    }
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
            status: "ok".into(),
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

    #[test]
    fn a_trial_not_on_its_models_first_choice_is_a_fallback() {
        use echo_servers::{Driver, Model};
        let trial = |model: Model, driver: Option<Driver>| PointResult {
            point: Point {
                model: model.into(),
                ..Point::default()
            },
            status: "ok".into(),
            driver,
            ..PointResult::default()
        };
        let run = SuiteRun {
            points: vec![
                trial(Model::Tokio, Some(Driver::Epoll)),
                trial(Model::Mio, Some(Driver::Epoll)),
                trial(Model::Mio, Some(Driver::IoUring)),
                trial(Model::Blocking, None),
            ],
            ..SuiteRun::default()
        };
        let drivers = output::drivers_of(&run);
        assert_eq!(
            drivers.len(),
            2,
            "a model that reported no driver is left out"
        );
        assert_eq!(drivers[0].model, Model::Mio, "in registry order");
        assert_eq!(drivers[0].drivers, [Driver::Epoll, Driver::IoUring]);
        assert_eq!(drivers[0].fallbacks, [Driver::IoUring]);
        assert_eq!(drivers[1].fallbacks, []);
    }
}
