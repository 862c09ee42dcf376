//! Latency percentile spectra, the field's way of drawing a latency distribution (HdrHistogram's
//! plotter, wrk2): log latency against percentile on a "nines" axis, where 90%, 99%, 99.9% and
//! 99.99% are evenly spaced. Drawn from each model's histograms stored in run.json, merged over
//! the rounds of a point; runs stored before histograms were kept fall back to their recorded
//! percentiles (p50 to p99.99), and the chart says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use echo_analysis::server::Server;
use hdrhistogram::Histogram;

use super::canvas::{self, Axis, Figure, Line, Mark, Panel, Point, Scale};
use super::style::SeriesStyle;
use echo_analysis::aggregate::Aggregate;
use echo_analysis::point::size_label;
use echo_analysis::run::SuiteRun;
use echo_loadgen::config::Workload;

use echo_analysis::point::Load;

/// The percentile `q` (0 to 1) as a position on the nines axis: 90% → 1, 99% → 2, ...
pub fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-9).log10()
}

/// The nines axis's ticks, up to `max` nines.
fn nines_ticks(max: f64) -> Vec<(f64, String)> {
    [
        (0.5, "50%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
        (0.99999, "99.999%"),
    ]
    .into_iter()
    .map(|(q, label)| (nines(q), label.to_owned()))
    .filter(|(x, _)| *x <= max + 1e-9)
    .collect()
}

/// What one model's spectrum is drawn from.
enum Source {
    /// The rounds' histograms, merged.
    Histogram(Histogram<u64>),
    /// Recorded percentiles (p50, p90, p99, p99.9, p99.99), medians over the rounds.
    Percentiles([f64; 5]),
}

impl Source {
    /// `(nines, µs)` along the spectrum, and how far (in nines) the data reaches.
    fn spectrum(&self) -> Vec<(f64, f64)> {
        match self {
            Source::Histogram(h) => {
                // A histogram of n values resolves percentiles up to 1 - 1/n.
                let reach = (h.len().max(1) as f64).log10().min(5.0);
                let steps = (reach * 20.0).ceil() as usize;
                (0..=steps)
                    .map(|i| {
                        let x = (i as f64 / 20.0).min(reach);
                        let q = 1.0 - 10f64.powf(-x);
                        (x, h.value_at_quantile(q).max(1) as f64)
                    })
                    .collect()
            }
            Source::Percentiles(values) => [0.5, 0.9, 0.99, 0.999, 0.9999]
                .into_iter()
                .zip(values)
                .map(|(q, &v)| (nines(q), v.max(1.0)))
                .collect(),
        }
    }
}

/// Each load's sources, per model in the registry's order: merged histograms where every
/// round stored one (corrected, or for open loop the uncorrected latency if `uncorrected`),
/// else the recorded percentiles.
fn sources(
    run: &SuiteRun,
    base_work: u64,
    uncorrected: bool,
) -> BTreeMap<Load, Vec<(Server, Source)>> {
    // Per load and model: the histogram merged so far (none once a round lacks one), and every
    // round's recorded percentiles.
    type Rounds = (Option<Histogram<u64>>, Vec<[f64; 5]>);
    let mut merged: BTreeMap<(Load, Server), Rounds> = BTreeMap::new();
    for result in run.points.iter().filter(|p| p.ok()) {
        let Some(report) = &result.report else {
            continue;
        };
        let load = result.point.load();
        if load.work_us != base_work || load.workload == Workload::Stream || report.messages == 0 {
            continue;
        }
        let latency = match (&report.open_loop, uncorrected) {
            (Some(o), true) => o.latency_uncorrected_us,
            (None, true) => continue,
            _ => report.latency_us,
        };
        let entry = merged
            .entry((load, result.point.model.clone()))
            .or_default();
        entry.1.push(
            [
                latency.p50,
                latency.p90,
                latency.p99,
                latency.p999,
                latency.p9999,
            ]
            .map(|v| v as f64),
        );
        let stored = report.histograms.as_ref().and_then(|h| {
            if uncorrected {
                h.latency_uncorrected()?.ok()
            } else {
                h.latency().ok()
            }
        });
        entry.0 = match (entry.0.take(), stored, entry.1.len()) {
            (_, None, _) => None,
            (None, Some(h), 1) => Some(h),
            (Some(mut sum), Some(h), _) => sum.add(&h).is_ok().then_some(sum),
            (None, Some(_), _) => None,
        };
    }
    let mut by_load: BTreeMap<Load, Vec<(Server, Source)>> = BTreeMap::new();
    for ((load, model), (histogram, rounds)) in merged {
        let source = match histogram {
            Some(h) => Source::Histogram(h),
            None => Source::Percentiles(std::array::from_fn(|i| {
                echo_analysis::bootstrap::median_of(
                    &rounds.iter().map(|r| r[i]).collect::<Vec<_>>(),
                )
            })),
        };
        by_load.entry(load).or_default().push((model, source));
    }
    by_load
}

/// The file name and title of a load's spectrum.
fn names(load: &Load, uncorrected: bool) -> (String, String) {
    let Load {
        transport,
        workload,
        connections,
        payload,
        rate,
        tls_resume,
        ..
    } = *load;
    let rate_part = rate.map_or(String::new(), |r| format!("-{r}rps"));
    let (resumed_part, resumed_title) = if tls_resume {
        ("-resumed", ", resumed sessions")
    } else {
        ("", "")
    };
    // TCP's charts keep the names they had before transports were measured.
    let (transport_part, transport_title) = match transport {
        echo_servers::Transport::Tcp => (String::new(), String::new()),
        other => (format!("-{other}"), format!(" over {other}")),
    };
    let file = format!(
        "latency-{workload}-{connections}c-{}{rate_part}{transport_part}{resumed_part}{}.svg",
        size_label(payload).replace(' ', ""),
        if uncorrected { "-uncorrected" } else { "" }
    );
    let mut title = format!(
        "latency spectrum, {workload} {connections} conn × {}{transport_title}{resumed_title}",
        size_label(payload)
    );
    if let Some(r) = rate {
        title.push_str(&format!(
            ", {r} msg/s offered, {}",
            if uncorrected {
                "uncorrected (from the actual send: hides queueing)"
            } else {
                "corrected (from the intended send)"
            }
        ));
    }
    (file, title)
}

/// Draws a spectrum per load of the run (ping-pong, churn and open loop, the latter corrected
/// and uncorrected); returns the files written.
pub fn draw(dir: &Path, run: &SuiteRun, aggregates: &[Aggregate]) -> std::io::Result<Vec<PathBuf>> {
    let base_work = aggregates.iter().map(|a| a.load.work_us).min().unwrap_or(0);
    let mut written = Vec::new();
    for uncorrected in [false, true] {
        for (load, models) in sources(run, base_work, uncorrected) {
            let mut from_percentiles = false;
            let mut reach = 0.0f64;
            let mut lines = Vec::new();
            for (model, source) in &models {
                from_percentiles |= matches!(source, Source::Percentiles(_));
                let starved = aggregates
                    .iter()
                    .find(|a| a.model == *model && a.load == load)
                    .map_or(0, |a| a.starved);
                let spectrum = source.spectrum();
                reach = reach.max(spectrum.last().map_or(0.0, |p| p.0));
                let ticks = nines_ticks(5.0);
                let points = spectrum
                    .into_iter()
                    .map(|(x, y)| Point {
                        x,
                        y,
                        interval: None,
                        mark: if ticks.iter().any(|t| (t.0 - x).abs() < 0.026) {
                            if starved > 0 {
                                Mark::Hollow
                            } else {
                                Mark::Filled
                            }
                        } else {
                            Mark::None
                        },
                    })
                    .collect();
                lines.push(Line {
                    name: model.name().to_owned(),
                    style: SeriesStyle::of(model.clone()),
                    points,
                    note: (starved > 0).then(|| {
                        format!(
                            "starved {starved} of {} connections: only the served ones are here",
                            load.connections
                        )
                    }),
                });
            }
            let (file, title) = names(&load, uncorrected);
            let mut notes = vec![
                if from_percentiles {
                    "Each line: a model's latency at each percentile.".to_owned()
                } else {
                    "Each line: a model's latency at each percentile, its rounds' histograms \
                     merged (all of them: latency.hlog)."
                        .to_owned()
                },
                "Hollow markers: the model starved connections, so its latency covers only those \
                 it served."
                    .to_owned(),
            ];
            if from_percentiles {
                notes.push(
                    "This run stored no histograms: lines join its recorded percentiles (p50 to \
                     p99.99, medians over the rounds)."
                        .to_owned(),
                );
            }
            let figure = Figure {
                title,
                x: Axis::new("percentile (nines scale)", Scale::Linear)
                    .with_range(0.0, reach.max(2.0) + 0.1)
                    .with_ticks(nines_ticks(reach.max(2.0))),
                y: Axis::new("latency µs (log scale)", Scale::Log),
                panels: vec![Panel { title: None, lines }],
                notes,
            };
            let path = dir.join(file);
            canvas::draw(&path, &figure)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Writes every merged histogram of the run to `dir/latency.hlog`, in HdrHistogram's interval
/// log format (what its `HistogramLogReader` and log analysers read), one histogram per load
/// and model, tagged `<workload>-<connections>c-<payload>[-<rate>rps][-uncorrected]/<model>`.
/// Returns the file, or `None` when the run stored no histograms.
pub fn write_log(
    dir: &Path,
    run: &SuiteRun,
    aggregates: &[Aggregate],
) -> std::io::Result<Option<PathBuf>> {
    use hdrhistogram::serialization::V2DeflateSerializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    let base_work = aggregates.iter().map(|a| a.load.work_us).min().unwrap_or(0);
    let mut text: Vec<u8> = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut any = false;
    {
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment("echo-bench: latency in microseconds, each point's rounds merged")
            .add_comment(&format!("run: {}", run.command))
            .with_max_value_divisor(1.0)
            .begin_log_with(&mut text, &mut serializer)?;
        for uncorrected in [false, true] {
            for (load, models) in sources(run, base_work, uncorrected) {
                let (file, _) = names(&load, uncorrected);
                let stem = file.trim_start_matches("latency-").trim_end_matches(".svg");
                for (model, source) in models {
                    let Source::Histogram(h) = source else {
                        continue;
                    };
                    let tag = format!("{stem}/{model}");
                    log.write_histogram(
                        &h,
                        std::time::Duration::ZERO,
                        std::time::Duration::from_secs_f64(run.duration_s * run.rounds as f64),
                        Tag::new(&tag),
                    )
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                    any = true;
                }
            }
        }
    }
    if !any {
        return Ok(None);
    }
    let path = dir.join("latency.hlog");
    echo_loadgen::files::write(&path, text)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nines_axis_spaces_each_nine_evenly() {
        assert!((nines(0.9) - 1.0).abs() < 1e-9);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        let labels: Vec<String> = nines_ticks(3.0).into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["50%", "90%", "99%", "99.9%"]);
    }

    #[test]
    fn a_histogram_spectrum_rises_and_reaches_as_far_as_its_count() {
        let mut h = echo_loadgen::stats::new_histogram();
        for us in 1..=1000u64 {
            h.record(us).unwrap();
        }
        let spectrum = Source::Histogram(h).spectrum();
        assert!(
            spectrum
                .windows(2)
                .all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0)
        );
        assert!(
            (spectrum.last().unwrap().0 - 3.0).abs() < 1e-9,
            "1000 values reach 99.9%"
        );
        let at_99 = spectrum.iter().find(|p| (p.0 - 2.0).abs() < 1e-9).unwrap();
        assert!((985.0..=995.0).contains(&at_99.1), "{at_99:?}");
    }
}
