//! The capacity search as the reader sees it: the knee table and the advice lines (the ranking,
//! and a thread per connection against an event loop at the knee), from the searches a run
//! stores (`echo_analysis::capacity`). Its curve chart is `charts::capacity`.

use echo_analysis::bootstrap::{Change, Verdict};
use echo_analysis::capacity::{
    ModelCapacity, Objective, SUITE_CONNECTIONS as CONNECTIONS, SUITE_PAYLOAD as PAYLOAD, Standing,
    TIE_PCT, ranking,
};
use echo_analysis::run::SuiteRun;

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
            _ if s.best => "best".to_owned(),
            _ if s.leading => "no rounds pair; intervals overlap".to_owned(),
            _ if s.capacity_rps.is_some() => "no rounds pair; interval below".to_owned(),
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
    let rps = ranked.iter().find(|s| s.best)?.capacity_rps?;
    let names: Vec<&str> = leaders.iter().map(|s| s.model.as_str()).collect();
    let lead = if names.len() == 1 {
        format!("{} leads at {rps:.0} msg/s", names[0])
    } else {
        format!(
            "{} not separated (best {rps:.0} msg/s; by the paired ratio, or where no rounds \
             pair by intervals that overlap)",
            names.join(", ")
        )
    };
    let others: Vec<String> = ranked
        .iter()
        .filter(|s| !s.leading)
        .map(|s| match (&s.bound, &s.against_best) {
            (Some(bound), _) => format!("{} {bound} msg/s", s.model),
            (None, Some(ch)) => format!("{} {:.2}×", s.model, ch.ratio),
            (None, None) if s.capacity_rps.is_some() => {
                format!("{} below (its interval lies under the best's)", s.model)
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use echo_analysis::capacity::{Bracket, Crossing, Step, summarise};

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

    /// A search whose rounds crossed inside the grid only where `figures` has a figure (the
    /// others met the objective at every grid rate), with its capacity and interval as given.
    fn unpaired(
        model: &str,
        figures: &[Option<f64>],
        rps: f64,
        interval: [f64; 2],
    ) -> ModelCapacity {
        let mut m = search(model, &[rps; 4]);
        let c = m.capacity.as_mut().unwrap();
        c.crossings = figures
            .iter()
            .map(|f| Some(f.map_or(Crossing::AboveGrid(rps), Crossing::At)))
            .collect();
        c.capacity_rps = Some(rps);
        c.capacity_interval = Some(interval);
        m
    }

    /// Seen in a stored run: the best's rounds crossed inside the grid where no other model's
    /// did, so no ratio paired, and the best was named alone beside a model of the same median.
    /// Without pairs, only intervals from two rounds or more that lie apart separate a model.
    #[test]
    fn models_no_round_pairs_are_separated_only_by_intervals_that_lie_apart() {
        let searches = [
            unpaired(
                "a",
                &[Some(50_000.0), Some(50_500.0), None, None],
                50_250.0,
                [50_000.0, 50_500.0],
            ),
            unpaired(
                "b",
                &[None, None, Some(49_800.0), Some(50_200.0)],
                50_000.0,
                [49_800.0, 50_200.0],
            ),
            unpaired(
                "slow",
                &[None, None, Some(30_000.0), Some(30_500.0)],
                30_250.0,
                [30_000.0, 30_500.0],
            ),
            // One round's figure: a point, not an interval, so it separates nothing.
            unpaired(
                "once",
                &[None, None, None, Some(40_000.0)],
                40_000.0,
                [40_000.0, 40_000.0],
            ),
            // The highest median, from one round: compared with the best, not the best.
            unpaired(
                "lucky",
                &[None, None, Some(60_000.0), None],
                60_000.0,
                [60_000.0, 60_000.0],
            ),
        ];
        let ranked = ranking(&searches);
        let of = |name: &str| ranked.iter().find(|s| s.model == name).unwrap();
        assert!(of("a").best && of("a").leading);
        assert!(
            !of("lucky").best && of("lucky").leading,
            "{:?}",
            of("lucky")
        );
        assert!(
            of("b").leading && of("b").against_best.is_none(),
            "{:?}",
            of("b")
        );
        assert!(!of("slow").leading, "{:?}", of("slow"));
        assert!(of("once").leading, "{:?}", of("once"));
        let o: Objective = "p99=1ms".parse().unwrap();
        let line = advice_line(&o, "one core", &searches, Style::Markdown).unwrap();
        assert!(line.contains("not separated"), "{line}");
        assert!(line.contains("slow below"), "{line}");
        let table = table(&o, "256 connections × 64 B", &searches);
        assert!(
            table.contains("| b | 50000 |") && table.contains("no rounds pair"),
            "{table}"
        );
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
}
