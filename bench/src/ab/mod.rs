//! `echo-bench ab`: a paired comparison of two builds of this suite (base and head) on this
//! machine, with a verdict a CI job can act on.
//!
//! Run-to-run noise on a shared machine is larger than the regressions worth catching, so base
//! and head are never compared across runs: each benchmark is measured as pairs of short trials,
//! each trial with a fresh server process, both sides pinned alike, started in ABBA/BAAB blocks
//! (so neither side always goes first).
//!
//! By default a pair's two trials run at the same time on the same CPUs (a *duet*, Bulej et al.,
//! ICPE 2020): on this project's 2-core VM, A/A pairs of back-to-back trials differ by 8–15%
//! (the machine's own noise changes that fast), while the two halves of a duet differ by about
//! 0.3–0.6%, because whatever the machine does hits both at once (`scripts/ab-noise.sh`; README,
//! "Catching regressions"). The price is that the two builds compete for the CPUs, which is
//! symmetric and so cancels in the ratio.
//! `--sequential` runs them back to back instead. Each build drives its own server
//! with its own load generator (`BIN serve` and `BIN run`), so a change to a model, to a
//! dependency or to the load generator is compared the same way. [`echo_analysis::bootstrap`]
//! (the project's one statistics implementation) turns the pairs into a ratio with a confidence interval and a verdict; a regression is re-measured before it
//! is reported.
//!
//! The parts: [`spec`](BenchmarkSpec) says what a benchmark and a metric are, `plan` orders the
//! trials, `trial` runs one, `judge` turns pairs into verdicts, [`report`](AbReport) holds what
//! is recorded, and `export` and `compare` are the outputs and the unpaired comparison of two
//! suite runs.

pub mod compare;
pub mod counted;
pub mod export;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::suite::Launcher;
use crate::suite::process::ServerProcess;
/// The bootstrap's types, which `ab`'s report holds: named here because they are part of its
/// API (`AbReport`'s fields), not a second home for the statistics.
pub use echo_analysis::bootstrap::{Change, Estimate, Verdict};
use echo_analysis::run::Pinning;
use echo_loadgen::config::Workload;
use echo_loadgen::meta::Meta;
use echo_loadgen::report::Report;

mod judge;
mod plan;
mod report;
mod spec;
mod trial;

use judge::{check_saturation, conclude, judge};
use plan::Plan;
pub use report::*;
pub use spec::*;
use trial::*;

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
    /// How the counted benchmarks (`counted:…`) run: valgrind, messages, pairs, threshold.
    pub count: counted::CountOptions,
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
        counting: options
            .benchmarks
            .iter()
            .any(|b| b.counted)
            .then(|| counted::Counting::of(&options.count)),
        benchmarks: results,
        ..AbReport::default()
    };
    conclude(&mut report, options.confirm, options.strict);
    report.elapsed_s = started.elapsed().as_secs_f64();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_benchmark_names() {
        let spec = BenchmarkSpec::parse("ping-pong/tokio/1", &Default::default()).unwrap();
        assert_eq!(spec.workload, Workload::PingPong);
        assert_eq!(
            (spec.model.clone(), spec.connections, spec.payload),
            (echo_servers::Model::Tokio.into(), 1, 64)
        );
        assert_eq!(spec.name(), "ping-pong/tokio/1");
        assert_eq!(spec.primary(), Metric::Throughput);

        let rate = BenchmarkSpec::parse("rate/mio/64", &Default::default()).unwrap();
        assert_eq!(rate.rate, Some(DEFAULT_RATE));
        assert_eq!(rate.primary(), Metric::ServerCpuPerMessage);
        let rate = BenchmarkSpec::parse("rate/mio/64/4k@5000", &Default::default()).unwrap();
        assert_eq!((rate.payload, rate.rate), (4096, Some(5000.0)));
        assert_eq!(
            BenchmarkSpec::parse(&rate.name(), &Default::default()).unwrap(),
            rate
        );

        for bad in [
            "ping-pong/tokio",
            "ping-pong/nosuch/1",
            "pong/tokio/1",
            "ping-pong/tokio/0",
            "ping-pong/tokio/1@100",
            "rate/tokio/1@-5",
        ] {
            assert!(
                BenchmarkSpec::parse(bad, &Default::default()).is_err(),
                "{bad} accepted"
            );
        }
        for name in DEFAULT_BENCHMARKS.split(',') {
            BenchmarkSpec::parse(name, &Default::default()).unwrap();
        }
    }

    #[test]
    fn a_benchmark_names_an_outside_server_only_of_the_registry_passed_in() {
        use echo_analysis::server::{Registry, Server};
        let py = Server::parse_outside("py-ab=python3 x.py {addr}").unwrap();
        let registry = Registry::of(std::slice::from_ref(&py)).unwrap();
        let spec = BenchmarkSpec::parse("ping-pong/py-ab/1", &registry).unwrap();
        assert_eq!(spec.model, py);
        assert!(spec.model.command().is_some(), "it can be started");
        let err = BenchmarkSpec::parse("ping-pong/py-ab/1", &Registry::default()).unwrap_err();
        assert!(err.contains("outside server named with --server"), "{err}");
    }
}
