//! What an `ab` run records and reports: builds, samples, pairs, per-metric and per-benchmark
//! results, and the whole report (its JSON is an interface).

use super::*;

/// Which build a trial ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The reference build.
    Base,
    /// The build under test.
    Head,
}

/// A build to compare: a binary of this suite and extra arguments for its servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    /// The `echo-bench` binary.
    pub binary: PathBuf,
    /// Extra `serve` arguments (e.g. the `--handicap-ns` testing aid).
    pub server_args: Vec<String>,
    /// What the build reported about itself (from its first trial).
    pub meta: Option<Meta>,
}

/// One trial: one build, one benchmark, one fresh server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sample {
    /// Each metric's value.
    pub metrics: BTreeMap<Metric, f64>,
    /// Messages measured.
    pub messages: u64,
    /// Errors of any kind, echo mismatches included.
    pub errors: u64,
    /// The client's utilisation of its cores (1 = saturated).
    pub client_utilisation: f64,
    /// The server's CPU use, in cores.
    pub server_cores: f64,
    /// Why the trial cannot be used, if it cannot.
    pub invalid: Option<String>,
    /// Seconds since the start of the `ab` run.
    pub at_s: f64,
    /// A counted sample's two windows: the server's instructions in an empty one (what reading
    /// the counts costs) and in one of N units.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub counts: Vec<u64>,
}

/// One pair of trials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pair {
    /// `AB` (base first) or `BA`.
    pub order: String,
    /// Why the pair is left out of the statistics although both trials ran cleanly (the client
    /// side was saturated, so the load generator set the pace).
    pub excluded: Option<String>,
    /// The base trial.
    pub base: Sample,
    /// The head trial.
    pub head: Sample,
}

/// A metric's comparison within one benchmark.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricResult {
    /// The metric.
    pub metric: Option<Metric>,
    /// Its unit.
    pub unit: String,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// Whether the benchmark's verdict is made on it.
    pub primary: bool,
    /// Median over base trials.
    pub base_median: f64,
    /// Median over head trials.
    pub head_median: f64,
    /// The paired change (absent with fewer than two usable pairs).
    pub change: Option<Change>,
    /// This metric's own verdict (informational unless primary).
    pub verdict: Verdict,
}

/// One benchmark's comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchmarkResult {
    /// Its name.
    pub name: String,
    /// What it ran (absent only in hand-edited files).
    pub spec: Option<BenchmarkSpec>,
    /// The verdict (on the primary metric, after confirmation).
    pub verdict: Verdict,
    /// The threshold applied: max(user threshold, calibrated noise floor), %.
    pub threshold_pct: f64,
    /// The calibrated noise floor used, %.
    pub calibrated_floor_pct: Option<f64>,
    /// In an A/A run, the noise floor measured here (largest change the interval allows), %.
    pub noise_floor_pct: Option<f64>,
    /// Pairs that would make the minimum detectable effect reach the threshold.
    pub pairs_needed: Option<usize>,
    /// Why it is invalid or inconclusive, in words.
    pub note: Option<String>,
    /// Per metric.
    pub metrics: Vec<MetricResult>,
    /// The pairs, in the order run.
    pub pairs: Vec<Pair>,
    /// The re-run that confirmed (or did not confirm) a regression.
    pub confirmation: Option<Box<BenchmarkResult>>,
}

impl BenchmarkResult {
    /// The primary metric's result.
    pub fn primary(&self) -> Option<&MetricResult> {
        self.metrics.iter().find(|m| m.primary)
    }
}

/// A whole `ab` run, as written by `--json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AbReport {
    /// Format version.
    pub schema: u32,
    /// The command line.
    pub command: String,
    /// This tool and machine.
    pub meta: Meta,
    /// The reference build.
    pub base: Option<Build>,
    /// The build under test.
    pub head: Option<Build>,
    /// Whether base and head were the same build (an A/A calibration).
    pub aa: bool,
    /// Pairs per benchmark.
    pub pairs: usize,
    /// `duet` (each pair's trials at the same time) or `sequential`.
    pub mode: String,
    /// Seed of the order and the bootstrap.
    pub seed: u64,
    /// Measured seconds per trial.
    pub trial_s: f64,
    /// Warm-up seconds per trial.
    pub warmup_s: f64,
    /// The user's threshold, %.
    pub threshold_pct: f64,
    /// CPU split.
    pub pinning: Pinning,
    /// How the counted benchmarks ran (absent when there were none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counting: Option<counted::Counting>,
    /// Per benchmark.
    pub benchmarks: Vec<BenchmarkResult>,
    /// Wall time of the whole run, s.
    pub elapsed_s: f64,
    /// The exit code this run gives (0, 1 or 2) and why.
    pub exit_code: u8,
    /// One line saying what the run concluded.
    pub conclusion: String,
    /// Warnings (inconclusive benchmarks, unconfirmed regressions).
    pub warnings: Vec<String>,
}

impl AbReport {
    /// Reads a report written by `--json` (also what `--calibration` takes).
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        Self::from_value(value)
            .map_err(|why| format!("{} is not an `ab` JSON report: {why}", path.display()))
    }

    /// An `ab` report from parsed JSON, recognised by the fields every `ab --json` report has
    /// (`schema` 1, `command`, `meta`, `mode`, `pairs`, `benchmarks` each with a `name` and
    /// `metrics`) before it is read: any other object is refused (every field has a default).
    pub fn from_value(value: serde_json::Value) -> Result<Self, String> {
        use serde_json::Value;
        let check = |name: &str, ok: &dyn Fn(&Value) -> bool| match value.get(name) {
            Some(v) if ok(v) => Ok(()),
            Some(_) => Err(format!("its `{name}` is not what an ab report holds")),
            None => Err(format!("it has no `{name}`")),
        };
        check("schema", &|v| v.as_u64() == Some(1))?;
        check("command", &Value::is_string)?;
        check("meta", &Value::is_object)?;
        check("mode", &Value::is_string)?;
        check("pairs", &Value::is_u64)?;
        check("benchmarks", &|v| {
            v.as_array().is_some_and(|all| {
                all.iter().all(|b| {
                    b.get("name").is_some_and(Value::is_string)
                        && b.get("metrics").is_some_and(Value::is_array)
                })
            })
        })?;
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// The noise floors an A/A report measured, % by benchmark.
    pub fn noise_floors(&self) -> BTreeMap<String, f64> {
        self.benchmarks
            .iter()
            .filter_map(|b| {
                let floor = b.noise_floor_pct.or_else(|| {
                    b.primary()
                        .and_then(|m| m.change.as_ref())
                        .map(Change::noise_floor_pct)
                })?;
                Some((b.name.clone(), floor))
            })
            .collect()
    }
}
