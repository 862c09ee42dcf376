//! The outputs of `echo-bench ab`, one function per format: the terminal table, Markdown for a
//! pull-request comment, JSON (the whole report), Bencher Metric Format, and
//! github-action-benchmark's custom JSON.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{AbReport, BenchmarkResult, Metric, MetricResult, Verdict};
use echo_loadgen::export::Exporter;

/// A number for a table: the one format of [`crate::render::format`].
pub use crate::render::format::figure;

fn pct(value: f64) -> String {
    format!("{value:+.1}%")
}

/// The cells of one metric row: metric, base, head, change, interval, MDE, verdict.
fn cells(metric: &MetricResult) -> [String; 7] {
    let name = metric.metric.map_or("?", Metric::name);
    let (change, interval, mde) = match &metric.change {
        Some(c) if c.pairs < 2 => (
            pct(c.change_pct),
            "no interval (one sample)".into(),
            "-".into(),
        ),
        Some(c) => (
            pct(c.change_pct),
            format!("[{}, {}]", pct(c.ci_low_pct), pct(c.ci_high_pct)),
            format!("{:.1}%", c.mde_pct),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    let verdict = if metric.primary {
        metric.verdict.name().to_owned()
    } else {
        format!("({})", metric.verdict.name())
    };
    [
        format!("{name} ({})", metric.unit),
        figure(metric.base_median),
        figure(metric.head_median),
        change,
        interval,
        mde,
        verdict,
    ]
}

const HEADER: [&str; 8] = [
    "benchmark",
    "metric",
    "base",
    "head",
    "change",
    "95% CI",
    "MDE",
    "verdict",
];

fn rows(report: &AbReport) -> Vec<[String; 8]> {
    let mut rows = Vec::new();
    for b in &report.benchmarks {
        let mut first = true;
        let mut metrics: Vec<&MetricResult> = b.metrics.iter().collect();
        // The primary metric first: the row the verdict is made on.
        metrics.sort_by_key(|m| !m.primary);
        for m in metrics {
            let [metric, base, head, change, ci, mde, verdict] = cells(m);
            let name = if first { b.name.clone() } else { String::new() };
            rows.push([name, metric, base, head, change, ci, mde, verdict]);
            first = false;
        }
        if b.metrics.is_empty() {
            rows.push([
                b.name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                b.verdict.name().into(),
            ]);
        }
    }
    rows
}

/// The verdict line of a benchmark, with its reason where it needs one.
fn verdict_line(b: &BenchmarkResult) -> String {
    let mut line = format!("{}: {}", b.name, b.verdict.name());
    match b.primary().and_then(|m| m.change.as_ref()) {
        // One sample on a side: a point estimate, no interval to show.
        Some(primary) if primary.pairs < 2 => {
            let _ = write!(
                line,
                " ({}, threshold {:.1}%)",
                pct(primary.change_pct),
                b.threshold_pct
            );
        }
        Some(primary) => {
            let _ = write!(
                line,
                " ({} [{}, {}], threshold {:.1}%)",
                pct(primary.change_pct),
                pct(primary.ci_low_pct),
                pct(primary.ci_high_pct),
                b.threshold_pct
            );
        }
        None => {}
    }
    if let Some(note) = &b.note {
        let _ = write!(line, ": {note}");
    }
    if let (Verdict::Inconclusive, Some(needed)) = (b.verdict, b.pairs_needed) {
        let _ = write!(
            line,
            "{} about {needed} pairs would resolve a {:.1}% change",
            if b.note.is_some() { ";" } else { ":" },
            b.threshold_pct
        );
    }
    if let Some(floor) = b.noise_floor_pct {
        let _ = write!(line, "; noise floor {floor:.1}%");
    }
    line
}

/// The terminal table and the verdicts.
pub fn table(report: &AbReport) -> String {
    let rows = rows(report);
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w - cell.chars().count();
            if (2..=6).contains(&i) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
            out.push_str("  ");
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&HEADER.map(String::from));
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push('\n');
    for b in &report.benchmarks {
        out.push_str(&verdict_line(b));
        out.push('\n');
    }
    if report.base.is_some() {
        let _ = writeln!(
            out,
            "\n{} pairs per benchmark, {:.1}s trials, seed {}, {:.0}s in all{}",
            report.pairs,
            report.trial_s,
            report.seed,
            report.elapsed_s,
            if report.aa { " (A/A calibration)" } else { "" }
        );
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    let _ = writeln!(out, "verdict: {}", report.conclusion);
    out
}

/// Markdown for a pull-request comment.
pub fn markdown(report: &AbReport) -> String {
    let icon = match report.exit_code {
        echo_cli::EXIT_SUCCESS => "✅",
        echo_cli::EXIT_FAILURE => "❌",
        _ => "⚠️",
    };
    let mut out = format!("### echo-bench ab: {icon} {}\n\n", report.conclusion);
    out.push_str("| ");
    out.push_str(&HEADER.join(" | "));
    out.push_str(" |\n|");
    out.push_str(&"---|".repeat(HEADER.len()));
    out.push('\n');
    for row in rows(report) {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
    for b in &report.benchmarks {
        let _ = writeln!(out, "- {}", verdict_line(b));
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "- ⚠️ {warning}");
    }
    if report.base.is_none() {
        let _ = writeln!(
            out,
            "\nUnpaired comparison of two stored suite runs (threshold {:.1}%).",
            report.threshold_pct
        );
        return out;
    }
    let build = |b: &Option<super::Build>| {
        b.as_ref()
            .and_then(|b| b.meta.as_ref())
            .map_or("unknown".to_owned(), |m| m.git_revision.clone())
    };
    let _ = writeln!(
        out,
        "\nBase `{}`, head `{}`; {} pairs per benchmark (ABBA order, seed {}), {:.1}s trials, \
         threshold {:.1}%, {:.0}s in all, on {} ({} cores). The primary metric (listed first) \
         decides; the others are informational. Verdicts: `regressed`/`improved` when the whole \
         95% interval is past the threshold, `no_change` when it lies inside it, `inconclusive` \
         otherwise; MDE is the minimum detectable effect at 80% power.",
        build(&report.base),
        build(&report.head),
        report.pairs,
        report.seed,
        report.trial_s,
        report.threshold_pct,
        report.elapsed_s,
        report.meta.cpu_model,
        report.meta.cores
    );
    out
}

/// The whole report as JSON.
pub fn json(report: &AbReport) -> String {
    serde_json::to_string_pretty(report).expect("the report serializes") + "\n"
}

/// Bencher Metric Format: per benchmark, each metric's head value (the median of head trials)
/// with its bounds taken from the paired interval, plus the change itself as a measure.
pub fn bmf(report: &AbReport) -> String {
    let mut root = serde_json::Map::new();
    for b in &report.benchmarks {
        let mut measures = serde_json::Map::new();
        for m in &b.metrics {
            let Some(metric) = m.metric else { continue };
            let mut measure = json!({ "value": m.head_median });
            if let Some(c) = &m.change {
                let scale = |p: f64| m.base_median * (1.0 + p / 100.0);
                measure["lower_value"] = json!(scale(c.ci_low_pct));
                measure["upper_value"] = json!(scale(c.ci_high_pct));
            }
            measures.insert(metric.name().to_owned(), measure);
        }
        if let Some(c) = b.primary().and_then(|m| m.change.as_ref()) {
            measures.insert(
                "change_pct".into(),
                json!({ "value": c.change_pct, "lower_value": c.ci_low_pct, "upper_value": c.ci_high_pct }),
            );
        }
        root.insert(format!("echo-bench/{}", b.name), Value::Object(measures));
    }
    serde_json::to_string_pretty(&Value::Object(root)).expect("serializes") + "\n"
}

/// github-action-benchmark's `customSmallerIsBetter` JSON: the primary metric of each benchmark
/// as "head time per base time" in percent (100 = unchanged, larger = worse), so one chart and
/// one alert threshold fit every benchmark whatever its metric.
pub fn github_action(report: &AbReport) -> String {
    let entries: Vec<Value> = report
        .benchmarks
        .iter()
        .filter_map(|b| {
            let m = b.primary()?;
            let c = m.change.as_ref()?;
            // Cost ratio: throughput inverted, so that smaller is better for every metric.
            let cost = if m.higher_is_better {
                100.0 / c.ratio
            } else {
                100.0 * c.ratio
            };
            let (lo, hi) = if m.higher_is_better {
                (
                    100.0 / (1.0 + c.ci_high_pct / 100.0),
                    100.0 / (1.0 + c.ci_low_pct / 100.0),
                )
            } else {
                (100.0 + c.ci_low_pct, 100.0 + c.ci_high_pct)
            };
            Some(json!({
                "name": format!("{} ({})", b.name, m.metric.map_or("?", Metric::name)),
                "unit": "% of base cost",
                "value": cost,
                "range": format!("{lo:.1}..{hi:.1}"),
                "extra": format!("verdict {}; base {} {}, head {} {}",
                    b.verdict.name(), figure(m.base_median), m.unit, figure(m.head_median), m.unit),
            }))
        })
        .collect();
    serde_json::to_string_pretty(&entries).expect("serializes") + "\n"
}

/// `ab`'s file formats as [`Exporter`]s, written through `Exports` like the run's.
macro_rules! exporters {
    ($($(#[$doc:meta])* $ty:ident => $name:literal, $render:ident;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $ty;

            impl Exporter<AbReport> for $ty {
                fn name(&self) -> &'static str {
                    $name
                }

                fn render(&self, report: &AbReport) -> std::io::Result<Vec<u8>> {
                    Ok($render(report).into_bytes())
                }
            }
        )*
    };
}

exporters! {
    /// The whole report as JSON ([`json`]).
    Json => "JSON", json;
    /// A pull-request comment ([`markdown`]).
    Markdown => "Markdown", markdown;
    /// Bencher Metric Format ([`bmf`]).
    Bmf => "BMF", bmf;
    /// github-action-benchmark's custom JSON ([`github_action`]).
    GithubAction => "github-action JSON", github_action;
}
