//! `capacity-curve.svg` and each model's `capacity-timeline-MODEL.svg`: the capacity searches a
//! run stores (`echo_analysis::capacity`) drawn on the canvas.

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

/// The file name of a model's capacity timeline chart, when its name is safe in one.
pub fn timeline_file(model: &str) -> Option<String> {
    let safe = !model.is_empty()
        && model
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    safe.then(|| format!("capacity-timeline-{model}.svg"))
}

/// For every model that kept timelines, its last round's steps on each side of the crossing,
/// side by side (`capacity-timeline-MODEL.svg`): how the last rate that met the objective and
/// the first that missed it behaved over their windows.
pub fn draw_timelines(
    dir: &std::path::Path,
    run: &SuiteRun,
) -> std::io::Result<Vec<std::path::PathBuf>> {
    use super::{throughput_range, timeline_lines};
    let Some(objective) = run.capacity_objective else {
        return Ok(Vec::new());
    };
    let mut written = Vec::new();
    for search in &run.capacity {
        let (Some(last), Some(file)) = (
            search.timelines.iter().map(|t| t.round).max(),
            timeline_file(&search.model),
        ) else {
            continue;
        };
        let mut steps: Vec<_> = search
            .timelines
            .iter()
            .filter(|t| t.round == last)
            .collect();
        steps.sort_by(|a, b| a.offered_rps.total_cmp(&b.offered_rps));
        let panels = steps
            .iter()
            .map(|t| Panel {
                title: Some(format!(
                    "{:.0} msg/s offered: {}",
                    t.offered_rps,
                    if t.met { "met" } else { "missed" }
                )),
                lines: timeline_lines(&t.intervals),
            })
            .collect();
        let mut notes = vec![format!(
            "round {} of {}; objective {objective}",
            last + 1,
            search.rounds.len()
        )];
        notes.extend(
            steps
                .iter()
                .map(|t| format!("{:.0}: {}", t.offered_rps, throughput_range(&t.intervals))),
        );
        notes.push("crossed: an interval with errors".to_owned());
        let path = dir.join(file);
        canvas::draw(
            &path,
            &Figure {
                title: format!(
                    "{}: latency over time on each side of the knee ({CONNECTIONS} connections × {PAYLOAD} B, open loop)",
                    search.model
                ),
                x: Axis::new("seconds into the step's window", Scale::Linear),
                y: Axis::new("latency µs, from the intended send (log scale)", Scale::Log),
                panels,
                notes,
            },
        )?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_analysis::capacity::{ModelCapacity, Objective};

    #[test]
    fn each_model_gets_its_last_rounds_knee_timelines_side_by_side() {
        use echo_analysis::capacity::StepTimeline;
        use echo_loadgen::engine::IntervalFigures;
        let o: Objective = "p99=1ms".parse().unwrap();
        let intervals = |p99: u64| {
            (0..5)
                .map(|k| IntervalFigures {
                    start_s: k as f64 * 0.1,
                    duration_s: 0.1,
                    messages: 1_000,
                    throughput_rps: 10_000.0,
                    p50_us: p99 / 4,
                    p99_us: p99,
                    max_us: p99 * 2,
                    ..IntervalFigures::default()
                })
                .collect::<Vec<_>>()
        };
        let search = |model: &str| ModelCapacity {
            model: model.into(),
            capacity: None,
            ramp: Vec::new(),
            grid: Vec::new(),
            rounds: vec![Vec::new(); 2],
            failure: None,
            timelines: Vec::new(),
        };
        let mut mio = search("mio");
        for round in 0..2 {
            for (rate, met, p99) in [(90_000.0, false, 40_000), (80_000.0, true, 600)] {
                mio.timelines.push(StepTimeline {
                    round,
                    offered_rps: rate + round as f64,
                    met,
                    intervals: intervals(p99),
                });
            }
        }
        let run = SuiteRun {
            capacity_objective: Some(o),
            capacity: vec![mio, search("Outside Server")],
            ..SuiteRun::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let written = draw_timelines(dir.path(), &run).unwrap();
        assert_eq!(written, vec![dir.path().join("capacity-timeline-mio.svg")]);
        let svg = std::fs::read_to_string(&written[0]).unwrap();
        assert!(svg.contains("round 2 of 2"), "{svg}");
        // The last round's two steps, the lower first; not the first round's.
        let (met, missed) = (
            svg.find("80001 msg/s offered: met").expect("met panel"),
            svg.find("90001 msg/s offered: missed")
                .expect("missed panel"),
        );
        assert!(met < missed);
        assert!(!svg.contains("80000 msg/s offered"), "{svg}");
        assert_eq!(timeline_file("a/../b"), None);
    }
}
