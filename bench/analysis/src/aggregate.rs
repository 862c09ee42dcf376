//! From a run's trials to one [`Aggregate`] per server and load: medians over the rounds for
//! the tables, each round's figures ([`Sample`]) for intervals and paired comparisons, and
//! whether the model served the load at all.

use std::collections::BTreeMap;

use echo_loadgen::config::Workload;
use echo_loadgen::report::Report;

use crate::bootstrap::{Estimate, median_of};
use crate::point::Load;
use crate::run::{PointResult, SuiteRun};
use crate::server::Server;

/// The smallest difference between two models that the advice calls a difference, %: an
/// interval of the ratio that reaches inside it is a tie.
pub const TIE_PCT: f64 = 5.0;

/// Seed of the bootstraps of the advice and the tables, so a run's report reads the same each
/// time it is drawn.
pub const SEED: u64 = 0xad71ce;

/// A figure a model is ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Measure {
    /// Messages echoed per second.
    Throughput,
    /// Payload MiB echoed per second.
    Bandwidth,
    /// Connections opened, echoed and closed per second.
    ConnectionRate,
    /// Server CPU µs per echoed message: the cost of the same work, which a saturated client
    /// does not distort.
    CpuPerMessage,
    /// 99th-percentile latency, µs.
    P99,
}

impl Measure {
    /// The figure in `report`, if it has one.
    pub fn of(self, report: &Report) -> Option<f64> {
        let value = match self {
            Measure::Throughput => report.throughput_rps,
            Measure::Bandwidth => report.throughput_mib_s,
            Measure::ConnectionRate => report.churn?.connections_per_s,
            Measure::CpuPerMessage => report.server?.cpu_s * 1e6 / (report.messages.max(1) as f64),
            Measure::P99 => report.latency_us.p99 as f64,
        };
        (value > 0.0 && value.is_finite()).then_some(value)
    }

    /// Whether more is better.
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Measure::Throughput | Measure::Bandwidth | Measure::ConnectionRate
        )
    }

    /// What it is called in a sentence.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Throughput | Measure::Bandwidth => "throughput",
            Measure::ConnectionRate => "connection rate",
            Measure::CpuPerMessage => "server CPU per message",
            Measure::P99 => "p99 latency",
        }
    }
}

/// One point's figures, aggregated over its rounds: medians for the tables, the samples of
/// each round for intervals and paired comparisons. Its key is a [`Point`]'s without the
/// round ([`Point::key`]): the server and the [`Load`].
///
/// [`Point`]: crate::point::Point
/// [`Point::key`]: crate::point::Point::key
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The model.
    pub model: Server,
    /// The load it was measured at.
    pub load: Load,
    /// Rounds that produced a report.
    pub runs: usize,
    /// Median messages/s.
    pub rps: f64,
    /// Median MiB/s.
    pub mib_s: f64,
    /// Median p50, p99, p99.9 latency, µs.
    pub p50: u64,
    /// See `p50`.
    pub p99: u64,
    /// See `p50`.
    pub p999: u64,
    /// Median connections per second (churn).
    pub conn_s: f64,
    /// Median server CPU, cores.
    pub server_cpu: f64,
    /// Median server CPU per message, µs.
    pub cpu_us_per_msg: f64,
    /// Largest server peak RSS, KiB.
    pub server_rss_kib: u64,
    /// Median Jain index.
    pub fairness: f64,
    /// Most starved connections in any round.
    pub starved: u64,
    /// Echo errors over all rounds (stalled connections are counted as `starved` instead).
    pub errors: u64,
    /// Rounds in which the client was saturated.
    pub client_saturated_rounds: usize,
    /// Whether the client was saturated in any round.
    pub client_saturated: bool,
    /// Open loop: whether every round achieved at least 95% of the offered rate.
    pub sustained: bool,
    /// Rounds kept although other tasks took more CPU than the interference limit.
    pub interfered: usize,
    /// Whether any round failed (server crash, no start, unclean exit).
    pub failed: bool,
    /// The figures of each round that produced a report: `(round, report)` projections.
    pub samples: Vec<Sample>,
}

/// One round's figures of a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The round.
    pub round: usize,
    /// Each [`Measure`]'s value in that round (absent when the report lacks it).
    pub values: BTreeMap<Measure, f64>,
}

impl Aggregate {
    /// `(round, value)` of `measure` in every round that has it.
    pub fn values(&self, measure: Measure) -> Vec<(usize, f64)> {
        self.samples
            .iter()
            .filter_map(|s| Some((s.round, *s.values.get(&measure)?)))
            .collect()
    }

    /// `(base, self)` values of `measure` in every round both have: a paired comparison's
    /// pairs, `base` the base and this aggregate the head.
    pub fn paired_with(&self, base: &Aggregate, measure: Measure) -> Vec<(f64, f64)> {
        let base: BTreeMap<usize, f64> = base.values(measure).into_iter().collect();
        self.values(measure)
            .into_iter()
            .filter_map(|(round, v)| Some((*base.get(&round)?, v)))
            .collect()
    }

    /// The median of `measure` over the rounds and its 95% interval.
    pub fn estimate(&self, measure: Measure) -> Option<Estimate> {
        let values: Vec<f64> = self.values(measure).into_iter().map(|(_, v)| v).collect();
        Estimate::of(&values, SEED)
    }

    /// Whether it served the load as asked: no failure, error or starved connection, and for
    /// open loop the offered rate.
    pub fn served(&self) -> bool {
        !self.failed
            && self.errors == 0
            && self.starved == 0
            && self.runs > 0
            && (self.load.workload != Workload::Rate || self.sustained)
    }

    /// Why it did not serve the load, for the advice's "not eligible" list; `None` when it did.
    pub fn why_not_served(&self) -> Option<Ineligible> {
        Some(if self.failed {
            Ineligible::Failed
        } else if self.runs == 0 {
            Ineligible::NoMeasurement
        } else if self.starved > 0 {
            Ineligible::Starved {
                starved: self.starved,
                of: self.load.connections,
            }
        } else if self.errors > 0 {
            Ineligible::Errors(self.errors)
        } else if self.load.workload == Workload::Rate && !self.sustained {
            Ineligible::FellBehind
        } else {
            return None;
        })
    }
}

/// Why a model cannot rank in a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    /// A round failed (server crash, no start, unclean exit).
    Failed,
    /// No round produced a report.
    NoMeasurement,
    /// Connections got no echo in the window.
    Starved {
        /// The most starved in any round.
        starved: u64,
        /// The point's connections.
        of: usize,
    },
    /// Echo errors over all rounds.
    Errors(u64),
    /// Open loop: a round achieved less than 95% of the offered rate.
    FellBehind,
    /// It served the load but has no value of the ranking measure.
    NoFigure(Measure),
}

/// The key of a point without its round.
type Key = (Server, Load);

/// The figures kept per round, for intervals and paired comparisons.
const MEASURES: [Measure; 5] = [
    Measure::Throughput,
    Measure::Bandwidth,
    Measure::ConnectionRate,
    Measure::CpuPerMessage,
    Measure::P99,
];

/// Aggregates the run's trials over their rounds, in plan order.
pub fn aggregate(run: &SuiteRun) -> Vec<Aggregate> {
    let mut order: Vec<Key> = Vec::new();
    let mut groups: BTreeMap<Key, Vec<&PointResult>> = BTreeMap::new();
    for result in &run.points {
        let key = result.point.key();
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(result);
    }
    // Loads in the order first measured, models in the registry's order within each (round 0
    // ran them shuffled).
    let loads: Vec<Load> = order.iter().map(|k| k.1).collect();
    order.sort_by_key(|k| {
        let load = loads.iter().position(|l| *l == k.1);
        (load, k.0.clone())
    });
    order
        .into_iter()
        .map(|key| {
            let results = &groups[&key];
            aggregate_point(key, results)
        })
        .collect()
}

/// One point's rounds reduced to an [`Aggregate`].
fn aggregate_point(key: Key, results: &[&PointResult]) -> Aggregate {
    let with_report: Vec<(&PointResult, &Report)> = results
        .iter()
        .filter_map(|r| Some((*r, r.report.as_ref()?)))
        .collect();
    let reports: Vec<&Report> = with_report.iter().map(|(_, r)| *r).collect();
    let of =
        |f: &dyn Fn(&Report) -> f64| median_of(&reports.iter().map(|r| f(r)).collect::<Vec<_>>());
    let samples: Vec<Sample> = with_report
        .iter()
        .filter(|(result, _)| result.ok())
        .map(|(result, report)| Sample {
            round: result.point.round,
            values: MEASURES
                .iter()
                .filter_map(|&m| Some((m, m.of(report)?)))
                .collect(),
        })
        .collect();
    let saturated = reports.iter().filter(|r| r.client.saturated).count();
    let (model, load) = key;
    Aggregate {
        model,
        load,
        runs: reports.len(),
        rps: of(&|r| r.throughput_rps),
        mib_s: of(&|r| r.throughput_mib_s),
        p50: of(&|r| r.latency_us.p50 as f64) as u64,
        p99: of(&|r| r.latency_us.p99 as f64) as u64,
        p999: of(&|r| r.latency_us.p999 as f64) as u64,
        conn_s: of(&|r| r.churn.map_or(0.0, |c| c.connections_per_s)),
        server_cpu: of(&|r| r.server.map_or(0.0, |s| s.cpu_cores)),
        cpu_us_per_msg: of(&|r| Measure::CpuPerMessage.of(r).unwrap_or(0.0)),
        server_rss_kib: reports
            .iter()
            .filter_map(|r| r.server.map(|s| s.peak_rss_kib))
            .max()
            .unwrap_or(0),
        fairness: of(&|r| r.fairness.jain),
        starved: reports
            .iter()
            .map(|r| r.fairness.starved)
            .max()
            .unwrap_or(0),
        // Stalled connections are what `starved` already reports (a bounded model's queue, or a
        // dead server): a result, not an echo error.
        errors: reports
            .iter()
            .map(|r| r.errors.total() - r.errors.stalled)
            .sum(),
        client_saturated_rounds: saturated,
        client_saturated: saturated > 0,
        sustained: reports.iter().all(|r| {
            r.open_loop
                .is_none_or(|o| o.achieved_rps >= 0.95 * o.offered_rps)
        }),
        interfered: results.iter().filter(|r| r.interfered).count(),
        failed: results.iter().any(|r| !r.ok()),
        samples,
    }
}

/// The run's points at its base work (the smallest `--work-us`, normally none): what every table,
/// chart and advice line compares, except the work sweep's own.
pub fn at_base_work(aggregates: &[Aggregate]) -> Vec<Aggregate> {
    let base = aggregates.iter().map(|a| a.load.work_us).min().unwrap_or(0);
    aggregates
        .iter()
        .filter(|a| a.load.work_us == base)
        .cloned()
        .collect()
}

/// The work sweep: the ping-pong points measured at more than one work level (the base level
/// included, as the sweep's starting point), in order of work.
pub fn work_sweep(aggregates: &[Aggregate]) -> Vec<&Aggregate> {
    let base = aggregates.iter().map(|a| a.load.work_us).min().unwrap_or(0);
    let swept: Vec<(usize, usize)> = aggregates
        .iter()
        .filter(|a| a.load.workload == Workload::PingPong && a.load.work_us != base)
        .map(|a| (a.load.connections, a.load.payload))
        .collect();
    let mut sweep: Vec<&Aggregate> = aggregates
        .iter()
        .filter(|a| {
            a.load.workload == Workload::PingPong
                && swept.contains(&(a.load.connections, a.load.payload))
        })
        .collect();
    sweep.sort_by_key(|a| (a.load.connections, a.load.work_us));
    sweep
}
