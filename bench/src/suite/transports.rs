//! A run over several transports, shown: each transport's title, and the comparison of TCP
//! with Unix sockets (computed by [`echo_analysis::transports`]) as a table, a chart (one line
//! per model from TCP to Unix) and an advice line.

use std::path::{Path, PathBuf};

use echo_servers::Transport;

use super::Server;
use super::charts::canvas::{self, Axis, Figure, Line, Mark, Panel, Point, Scale};
use super::charts::style::SeriesStyle;
use super::plan::size_label;
use crate::config::Workload;
use echo_analysis::aggregate::{Aggregate, Measure, TIE_PCT};

use crate::render::format::signed_pct as signed;
use crate::render::table::{Cell, Column, Grid, Row};
pub use echo_analysis::transports::{Comparison, compare, loads, of, present, split};

/// How reports title a transport's section.
pub fn title(transport: Transport) -> &'static str {
    match transport {
        Transport::Tcp => "TCP",
        Transport::Unix => "Unix domain sockets",
        Transport::Udp => "UDP datagrams",
    }
}

/// `7.9 → 4.1 µs (−48% [−52, −44])`.
fn cell(c: &Comparison) -> String {
    let change = c.change.as_ref().map_or(String::new(), |c| {
        format!(" ({})", crate::render::format::change(c))
    });
    format!("{:.1} → {:.1} µs{change}", c.tcp_us, c.unix_us)
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
                                text: cell(c),
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
                a.load.transport == t
                    && a.model == c.model
                    && a.load.workload == Workload::PingPong
                    && (a.load.connections, a.load.payload) == (c.connections, c.payload)
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
