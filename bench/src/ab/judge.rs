//! From pairs to verdicts: the statistics per metric, saturated pairs left out, the verdict per
//! benchmark, and the run's exit code and conclusion.

use super::*;
use echo_cli::{EXIT_FAILURE, EXIT_SUCCESS, EXIT_USAGE};

/// Sets the exit code, the one-line conclusion and the warnings.
pub(super) fn conclude(report: &mut AbReport, confirmed: bool, strict: bool) {
    let named = |verdict: Verdict| -> Vec<String> {
        report
            .benchmarks
            .iter()
            .filter(|b| b.verdict == verdict)
            .map(|b| b.name.clone())
            .collect()
    };
    let invalid = named(Verdict::Invalid);
    let regressed = named(Verdict::Regressed);
    let inconclusive = named(Verdict::Inconclusive);
    for b in &report.benchmarks {
        if b.verdict == Verdict::Inconclusive {
            let why = match (b.pairs_needed, &b.note) {
                (Some(needed), _) => format!(
                    "too noisy to tell a {:.1}% change; about {needed} pairs would",
                    b.threshold_pct
                ),
                (None, Some(note)) => note.clone(),
                (None, None) => "no verdict".into(),
            };
            report
                .warnings
                .push(format!("{}: inconclusive: {why}", b.name));
        }
    }
    let (code, conclusion) = if !invalid.is_empty() {
        (EXIT_USAGE, format!("invalid: {}", invalid.join(", ")))
    } else if !regressed.is_empty() {
        let how = if confirmed {
            "confirmed regression"
        } else {
            "regression (not re-run)"
        };
        (EXIT_FAILURE, format!("{how}: {}", regressed.join(", ")))
    } else if !inconclusive.is_empty() && strict {
        (
            EXIT_FAILURE,
            format!(
                "inconclusive, which --strict counts as a failure: {}",
                inconclusive.join(", ")
            ),
        )
    } else if !inconclusive.is_empty() {
        (
            EXIT_SUCCESS,
            format!(
                "no confirmed regression; inconclusive: {}",
                inconclusive.join(", ")
            ),
        )
    } else {
        (EXIT_SUCCESS, "no regression".to_owned())
    };
    report.exit_code = code;
    report.conclusion = conclusion;
}

/// Judges one benchmark's pairs. Long because it is the verdict's whole rule in order:
/// invalid pairs, saturated pairs left out, every metric's change, the threshold with its
/// calibrated floor, and the verdict.
pub(super) fn judge(
    options: &AbOptions,
    spec: &BenchmarkSpec,
    pairs: Vec<Pair>,
    seed: u64,
) -> BenchmarkResult {
    let name = spec.name();
    let primary = spec.primary();
    let calibrated = options.calibration.get(&name).copied();
    // A counted benchmark has its own threshold: a count's noise is a fraction of a timed
    // figure's.
    let user_pct = if spec.counted {
        options.count.threshold_pct
    } else {
        options.threshold_pct
    };
    let threshold_pct = calibrated.map_or(user_pct, |floor| floor.max(user_pct));
    let mut invalid: Vec<String> = pairs
        .iter()
        .flat_map(|p| [(&p.base, "base"), (&p.head, "head")])
        .filter_map(|(s, side)| s.invalid.as_ref().map(|why| format!("{side}: {why}")))
        .collect();
    let excluded: Vec<String> = pairs.iter().filter_map(|p| p.excluded.clone()).collect();
    let usable = pairs.len() - excluded.len();
    if invalid.is_empty() && !excluded.is_empty() && usable < (pairs.len() / 2).max(2) {
        invalid.push(format!(
            "{} of {} pairs left out: {}",
            excluded.len(),
            pairs.len(),
            excluded[0]
        ));
    }
    let metrics: Vec<MetricResult> = Metric::ALL
        .iter()
        .enumerate()
        .filter_map(|(k, &metric)| {
            let values: Vec<(f64, f64)> = pairs
                .iter()
                .filter(|p| {
                    p.base.invalid.is_none() && p.head.invalid.is_none() && p.excluded.is_none()
                })
                .filter_map(|p| {
                    Some((*p.base.metrics.get(&metric)?, *p.head.metrics.get(&metric)?))
                })
                .collect();
            if values.is_empty() {
                return None;
            }
            let median = |side: fn(&(f64, f64)) -> f64| {
                echo_analysis::bootstrap::median_of(&values.iter().map(side).collect::<Vec<_>>())
            };
            let change = Change::of(&values, seed ^ (k as u64 + 1).wrapping_mul(0xA24B_AED4));
            let verdict = change.as_ref().map_or(Verdict::Inconclusive, |c| {
                c.verdict(threshold_pct, metric.higher_is_better())
            });
            Some(MetricResult {
                metric: Some(metric),
                unit: metric.unit().to_owned(),
                higher_is_better: metric.higher_is_better(),
                primary: metric == primary,
                base_median: median(|v| v.0),
                head_median: median(|v| v.1),
                change,
                verdict,
            })
        })
        .collect();
    let pairs_len = pairs.len();
    let mut result = BenchmarkResult {
        name,
        spec: Some(spec.clone()),
        threshold_pct,
        calibrated_floor_pct: calibrated,
        metrics,
        pairs,
        ..BenchmarkResult::default()
    };
    if !invalid.is_empty() {
        result.verdict = Verdict::Invalid;
        let more = if invalid.len() > 1 {
            format!(" (and {} more)", invalid.len() - 1)
        } else {
            String::new()
        };
        result.note = Some(format!("{}{more}", invalid[0]));
        return result;
    }
    let Some(change) = result.primary().and_then(|m| m.change.clone()) else {
        result.verdict = Verdict::Invalid;
        result.note = Some(format!("no usable {} figures", primary.name()));
        return result;
    };
    result.verdict = change.verdict(threshold_pct, primary.higher_is_better());
    if !excluded.is_empty() {
        result.note = Some(format!(
            "{} of {} pairs left out: {}",
            excluded.len(),
            pairs_len,
            excluded[0]
        ));
    }
    if options.is_aa() {
        result.noise_floor_pct = Some(change.noise_floor_pct());
    }
    if result.verdict == Verdict::Inconclusive {
        result.pairs_needed = Some(change.pairs_needed(threshold_pct));
    }
    result
}

/// Leaves a pair out of the statistics if the load generator, not the server, set the pace: the
/// client's CPUs were saturated while the server's still had room. Such a pair is not wrong, only
/// uninformative; a benchmark where most pairs are is invalid (see `judge`). (When both sides are full,
/// as churn on loopback often makes them, the two builds share the same bottleneck and the
/// comparison stands.) In a duet both clients share the client CPUs and both servers the server
/// CPUs, so their figures add up.
///
/// An open-loop benchmark is judged on the server's CPU per message at an offered rate, not on
/// throughput: a busy client does not distort that as long as it sent what was asked. There a
/// pair is left out only when a side fell short of 95% of the offered rate.
pub(super) fn check_saturation(
    pair: &mut Pair,
    spec: &BenchmarkSpec,
    duet: bool,
    server_cpus: usize,
) {
    const SATURATED: f64 = 0.9;
    if let Some(rate) = spec.rate {
        let achieved = |s: &Sample| s.metrics.get(&Metric::Throughput).copied().unwrap_or(0.0);
        let short = achieved(&pair.base).min(achieved(&pair.head));
        if short < 0.95 * rate {
            pair.excluded = Some(format!(
                "a side achieved {short:.0} of the {rate:.0} msg/s offered: the client or the \
                 server could not keep the rate"
            ));
        }
        return;
    }
    let combine = |a: f64, b: f64| if duet { a + b } else { a.max(b) };
    let client = combine(pair.base.client_utilisation, pair.head.client_utilisation);
    let server =
        combine(pair.base.server_cores, pair.head.server_cores) / server_cpus.max(1) as f64;
    if client >= SATURATED && server < SATURATED {
        let why = format!(
            "the client was saturated ({:.0}% of its CPUs, the server's at {:.0}%): it, not the \
             server, set the pace",
            client * 100.0,
            server * 100.0
        );
        pair.excluded = Some(why);
    }
}
