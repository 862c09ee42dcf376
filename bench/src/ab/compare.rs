//! `echo-bench compare OLD NEW`: two stored suite runs side by side, in `ab`'s table.
//!
//! Points are matched on every parameter (transport, workload, model, connections, payload,
//! rate and handler work). Two runs made at different times are not paired: whatever the machine was
//! doing differs between them, so a change here is only a lead to check with `ab`. Where both
//! runs measured a point in several rounds, the change gets an unpaired bootstrap interval (the
//! same resampling as `ab`'s), its verdict is judged on that interval, and a change whose
//! interval holds zero is said to be within noise. Where either side has one sample there is no
//! interval: the verdict compares the point estimate with the threshold, and says so. The
//! warnings say when the runs come from different machines or settings.

use std::collections::BTreeMap;
use std::path::Path;

use echo_cli::{EXIT_FAILURE, EXIT_SUCCESS, EXIT_USAGE};

use super::{AbReport, BenchmarkResult, BenchmarkSpec, Change, Metric, MetricResult, Verdict};
use echo_analysis::bootstrap::median_of;
use echo_analysis::run::{PointResult, SuiteRun};

/// The metrics a suite run stores for every point.
const METRICS: [Metric; 3] = [Metric::Throughput, Metric::P50, Metric::P99];

/// Reads a suite's `run.json` (or a run folder holding one).
pub fn read_run(path: &Path) -> Result<SuiteRun, String> {
    let file = if path.is_dir() {
        path.join("run.json")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    SuiteRun::from_json(&text)
        .map_err(|why| format!("{} is not a suite run.json: {why}", file.display()))
}

/// Why two runs cannot be compared fairly, one warning each.
pub fn differences(old: &SuiteRun, new: &SuiteRun) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut differ = |what: &str, a: String, b: String| {
        if a != b {
            warnings.push(format!("different {what}: {a} vs {b}"));
        }
    };
    differ("hosts", old.meta.host.clone(), new.meta.host.clone());
    differ(
        "CPUs",
        old.meta.cpu_model.clone(),
        new.meta.cpu_model.clone(),
    );
    differ(
        "core counts",
        old.meta.cores.to_string(),
        new.meta.cores.to_string(),
    );
    differ("kernels", old.meta.kernel.clone(), new.meta.kernel.clone());
    differ(
        "durations per point",
        format!("{}s", old.duration_s),
        format!("{}s", new.duration_s),
    );
    differ(
        "warm-ups",
        format!("{}s", old.warmup_s),
        format!("{}s", new.warmup_s),
    );
    differ(
        "pinnings",
        format!("{:?}", old.pinning),
        format!("{:?}", new.pinning),
    );
    warnings
}

/// The name a point is matched by: the benchmark's, plus the handler work when there is any,
/// plus the transport when it is not TCP (`+unix`, `+udp`).
fn name_of(point: &PointResult, spec: &BenchmarkSpec) -> String {
    let mut name = match point.point.work_us {
        0 => spec.name(),
        work => format!("{}+work{work}us", spec.name()),
    };
    if point.point.transport != echo_servers::Transport::Tcp {
        name = format!("{name}+{}", point.point.transport);
    }
    name
}

fn spec_of(point: &PointResult) -> BenchmarkSpec {
    let p = &point.point;
    BenchmarkSpec {
        counted: false,
        workload: p.workload,
        model: p.model.clone(),
        connections: p.connections,
        payload: p.payload,
        rate: p.rate,
    }
}

type Samples = BTreeMap<String, (BenchmarkSpec, BTreeMap<Metric, Vec<f64>>)>;

/// Every round's value of each metric, by matched name.
fn samples(run: &SuiteRun) -> Samples {
    let mut values: Samples = BTreeMap::new();
    for point in run.points.iter().filter(|p| p.ok()) {
        let Some(report) = &point.report else {
            continue;
        };
        let spec = spec_of(point);
        let entry = values
            .entry(name_of(point, &spec))
            .or_insert_with(|| (spec, BTreeMap::new()));
        for metric in METRICS {
            if let Some(v) = metric.of(report) {
                entry.1.entry(metric).or_default().push(v);
            }
        }
    }
    values
}

/// The change of one metric between the runs, and its verdict: on the interval where both
/// sides have rounds, else on the point estimate (no interval).
fn change_of(
    base: &[f64],
    head: &[f64],
    threshold_pct: f64,
    higher_is_better: bool,
) -> (Change, Verdict) {
    if let Some(change) = Change::unpaired(base, head, 0xc0_3a2e) {
        let verdict = change.verdict(threshold_pct, higher_is_better);
        return (change, verdict);
    }
    let ratio = median_of(head) / median_of(base);
    let change_pct = (ratio - 1.0) * 100.0;
    let change = Change {
        pairs: 1,
        ratio,
        change_pct,
        ci_low_pct: change_pct,
        ci_high_pct: change_pct,
        sd_log: f64::NAN,
        mde_pct: f64::NAN,
    };
    let mut verdict = change.verdict(threshold_pct, higher_is_better);
    if verdict == Verdict::Inconclusive {
        // No noise estimate: inside the threshold counts as no change.
        verdict = Verdict::NoChange;
    }
    (change, verdict)
}

/// Compares the points both runs measured; `exit_code` is 1 if any point's primary metric moved
/// past `threshold_pct` the bad way. Long because it assembles the whole report: matched points,
/// each metric's change, the warnings and the conclusion.
pub fn compare(old: &SuiteRun, new: &SuiteRun, threshold_pct: f64, command: &str) -> AbReport {
    let old_points = samples(old);
    let new_points = samples(new);
    let mut benchmarks = Vec::new();
    for (name, (spec, before)) in &old_points {
        let Some((_, after)) = new_points.get(name) else {
            continue;
        };
        let primary = spec.primary();
        let metrics: Vec<MetricResult> = METRICS
            .iter()
            .filter_map(|&metric| {
                let (b, h) = (before.get(&metric)?, after.get(&metric)?);
                let (change, verdict) = change_of(b, h, threshold_pct, metric.higher_is_better());
                Some(MetricResult {
                    metric: Some(metric),
                    unit: metric.unit().to_owned(),
                    higher_is_better: metric.higher_is_better(),
                    primary: metric == primary,
                    base_median: median_of(b),
                    head_median: median_of(h),
                    change: Some(change),
                    verdict,
                })
            })
            .collect();
        let primary_result = metrics.iter().find(|m| m.primary);
        let verdict = primary_result.map_or(Verdict::Invalid, |m| m.verdict);
        let note = match primary_result.and_then(|m| m.change.as_ref()) {
            None => Some("no primary figure in both runs".to_owned()),
            Some(c) if c.pairs < 2 => Some("no interval (one sample)".to_owned()),
            Some(c) if c.within_noise() => Some("within noise".to_owned()),
            Some(_) => None,
        };
        benchmarks.push(BenchmarkResult {
            name: name.clone(),
            spec: Some(spec.clone()),
            verdict,
            threshold_pct,
            metrics,
            note,
            ..BenchmarkResult::default()
        });
    }
    let mut warnings = differences(old, new);
    warnings.push(
        "unpaired comparison: the two runs were made at different times, so machine noise is \
         not cancelled; confirm any change with `echo-bench ab`"
            .into(),
    );
    let only = |a: &BTreeMap<String, _>, b: &BTreeMap<String, _>| {
        a.keys().filter(|k| !b.contains_key(*k)).count()
    };
    let (only_old, only_new) = (
        only(&old_points, &new_points),
        only(&new_points, &old_points),
    );
    if only_old + only_new > 0 {
        warnings.push(format!(
            "{only_old} point(s) only in the old run and {only_new} only in the new one were left out"
        ));
    }
    let regressed: Vec<&str> = benchmarks
        .iter()
        .filter(|b| b.verdict == Verdict::Regressed)
        .map(|b| b.name.as_str())
        .collect();
    let (exit_code, conclusion) = if benchmarks.is_empty() {
        (EXIT_USAGE, "the runs have no point in common".to_owned())
    } else if regressed.is_empty() {
        (
            EXIT_SUCCESS,
            format!("no point moved past {threshold_pct:.1}% the bad way"),
        )
    } else {
        (
            EXIT_FAILURE,
            format!(
                "regressed (unpaired, unconfirmed): {}",
                regressed.join(", ")
            ),
        )
    };
    AbReport {
        schema: 1,
        command: command.to_owned(),
        meta: new.meta.clone(),
        pairs: 1,
        threshold_pct,
        trial_s: new.duration_s,
        warmup_s: new.warmup_s,
        benchmarks,
        exit_code,
        conclusion,
        warnings,
        ..AbReport::default()
    }
}
