//! From a run's figures to what a reader wants: points aggregated over repeats, and the
//! "Which model to pick" advice, every number of it taken from the run.

use std::collections::BTreeMap;

use echo_servers::Model;

use super::SuiteRun;
use super::plan::size_label;
use crate::config::Workload;

/// One point's figures, aggregated over its repeats (medians, with the throughput spread).
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The model.
    pub model: Model,
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
    /// Repeats that ran.
    pub runs: usize,
    /// Median messages/s.
    pub rps: f64,
    /// Lowest and highest messages/s over the repeats.
    pub rps_spread: (f64, f64),
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
    /// Largest server peak RSS, KiB.
    pub server_rss_kib: u64,
    /// Median Jain index.
    pub fairness: f64,
    /// Most starved connections in any repeat.
    pub starved: u64,
    /// Errors over all repeats.
    pub errors: u64,
    /// Whether the client was saturated in any repeat.
    pub client_saturated: bool,
    /// Whether any repeat failed (server crash, no start, unclean exit).
    pub failed: bool,
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Aggregates the run's points over their repeats, in plan order.
pub fn aggregate(run: &SuiteRun) -> Vec<Aggregate> {
    let mut order = Vec::new();
    let mut groups: BTreeMap<_, Vec<&super::PointResult>> = BTreeMap::new();
    for result in &run.points {
        let key = result.point.key();
        if !groups.contains_key(&key) {
            order.push(key);
        }
        groups.entry(key).or_default().push(result);
    }
    order
        .into_iter()
        .map(|key| {
            let results = &groups[&key];
            let reports: Vec<_> = results.iter().filter_map(|r| r.report.as_ref()).collect();
            let of =
                |f: &dyn Fn(&crate::Report) -> f64| median(reports.iter().map(|r| f(r)).collect());
            let rps: Vec<f64> = reports.iter().map(|r| r.throughput_rps).collect();
            Aggregate {
                model: key.0,
                workload: key.1,
                connections: key.2,
                payload: key.3,
                rate: key.4,
                work_us: key.5,
                runs: reports.len(),
                rps: median(rps.clone()),
                rps_spread: (
                    rps.iter()
                        .copied()
                        .fold(f64::INFINITY, f64::min)
                        .min(f64::MAX),
                    rps.iter().copied().fold(0.0, f64::max),
                ),
                mib_s: of(&|r| r.throughput_mib_s),
                p50: of(&|r| r.latency_us.p50 as f64) as u64,
                p99: of(&|r| r.latency_us.p99 as f64) as u64,
                p999: of(&|r| r.latency_us.p999 as f64) as u64,
                conn_s: of(&|r| r.churn.map_or(0.0, |c| c.connections_per_s)),
                server_cpu: of(&|r| r.server.map_or(0.0, |s| s.cpu_cores)),
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
                errors: reports.iter().map(|r| r.errors.total()).sum(),
                client_saturated: reports.iter().any(|r| r.client.saturated),
                failed: results.iter().any(|r| !r.ok()),
            }
        })
        .collect()
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

/// The advice of the work sweep: at the most connections swept, for each work level, who keeps
/// the most throughput, how latency and fairness degrade, and what offloading to a pool buys.
fn work_advice(aggregates: &[Aggregate]) -> Vec<String> {
    let sweep = work_sweep(aggregates);
    let Some(connections) = sweep.iter().map(|a| a.connections).max() else {
        return Vec::new();
    };
    let at_c: Vec<&Aggregate> = sweep
        .into_iter()
        .filter(|a| a.connections == connections)
        .collect();
    let mut works: Vec<u64> = at_c.iter().map(|a| a.work_us).collect();
    works.sort_unstable();
    works.dedup();
    let base = works[0];
    let mut lines = Vec::new();
    for &work in works.iter().skip(1) {
        let here: Vec<&Aggregate> = at_c.iter().copied().filter(|a| a.work_us == work).collect();
        lines.extend(shape(
            &format!("Handler work, {work} µs of CPU per message"),
            here.clone(),
            &RPS,
        ));
        // How each model degrades from the base level: p99 growth and fairness.
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
                "**What {work} µs of work does to latency** ({connections} connections, from {base} µs): {}. A loop or worker that computes inline delays every connection queued behind it; p99 and fairness show which models let that happen.",
                degrade.join("; ")
            ));
        }
        let find = |m: Model| here.iter().find(|a| a.model == m && !a.failed);
        if let (Some(inline), Some(offload)) = (find(Model::Tokio), find(Model::TokioRayon)) {
            lines.push(format!(
                "**Offloading {work} µs of work to a rayon pool** (tokio-rayon against tokio, {connections} connections): throughput {:.2}×, p99 {} vs {} µs, fairness {:.2} vs {:.2}.",
                offload.rps / inline.rps.max(1e-9),
                offload.p99,
                inline.p99,
                offload.fairness,
                inline.fairness
            ));
        }
    }
    lines
}

/// The value a load shape ranks models by, and how to print it.
struct Metric {
    name: &'static str,
    unit: &'static str,
    value: fn(&Aggregate) -> f64,
}

const RPS: Metric = Metric {
    name: "throughput",
    unit: "msg/s",
    value: |a| a.rps,
};
const MIB: Metric = Metric {
    name: "throughput",
    unit: "MiB/s",
    value: |a| a.mib_s,
};
const CONN: Metric = Metric {
    name: "connection rate",
    unit: "connections/s",
    value: |a| a.conn_s,
};

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One advice line: who won this shape, by how much over the runner-up, at what cost.
fn shape(title: &str, candidates: Vec<&Aggregate>, metric: &Metric) -> Option<String> {
    // A model that starved connections, erred or failed did not serve the load: it cannot win.
    let mut valid: Vec<&Aggregate> = candidates
        .iter()
        .copied()
        .filter(|a| !a.failed && a.errors == 0 && a.starved == 0 && (metric.value)(a) > 0.0)
        .collect();
    valid.sort_by(|a, b| (metric.value)(b).total_cmp(&(metric.value)(a)));
    let first = valid.first()?;
    let best = (metric.value)(first);
    let mut line = format!(
        "**{title}** ({}): **{}** wins with {} {} (p99 {} µs, server CPU {:.2} cores)",
        describe_point(first),
        first.model,
        fmt_num(best),
        metric.unit,
        first.p99,
        first.server_cpu
    );
    if let Some(second) = valid.get(1) {
        let ratio = best / (metric.value)(second).max(1e-9);
        line.push_str(&format!(
            ", {ratio:.2}× the runner-up {} ({} {})",
            second.model,
            fmt_num((metric.value)(second)),
            metric.unit
        ));
    }
    let excluded: Vec<String> = candidates
        .iter()
        .filter(|a| !valid.iter().any(|v| v.model == a.model))
        .map(|a| {
            let why = if a.failed {
                "failed".to_owned()
            } else if a.starved > 0 {
                format!("starved {} of {} connections", a.starved, a.connections)
            } else if a.errors > 0 {
                format!("{} errors", a.errors)
            } else {
                format!("no {}", metric.name)
            };
            format!("{} ({why})", a.model)
        })
        .collect();
    if !excluded.is_empty() {
        line.push_str(&format!(". Not eligible: {}", excluded.join(", ")));
    }
    if first.client_saturated {
        line.push_str(". The client was saturated here, so the winner's margin is a lower bound");
    }
    line.push('.');
    Some(line)
}

fn describe_point(a: &Aggregate) -> String {
    match a.workload {
        Workload::Churn => format!("churn, {} concurrent loops", a.connections),
        Workload::Stream => format!(
            "stream, {} connections × {} writes",
            a.connections,
            size_label(a.payload)
        ),
        _ => format!(
            "{} connection(s) × {}",
            a.connections,
            size_label(a.payload)
        ),
    }
}

/// The "Which model to pick" section, as markdown bullet lines.
pub fn advice(run: &SuiteRun) -> Vec<String> {
    let all = aggregate(run);
    let aggregates = at_base_work(&all);
    let pick = |workload: Workload, connections: usize, payload: usize| -> Vec<&Aggregate> {
        aggregates
            .iter()
            .filter(|a| {
                a.workload == workload && a.connections == connections && a.payload == payload
            })
            .collect()
    };
    let ping: Vec<&Aggregate> = aggregates
        .iter()
        .filter(|a| a.workload == Workload::PingPong)
        .collect();
    let mut lines = Vec::new();
    if !ping.is_empty() {
        let min_c = ping.iter().map(|a| a.connections).min().unwrap_or(1);
        let max_c = ping.iter().map(|a| a.connections).max().unwrap_or(1);
        let min_p = ping.iter().map(|a| a.payload).min().unwrap_or(64);
        let max_p = ping.iter().map(|a| a.payload).max().unwrap_or(64);
        lines.extend(shape(
            "Few connections, small messages",
            pick(Workload::PingPong, min_c, min_p),
            &RPS,
        ));
        if max_c != min_c {
            lines.extend(shape(
                "Many connections, small messages",
                pick(Workload::PingPong, max_c, min_p),
                &RPS,
            ));
        }
        if max_p != min_p {
            let mid_c = ping
                .iter()
                .map(|a| a.connections)
                .filter(|&c| c > min_c && c < max_c)
                .min()
                .unwrap_or(max_c);
            lines.extend(shape(
                "Large messages",
                pick(Workload::PingPong, mid_c, max_p),
                &MIB,
            ));
        }
        // Memory per connection: the growth of peak RSS from the fewest to the most connections.
        let mut memory: Vec<(&Aggregate, f64)> = pick(Workload::PingPong, max_c, min_p)
            .into_iter()
            .filter(|a| a.server_rss_kib > 0 && !a.failed && a.starved == 0 && max_c > min_c)
            .filter_map(|most| {
                let few = pick(Workload::PingPong, min_c, min_p)
                    .into_iter()
                    .find(|a| a.model == most.model && a.server_rss_kib > 0)?;
                let growth = most.server_rss_kib.saturating_sub(few.server_rss_kib) as f64;
                Some((most, growth / (max_c - min_c) as f64))
            })
            .collect();
        memory.sort_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some((least, least_kib)), Some((most, most_kib))) = (memory.first(), memory.last())
        {
            lines.push(format!(
                "**Memory per connection** (peak RSS growth from {min_c} to {max_c} connections, \
                 among models that served them all): \
                 **{}** needs the least, {:.1} KiB per connection ({:.1} MiB in all at {max_c}); \
                 the most is {} with {:.1} KiB per connection.",
                least.model,
                least_kib,
                least.server_rss_kib as f64 / 1024.0,
                most.model,
                most_kib
            ));
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
    let churn: Vec<&Aggregate> = aggregates
        .iter()
        .filter(|a| a.workload == Workload::Churn)
        .collect();
    if let Some(c) = churn.iter().map(|a| a.connections).max() {
        lines.extend(shape(
            "Connection churn",
            pick(Workload::Churn, c, 64),
            &CONN,
        ));
    }
    let stream: Vec<&Aggregate> = aggregates
        .iter()
        .filter(|a| a.workload == Workload::Stream)
        .collect();
    if let Some(first) = stream.first() {
        let candidates = stream
            .iter()
            .copied()
            .filter(|a| a.connections == first.connections && a.payload == first.payload)
            .collect();
        lines.extend(shape("Bulk transfer", candidates, &MIB));
    }
    lines.extend(work_advice(&all));
    let mut knees: Vec<&super::Knee> = run.knees.iter().filter(|k| k.rate > 0.0).collect();
    knees.sort_by(|a, b| b.rate.total_cmp(&a.rate));
    if let Some(best) = knees.first() {
        lines.push(format!(
            "**Capacity under a p99 of {} µs** (open loop, 100 connections × 64 B): **{}** holds \
             {:.0} msg/s (p99 {} µs){}.",
            run.p99_target_us,
            best.model,
            best.rate,
            best.p99_us,
            knees
                .get(1)
                .map(|k| format!(
                    ", {:.2}× the runner-up {} ({:.0} msg/s)",
                    best.rate / k.rate,
                    k.model,
                    k.rate
                ))
                .unwrap_or_default()
        ));
    }
    if lines.is_empty() {
        lines.push(
            "No point of this run can rank the models (every candidate failed or starved).".into(),
        );
    }
    lines
}
