//! The main job: start every model as its own process, measure it at every point of a profile,
//! and store the run (figures, charts, advice) under `results/`.
//!
//! Each point gets a fresh server process, pinned to the server's CPUs, so one point's memory or
//! a crash never leaks into the next. A model that fails to start or crashes is recorded as
//! failed and the suite goes on.

pub mod advice;
pub mod charts;
pub mod output;
pub mod plan;
pub mod process;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use echo_servers::Model;
use serde::{Deserialize, Serialize};

use crate::config::{RunConfig, Stop, Workload};
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
    /// Half the allowed CPUs each (server first), where there are at least two.
    pub fn halves() -> Self {
        let cpus = crate::procfs::allowed_cpus();
        if cpus.len() < 2 {
            return Self::default();
        }
        let (server, client) = cpus.split_at(cpus.len() / 2);
        Self {
            server_cpus: Some(server.to_vec()),
            client_cpus: Some(client.to_vec()),
        }
    }
}

/// Everything a suite run needs.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The points to measure.
    pub points: Vec<Point>,
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
    /// p99 target of the capacity-knee search (full profile).
    pub p99_target: Duration,
    /// Whether to search each model's capacity knee.
    pub knee: bool,
    /// Where run folders go.
    pub results_dir: PathBuf,
    /// How servers are started.
    pub launcher: Launcher,
    /// The command line, recorded for reproduction.
    pub command_line: String,
    /// Models left out because this machine cannot run them, with the reason.
    pub skipped: Vec<String>,
}

/// Removes the points of models this machine cannot run ([`Model::available`]); returns the
/// rest and one `model: reason` line per model removed.
pub fn without_unavailable(points: Vec<Point>) -> (Vec<Point>, Vec<String>) {
    let mut skipped: Vec<String> = Vec::new();
    let mut unavailable: Vec<Model> = Vec::new();
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

/// One measured point.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PointResult {
    /// What was measured.
    pub point: Point,
    /// `ok`, or `failed` when the server did not start, crashed, or did not exit cleanly.
    pub status: String,
    /// Why it failed.
    pub failure: Option<String>,
    /// The load generator's report (present when the load ran, even if the server then failed).
    pub report: Option<Report>,
}

impl PointResult {
    /// Whether the point ran and the server behaved.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// A model's capacity knee: the highest open-loop rate whose p99 stayed under the target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Knee {
    /// The model.
    pub model: String,
    /// Highest rate tried that met the target (0 if none did).
    pub rate: f64,
    /// p99 at that rate, µs.
    pub p99_us: u64,
    /// The rates tried and their p99, in order.
    pub tried: Vec<(f64, u64)>,
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
    /// Measured seconds per point.
    pub duration_s: f64,
    /// Warm-up seconds per point.
    pub warmup_s: f64,
    /// Wall-clock seconds the whole run took.
    pub elapsed_s: f64,
    /// Every point.
    pub points: Vec<PointResult>,
    /// Capacity knees (full profile).
    pub knees: Vec<Knee>,
    /// p99 target of the knee search, µs.
    pub p99_target_us: u64,
    /// Models this machine could not run, with the reason.
    pub skipped: Vec<String>,
}

/// Runs the suite, calling `on_point(done, total, label)` before each point.
pub fn run(options: &SuiteOptions, on_point: &mut dyn FnMut(usize, usize, &str)) -> SuiteRun {
    let began = Instant::now();
    let meta = Meta::current();
    let total = options.points.len();
    let mut points = Vec::with_capacity(total);
    for (i, point) in options.points.iter().enumerate() {
        on_point(i, total, &point.label());
        points.push(measure(options, point));
    }
    let mut knees = Vec::new();
    if options.knee {
        let mut models: Vec<Model> = options.points.iter().map(|p| p.model).collect();
        models.dedup();
        for model in models {
            on_point(total, total, &format!("{model}: capacity knee"));
            knees.push(find_knee(options, model));
        }
    }
    SuiteRun {
        schema: 1,
        profile: options.profile,
        command: options.command_line.clone(),
        meta,
        pinning: options.pinning.clone(),
        duration_s: options.duration.as_secs_f64(),
        warmup_s: options.warmup.as_secs_f64(),
        elapsed_s: began.elapsed().as_secs_f64(),
        points,
        knees,
        p99_target_us: options.p99_target.as_micros() as u64,
        skipped: options.skipped.clone(),
    }
}

/// Measures one point on a fresh server process.
pub fn measure(options: &SuiteOptions, point: &Point) -> PointResult {
    let failed = |why: String, report: Option<Report>| PointResult {
        point: point.clone(),
        status: "failed".into(),
        failure: Some(why),
        report,
    };
    let work = if point.work_us > 0 {
        vec!["--work-us".to_owned(), point.work_us.to_string()]
    } else {
        Vec::new()
    };
    let server = match options.launcher.start_with(
        point.model,
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
        target: server.addr(),
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
        seed: 0x5eed ^ point.repeat as u64,
        ..RunConfig::default()
    };
    if let Err(err) = config.validate() {
        return failed(format!("invalid point: {err}"), None);
    }
    let report = match engine::run(&config, &mut |_| {}) {
        Ok(outcome) => Report::new(&config, &outcome),
        Err(err) => return failed(format!("load generator failed: {err}"), None),
    };
    match server.stop() {
        Ok(()) => PointResult {
            point: point.clone(),
            status: "ok".into(),
            failure: None,
            report: Some(report),
        },
        Err(why) => failed(why, Some(report)),
    }
}

/// Bisects the open-loop rate at 100 connections × 64 B for the highest rate whose p99 stays
/// under the target: at most eight probes of the point's length each.
fn find_knee(options: &SuiteOptions, model: Model) -> Knee {
    let target_us = options.p99_target.as_micros() as u64;
    let mut knee = Knee {
        model: model.name().into(),
        ..Knee::default()
    };
    let probe = |rate: f64| -> Option<u64> {
        let point = Point {
            model,
            workload: Workload::Rate,
            connections: 100,
            payload: 64,
            rate: Some(rate),
            work_us: 0,
            repeat: 0,
        };
        let result = measure(options, &point);
        let report = result
            .report
            .filter(|r| r.is_clean() && result.status == "ok")?;
        // A rate the server could not keep up with fails however good the p99 of what got through.
        let achieved = report.open_loop.map_or(0.0, |o| o.achieved_rps);
        (achieved >= 0.95 * rate).then_some(report.latency_us.p99)
    };
    // Probes `rate`, records it, and says whether it met the target.
    let meets = |rate: f64, knee: &mut Knee| match probe(rate) {
        Some(p99) if p99 <= target_us => {
            knee.tried.push((rate, p99));
            knee.rate = rate;
            knee.p99_us = p99;
            true
        }
        other => {
            knee.tried.push((rate, other.unwrap_or(u64::MAX)));
            false
        }
    };
    let (mut low, mut high) = (1_000.0_f64, 1_000.0_f64);
    // Grow until the target is missed, then bisect.
    for _ in 0..5 {
        if !meets(high, &mut knee) {
            break;
        }
        low = high;
        high *= 4.0;
    }
    for _ in 0..3 {
        if knee.rate == 0.0 || high <= low * 1.1 {
            break;
        }
        let mid = (low + high) / 2.0;
        if meets(mid, &mut knee) {
            low = mid;
        } else {
            high = mid;
        }
    }
    knee
}
