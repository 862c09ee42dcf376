//! `ablation.svg`: the io_uring ablation ([`echo_analysis::ablation`]) drawn on the canvas.

use std::path::{Path, PathBuf};

use echo_analysis::ablation::Ablation;
use echo_analysis::server::Server;
use echo_servers::Model;

use super::canvas::{self, Axis, Figure, Line, Mark, Panel, Point, Scale};
use super::style::{Dash, SeriesStyle};
use crate::render::ablation::load_label;

/// `ablation.svg`: server CPU per message at each step (x), one line per load, with the
/// rounds' intervals; `mio` at the same load as a dotted line of the same colour.
pub fn draw(dir: &Path, ablation: &Ablation) -> std::io::Result<Vec<PathBuf>> {
    let step_x = |i: usize| (i + 1) as f64;
    let mut lines = Vec::new();
    let mio = ablation
        .others
        .iter()
        .find(|r| r.server == Server::Model(Model::Mio));
    for (l, load) in ablation.loads.iter().enumerate() {
        let label = load_label(load);
        let style = SeriesStyle::nth(l);
        let points: Vec<Point> = ablation
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let cell = row.cells.get(l)?.as_ref()?;
                Some(Point {
                    x: step_x(i),
                    y: cell.cpu.median,
                    interval: Some((cell.cpu.low, cell.cpu.high)),
                    mark: if cell.served {
                        Mark::Filled
                    } else {
                        Mark::Hollow
                    },
                })
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        lines.push(Line {
            name: label.clone(),
            style: SeriesStyle {
                dash: Dash::Solid,
                ..style
            },
            points,
            note: None,
        });
        if let Some(cell) = mio.and_then(|m| m.cells.get(l)?.as_ref()) {
            let y = cell.cpu.median;
            lines.push(Line {
                name: format!("mio, {label}"),
                style: SeriesStyle {
                    dash: Dash::Dotted,
                    ..style
                },
                points: [0, ablation.steps.len() - 1]
                    .into_iter()
                    .map(|i| Point {
                        x: step_x(i),
                        y,
                        interval: None,
                        mark: Mark::None,
                    })
                    .collect(),
                note: None,
            });
        }
    }
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let ticks = ablation
        .steps
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let name = row.server.name();
            (
                step_x(i),
                name.strip_prefix("io-uring.").unwrap_or(name).to_owned(),
            )
        })
        .collect();
    let path = dir.join("ablation.svg");
    canvas::draw(
        &path,
        &Figure {
            title: "io-uring, one technique at a time: server CPU per message".to_owned(),
            x: Axis::new(
                "step (each adds one technique to the one before)",
                Scale::Linear,
            )
            .with_range(0.6, ablation.steps.len() as f64 + 0.4)
            .with_ticks(ticks),
            y: Axis::new("server CPU per message, µs (log scale)", Scale::Log),
            panels: vec![Panel { title: None, lines }],
            notes: vec![
                "Medians over the rounds, bars their 95% interval.".to_owned(),
                "Dotted: mio at the same point.".to_owned(),
            ],
        },
    )?;
    Ok(vec![path])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_draws_a_line_per_load_and_mio_beside_it() {
        let all = echo_analysis::aggregate::aggregate(&echo_analysis::fixtures::ablation_run());
        let ablation = echo_analysis::ablation::of(&all).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let written = draw(dir.path(), &ablation).unwrap();
        let svg = std::fs::read_to_string(&written[0]).unwrap();
        assert!(
            svg.contains("256 × 64 B") && svg.contains("mio, 256 × 64 B"),
            "legend"
        );
        assert!(svg.contains("plain") && svg.contains("defer"), "step ticks");
    }
}
