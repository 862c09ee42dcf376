//! `cost-tcp-vs-unix.svg`: the TCP vs Unix comparison ([`echo_analysis::transports`]) drawn
//! on the canvas.

use std::path::{Path, PathBuf};

use echo_analysis::aggregate::{Aggregate, Measure};
use echo_analysis::point::size_label;
use echo_analysis::transports::{Comparison, loads};
use echo_loadgen::config::Workload;
use echo_servers::Transport;

use super::canvas::{self, Axis, Figure, Line, Mark, Panel, Point, Scale};
use super::style::SeriesStyle;

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
    debug_assert!(comparisons.iter().all(|c| c.other == Transport::Unix));
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
        .map(|(_, _, connections, payload)| Panel {
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
                            y: c.other_us,
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
