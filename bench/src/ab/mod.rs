//! `echo-bench ab`: a paired comparison of two builds of this suite (base and head) on this
//! machine, with a verdict a CI job can act on.
//!
//! Run-to-run noise on a shared machine is larger than the regressions worth catching, so base
//! and head are never compared across runs: each benchmark is measured as pairs of short trials,
//! each trial with a fresh server process, both sides pinned alike, started in ABBA/BAAB blocks
//! (so neither side always goes first).
//!
//! By default a pair's two trials run at the same time on the same CPUs (a *duet*, Bulej et al.,
//! ICPE 2020): on this project's 2-core VM, A/A pairs of back-to-back trials differ by 8–12%
//! (the machine's own noise changes that fast), while the two halves of a duet differ by about
//! 0.5–0.8%, because whatever the machine does hits both at once (README, "Catching
//! regressions"). The price
//! is that the two builds compete for the CPUs, which is symmetric and so cancels in the ratio.
//! `--sequential` runs them back to back instead. Each build drives its own server
//! with its own load generator (`BIN serve` and `BIN run`), so a change to a model, to a
//! dependency or to the load generator is compared the same way. [`stats`] turns the pairs
//! into a ratio with a confidence interval and a verdict; a regression is re-measured before it
//! is reported.

pub mod compare;
pub mod export;
pub mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::{Workload, parse_bytes};
use crate::meta::Meta;
use crate::report::Report;
use crate::suite::process::ServerProcess;
use crate::suite::{Launcher, Pinning};
pub use stats::{Change, Estimate, Verdict};

/// The default threshold for wall-clock metrics, %.
pub const DEFAULT_THRESHOLD_PCT: f64 = 3.0;
/// The default offered rate of a `rate` benchmark without `@RATE`, messages per second.
pub const DEFAULT_RATE: f64 = 5_000.0;
/// The benchmarks compared when none are named: the two most used async designs at one
/// connection (latency-bound: every microsecond a message costs shows), and connection churn on
/// a work-stealing runtime and on async-std. These are the points where, on a 2-core machine
/// with the client on one core, the server and not the load generator sets the pace; at 64
/// connections the client saturates first, which `ab` would report as invalid.
pub const DEFAULT_BENCHMARKS: &str =
    "ping-pong/tokio/1,ping-pong/mio/1,churn/tokio/1,churn/async-std/1";

/// One benchmark: `WORKLOAD/MODEL/CONNECTIONS[/PAYLOAD][@RATE]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkSpec {
    /// The traffic pattern.
    pub workload: Workload,
    /// The server model's name.
    pub model: String,
    /// Concurrent connections.
    pub connections: usize,
    /// Bytes per message.
    pub payload: usize,
    /// Offered messages per second (rate workload only).
    pub rate: Option<f64>,
}

impl BenchmarkSpec {
    /// Parses `ping-pong/tokio/1`, `rate/mio/64@20000`, `ping-pong/mio/16/4k`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("benchmark '{text}': {why}");
        let (path, rate) = match text.split_once('@') {
            Some((path, rate)) => (
                path,
                Some(
                    rate.parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r > 0.0)
                        .ok_or_else(|| bad("the rate after @ must be a positive number"))?,
                ),
            ),
            None => (text, None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        if !(3..=4).contains(&parts.len()) {
            return Err(bad("expected WORKLOAD/MODEL/CONNECTIONS[/PAYLOAD][@RATE]"));
        }
        let workload = <Workload as clap::ValueEnum>::from_str(parts[0], true)
            .map_err(|_| bad("workload must be ping-pong, rate, churn or stream"))?;
        let model = parts[1]
            .parse::<echo_servers::Model>()
            .map_err(|_| bad(&format!("valid models: {}", echo_servers::Model::names())))?;
        let connections = parts[2]
            .parse::<usize>()
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| bad("connections must be a positive number"))?;
        let payload = match parts.get(3) {
            Some(p) => parse_bytes(p).map_err(|e| bad(&e))?,
            None => 64,
        };
        if rate.is_some() && workload != Workload::Rate {
            return Err(bad("@RATE applies to the rate workload only"));
        }
        let rate = match workload {
            Workload::Rate => Some(rate.unwrap_or(DEFAULT_RATE)),
            _ => None,
        };
        Ok(Self {
            workload,
            model: model.name().to_owned(),
            connections,
            payload,
            rate,
        })
    }

    /// The canonical name, as parsed.
    pub fn name(&self) -> String {
        let mut name = format!("{}/{}/{}", self.workload, self.model, self.connections);
        if self.payload != 64 {
            name.push_str(&format!("/{}", self.payload));
        }
        if let Some(rate) = self.rate {
            name.push_str(&format!("@{rate}"));
        }
        name
    }

    /// The metric the verdict is made on: throughput for closed loops; for an open loop, whose
    /// throughput is fixed by the offered rate, the server's CPU per message.
    pub fn primary(&self) -> Metric {
        match self.workload {
            Workload::Rate => Metric::ServerCpuPerMessage,
            _ => Metric::Throughput,
        }
    }
}

/// A figure taken from each trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Messages per second.
    Throughput,
    /// Median latency, µs.
    P50,
    /// 99th-percentile latency, µs.
    P99,
    /// Server CPU time per message, µs.
    ServerCpuPerMessage,
    /// Server context switches per message.
    ContextSwitchesPerMessage,
    /// Server read/write syscalls per message (from /proc/PID/io; absent where it counts none).
    SyscallsPerMessage,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 6] = [
        Metric::Throughput,
        Metric::P50,
        Metric::P99,
        Metric::ServerCpuPerMessage,
        Metric::ContextSwitchesPerMessage,
        Metric::SyscallsPerMessage,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput",
            Metric::P50 => "p50",
            Metric::P99 => "p99",
            Metric::ServerCpuPerMessage => "server_cpu_per_msg",
            Metric::ContextSwitchesPerMessage => "ctx_switches_per_msg",
            Metric::SyscallsPerMessage => "syscalls_per_msg",
        }
    }

    /// Its unit.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Throughput => "msg/s",
            Metric::P50 | Metric::P99 | Metric::ServerCpuPerMessage => "µs",
            Metric::ContextSwitchesPerMessage | Metric::SyscallsPerMessage => "per msg",
        }
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        self == Metric::Throughput
    }

    /// The value in a trial's report, if it has one.
    pub fn of(self, report: &Report) -> Option<f64> {
        let messages = report.messages as f64;
        let per_message = |x: f64| (messages > 0.0).then(|| x / messages);
        let value = match self {
            Metric::Throughput => Some(report.throughput_rps),
            Metric::P50 => Some(report.latency_us.p50 as f64),
            Metric::P99 => Some(report.latency_us.p99 as f64),
            Metric::ServerCpuPerMessage => report
                .server
                .as_ref()
                .and_then(|s| per_message(s.cpu_s * 1e6)),
            Metric::ContextSwitchesPerMessage => report
                .server
                .as_ref()
                .and_then(|s| per_message(s.context_switches as f64)),
            Metric::SyscallsPerMessage => report
                .server
                .as_ref()
                .filter(|s| s.syscalls > 0)
                .and_then(|s| per_message(s.syscalls as f64)),
        };
        value.filter(|v| v.is_finite() && *v > 0.0)
    }
}

/// Which build a trial ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The reference build.
    Base,
    /// The build under test.
    Head,
}

/// A build to compare: a binary of this suite and extra arguments for its servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    /// The `echo-bench` binary.
    pub binary: PathBuf,
    /// Extra `serve` arguments (e.g. the `--handicap-ns` testing aid).
    pub server_args: Vec<String>,
    /// What the build reported about itself (from its first trial).
    pub meta: Option<Meta>,
}

/// Everything an `ab` run needs.
#[derive(Debug, Clone)]
pub struct AbOptions {
    /// The reference build.
    pub base: Build,
    /// The build under test.
    pub head: Build,
    /// What to compare.
    pub benchmarks: Vec<BenchmarkSpec>,
    /// Pairs per benchmark.
    pub pairs: usize,
    /// Measured time per trial.
    pub trial: Duration,
    /// Warm-up per trial.
    pub warmup: Duration,
    /// The user's threshold, %.
    pub threshold_pct: f64,
    /// Noise floors from a calibration (A/A) run, % by benchmark name.
    pub calibration: BTreeMap<String, f64>,
    /// Seed of the trial order and of the bootstrap.
    pub seed: u64,
    /// Whether to re-run flagged benchmarks before reporting a regression.
    pub confirm: bool,
    /// CPU split, the same for both builds.
    pub pinning: Pinning,
    /// Run each pair's two trials at the same time (duet) rather than one after the other.
    pub duet: bool,
    /// Count an inconclusive benchmark as a failure (exit 1), in the report as in the exit code.
    pub strict: bool,
}

impl AbOptions {
    /// Whether base and head are the same build run the same way: an A/A calibration.
    pub fn is_aa(&self) -> bool {
        let same_binary = match (
            self.base.binary.canonicalize(),
            self.head.binary.canonicalize(),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => self.base.binary == self.head.binary,
        };
        same_binary && self.base.server_args == self.head.server_args
    }
}

/// One trial: one build, one benchmark, one fresh server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sample {
    /// Each metric's value.
    pub metrics: BTreeMap<Metric, f64>,
    /// Messages measured.
    pub messages: u64,
    /// Errors of any kind, echo mismatches included.
    pub errors: u64,
    /// The client's utilisation of its cores (1 = saturated).
    pub client_utilisation: f64,
    /// The server's CPU use, in cores.
    pub server_cores: f64,
    /// Why the trial cannot be used, if it cannot.
    pub invalid: Option<String>,
    /// Seconds since the start of the `ab` run.
    pub at_s: f64,
}

/// One pair of trials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pair {
    /// `AB` (base first) or `BA`.
    pub order: String,
    /// Why the pair is left out of the statistics although both trials ran cleanly (the client
    /// side was saturated, so the load generator set the pace).
    pub excluded: Option<String>,
    /// The base trial.
    pub base: Sample,
    /// The head trial.
    pub head: Sample,
}

/// A metric's comparison within one benchmark.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricResult {
    /// The metric.
    pub metric: Option<Metric>,
    /// Its unit.
    pub unit: String,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// Whether the benchmark's verdict is made on it.
    pub primary: bool,
    /// Median over base trials.
    pub base_median: f64,
    /// Median over head trials.
    pub head_median: f64,
    /// The paired change (absent with fewer than two usable pairs).
    pub change: Option<Change>,
    /// This metric's own verdict (informational unless primary).
    pub verdict: Verdict,
}

/// One benchmark's comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchmarkResult {
    /// Its name.
    pub name: String,
    /// What it ran (absent only in hand-edited files).
    pub spec: Option<BenchmarkSpec>,
    /// The verdict (on the primary metric, after confirmation).
    pub verdict: Verdict,
    /// The threshold applied: max(user threshold, calibrated noise floor), %.
    pub threshold_pct: f64,
    /// The calibrated noise floor used, %.
    pub calibrated_floor_pct: Option<f64>,
    /// In an A/A run, the noise floor measured here (largest change the interval allows), %.
    pub noise_floor_pct: Option<f64>,
    /// Pairs that would make the minimum detectable effect reach the threshold.
    pub pairs_needed: Option<usize>,
    /// Why it is invalid or inconclusive, in words.
    pub note: Option<String>,
    /// Per metric.
    pub metrics: Vec<MetricResult>,
    /// The pairs, in the order run.
    pub pairs: Vec<Pair>,
    /// The re-run that confirmed (or did not confirm) a regression.
    pub confirmation: Option<Box<BenchmarkResult>>,
}

impl BenchmarkResult {
    /// The primary metric's result.
    pub fn primary(&self) -> Option<&MetricResult> {
        self.metrics.iter().find(|m| m.primary)
    }
}

/// A whole `ab` run, as written by `--json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AbReport {
    /// Format version.
    pub schema: u32,
    /// The command line.
    pub command: String,
    /// This tool and machine.
    pub meta: Meta,
    /// The reference build.
    pub base: Option<Build>,
    /// The build under test.
    pub head: Option<Build>,
    /// Whether base and head were the same build (an A/A calibration).
    pub aa: bool,
    /// Pairs per benchmark.
    pub pairs: usize,
    /// `duet` (each pair's trials at the same time) or `sequential`.
    pub mode: String,
    /// Seed of the order and the bootstrap.
    pub seed: u64,
    /// Measured seconds per trial.
    pub trial_s: f64,
    /// Warm-up seconds per trial.
    pub warmup_s: f64,
    /// The user's threshold, %.
    pub threshold_pct: f64,
    /// CPU split.
    pub pinning: Pinning,
    /// Per benchmark.
    pub benchmarks: Vec<BenchmarkResult>,
    /// Wall time of the whole run, s.
    pub elapsed_s: f64,
    /// The exit code this run gives (0, 1 or 2) and why.
    pub exit_code: u8,
    /// One line saying what the run concluded.
    pub conclusion: String,
    /// Warnings (inconclusive benchmarks, unconfirmed regressions).
    pub warnings: Vec<String>,
}

impl AbReport {
    /// Reads a report written by `--json` (also what `--calibration` takes).
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not an `ab` JSON report: {e}", path.display()))
    }

    /// The noise floors an A/A report measured, % by benchmark.
    pub fn noise_floors(&self) -> BTreeMap<String, f64> {
        self.benchmarks
            .iter()
            .filter_map(|b| {
                let floor = b.noise_floor_pct.or_else(|| {
                    b.primary()
                        .and_then(|m| m.change.as_ref())
                        .map(Change::noise_floor_pct)
                })?;
                Some((b.name.clone(), floor))
            })
            .collect()
    }
}

/// Progress, reported after each trial: trials done, trials planned, what just ran.
pub type OnTrial<'a> = dyn FnMut(usize, usize, &str) + 'a;

/// Runs the comparison (and the confirmation of any regression) and judges it.
pub fn run(options: &AbOptions, command: &str, on_trial: &mut OnTrial<'_>) -> AbReport {
    let started = Instant::now();
    let mut base = options.base.clone();
    let mut head = options.head.clone();
    let all: Vec<usize> = (0..options.benchmarks.len()).collect();
    let mut plan = Plan::new(options, &all, options.seed, started);
    let pairs = plan.run(&mut base, &mut head, on_trial);
    let mut results: Vec<BenchmarkResult> = all
        .iter()
        .zip(pairs)
        .map(|(&i, pairs)| judge(options, &options.benchmarks[i], pairs, options.seed))
        .collect();

    let flagged: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| results[i].verdict == Verdict::Regressed)
        .collect();
    if options.confirm && !flagged.is_empty() {
        let seed = options.seed.wrapping_add(1);
        let mut plan = Plan::new(options, &flagged, seed, started);
        let pairs = plan.run(&mut base, &mut head, on_trial);
        for (&i, pairs) in flagged.iter().zip(pairs) {
            let again = judge(options, &options.benchmarks[i], pairs, seed);
            let result = &mut results[i];
            if again.verdict != Verdict::Regressed {
                result.verdict = Verdict::Inconclusive;
                result.note = Some(format!(
                    "regression not confirmed: the re-run says {}",
                    again.verdict.name()
                ));
            }
            result.confirmation = Some(Box::new(again));
        }
    }

    let aa = options.is_aa();
    let mut report = AbReport {
        schema: 1,
        command: command.to_owned(),
        meta: Meta::current(),
        base: Some(base),
        head: Some(head),
        aa,
        pairs: options.pairs,
        mode: if options.duet { "duet" } else { "sequential" }.to_owned(),
        seed: options.seed,
        trial_s: options.trial.as_secs_f64(),
        warmup_s: options.warmup.as_secs_f64(),
        threshold_pct: options.threshold_pct,
        pinning: options.pinning.clone(),
        benchmarks: results,
        ..AbReport::default()
    };
    conclude(&mut report, options.confirm, options.strict);
    report.elapsed_s = started.elapsed().as_secs_f64();
    report
}

/// Sets the exit code, the one-line conclusion and the warnings.
fn conclude(report: &mut AbReport, confirmed: bool, strict: bool) {
    let named = |verdict: Verdict| -> Vec<String> {
        report
            .benchmarks
            .iter()
            .filter(|b| b.verdict == verdict)
            .map(|b| b.name.clone())
            .collect()
    };
    let invalid = named(Verdict::Invalid);
    let regressed = named(Verdict::Regressed);
    let inconclusive = named(Verdict::Inconclusive);
    for b in &report.benchmarks {
        if b.verdict == Verdict::Inconclusive {
            let why = match (b.pairs_needed, &b.note) {
                (Some(needed), _) => format!(
                    "too noisy to tell a {:.1}% change; about {needed} pairs would",
                    b.threshold_pct
                ),
                (None, Some(note)) => note.clone(),
                (None, None) => "no verdict".into(),
            };
            report
                .warnings
                .push(format!("{}: inconclusive: {why}", b.name));
        }
    }
    let (code, conclusion) = if !invalid.is_empty() {
        (2, format!("invalid: {}", invalid.join(", ")))
    } else if !regressed.is_empty() {
        let how = if confirmed {
            "confirmed regression"
        } else {
            "regression (not re-run)"
        };
        (1, format!("{how}: {}", regressed.join(", ")))
    } else if !inconclusive.is_empty() && strict {
        (
            1,
            format!(
                "inconclusive, which --strict counts as a failure: {}",
                inconclusive.join(", ")
            ),
        )
    } else if !inconclusive.is_empty() {
        (
            0,
            format!(
                "no confirmed regression; inconclusive: {}",
                inconclusive.join(", ")
            ),
        )
    } else {
        (0, "no regression".to_owned())
    };
    report.exit_code = code;
    report.conclusion = conclusion;
}

/// Judges one benchmark's pairs.
fn judge(
    options: &AbOptions,
    spec: &BenchmarkSpec,
    pairs: Vec<Pair>,
    seed: u64,
) -> BenchmarkResult {
    let name = spec.name();
    let primary = spec.primary();
    let calibrated = options.calibration.get(&name).copied();
    let threshold_pct = calibrated.map_or(options.threshold_pct, |floor| {
        floor.max(options.threshold_pct)
    });
    let mut invalid: Vec<String> = pairs
        .iter()
        .flat_map(|p| [(&p.base, "base"), (&p.head, "head")])
        .filter_map(|(s, side)| s.invalid.as_ref().map(|why| format!("{side}: {why}")))
        .collect();
    let excluded: Vec<String> = pairs.iter().filter_map(|p| p.excluded.clone()).collect();
    let usable = pairs.len() - excluded.len();
    if invalid.is_empty() && !excluded.is_empty() && usable < (pairs.len() / 2).max(2) {
        invalid.push(format!(
            "{} of {} pairs left out: {}",
            excluded.len(),
            pairs.len(),
            excluded[0]
        ));
    }
    let metrics: Vec<MetricResult> = Metric::ALL
        .iter()
        .enumerate()
        .filter_map(|(k, &metric)| {
            let values: Vec<(f64, f64)> = pairs
                .iter()
                .filter(|p| {
                    p.base.invalid.is_none() && p.head.invalid.is_none() && p.excluded.is_none()
                })
                .filter_map(|p| {
                    Some((*p.base.metrics.get(&metric)?, *p.head.metrics.get(&metric)?))
                })
                .collect();
            if values.is_empty() {
                return None;
            }
            let median = |side: fn(&(f64, f64)) -> f64| {
                stats::median_of(&values.iter().map(side).collect::<Vec<_>>())
            };
            let change = Change::of(&values, seed ^ (k as u64 + 1).wrapping_mul(0xA24B_AED4));
            let verdict = change.as_ref().map_or(Verdict::Inconclusive, |c| {
                c.verdict(threshold_pct, metric.higher_is_better())
            });
            Some(MetricResult {
                metric: Some(metric),
                unit: metric.unit().to_owned(),
                higher_is_better: metric.higher_is_better(),
                primary: metric == primary,
                base_median: median(|v| v.0),
                head_median: median(|v| v.1),
                change,
                verdict,
            })
        })
        .collect();
    let pairs_len = pairs.len();
    let mut result = BenchmarkResult {
        name,
        spec: Some(spec.clone()),
        threshold_pct,
        calibrated_floor_pct: calibrated,
        metrics,
        pairs,
        ..BenchmarkResult::default()
    };
    if !invalid.is_empty() {
        result.verdict = Verdict::Invalid;
        let more = if invalid.len() > 1 {
            format!(" (and {} more)", invalid.len() - 1)
        } else {
            String::new()
        };
        result.note = Some(format!("{}{more}", invalid[0]));
        return result;
    }
    let Some(change) = result.primary().and_then(|m| m.change.clone()) else {
        result.verdict = Verdict::Invalid;
        result.note = Some(format!("no usable {} figures", primary.name()));
        return result;
    };
    result.verdict = change.verdict(threshold_pct, primary.higher_is_better());
    if !excluded.is_empty() {
        result.note = Some(format!(
            "{} of {} pairs left out: {}",
            excluded.len(),
            pairs_len,
            excluded[0]
        ));
    }
    if options.is_aa() {
        result.noise_floor_pct = Some(change.noise_floor_pct());
    }
    if result.verdict == Verdict::Inconclusive {
        result.pairs_needed = Some(change.pairs_needed(threshold_pct));
    }
    result
}

/// The trials of one round of benchmarks, in their ABBA/BAAB order.
struct Plan<'a> {
    options: &'a AbOptions,
    benchmarks: &'a [usize],
    /// Per benchmark, whether each block of two pairs runs ABBA (`true`) or BAAB.
    blocks: Vec<Vec<bool>>,
    started: Instant,
}

impl<'a> Plan<'a> {
    fn new(options: &'a AbOptions, benchmarks: &'a [usize], seed: u64, started: Instant) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let blocks = benchmarks
            .iter()
            .map(|_| {
                (0..options.pairs.div_ceil(2))
                    .map(|_| rng.random())
                    .collect()
            })
            .collect();
        Self {
            options,
            benchmarks,
            blocks,
            started,
        }
    }

    /// Runs every pair: the rounds outermost, so each benchmark's pairs are spread over the
    /// whole run and a slow drift of the machine touches base and head alike.
    fn run(
        &mut self,
        base: &mut Build,
        head: &mut Build,
        on_trial: &mut OnTrial<'_>,
    ) -> Vec<Vec<Pair>> {
        let total = self.options.pairs * self.benchmarks.len() * 2;
        let mut done = 0;
        let mut pairs: Vec<Vec<Pair>> = vec![Vec::new(); self.benchmarks.len()];
        for round in 0..self.options.pairs {
            for (slot, &index) in self.benchmarks.iter().enumerate() {
                let options = self.options;
                let spec = &options.benchmarks[index];
                let abba = self.blocks[slot][round / 2];
                // ABBA: the block's first pair runs base first, its second head first.
                let base_first = abba == (round % 2 == 0);
                let order = if base_first { "AB" } else { "BA" };
                let sides = if base_first {
                    [Side::Base, Side::Head]
                } else {
                    [Side::Head, Side::Base]
                };
                let mut pair = Pair {
                    order: order.to_owned(),
                    ..Pair::default()
                };
                let mut record = |side: Side, sample: Sample, pair: &mut Pair| {
                    done += 1;
                    on_trial(done, total, &format!("{} {}", spec.name(), side_name(side)));
                    match side {
                        Side::Base => pair.base = sample,
                        Side::Head => pair.head = sample,
                    }
                };
                let build = |side: Side| match side {
                    Side::Base => &options.base,
                    Side::Head => &options.head,
                };
                if options.duet {
                    // Both at once, started in the pair's order, so the machine's noise at
                    // that moment hits both alike.
                    let running =
                        sides.map(|side| start_trial(options, build(side), spec, self.started));
                    for (side, running) in sides.into_iter().zip(running) {
                        let target = match side {
                            Side::Base => &mut *base,
                            Side::Head => &mut *head,
                        };
                        let sample = running.map_or_else(|s| s, |r| r.finish(target));
                        record(side, sample, &mut pair);
                    }
                } else {
                    for side in sides {
                        let target = match side {
                            Side::Base => &mut *base,
                            Side::Head => &mut *head,
                        };
                        let sample = start_trial(options, build(side), spec, self.started)
                            .map_or_else(|s| s, |r| r.finish(target));
                        record(side, sample, &mut pair);
                    }
                }
                check_saturation(
                    &mut pair,
                    options.duet,
                    options
                        .pinning
                        .server_cpus
                        .as_ref()
                        .map_or_else(crate::config::default_threads, Vec::len),
                );
                pairs[slot].push(pair);
            }
        }
        pairs
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Base => "base",
        Side::Head => "head",
    }
}

/// How long the client may take beyond its warm-up and measurement before it is killed.
const CLIENT_GRACE: Duration = Duration::from_secs(30);

/// A trial under way: its server and its load generator, both of one build.
struct Running {
    server: ServerProcess,
    client: Result<Child, String>,
    json: PathBuf,
    deadline: Instant,
    at_s: f64,
}

fn invalid_sample(why: String, at_s: f64) -> Sample {
    Sample {
        invalid: Some(why),
        at_s,
        ..Sample::default()
    }
}

/// Starts one trial: a fresh server of `build`, then `build`'s own load generator against it.
fn start_trial(
    options: &AbOptions,
    build: &Build,
    spec: &BenchmarkSpec,
    started: Instant,
) -> Result<Running, Sample> {
    let at_s = started.elapsed().as_secs_f64();
    let model: echo_servers::Model = spec
        .model
        .parse()
        .map_err(|_| invalid_sample(format!("unknown model {}", spec.model), at_s))?;
    let launcher = Launcher {
        program: build.binary.clone(),
        args: vec!["serve".into()],
        extra: vec![(model, build.server_args.clone())],
    };
    let server = launcher
        .start(model, options.pinning.server_cpus.as_deref())
        .map_err(|why| invalid_sample(format!("server: {why}"), at_s))?;
    let json = std::env::temp_dir().join(format!(
        "echo-bench-ab-{}-{}.json",
        std::process::id(),
        server.pid()
    ));
    let mut client = Command::new(&build.binary);
    client
        .arg("run")
        .args(["--target", &server.addr().to_string()])
        .args(["--workload", spec.workload.name()])
        .args(["--connections", &spec.connections.to_string()])
        .args(["--payload", &spec.payload.to_string()])
        .args(["--duration", &format!("{}ms", options.trial.as_millis())])
        .args(["--warmup", &format!("{}ms", options.warmup.as_millis())])
        .args(["--server-pid", &server.pid().to_string()])
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(rate) = spec.rate {
        client.args(["--rate", &rate.to_string()]);
    }
    if let Some(cpus) = &options.pinning.client_cpus {
        let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
        client
            .args(["--client-cpus", &list.join(",")])
            .args(["--threads", &cpus.len().to_string()]);
    }
    let client = client
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", build.binary.display()));
    Ok(Running {
        server,
        client,
        json,
        deadline: Instant::now() + options.warmup + options.trial + CLIENT_GRACE,
        at_s,
    })
}

impl Running {
    /// Waits for the load generator, stops the server, and reads the trial's figures.
    fn finish(self, build: &mut Build) -> Sample {
        let outcome = self
            .client
            .and_then(|child| wait_until(child, self.deadline));
        let stopped = self.server.stop();
        let report = std::fs::read_to_string(&self.json)
            .ok()
            .and_then(|text| serde_json::from_str::<Report>(&text).ok());
        let _ = std::fs::remove_file(&self.json);
        let Some(report) = report else {
            let why = outcome
                .err()
                .unwrap_or_else(|| "it wrote no JSON report".into());
            return invalid_sample(format!("client: {why}"), self.at_s);
        };
        if build.meta.is_none() {
            build.meta = Some(report.meta.clone());
        }
        let mut sample = Sample {
            metrics: Metric::ALL
                .iter()
                .filter_map(|&m| Some((m, m.of(&report)?)))
                .collect(),
            messages: report.messages,
            errors: report.errors.total(),
            client_utilisation: report.client.utilisation,
            server_cores: report.server.as_ref().map_or(0.0, |s| s.cpu_cores),
            invalid: None,
            at_s: self.at_s,
        };
        sample.invalid = if sample.errors > 0 {
            Some(format!("{} echo error(s)", sample.errors))
        } else if let Err(why) = stopped {
            Some(format!("server: {why}"))
        } else if report.messages == 0 {
            Some("no messages were measured".into())
        } else {
            None
        };
        sample
    }
}

/// Waits for `child` until `deadline`, killing it then; `Err` says what went wrong (a run that
/// saw errors exits 1 but still wrote its report, which the caller reads).
fn wait_until(mut child: Child, deadline: Instant) -> Result<(), String> {
    match crate::suite::process::wait_until(&mut child, deadline) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use std::io::Read;
                let _ = pipe.read_to_string(&mut stderr);
            }
            let line = stderr.lines().last().unwrap_or("").trim().to_owned();
            Err(format!("exited with {status}: {line}"))
        }
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("did not finish in time".into())
        }
        Err(e) => Err(format!("cannot wait for it: {e}")),
    }
}

/// Leaves a pair out of the statistics if the load generator, not the server, set the pace: the
/// client's CPUs were saturated while the server's still had room. Such a pair is not wrong, only
/// uninformative; a benchmark where most pairs are is invalid (see `judge`). (When both sides are full,
/// as churn on loopback often makes them, the two builds share the same bottleneck and the
/// comparison stands.) In a duet both clients share the client CPUs and both servers the server
/// CPUs, so their figures add up.
fn check_saturation(pair: &mut Pair, duet: bool, server_cpus: usize) {
    const SATURATED: f64 = 0.9;
    let combine = |a: f64, b: f64| if duet { a + b } else { a.max(b) };
    let client = combine(pair.base.client_utilisation, pair.head.client_utilisation);
    let server =
        combine(pair.base.server_cores, pair.head.server_cores) / server_cpus.max(1) as f64;
    if client >= SATURATED && server < SATURATED {
        let why = format!(
            "the client was saturated ({:.0}% of its CPUs, the server's at {:.0}%): it, not the \
             server, set the pace",
            client * 100.0,
            server * 100.0
        );
        pair.excluded = Some(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_benchmark_names() {
        let spec = BenchmarkSpec::parse("ping-pong/tokio/1").unwrap();
        assert_eq!(spec.workload, Workload::PingPong);
        assert_eq!(
            (spec.model.as_str(), spec.connections, spec.payload),
            ("tokio", 1, 64)
        );
        assert_eq!(spec.name(), "ping-pong/tokio/1");
        assert_eq!(spec.primary(), Metric::Throughput);

        let rate = BenchmarkSpec::parse("rate/mio/64").unwrap();
        assert_eq!(rate.rate, Some(DEFAULT_RATE));
        assert_eq!(rate.primary(), Metric::ServerCpuPerMessage);
        let rate = BenchmarkSpec::parse("rate/mio/64/4k@5000").unwrap();
        assert_eq!((rate.payload, rate.rate), (4096, Some(5000.0)));
        assert_eq!(BenchmarkSpec::parse(&rate.name()).unwrap(), rate);

        for bad in [
            "ping-pong/tokio",
            "ping-pong/nosuch/1",
            "pong/tokio/1",
            "ping-pong/tokio/0",
            "ping-pong/tokio/1@100",
            "rate/tokio/1@-5",
        ] {
            assert!(BenchmarkSpec::parse(bad).is_err(), "{bad} accepted");
        }
        for name in DEFAULT_BENCHMARKS.split(',') {
            BenchmarkSpec::parse(name).unwrap();
        }
    }
}
