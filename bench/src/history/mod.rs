//! Regression tracking over commits: a store of one record per commit (JSON lines), each
//! holding every benchmark's figures from an `ab` report (the head build's medians) or a suite
//! run.json (each point's medians), and the change points of every series, found with
//! E-Divisive means ([`edivisive`]).

pub mod edivisive;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ab::AbReport;
use echo_analysis::aggregate::{Measure, aggregate, at_base_work};
use echo_analysis::run::SuiteRun;

/// The store's file in its folder.
pub const STORE_FILE: &str = "history.jsonl";

/// One figure of one benchmark at one commit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Its value.
    pub value: f64,
    /// Whether more is better (throughput) or less (latency, CPU per message).
    pub higher_is_better: bool,
}

/// One commit's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The commit measured.
    pub commit: String,
    /// When it was measured (RFC 3339).
    pub date: String,
    /// The machine: host and CPU.
    pub machine: String,
    /// The build: echo-bench version and rustc.
    pub build: String,
    /// What the figures came from (`ab` or `suite`) and its command.
    pub source: String,
    /// Every figure, by `BENCHMARK METRIC`.
    pub figures: BTreeMap<String, Figure>,
}

/// A record of the stored result at `path`: an `echo-bench ab --json` report (the head
/// build's median of each metric) or a suite run.json (each point's median throughput, server
/// CPU per message and p99, at the base handler work).
pub fn record_of(path: &Path) -> Result<Record, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    record_of_bytes(&bytes, &path.display().to_string())
}

/// [`record_of`] of a file's bytes, `name` (its path) naming it in the error.
pub fn record_of_bytes(bytes: &[u8], name: &str) -> Result<Record, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("{name} is not JSON: {e}"))?;
    if value.get("benchmarks").is_some() {
        let report = AbReport::from_value(value)
            .map_err(|why| format!("{name} is not an ab report: {why}"))?;
        Ok(from_ab(&report))
    } else if value.get("points").is_some() {
        let run = SuiteRun::from_value(value)
            .map_err(|why| format!("{name} is not a suite run.json: {why}"))?;
        Ok(from_suite(&run))
    } else {
        Err(format!(
            "{name} is neither an ab report nor a suite run.json"
        ))
    }
}

fn from_ab(report: &AbReport) -> Record {
    let meta = report
        .head
        .as_ref()
        .and_then(|h| h.meta.clone())
        .unwrap_or_else(|| report.meta.clone());
    let mut figures = BTreeMap::new();
    for bench in &report.benchmarks {
        for metric in &bench.metrics {
            let Some(name) = metric.metric.map(|m| m.name()) else {
                continue;
            };
            if metric.head_median.is_finite() && metric.head_median > 0.0 {
                figures.insert(
                    format!("{} {name}", bench.name),
                    Figure {
                        value: metric.head_median,
                        higher_is_better: metric.higher_is_better,
                    },
                );
            }
        }
    }
    Record {
        commit: meta.git_revision.clone(),
        date: report.meta.time.clone(),
        machine: format!("{} ({})", meta.host, meta.cpu_model),
        build: format!("echo-bench {}, {}", meta.tool_version, meta.rustc),
        source: format!("ab: {}", report.command),
        figures,
    }
}

fn from_suite(run: &SuiteRun) -> Record {
    let mut figures = BTreeMap::new();
    for a in at_base_work(&aggregate(run)) {
        let mut name = format!("{}/{}/{}", a.load.workload, a.model, a.load.connections);
        if a.load.payload != 64 {
            name.push_str(&format!("/{}", a.load.payload));
        }
        if let Some(rate) = a.load.rate {
            name.push_str(&format!("@{rate}"));
        }
        for (metric, measure) in [
            ("throughput", Measure::Throughput),
            ("server_cpu_per_msg", Measure::CpuPerMessage),
            ("p99", Measure::P99),
        ] {
            if let Some(e) = a.estimate(measure) {
                figures.insert(
                    format!("{name} {metric}"),
                    Figure {
                        value: e.median,
                        higher_is_better: measure.higher_is_better(),
                    },
                );
            }
        }
    }
    let m = &run.meta;
    Record {
        commit: m.git_revision.clone(),
        date: m.time.clone(),
        machine: format!("{} ({})", m.host, m.cpu_model),
        build: format!("echo-bench {}, {}", m.tool_version, m.rustc),
        source: format!("suite: {}", run.command),
        figures,
    }
}

/// The store's lock file in its folder: every append holds it exclusively (`flock`), every
/// read shared, so two CI jobs appending at once both land and a reader never sees half a line.
pub const LOCK_FILE: &str = "history.lock";

/// The store's lock, held until dropped; `None` when the store has no folder yet, or (for a
/// shared lock) when the lock file cannot be made there (a read-only store is read unlocked).
fn lock(store: &Path, exclusive: bool) -> Result<Option<std::fs::File>, String> {
    use rustix::fs::{FlockOperation, flock};
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = store.join(LOCK_FILE);
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !store.exists() => return Ok(None),
        Err(_) if !exclusive => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let operation = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    flock(&file, operation).map_err(|e| format!("{}: cannot lock: {e}", path.display()))?;
    Ok(Some(file))
}

/// What the store holds: its records, oldest first (one per commit: a commit stored again
/// replaces its record where it first stood), and a warning for each line that is not a
/// record (a torn write's last line, say), skipped and left in the file as it is.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The records.
    pub records: Vec<Record>,
    /// One line per line skipped.
    pub skipped: Vec<String>,
}

/// The store's records and the lines skipped ([`Loaded`]); nothing for a store not made yet.
pub fn read(store: &Path) -> Result<Loaded, String> {
    let path = store.join(STORE_FILE);
    let _lock = lock(store, false)?;
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    Ok(parse(&bytes, &path.display().to_string()))
}

/// The records and skipped lines of a history.jsonl's bytes, `name` (the file's path) naming it
/// in the warnings: what [`read`] does once it holds the lock and the bytes. Never fails: a line
/// that is not a record (not UTF-8, not JSON, a field missing or of the wrong type) is skipped
/// with a warning, and the rest is read.
pub fn parse(bytes: &[u8], name: &str) -> Loaded {
    let mut loaded = Loaded::default();
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let torn = i + 1 == lines.len();
        match serde_json::from_slice::<Record>(line) {
            Ok(record) => match loaded
                .records
                .iter_mut()
                .find(|r| r.commit == record.commit)
            {
                Some(old) => *old = record,
                None => loaded.records.push(record),
            },
            Err(e) => loaded.skipped.push(format!(
                "{} line {}: not a record, skipped and kept as it is ({}{e})",
                name,
                i + 1,
                if torn {
                    "the last line, without a newline: a write cut short? "
                } else {
                    ""
                }
            )),
        }
    }
    loaded
}

/// The store's records, oldest first; none for a store not made yet. Lines that are not
/// records are skipped ([`read`] says which).
pub fn load(store: &Path) -> Result<Vec<Record>, String> {
    read(store).map(|loaded| loaded.records)
}

/// Adds `record` to the store (made if needed), holding its lock: one whole line appended
/// (`O_APPEND`, one write) after every byte already there, which is never rewritten. A commit
/// already stored is replaced by this record when read ([`read`]): one record per commit.
/// After a torn last line (no newline at the end) the record starts on a line of its own.
pub fn append(store: &Path, record: Record) -> Result<PathBuf, String> {
    use std::io::Write as _;
    use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
    std::fs::create_dir_all(store).map_err(|e| format!("{}: {e}", store.display()))?;
    let _lock = lock(store, true)?;
    let path = store.join(STORE_FILE);
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(failed)?;
    let len = file.metadata().map_err(failed)?.len();
    let mut line = Vec::new();
    if len > 0 {
        let mut last = [0u8];
        file.read_exact_at(&mut last, len - 1).map_err(failed)?;
        if last[0] != b'\n' {
            line.push(b'\n');
        }
    }
    serde_json::to_writer(&mut line, &record).map_err(|e| e.to_string())?;
    line.push(b'\n');
    file.write_all(&line).map_err(failed)?;
    file.sync_data().map_err(failed)?;
    Ok(path)
}

/// A change point of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePoint {
    /// The series: `BENCHMARK METRIC`.
    pub series: String,
    /// The first commit of the new level.
    pub commit: String,
    /// Its place in the store.
    pub index: usize,
    /// The mean before (since the previous change point) and after (until the next).
    pub before: f64,
    /// See `before`.
    pub after: f64,
    /// The change, %.
    pub change_pct: f64,
    /// Whether it made things worse.
    pub regression: bool,
}

/// Every series of `records` (figures by name, in store order, with their commit index).
pub fn series(records: &[Record]) -> BTreeMap<String, Vec<(usize, f64, bool)>> {
    let mut all: BTreeMap<String, Vec<(usize, f64, bool)>> = BTreeMap::new();
    for (i, record) in records.iter().enumerate() {
        for (name, figure) in &record.figures {
            all.entry(name.clone())
                .or_default()
                .push((i, figure.value, figure.higher_is_better));
        }
    }
    all
}

/// Whether a series is an instruction count (a counted benchmark's), whose noise is a fraction
/// of a timed figure's, so a far smaller change means something.
pub fn is_counted(series: &str) -> bool {
    series.starts_with(crate::ab::counted::PREFIX)
        || series.ends_with(crate::ab::Metric::InstructionsPerMessage.name())
        || series.ends_with(crate::ab::Metric::InstructionsPerConnection.name())
}

/// The change points of every series of `records` that moved the level by at least
/// `min_change_pct` (a significant split of a fraction of a percent is noise no one acts on).
pub fn change_points(
    records: &[Record],
    settings: &edivisive::Settings,
    min_change_pct: f64,
) -> Vec<ChangePoint> {
    change_points_by(records, settings, &|_| min_change_pct)
}

/// [`change_points`] with the smallest change worth reporting given per series (counted
/// series get a smaller one, [`is_counted`]).
pub fn change_points_by(
    records: &[Record],
    settings: &edivisive::Settings,
    min_change_pct: &dyn Fn(&str) -> f64,
) -> Vec<ChangePoint> {
    let mut found = Vec::new();
    for (name, points) in series(records) {
        let min_change_pct = min_change_pct(&name);
        let values: Vec<f64> = points.iter().map(|p| p.1).collect();
        let cuts = edivisive::change_points(&values, settings);
        let bounds: Vec<usize> = std::iter::once(0)
            .chain(cuts.iter().copied())
            .chain(std::iter::once(values.len()))
            .collect();
        let mean = |a: usize, b: usize| values[a..b].iter().sum::<f64>() / (b - a) as f64;
        for (k, &cut) in cuts.iter().enumerate() {
            let (before, after) = (mean(bounds[k], cut), mean(cut, bounds[k + 2]));
            let change_pct = (after / before - 1.0) * 100.0;
            if change_pct.abs() < min_change_pct {
                continue;
            }
            let higher_is_better = points[cut].2;
            found.push(ChangePoint {
                series: name.clone(),
                commit: records[points[cut].0].commit.clone(),
                index: points[cut].0,
                before,
                after,
                change_pct,
                regression: if higher_is_better {
                    change_pct < 0.0
                } else {
                    change_pct > 0.0
                },
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// 80 commits of one throughput series: flat at 100 with ±1% noise, stepping down by
    /// `step` at commit 40.
    fn history(step: f64, seed: u64) -> Vec<Record> {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        (0..80)
            .map(|i| {
                let level = if i < 40 { 100.0 } else { 100.0 * (1.0 - step) };
                let value = level * (1.0 + 0.01 * (rng.random::<f64>() * 2.0 - 1.0));
                Record {
                    commit: format!("c{i:02}"),
                    date: String::new(),
                    machine: "test".into(),
                    build: "test".into(),
                    source: "synthetic".into(),
                    figures: BTreeMap::from([(
                        "ping-pong/mio/1 throughput".to_owned(),
                        Figure {
                            value,
                            higher_is_better: true,
                        },
                    )]),
                }
            })
            .collect()
    }

    #[test]
    fn a_five_percent_step_at_commit_40_is_found_as_a_regression() {
        let found = change_points(&history(0.05, 7), &edivisive::Settings::default(), 1.0);
        assert_eq!(found.len(), 1, "{found:?}");
        let change = &found[0];
        assert!((39..=41).contains(&change.index), "{change:?}");
        assert!(
            change.regression && (-6.0..-4.0).contains(&change.change_pct),
            "{change:?}"
        );
        assert_eq!(change.commit, format!("c{:02}", change.index));
    }

    #[test]
    fn a_half_percent_step_of_a_count_is_found_where_a_timed_minimum_would_hide_it() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let name = "counted:ping-pong/mio/1 instructions_per_msg";
        assert!(is_counted(name) && !is_counted("ping-pong/mio/1 throughput"));
        let records: Vec<Record> = history(0.0, 1)
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                // 5000 instructions, +0.5% from commit 40, with ±0.02% noise.
                let level = if i < 40 { 5000.0 } else { 5025.0 };
                let value = level * (1.0 + 0.0002 * (rng.random::<f64>() * 2.0 - 1.0));
                r.figures = BTreeMap::from([(
                    name.to_owned(),
                    Figure {
                        value,
                        higher_is_better: false,
                    },
                )]);
                r
            })
            .collect();
        let settings = edivisive::Settings::default();
        assert!(change_points(&records, &settings, 1.0).is_empty());
        let min = |series: &str| if is_counted(series) { 0.1 } else { 1.0 };
        let found = change_points_by(&records, &settings, &min);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].regression && (39..=41).contains(&found[0].index));
        assert!((0.4..0.6).contains(&found[0].change_pct), "{found:?}");
    }

    #[test]
    fn flat_histories_report_nothing() {
        for seed in 0..10 {
            let found = change_points(&history(0.0, seed), &edivisive::Settings::default(), 1.0);
            assert!(found.is_empty(), "seed {seed}: {found:?}");
        }
    }

    #[test]
    fn the_store_keeps_one_record_per_commit() {
        let store = std::env::temp_dir().join(format!("echo-bench-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        let records = history(0.0, 1);
        append(&store, records[0].clone()).unwrap();
        append(&store, records[1].clone()).unwrap();
        let mut again = records[0].clone();
        again.source = "re-run".into();
        append(&store, again).unwrap();
        let stored = load(&store).unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(
            (stored[0].commit.as_str(), stored[0].source.as_str()),
            ("c00", "re-run")
        );
        std::fs::remove_dir_all(&store).ok();
    }
}
