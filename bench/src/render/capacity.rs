//! The capacity search as the reader sees it: the knee table, the advice lines (the ranking,
//! and a thread per connection against an event loop at the knee) and the curve chart, from
//! the searches a run stores (`echo_analysis::capacity`).

use echo_analysis::bootstrap::{Change, Verdict};
use echo_analysis::capacity::{
    ModelCapacity, Objective, SUITE_CONNECTIONS as CONNECTIONS, SUITE_PAYLOAD as PAYLOAD, Standing,
    StepSummary, TIE_PCT, ranking,
};
use echo_analysis::run::SuiteRun;
use echo_servers::Model;

use super::Style;

/// Seed of the paired bootstrap of the pair line.
const SEED: u64 = 0x00CA_9AC1;

/// The knee table in Markdown: each model's capacity, interval, highest passing step and
/// ratio to the best; empty without searches.
pub fn table(objective: &Objective, settings_line: &str, searches: &[ModelCapacity]) -> String {
    if searches.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "### Capacity at {objective} ({settings_line})\n\n| model | capacity msg/s | 95% interval | ± | highest passing step | vs best (paired, 95%) |\n|---|---:|---:|---:|---:|---|\n"
    );
    for s in ranking(searches) {
        let search = searches.iter().find(|m| m.model == s.model);
        let c = search.and_then(|m| m.capacity.as_ref());
        let figure = match (&s.bound, s.capacity_rps) {
            (Some(bound), _) => bound.clone(),
            (None, Some(rps)) => format!("{rps:.0}"),
            (None, None) => search
                .and_then(|m| m.failure.clone())
                .map_or_else(|| "-".to_owned(), |f| format!("failed: {f}")),
        };
        let interval = s
            .interval
            .map_or_else(|| "-".to_owned(), |[l, h]| format!("{l:.0} – {h:.0}"));
        let half = c
            .and_then(|c| c.half_width_pct)
            .map_or_else(|| "-".to_owned(), |h| format!("{h:.1}%"));
        let passing = c
            .and_then(|c| c.passing_rps)
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.0}"));
        let against = match (&s.against_best, s.verdict) {
            (Some(ch), Some(v)) => format!(
                "{:.2}× [{:.2}, {:.2}]{}",
                ch.ratio,
                1.0 + ch.ci_low_pct / 100.0,
                1.0 + ch.ci_high_pct / 100.0,
                match v {
                    Verdict::NoChange => ", tied",
                    Verdict::Inconclusive => ", not separated",
                    _ => "",
                }
            ),
            _ if s.leading => "best".to_owned(),
            _ => "-".to_owned(),
        };
        out.push_str(&format!(
            "| {} | {figure} | {interval} | {half} | {passing} | {against} |\n",
            s.model
        ));
    }
    out
}

/// The advice line: "capacity at p99 ≤ 1ms on one core: mio, tokio tied at …; thread-per-
/// connection 0.60× …".
pub fn advice_line(
    objective: &Objective,
    cores: &str,
    searches: &[ModelCapacity],
    s: Style,
) -> Option<String> {
    let ranked = ranking(searches);
    let leaders: Vec<&Standing> = ranked.iter().filter(|s| s.leading).collect();
    let best = leaders.first()?;
    let rps = best.capacity_rps?;
    let names: Vec<&str> = leaders.iter().map(|s| s.model.as_str()).collect();
    let lead = if names.len() == 1 {
        format!("{} leads at {rps:.0} msg/s", names[0])
    } else {
        format!(
            "{} not separated (best {rps:.0} msg/s, each within its paired interval)",
            names.join(", ")
        )
    };
    let others: Vec<String> = ranked
        .iter()
        .filter(|s| !s.leading)
        .map(|s| match (&s.bound, &s.against_best) {
            (Some(bound), _) => format!("{} {bound} msg/s", s.model),
            (None, Some(ch)) => format!("{} {:.2}×", s.model, ch.ratio),
            (None, None) => format!("{} not measured", s.model),
        })
        .collect();
    let rest = if others.is_empty() {
        String::new()
    } else {
        format!("; {}", others.join(", "))
    };
    Some(format!(
        "{}: {lead}{rest} (median over rounds; ties and ratios from the rounds' paired ratios).",
        s.bold(&format!("Capacity at {objective} on {cores}"))
    ))
}

/// The knee table of a stored run (empty when it searched no capacity).
pub fn table_of(run: &SuiteRun) -> String {
    let Some(objective) = run.capacity_objective else {
        return String::new();
    };
    let mut out = table(&objective, &settings_line(run), &run.capacity);
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// How the searches loaded the servers, for the table's heading.
fn settings_line(run: &SuiteRun) -> String {
    format!(
        "open loop, {} connections × {} B, {}",
        CONNECTIONS,
        PAYLOAD,
        run.pinning.describe()
    )
}

/// The advice lines of a run's capacity search: the ranking, and the question the issue asks
/// of this machine, a thread per connection against an event loop at the knee.
pub fn advice_lines(finding: &echo_analysis::advice::CapacityFinding<'_>, s: Style) -> Vec<String> {
    let cores = match finding.server_cores {
        Some(1) => "one server core".to_owned(),
        Some(n) => format!("{n} server cores"),
        None => "an unpinned server".to_owned(),
    };
    advice_line(&finding.objective, &cores, finding.searches, s)
        .into_iter()
        .chain(pair_line(
            finding.searches,
            "thread-per-connection",
            "mio",
            s,
        ))
        .collect()
}

/// `a` against `b` at capacity, paired by round: the ratio, its interval and what it says.
pub fn pair_line(searches: &[ModelCapacity], a: &str, b: &str, s: Style) -> Option<String> {
    let (sa, sb) = (
        searches.iter().find(|m| m.model == a)?,
        searches.iter().find(|m| m.model == b)?,
    );
    let rounds = sa.rounds.len().max(sb.rounds.len());
    let pairs: Vec<(f64, f64)> = (0..rounds)
        .filter_map(|r| Some((sb.round_figure(r)?, sa.round_figure(r)?)))
        .collect();
    let change = Change::of(&pairs, SEED)?;
    let says = match change.verdict(TIE_PCT, true) {
        Verdict::NoChange => "tied (the whole interval within ±5%)".to_owned(),
        Verdict::Improved => format!("{a} is ahead"),
        Verdict::Regressed => format!("{b} is ahead"),
        _ => "not separated (the interval reaches past ±5% on both sides of even)".to_owned(),
    };
    Some(format!(
        "{} ({CONNECTIONS} connections): {:.2}× [{:.2}, {:.2}] over {} paired rounds: {says}.",
        s.bold(&format!("{a} against {b} at the knee")),
        change.ratio,
        1.0 + change.ci_low_pct / 100.0,
        1.0 + change.ci_high_pct / 100.0,
        change.pairs
    ))
}

/// The curve of every model: achieved rate against p50, p99 and p99.9 (a panel each, log
/// scales), each grid step's median with its interval over the rounds; a step that misses the
/// objective hollow. Written as `capacity-curve.svg`; nothing without searches.
pub fn draw(dir: &std::path::Path, run: &SuiteRun) -> std::io::Result<Vec<std::path::PathBuf>> {
    use super::charts::canvas::{self, Axis, Figure, Line, Mark, Panel, Point, Scale};
    use super::charts::style::SeriesStyle;
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
    use super::charts::canvas::{self, Axis, Figure, Panel, Scale};
    use super::charts::{throughput_range, timeline_lines};
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
    use echo_analysis::capacity::{Bracket, Step, summarise};

    /// A model's search whose rounds crossed at `figures` (each round a met step at the figure
    /// and a miss just above).
    fn search(model: &str, figures: &[f64]) -> ModelCapacity {
        let o: Objective = "p99=1ms".parse().unwrap();
        let step = |rate: f64, latency: f64| Step {
            offered_rps: rate,
            achieved_rps: rate,
            latency_us: latency,
            ..Step::default()
        };
        let rounds: Vec<Vec<Step>> = figures
            .iter()
            .map(|&f| vec![step(f, 500.0), step(f * 1.02, 5000.0)])
            .collect();
        let bracket = Bracket::Between {
            met: figures[0],
            missed: figures[0] * 2.0,
        };
        ModelCapacity {
            model: model.into(),
            capacity: Some(summarise(&o, bracket, &[], &rounds)),
            ramp: Vec::new(),
            grid: Vec::new(),
            rounds,
            failure: None,
            timelines: Vec::new(),
        }
    }

    #[test]
    fn models_within_five_percent_in_every_round_tie_and_a_slower_one_is_separated() {
        let searches = [
            search("slow", &[30_000.0, 31_000.0, 29_500.0, 30_500.0]),
            search("a", &[50_000.0, 51_000.0, 49_000.0, 50_500.0]),
            search("b", &[50_100.0, 50_800.0, 49_100.0, 50_300.0]),
        ];
        let ranked = ranking(&searches);
        assert_eq!(ranked[0].model, "a");
        assert!(ranked[0].leading && ranked[0].against_best.is_none());
        assert_eq!(ranked[1].model, "b");
        assert_eq!(ranked[1].verdict, Some(Verdict::NoChange));
        assert!(ranked[1].leading);
        assert_eq!(ranked[2].model, "slow");
        assert_eq!(ranked[2].verdict, Some(Verdict::Regressed));
        assert!(!ranked[2].leading);
        let ratio = ranked[2].against_best.as_ref().unwrap().ratio;
        assert!((ratio - 0.6).abs() < 0.02, "{ratio}");
        let o: Objective = "p99=1ms".parse().unwrap();
        let line = advice_line(&o, "one core", &searches, Style::Markdown).unwrap();
        assert!(line.contains("a, b not separated"), "{line}");
        assert!(line.contains("slow 0.60×"), "{line}");
        let table = table(&o, "256 connections × 64 B", &searches);
        assert!(table.contains("| slow | 30250 |"), "{table}");
        assert!(table.contains(", tied |"), "{table}");
    }

    #[test]
    fn a_model_below_the_ramps_floor_is_a_bound_not_a_figure() {
        let o: Objective = "p99=1ms".parse().unwrap();
        let mut below = search("blocking", &[1.0]);
        below.capacity = Some(summarise(
            &o,
            Bracket::BelowMin { missed: 5_000.0 },
            &[],
            &[],
        ));
        below.rounds.clear();
        let searches = [search("mio", &[80_000.0, 82_000.0, 81_000.0]), below];
        let ranked = ranking(&searches);
        assert_eq!(ranked[1].bound.as_deref(), Some("< 5000"));
        assert!(!ranked[1].leading);
        let line = advice_line(&o, "one core", &searches, Style::Markdown).unwrap();
        assert!(line.contains("mio leads at 81000"), "{line}");
        assert!(line.contains("blocking < 5000 msg/s"), "{line}");
        let pair = pair_line(&searches, "blocking", "mio", Style::Plain);
        assert_eq!(pair, None, "no round of blocking crossed inside a grid");
        let searches = [
            search("mio", &[80_000.0, 82_000.0, 81_000.0]),
            search("thread-per-connection", &[40_000.0, 41_500.0, 40_400.0]),
        ];
        let pair = pair_line(&searches, "thread-per-connection", "mio", Style::Plain).unwrap();
        assert!(
            pair.contains("0.50×") && pair.contains("mio is ahead"),
            "{pair}"
        );
    }

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
        let mut mio = search("mio", &[80_000.0, 82_000.0]);
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
            capacity: vec![mio, search("Outside Server", &[1_000.0])],
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
