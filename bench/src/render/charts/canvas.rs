//! Line charts that hold a dozen series and say what their points can claim: one or more
//! panels side by side (small multiples) sharing their axes, the legend in a column of its own
//! to the right of every plot (it never covers data), each series in its model's style, 95%
//! intervals as error bars, and hollow or crossed markers for points that starved connections
//! or failed. Log axes are drawn as linear axes over log10 values with ticks placed here (1, 2,
//! 5 per decade), so labels never repeat and no band of minor gridlines appears.
//!
//! It is long because one renderer draws every line chart: panels, the legend column, error bars,
//! markers and log axes all share one layout.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

use super::style::{Dash, SeriesStyle, Shape};

/// Width of a chart, in pixels.
pub const WIDTH: u32 = 1100;
/// Height of a chart, in pixels.
pub const HEIGHT: u32 = 560;
/// Width of the legend column at the right; plots end where it begins.
pub const LEGEND_WIDTH: u32 = 250;

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Evenly spaced values.
    Linear,
    /// Evenly spaced decades (values must be positive).
    Log,
}

impl Scale {
    fn to_display(self, value: f64) -> f64 {
        match self {
            Scale::Linear => value,
            Scale::Log => value.max(1e-12).log10(),
        }
    }
}

/// One axis: its description, scale, an optional fixed range and optional ticks (value, label)
/// in data units.
#[derive(Debug, Clone)]
pub struct Axis {
    /// What the axis measures, with its unit.
    pub desc: String,
    /// Linear or log.
    pub scale: Scale,
    /// A fixed range in data units, instead of one fitted to the data.
    pub range: Option<(f64, f64)>,
    /// Ticks placed by the caller (the measured connection counts, percentiles), instead of
    /// round numbers.
    pub ticks: Option<Vec<(f64, String)>>,
}

impl Axis {
    /// An axis fitted to the data.
    pub fn new(desc: impl Into<String>, scale: Scale) -> Self {
        Self {
            desc: desc.into(),
            scale,
            range: None,
            ticks: None,
        }
    }

    /// The same axis with a fixed range.
    pub fn with_range(mut self, low: f64, high: f64) -> Self {
        self.range = Some((low, high));
        self
    }

    /// The same axis with the caller's ticks.
    pub fn with_ticks(mut self, ticks: Vec<(f64, String)>) -> Self {
        self.ticks = Some(ticks);
        self
    }
}

/// How a point's marker is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// No marker (dense lines such as a spectrum between its ticks).
    None,
    /// A filled marker: the point served the load as asked.
    Filled,
    /// A hollow marker: some connections starved or saw errors, so the figure covers only
    /// the connections that were served.
    Hollow,
    /// A crossed marker: the point failed (server crash, unclean exit) in some round.
    Crossed,
}

/// One point of a series, in data units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// x.
    pub x: f64,
    /// y (the median over rounds).
    pub y: f64,
    /// The 95% interval of y, when there were rounds.
    pub interval: Option<(f64, f64)>,
    /// Its marker.
    pub mark: Mark,
}

/// One series: a model's line.
#[derive(Debug, Clone)]
pub struct Line {
    /// The legend's name.
    pub name: String,
    /// Its look.
    pub style: SeriesStyle,
    /// Its points, in x order.
    pub points: Vec<Point>,
    /// What the legend adds after the name (for example "starved at 64, 256").
    pub note: Option<String>,
}

/// One panel of a figure.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    /// Its title (small multiples), or none for a single panel.
    pub title: Option<String>,
    /// Its series.
    pub lines: Vec<Line>,
}

/// A chart: panels side by side sharing both axes, and one legend.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The chart's title.
    pub title: String,
    /// The x axis of every panel.
    pub x: Axis,
    /// The y axis of every panel.
    pub y: Axis,
    /// The panels, left to right.
    pub panels: Vec<Panel>,
    /// Lines of explanation under the legend.
    pub notes: Vec<String>,
}

type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<Ticked, Ticked>>;

/// A linear coordinate (in display units) whose gridlines and labels are exactly the ticks
/// given: no minor lines, no labels but ours.
#[derive(Debug, Clone)]
struct Ticked {
    low: f64,
    high: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (value - self.low) / (self.high - self.low).max(1e-12);
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.low..self.high
    }
}

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// `120k`, `2.5`, `0.75`, `1.5M`: tick labels without spurious decimals.
pub fn axis_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        trim(format!("{:.1}", v / 1e6)) + "M"
    } else if a >= 1e4 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else if a >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.1}"))
    } else {
        trim(format!("{v:.2}"))
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// 1, 2 and 5 times each power of ten within `[low, high]`; only the powers of ten when that
/// makes too many.
fn log_ticks(low: f64, high: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let first = low.log10().floor() as i32;
    let last = high.log10().ceil() as i32;
    for decade in first..=last {
        for m in [1.0, 2.0, 5.0] {
            let t = m * 10f64.powi(decade);
            if t >= low * 0.999 && t <= high * 1.001 {
                ticks.push(t);
            }
        }
    }
    if ticks.len() > 12 {
        ticks.retain(|t| (t.log10() - t.log10().round()).abs() < 1e-9);
    }
    ticks
}

/// Round-numbered ticks, about six, within `[low, high]`.
fn linear_ticks(low: f64, high: f64) -> Vec<f64> {
    let span = (high - low).max(1e-12);
    let raw = span / 6.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    let mut ticks = Vec::new();
    let mut t = (low / step).ceil() * step;
    while t <= high + step * 1e-9 && ticks.len() < 50 {
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    ticks
}

/// The range of an axis in data units: fixed, or fitted to `values` with some room.
fn data_range(axis: &Axis, values: &[f64], from_zero: bool) -> (f64, f64) {
    if let Some(range) = axis.range {
        return range;
    }
    let positive: Vec<f64> = values
        .iter()
        .copied()
        .filter(|v| v.is_finite() && (axis.scale == Scale::Linear || *v > 0.0))
        .collect();
    let low = positive.iter().copied().fold(f64::MAX, f64::min);
    let high = positive.iter().copied().fold(f64::MIN, f64::max);
    if positive.is_empty() {
        return match axis.scale {
            Scale::Linear => (0.0, 1.0),
            Scale::Log => (1.0, 10.0),
        };
    }
    match axis.scale {
        Scale::Log => (low / 1.6, high * 1.6),
        Scale::Linear if from_zero && low >= 0.0 => (0.0, (high * 1.08).max(1e-9)),
        Scale::Linear => {
            let pad = ((high - low) * 0.06).max(0.5);
            (low - pad, high + pad)
        }
    }
}

/// An axis resolved for drawing: its range and ticks in display units, and their labels.
struct Resolved {
    low: f64,
    high: f64,
    ticks: Vec<(f64, String)>,
}

impl Resolved {
    fn of(axis: &Axis, values: &[f64], from_zero: bool) -> Self {
        let (low, high) = data_range(axis, values, from_zero);
        let ticks: Vec<(f64, String)> = match &axis.ticks {
            Some(ticks) => ticks.clone(),
            None => match axis.scale {
                Scale::Log => log_ticks(low, high),
                Scale::Linear => linear_ticks(low, high),
            }
            .into_iter()
            .map(|t| (t, axis_number(t)))
            .collect(),
        };
        Self {
            low: axis.scale.to_display(low),
            high: axis.scale.to_display(high),
            ticks: ticks
                .into_iter()
                .map(|(t, label)| (axis.scale.to_display(t), label))
                .collect(),
        }
    }

    fn coord(&self) -> Ticked {
        Ticked {
            low: self.low,
            high: self.high,
            ticks: self
                .ticks
                .iter()
                .map(|t| t.0)
                .filter(|t| (self.low..=self.high).contains(t))
                .collect(),
        }
    }

    fn label(&self, v: f64) -> String {
        self.ticks
            .iter()
            .find(|t| (t.0 - v).abs() < 1e-9)
            .map_or_else(String::new, |t| t.1.clone())
    }
}

/// Draws `figure` as an SVG file at `path`.
pub fn draw(path: &Path, figure: &Figure) -> std::io::Result<()> {
    let lines = || figure.panels.iter().flat_map(|p| &p.lines);
    let xs: Vec<f64> = lines().flat_map(|l| l.points.iter().map(|p| p.x)).collect();
    let ys: Vec<f64> = lines()
        .flat_map(|l| {
            l.points.iter().flat_map(|p| {
                let (low, high) = p.interval.unwrap_or((p.y, p.y));
                [p.y, low, high]
            })
        })
        .collect();
    let x = Resolved::of(&figure.x, &xs, false);
    let y = Resolved::of(&figure.y, &ys, true);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw_on(&root, figure, (&x, &y))?;
    }
    super::save(path, svg)
}

/// The figure on `root`.
fn draw_on(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    figure: &Figure,
    (x, y): (&Resolved, &Resolved),
) -> std::io::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .titled(&figure.title, ("sans-serif", 20))
        .map_err(err)?;
    let (plots, _) = body.split_horizontally(WIDTH - LEGEND_WIDTH);
    let n = figure.panels.len().max(1);
    for (i, (area, panel)) in plots
        .split_evenly((1, n))
        .iter()
        .zip(&figure.panels)
        .enumerate()
    {
        draw_panel(root, area, panel, figure, (x, y), i == 0)?;
    }
    draw_legend(root, figure)?;
    root.present().map_err(err)
}

fn draw_panel(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &Panel,
    figure: &Figure,
    (x, y): (&Resolved, &Resolved),
    first: bool,
) -> std::io::Result<()> {
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(10)
        .x_label_area_size(48)
        .y_label_area_size(if first { 78 } else { 40 });
    if let Some(title) = &panel.title {
        builder.caption(title, ("sans-serif", 15));
    }
    let mut chart: Chart<'_> = builder
        .build_cartesian_2d(x.coord(), y.coord())
        .map_err(err)?;
    let x_label = |v: &f64| x.label(*v);
    let y_label = |v: &f64| y.label(*v);
    chart
        .configure_mesh()
        .x_desc(figure.x.desc.as_str())
        .y_desc(if first { figure.y.desc.as_str() } else { "" })
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style(("sans-serif", 13))
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(err)?;
    for line in &panel.lines {
        let c = line.style.color;
        let points: Vec<(f64, f64)> = line
            .points
            .iter()
            .map(|p| {
                (
                    figure.x.scale.to_display(p.x),
                    figure.y.scale.to_display(p.y),
                )
            })
            .collect();
        let stroke = c.stroke_width(2);
        match line.style.dash {
            Dash::Solid => chart
                .draw_series(LineSeries::new(points.iter().copied(), stroke))
                .map(|_| ()),
            Dash::Dashed => chart
                .draw_series(DashedLineSeries::new(points.iter().copied(), 9, 5, stroke))
                .map(|_| ()),
            Dash::Dotted => chart
                .draw_series(DashedLineSeries::new(points.iter().copied(), 2, 4, stroke))
                .map(|_| ()),
        }
        .map_err(err)?;
        for (p, &at) in line.points.iter().zip(&points) {
            if let Some((low, high)) = p.interval {
                let (low, high) = (
                    figure.y.scale.to_display(low),
                    figure.y.scale.to_display(high),
                );
                chart
                    .draw_series(std::iter::once(ErrorBar::new_vertical(
                        at.0,
                        low,
                        at.1,
                        high,
                        c.stroke_width(1),
                        8,
                    )))
                    .map_err(err)?;
            }
            let pixel = chart.backend_coord(&at);
            marker(root, pixel, line.style, p.mark)?;
        }
    }
    Ok(())
}

/// Draws a marker centred on `at` (pixels of the whole chart).
fn marker(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    at: (i32, i32),
    style: SeriesStyle,
    mark: Mark,
) -> std::io::Result<()> {
    if mark == Mark::None {
        return Ok(());
    }
    let c = style.color;
    let (fill, outline) = match mark {
        Mark::Filled => (c.filled(), c.stroke_width(1)),
        _ => (WHITE.filled(), c.stroke_width(2)),
    };
    let (x, y) = at;
    let outline_of = |corners: &[(i32, i32)]| {
        let mut path: Vec<(i32, i32)> = corners.iter().map(|&(dx, dy)| (x + dx, y + dy)).collect();
        path.push(path[0]);
        path
    };
    let corners: &[(i32, i32)] = match style.shape {
        Shape::Circle => {
            root.draw(&Circle::new(at, 4, fill)).map_err(err)?;
            root.draw(&Circle::new(at, 4, outline)).map_err(err)?;
            &[]
        }
        Shape::Square => &[(-4, -4), (4, -4), (4, 4), (-4, 4)],
        Shape::Triangle => &[(0, -5), (5, 4), (-5, 4)],
        Shape::Diamond => &[(0, -5), (5, 0), (0, 5), (-5, 0)],
        Shape::TriangleDown => &[(0, 5), (5, -4), (-5, -4)],
    };
    if !corners.is_empty() {
        let path = outline_of(corners);
        root.draw(&Polygon::new(path[..path.len() - 1].to_vec(), fill))
            .map_err(err)?;
        root.draw(&PathElement::new(path, outline)).map_err(err)?;
    }
    if mark == Mark::Crossed {
        let cross = BLACK.stroke_width(2);
        root.draw(&PathElement::new(
            vec![(x - 6, y - 6), (x + 6, y + 6)],
            cross,
        ))
        .map_err(err)?;
        root.draw(&PathElement::new(
            vec![(x - 6, y + 6), (x + 6, y - 6)],
            cross,
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// A short sample of a line in its dash pattern, from `x0` to `x1` at height `y`.
fn line_sample(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    (x0, x1, y): (i32, i32, i32),
    style: SeriesStyle,
) -> std::io::Result<()> {
    let (on, off) = match style.dash {
        Dash::Solid => (x1 - x0, 0),
        Dash::Dashed => (9, 5),
        Dash::Dotted => (2, 4),
    };
    let mut x = x0;
    while x < x1 {
        let end = (x + on).min(x1);
        root.draw(&PathElement::new(
            vec![(x, y), (end, y)],
            style.color.stroke_width(2),
        ))
        .map_err(err)?;
        x = end + off.max(1);
    }
    Ok(())
}

/// The legend, in its own column right of the plots: one row per series (first appearance
/// across panels), then the notes.
fn draw_legend(root: &DrawingArea<SVGBackend<'_>, Shift>, figure: &Figure) -> std::io::Result<()> {
    let left = (WIDTH - LEGEND_WIDTH) as i32 + 10;
    let mut y = 60;
    let mut seen: Vec<&str> = Vec::new();
    let font = ("sans-serif", 14).into_font();
    let small = ("sans-serif", 12).into_font().color(&RGBColor(70, 70, 70));
    for line in figure.panels.iter().flat_map(|p| &p.lines) {
        if seen.contains(&line.name.as_str()) {
            continue;
        }
        seen.push(&line.name);
        line_sample(root, (left, left + 34, y), line.style)?;
        marker(root, (left + 17, y), line.style, Mark::Filled)?;
        root.draw(&Text::new(
            line.name.clone(),
            (left + 42, y - 8),
            font.clone(),
        ))
        .map_err(err)?;
        y += 18;
        if let Some(note) = &line.note {
            for part in wrap(note, 30) {
                root.draw(&Text::new(part, (left + 42, y - 7), small.clone()))
                    .map_err(err)?;
                y += 15;
            }
        }
        y += 4;
    }
    y += 8;
    for note in &figure.notes {
        for part in wrap(note, 36) {
            root.draw(&Text::new(part, (left, y), small.clone()))
                .map_err(err)?;
            y += 15;
        }
        y += 4;
    }
    Ok(())
}

/// `text` broken into lines of at most about `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_one_two_five_per_decade_and_never_repeat() {
        assert_eq!(log_ticks(30.0, 1100.0), [50.0, 100.0, 200.0, 500.0, 1000.0]);
        let labels: Vec<String> = log_ticks(1.0, 5e6).into_iter().map(axis_number).collect();
        let mut unique = labels.clone();
        unique.dedup();
        assert_eq!(labels, unique);
        assert_eq!(labels, ["1", "10", "100", "1000", "10k", "100k", "1M"]);
    }

    #[test]
    fn linear_ticks_are_round() {
        let labels: Vec<String> = linear_ticks(0.0, 1.05)
            .into_iter()
            .map(axis_number)
            .collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        assert_eq!(linear_ticks(0.0, 130_000.0)[1], 25_000.0);
    }

    #[test]
    fn legend_notes_wrap_at_spaces() {
        assert_eq!(
            wrap("starved at 16, 64 and 256 connections", 16),
            ["starved at 16,", "64 and 256", "connections"]
        );
    }
}
