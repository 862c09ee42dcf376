//! The run's charts as SVG (plotters): one ranking chart per advice category (each model's median
//! with its 95% interval over the rounds, the leading group filled), throughput, server CPU,
//! server memory and fairness against connections (one line per model, with error bars where
//! there are rounds), and the latency percentiles of each model at one point.

use std::path::{Path, PathBuf};

use echo_servers::Model;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::advice::{Aggregate, Measure, rankings};
use super::plan::size_label;
use crate::config::Workload;

type Series = Vec<(String, Vec<(f64, f64)>)>;
/// Per series, the error bars: `(x, low, median, high)`.
type Bars = Vec<Vec<(f64, f64, f64, f64)>>;

const SIZE: (u32, u32) = (860, 520);

fn color(i: usize) -> RGBColor {
    // Twelve models and more: every line its own colour.
    const PALETTE: [RGBColor; 14] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(0, 0, 0),
        RGBColor(0, 0, 128),
        RGBColor(128, 128, 0),
        RGBColor(255, 0, 255),
    ];
    PALETTE[i % PALETTE.len()]
}

/// `120k`, `2.5`, `0.75`: axis labels without spurious decimals.
fn axis_number(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.abs() >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A chart with connections on a log x axis and a linear y axis.
fn by_connections(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: &Series,
    bars: &Bars,
) -> std::io::Result<()> {
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|&(x, _)| x));
    let (x_min, x_max) = xs.fold((f64::MAX, 1.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .chain(bars.iter().flatten().map(|&(_, _, _, high)| high))
        .fold(0.0f64, f64::max);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x_min.min(x_max / 2.0).max(0.5)..x_max * 1.5).log_scale(),
            // Headroom so the legend in the upper right does not cover the lines.
            0.0..(y_max * 1.4).max(1e-9),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("connections (log scale)")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| axis_number(*y))
        .draw()
        .map_err(err)?;
    for (i, bars) in bars.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(bars.iter().map(|&(x, low, median, high)| {
                ErrorBar::new_vertical(x, low, median, high, c.stroke_width(1), 8)
            }))
            .map_err(err)?;
    }
    draw_lines(&mut chart, series, SeriesLabelPosition::UpperRight)?;
    root.present().map_err(err)
}

/// One advice category: each eligible model's median (dot) and 95% interval over the rounds
/// (bar), best at the top; the leading group filled, the rest hollow.
fn ranking_chart(
    path: &Path,
    title: &str,
    measure: Measure,
    rows: &[(String, f64, f64, f64, bool)],
) -> std::io::Result<()> {
    let x_max = rows.iter().map(|r| r.3).fold(0.0f64, f64::max) * 1.1;
    let height = 90 + 34 * rows.len() as u32;
    let root = SVGBackend::new(path, (SIZE.0, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let n = rows.len();
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
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
    for (i, (category, ranking)) in rankings(all).into_iter().enumerate() {
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
            category.title,
            category.point,
            if category.winner.is_some() {
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

/// Latency percentiles (p50, p99, p99.9) per model on a log y axis.
fn percentiles(path: &Path, title: &str, series: &[(String, [u64; 3])]) -> std::io::Result<()> {
    let y_max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(1) as f64;
    let y_min = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|&v| v > 0)
        .min()
        .unwrap_or(1) as f64;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(
            -0.2f64..2.2f64,
            ((y_min / 2.0).max(1.0)..y_max * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(3)
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "p50".into(),
            1 => "p99".into(),
            2 => "p99.9".into(),
            _ => String::new(),
        })
        .y_desc("latency µs (log scale)")
        .y_label_formatter(&|y| axis_number(*y))
        .draw()
        .map_err(err)?;
    let lines: Series = series
        .iter()
        .map(|(name, values)| {
            let points = values
                .iter()
                .enumerate()
                .map(|(x, &v)| (x as f64, v.max(1) as f64))
                .collect();
            (name.clone(), points)
        })
        .collect();
    draw_lines(&mut chart, &lines, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(err)
}

/// The work sweep at its largest connection count: throughput, p99 and fairness against the
/// CPU work per message, one line per model. The work levels are evenly spaced on the x axis
/// (0, 50 and 500 µs are not on any useful scale). Long because plotters' chart building is:
/// three charts from one table of settings.
fn draw_work(dir: &Path, all: &[Aggregate]) -> std::io::Result<Vec<PathBuf>> {
    let sweep = super::advice::work_sweep(all);
    let Some(connections) = sweep.iter().map(|a| a.connections).max() else {
        return Ok(Vec::new());
    };
    let at_c: Vec<&Aggregate> = sweep
        .into_iter()
        .filter(|a| a.connections == connections && a.runs > 0)
        .collect();
    let mut works: Vec<u64> = at_c.iter().map(|a| a.work_us).collect();
    works.sort_unstable();
    works.dedup();
    type Value = fn(&Aggregate) -> f64;
    let charts: [(&str, &str, &str, bool, Value); 3] = [
        (
            "work-throughput.svg",
            "throughput",
            "messages/s",
            false,
            |a| a.rps,
        ),
        (
            "work-p99.svg",
            "p99 latency",
            "µs (log scale)",
            true,
            |a| a.p99.max(1) as f64,
        ),
        (
            "work-fairness.svg",
            "fairness",
            "Jain index (1 = even)",
            false,
            |a| a.fairness,
        ),
    ];
    let mut written = Vec::new();
    for (file, what, y_desc, log_y, value) in charts {
        let series: Series = models_in(all)
            .into_iter()
            .map(|model| {
                let points = at_c
                    .iter()
                    .filter(|a| a.model == model)
                    .filter_map(|a| {
                        let x = works.iter().position(|&w| w == a.work_us)?;
                        Some((x as f64, value(a)))
                    })
                    .collect();
                (model.name().to_owned(), points)
            })
            .filter(|(_, points): &(String, Vec<(f64, f64)>)| !points.is_empty())
            .collect();
        let path = dir.join(file);
        let title =
            format!("{what} with CPU work per message, ping-pong {connections} connections");
        let ys = series.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
        let (y_min, y_max) = ys.fold((f64::MAX, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
        let root = SVGBackend::new(&path, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(70);
        let x_range = -0.3f64..(works.len() as f64 - 0.7);
        let labels = works.clone();
        let x_label = move |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                labels
                    .get(i as usize)
                    .map_or(String::new(), |w| format!("{w} µs"))
            } else {
                String::new()
            }
        };
        let x_axis = WorkAxis {
            levels: works.len(),
            label: &x_label,
            y_desc,
        };
        if log_y {
            let chart = builder
                .build_cartesian_2d(x_range, ((y_min / 2.0).max(1.0)..y_max * 4.0).log_scale())
                .map_err(err)?;
            x_axis.draw(chart, &series, SeriesLabelPosition::UpperLeft)?;
        } else {
            let chart = builder
                .build_cartesian_2d(x_range, 0.0..(y_max * 1.4).max(1e-9))
                .map_err(err)?;
            x_axis.draw(chart, &series, SeriesLabelPosition::UpperRight)?;
        }
        root.present().map_err(err)?;
        drop(root);
        written.push(path);
    }
    Ok(written)
}

/// The mesh of a work-sweep chart (work levels evenly spaced on x), then its lines; the same
/// for a linear and a log y axis.
struct WorkAxis<'l> {
    levels: usize,
    label: &'l dyn Fn(&f64) -> String,
    y_desc: &'l str,
}

impl WorkAxis<'_> {
    fn draw<'a, Y>(
        &self,
        mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
        series: &Series,
        legend: SeriesLabelPosition,
    ) -> std::io::Result<()>
    where
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .x_labels(self.levels * 4)
            .x_desc("CPU work per message")
            .y_desc(self.y_desc)
            .x_label_formatter(self.label)
            .y_label_formatter(&|y| axis_number(*y))
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, series, legend)
    }
}

/// One coloured line with dots per series, and the legend, on either kind of axes.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: &Series,
    legend: SeriesLabelPosition,
) -> std::io::Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, points)) in series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

fn models_in(aggregates: &[Aggregate]) -> Vec<Model> {
    let mut models: Vec<Model> = Vec::new();
    for a in aggregates {
        if !models.contains(&a.model) {
            models.push(a.model);
        }
    }
    models
}

/// One series per model: `value` of the ping-pong points with `payload`, by connections; with
/// `interval`, the error bars of that measure's 95% interval over the rounds.
fn ping_series(
    aggregates: &[Aggregate],
    payload: usize,
    value: fn(&Aggregate) -> f64,
    interval: Option<Measure>,
) -> (Series, Bars) {
    models_in(aggregates)
        .into_iter()
        .map(|model| {
            let mut here: Vec<&Aggregate> = aggregates
                .iter()
                .filter(|a| {
                    a.model == model
                        && a.workload == Workload::PingPong
                        && a.payload == payload
                        && a.runs > 0
                })
                .collect();
            here.sort_by_key(|a| a.connections);
            let points: Vec<(f64, f64)> = here
                .iter()
                .map(|a| (a.connections as f64, value(a)))
                .collect();
            let bars = here
                .iter()
                .filter_map(|a| {
                    let e = a.estimate(interval?)?;
                    (e.n > 1).then_some((a.connections as f64, e.low, e.median, e.high))
                })
                .collect();
            ((model.name().to_owned(), points), bars)
        })
        .filter(|((_, points), _)| !points.is_empty())
        .unzip()
}

/// Draws every chart the run's data supports into `dir`; returns the files written. A list of
/// the charts, one after another.
pub fn draw_all(dir: &Path, all: &[Aggregate]) -> std::io::Result<Vec<PathBuf>> {
    let aggregates = &super::advice::at_base_work(all)[..];
    let mut written = draw_rankings(dir, all)?;
    written.extend(draw_work(dir, all)?);
    let mut payloads: Vec<usize> = aggregates
        .iter()
        .filter(|a| a.workload == Workload::PingPong)
        .map(|a| a.payload)
        .collect();
    payloads.sort_unstable();
    payloads.dedup();
    for &payload in &payloads {
        let label = size_label(payload).replace(' ', "");
        let path = dir.join(format!("throughput-{label}.svg"));
        let (series, bars) = ping_series(aggregates, payload, |a| a.rps, Some(Measure::Throughput));
        by_connections(
            &path,
            &format!(
                "ping-pong throughput, {} messages (median, 95% interval)",
                size_label(payload)
            ),
            "messages/s",
            &series,
            &bars,
        )?;
        written.push(path);
    }
    if let Some(&payload) = payloads.first() {
        type Chart = (
            &'static str,
            &'static str,
            &'static str,
            fn(&Aggregate) -> f64,
        );
        let charts: [Chart; 3] = [
            ("server-cpu.svg", "server CPU", "cores busy", |a| {
                a.server_cpu
            }),
            ("server-rss.svg", "server peak RSS", "MiB", |a| {
                a.server_rss_kib as f64 / 1024.0
            }),
            (
                "fairness.svg",
                "fairness (Jain's index over connections)",
                "Jain index (1 = even)",
                |a| a.fairness,
            ),
        ];
        for (file, title, y, value) in charts {
            let path = dir.join(file);
            let (series, bars) = ping_series(aggregates, payload, value, None);
            by_connections(
                &path,
                &format!("{title}, ping-pong {} messages", size_label(payload)),
                y,
                &series,
                &bars,
            )?;
            written.push(path);
        }
        // Latency at the middle connection count measured (16 in the quick profile).
        let mut counts: Vec<usize> = aggregates
            .iter()
            .filter(|a| a.workload == Workload::PingPong && a.payload == payload)
            .map(|a| a.connections)
            .collect();
        counts.sort_unstable();
        counts.dedup();
        let c = counts[counts.len() / 2];
        let series: Vec<(String, [u64; 3])> = aggregates
            .iter()
            .filter(|a| {
                a.workload == Workload::PingPong
                    && a.payload == payload
                    && a.connections == c
                    && a.runs > 0
            })
            .map(|a| (a.model.name().to_owned(), [a.p50, a.p99, a.p999]))
            .collect();
        if !series.is_empty() {
            let path = dir.join("latency.svg");
            percentiles(
                &path,
                &format!(
                    "latency, ping-pong {c} connections × {}",
                    size_label(payload)
                ),
                &series,
            )?;
            written.push(path);
        }
    }
    Ok(written)
}
