//! From a run's trials to what a reader wants: each point aggregated over its rounds (a median
//! and a 95% interval), and the "Which model to pick" advice.
//!
//! A model wins a category only when the data separates it from the runner-up: the paired
//! comparison over the rounds (each round is a block that measured every model, compared with
//! `ab`'s bootstrap of log-ratios) puts the whole interval of the ratio past [`TIE_PCT`].
//! Otherwise the advice names the leading group: the models that cannot be separated from the
//! best, and no more. Where the client was saturated, throughput is only a lower bound, so the
//! ranking uses the server's CPU time per message instead, and says so.

use std::collections::BTreeMap;

use echo_servers::Model;

use super::Server;

use super::SuiteRun;
use super::plan::size_label;
use crate::ab::export::figure as short;
use crate::ab::stats::{Change, Estimate, Verdict, median_of};
use crate::config::Workload;
use crate::report::Report;

/// The smallest difference between two models that the advice calls a difference, %: an
/// interval of the ratio that reaches inside it is a tie.
pub const TIE_PCT: f64 = 5.0;

/// Seed of the bootstraps of the advice and the tables, so a run's report reads the same each
/// time it is drawn.
const SEED: u64 = 0xad71ce;

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

    /// `value` with its unit, short.
    pub fn format(self, value: f64) -> String {
        match self {
            Measure::Throughput => format!("{} msg/s", short(value)),
            Measure::Bandwidth => format!("{} MiB/s", short(value)),
            Measure::ConnectionRate => format!("{} conn/s", short(value)),
            Measure::CpuPerMessage => format!("{} µs CPU/msg", short(value)),
            Measure::P99 => format!("{} µs p99", short(value)),
        }
    }

    /// `value ±h%` with its unit, the half-width of its interval when there is one.
    pub fn format_estimate(self, e: &Estimate) -> String {
        match e.half_width_pct() {
            Some(h) => format!("{} ±{h:.0}%", self.format(e.median)),
            None => self.format(e.median),
        }
    }
}

/// One point's figures, aggregated over its rounds: medians for the tables, the samples of
/// each round for intervals and paired comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The model.
    pub model: Server,
    /// The transport.
    pub transport: echo_servers::Transport,
    /// The workload.
    pub workload: Workload,
    /// Connections.
    pub connections: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Open-loop rate.
    pub rate: Option<u64>,
    /// CPU work per message in the server, µs.
    pub work_us: u64,
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
            && (self.workload != Workload::Rate || self.sustained)
    }

    /// Why it did not serve the load, for the advice's "not eligible" list.
    fn why_not_served(&self) -> String {
        if self.failed {
            "failed".to_owned()
        } else if self.runs == 0 {
            "no measurement".to_owned()
        } else if self.starved > 0 {
            format!(
                "starved {} of {} connections",
                self.starved, self.connections
            )
        } else if self.errors > 0 {
            format!("{} errors", self.errors)
        } else {
            "fell behind the offered rate".to_owned()
        }
    }
}

/// The key of a point without its round.
type Key = (Server, super::plan::Load);

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
    let mut groups: BTreeMap<Key, Vec<&super::PointResult>> = BTreeMap::new();
    for result in &run.points {
        let key = result.point.key();
        if !groups.contains_key(&key) {
            order.push(key);
        }
        groups.entry(key).or_default().push(result);
    }
    // Loads in the order first measured, models in the registry's order within each (round 0
    // ran them shuffled).
    let loads: Vec<_> = order.iter().map(|k| k.1).collect();
    order.sort_by_key(|k| {
        let load = loads.iter().position(|l| *l == k.1);
        (load, k.0)
    });
    order
        .into_iter()
        .map(|key| aggregate_point(key, &groups[&key]))
        .collect()
}

/// One point's rounds reduced to an [`Aggregate`].
fn aggregate_point(key: Key, results: &[&super::PointResult]) -> Aggregate {
    let with_report: Vec<(&super::PointResult, &Report)> = results
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
    let (model, (transport, workload, connections, payload, rate, work_us)) = key;
    Aggregate {
        model,
        transport,
        workload,
        connections,
        payload,
        rate,
        work_us,
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
    let base = aggregates.iter().map(|a| a.work_us).min().unwrap_or(0);
    aggregates
        .iter()
        .filter(|a| a.work_us == base)
        .cloned()
        .collect()
}

/// The work sweep: the ping-pong points measured at more than one work level (the base level
/// included, as the sweep's starting point), in order of work.
pub fn work_sweep(aggregates: &[Aggregate]) -> Vec<&Aggregate> {
    let base = aggregates.iter().map(|a| a.work_us).min().unwrap_or(0);
    let swept: Vec<(usize, usize)> = aggregates
        .iter()
        .filter(|a| a.workload == Workload::PingPong && a.work_us != base)
        .map(|a| (a.connections, a.payload))
        .collect();
    let mut sweep: Vec<&Aggregate> = aggregates
        .iter()
        .filter(|a| a.workload == Workload::PingPong && swept.contains(&(a.connections, a.payload)))
        .collect();
    sweep.sort_by_key(|a| (a.connections, a.work_us));
    sweep
}

/// One eligible model in a ranking.
#[derive(Debug, Clone)]
pub struct Ranked<'a> {
    /// Its figures.
    pub aggregate: &'a Aggregate,
    /// The ranking measure over its rounds.
    pub estimate: Estimate,
    /// The paired change from this model to the leader (`None` for the leader, or with fewer
    /// than two shared rounds).
    pub leader_vs_this: Option<Change>,
    /// Whether the leader is separated from it: the whole interval past [`TIE_PCT`].
    pub separated: bool,
}

/// The models of one point, ranked by one measure, best first, and the leading group.
#[derive(Debug, Clone)]
pub struct Ranking<'a> {
    /// What they were ranked by.
    pub measure: Measure,
    /// Eligible models, best median first.
    pub ranked: Vec<Ranked<'a>>,
    /// Models that did not serve the load, with the reason.
    pub excluded: Vec<(Server, String)>,
    /// Rounds in which any eligible model's client was saturated, of all their rounds.
    pub saturated_rounds: (usize, usize),
}

impl Ranking<'_> {
    /// The leading group: the leader and every model it cannot be separated from.
    pub fn group(&self) -> Vec<Server> {
        self.ranked
            .iter()
            .filter(|r| !r.separated)
            .map(|r| r.aggregate.model)
            .collect()
    }

    /// The leader, when the data separates it from every other model.
    pub fn sole_winner(&self) -> Option<Server> {
        let group = self.group();
        (group.len() == 1 && self.ranked.len() > 1).then(|| group[0])
    }
}

/// Ranks `candidates` (one point, every model) by `measure`. Models that did not serve the
/// load cannot rank. `None` when no model can.
pub fn rank<'a>(candidates: &[&'a Aggregate], measure: Measure) -> Option<Ranking<'a>> {
    let mut excluded = Vec::new();
    let mut ranked: Vec<Ranked<'a>> = Vec::new();
    for &a in candidates {
        match a.estimate(measure).filter(|_| a.served()) {
            Some(estimate) => ranked.push(Ranked {
                aggregate: a,
                estimate,
                leader_vs_this: None,
                separated: false,
            }),
            None if a.served() => excluded.push((a.model, format!("no {}", measure.name()))),
            None => excluded.push((a.model, a.why_not_served())),
        }
    }
    let better = |x: f64, y: f64| {
        if measure.higher_is_better() {
            y.total_cmp(&x)
        } else {
            x.total_cmp(&y)
        }
    };
    ranked.sort_by(|x, y| better(x.estimate.median, y.estimate.median));
    let leader = ranked.first()?.aggregate;
    let leader_rounds: BTreeMap<usize, f64> = leader.values(measure).into_iter().collect();
    for r in ranked.iter_mut().skip(1) {
        // Paired within rounds: this model as the base, the leader as the head.
        let pairs: Vec<(f64, f64)> = r
            .aggregate
            .values(measure)
            .into_iter()
            .filter_map(|(round, v)| Some((v, *leader_rounds.get(&round)?)))
            .collect();
        r.leader_vs_this = Change::of(&pairs, SEED);
        r.separated = r
            .leader_vs_this
            .as_ref()
            .is_some_and(|c| c.verdict(TIE_PCT, measure.higher_is_better()) == Verdict::Improved);
    }
    let rounds = |f: fn(&Aggregate) -> usize| ranked.iter().map(|r| f(r.aggregate)).sum();
    Some(Ranking {
        measure,
        saturated_rounds: (rounds(|a| a.client_saturated_rounds), rounds(|a| a.runs)),
        ranked,
        excluded,
    })
}

/// What a category ranks by: `preferred`, unless the client was saturated in any round of a
/// model that served the load; then server CPU per message, since throughput there is only a
/// lower bound.
pub fn measure_for(candidates: &[&Aggregate], preferred: Measure) -> Measure {
    let saturated = candidates
        .iter()
        .any(|a| a.served() && a.client_saturated_rounds > 0);
    if saturated && preferred.higher_is_better() {
        Measure::CpuPerMessage
    } else {
        preferred
    }
}

/// One category of the advice, as a stability check reads it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Category {
    /// Its title.
    pub title: String,
    /// The point it looks at.
    pub point: String,
    /// What it ranked by.
    pub measure: String,
    /// The leading group, leader first.
    pub group: Vec<String>,
    /// Every eligible model, best median first.
    pub ranked: Vec<String>,
    /// The sole winner, when the data separates one.
    pub winner: Option<String>,
}

/// A category ranked, and its advice line.
struct Judged<'a> {
    category: Category,
    line: String,
    ranking: Ranking<'a>,
}

fn signed_pct(v: f64) -> String {
    format!("{}{:.0}%", if v >= 0.0 { "+" } else { "−" }, v.abs())
}

/// The interval of a change, `+12% [+8%, +15%]`.
fn change_text(c: &Change) -> String {
    format!(
        "{} [{}, {}]",
        signed_pct(c.change_pct),
        signed_pct(c.ci_low_pct),
        signed_pct(c.ci_high_pct)
    )
}

/// Ranks one category and writes its line: the winner when the data separates one, else the
/// leading group as a tie, then the next model and how far behind it is.
fn judge<'a>(
    title: &str,
    candidates: Vec<&'a Aggregate>,
    preferred: Measure,
    basis: &str,
) -> Option<Judged<'a>> {
    let first = *candidates.first()?;
    let measure = measure_for(&candidates, preferred);
    let ranking = rank(&candidates, measure)?;
    let rounds = ranking
        .ranked
        .iter()
        .map(|r| r.aggregate.runs)
        .max()
        .unwrap_or(0);
    let how = how_ranked(first, &ranking, preferred, basis, rounds);
    let mut line = format!("**{title}** ({how}): {}", verdict_text(&ranking, rounds));
    if !ranking.excluded.is_empty() {
        let excluded: Vec<String> = ranking
            .excluded
            .iter()
            .map(|(m, why)| format!("{m} ({why})"))
            .collect();
        line.push_str(&format!(". Not eligible: {}", excluded.join(", ")));
    }
    line.push('.');
    let names = |models: Vec<Server>| models.iter().map(Server::to_string).collect();
    Some(Judged {
        category: Category {
            title: title.to_owned(),
            point: describe_point(first),
            measure: measure.name().to_owned(),
            winner: ranking.sole_winner().map(|m| m.to_string()),
            ranked: names(ranking.ranked.iter().map(|r| r.aggregate.model).collect()),
            group: names(ranking.group()),
        },
        line,
        ranking,
    })
}

/// The parenthesis of a category's line: the point, what it was ranked by and why, the rounds.
fn how_ranked(
    first: &Aggregate,
    ranking: &Ranking<'_>,
    preferred: Measure,
    basis: &str,
    rounds: usize,
) -> String {
    let (saturated, of) = ranking.saturated_rounds;
    let mut how = describe_point(first);
    if ranking.measure != preferred {
        how.push_str(&format!(
            "; the client was saturated in {saturated} of {of} trials, so throughput is only a \
             lower bound: ranked by {}, lower is better",
            ranking.measure.name()
        ));
    } else if !basis.is_empty() {
        how.push_str(&format!("; {basis}"));
    }
    how.push_str(&format!(
        "; {rounds} round{}",
        if rounds == 1 { "" } else { "s" }
    ));
    how
}

/// What the ranking says: the only model, the sole winner and its margin, or the tie and the
/// best-placed model the data separates from the leader.
fn verdict_text(ranking: &Ranking<'_>, rounds: usize) -> String {
    let measure = ranking.measure;
    let leader = &ranking.ranked[0];
    if ranking.ranked.len() == 1 {
        return format!(
            "**{}** is the only model that served the load, {}",
            leader.aggregate.model,
            measure.format_estimate(&leader.estimate)
        );
    }
    if let Some(winner) = ranking.sole_winner() {
        let second = &ranking.ranked[1];
        return format!(
            "**{winner}** leads with {}; {} against the runner-up {} ({})",
            measure.format_estimate(&leader.estimate),
            second
                .leader_vs_this
                .as_ref()
                .map_or_else(String::new, change_text),
            second.aggregate.model,
            measure.format_estimate(&second.estimate)
        );
    }
    let in_group: Vec<&Ranked> = ranking.ranked.iter().filter(|r| !r.separated).collect();
    let names: Vec<String> = in_group
        .iter()
        .map(|r| r.aggregate.model.to_string())
        .collect();
    let (lo, hi) = in_group.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| {
        (lo.min(r.estimate.median), hi.max(r.estimate.median))
    });
    let mut text = format!(
        "**{}** tied: the data cannot separate {} from the leader by more than ±{TIE_PCT:.0}% \
         (medians {}–{})",
        names.join(", "),
        if names.len() == 2 {
            "them"
        } else {
            "any of them"
        },
        measure.format(lo.min(hi)),
        measure.format(hi)
    );
    if rounds < 2 {
        text.push_str("; one round cannot separate any two models");
    }
    if let Some(next) = ranking.ranked.iter().find(|r| r.separated) {
        text.push_str(&format!(
            "; the best-placed model the data separates from the leader: {}, {}{}",
            next.aggregate.model,
            measure.format_estimate(&next.estimate),
            behind_leader(next, leader)
        ));
    }
    text
}

/// ` (−12% [−15%, −9%] against tokio)`: how a separated model compares with the leader.
fn behind_leader(next: &Ranked<'_>, leader: &Ranked<'_>) -> String {
    next.leader_vs_this
        .as_ref()
        .map(|c| {
            // The change is the leader's against this model: invert it.
            let inv = |p: f64| (100.0 / (1.0 + p / 100.0)) - 100.0;
            format!(
                " ({} [{}, {}] against {})",
                signed_pct(inv(c.change_pct)),
                signed_pct(inv(c.ci_high_pct)),
                signed_pct(inv(c.ci_low_pct)),
                leader.aggregate.model
            )
        })
        .unwrap_or_default()
}

fn describe_point(a: &Aggregate) -> String {
    let work = if a.work_us > 0 {
        format!(", {} µs work", a.work_us)
    } else {
        String::new()
    };
    match a.workload {
        Workload::Churn => format!("churn, {} concurrent loops{work}", a.connections),
        Workload::Stream => format!(
            "stream, {} connections × {} writes{work}",
            a.connections,
            size_label(a.payload)
        ),
        Workload::Rate => format!(
            "open loop, {} msg/s offered over {} {} × {}{work}",
            short(a.rate.unwrap_or(0) as f64),
            a.connections,
            peers(a, 2),
            size_label(a.payload)
        ),
        Workload::PingPong => format!(
            "{} {} × {}{work}",
            a.connections,
            peers(a, a.connections),
            size_label(a.payload)
        ),
    }
}

/// What `n` clients of a point are called: connections, or for UDP client sockets (a datagram
/// server holds no connection).
fn peers(a: &Aggregate, n: usize) -> &'static str {
    match (a.transport == echo_servers::Transport::Udp, n == 1) {
        (false, true) => "connection",
        (false, false) => "connections",
        (true, true) => "client socket",
        (true, false) => "client sockets",
    }
}

/// The ping-pong categories: small messages at the fewest and the most connections, and large
/// messages at the middle connection count measured with them.
fn ping_pong_categories<'a>(aggregates: &[&'a Aggregate]) -> Vec<Judged<'a>> {
    let ping: Vec<&'a Aggregate> = aggregates
        .iter()
        .copied()
        .filter(|a| a.workload == Workload::PingPong)
        .collect();
    let pick = |connections: usize, payload: usize| -> Vec<&'a Aggregate> {
        ping.iter()
            .copied()
            .filter(|a| a.connections == connections && a.payload == payload)
            .collect()
    };
    let mut judged = Vec::new();
    if ping.is_empty() {
        return judged;
    }
    let min_c = ping.iter().map(|a| a.connections).min().unwrap_or(1);
    let min_p = ping.iter().map(|a| a.payload).min().unwrap_or(64);
    let max_p = ping.iter().map(|a| a.payload).max().unwrap_or(64);
    let max_c = ping
        .iter()
        .filter(|a| a.payload == min_p)
        .map(|a| a.connections)
        .max()
        .unwrap_or(min_c);
    let udp = ping
        .iter()
        .any(|a| a.transport == echo_servers::Transport::Udp);
    let (few, many) = if udp {
        (
            "Few senders, small datagrams",
            "Many senders, small datagrams",
        )
    } else {
        (
            "Few connections, small messages",
            "Many connections, small messages",
        )
    };
    judged.extend(judge(few, pick(min_c, min_p), Measure::Throughput, ""));
    if max_c != min_c {
        judged.extend(judge(many, pick(max_c, min_p), Measure::Throughput, ""));
    }
    if max_p != min_p {
        let mut counts: Vec<usize> = ping
            .iter()
            .filter(|a| a.payload == max_p)
            .map(|a| a.connections)
            .collect();
        counts.sort_unstable();
        counts.dedup();
        judged.extend(judge(
            "Large messages",
            pick(counts[counts.len() / 2], max_p),
            Measure::Bandwidth,
            "",
        ));
    }
    judged
}

/// The ranked categories of the run, in the advice's order (without the memory, starvation,
/// work-degradation and capacity lines).
fn categories<'a>(aggregates: &[&'a Aggregate]) -> Vec<Judged<'a>> {
    let mut judged = ping_pong_categories(aggregates);
    let loads = |workload: Workload| -> Vec<(usize, usize, Option<u64>)> {
        let mut loads = Vec::new();
        for a in aggregates.iter().filter(|a| a.workload == workload) {
            if !loads.contains(&(a.connections, a.payload, a.rate)) {
                loads.push((a.connections, a.payload, a.rate));
            }
        }
        loads
    };
    let at = |workload: Workload, (c, p, r): (usize, usize, Option<u64>)| -> Vec<&'a Aggregate> {
        aggregates
            .iter()
            .copied()
            .filter(|a| a.workload == workload && (a.connections, a.payload, a.rate) == (c, p, r))
            .collect()
    };
    if let Some(load) = loads(Workload::Churn).into_iter().max_by_key(|l| l.0) {
        judged.extend(judge(
            "Connection churn",
            at(Workload::Churn, load),
            Measure::ConnectionRate,
            "",
        ));
    }
    if let Some(&load) = loads(Workload::Stream).first() {
        judged.extend(judge(
            "Bulk transfer",
            at(Workload::Stream, load),
            Measure::Bandwidth,
            "",
        ));
    }
    for load in loads(Workload::Rate) {
        let basis = "equal offered load: the cost of the same work, whatever the client";
        judged.extend(judge(
            "Cost at a fixed rate",
            at(Workload::Rate, load),
            Measure::CpuPerMessage,
            basis,
        ));
        judged.extend(judge(
            "Latency at a fixed rate",
            at(Workload::Rate, load),
            Measure::P99,
            "equal offered load, p99 from the intended send time",
        ));
    }
    judged
}

/// Every ranked category of `all` (a run's aggregates) with its ranking, for the charts.
pub fn rankings(all: &[Aggregate]) -> Vec<(Category, Ranking<'_>)> {
    let mut judged = categories(&base_refs(all));
    judged.extend(work_categories(all));
    judged
        .into_iter()
        .map(|j| (j.category, j.ranking))
        .collect()
}

/// The aggregates at the run's base work, borrowed.
fn base_refs(all: &[Aggregate]) -> Vec<&Aggregate> {
    let base = all.iter().map(|a| a.work_us).min().unwrap_or(0);
    all.iter().filter(|a| a.work_us == base).collect()
}

/// The ranked categories of a run: what `echo-bench stability` compares between runs. Over
/// several transports, the first's (TCP's when it was measured).
pub fn verdicts(run: &SuiteRun) -> Vec<Category> {
    let all = aggregate(run);
    let first = super::transports::present(run).first().copied();
    let all: Vec<Aggregate> = all
        .into_iter()
        .filter(|a| first.is_none_or(|t| a.transport == t))
        .collect();
    rankings(&all).into_iter().map(|(c, _)| c).collect()
}

/// The work sweep at its largest connection count: that count, its points, and the work levels
/// in increasing order (the base level first).
fn sweep_at_most_connections(
    aggregates: &[Aggregate],
) -> Option<(usize, Vec<&Aggregate>, Vec<u64>)> {
    let sweep = work_sweep(aggregates);
    let connections = sweep.iter().map(|a| a.connections).max()?;
    let at_c: Vec<&Aggregate> = sweep
        .into_iter()
        .filter(|a| a.connections == connections)
        .collect();
    let mut works: Vec<u64> = at_c.iter().map(|a| a.work_us).collect();
    works.sort_unstable();
    works.dedup();
    Some((connections, at_c, works))
}

/// The work sweep's categories: at the most connections swept, who keeps the most throughput
/// at each work level above the base.
fn work_categories(aggregates: &[Aggregate]) -> Vec<Judged<'_>> {
    let Some((_, at_c, works)) = sweep_at_most_connections(aggregates) else {
        return Vec::new();
    };
    works
        .iter()
        .skip(1)
        .filter_map(|&work| {
            let here: Vec<&Aggregate> =
                at_c.iter().copied().filter(|a| a.work_us == work).collect();
            judge(
                &format!("Handler work, {work} µs of CPU per message"),
                here,
                Measure::Throughput,
                "",
            )
        })
        .collect()
}

/// The work sweep's other lines: how latency and fairness degrade with the work, and what
/// offloading to a pool buys.
fn work_advice(aggregates: &[Aggregate]) -> Vec<String> {
    let Some((connections, at_c, works)) = sweep_at_most_connections(aggregates) else {
        return Vec::new();
    };
    let base = works[0];
    let mut lines = Vec::new();
    for &work in works.iter().skip(1) {
        let here: Vec<&Aggregate> = at_c.iter().copied().filter(|a| a.work_us == work).collect();
        let mut degrade: Vec<String> = Vec::new();
        for a in &here {
            let Some(b) = at_c
                .iter()
                .find(|b| b.model == a.model && b.work_us == base)
            else {
                continue;
            };
            if a.failed || b.failed {
                continue;
            }
            degrade.push(format!(
                "{} p99 {} → {} µs, fairness {:.2}{}",
                a.model,
                b.p99,
                a.p99,
                a.fairness,
                if a.starved > 0 {
                    format!(", {} starved", a.starved)
                } else {
                    String::new()
                }
            ));
        }
        if !degrade.is_empty() {
            lines.push(format!(
                "**What {work} µs of work does to latency** ({connections} connections, from {base} µs, medians): {}. A loop or worker that computes inline delays every connection queued behind it; p99 and fairness show which models let that happen.",
                degrade.join("; ")
            ));
        }
        let find = |m: Server| here.iter().copied().find(|a| a.model == m && !a.failed);
        if let (Some(inline), Some(offload)) =
            (find(Model::Tokio.into()), find(Model::TokioRayon.into()))
            && let Some(r) = rank(&[inline, offload], Measure::Throughput)
        {
            let vs = r.ranked.get(1).and_then(|x| x.leader_vs_this.as_ref());
            lines.push(format!(
                    "**Offloading {work} µs of work to a rayon pool** (tokio-rayon against tokio, {connections} connections): throughput {:.2}× (medians){}, p99 {} vs {} µs, fairness {:.2} vs {:.2}.",
                    offload.rps / inline.rps.max(1e-9),
                    vs.map_or_else(
                        || " with no interval (one round)".to_owned(),
                        |c| if r.sole_winner().is_some() {
                            format!(", {} for {} over {}", change_text(c), r.ranked[0].aggregate.model, r.ranked[1].aggregate.model)
                        } else {
                            " (within noise)".to_owned()
                        }
                    ),
                    offload.p99,
                    inline.p99,
                    offload.fairness,
                    inline.fairness
                ));
        }
    }
    lines
}

/// The "Which model to pick" section, as markdown bullet lines.
pub fn advice(run: &SuiteRun) -> Vec<String> {
    advice_of(run, &aggregate(run))
}

/// [`advice`] from the run's aggregates, computed once by the caller.
pub fn advice_of(run: &SuiteRun, all: &[Aggregate]) -> Vec<String> {
    let aggregates = base_refs(all);
    let mut lines: Vec<String> = categories(&aggregates)
        .into_iter()
        .map(|j| j.line)
        .collect();
    let ping: Vec<&Aggregate> = aggregates
        .iter()
        .copied()
        .filter(|a| a.workload == Workload::PingPong)
        .collect();
    // A datagram server holds nothing per client, so memory per connection means nothing there.
    let streams = ping
        .iter()
        .all(|a| a.transport != echo_servers::Transport::Udp);
    if !ping.is_empty() {
        if streams {
            lines.extend(memory_line(&ping));
        }
        // Once per model and connection count, whatever the payload.
        let mut starving: Vec<String> = Vec::new();
        for a in ping.iter().filter(|a| a.starved > 0) {
            let line = format!(
                "{} at {} connections ({} starved)",
                a.model, a.connections, a.starved
            );
            if !starving.contains(&line) {
                starving.push(line);
            }
        }
        if !starving.is_empty() {
            lines.push(format!(
                "**Starvation** (connections that got no echo in the window): {}. These models \
                 serve a bounded number of connections at once; avoid them when connections are \
                 held open.",
                starving.join("; ")
            ));
        }
    }
    lines.extend(work_categories(all).into_iter().map(|j| j.line));
    lines.extend(work_advice(all));
    lines.extend(super::capacity::advice_of(run));
    lines.extend(super::c10k::advice(&run.c10k));
    if lines.is_empty() {
        lines.push(
            "No point of this run can rank the models (every candidate failed or starved).".into(),
        );
    }
    lines
}

/// Memory per connection: the growth of peak RSS from the fewest to the most connections with
/// small messages, among models that served them all.
fn memory_line(ping: &[&Aggregate]) -> Option<String> {
    let min_p = ping.iter().map(|a| a.payload).min()?;
    let small: Vec<&Aggregate> = ping
        .iter()
        .copied()
        .filter(|a| a.payload == min_p)
        .collect();
    let min_c = small.iter().map(|a| a.connections).min()?;
    let max_c = small.iter().map(|a| a.connections).max()?;
    if max_c == min_c {
        return None;
    }
    let mut memory: Vec<(&Aggregate, f64)> = small
        .iter()
        .copied()
        .filter(|a| a.connections == max_c)
        .filter(|a| a.server_rss_kib > 0 && !a.failed && a.starved == 0)
        .filter_map(|most| {
            let few = small.iter().find(|a| {
                a.model == most.model && a.connections == min_c && a.server_rss_kib > 0
            })?;
            let growth = most.server_rss_kib.saturating_sub(few.server_rss_kib) as f64;
            Some((most, growth / (max_c - min_c) as f64))
        })
        .collect();
    memory.sort_by(|a, b| a.1.total_cmp(&b.1));
    let ((least, least_kib), (most, most_kib)) = (memory.first()?, memory.last()?);
    Some(format!(
        "**Memory per connection** (peak RSS growth from {min_c} to {max_c} connections, \
         among models that served them all; the largest peak of the rounds): \
         **{}** needs the least, {:.1} KiB per connection ({:.1} MiB in all at {max_c}); \
         the most is {} with {:.1} KiB per connection.",
        least.model,
        least_kib,
        least.server_rss_kib as f64 / 1024.0,
        most.model,
        most_kib
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::ServerUsage;
    use crate::suite::plan::Point;
    use crate::suite::{PointResult, SuiteRun};

    /// A trial of `model` at 16 connections × 64 B in `round` with `rps` messages/s over one
    /// second, the server using `cpu_s` of CPU.
    fn trial(model: Model, round: usize, rps: f64, cpu_s: f64, saturated: bool) -> PointResult {
        let mut report = Report {
            throughput_rps: rps,
            messages: rps as u64,
            server: Some(ServerUsage {
                cpu_s,
                cpu_cores: cpu_s,
                ..ServerUsage::default()
            }),
            ..Report::default()
        };
        report.client.saturated = saturated;
        report.fairness.jain = 1.0;
        PointResult {
            point: Point {
                model: model.into(),
                connections: 16,
                round,
                ..Point::default()
            },
            status: "ok".into(),
            report: Some(report),
            attempts: 1,
            ..PointResult::default()
        }
    }

    /// A run of three rounds: each model's throughput per round, CPU fixed at 0.5 s.
    fn run_of(models: &[(Model, [f64; 3])]) -> SuiteRun {
        let mut points = Vec::new();
        for round in 0..3 {
            for (model, rps) in models {
                points.push(trial(*model, round, rps[round], 0.5, false));
            }
        }
        SuiteRun {
            rounds: 3,
            points,
            ..SuiteRun::default()
        }
    }

    #[test]
    fn a_model_separated_in_every_round_wins_alone() {
        // The rounds drift by 20% together; mio stays 15–20% ahead of tokio in each.
        let run = run_of(&[
            (Model::Tokio, [80_000.0, 100_000.0, 84_000.0]),
            (Model::Mio, [94_000.0, 118_000.0, 100_000.0]),
        ]);
        let categories = verdicts(&run);
        assert_eq!(
            categories[0].winner.as_deref(),
            Some("mio"),
            "{categories:?}"
        );
        assert_eq!(categories[0].group, ["mio"]);
        let line = &advice(&run)[0];
        assert!(line.contains("**mio** leads with 100k msg/s"), "{line}");
        assert!(line.contains("against the runner-up tokio"), "{line}");
        assert!(line.contains("3 rounds"), "{line}");
    }

    #[test]
    fn models_the_rounds_cannot_separate_are_named_as_a_tie_and_no_more() {
        // mio and tokio swap places between rounds; blocking is 40% behind in every round.
        let run = run_of(&[
            (Model::Mio, [100_000.0, 92_000.0, 104_000.0]),
            (Model::Tokio, [97_000.0, 99_000.0, 98_000.0]),
            (Model::Blocking, [60_000.0, 58_000.0, 61_000.0]),
        ]);
        let categories = verdicts(&run);
        assert_eq!(categories[0].winner, None, "{categories:?}");
        assert_eq!(categories[0].group, ["mio", "tokio"]);
        let line = &advice(&run)[0];
        assert!(line.contains("**mio, tokio** tied"), "{line}");
        assert!(
            line.contains("separates from the leader: blocking"),
            "{line}"
        );
        assert!(!line.contains("leads"), "{line}");
    }

    #[test]
    fn one_round_separates_nothing() {
        let mut run = run_of(&[
            (Model::Mio, [200_000.0, 0.0, 0.0]),
            (Model::Tokio, [100_000.0, 0.0, 0.0]),
        ]);
        run.points.retain(|p| p.point.round == 0);
        let categories = verdicts(&run);
        assert_eq!(categories[0].group, ["mio", "tokio"], "{categories:?}");
        assert!(advice(&run)[0].contains("one round cannot separate"));
    }

    #[test]
    fn where_the_client_saturates_models_are_ranked_by_server_cpu_per_message() {
        // Equal throughput (the client's limit), but tokio spends 30% more CPU per message.
        let mut run = SuiteRun::default();
        for round in 0..3 {
            run.points
                .push(trial(Model::Mio, round, 100_000.0, 0.50, true));
            run.points
                .push(trial(Model::Tokio, round, 100_000.0, 0.65, true));
        }
        let categories = verdicts(&run);
        assert_eq!(categories[0].measure, "server CPU per message");
        assert_eq!(
            categories[0].winner.as_deref(),
            Some("mio"),
            "{categories:?}"
        );
        let line = &advice(&run)[0];
        assert!(
            line.contains("client was saturated in 6 of 6 trials"),
            "{line}"
        );
        assert!(line.contains("5.00 µs CPU/msg"), "{line}");
    }

    #[test]
    fn a_model_that_starved_connections_cannot_rank() {
        let mut run = run_of(&[
            (Model::Mio, [100_000.0, 100_000.0, 100_000.0]),
            (Model::Blocking, [150_000.0, 150_000.0, 150_000.0]),
        ]);
        for p in run
            .points
            .iter_mut()
            .filter(|p| p.point.model == Model::Blocking.into())
        {
            p.report.as_mut().unwrap().fairness.starved = 15;
        }
        let line = &advice(&run)[0];
        assert!(line.contains("**mio** is the only model"), "{line}");
        assert!(
            line.contains("blocking (starved 15 of 16 connections)"),
            "{line}"
        );
    }
}
