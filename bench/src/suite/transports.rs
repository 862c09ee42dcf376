//! A run over several transports (`suite --transports tcp,unix,udp`): each transport's share of
//! the run ([`of`]), so that it gets its own tables and advice, and the comparison of TCP with
//! Unix sockets: each model's server CPU per message at the loads measured on both, paired by
//! round and judged with the same paired bootstrap as every other comparison ([`Change`]),
//! in a table, a chart (one line per model from TCP to Unix) and an advice line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use echo_servers::Transport;

use super::charts::canvas::{self, Axis, Figure, Line, Mark, Panel, Point, Scale};
use super::charts::style::SeriesStyle;
use super::plan::size_label;
use super::{Server, SuiteRun};
use crate::config::Workload;
use echo_analysis::aggregate::{Aggregate, Measure, TIE_PCT, at_base_work};
use echo_analysis::bootstrap::{Change, Verdict};

use crate::render::format::signed_pct as signed;
use crate::render::table::{Cell, Column, Grid, Row};

/// The seed of the comparisons' bootstrap (fixed, so a redraw gives the same intervals).
const SEED: u64 = 0x7c9_0a1e;

/// The transports measured in `run`, in the order reports list them.
pub fn present(run: &SuiteRun) -> Vec<Transport> {
    Transport::ALL
        .into_iter()
        .filter(|&t| run.points.iter().any(|p| p.point.transport == t))
        .collect()
}

/// How reports title a transport's section.
pub fn title(transport: Transport) -> &'static str {
    match transport {
        Transport::Tcp => "TCP",
        Transport::Unix => "Unix domain sockets",
        Transport::Udp => "UDP datagrams",
    }
}

/// `run` with only `transport`'s points. The C10K measurement and the capacity knees are TCP's.
pub fn of(run: &SuiteRun, transport: Transport) -> SuiteRun {
    let tcp = transport == Transport::Tcp;
    SuiteRun {
        points: run
            .points
            .iter()
            .filter(|p| p.point.transport == transport)
            .cloned()
            .collect(),
        knees: if tcp { run.knees.clone() } else { Vec::new() },
        c10k: if tcp { run.c10k.clone() } else { Vec::new() },
        ..run.clone()
    }
}

/// Each transport of a run measured over several (or over one other than TCP) with its share of
/// the run and its aggregates; empty for a TCP-only run, which reports as it always has.
pub fn split(run: &SuiteRun, all: &[Aggregate]) -> Vec<(Transport, SuiteRun, Vec<Aggregate>)> {
    let present = present(run);
    if present.len() <= 1 && present.iter().all(|&t| t == Transport::Tcp) {
        return Vec::new();
    }
    present
        .into_iter()
        .map(|t| {
            let aggregates = all.iter().filter(|a| a.transport == t).cloned().collect();
            (t, of(run, t), aggregates)
        })
        .collect()
}

/// One model at one load on both TCP and a Unix socket: server CPU per message.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The model.
    pub model: Server,
    /// Connections.
    pub connections: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Median µs per message over TCP.
    pub tcp_us: f64,
    /// Median µs per message over the Unix socket.
    pub unix_us: f64,
    /// The paired change from TCP (base) to Unix (head), over the rounds both measured.
    pub change: Option<Change>,
}

impl Comparison {
    /// `7.9 → 4.1 µs (−48% [−52, −44])`.
    fn cell(&self) -> String {
        let change = self.change.as_ref().map_or(String::new(), |c| {
            format!(" ({})", crate::render::format::change(c))
        });
        format!("{:.1} → {:.1} µs{change}", self.tcp_us, self.unix_us)
    }

    /// Whether the interval puts Unix cheaper by more than [`TIE_PCT`].
    fn unix_cheaper(&self) -> bool {
        self.change
            .as_ref()
            .is_some_and(|c| c.verdict(TIE_PCT, false) == Verdict::Improved)
    }
}

/// Every model's ping-pong points (at base work) measured over both TCP and a Unix socket,
/// each with the paired change of server CPU per message, in load then registry order.
pub fn compare(all: &[Aggregate]) -> Vec<Comparison> {
    let base = at_base_work(all);
    let key = |a: &Aggregate| (a.model.clone(), a.connections, a.payload);
    let ping = |t: Transport| -> BTreeMap<_, &Aggregate> {
        base.iter()
            .filter(|a| a.transport == t && a.workload == Workload::PingPong && a.served())
            .map(|a| (key(a), a))
            .collect()
    };
    let (tcp, unix) = (ping(Transport::Tcp), ping(Transport::Unix));
    let mut out: Vec<Comparison> = tcp
        .iter()
        .filter_map(|(k, t)| {
            let u = unix.get(k)?;
            let (te, ue) = (
                t.estimate(Measure::CpuPerMessage)?,
                u.estimate(Measure::CpuPerMessage)?,
            );
            let by_round: BTreeMap<usize, f64> =
                t.values(Measure::CpuPerMessage).into_iter().collect();
            let pairs: Vec<(f64, f64)> = u
                .values(Measure::CpuPerMessage)
                .into_iter()
                .filter_map(|(round, v)| Some((*by_round.get(&round)?, v)))
                .collect();
            Some(Comparison {
                model: k.0.clone(),
                connections: k.1,
                payload: k.2,
                tcp_us: te.median,
                unix_us: ue.median,
                change: Change::of(&pairs, SEED),
            })
        })
        .collect();
    out.sort_by_key(|c| (c.connections, c.payload, c.model.clone()));
    out
}

/// The loads compared, in order.
fn loads(comparisons: &[Comparison]) -> Vec<(usize, usize)> {
    let mut loads: Vec<(usize, usize)> = comparisons
        .iter()
        .map(|c| (c.connections, c.payload))
        .collect();
    loads.sort_unstable();
    loads.dedup();
    loads
}

/// The comparison as a table: one row per model, one column per load.
pub fn grid(comparisons: &[Comparison]) -> Grid {
    let loads = loads(comparisons);
    let mut models: Vec<Server> = comparisons.iter().map(|c| c.model.clone()).collect();
    models.sort();
    models.dedup();
    Grid {
        title: "### TCP vs Unix sockets: server CPU per message, ping-pong".to_owned(),
        columns: loads
            .iter()
            .map(|(c, p)| Column {
                header: format!("{c} conn × {}", size_label(*p)),
                by_cpu: false,
            })
            .collect(),
        rows: models
            .into_iter()
            .map(|model| Row {
                cells: loads
                    .iter()
                    .map(|load| {
                        comparisons
                            .iter()
                            .find(|c| c.model == model && (c.connections, c.payload) == *load)
                            .map_or(Cell::Missing, |c| Cell::Value {
                                text: c.cell(),
                                leading: false,
                                warnings: Vec::new(),
                            })
                    })
                    .collect(),
                server: model,
            })
            .collect(),
    }
}

/// The markdown table, under its title and what its cells hold.
pub fn table(comparisons: &[Comparison]) -> String {
    if comparisons.is_empty() {
        return String::new();
    }
    let grid = grid(comparisons);
    format!(
        "{}\n\nTCP → Unix medians, and the paired change with its 95% interval over the \
         rounds.\n\n{}\n",
        grid.title,
        grid.markdown()
    )
}

/// The advice line on what a Unix socket saves, per load: the median change over the models,
/// its range, and how many models the data separates.
pub fn advice(comparisons: &[Comparison], style: crate::render::Style) -> Option<String> {
    if comparisons.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    for (connections, payload) in loads(comparisons) {
        let at: Vec<&Comparison> = comparisons
            .iter()
            .filter(|c| (c.connections, c.payload) == (connections, payload))
            .collect();
        let mut changes: Vec<f64> = at
            .iter()
            .filter_map(|c| c.change.as_ref().map(|ch| ch.change_pct))
            .collect();
        if changes.is_empty() {
            continue;
        }
        changes.sort_by(f64::total_cmp);
        let median = echo_analysis::bootstrap::median(&changes).unwrap_or(0.0);
        let cheaper = at.iter().filter(|c| c.unix_cheaper()).count();
        let most = at
            .iter()
            .filter(|c| c.change.is_some())
            .min_by(|a, b| a.unix_us.total_cmp(&b.unix_us));
        parts.push(format!(
            "at {connections} conn × {} server CPU per message changes by a median {} over {} \
             models (from {} to {}); the data puts Unix cheaper by more than ±{TIE_PCT:.0}% for \
             {cheaper} of them{}",
            size_label(payload),
            signed(median),
            changes.len(),
            signed(changes[0]),
            signed(changes[changes.len() - 1]),
            most.map_or(String::new(), |m| format!(
                "; cheapest over Unix: {} at {:.1} µs",
                m.model, m.unix_us
            ))
        ));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "{} (same host: sidecars, local databases, proxies): {}. \
             Without the TCP stack, more of each message's cost is the model's own.",
            style.bold("Unix sockets instead of TCP"),
            parts.join("; ")
        )
    })
}

/// `cost-tcp-vs-unix.svg`: one panel per load, one line per model from its TCP cost to its Unix
/// cost (log scale), with the rounds' intervals.
pub fn draw(
    dir: &Path,
    comparisons: &[Comparison],
    all: &[Aggregate],
) -> std::io::Result<Vec<PathBuf>> {
    if comparisons.is_empty() {
        return Ok(Vec::new());
    }
    let interval = |t: Transport, c: &Comparison| {
        all.iter()
            .find(|a| {
                a.transport == t
                    && a.model == c.model
                    && a.workload == Workload::PingPong
                    && (a.connections, a.payload) == (c.connections, c.payload)
            })
            .and_then(|a| a.estimate(Measure::CpuPerMessage))
            .map(|e| (e.low, e.high))
    };
    let panels = loads(comparisons)
        .into_iter()
        .map(|(connections, payload)| Panel {
            title: Some(format!("{connections} conn × {}", size_label(payload))),
            lines: comparisons
                .iter()
                .filter(|c| (c.connections, c.payload) == (connections, payload))
                .map(|c| Line {
                    name: c.model.name().to_owned(),
                    style: SeriesStyle::of(c.model.clone()),
                    points: vec![
                        Point {
                            x: 0.0,
                            y: c.tcp_us,
                            interval: interval(Transport::Tcp, c),
                            mark: Mark::Filled,
                        },
                        Point {
                            x: 1.0,
                            y: c.unix_us,
                            interval: interval(Transport::Unix, c),
                            mark: Mark::Filled,
                        },
                    ],
                    note: None,
                })
                .collect(),
        })
        .collect();
    let path = dir.join("cost-tcp-vs-unix.svg");
    canvas::draw(
        &path,
        &Figure {
            title: "server CPU per message, ping-pong: TCP vs a Unix socket".to_owned(),
            x: Axis::new("transport", Scale::Linear)
                .with_range(-0.25, 1.25)
                .with_ticks(vec![(0.0, "TCP".to_owned()), (1.0, "Unix".to_owned())]),
            y: Axis::new("server CPU per message, µs (log scale)", Scale::Log),
            panels,
            notes: vec!["Medians over the rounds, bars their 95% intervals.".to_owned()],
        },
    )?;
    Ok(vec![path])
}
