//! The capacity search as data in, decisions out: which rate to measure next, whether a step
//! meets the objective, where each round crossed it, and the capacity over the rounds. Nothing
//! here touches a socket or a clock, so every decision is tested on values.
//!
//! The search has two phases. The **ramp** steps the offered rate geometrically (×2 by
//! default) from a start rate until a step misses the objective (or, when the first one
//! misses, downwards until one meets it): that brackets the knee between the last rate that met
//! it and the first that did not. The **grid** then lays a few rates geometrically across that
//! bracket (from a little below the rate that met it to the rate that missed) and measures all
//! of them in every round, from low to high, a round stopping after two misses in a row (it
//! is past the knee), then bisects (geometrically) between its highest rate that met the
//! objective and the miss above it, a few times. Each round gives one capacity: its highest
//! rate that met the objective with every lower one meeting it too (conservative: the knee is
//! between it and the miss above, a gap the bisection made a few percent). The capacity is the
//! median of the rounds' with the interval of [`Estimate`] (the project's one statistics
//! implementation); each grid step gets its latency over the rounds the same way, and passes
//! only when the whole interval meets the objective.
//!
//! It is long because the search is one piece: the objective, the ramp, the grid, a round's
//! crossing and bisection, the summary over rounds and the ranking at capacity decide together,
//! and their tests, on values, are beside them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bootstrap::{Change, Estimate, Verdict as Paired};
use echo_loadgen::config::parse_duration;
use echo_loadgen::engine::IntervalFigures;

/// The share of the offered rate a step must achieve to pass.
pub const ACHIEVED_SHARE: f64 = 0.95;
/// Samples beyond the objective's percentile that a step needs: p99 needs 10,000 messages.
pub const SAMPLES_BEYOND: f64 = 100.0;
/// Misses in a row after which a round stops climbing the grid.
pub const MISSES_TO_STOP: usize = 2;
/// Seed of the bootstrap intervals (fixed, so the same steps give the same intervals).
const SEED: u64 = 0xCA9A_C17E;

/// A latency objective: a percentile and the most it may be (`p99=1ms`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// The quantile, 0.5 for p50, 0.99 for p99, 0.999 for p999.
    pub quantile: f64,
    /// The most the percentile may be, µs.
    pub limit_us: f64,
}

/// The highest quantile an objective may name (p99.99): beyond it a step needs millions of
/// messages.
pub const MAX_QUANTILE: f64 = 0.9999;

impl Objective {
    /// The percentile's name: `p50`, `p99`, `p999`.
    pub fn percentile_name(&self) -> String {
        let percent = format!("{:05.2}", self.quantile * 100.0);
        let (whole, decimals) = percent.split_once('.').unwrap_or((&percent, ""));
        format!("p{whole}{}", decimals.trim_end_matches('0'))
    }

    /// Messages a step needs for its percentile to rest on [`SAMPLES_BEYOND`] samples above
    /// it: 200 for p50, 10,000 for p99, 100,000 for p999.
    pub fn messages_needed(&self) -> u64 {
        (SAMPLES_BEYOND / (1.0 - self.quantile)).round() as u64
    }

    /// Whether one measurement of a step meets the objective.
    pub fn met_by(&self, step: &Step) -> bool {
        self.verdict(step) == Verdict::Met
    }

    /// What one measurement of a step says.
    pub fn verdict(&self, step: &Step) -> Verdict {
        if step.errors > 0 {
            Verdict::Errors
        } else if step.client_saturated {
            Verdict::ClientSaturated
        } else if step.achieved_rps < ACHIEVED_SHARE * step.offered_rps {
            Verdict::Behind
        } else if step.latency_us > self.limit_us {
            Verdict::TooSlow
        } else {
            Verdict::Met
        }
    }
}

impl fmt::Display for Objective {
    /// `p99 ≤ 1ms`, `p50 ≤ 200us`: the form it is written in.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.limit_us;
        let ms = us / 1000.0;
        if us >= 1000.0 && ms.fract() == 0.0 {
            write!(f, "{} ≤ {ms}ms", self.percentile_name())
        } else {
            write!(f, "{} ≤ {us}us", self.percentile_name())
        }
    }
}

impl FromStr for Objective {
    type Err = String;

    /// `pNN=DURATION`: `p50=200us`, `p99=1ms`, `p999=5ms` (also `p99.9=5ms`).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("invalid objective '{text}': {why} (examples: p99=1ms, p50=200us, p999=5ms)")
        };
        let (name, limit) = text.trim().split_once('=').ok_or_else(|| bad("no '='"))?;
        let digits = name
            .trim()
            .strip_prefix('p')
            .ok_or_else(|| bad("the percentile starts with p"))?;
        let quantile = if digits.contains('.') {
            digits.parse::<f64>().map(|p| p / 100.0)
        } else if digits.len() > 2 && digits.ends_with('0') {
            return Err(bad(
                "write the percentile without trailing zeros, as p99 or p999",
            ));
        } else if digits.len() >= 2 && digits.chars().all(|c| c.is_ascii_digit()) {
            format!("0.{digits}").parse::<f64>()
        } else {
            return Err(bad(
                "the percentile is two or more digits, as p50, p99, p999",
            ));
        }
        .map_err(|_| bad("the percentile is not a number"))?;
        if !(quantile > 0.0 && quantile <= MAX_QUANTILE) {
            return Err(bad("the percentile must be above p0 and at most p9999"));
        }
        let limit = parse_duration(limit).map_err(|e| bad(&e))?;
        if limit.is_zero() || limit > Duration::from_secs(3600) {
            return Err(bad("the limit must be above zero and at most 1h"));
        }
        Ok(Objective {
            quantile,
            limit_us: limit.as_secs_f64() * 1e6,
        })
    }
}

/// What one measurement of a step says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Achieved at least 95% of offered with the percentile within the limit.
    Met,
    /// The percentile exceeded the limit.
    TooSlow,
    /// Achieved less than 95% of the offered rate.
    Behind,
    /// Echo errors (a timeout, a reset, a mismatch...).
    Errors,
    /// The client, not the server, was the bottleneck: a rate the client cannot offer here.
    ClientSaturated,
}

/// One measurement of one offered rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Step {
    /// Messages per second asked for.
    pub offered_rps: f64,
    /// Messages echoed per second.
    pub achieved_rps: f64,
    /// The objective's percentile, µs (corrected for coordinated omission).
    pub latency_us: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Messages completed in the window.
    pub messages: u64,
    /// Errors of any kind.
    pub errors: u64,
    /// The client used its cores to the full: the step measured the client.
    pub client_saturated: bool,
    /// Seconds measured.
    pub duration_s: f64,
}

/// How the ramp ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Bracket {
    /// `met` met the objective and `missed` (above it) did not.
    Between {
        /// The highest rate that met it.
        met: f64,
        /// The lowest rate above `met` that did not.
        missed: f64,
    },
    /// Even the lowest rate allowed missed it: the capacity is below it.
    BelowMin {
        /// That rate.
        missed: f64,
    },
    /// The highest rate allowed met it: the capacity is at least that.
    AboveMax {
        /// That rate.
        met: f64,
    },
}

/// The bounds and shape of a search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The ramp's first rate, msg/s.
    pub start_rps: f64,
    /// The lowest rate the ramp goes down to.
    pub min_rps: f64,
    /// The highest rate the ramp goes up to.
    pub max_rps: f64,
    /// The ramp's factor between steps (above 1).
    pub factor: f64,
    /// Rates in the grid (at least 2).
    pub grid_steps: usize,
    /// Rounds over the grid (at least 1; 3 or more for an interval).
    pub rounds: usize,
    /// Bisections per round after its climb over the grid.
    pub refinements: usize,
    /// The gap (a ratio above 1) below which a round's bisection stops.
    pub resolution: f64,
    /// Steps a round may take beyond its grid, one grid ratio at a time: up when every grid
    /// rate met the objective, down when the lowest already missed, so that a round whose knee
    /// moved still gives a figure rather than a bound ([`Plan::beyond_next`]).
    #[serde(default = "default_beyond_grid")]
    pub beyond_grid: usize,
}

/// [`Plan::beyond_grid`] of a plan stored before rounds could step beyond their grids.
fn default_beyond_grid() -> usize {
    0
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            start_rps: 5_000.0,
            min_rps: 100.0,
            max_rps: 1_000_000.0,
            factor: 2.0,
            grid_steps: 6,
            rounds: 5,
            refinements: 2,
            resolution: 1.02,
            beyond_grid: 3,
        }
    }
}

impl Plan {
    /// Checks the plan's fields; `Err` is a one-line reason.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(positive(self.min_rps) && positive(self.max_rps) && positive(self.start_rps)) {
            return Err("the rates must be positive numbers".into());
        }
        if self.min_rps > self.max_rps {
            return Err(format!(
                "--min-rate {} is above --max-rate {}",
                self.min_rps, self.max_rps
            ));
        }
        if !(self.min_rps..=self.max_rps).contains(&self.start_rps) {
            return Err(format!(
                "--start-rate {} is not between --min-rate {} and --max-rate {}",
                self.start_rps, self.min_rps, self.max_rps
            ));
        }
        if !(self.factor.is_finite() && self.factor > 1.0) {
            return Err("the ramp's factor must be above 1".into());
        }
        if self.grid_steps < 2 {
            return Err("--steps must be at least 2".into());
        }
        if self.rounds == 0 {
            return Err("--rounds must be at least 1".into());
        }
        if !(self.resolution.is_finite() && self.resolution > 1.0) {
            return Err("the bisection's resolution must be a ratio above 1".into());
        }
        Ok(())
    }

    /// What the ramp does next, given the steps it measured so far (in order).
    pub fn ramp_next(&self, objective: &Objective, tried: &[Step]) -> RampNext {
        let Some(last) = tried.last() else {
            return RampNext::Measure(self.start_rps);
        };
        let highest_met = tried
            .iter()
            .filter(|s| objective.met_by(s))
            .map(|s| s.offered_rps)
            .reduce(f64::max);
        let lowest_missed_above = |floor: f64| {
            tried
                .iter()
                .filter(|s| !objective.met_by(s) && s.offered_rps > floor)
                .map(|s| s.offered_rps)
                .reduce(f64::min)
        };
        if objective.met_by(last) {
            if let Some(missed) = lowest_missed_above(last.offered_rps) {
                return RampNext::Done(Bracket::Between {
                    met: last.offered_rps,
                    missed,
                });
            }
            let up = last.offered_rps * self.factor;
            if last.offered_rps >= self.max_rps {
                return RampNext::Done(Bracket::AboveMax {
                    met: last.offered_rps,
                });
            }
            return RampNext::Measure(up.min(self.max_rps));
        }
        match highest_met {
            Some(met) if met < last.offered_rps => RampNext::Done(Bracket::Between {
                met,
                missed: last.offered_rps,
            }),
            _ => {
                if last.offered_rps <= self.min_rps {
                    return RampNext::Done(Bracket::BelowMin {
                        missed: last.offered_rps,
                    });
                }
                RampNext::Measure((last.offered_rps / self.factor).max(self.min_rps))
            }
        }
    }

    /// The next rate a round measures beyond `grid` (its steps so far in `round`): one grid
    /// ratio above the highest rate it measured when every step met the objective, one below
    /// the lowest when that one missed, within `[min_rps, max_rps]` and at most
    /// [`Plan::beyond_grid`] such steps; `None` once the round has a crossing inside what it
    /// measured (or may go no further).
    pub fn beyond_next(&self, objective: &Objective, grid: &[f64], round: &[Step]) -> Option<f64> {
        let (&first, &last) = (grid.first()?, grid.last()?);
        let ratio = grid.get(1).map(|second| second / first)?;
        let beyond = round
            .iter()
            .filter(|s| !within_grid(grid, s.offered_rps))
            .count();
        if beyond >= self.beyond_grid || !ratio.is_finite() || ratio <= 1.0 {
            return None;
        }
        let sorted = by_rate(round);
        let (lowest, highest) = (sorted.first()?, sorted.last()?);
        match sorted.iter().position(|s| !objective.met_by(s)) {
            // Every grid rate met it (a round that stopped early has a miss).
            None if highest.offered_rps >= last * (1.0 - 1e-9) => {
                let up = highest.offered_rps * ratio;
                (highest.offered_rps < self.max_rps).then(|| up.min(self.max_rps))
            }
            Some(0) => {
                let down = lowest.offered_rps / ratio;
                (lowest.offered_rps > self.min_rps).then(|| down.max(self.min_rps))
            }
            _ => None,
        }
    }

    /// The grid's rates for a bracket, ascending: geometric from a fifth below the rate that
    /// met the objective to the rate that missed it. Empty when the ramp found no bracket.
    pub fn grid(&self, bracket: Bracket) -> Vec<f64> {
        let Bracket::Between { met, missed } = bracket else {
            return Vec::new();
        };
        let low = (met * 0.8).max(self.min_rps.min(met));
        let n = self.grid_steps.max(2);
        let ratio = (missed / low).powf(1.0 / (n - 1) as f64);
        (0..n).map(|i| low * ratio.powi(i as i32)).collect()
    }
}

/// The ramp's next move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RampNext {
    /// Measure this rate.
    Measure(f64),
    /// The ramp is over.
    Done(Bracket),
}

/// Whether a round over the grid should stop climbing: after [`MISSES_TO_STOP`] misses in a
/// row it is past the knee.
pub fn round_is_past_knee(objective: &Objective, round: &[Step]) -> bool {
    round.len() >= MISSES_TO_STOP
        && round[round.len() - MISSES_TO_STOP..]
            .iter()
            .all(|s| !objective.met_by(s))
}

/// Where one round crossed the objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "rps")]
pub enum Crossing {
    /// The highest rate the round measured that met the objective with every lower rate it
    /// measured meeting it too; the next rate it measured above missed.
    At(f64),
    /// Its lowest step already missed: below every rate it measured (the grid's lowest, or as
    /// far below it as the round could step).
    BelowGrid(f64),
    /// Every step met it: at least the highest it measured.
    AboveGrid(f64),
}

impl Crossing {
    /// The rate, where it is a figure to take a median of (not a bound).
    pub fn rate(self) -> Option<f64> {
        match self {
            Crossing::At(r) => Some(r),
            _ => None,
        }
    }
}

/// A round's steps sorted by rate.
fn by_rate(round: &[Step]) -> Vec<Step> {
    let mut sorted = round.to_vec();
    sorted.sort_by(|a, b| a.offered_rps.total_cmp(&b.offered_rps));
    sorted
}

/// Where a round's steps (in any order) cross the objective: the step below the lowest that
/// missed. Conservative: the knee lies between it and that miss, and the round's bisection
/// ([`refine_next`]) has made that gap small.
pub fn crossing(objective: &Objective, round: &[Step]) -> Option<Crossing> {
    let sorted = by_rate(round);
    let first = sorted.first()?;
    match sorted.iter().position(|s| !objective.met_by(s)) {
        None => Some(Crossing::AboveGrid(sorted.last()?.offered_rps)),
        Some(0) => Some(Crossing::BelowGrid(first.offered_rps)),
        Some(k) => Some(Crossing::At(sorted[k - 1].offered_rps)),
    }
}

/// Whether `rate` lies within `grid`'s span (ascending, not empty), to rounding.
fn within_grid(grid: &[f64], rate: f64) -> bool {
    rate >= grid[0] * (1.0 - 1e-9) && rate <= grid[grid.len() - 1] * (1.0 + 1e-9)
}

/// The next rate a round bisects (geometrically) between its crossing and the miss above it,
/// once it climbed past the knee: `None` when `done` bisections were made or the gap is within
/// `resolution` (a ratio above 1).
pub fn refine_next(
    objective: &Objective,
    round: &[Step],
    done: usize,
    refinements: usize,
    resolution: f64,
) -> Option<f64> {
    if done >= refinements {
        return None;
    }
    let sorted = by_rate(round);
    let k = sorted.iter().position(|s| !objective.met_by(s))?;
    if k == 0 {
        return None;
    }
    let (met, missed) = (sorted[k - 1].offered_rps, sorted[k].offered_rps);
    (missed / met > resolution).then(|| (met * missed).sqrt())
}

/// One grid rate over the rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    /// The rate offered.
    pub offered_rps: f64,
    /// Rounds that measured it.
    pub rounds: usize,
    /// Achieved rate over the rounds.
    pub achieved_rps: Option<Estimate>,
    /// The objective's percentile over the rounds, µs.
    pub latency_us: Option<Estimate>,
    /// Median latency over the rounds, µs.
    pub p50_us: Option<Estimate>,
    /// p99 over the rounds, µs.
    pub p99_us: Option<Estimate>,
    /// p99.9 over the rounds, µs.
    pub p999_us: Option<Estimate>,
    /// Whether the step passes: every round without errors or a saturated client, the median
    /// achieved rate at least 95% of offered, and the whole interval of the percentile within
    /// the limit.
    pub passes: bool,
}

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// The objective.
    pub objective: Objective,
    /// The median of the rounds' crossings, msg/s (absent when no round crossed in the grid).
    pub capacity_rps: Option<f64>,
    /// Its 95% interval over the rounds, `[low, high]`.
    pub capacity_interval: Option<[f64; 2]>,
    /// Half the interval's width as a percentage of the capacity.
    pub half_width_pct: Option<f64>,
    /// The highest grid rate that passes over the rounds, with every rate below it passing.
    pub passing_rps: Option<f64>,
    /// The median over the rounds of the gap between a round's crossing and the miss above
    /// it, %: how far above its figure a round's knee may lie.
    pub gap_pct: Option<f64>,
    /// How the ramp ended.
    pub bracket: Bracket,
    /// Every round's crossing.
    pub crossings: Vec<Option<Crossing>>,
    /// The grid's rates over the rounds: the curve.
    pub steps: Vec<StepSummary>,
    /// What a reader must know to trust the figure.
    pub warnings: Vec<String>,
}

/// The search's result from its ramp's bracket and the rounds over the grid (each round's
/// steps ascending by rate; a round may stop early).
pub fn summarise(
    objective: &Objective,
    bracket: Bracket,
    grid: &[f64],
    rounds: &[Vec<Step>],
) -> Capacity {
    let crossings: Vec<Option<Crossing>> = rounds.iter().map(|r| crossing(objective, r)).collect();
    let rates: Vec<f64> = crossings
        .iter()
        .flatten()
        .filter_map(|c| c.rate())
        .collect();
    let gaps: Vec<f64> = rounds
        .iter()
        .filter_map(|r| {
            let sorted = by_rate(r);
            let k = sorted.iter().position(|s| !objective.met_by(s))?;
            (k > 0).then(|| 100.0 * (sorted[k].offered_rps / sorted[k - 1].offered_rps - 1.0))
        })
        .collect();
    let estimate = Estimate::of(&rates, SEED);
    let mut warnings = Vec::new();
    let count = |f: &dyn Fn(&Crossing) -> bool| crossings.iter().flatten().filter(|c| f(c)).count();
    let below = count(&|c| matches!(c, Crossing::BelowGrid(_)));
    let above = count(&|c| matches!(c, Crossing::AboveGrid(_)));
    let outside = if grid.is_empty() {
        0
    } else {
        count(&|c| c.rate().is_some_and(|r| !within_grid(grid, r)))
    };
    if below > 0 {
        warnings.push(format!(
            "{below} of {} round(s) missed the objective at every rate down to the lowest they \
             measured: their knee is below it, a bound left out of the median",
            rounds.len()
        ));
    }
    if above > 0 {
        warnings.push(format!(
            "{above} of {} round(s) met the objective at every rate they measured: their knee \
             is above it, a bound left out of the median",
            rounds.len()
        ));
    }
    if outside > 0 {
        warnings.push(format!(
            "{outside} of {} round(s) crossed outside the grid: the knee moved from where the \
             ramp found it, and those rounds stepped beyond the grid to find it",
            rounds.len()
        ));
    }
    let saturated = rounds
        .iter()
        .flatten()
        .filter(|s| s.client_saturated)
        .count();
    if saturated > 0 {
        warnings.push(format!(
            "the client saturated in {saturated} step(s): above those rates it measures the client"
        ));
    }
    match bracket {
        Bracket::BelowMin { missed } => warnings.push(format!(
            "even {missed:.0} msg/s missed the objective: the capacity is below it"
        )),
        Bracket::AboveMax { met } => warnings.push(format!(
            "{met:.0} msg/s, the highest rate allowed, met the objective: the capacity is at \
             least that"
        )),
        Bracket::Between { .. } => {}
    }
    let steps: Vec<StepSummary> = grid
        .iter()
        .map(|&rate| summarise_step(objective, rate, rounds))
        .collect();
    let passing_rps = steps
        .iter()
        .take_while(|s| s.passes)
        .last()
        .map(|s| s.offered_rps);
    Capacity {
        objective: *objective,
        capacity_rps: estimate.map(|e| e.median),
        capacity_interval: estimate.map(|e| [e.low, e.high]),
        half_width_pct: estimate.and_then(|e| e.half_width_pct()),
        passing_rps,
        gap_pct: (!gaps.is_empty()).then(|| crate::bootstrap::median_of(&gaps)),
        bracket,
        crossings,
        steps,
        warnings,
    }
}

/// One grid rate over the rounds that measured it.
fn summarise_step(objective: &Objective, rate: f64, rounds: &[Vec<Step>]) -> StepSummary {
    let measured: Vec<&Step> = rounds
        .iter()
        .flatten()
        .filter(|s| (s.offered_rps - rate).abs() <= rate * 1e-9)
        .collect();
    let of = |f: fn(&Step) -> f64| {
        let values: Vec<f64> = measured.iter().map(|s| f(s)).collect();
        Estimate::of(&values, SEED)
    };
    let achieved = of(|s| s.achieved_rps);
    let latency = of(|s| s.latency_us);
    let clean = measured
        .iter()
        .all(|s| s.errors == 0 && !s.client_saturated);
    let passes = !measured.is_empty()
        && clean
        && achieved.is_some_and(|a| a.median >= ACHIEVED_SHARE * rate)
        && latency.is_some_and(|l| l.high <= objective.limit_us);
    StepSummary {
        offered_rps: rate,
        rounds: measured.len(),
        achieved_rps: achieved,
        latency_us: latency,
        p50_us: of(|s| s.p50_us),
        p99_us: of(|s| s.p99_us),
        p999_us: of(|s| s.p999_us),
        passes,
    }
}

/// How long a step at `rate` measures: long enough for `messages` messages, within
/// `[shortest, longest]`.
pub fn step_duration(rate: f64, messages: u64, shortest: Duration, longest: Duration) -> Duration {
    let needed = Duration::from_secs_f64((messages as f64 / rate.max(1e-9)).min(1e6));
    needed.clamp(shortest, longest.max(shortest))
}

/// One model's search, as run.json stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCapacity {
    /// The model.
    pub model: String,
    /// What the search found (absent when it failed before its ramp ended).
    pub capacity: Option<Capacity>,
    /// The ramp's steps.
    pub ramp: Vec<Step>,
    /// The grid's rates.
    pub grid: Vec<f64>,
    /// Each round's steps, in the order measured.
    pub rounds: Vec<Vec<Step>>,
    /// Why the search stopped early (a server that did not start, a step that measured
    /// nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The latency over time of the steps on each side of every round's crossing
    /// ([`knee_sides`]), rounds in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timelines: Vec<StepTimeline>,
}

/// One step's latency over time. The suite keeps those of the steps on each side of a round's
/// crossing: whether the last rate that met the objective did so steadily or between bursts,
/// and how the first that missed it went wrong (a queue that grows all through the window, or
/// a few stalls), is what the curve's one point per step cannot show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTimeline {
    /// The round (0-based).
    pub round: usize,
    /// The step's offered rate, msg/s, as its [`Step`] has it.
    pub offered_rps: f64,
    /// Whether the step met the objective.
    pub met: bool,
    /// Its figures per interval, in order.
    pub intervals: Vec<IntervalFigures>,
}

/// The offered rates of a round's steps on each side of its [`crossing`], ascending: the
/// crossing and the miss above it; only the lowest step when it already missed, only the
/// highest when every step met the objective.
pub fn knee_sides(objective: &Objective, round: &[Step]) -> Vec<f64> {
    let sorted = by_rate(round);
    match sorted.iter().position(|s| !objective.met_by(s)) {
        None => sorted.last().map(|s| s.offered_rps).into_iter().collect(),
        Some(0) => vec![sorted[0].offered_rps],
        Some(k) => vec![sorted[k - 1].offered_rps, sorted[k].offered_rps],
    }
}

impl ModelCapacity {
    /// The round's figure in round `r`, if it crossed inside the grid.
    pub fn round_figure(&self, r: usize) -> Option<f64> {
        let c = self.capacity.as_ref()?;
        c.crossings.get(r).copied().flatten()?.rate()
    }

    /// How many rounds crossed inside the grid: what its median and interval rest on.
    pub fn figures(&self) -> usize {
        self.capacity.as_ref().map_or(0, |c| {
            c.crossings
                .iter()
                .filter(|x| x.and_then(Crossing::rate).is_some())
                .count()
        })
    }
}

/// How one model stands against the best at capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// The model.
    pub model: String,
    /// Its capacity (median over rounds) and interval.
    pub capacity_rps: Option<f64>,
    /// Its interval.
    pub interval: Option<[f64; 2]>,
    /// Its capacity over the best's, paired by round (absent for the best itself, and where
    /// fewer than two rounds pair).
    pub against_best: Option<Change>,
    /// What the paired ratio says, at ±[`TIE_PCT`]: no change is a tie.
    pub verdict: Option<Paired>,
    /// Whether it is the best: the highest median resting on two rounds or more (where any
    /// does), which every other model is compared with.
    pub best: bool,
    /// Whether it belongs to the leading group: the best, and every model the data does not
    /// separate from it.
    pub leading: bool,
    /// A bound rather than a figure: "< 5000" or "≥ 1000000".
    pub bound: Option<String>,
}

/// Connections of the suite's capacity steps.
pub const SUITE_CONNECTIONS: usize = 256;
/// Bytes per message of the suite's capacity steps.
pub const SUITE_PAYLOAD: usize = 64;

/// Two models within this many percent of each other at capacity (the whole paired interval)
/// are tied.
pub const TIE_PCT: f64 = 5.0;
/// Seed of the paired bootstrap.
const PAIRED_SEED: u64 = 0x00CA_9AC1;

/// The models ranked at capacity, best first: each against the best, paired by round.
pub fn ranking(searches: &[ModelCapacity]) -> Vec<Standing> {
    let mut order: Vec<&ModelCapacity> = searches.iter().collect();
    let figure = |s: &ModelCapacity| s.capacity.as_ref().and_then(|c| c.capacity_rps);
    order.sort_by(|a, b| {
        figure(b)
            .unwrap_or(0.0)
            .total_cmp(&figure(a).unwrap_or(0.0))
    });
    // The best is the highest median that rests on two rounds' figures or more, where any
    // does: a median of one round (the others beyond the grid) is compared with it instead.
    let best = order
        .iter()
        .copied()
        .find(|m| m.figures() >= 2)
        .or_else(|| order.first().copied().filter(|b| figure(b).is_some()));
    order
        .iter()
        .map(|s| {
            let c = s.capacity.as_ref();
            let rounds = s.rounds.len();
            let against_best = best.filter(|b| b.model != s.model).and_then(|b| {
                let pairs: Vec<(f64, f64)> = (0..rounds.max(b.rounds.len()))
                    .filter_map(|r| Some((b.round_figure(r)?, s.round_figure(r)?)))
                    .collect();
                Change::of(&pairs, PAIRED_SEED)
            });
            let verdict = against_best.as_ref().map(|ch| ch.verdict(TIE_PCT, true));
            let is_best = best.is_some_and(|b| b.model == s.model);
            // Fewer than two rounds that both crossed inside their grids: no paired ratio.
            // Only intervals that lie apart then separate the model from the best; a model the
            // data cannot compare is not left out of the leading group.
            let unpaired_tie = verdict.is_none() && best.is_some_and(|b| !intervals_apart(b, s));
            let leading = is_best
                || (figure(s).is_some()
                    && (matches!(verdict, Some(Paired::NoChange | Paired::Inconclusive))
                        || unpaired_tie));
            let bound = c.and_then(|c| match c.bracket {
                Bracket::BelowMin { missed } => Some(format!("< {missed:.0}")),
                Bracket::AboveMax { met } => Some(format!("≥ {met:.0}")),
                Bracket::Between { .. } => None,
            });
            Standing {
                model: s.model.clone(),
                capacity_rps: figure(s),
                interval: c.and_then(|c| c.capacity_interval),
                against_best,
                verdict,
                best: is_best,
                leading,
                bound,
            }
        })
        .collect()
}

/// Whether `other`'s capacity interval lies wholly below `best`'s, both from at least two
/// rounds' figures (one round's "interval" is a point): what separates two models that no two
/// rounds pair.
fn intervals_apart(best: &ModelCapacity, other: &ModelCapacity) -> bool {
    let interval = |m: &ModelCapacity| {
        (m.figures() >= 2)
            .then(|| m.capacity.as_ref()?.capacity_interval)
            .flatten()
    };
    matches!((interval(best), interval(other)), (Some([low, _]), Some([_, high])) if high < low)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p99_1ms() -> Objective {
        "p99=1ms".parse().unwrap()
    }

    /// A step of a server that serves `capacity` msg/s and whose p99 is 200 µs below it and
    /// grows without bound past it.
    fn step_of(capacity: f64, rate: f64) -> Step {
        let achieved = rate.min(capacity);
        let latency = if rate < capacity * 0.9 {
            200.0
        } else {
            200.0 * (rate / (capacity * 0.9)).powi(20)
        };
        Step {
            offered_rps: rate,
            achieved_rps: achieved,
            latency_us: latency,
            p50_us: latency / 4.0,
            p99_us: latency,
            p999_us: latency * 2.0,
            messages: 10_000,
            ..Step::default()
        }
    }

    #[test]
    fn objectives_parse_and_say_how_many_messages_they_need() {
        let o = p99_1ms();
        assert_eq!((o.quantile, o.limit_us), (0.99, 1000.0));
        assert_eq!(o.messages_needed(), 10_000);
        assert_eq!(o.percentile_name(), "p99");
        let p999: Objective = "p999=5ms".parse().unwrap();
        assert_eq!((p999.quantile, p999.messages_needed()), (0.999, 100_000));
        assert_eq!(p999.percentile_name(), "p999");
        let dotted: Objective = "p99.9=500us".parse().unwrap();
        assert!((dotted.quantile - 0.999).abs() < 1e-12 && dotted.limit_us == 500.0);
        let p50: Objective = "p50=200us".parse().unwrap();
        assert_eq!(
            (p50.messages_needed(), p50.percentile_name().as_str()),
            (200, "p50")
        );
        assert_eq!(o.to_string(), "p99 ≤ 1ms");
        for name in ["p05", "p50", "p90", "p99", "p999", "p9999"] {
            let o: Objective = format!("{name}=1ms").parse().unwrap();
            assert_eq!(o.percentile_name(), name);
        }
        for bad in [
            "p99", "99=1ms", "p9=1ms", "p99=", "p99=0ms", "p100=1ms", "px=1ms", "p99=2h",
        ] {
            let err = bad.parse::<Objective>().unwrap_err();
            assert!(
                err.starts_with("invalid objective") && !err.contains('\n'),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_knee_sides_are_the_crossing_and_the_miss_above_it_in_any_order() {
        let o = p99_1ms();
        let round: Vec<Step> = [16_000.0, 8_000.0, 12_000.0, 11_000.0, 10_000.0]
            .iter()
            .map(|&rate| step_of(11_500.0, rate))
            .collect();
        // 10,000 is under 0.9 × 11,500 (p99 200 µs); 11,000 is 200 µs × (11,000/10,350)^20,
        // 676 µs: met; 12,000 misses.
        assert_eq!(knee_sides(&o, &round), vec![11_000.0, 12_000.0]);
        assert_eq!(
            crossing(&o, &round),
            Some(Crossing::At(knee_sides(&o, &round)[0]))
        );
        let all_missed: Vec<Step> = [40_000.0, 20_000.0]
            .iter()
            .map(|&rate| step_of(1_000.0, rate))
            .collect();
        assert_eq!(knee_sides(&o, &all_missed), vec![20_000.0]);
        let all_met: Vec<Step> = [2_000.0, 4_000.0]
            .iter()
            .map(|&rate| step_of(1e6, rate))
            .collect();
        assert_eq!(knee_sides(&o, &all_met), vec![4_000.0]);
        assert!(knee_sides(&o, &[]).is_empty());
    }

    #[test]
    fn a_step_passes_only_on_time_in_full_and_clean() {
        let o = p99_1ms();
        let good = Step {
            offered_rps: 1000.0,
            achieved_rps: 960.0,
            latency_us: 900.0,
            ..Step::default()
        };
        assert_eq!(o.verdict(&good), Verdict::Met);
        let slow = Step {
            latency_us: 1001.0,
            ..good
        };
        assert_eq!(o.verdict(&slow), Verdict::TooSlow);
        let behind = Step {
            achieved_rps: 940.0,
            ..good
        };
        assert_eq!(o.verdict(&behind), Verdict::Behind);
        let broken = Step { errors: 1, ..good };
        assert_eq!(o.verdict(&broken), Verdict::Errors);
        let client = Step {
            client_saturated: true,
            ..good
        };
        assert_eq!(o.verdict(&client), Verdict::ClientSaturated);
    }

    /// Runs the ramp against `capacity` and returns the rates it measured and its bracket.
    fn ramp(plan: &Plan, capacity: f64) -> (Vec<f64>, Bracket) {
        let o = p99_1ms();
        let mut tried = Vec::new();
        for _ in 0..64 {
            match plan.ramp_next(&o, &tried) {
                RampNext::Measure(rate) => tried.push(step_of(capacity, rate)),
                RampNext::Done(bracket) => {
                    return (tried.iter().map(|s| s.offered_rps).collect(), bracket);
                }
            }
        }
        panic!("the ramp did not end");
    }

    #[test]
    fn the_ramp_doubles_up_to_the_knee_and_halves_down_to_it() {
        let plan = Plan::default();
        let (rates, bracket) = ramp(&plan, 30_000.0);
        assert_eq!(rates, [5_000.0, 10_000.0, 20_000.0, 40_000.0]);
        assert_eq!(
            bracket,
            Bracket::Between {
                met: 20_000.0,
                missed: 40_000.0
            }
        );
        let (rates, bracket) = ramp(&plan, 1_500.0);
        assert_eq!(rates, [5_000.0, 2_500.0, 1_250.0]);
        assert_eq!(
            bracket,
            Bracket::Between {
                met: 1_250.0,
                missed: 2_500.0
            }
        );
        let (_, bracket) = ramp(&plan, 10.0);
        assert_eq!(bracket, Bracket::BelowMin { missed: 100.0 });
        let (rates, bracket) = ramp(&plan, 1e9);
        assert_eq!(bracket, Bracket::AboveMax { met: 1_000_000.0 });
        assert_eq!(*rates.last().unwrap(), 1_000_000.0);
    }

    #[test]
    fn the_grid_spans_the_bracket_geometrically() {
        let plan = Plan::default();
        let grid = plan.grid(Bracket::Between {
            met: 10_000.0,
            missed: 20_000.0,
        });
        assert_eq!(grid.len(), 6);
        assert!((grid[0] - 8_000.0).abs() < 1e-6);
        assert!((grid[5] - 20_000.0).abs() < 1e-6);
        let ratios: Vec<f64> = grid.windows(2).map(|w| w[1] / w[0]).collect();
        assert!(
            ratios
                .iter()
                .all(|r| (r - ratios[0]).abs() < 1e-9 && *r > 1.0)
        );
        assert!(plan.grid(Bracket::AboveMax { met: 5.0 }).is_empty());
    }

    #[test]
    fn a_round_crosses_below_its_first_miss_and_bisects_towards_it() {
        let o = p99_1ms();
        let at = |rate: f64, latency: f64| Step {
            offered_rps: rate,
            achieved_rps: rate,
            latency_us: latency,
            ..Step::default()
        };
        let all_met = [
            at(8_000.0, 600.0),
            at(10_000.0, 800.0),
            at(12_000.0, 1000.0),
        ];
        assert_eq!(crossing(&o, &all_met), Some(Crossing::AboveGrid(12_000.0)));
        assert_eq!(refine_next(&o, &all_met, 0, 2, 1.02), None);
        // Measured out of order (a bisection step last): sorted by rate, the crossing is the
        // rate below the first miss, even when a higher one met the objective by luck.
        let round = [
            at(8_000.0, 600.0),
            at(12_000.0, 3000.0),
            at(14_000.0, 900.0),
            at(10_000.0, 800.0),
        ];
        assert_eq!(crossing(&o, &round), Some(Crossing::At(10_000.0)));
        let next = refine_next(&o, &round, 0, 2, 1.02).unwrap();
        assert!((next - (10_000.0f64 * 12_000.0).sqrt()).abs() < 1e-6);
        assert_eq!(refine_next(&o, &round, 2, 2, 1.02), None);
        assert_eq!(
            refine_next(&o, &round, 0, 2, 1.3),
            None,
            "the gap is within 30%"
        );
        let broken = [
            Step {
                errors: 3,
                ..at(8_000.0, 100.0)
            },
            at(10_000.0, 800.0),
        ];
        assert_eq!(crossing(&o, &broken), Some(Crossing::BelowGrid(8_000.0)));
        assert_eq!(refine_next(&o, &broken, 0, 2, 1.02), None);
        assert_eq!(crossing(&o, &[]), None);
        let miss = at(12_000.0, 3000.0);
        assert!(round_is_past_knee(&o, &[all_met[0], miss, miss]));
        assert!(!round_is_past_knee(&o, &[miss, all_met[0]]));
    }

    /// One round against a server of `capacity`: the climb over `grid`, then the bisection.
    fn round_against(o: &Objective, plan: &Plan, grid: &[f64], capacity: f64) -> Vec<Step> {
        let mut round = Vec::new();
        for &rate in grid {
            round.push(step_of(capacity, rate));
            if round_is_past_knee(o, &round) {
                break;
            }
        }
        while let Some(rate) = plan.beyond_next(o, grid, &round) {
            round.push(step_of(capacity, rate));
        }
        for done in 0.. {
            match refine_next(o, &round, done, plan.refinements, plan.resolution) {
                Some(rate) => round.push(step_of(capacity, rate)),
                None => break,
            }
        }
        round
    }

    #[test]
    fn the_capacity_of_a_known_server_is_found_with_an_interval_over_rounds() {
        let o = p99_1ms();
        let plan = Plan::default();
        let (_, bracket) = ramp(&plan, 30_000.0);
        let grid = plan.grid(bracket);
        // Five rounds of a server whose capacity wobbles by ±2%.
        let rounds: Vec<Vec<Step>> = [1.0, 0.98, 1.02, 0.99, 1.01]
            .iter()
            .map(|wobble| round_against(&o, &plan, &grid, 30_000.0 * wobble))
            .collect();
        let capacity = summarise(&o, bracket, &grid, &rounds);
        let found = capacity.capacity_rps.unwrap();
        let [low, high] = capacity.capacity_interval.unwrap();
        // The latency passes 1 ms at 0.9 × 5^(1/20) of the capacity (200 · x^20 = 1000); the
        // rounds' figures lie below it, within the bisection's gap.
        let theory = 30_000.0 * 0.9 * 5f64.powf(1.0 / 20.0);
        let gap = capacity.gap_pct.unwrap();
        assert!(gap > 0.0 && gap < 6.0, "{gap}");
        assert!(
            found < theory * 1.02 && found > theory * 0.9,
            "{found} vs {theory}"
        );
        assert!(
            low <= found && found <= high * 1.000_001 && high / low < 1.1,
            "{found}: {low}..{high}"
        );
        assert!(capacity.warnings.is_empty(), "{:?}", capacity.warnings);
        let passing = capacity.passing_rps.unwrap();
        assert!(
            passing <= found * 1.01 && passing > found * 0.7,
            "{passing}"
        );
        // Rates past the knee are summarised from the rounds that reached them, and fail.
        assert!(!capacity.steps.last().unwrap().passes);
        assert!(capacity.steps[0].passes && capacity.steps[0].rounds == 5);
    }

    #[test]
    fn a_round_whose_knee_moved_out_of_its_grid_steps_beyond_it_for_a_figure() {
        let o = p99_1ms();
        let plan = Plan::default();
        let (_, bracket) = ramp(&plan, 30_000.0);
        let grid = plan.grid(bracket);
        let ratio = grid[1] / grid[0];
        let theory = |capacity: f64| capacity * 0.9 * 5f64.powf(1.0 / 20.0);
        // One round as the ramp saw the server, one where it served 60% more (every grid rate
        // met: the grid ends at the ramp's miss, 40,000), one where it served 60% less (the
        // lowest grid rate, 16,000, missed).
        let rounds: Vec<Vec<Step>> = [1.0, 1.6, 0.4]
            .iter()
            .map(|f| round_against(&o, &plan, &grid, 30_000.0 * f))
            .collect();
        let capacity = summarise(&o, bracket, &grid, &rounds);
        let figures: Vec<f64> = capacity
            .crossings
            .iter()
            .map(|c| c.unwrap().rate().unwrap())
            .collect();
        assert!(
            figures[1] > grid[grid.len() - 1] && figures[2] < grid[0],
            "{figures:?}"
        );
        for (figure, f) in figures.iter().zip([1.0, 1.6, 0.4]) {
            let knee = theory(30_000.0 * f);
            assert!(
                *figure <= knee && *figure > knee * 0.85,
                "{figure} vs {knee}"
            );
        }
        assert_eq!(capacity.capacity_rps, Some(figures[0]));
        assert!(
            capacity
                .warnings
                .iter()
                .any(|w| w.starts_with("2 of 3 round(s) crossed outside")),
            "{:?}",
            capacity.warnings
        );
        // Beyond the grid a round moves one grid ratio a step, at most `beyond_grid` steps.
        let above = &rounds[1];
        let beyond: Vec<f64> = above
            .iter()
            .map(|s| s.offered_rps)
            .filter(|&r| r > grid[grid.len() - 1] * 1.000_001)
            .collect();
        assert!(
            (beyond[0] / grid[grid.len() - 1] - ratio).abs() < 1e-9,
            "{beyond:?}"
        );
        let far = round_against(&o, &plan, &grid, 30_000.0 * 10.0);
        assert_eq!(
            far.iter()
                .filter(|s| s.offered_rps > grid[grid.len() - 1] * 1.000_001)
                .count(),
            plan.beyond_grid
        );
        assert!(matches!(crossing(&o, &far), Some(Crossing::AboveGrid(_))));
        // Never below the plan's floor nor above its ceiling, and not at all when told so.
        let floor = Plan {
            min_rps: grid[0] / ratio * 1.01,
            ..plan
        };
        let low = round_against(&o, &floor, &grid, 1_000.0);
        assert!(
            low.iter()
                .all(|s| s.offered_rps >= floor.min_rps * (1.0 - 1e-9))
        );
        assert_eq!(
            low.len(),
            3,
            "two misses on the grid, one step down to the floor"
        );
        let none = Plan {
            beyond_grid: 0,
            ..plan
        };
        assert_eq!(
            round_against(&o, &none, &grid, 1_000.0).len(),
            MISSES_TO_STOP
        );
    }

    #[test]
    fn a_lucky_round_does_not_make_a_step_pass() {
        let o = p99_1ms();
        let at = |latency: f64| Step {
            offered_rps: 1000.0,
            achieved_rps: 1000.0,
            latency_us: latency,
            ..Step::default()
        };
        // One round far over the limit: the median sits under it, the interval does not.
        let rounds = vec![vec![at(800.0)], vec![at(3000.0)], vec![at(900.0)]];
        let summary = summarise_step(&o, 1000.0, &rounds);
        assert_eq!(summary.rounds, 3);
        assert!(summary.latency_us.unwrap().median <= 1000.0);
        assert!(!summary.passes);
        let steady = vec![vec![at(800.0)], vec![at(820.0)], vec![at(790.0)]];
        assert!(summarise_step(&o, 1000.0, &steady).passes);
    }

    #[test]
    fn a_step_lasts_long_enough_for_its_percentile() {
        let (short, long) = (Duration::from_millis(300), Duration::from_secs(10));
        assert_eq!(
            step_duration(10_000.0, 10_000, short, long),
            Duration::from_secs(1)
        );
        assert_eq!(step_duration(1e6, 10_000, short, long), short);
        assert_eq!(step_duration(10.0, 10_000, short, long), long);
    }

    #[test]
    fn plans_outside_their_bounds_are_refused() {
        assert!(Plan::default().validate().is_ok());
        let bad = [
            Plan {
                min_rps: 10.0,
                max_rps: 5.0,
                start_rps: 7.0,
                ..Plan::default()
            },
            Plan {
                start_rps: 50.0,
                ..Plan::default()
            },
            Plan {
                factor: 1.0,
                ..Plan::default()
            },
            Plan {
                grid_steps: 1,
                ..Plan::default()
            },
            Plan {
                rounds: 0,
                ..Plan::default()
            },
        ];
        for plan in bad {
            assert!(plan.validate().is_err(), "{plan:?}");
        }
    }
}
