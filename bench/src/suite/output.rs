//! Writing a suite run to `results/<date>-<host>-<id>/`: `run.json`, `summary.md` (tables and
//! advice), `index.html` (the same, one self-contained page), the SVG charts, `latency.hlog`, a
//! `README.md` saying how it was made, and `results/latest`.

use std::path::{Path, PathBuf};

use super::SuiteRun;
use super::advice::{Aggregate, aggregate};
use crate::render::charts;
use crate::render::markdown::{MARK, Summary};
use echo_loadgen::files;

/// The folder name of a run: `<YYYY-MM-DD>-<host>-<6 hex digits>`.
pub fn run_dir_name(run: &SuiteRun) -> String {
    unique_name("", &run.meta)
}

/// A folder name `<prefix>-<YYYY-MM-DD>-<host>-<6 hex digits>` (no prefix when empty) for
/// something made now on `meta`'s machine.
pub fn unique_name(prefix: &str, meta: &echo_loadgen::meta::Meta) -> String {
    let date = meta.time.get(..10).unwrap_or("0000-00-00");
    let host: String = meta
        .host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let id =
        (nanos ^ (u64::from(std::process::id()) << 20)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}-")
    };
    format!(
        "{prefix}{date}-{}-{id:06x}",
        if host.is_empty() { "host" } else { &host }
    )
}

/// Writes every file of `run` under `results_dir`; returns the run's folder.
pub fn write(results_dir: &Path, run: &SuiteRun) -> std::io::Result<PathBuf> {
    write_with(results_dir, run, &aggregate(run))
}

/// [`write()`] with the run's aggregates, computed once by the caller.
pub fn write_with(
    results_dir: &Path,
    run: &SuiteRun,
    aggregates: &[Aggregate],
) -> std::io::Result<PathBuf> {
    let dir = results_dir.join(run_dir_name(run));
    // A new folder: one that already exists is never written into.
    std::fs::create_dir_all(results_dir)?;
    std::fs::create_dir(&dir)?;
    let json = serde_json::to_string_pretty(run).map_err(std::io::Error::other)?;
    files::write(&dir.join("run.json"), json + "\n")?;
    let redrawn = redraw(&dir, run, aggregates)?;
    if let Some(file) = redrawn.left_alone.first() {
        return Err(std::io::Error::other(format!(
            "{} was there before and is not echo-bench's",
            file.display()
        )));
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    files::write(&results_dir.join("latest"), format!("{name}\n"))?;
    Ok(dir)
}

/// What [`redraw`] did not do: files in the run's folder that are not echo-bench's (no
/// [`MARK`], not what an older version wrote), each left as it was.
#[derive(Debug, Default)]
pub struct Redrawn {
    /// Files it would have written, left alone because they are someone else's.
    pub left_alone: Vec<PathBuf>,
    /// Charts of an older version's name it would have removed, left alone likewise.
    pub stale_kept: Vec<PathBuf>,
}

/// The files of a run folder echo-bench draws, and how a file of that name that it wrote
/// looks: with [`MARK`] (or [`charts::CHART_MARK`]) since the mark exists, or what the
/// versions before it wrote at the top of the file.
fn written_by_us(name: &str, text: &str) -> bool {
    let head: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
    let marked = head.lines().any(|l| l == MARK || l == charts::CHART_MARK);
    match name {
        "summary.md" => marked || text.starts_with("# echo-bench suite: "),
        "README.md" => {
            marked
                || (text.starts_with("# Suite run ")
                    && head.contains("\n\nWritten by echo-bench; do not edit."))
        }
        "index.html" => {
            marked
                || (text.starts_with("<!DOCTYPE html>")
                    && head.contains("<html lang=\"en\">")
                    && text.contains("<title>echo-bench suite: ")
                    && text.contains("data-ready"))
        }
        "latency.hlog" => text.starts_with("#echo-bench: latency in microseconds"),
        chart if is_chart_name(chart) => charts::drawn_by_us(text),
        _ => false,
    }
}

/// Whether `name` is a chart file name some version of echo-bench draws in a run folder.
pub fn is_chart_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".svg") else {
        return false;
    };
    matches!(
        stem,
        "server-cpu"
            | "server-rss"
            | "fairness"
            | "latency"
            | "work-throughput"
            | "work-p99"
            | "work-fairness"
            | "cost-tcp-vs-unix"
            | "capacity-curve"
    ) || stem
        .strip_prefix("rank-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || ["throughput-", "latency-", "c10k-", "capacity-timeline-"]
            .iter()
            .any(|p| stem.len() > p.len() && stem.starts_with(p))
}

/// Whether the file at `path` (named `name`) may be replaced or removed: absent, or a regular
/// file echo-bench wrote ([`written_by_us`]). A symlink, a folder or anyone else's file is not.
fn ours(path: &Path, name: &str) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
        Ok(meta) if !meta.is_file() => Ok(false),
        Ok(_) => {
            let bytes = std::fs::read(path)?;
            Ok(written_by_us(name, &String::from_utf8_lossy(&bytes)))
        }
    }
}

/// Writes everything of a run folder but its run.json: the charts, latency.hlog (the merged
/// histograms), summary.md, index.html and README.md.
/// What `echo-bench report` runs on a stored run, so a newer version can redraw an older run.
///
/// Everything is drawn first into a private folder inside `dir`; then each file replaces its
/// namesake by a rename, only where that namesake is echo-bench's own ([`MARK`], or what an
/// older version wrote); and the charts an older version drew that this one does not are
/// removed, only those of a chart's name that echo-bench drew. Anything else in the folder is
/// left as it was; what was left alone is returned.
pub fn redraw(dir: &Path, run: &SuiteRun, aggregates: &[Aggregate]) -> std::io::Result<Redrawn> {
    let staging = tempfile::Builder::new()
        .prefix(".echo-bench-redraw-")
        .tempdir_in(dir)?;
    let stage = staging.path();
    // Over several transports, the charts are the first transport's (TCP's when it was
    // measured), plus the comparison of TCP with Unix sockets.
    let sections = echo_analysis::transports::sections(run, aggregates);
    let (primary, primary_aggregates) = (&sections[0].run, &sections[0].aggregates[..]);
    let mut charts = charts::draw_all(stage, primary, primary_aggregates)?;
    if let Some(ablation) = echo_analysis::ablation::of(primary_aggregates) {
        charts.extend(charts::ablation::draw(stage, &ablation)?);
    }
    let comparisons = echo_analysis::transports::compare(aggregates, echo_servers::Transport::Unix);
    charts.extend(charts::transports::draw(stage, &comparisons, aggregates)?);
    let histograms = charts::write_histogram_log(stage, run, aggregates)?;
    let summary = Summary::of(run, aggregates, &charts);
    files::write(
        &stage.join("summary.md"),
        format!("{MARK}\n{}", summary.markdown()),
    )?;
    files::write(
        &stage.join("index.html"),
        crate::render::html::page(
            run,
            stage,
            &summary,
            &echo_analysis::advice::matrix(&echo_analysis::advice::rankings(primary_aggregates)),
            histograms.as_deref(),
        )?,
    )?;
    files::write(
        &stage.join("README.md"),
        format!("{MARK}\n{}", crate::render::markdown::readme(run, dir)),
    )?;
    let mut redrawn = Redrawn::default();
    let mut drawn = Vec::new();
    let mut staged: Vec<PathBuf> = std::fs::read_dir(stage)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    staged.sort();
    for file in staged {
        let Some(name) = file.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let target = dir.join(&name);
        if ours(&target, &name)? {
            std::fs::rename(&file, &target)?;
        } else {
            redrawn.left_alone.push(target);
        }
        drawn.push(name);
    }
    // The charts an older version drew and this one does not go, so the folder holds one
    // version's charts; only files of a chart's name that echo-bench drew.
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if !is_chart_name(&name) || drawn.contains(&name) {
            continue;
        }
        if ours(&path, &name)? {
            std::fs::remove_file(&path)?;
        } else {
            redrawn.stale_kept.push(path);
        }
    }
    staging.close()?;
    Ok(redrawn)
}
