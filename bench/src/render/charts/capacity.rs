//! `capacity-curve.svg`: the capacity searches a run stores (`echo_analysis::capacity`) drawn
//! on the canvas.

use echo_analysis::capacity::{
    SUITE_CONNECTIONS as CONNECTIONS, SUITE_PAYLOAD as PAYLOAD, StepSummary,
};
use echo_analysis::run::SuiteRun;
use echo_servers::Model;

use super::canvas::{self, Axis, Figure, Line, Mark, Panel, Point, Scale};
use super::style::SeriesStyle;

/// The curve of every model: achieved rate against p50, p99 and p99.9 (a panel each, log
/// scales), each grid step's median with its interval over the rounds; a step that misses the
/// objective hollow. Written as `capacity-curve.svg`; nothing without searches.
pub fn draw(dir: &std::path::Path, run: &SuiteRun) -> std::io::Result<Vec<std::path::PathBuf>> {
    let Some(objective) = run.capacity_objective else {
        return Ok(Vec::new());
    };
    type Pick = fn(&StepSummary) -> Option<echo_analysis::bootstrap::Estimate>;
    let percentiles: [(&str, Pick); 3] = [
        ("p50", |s| s.p50_us),
        ("p99", |s| s.p99_us),
        ("p99.9", |s| s.p999_us),
    ];
    let panels: Vec<Panel> = percentiles
        .iter()
        .map(|(name, pick)| Panel {
            title: Some((*name).to_owned()),
            lines: run
                .capacity
                .iter()
                .filter_map(|m| {
                    let model: Model = m.model.parse().ok()?;
                    let steps = &m.capacity.as_ref()?.steps;
                    let points: Vec<Point> = steps
                        .iter()
                        .filter_map(|s| {
                            let latency = pick(s)?;
                            Some(Point {
                                x: s.achieved_rps?.median,
                                y: latency.median,
                                interval: Some((latency.low, latency.high)),
                                mark: if s.passes { Mark::Filled } else { Mark::Hollow },
                            })
                        })
                        .collect();
                    (!points.is_empty()).then(|| Line {
                        name: m.model.clone(),
                        style: SeriesStyle::of_model(model),
                        points,
                        note: m
                            .capacity
                            .as_ref()
                            .and_then(|c| c.capacity_rps)
                            .map(|rps| format!("capacity {rps:.0} msg/s")),
                    })
                })
                .collect(),
        })
        .collect();
    if panels.iter().all(|p| p.lines.is_empty()) {
        return Ok(Vec::new());
    }
    let path = dir.join("capacity-curve.svg");
    canvas::draw(
        &path,
        &Figure {
            title: format!(
                "latency against achieved rate near each model's knee ({CONNECTIONS} connections × {PAYLOAD} B, open loop)"
            ),
            x: Axis::new("achieved messages/s (log scale)", Scale::Log),
            y: Axis::new("latency µs, from the intended send (log scale)", Scale::Log),
            panels,
            notes: vec![
                format!("objective {objective}; a hollow step misses it"),
                "median and 95% interval over the rounds".to_owned(),
            ],
        },
    )?;
    Ok(vec![path])
}
