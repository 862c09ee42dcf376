//! Writing a suite run to `results/<date>-<host>-<id>/`: `run.json`, `summary.md` (tables and
//! advice), the SVG charts, a `README.md` saying how it was made, and `results/latest`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::SuiteRun;
use super::advice::{Aggregate, advice, aggregate};
use super::charts;
use super::plan::size_label;
use crate::config::Workload;

/// The folder name of a run: `<YYYY-MM-DD>-<host>-<6 hex digits>`.
pub fn run_dir_name(run: &SuiteRun) -> String {
    let date = run.meta.time.get(..10).unwrap_or("0000-00-00");
    let host: String = run
        .meta
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
    format!(
        "{date}-{}-{id:06x}",
        if host.is_empty() { "host" } else { &host }
    )
}

/// Writes every file of `run` under `results_dir`; returns the run's folder.
pub fn write(results_dir: &Path, run: &SuiteRun) -> std::io::Result<PathBuf> {
    let dir = results_dir.join(run_dir_name(run));
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::to_string_pretty(run).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("run.json"), json + "\n")?;
    let aggregates = aggregate(run);
    let charts = charts::draw_all(&dir, &aggregates)?;
    std::fs::write(
        dir.join("summary.md"),
        summary_markdown(run, &aggregates, &charts),
    )?;
    std::fs::write(dir.join("README.md"), readme(run, &dir))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(results_dir.join("latest"), format!("{name}\n"))?;
    Ok(dir)
}

fn bold_if(best: bool, text: String) -> String {
    if best { format!("**{text}**") } else { text }
}

fn fmt_rate(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

/// A markdown table: one row per model, one column per point of `workload`, the best of each
/// column (by `value`, higher is better) in bold.
fn table(
    aggregates: &[Aggregate],
    workload: Workload,
    header: &dyn Fn(&Aggregate) -> String,
    cell: &dyn Fn(&Aggregate) -> String,
    value: fn(&Aggregate) -> f64,
) -> String {
    let points: Vec<&Aggregate> = aggregates
        .iter()
        .filter(|a| a.workload == workload)
        .collect();
    let mut columns: Vec<(usize, usize, Option<u64>, u64)> = Vec::new();
    let mut models = Vec::new();
    for a in &points {
        let column = (a.connections, a.payload, a.rate, a.work_us);
        if !columns.contains(&column) {
            columns.push(column);
        }
        if !models.contains(&a.model) {
            models.push(a.model);
        }
    }
    if points.is_empty() {
        return String::new();
    }
    let mut out = String::from("| model |");
    for column in &columns {
        let sample = points
            .iter()
            .find(|a| (a.connections, a.payload, a.rate, a.work_us) == *column)
            .expect("column from points");
        let _ = write!(out, " {} |", header(sample));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(columns.len()));
    out.push('\n');
    for model in models {
        let _ = write!(out, "| {model} |");
        for column in &columns {
            let in_column =
                |a: &&&Aggregate| (a.connections, a.payload, a.rate, a.work_us) == *column;
            let best = points
                .iter()
                .filter(in_column)
                .filter(|a| !a.failed && a.starved == 0 && a.errors == 0)
                .map(|a| value(a))
                .fold(0.0, f64::max);
            let text = match points.iter().filter(in_column).find(|a| a.model == model) {
                None => "–".to_owned(),
                Some(a) if a.failed && a.runs == 0 => "failed".to_owned(),
                Some(a) => {
                    let mut text =
                        bold_if(value(a) == best && best > 0.0 && a.starved == 0, cell(a));
                    if a.starved > 0 {
                        let _ = write!(text, " ⚠{} starved", a.starved);
                    }
                    if a.errors > 0 {
                        let _ = write!(text, " ⚠{} err", a.errors);
                    }
                    if a.failed {
                        text.push_str(" ⚠failed");
                    }
                    text
                }
            };
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
    out
}

/// The markdown tables of every workload, shared by `summary.md` and the terminal.
pub fn tables(all: &[Aggregate]) -> String {
    let sweep: Vec<Aggregate> = super::advice::work_sweep(all)
        .into_iter()
        .cloned()
        .collect();
    let aggregates = &super::advice::at_base_work(all)[..];
    let mut out = String::new();
    let spread = |a: &Aggregate| {
        if a.runs > 1 {
            format!(
                " ±{:.0}%",
                50.0 * (a.rps_spread.1 - a.rps_spread.0) / a.rps.max(1e-9)
            )
        } else {
            String::new()
        }
    };
    let ping = table(
        aggregates,
        Workload::PingPong,
        &|a| format!("{} conn × {}", a.connections, size_label(a.payload)),
        &|a| format!("{} ({} µs){}", fmt_rate(a.rps), a.p99, spread(a)),
        |a| a.rps,
    );
    if !ping.is_empty() {
        out.push_str("### Ping-pong: messages/s (p99 latency)\n\n");
        out.push_str(&ping);
        out.push('\n');
    }
    let rate = table(
        aggregates,
        Workload::Rate,
        &|a| format!("{}/s offered", fmt_rate(a.rate.unwrap_or(0) as f64)),
        &|a| format!("{} ({} µs)", fmt_rate(a.rps), a.p99),
        |a| a.rps,
    );
    if !rate.is_empty() {
        out.push_str("### Open loop: achieved messages/s (corrected p99)\n\n");
        out.push_str(&rate);
        out.push('\n');
    }
    let churn = table(
        aggregates,
        Workload::Churn,
        &|a| format!("{} loops", a.connections),
        &|a| format!("{}/s ({} µs)", fmt_rate(a.conn_s), a.p99),
        |a| a.conn_s,
    );
    if !churn.is_empty() {
        out.push_str("### Churn: connections/s (p99 echo latency)\n\n");
        out.push_str(&churn);
        out.push('\n');
    }
    let stream = table(
        aggregates,
        Workload::Stream,
        &|a| format!("{} conn × {}", a.connections, size_label(a.payload)),
        &|a| format!("{:.0} MiB/s (CPU {:.2})", a.mib_s, a.server_cpu),
        |a| a.mib_s,
    );
    if !stream.is_empty() {
        out.push_str("### Stream: MiB/s echoed (server CPU cores)\n\n");
        out.push_str(&stream);
        out.push('\n');
    }
    let resources = table(
        aggregates,
        Workload::PingPong,
        &|a| format!("{} conn × {}", a.connections, size_label(a.payload)),
        &|a| {
            format!(
                "{:.2} cores, {:.1} MiB",
                a.server_cpu,
                a.server_rss_kib as f64 / 1024.0
            )
        },
        |_| 0.0,
    );
    if !resources.is_empty() {
        out.push_str("### Server cost in ping-pong: CPU cores busy, peak RSS\n\n");
        out.push_str(&resources);
        out.push('\n');
    }
    let work = table(
        &sweep,
        Workload::PingPong,
        &|a| format!("{} conn, {} µs work", a.connections, a.work_us),
        &|a| format!("{} ({} µs, J {:.2})", fmt_rate(a.rps), a.p99, a.fairness),
        |a| a.rps,
    );
    if !work.is_empty() {
        out.push_str(
            "### Handler work: messages/s (p99 latency, Jain fairness) with CPU work per message\n\n",
        );
        out.push_str(&work);
        out.push('\n');
    }
    out
}

fn summary_markdown(run: &SuiteRun, aggregates: &[Aggregate], charts: &[PathBuf]) -> String {
    let mut out = String::new();
    let m = &run.meta;
    let _ = writeln!(out, "# echo-bench suite: {} profile\n", run.profile.name());
    let _ = writeln!(
        out,
        "{} on {} ({} cores, {} MiB, kernel {}), {}, echo-bench {} at {}. Each point: {:.1} s \
         measured after {:.1} s warm-up, a fresh server process. Best of each column in **bold** \
         (among models that served every connection).\n",
        m.time,
        m.cpu_model,
        m.cores,
        m.memory_mib,
        m.kernel,
        m.rustc,
        m.tool_version,
        m.git_revision,
        run.duration_s,
        run.warmup_s
    );
    let _ = writeln!(
        out,
        "Pinning: server on CPUs {}, client on CPUs {}.\n",
        cpus(&run.pinning.server_cpus),
        cpus(&run.pinning.client_cpus)
    );
    if !run.skipped.is_empty() {
        let _ = writeln!(
            out,
            "Not measured (this machine cannot run them): {}.\n",
            run.skipped.join("; ")
        );
    }
    out.push_str(&tables(aggregates));
    let saturated: Vec<String> = aggregates
        .iter()
        .filter(|a| a.client_saturated)
        .map(|a| {
            let work = if a.work_us > 0 {
                format!(" work={}µs", a.work_us)
            } else {
                String::new()
            };
            format!("{} {} c={}{work}", a.model, a.workload, a.connections)
        })
        .collect();
    if !saturated.is_empty() {
        let _ = writeln!(
            out,
            "Client saturated (the load generator, not the server, was the limit) at: {}.\n",
            saturated.join(", ")
        );
    }
    let failures: Vec<String> = run
        .points
        .iter()
        .filter(|p| !p.ok())
        .map(|p| {
            format!(
                "- {}: {}",
                p.point.label(),
                p.failure.clone().unwrap_or_default()
            )
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "### Failed points\n\n{}\n", failures.join("\n"));
    }
    if !run.knees.is_empty() {
        let _ = writeln!(
            out,
            "### Capacity knee: highest open-loop rate with p99 under {} µs (100 conn × 64 B)\n\n| model | rate | p99 µs |\n|---|---:|---:|",
            run.p99_target_us
        );
        for k in &run.knees {
            let _ = writeln!(out, "| {} | {:.0} | {} |", k.model, k.rate, k.p99_us);
        }
        out.push('\n');
    }
    if !charts.is_empty() {
        out.push_str("### Charts\n\n");
        for chart in charts {
            if let Some(name) = chart.file_name() {
                let name = name.to_string_lossy();
                let _ = writeln!(out, "![{name}]({name})");
            }
        }
        out.push('\n');
    }
    out.push_str("## Which model to pick\n\nGenerated from this run's numbers.\n\n");
    for line in advice(run) {
        let _ = writeln!(out, "- {line}");
    }
    out
}

fn cpus(list: &Option<Vec<usize>>) -> String {
    list.as_ref().map_or_else(
        || "any (not pinned)".to_owned(),
        |l| {
            l.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        },
    )
}

fn readme(run: &SuiteRun, dir: &Path) -> String {
    let m = &run.meta;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "# Suite run {name}\n\nWritten by echo-bench; do not edit.\n\n\
         - Command: `{}`\n- Profile: {}\n- Points: {} ({} failed), {:.0} s in all\n\
         - Machine: {} ({} cores online, {} usable), {} MiB, kernel {}, host {}\n\
         - Build: echo-bench {} at git {}, {}\n- Pinning: server CPUs {}, client CPUs {}\n\
         - When: {}\n\n\
         Files: `run.json` (every point's full report and the environment), `summary.md` \
         (tables, charts and the advice), `*.svg` (charts).\n\n\
         To reproduce: check out {} and run `{}` on a similar machine. Numbers from \
         different machines or settings are not comparable.\n",
        run.command,
        run.profile.name(),
        run.points.len(),
        run.points.iter().filter(|p| !p.ok()).count(),
        run.elapsed_s,
        m.cpu_model,
        m.cores,
        m.cores_available,
        m.memory_mib,
        m.kernel,
        m.host,
        m.tool_version,
        m.git_revision,
        m.rustc,
        cpus(&run.pinning.server_cpus),
        cpus(&run.pinning.client_cpus),
        m.time,
        m.git_revision,
        run.command
    )
}
