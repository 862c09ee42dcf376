//! Every number format used in text, once: figures with three significant digits (`131k`,
//! `950`, `4.20`), signed percentages with a true minus sign (`−38%`), a change with its
//! interval (`+12% [+8%, +15%]`), a median with the half-width of its interval (`131k ±4%`),
//! and a measure's value with its unit.

use echo_analysis::aggregate::Measure;
use echo_analysis::bootstrap::{Change, Estimate};

/// A figure for text and tables, three significant digits, thousands as `k`: `131k`, `42.5k`,
/// `9.71k`, `950`, `12.3`, `4.20`.
pub fn figure(value: f64) -> String {
    if value >= 100_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 10_000.0 {
        format!("{:.1}k", value / 1000.0)
    } else if value >= 1_000.0 {
        format!("{:.2}k", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A whole signed percentage with a true minus sign: `+12%`, `−38%`.
pub fn signed_pct(pct: f64) -> String {
    format!("{}{:.0}%", if pct >= 0.0 { "+" } else { "−" }, pct.abs())
}

/// A change and its interval: `+12% [+8%, +15%]`.
pub fn change(c: &Change) -> String {
    format!(
        "{} [{}, {}]",
        signed_pct(c.change_pct),
        signed_pct(c.ci_low_pct),
        signed_pct(c.ci_high_pct)
    )
}

/// The change of the other side of a comparison: `c` is the leader's against a model, this is
/// the model's against the leader, `−12% [−15%, −9%]`.
pub fn inverse_change(c: &Change) -> String {
    let inv = |p: f64| (100.0 / (1.0 + p / 100.0)) - 100.0;
    format!(
        "{} [{}, {}]",
        signed_pct(inv(c.change_pct)),
        signed_pct(inv(c.ci_high_pct)),
        signed_pct(inv(c.ci_low_pct))
    )
}

/// A median and the half-width of its interval as a percentage, `131k ±4%`; the median alone
/// for one sample, which has no interval.
pub fn with_interval(e: &Estimate, fmt: impl Fn(f64) -> String) -> String {
    match e.half_width_pct() {
        Some(h) => format!("{} ±{h:.0}%", fmt(e.median)),
        None => fmt(e.median),
    }
}

/// `value` of `measure` with its unit, short: `131k msg/s`, `5.00 µs CPU/msg`.
pub fn measure(measure: Measure, value: f64) -> String {
    match measure {
        Measure::Throughput => format!("{} msg/s", figure(value)),
        Measure::Bandwidth => format!("{} MiB/s", figure(value)),
        Measure::ConnectionRate => format!("{} conn/s", figure(value)),
        Measure::CpuPerMessage => format!("{} µs CPU/msg", figure(value)),
        Measure::P99 => format!("{} µs p99", figure(value)),
    }
}

/// An estimate of `m` with its unit and interval: `131k msg/s ±4%`.
pub fn estimate(m: Measure, e: &Estimate) -> String {
    with_interval(e, |v| measure(m, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_keep_about_three_significant_digits() {
        let shown: Vec<String> = [131_234.0, 42_517.0, 9_713.0, 950.4, 12.34, 4.2]
            .into_iter()
            .map(figure)
            .collect();
        assert_eq!(shown, ["131k", "42.5k", "9.71k", "950", "12.3", "4.20"]);
    }

    #[test]
    fn percentages_carry_a_true_minus_sign_and_intervals_invert() {
        assert_eq!(signed_pct(-38.2), "−38%");
        assert_eq!(signed_pct(12.0), "+12%");
        let c = Change {
            change_pct: 25.0,
            ci_low_pct: 20.0,
            ci_high_pct: 30.0,
            ..Change::default()
        };
        assert_eq!(change(&c), "+25% [+20%, +30%]");
        // 1/1.25 = 0.8, 1/1.3 = 0.77, 1/1.2 = 0.83.
        assert_eq!(inverse_change(&c), "−20% [−23%, −17%]");
    }

    #[test]
    fn an_estimate_shows_its_interval_only_when_it_has_one() {
        let e = Estimate {
            n: 3,
            median: 100.0,
            low: 96.0,
            high: 104.0,
        };
        assert_eq!(estimate(Measure::Throughput, &e), "100 msg/s ±4%");
        let one = Estimate { n: 1, ..e };
        assert_eq!(estimate(Measure::P99, &one), "100 µs p99");
    }
}
