//! The statistics of a paired comparison: per-pair log-ratios, their geometric mean, a bootstrap
//! confidence interval, the minimum detectable effect, and the verdict.
//!
//! Each pair measures base and head at the same time on the same machine (a duet, or back to
//! back with `--sequential`), so slow drifts of the machine cancel in the pair's ratio; the
//! pairs are then independent draws of that ratio. The suite uses the same machinery: a round
//! is a block in which every model is measured once, so two models pair up within rounds, and a
//! figure's interval over its rounds ([`Estimate`]) comes from the same bootstrap. Ratios
//! are averaged on the log scale (a 10% loss and a 10% gain are symmetric there), and the
//! interval of the mean comes from resampling the pairs (percentile bootstrap), which assumes
//! nothing about the shape of the noise.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 10_000;
/// Confidence level of the intervals.
pub const CONFIDENCE: f64 = 0.95;
/// Power at which the minimum detectable effect is stated.
pub const POWER: f64 = 0.80;

/// What a comparison concluded about one benchmark (or one metric of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval is past the threshold on the bad side.
    Regressed,
    /// The whole interval is past the threshold on the good side.
    Improved,
    /// The whole interval is inside the threshold: changes as large as it are excluded.
    NoChange,
    /// Too noisy to tell: the interval reaches past the threshold without lying beyond it, or a
    /// regression was not confirmed when re-run.
    #[default]
    Inconclusive,
    /// Not comparable: echo errors, a saturated client, or a server that failed.
    Invalid,
}

impl Verdict {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            Verdict::NoChange => "no_change",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Invalid => "invalid",
        }
    }
}

/// The change of one metric from base to head, over the pairs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Change {
    /// Pairs with a value on both sides.
    pub pairs: usize,
    /// Geometric mean of head/base.
    pub ratio: f64,
    /// `ratio` as a percentage change (+ means head is larger).
    pub change_pct: f64,
    /// Lower bound of the confidence interval, % change.
    pub ci_low_pct: f64,
    /// Upper bound of the confidence interval, % change.
    pub ci_high_pct: f64,
    /// Standard deviation of the per-pair log-ratios (the pair-to-pair noise).
    pub sd_log: f64,
    /// The smallest change this many pairs detect with 80% power at 95% confidence, %.
    pub mde_pct: f64,
}

impl Change {
    /// The change given per-pair `(base, head)` values (pairs with a non-positive value are
    /// left out); `seed` makes the bootstrap repeatable. `None` with fewer than two pairs.
    pub fn of(pairs: &[(f64, f64)], seed: u64) -> Option<Change> {
        let logs: Vec<f64> = pairs
            .iter()
            .filter(|(b, h)| *b > 0.0 && *h > 0.0 && b.is_finite() && h.is_finite())
            .map(|(b, h)| (h / b).ln())
            .collect();
        let n = logs.len();
        if n < 2 {
            return None;
        }
        let mean = logs.iter().sum::<f64>() / n as f64;
        let sd_log = (logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
        let (low, high) = bootstrap_interval(&logs, seed);
        let pct = |log: f64| (log.exp() - 1.0) * 100.0;
        Some(Change {
            pairs: n,
            ratio: mean.exp(),
            change_pct: pct(mean),
            ci_low_pct: pct(low),
            ci_high_pct: pct(high),
            sd_log,
            mde_pct: pct(mde_log(sd_log, n)),
        })
    }

    /// The verdict against `threshold_pct`, for a metric where larger is better or worse.
    pub fn verdict(&self, threshold_pct: f64, higher_is_better: bool) -> Verdict {
        // Express the interval as "how much worse": positive is the bad side.
        let (worse_low, worse_high) = if higher_is_better {
            (-self.ci_high_pct, -self.ci_low_pct)
        } else {
            (self.ci_low_pct, self.ci_high_pct)
        };
        if worse_low > threshold_pct {
            Verdict::Regressed
        } else if worse_high < -threshold_pct {
            Verdict::Improved
        } else if worse_low > -threshold_pct && worse_high < threshold_pct {
            Verdict::NoChange
        } else {
            Verdict::Inconclusive
        }
    }

    /// Pairs needed for the minimum detectable effect to reach `threshold_pct` at this noise
    /// (capped at 10 000).
    pub fn pairs_needed(&self, threshold_pct: f64) -> usize {
        let target = (1.0 + threshold_pct / 100.0).ln();
        (2..10_000)
            .find(|&n| mde_log(self.sd_log, n) <= target)
            .unwrap_or(10_000)
    }

    /// The largest change the interval cannot rule out, %: the noise floor an A/A comparison
    /// measures.
    pub fn noise_floor_pct(&self) -> f64 {
        self.ci_low_pct.abs().max(self.ci_high_pct.abs())
    }
}

/// A figure measured several times (a suite point over its rounds): the median, and the 95%
/// percentile-bootstrap interval of the geometric mean, the same resampling as [`Change`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Estimate {
    /// Samples with a positive value.
    pub n: usize,
    /// Their median.
    pub median: f64,
    /// Lower bound of the interval (equal to the one sample when `n` is 1).
    pub low: f64,
    /// Upper bound of the interval.
    pub high: f64,
}

impl Estimate {
    /// The estimate of `values` (non-positive and non-finite ones left out); `None` if none is
    /// left. `seed` makes the bootstrap repeatable.
    pub fn of(values: &[f64], seed: u64) -> Option<Estimate> {
        let mut kept: Vec<f64> = values
            .iter()
            .copied()
            .filter(|v| *v > 0.0 && v.is_finite())
            .collect();
        kept.sort_by(f64::total_cmp);
        let median = median(&kept)?;
        let (low, high) = if kept.len() < 2 {
            (median, median)
        } else {
            let logs: Vec<f64> = kept.iter().map(|v| v.ln()).collect();
            let (low, high) = bootstrap_interval(&logs, seed);
            // A resample of one value repeated should give that value back, but the mean of its
            // logs and `exp` may each miss it in the last bit, either way: kept to the samples'
            // range and widened to the median, a median equal to the lowest (or highest)
            // sample lies within its interval, as it must.
            let bound = |v: f64| v.clamp(kept[0], kept[kept.len() - 1]);
            (bound(low.exp()).min(median), bound(high.exp()).max(median))
        };
        Some(Estimate {
            n: kept.len(),
            median,
            low,
            high,
        })
    }

    /// Half the interval's width as a percentage of the median; `None` for a single sample,
    /// which has no interval.
    pub fn half_width_pct(&self) -> Option<f64> {
        (self.n >= 2 && self.median > 0.0).then(|| 50.0 * (self.high - self.low) / self.median)
    }
}

/// The median of `values` in any order (the mean of the middle two for an even count); 0 when
/// there are none. The one median every comparison and table of the project uses.
pub fn median_of(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    median(&sorted).unwrap_or(0.0)
}

/// The median of sorted `values`; `None` when empty.
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

impl Change {
    /// The change from `base` to `head` when the samples are not paired (two runs made at
    /// different times): the difference of the log-means, its interval from resampling each
    /// side on its own. `None` unless both sides have at least two positive samples.
    pub fn unpaired(base: &[f64], head: &[f64], seed: u64) -> Option<Change> {
        let logs = |v: &[f64]| -> Vec<f64> {
            v.iter()
                .filter(|x| **x > 0.0 && x.is_finite())
                .map(|x| x.ln())
                .collect()
        };
        let (b, h) = (logs(base), logs(head));
        if b.len() < 2 || h.len() < 2 {
            return None;
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let var = |v: &[f64]| {
            let m = mean(v);
            v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64
        };
        // The spread of one pair's worth of difference, so `mde_pct` reads as in `of`.
        let diff = mean(&h) - mean(&b);
        let (low, high) = bootstrap(seed, |rng| {
            resampled_mean(&h, rng) - resampled_mean(&b, rng)
        });
        let pct = |log: f64| (log.exp() - 1.0) * 100.0;
        let sd_log = (var(&b) / b.len() as f64 + var(&h) / h.len() as f64).sqrt();
        let n = b.len().min(h.len());
        Some(Change {
            pairs: n,
            ratio: diff.exp(),
            change_pct: pct(diff),
            ci_low_pct: pct(low),
            ci_high_pct: pct(high),
            sd_log,
            mde_pct: pct(mde_log(sd_log * (n as f64).sqrt(), n)),
        })
    }

    /// Whether the interval holds zero: the data cannot tell the two apart.
    pub fn within_noise(&self) -> bool {
        self.ci_low_pct <= 0.0 && self.ci_high_pct >= 0.0
    }
}

/// The minimum detectable effect on the log scale: (t(1-α/2) + t(power)) · sd / √n.
fn mde_log(sd_log: f64, n: usize) -> f64 {
    let df = n.saturating_sub(1).max(1);
    (t_quantile_975(df) + t_quantile_80(df)) * sd_log / (n as f64).sqrt()
}

/// Student's t, 97.5th percentile, by degrees of freedom (the normal value past 30).
fn t_quantile_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    T.get(df - 1).copied().unwrap_or(1.960)
}

/// Student's t, 80th percentile, by degrees of freedom (the normal value past 30).
fn t_quantile_80(df: usize) -> f64 {
    const T: [f64; 30] = [
        1.376, 1.061, 0.978, 0.941, 0.920, 0.906, 0.896, 0.889, 0.883, 0.879, 0.876, 0.873, 0.870,
        0.868, 0.866, 0.865, 0.863, 0.862, 0.861, 0.860, 0.859, 0.858, 0.858, 0.857, 0.856, 0.856,
        0.855, 0.855, 0.854, 0.854,
    ];
    T.get(df - 1).copied().unwrap_or(0.842)
}

/// The percentile-bootstrap interval of the mean of `values`.
fn bootstrap_interval(values: &[f64], seed: u64) -> (f64, f64) {
    bootstrap(seed, |rng| resampled_mean(values, rng))
}

/// The mean of one resample (with replacement) of `values`.
fn resampled_mean(values: &[f64], rng: &mut SmallRng) -> f64 {
    let n = values.len();
    (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64
}

/// The central [`CONFIDENCE`] interval of `statistic` over [`RESAMPLES`] resamples, drawn on
/// rayon's pool in chunks with their own seeded generators (so the result does not depend on
/// the thread count).
fn bootstrap(seed: u64, statistic: impl Fn(&mut SmallRng) -> f64 + Sync) -> (f64, f64) {
    const CHUNKS: usize = 16;
    let mut values: Vec<f64> = (0..CHUNKS)
        .into_par_iter()
        .flat_map_iter(|chunk| {
            let mut rng = SmallRng::seed_from_u64(seed ^ (chunk as u64).wrapping_mul(0x9E37_79B9));
            (0..RESAMPLES / CHUNKS)
                .map(|_| statistic(&mut rng))
                .collect::<Vec<_>>()
        })
        .collect();
    values.sort_by(f64::total_cmp);
    let alpha = (1.0 - CONFIDENCE) / 2.0;
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(alpha), at(1.0 - alpha))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs_with(ratios: &[f64]) -> Vec<(f64, f64)> {
        ratios.iter().map(|r| (1000.0, 1000.0 * r)).collect()
    }

    #[test]
    fn identical_pairs_give_a_zero_width_interval_and_no_change() {
        let change = Change::of(&pairs_with(&[1.0; 8]), 1).unwrap();
        assert_eq!(change.ratio, 1.0);
        assert_eq!((change.ci_low_pct, change.ci_high_pct), (0.0, 0.0));
        assert_eq!(change.verdict(3.0, true), Verdict::NoChange);
    }

    #[test]
    fn a_clear_loss_of_throughput_is_a_regression_and_of_latency_an_improvement() {
        let ratios = [0.80, 0.79, 0.81, 0.80, 0.82, 0.78, 0.80, 0.81];
        let change = Change::of(&pairs_with(&ratios), 7).unwrap();
        assert!((change.change_pct + 20.0).abs() < 1.0, "{change:?}");
        assert!(change.ci_low_pct < change.change_pct && change.change_pct < change.ci_high_pct);
        assert_eq!(change.verdict(3.0, true), Verdict::Regressed);
        assert_eq!(change.verdict(3.0, false), Verdict::Improved);
        // A threshold beyond the interval hides it; one inside it leaves it undecided.
        assert_eq!(change.verdict(30.0, true), Verdict::NoChange);
        assert_eq!(
            change.verdict(change.ci_high_pct.abs() + 0.5, true),
            Verdict::Inconclusive
        );
    }

    #[test]
    fn noisy_pairs_are_inconclusive_and_say_how_many_pairs_would_do() {
        let ratios = [0.9, 1.1, 0.95, 1.08, 0.92, 1.05];
        let change = Change::of(&pairs_with(&ratios), 3).unwrap();
        assert_eq!(change.verdict(3.0, true), Verdict::Inconclusive);
        assert!(change.mde_pct > 3.0);
        let needed = change.pairs_needed(3.0);
        assert!(needed > ratios.len(), "{needed}");
        assert!(mde_log(change.sd_log, needed) <= (1.03f64).ln());
    }

    #[test]
    fn the_bootstrap_is_repeatable_for_a_seed() {
        let ratios = [0.97, 1.01, 0.99, 1.02, 0.98, 1.0, 0.96, 1.03];
        let a = Change::of(&pairs_with(&ratios), 42).unwrap();
        let b = Change::of(&pairs_with(&ratios), 42).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn an_estimate_over_rounds_has_its_median_inside_the_interval() {
        let e = Estimate::of(&[100.0, 104.0, 98.0, 0.0], 5).unwrap();
        assert_eq!((e.n, e.median), (3, 100.0));
        assert!(e.low >= 98.0 && e.high <= 104.0 && e.low < e.median && e.median < e.high);
        assert!(e.half_width_pct().unwrap() > 0.0);
        let one = Estimate::of(&[7.0], 5).unwrap();
        assert_eq!((one.low, one.high, one.half_width_pct()), (7.0, 7.0, None));
        // exp(ln 22560) is 22560 − 3.6e-12: the interval still holds the median exactly.
        // The mean of three equal logs may round up instead: CI saw 751.006588932908 outside
        // [751.0065889329082, 795.27...].
        for values in [
            [22_560.0; 3],
            [22_560.0, 22_560.0, 25_298.0],
            [751.006588932908, 751.006588932908, 795.2707287670507],
        ] {
            let e = Estimate::of(&values, 1).unwrap();
            assert_eq!(e.median, values[0]);
            assert!(e.low <= e.median && e.median <= e.high, "{e:?}");
        }
        assert!(Estimate::of(&[0.0, f64::NAN], 5).is_none());
    }

    #[test]
    fn unpaired_samples_separate_only_when_their_spreads_do() {
        let base = [100.0, 101.0, 99.0, 100.5];
        let far = Change::unpaired(&base, &[80.0, 81.0, 79.5, 80.5], 9).unwrap();
        assert!(!far.within_noise() && far.ci_high_pct < -15.0, "{far:?}");
        let near = Change::unpaired(&base, &[99.5, 101.5, 98.5, 100.0], 9).unwrap();
        assert!(near.within_noise(), "{near:?}");
        assert!(Change::unpaired(&base, &[90.0], 9).is_none());
    }

    #[test]
    fn unusable_pairs_are_left_out() {
        assert!(Change::of(&[(1.0, 2.0)], 0).is_none());
        let change = Change::of(&[(0.0, 1.0), (1.0, 1.0), (2.0, 2.0), (f64::NAN, 1.0)], 0);
        assert_eq!(change.unwrap().pairs, 2);
    }
}
