//! The run's charts as SVG (plotters), every model in the same style on every chart
//! ([`style`]), the legend beside the plot ([`canvas`]):
//! - a ranking chart per advice category: each model's median with its 95% interval over the
//!   rounds, the leading group filled;
//! - against connections (log scale, ticks at the measured counts): throughput with error bars,
//!   the same in small multiples by model family, server CPU per message, server memory and
//!   fairness; starved points hollow, failed ones crossed;
//! - the handler-work sweep: throughput, p99 and fairness against the CPU work per message;
//! - a latency spectrum per point ([`spectrum`]), from the histograms stored in run.json.
//!
//! It is long because it decides which charts a run gets and builds each one's figure from the
//! aggregates, one function per chart.

pub mod ablation;
pub(crate) mod canvas;
pub mod capacity;
mod spectrum;
pub(crate) mod style;
pub mod transports;

use std::path::{Path, PathBuf};

use echo_servers::Family;

use echo_analysis::server::Server;
use plotters::coord::Shift;
use plotters::prelude::*;

use self::canvas::{Axis, Figure, Line, Mark, Panel, Point, Scale, axis_number};
use self::style::SeriesStyle;
use echo_analysis::advice::rankings;
use echo_analysis::aggregate::{Aggregate, Measure};
use echo_analysis::point::size_label;
use echo_analysis::run::{Status, SuiteRun};
use echo_loadgen::config::Workload;

pub use self::canvas::{LEGEND_WIDTH, WIDTH};
pub use self::spectrum::write_log as write_histogram_log;

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// One advice category: each eligible model's median (dot) and 95% interval over the rounds
/// (bar), best at the top; the leading group filled, the rest hollow.
fn ranking_chart(
    path: &Path,
    title: &str,
    measure: Measure,
    rows: &[(String, f64, f64, f64, bool)],
) -> std::io::Result<()> {
    let height = 90 + 34 * rows.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (canvas::WIDTH, height)).into_drawing_area();
        draw_ranking(&root, title, measure, rows)?;
    }
    save(path, svg)
}

/// What every chart file starts with: how `echo-bench report` knows a chart is its own to
/// redraw or remove.
pub const CHART_MARK: &str = "<!-- chart drawn by echo-bench -->";

/// Whether `text` is a chart echo-bench drew: marked with [`CHART_MARK`], or plotters' SVG as
/// every version before the mark wrote it.
pub fn drawn_by_us(text: &str) -> bool {
    let head: Vec<&str> = text.lines().take(2).collect();
    head.first() == Some(&CHART_MARK)
        || (head.len() == 2
            && head[0].starts_with("<svg width=\"")
            && head[0].ends_with("xmlns=\"http://www.w3.org/2000/svg\">")
            && head[1].starts_with("<rect x=\"0\" y=\"0\""))
}

/// Whether the chart file at `path` may be replaced or removed: absent, or a regular file
/// ([`drawn_by_us`]). A symlink, a folder or anyone else's file may not.
pub fn may_replace(path: &Path) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
        Ok(meta) if !meta.is_file() => Ok(false),
        Ok(_) => Ok(drawn_by_us(&String::from_utf8_lossy(&std::fs::read(path)?))),
    }
}

/// Writes a chart's SVG to `path`, marked ([`CHART_MARK`]), through [`echo_loadgen::files::write`].
pub(crate) fn save(path: &Path, svg: String) -> std::io::Result<()> {
    echo_loadgen::files::write(path, format!("{CHART_MARK}\n{svg}"))
}

fn draw_ranking(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    measure: Measure,
    rows: &[(String, f64, f64, f64, bool)],
) -> std::io::Result<()> {
    let x_max = rows.iter().map(|r| r.3).fold(0.0f64, f64::max) * 1.1;
    root.fill(&WHITE).map_err(err)?;
    let n = rows.len();
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(170)
        .build_cartesian_2d(0.0..x_max.max(1e-9), -0.5f64..(n as f64 - 0.5))
        .map_err(err)?;
    let label = move |y: &f64| {
        let i = y.round();
        if (y - i).abs() < 0.01 && i >= 0.0 && (i as usize) < names.len() {
            // Best at the top: row 0 is drawn highest.
            names[names.len() - 1 - i as usize].clone()
        } else {
            String::new()
        }
    };
    let x_desc = format!(
        "{} ({}), median and 95% interval over the rounds",
        measure.name(),
        if measure.higher_is_better() {
            "higher is better"
        } else {
            "lower is better"
        }
    );
    chart
        .configure_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&label)
        .x_desc(x_desc)
        .x_label_formatter(&|x| axis_number(*x))
        .disable_y_mesh()
        .draw()
        .map_err(err)?;
    let lead = RGBColor(31, 119, 180);
    let rest = RGBColor(127, 127, 127);
    for (i, (_, median, low, high, leading)) in rows.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let c = if *leading { lead } else { rest };
        chart
            .draw_series(std::iter::once(ErrorBar::new_horizontal(
                y,
                *low,
                *median,
                *high,
                c.stroke_width(2),
                10,
            )))
            .map_err(err)?;
        let style = if *leading { c.filled() } else { WHITE.filled() };
        chart
            .draw_series([
                Circle::new((*median, y), 6, style),
                Circle::new((*median, y), 6, c.stroke_width(2)),
            ])
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// The ranking chart of every advice category; returns the files written.
fn draw_rankings(dir: &Path, all: &[Aggregate]) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (i, finding) in rankings(all).into_iter().enumerate() {
        let ranking = &finding.ranking;
        if ranking.ranked.len() < 2 {
            continue;
        }
        let rows: Vec<(String, f64, f64, f64, bool)> = ranking
            .ranked
            .iter()
            .map(|r| {
                (
                    r.aggregate.model.name().to_owned(),
                    r.estimate.median,
                    r.estimate.low,
                    r.estimate.high,
                    !r.separated,
                )
            })
            .collect();
        let path = dir.join(format!("rank-{}.svg", i + 1));
        let title = format!(
            "{}: {} ({})",
            crate::render::advice::title(finding.title),
            crate::render::advice::describe_point(finding.point),
            if ranking.sole_winner().is_some() {
                "filled: the sole leader"
            } else {
                "filled: the leading group, tied"
            }
        );
        ranking_chart(&path, &title, ranking.measure, &rows)?;
        written.push(path);
    }
    Ok(written)
}

/// How a point's marker says what it can claim: crossed if a round failed, hollow if
/// connections starved or saw errors, filled otherwise.
fn mark_of(a: &Aggregate) -> Mark {
    if a.failed {
        Mark::Crossed
    } else if a.starved > 0 || a.errors > 0 {
        Mark::Hollow
    } else {
        Mark::Filled
    }
}

/// The legend's note for a model's points: where it starved, failed or saw errors.
fn note_of(points: &[&Aggregate], x_name: &dyn Fn(&Aggregate) -> String) -> Option<String> {
    let list = |keep: &dyn Fn(&Aggregate) -> bool| -> Vec<String> {
        points
            .iter()
            .filter(|a| keep(a))
            .map(|a| x_name(a))
            .collect()
    };
    let mut parts = Vec::new();
    let failed = list(&|a| a.failed);
    if !failed.is_empty() {
        parts.push(format!("failed at {}", failed.join(", ")));
    }
    let starved = list(&|a| !a.failed && (a.starved > 0 || a.errors > 0));
    if !starved.is_empty() {
        parts.push(format!("starved or erred at {}", starved.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// `a` drawn at `x`: `value` of it, with `interval`'s 95% interval over the rounds where there
/// were rounds, and the marker of what it can claim.
fn point_of(
    a: &Aggregate,
    x: f64,
    value: fn(&Aggregate) -> f64,
    interval: Option<Measure>,
) -> Point {
    Point {
        x,
        y: value(a),
        interval: interval
            .and_then(|m| a.estimate(m))
            .filter(|e| e.n > 1)
            .map(|e| (e.low, e.high)),
        mark: mark_of(a),
    }
}

/// A server's line, if it has points.
fn line_of(server: Server, points: Vec<Point>, note: Option<String>) -> Option<Line> {
    (!points.is_empty()).then(|| Line {
        name: server.name().to_owned(),
        style: SeriesStyle::of(server),
        points,
        note,
    })
}

fn models_in(aggregates: &[Aggregate]) -> Vec<Server> {
    let mut models: Vec<Server> = Vec::new();
    for a in aggregates {
        if !models.contains(&a.model) {
            models.push(a.model.clone());
        }
    }
    models.sort();
    models
}

/// One line per model: `value` of the ping-pong points with `payload`, by connections; with
/// `interval`, that measure's 95% interval over the rounds as error bars.
fn connection_lines(
    aggregates: &[Aggregate],
    payload: usize,
    value: fn(&Aggregate) -> f64,
    interval: Option<Measure>,
) -> Vec<Line> {
    models_in(aggregates)
        .into_iter()
        .filter_map(|model| {
            let mut here: Vec<&Aggregate> = aggregates
                .iter()
                .filter(|a| {
                    a.model == model
                        && a.load.workload == Workload::PingPong
                        && a.load.payload == payload
                        && a.runs > 0
                })
                .collect();
            here.sort_by_key(|a| a.load.connections);
            let points: Vec<Point> = here
                .iter()
                .map(|a| point_of(a, a.load.connections as f64, value, interval))
                .collect();
            line_of(
                model,
                points,
                note_of(&here, &|a| a.load.connections.to_string()),
            )
        })
        .collect()
}

/// Connections on a log axis, ticked at the counts measured.
fn connections_axis(aggregates: &[Aggregate], payload: usize) -> Axis {
    let mut counts: Vec<usize> = aggregates
        .iter()
        .filter(|a| a.load.workload == Workload::PingPong && a.load.payload == payload)
        .map(|a| a.load.connections)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    let low = *counts.first().unwrap_or(&1) as f64;
    let high = *counts.last().unwrap_or(&1) as f64;
    Axis::new("connections (log scale)", Scale::Log)
        .with_range(low / 1.6, high.max(low * 2.0) * 1.6)
        .with_ticks(counts.iter().map(|&c| (c as f64, c.to_string())).collect())
}

/// One chart of a set: file, title, y axis, the figure drawn and the measure of its interval.
type ChartSpec = (
    &'static str,
    &'static str,
    Axis,
    fn(&Aggregate) -> f64,
    Option<Measure>,
);

/// Jain's index: 0 to 1, whatever the data.
fn fairness_axis() -> Axis {
    Axis::new("Jain index (1 = even)", Scale::Linear).with_range(0.0, 1.05)
}

const MARKERS_NOTE: &str =
    "Hollow marker: some connections starved or saw errors; crossed: the point failed.";
const BARS_NOTE: &str = "Bars: 95% interval over the rounds.";

/// The charts against connections for one ping-pong payload; returns the files written.
fn draw_by_connections(
    dir: &Path,
    aggregates: &[Aggregate],
    payload: usize,
    first: bool,
) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let size = size_label(payload);
    let label = size.replace(' ', "");
    let notes = vec![BARS_NOTE.to_owned(), MARKERS_NOTE.to_owned()];
    let throughput = connection_lines(aggregates, payload, |a| a.rps, Some(Measure::Throughput));
    let throughput_axis = Axis::new("messages/s", Scale::Linear);
    let path = dir.join(format!("throughput-{label}.svg"));
    canvas::draw(
        &path,
        &Figure {
            title: format!("ping-pong throughput, {size} messages (median, 95% interval)"),
            x: connections_axis(aggregates, payload),
            y: throughput_axis.clone(),
            panels: vec![Panel {
                title: None,
                lines: throughput.clone(),
            }],
            notes: notes.clone(),
        },
    )?;
    written.push(path);
    // The same in small multiples, one panel per family (and one for outside servers),
    // where a dozen lines tangle.
    let panels: Vec<Panel> = Family::ALL
        .into_iter()
        .map(Some)
        .chain([None])
        .map(|family| Panel {
            title: Some(family.map_or("outside servers", Family::title).to_owned()),
            lines: throughput
                .iter()
                .filter(|l| Server::known(&l.name).and_then(|s| s.family()) == family)
                .cloned()
                .collect(),
        })
        .filter(|p| !p.lines.is_empty())
        .collect();
    if panels.len() > 1 {
        let path = dir.join(format!("throughput-{label}-by-family.svg"));
        canvas::draw(
            &path,
            &Figure {
                title: format!("ping-pong throughput, {size} messages, by model family"),
                x: connections_axis(aggregates, payload),
                y: throughput_axis,
                panels,
                notes: notes.clone(),
            },
        )?;
        written.push(path);
    }
    if !first {
        return Ok(written);
    }
    let charts: [ChartSpec; 3] = [
        (
            "server-cpu.svg",
            "server CPU per message",
            Axis::new("µs of server CPU per message (log scale)", Scale::Log),
            |a| a.cpu_us_per_msg,
            Some(Measure::CpuPerMessage),
        ),
        (
            "server-rss.svg",
            "server peak RSS",
            Axis::new("MiB", Scale::Linear),
            |a| a.server_rss_kib as f64 / 1024.0,
            None,
        ),
        (
            "fairness.svg",
            "fairness (Jain's index over connections)",
            fairness_axis(),
            |a| a.fairness,
            None,
        ),
    ];
    for (file, title, y, value, interval) in charts {
        let path = dir.join(file);
        canvas::draw(
            &path,
            &Figure {
                title: format!("{title}, ping-pong {size} messages"),
                x: connections_axis(aggregates, payload),
                y,
                panels: vec![Panel {
                    title: None,
                    lines: connection_lines(aggregates, payload, value, interval),
                }],
                notes: notes.clone(),
            },
        )?;
        written.push(path);
    }
    Ok(written)
}

/// The work sweep at its largest connection count: throughput, p99 and fairness against the
/// CPU work per message, one line per model; the work levels evenly spaced on x.
fn draw_work(dir: &Path, all: &[Aggregate]) -> std::io::Result<Vec<PathBuf>> {
    let sweep = echo_analysis::aggregate::work_sweep(all);
    let Some(connections) = sweep.iter().map(|a| a.load.connections).max() else {
        return Ok(Vec::new());
    };
    let at_c: Vec<&Aggregate> = sweep
        .into_iter()
        .filter(|a| a.load.connections == connections && a.runs > 0)
        .collect();
    let mut works: Vec<u64> = at_c.iter().map(|a| a.load.work_us).collect();
    works.sort_unstable();
    works.dedup();
    let x = Axis::new("CPU work per message", Scale::Linear)
        .with_range(-0.3, works.len() as f64 - 0.7)
        .with_ticks(
            works
                .iter()
                .enumerate()
                .map(|(i, w)| (i as f64, format!("{w} µs")))
                .collect(),
        );
    let charts: [ChartSpec; 3] = [
        (
            "work-throughput.svg",
            "throughput",
            Axis::new("messages/s (log scale)", Scale::Log),
            |a| a.rps,
            Some(Measure::Throughput),
        ),
        (
            "work-p99.svg",
            "p99 latency",
            Axis::new("µs (log scale)", Scale::Log),
            |a| a.p99.max(1) as f64,
            Some(Measure::P99),
        ),
        (
            "work-fairness.svg",
            "fairness",
            fairness_axis(),
            |a| a.fairness,
            None,
        ),
    ];
    let mut written = Vec::new();
    for (file, what, y, value, interval) in charts {
        let lines: Vec<Line> = models_in(all)
            .into_iter()
            .filter_map(|model| {
                let here: Vec<&Aggregate> =
                    at_c.iter().copied().filter(|a| a.model == model).collect();
                let points: Vec<Point> = here
                    .iter()
                    .filter_map(|a| {
                        let x = works.iter().position(|&w| w == a.load.work_us)?;
                        Some(point_of(a, x as f64, value, interval))
                    })
                    .collect();
                line_of(
                    model,
                    points,
                    note_of(&here, &|a| format!("{} µs", a.load.work_us)),
                )
            })
            .collect();
        let path = dir.join(file);
        canvas::draw(
            &path,
            &Figure {
                title: format!(
                    "{what} with CPU work per message, ping-pong {connections} connections"
                ),
                x: x.clone(),
                y,
                panels: vec![Panel { title: None, lines }],
                notes: vec![BARS_NOTE.to_owned(), MARKERS_NOTE.to_owned()],
            },
        )?;
        written.push(path);
    }
    Ok(written)
}

/// Server memory against idle connections held (C10K), one line per model, both axes log.
fn draw_c10k(dir: &Path, run: &SuiteRun) -> std::io::Result<Vec<PathBuf>> {
    let held: Vec<&echo_analysis::c10k::Holding> =
        run.c10k.iter().filter(|h| h.status == Status::Ok).collect();
    let Some(target) = held.iter().map(|h| h.target).max() else {
        return Ok(Vec::new());
    };
    let lines: Vec<Line> = held
        .iter()
        .map(|h| Line {
            name: match h.transport {
                echo_servers::Transport::Tcp => h.model.name().to_owned(),
                other => format!("{} over {other}", h.model),
            },
            style: SeriesStyle::of_model(h.model),
            points: h
                .levels
                .iter()
                .filter(|l| l.connections > 0)
                .map(|l| Point {
                    x: l.connections as f64,
                    y: l.rss_kib as f64 / 1024.0,
                    interval: None,
                    mark: Mark::Filled,
                })
                .collect(),
            note: h
                .kib_per_connection()
                .map(|kib| format!("{kib:.2} KiB per connection")),
        })
        .collect();
    let ticks = echo_analysis::c10k::levels(target)
        .into_iter()
        .filter(|&c| c > 0)
        .map(|c| (c as f64, c.to_string()))
        .collect();
    let path = dir.join("c10k-memory.svg");
    canvas::draw(
        &path,
        &Figure {
            title: format!("server memory holding up to {target} idle connections"),
            x: Axis::new("idle connections held (log scale)", Scale::Log)
                .with_range(60.0, target as f64 * 1.6)
                .with_ticks(ticks),
            y: Axis::new("server RSS, MiB (log scale)", Scale::Log),
            panels: vec![Panel { title: None, lines }],
            notes: vec![
                "One measurement per model; the bounded models are not applicable.".to_owned(),
            ],
        },
    )?;
    Ok(vec![path])
}

/// A history's trend chart: `values` (commit index, value) of one series, the level of each
/// segment between change points as a dashed step line, and each change point crossed;
/// `commits` labels the x axis.
pub fn draw_trend(
    path: &Path,
    title: &str,
    unit: &str,
    values: &[(f64, f64)],
    change_points: &[usize],
    commits: &[String],
) -> std::io::Result<()> {
    let point = |(x, y): (f64, f64), mark| Point {
        x,
        y,
        interval: None,
        mark,
    };
    // Each segment's mean, drawn flat from its first commit to its last.
    let mut bounds: Vec<usize> = vec![0];
    bounds.extend(change_points.iter().copied());
    bounds.push(values.len());
    let mut level = Vec::new();
    for w in bounds.windows(2) {
        let segment = &values[w[0]..w[1]];
        let mean = segment.iter().map(|v| v.1).sum::<f64>() / segment.len().max(1) as f64;
        level.push(point((segment[0].0, mean), Mark::None));
        level.push(point((segment[segment.len() - 1].0, mean), Mark::None));
    }
    let mut level_style = SeriesStyle::nth(1);
    level_style.dash = style::Dash::Dashed;
    let lines = vec![
        Line {
            name: "per commit".to_owned(),
            style: SeriesStyle::nth(0),
            points: values.iter().map(|&v| point(v, Mark::Filled)).collect(),
            note: None,
        },
        Line {
            name: "level".to_owned(),
            style: level_style,
            points: level,
            note: Some("mean between change points".to_owned()),
        },
    ];
    // One single-point line per change point, so no line joins them (the legend lists one).
    let lines: Vec<Line> = lines
        .into_iter()
        .chain(change_points.iter().filter_map(|&i| {
            values.get(i).map(|&v| Line {
                name: "change point".to_owned(),
                style: SeriesStyle::nth(2),
                points: vec![point(v, Mark::Crossed)],
                note: Some("E-Divisive means".to_owned()),
            })
        }))
        .collect();
    let every = (commits.len() / 8).max(1);
    let ticks = commits
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, c)| (i as f64, c.chars().take(7).collect()))
        .collect();
    canvas::draw(
        path,
        &Figure {
            title: title.to_owned(),
            x: Axis::new("commit (oldest first)", Scale::Linear)
                .with_range(-0.5, commits.len().max(1) as f64 - 0.5)
                .with_ticks(ticks),
            y: Axis::new(unit, Scale::Linear),
            panels: vec![Panel { title: None, lines }],
            notes: Vec::new(),
        },
    )
}

/// A run's latency over time (`run --timeline F.svg`): p50, p99 and the largest latency of
/// each interval against the time into the window (log scale), the throughput of each interval
/// noted beside.
pub fn draw_timeline(
    path: &Path,
    title: &str,
    intervals: &[echo_loadgen::engine::IntervalFigures],
) -> std::io::Result<()> {
    canvas::draw(
        path,
        &Figure {
            title: title.to_owned(),
            x: Axis::new("seconds into the measured window", Scale::Linear),
            y: Axis::new("latency µs (log scale)", Scale::Log),
            panels: vec![Panel {
                title: None,
                lines: timeline_lines(intervals),
            }],
            notes: vec![
                format!("{} intervals", intervals.len()),
                throughput_range(intervals),
                "crossed: an interval with errors".to_owned(),
            ],
        },
    )
}

/// The lines of a latency timeline: p50, p99 and the largest latency of each interval that
/// completed a message, at the interval's end; an interval with errors is crossed.
pub fn timeline_lines(intervals: &[echo_loadgen::engine::IntervalFigures]) -> Vec<Line> {
    type Pick = fn(&echo_loadgen::engine::IntervalFigures) -> u64;
    let series: [(&str, Pick); 3] = [
        ("p50", |i| i.p50_us),
        ("p99", |i| i.p99_us),
        ("max", |i| i.max_us),
    ];
    series
        .iter()
        .enumerate()
        .map(|(n, (name, pick))| Line {
            name: (*name).to_owned(),
            style: SeriesStyle::nth(n),
            points: intervals
                .iter()
                .filter(|i| i.messages > 0)
                .map(|i| Point {
                    x: i.start_s + i.duration_s,
                    y: pick(i).max(1) as f64,
                    interval: None,
                    mark: if i.errors > 0 {
                        Mark::Crossed
                    } else {
                        Mark::None
                    },
                })
                .collect(),
            note: None,
        })
        .collect()
}

/// "throughput LOW to HIGH msg/s" over the intervals.
pub fn throughput_range(intervals: &[echo_loadgen::engine::IntervalFigures]) -> String {
    let (low, high) = intervals
        .iter()
        .map(|i| i.throughput_rps)
        .fold((f64::INFINITY, 0.0f64), |(l, h), r| (l.min(r), h.max(r)));
    format!(
        "throughput {} to {} msg/s",
        axis_number(low.min(high)),
        axis_number(high)
    )
}

/// Draws every chart the run's data supports into `dir`; returns the files written.
pub fn draw_all(dir: &Path, run: &SuiteRun, all: &[Aggregate]) -> std::io::Result<Vec<PathBuf>> {
    let aggregates = &echo_analysis::aggregate::at_base_work(all)[..];
    let mut written = draw_rankings(dir, all)?;
    written.extend(draw_work(dir, all)?);
    let mut payloads: Vec<usize> = aggregates
        .iter()
        .filter(|a| a.load.workload == Workload::PingPong)
        .map(|a| a.load.payload)
        .collect();
    payloads.sort_unstable();
    payloads.dedup();
    for (i, &payload) in payloads.iter().enumerate() {
        written.extend(draw_by_connections(dir, aggregates, payload, i == 0)?);
    }
    written.extend(spectrum::draw(dir, run, aggregates)?);
    written.extend(draw_c10k(dir, run)?);
    written.extend(capacity::draw(dir, run)?);
    written.extend(capacity::draw_timelines(dir, run)?);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use echo_servers::Model;

    use super::canvas::{HEIGHT, draw};
    use super::*;

    /// A figure with every model, one of them starved, and intervals.
    fn every_model() -> Figure {
        let lines = Model::ALL
            .iter()
            .enumerate()
            .map(|(i, &model)| Line {
                name: model.name().to_owned(),
                style: SeriesStyle::of_model(model),
                points: [1.0, 16.0, 256.0]
                    .into_iter()
                    .map(|x| Point {
                        x,
                        y: 1000.0 * (i + 1) as f64 * x.sqrt(),
                        interval: Some((900.0 * x.sqrt(), 1100.0 * (i + 1) as f64 * x.sqrt())),
                        mark: if i == 0 { Mark::Hollow } else { Mark::Filled },
                    })
                    .collect(),
                note: (i == 0).then(|| "starved at 256".to_owned()),
            })
            .collect();
        Figure {
            title: "test".to_owned(),
            x: Axis::new("connections", Scale::Log),
            y: Axis::new("messages/s", Scale::Linear),
            panels: vec![Panel { title: None, lines }],
            notes: vec![MARKERS_NOTE.to_owned()],
        }
    }

    fn drawn(figure: &Figure, name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("echo-bench-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        draw(&path, figure).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        text
    }

    fn number(node: &roxmltree::Node<'_, '_>, attribute: &str) -> f64 {
        node.attribute(attribute)
            .unwrap_or("0")
            .parse()
            .unwrap_or(0.0)
    }

    #[test]
    fn a_chart_is_valid_svg_with_its_legend_beside_the_plot() {
        let svg = drawn(&every_model(), "legend.svg");
        let doc = roxmltree::Document::parse(&svg).expect("the chart parses as XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let boundary = f64::from(WIDTH - LEGEND_WIDTH);
        let names: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
        let mut legend_entries = 0;
        for text in doc.descendants().filter(|n| n.has_tag_name("text")) {
            if names.contains(&text.text().unwrap_or("").trim()) {
                assert!(
                    number(&text, "x") >= boundary,
                    "legend entry inside the plot"
                );
                legend_entries += 1;
            }
        }
        assert_eq!(
            legend_entries,
            Model::ALL.len(),
            "one legend entry per model"
        );
        // No drawn line crosses into the legend's column: every line lies on one side of it.
        for line in doc.descendants().filter(|n| n.has_tag_name("polyline")) {
            let xs: Vec<f64> = line
                .attribute("points")
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|p| p.split(',').next()?.parse().ok())
                .collect();
            let left = xs.iter().all(|&x| x < boundary);
            let right = xs.iter().all(|&x| x >= boundary);
            assert!(left || right, "a line crosses the legend's edge: {xs:?}");
            assert!(xs.iter().all(|&x| x <= f64::from(WIDTH)));
        }
        assert!(svg.contains(&format!("height=\"{HEIGHT}\"")));
    }

    #[test]
    fn every_model_is_drawn_in_its_own_colour_in_the_plot() {
        let svg = drawn(&every_model(), "colours.svg");
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let boundary = f64::from(WIDTH - LEGEND_WIDTH);
        for model in Model::ALL {
            let colour = SeriesStyle::of_model(*model).hex();
            let in_plot = doc.descendants().any(|n| {
                n.has_tag_name("polyline")
                    && n.attribute("stroke")
                        .is_some_and(|s| s.eq_ignore_ascii_case(&colour))
                    && n.attribute("points").is_some_and(|p| {
                        p.split_whitespace().all(|xy| {
                            xy.split(',')
                                .next()
                                .and_then(|x| x.parse::<f64>().ok())
                                .is_some_and(|x| x < boundary)
                        })
                    })
            });
            assert!(in_plot, "{model}'s line ({colour}) is not in the plot");
        }
    }

    #[test]
    fn hollow_markers_are_drawn_for_starved_points() {
        let svg = drawn(&every_model(), "hollow.svg");
        let colour = SeriesStyle::of_model(Model::ALL[0]).hex();
        // The first model is starved: its markers are white circles outlined in its colour.
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let boundary = f64::from(WIDTH - LEGEND_WIDTH);
        let white_in_plot = doc
            .descendants()
            .filter(|n| {
                n.has_tag_name("circle")
                    && number(n, "cx") < boundary
                    && n.attribute("fill")
                        .is_some_and(|f| f.eq_ignore_ascii_case("#FFFFFF"))
            })
            .count();
        assert!(
            white_in_plot >= 3,
            "three hollow markers expected, found {white_in_plot}"
        );
        assert!(svg.contains("starved at 256"));
        assert!(
            svg.to_ascii_uppercase()
                .contains(&colour.to_ascii_uppercase())
        );
    }
}
