//! Writing a suite run to `results/<date>-<host>-<id>/`: `run.json`, `summary.md` (tables and
//! advice), `index.html` (the same, one self-contained page), the SVG charts, `latency.hlog`, a
//! `README.md` saying how it was made, and `results/latest`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::SuiteRun;
use super::advice::{Aggregate, Measure, TIE_PCT, advice_of, aggregate, measure_for, rank};
use super::charts;
use super::plan::size_label;
use crate::config::Workload;

/// The folder name of a run: `<YYYY-MM-DD>-<host>-<6 hex digits>`.
pub fn run_dir_name(run: &SuiteRun) -> String {
    unique_name("", &run.meta)
}

/// A folder name `<prefix>-<YYYY-MM-DD>-<host>-<6 hex digits>` (no prefix when empty) for
/// something made now on `meta`'s machine.
pub fn unique_name(prefix: &str, meta: &crate::meta::Meta) -> String {
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
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::to_string_pretty(run).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("run.json"), json + "\n")?;
    redraw(&dir, run, aggregates)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(results_dir.join("latest"), format!("{name}\n"))?;
    Ok(dir)
}

/// Writes everything of a run folder but its run.json: the charts, latency.hlog (the merged
/// histograms), summary.md, index.html and README.md.
/// What `echo-bench report` runs on a stored run, so a newer version can redraw an older run.
pub fn redraw(dir: &Path, run: &SuiteRun, aggregates: &[Aggregate]) -> std::io::Result<()> {
    // Every chart in a run folder is drawn here: those an older version drew and this one does
    // not (latency.svg became the spectra) go, so the folder holds one version's charts.
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.path().extension().is_some_and(|e| e == "svg") {
            std::fs::remove_file(entry.path())?;
        }
    }
    // Over several transports, the charts are the first transport's (TCP's when it was
    // measured), plus the comparison of TCP with Unix sockets.
    let split = super::transports::split(run, aggregates);
    let mut charts = match split.first() {
        Some((_, primary, primary_aggregates)) => {
            charts::draw_all(dir, primary, primary_aggregates)?
        }
        None => charts::draw_all(dir, run, aggregates)?,
    };
    let comparisons = super::transports::compare(aggregates);
    charts.extend(super::transports::draw(dir, &comparisons, aggregates)?);
    let histograms = charts::write_histogram_log(dir, run, aggregates)?;
    let summary = Summary::of(run, aggregates, &charts);
    std::fs::write(dir.join("summary.md"), summary.markdown())?;
    std::fs::write(
        dir.join("index.html"),
        super::html::page(run, dir, &summary, histograms.as_deref())?,
    )?;
    std::fs::write(dir.join("README.md"), readme(run, dir))
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

/// `131k ±4%`: a median and the half-width of its 95% interval over the rounds.
fn with_interval(a: &Aggregate, measure: Measure, fmt: fn(f64) -> String) -> String {
    match a.estimate(measure) {
        Some(e) => match e.half_width_pct() {
            Some(h) => format!("{} ±{h:.0}%", fmt(e.median)),
            None => fmt(e.median),
        },
        None => fmt(0.0),
    }
}

/// The leading group of a column ranked by `preferred` (or by server CPU per message where the
/// client was saturated, said by `†` in the header).
fn leaders(column: &[&Aggregate], preferred: Measure) -> (Vec<super::Server>, bool) {
    let measure = measure_for(column, preferred);
    let group = rank(column, measure).map_or_else(Vec::new, |r| r.group());
    (group, measure != preferred)
}

/// A markdown table: one row per model, one column per point of `workload`; the leading group
/// of each column by `preferred` in bold (`None`: no ranking).
fn table(
    aggregates: &[Aggregate],
    workload: Workload,
    header: &dyn Fn(&Aggregate) -> String,
    cell: &dyn Fn(&Aggregate) -> String,
    preferred: Option<Measure>,
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
    // Rows in the registry's order, whatever order the rounds ran in.
    models.sort();
    let in_column = |column: &(usize, usize, Option<u64>, u64)| -> Vec<&Aggregate> {
        points
            .iter()
            .copied()
            .filter(|a| (a.connections, a.payload, a.rate, a.work_us) == *column)
            .collect()
    };
    let leading: Vec<(Vec<super::Server>, bool)> = columns
        .iter()
        .map(|column| preferred.map_or((Vec::new(), false), |m| leaders(&in_column(column), m)))
        .collect();
    let mut out = String::from("| model |");
    for (column, (_, by_cpu)) in columns.iter().zip(&leading) {
        let sample = in_column(column)[0];
        let _ = write!(
            out,
            " {}{} |",
            header(sample),
            if *by_cpu { " †" } else { "" }
        );
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(columns.len()));
    out.push('\n');
    for model in models {
        let outside = if model.is_outside() {
            " *(outside)*"
        } else {
            ""
        };
        let _ = write!(out, "| {model}{outside} |");
        for (column, (group, _)) in columns.iter().zip(&leading) {
            let text = match in_column(column).into_iter().find(|a| a.model == model) {
                None => "–".to_owned(),
                Some(a) if a.failed && a.runs == 0 => "failed".to_owned(),
                Some(a) => {
                    let mut text = bold_if(group.contains(&model), cell(a));
                    if a.starved > 0 {
                        let _ = write!(text, " ⚠{} starved", a.starved);
                    }
                    if a.errors > 0 {
                        let _ = write!(text, " ⚠{} err", a.errors);
                    }
                    if a.workload == Workload::Rate && !a.sustained {
                        text.push_str(" ⚠behind");
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
    let mut out = load_tables(aggregates);
    out.push_str(&cost_and_work_tables(aggregates, &sweep));
    out
}

/// `title`, a blank line and `table`, when there is a table.
fn section(out: &mut String, title: &str, table: String) {
    if !table.is_empty() {
        out.push_str(title);
        out.push_str("\n\n");
        out.push_str(&table);
        out.push('\n');
    }
}

/// The column header of a ping-pong or stream point: `16 conn × 4 KiB` (UDP: `16 sockets`).
fn ping_header(a: &Aggregate) -> String {
    format!("{} {} × {}", a.connections, peers(a), size_label(a.payload))
}

/// What a point's clients are: connections, or for UDP client sockets.
fn peers(a: &Aggregate) -> &'static str {
    match (a.transport, a.connections) {
        (echo_servers::Transport::Udp, 1) => "socket",
        (echo_servers::Transport::Udp, _) => "sockets",
        _ => "conn",
    }
}

/// A median server CPU per message with its interval.
fn cpu(a: &Aggregate) -> String {
    with_interval(a, Measure::CpuPerMessage, |v| format!("{v:.1} µs"))
}

/// The tables of what each workload achieved: ping-pong, open loop, churn, stream; one table
/// after another.
fn load_tables(aggregates: &[Aggregate]) -> String {
    let mut out = String::new();
    section(
        &mut out,
        "### Ping-pong: messages/s (p99 latency; server CPU per message)",
        table(
            aggregates,
            Workload::PingPong,
            &ping_header,
            &|a| {
                format!(
                    "{} ({} µs; {})",
                    with_interval(a, Measure::Throughput, fmt_rate),
                    a.p99,
                    cpu(a)
                )
            },
            Some(Measure::Throughput),
        ),
    );
    section(
        &mut out,
        "### Open loop: server CPU per message (achieved messages/s, corrected p99)",
        table(
            aggregates,
            Workload::Rate,
            &|a| {
                format!(
                    "{}/s offered, {} {}",
                    fmt_rate(a.rate.unwrap_or(0) as f64),
                    a.connections,
                    peers(a)
                )
            },
            &|a| {
                format!(
                    "{} ({}/s, {})",
                    cpu(a),
                    fmt_rate(a.rps),
                    with_interval(a, Measure::P99, |v| format!("{v:.0} µs"))
                )
            },
            Some(Measure::CpuPerMessage),
        ),
    );
    section(
        &mut out,
        "### Churn: connections/s (p99 echo latency; server CPU per connection)",
        table(
            aggregates,
            Workload::Churn,
            &|a| format!("{} loops", a.connections),
            &|a| {
                format!(
                    "{} ({} µs; {})",
                    with_interval(a, Measure::ConnectionRate, |v| format!("{}/s", fmt_rate(v))),
                    a.p99,
                    cpu(a)
                )
            },
            Some(Measure::ConnectionRate),
        ),
    );
    section(
        &mut out,
        "### Stream: MiB/s echoed (server CPU per write)",
        table(
            aggregates,
            Workload::Stream,
            &ping_header,
            &|a| {
                format!(
                    "{} MiB/s ({})",
                    with_interval(a, Measure::Bandwidth, |v| format!("{v:.0}")),
                    cpu(a)
                )
            },
            Some(Measure::Bandwidth),
        ),
    );
    out
}

/// The tables of what the server spent in ping-pong, and of the handler-work sweep.
fn cost_and_work_tables(aggregates: &[Aggregate], sweep: &[Aggregate]) -> String {
    let mut out = String::new();
    section(
        &mut out,
        "### Server cost in ping-pong: CPU cores busy, peak RSS",
        table(
            aggregates,
            Workload::PingPong,
            &ping_header,
            &|a| {
                format!(
                    "{:.2} cores, {:.1} MiB",
                    a.server_cpu,
                    a.server_rss_kib as f64 / 1024.0
                )
            },
            None,
        ),
    );
    section(
        &mut out,
        "### Handler work: messages/s (p99 latency, Jain fairness) with CPU work per message",
        table(
            sweep,
            Workload::PingPong,
            &|a| format!("{} conn, {} µs work", a.connections, a.work_us),
            &|a| {
                format!(
                    "{} ({} µs, J {:.2})",
                    with_interval(a, Measure::Throughput, fmt_rate),
                    a.p99,
                    a.fairness
                )
            },
            Some(Measure::Throughput),
        ),
    );
    out
}

/// How quiet the machine was: what other tasks took during the measured windows, and which
/// trials were re-run or kept disturbed.
fn quietness(run: &SuiteRun) -> String {
    let mut other: Vec<f64> = run
        .points
        .iter()
        .filter_map(|p| p.interference_cores())
        .collect();
    if other.is_empty() {
        return "Machine quietness: not measured (no /proc/stat).\n\n".to_owned();
    }
    other.sort_by(f64::total_cmp);
    let reruns: u32 = run
        .points
        .iter()
        .map(|p| p.attempts.saturating_sub(1))
        .sum();
    let flagged: Vec<String> = run
        .points
        .iter()
        .filter(|p| p.interfered)
        .map(|p| {
            format!(
                "{} ({:.2} cores)",
                p.point.label(),
                p.interference_cores().unwrap_or(0.0)
            )
        })
        .collect();
    let mut text = format!(
        "Machine quietness: during the measured windows, tasks other than the server and the \
         client (plus steal) took a median of {:.2} cores, at most {:.2} (limit {:.2}; /proc/stat \
         counts 10 ms ticks, so about ±0.05 is rounding). {reruns} trial(s) were re-run for \
         interference",
        other[other.len() / 2],
        other[other.len() - 1],
        run.interference.limit_cores
    );
    if flagged.is_empty() {
        text.push_str("; none was kept above the limit.\n\n");
    } else {
        let _ = write!(
            text,
            "; {} stayed above it after {} re-run(s) and are kept, flagged: {}.\n\n",
            flagged.len(),
            run.interference.reruns,
            flagged.join(", ")
        );
    }
    text
}

/// Where the client was saturated: one line per point, with each model's rounds saturated.
fn saturation_list(aggregates: &[Aggregate]) -> String {
    let mut out = String::new();
    // One entry per point, with the models whose client saturated there.
    let mut saturated: Vec<(String, Vec<String>)> = Vec::new();
    for a in aggregates.iter().filter(|a| a.client_saturated) {
        let point = format!(
            "{} {} conn × {}{}",
            a.workload,
            a.connections,
            size_label(a.payload),
            if a.work_us > 0 {
                format!(", {} µs work", a.work_us)
            } else {
                String::new()
            }
        );
        let entry = format!("{} ({}/{})", a.model, a.client_saturated_rounds, a.runs);
        match saturated.iter_mut().find(|(p, _)| *p == point) {
            Some((_, models)) => models.push(entry),
            None => saturated.push((point, vec![entry])),
        }
    }
    if !saturated.is_empty() {
        out.push_str(
            "Client saturated (the load generator, not the server, was the limit; rounds \
             saturated of rounds run):\n\n",
        );
        for (point, models) in &saturated {
            let _ = writeln!(out, "- {point}: {}", models.join(", "));
        }
        out.push('\n');
    }
    out
}

/// The capacity knees of the full profile, as a table.
fn knee_table(run: &SuiteRun) -> String {
    let mut out = String::new();
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
    out
}

/// summary.md's parts, each Markdown, so that summary.md and index.html can order them as their
/// readers need (the page puts the advice first).
#[derive(Debug)]
pub struct Summary {
    /// The `# ` heading.
    pub title: String,
    /// How the run was made: machine, build, method, CPU split, quietness, skipped models.
    pub about: String,
    /// The tables, where the client saturated, failed points and knees.
    pub results: String,
    /// The chart files, in order.
    pub charts: Vec<String>,
    /// "Which model to pick", with its heading.
    pub advice: String,
}

impl Summary {
    /// The parts of `run`'s summary; `charts` are the files drawn.
    pub fn of(run: &SuiteRun, aggregates: &[Aggregate], charts: &[PathBuf]) -> Self {
        let title = format!("# echo-bench suite: {} profile\n\n", run.profile.name());
        let mut about = String::new();
        if run.partial {
            let _ = writeln!(
                about,
                "**Partial run**: interrupted before it finished. It holds only the {} trial(s) \
                 measured until then, so some points have fewer rounds than planned, or none.\n",
                run.points.len()
            );
        }
        let m = &run.meta;
        let _ = writeln!(
            about,
            "{} on {} ({} cores, {} MiB, kernel {}), {}, echo-bench {} at {}. Each trial: {} s \
             measured after {} s warm-up on a fresh server process, in {} interleaved round(s) \
             (models shuffled within each round from seed {}). Figures are medians over the \
             rounds, `±` the half-width of their 95% interval. In **bold**: each column's leading \
             group, the models the paired comparison over the rounds cannot separate from the \
             best by more than ±{TIE_PCT:.0}% (among models that served every connection); `†` \
             marks columns where the client was saturated, ranked by server CPU per message \
             instead of throughput.\n",
            m.time,
            m.cpu_model,
            m.cores,
            m.memory_mib,
            m.kernel,
            m.rustc,
            m.tool_version,
            m.git_revision,
            run.duration_s,
            run.warmup_s,
            run.rounds,
            run.seed
        );
        let _ = writeln!(about, "CPU split: {}.\n", run.pinning.describe());
        about.push_str(&quietness(run));
        if !run.outside.is_empty() {
            let list: Vec<String> = run
                .outside
                .iter()
                .map(|o| format!("**{}** (`{}`)", o.name, o.command))
                .collect();
            let _ = writeln!(
                about,
                "Outside servers, marked *(outside)* in the tables: started from their commands \
                 and measured like the models (same points, pinning and rounds; not the \
                 handler-work sweep): {}.\n",
                list.join(", ")
            );
        }
        if !run.skipped.is_empty() {
            let _ = writeln!(
                about,
                "Not measured (this machine cannot run them): {}.\n",
                run.skipped.join("; ")
            );
        }
        let split = super::transports::split(run, aggregates);
        let mut results = String::new();
        if split.is_empty() {
            results.push_str(&tables(aggregates));
            results.push_str(&saturation_list(aggregates));
        } else {
            let names: Vec<&str> = split.iter().map(|(t, ..)| t.name()).collect();
            let _ = writeln!(
                about,
                "Transports: {} (each with its own tables and advice; the charts are {}'s, \
                 with the TCP vs Unix comparison).\n",
                names.join(", "),
                split[0].0.name()
            );
            for (transport, _, part) in &split {
                let _ = writeln!(results, "## {}\n", super::transports::title(*transport));
                results.push_str(&tables(part));
                results.push_str(&saturation_list(part));
            }
            results.push_str(&super::transports::table(&super::transports::compare(
                aggregates,
            )));
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
            let _ = writeln!(results, "### Failed points\n\n{}\n", failures.join("\n"));
        }
        results.push_str(&knee_table(run));
        results.push_str(&super::c10k::table(&run.c10k));
        let mut advice = format!(
            "## Which model to pick\n\nGenerated from this run's numbers. A model is named alone \
             only when every comparison over the rounds separates it from the runner-up by more \
             than ±{TIE_PCT:.0}%; otherwise the leading group is named as a tie. `±` is the \
             half-width of a median's 95% interval; `[a, b]` the 95% interval of a paired \
             change.\n\n"
        );
        if split.is_empty() {
            for line in advice_of(run, aggregates) {
                let _ = writeln!(advice, "- {line}");
            }
        } else {
            for (transport, part_run, part) in &split {
                let _ = writeln!(
                    advice,
                    "### Over {}\n",
                    super::transports::title(*transport)
                );
                for line in advice_of(part_run, part) {
                    let _ = writeln!(advice, "- {line}");
                }
                advice.push('\n');
            }
            if let Some(line) = super::transports::advice(&super::transports::compare(aggregates)) {
                let _ = writeln!(advice, "### TCP or a Unix socket\n\n- {line}");
            }
        }
        Self {
            title,
            about,
            results,
            charts: charts
                .iter()
                .filter_map(|c| Some(c.file_name()?.to_string_lossy().into_owned()))
                .collect(),
            advice,
        }
    }

    /// summary.md: heading, how it was made, results, charts, advice.
    pub fn markdown(&self) -> String {
        let mut out = format!("{}{}{}", self.title, self.about, self.results);
        if !self.charts.is_empty() {
            out.push_str("### Charts\n\n");
            for name in &self.charts {
                let _ = writeln!(out, "![{name}]({name})");
            }
            out.push('\n');
        }
        out.push_str(&self.advice);
        out
    }
}

fn readme(run: &SuiteRun, dir: &Path) -> String {
    let m = &run.meta;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "# Suite run {name}\n\nWritten by echo-bench; do not edit.\n\n{}\
         - Command: `{}`\n- Profile: {}\n- Points: {} ({} failed), {:.0} s in all\n\
         - Rounds: {}, order seed {}\n\
         - Machine: {} ({} cores online, {} usable), {} MiB, kernel {}, host {}\n\
         - Build: echo-bench {} at git {}, {}\n- CPU split: {}\n\
         - When: {}\n\n\
         Files: `index.html` (the report to open: advice, sortable tables, every chart), \
         `run.json` (every point's full report, histograms included, and the environment), \
         `summary.md` (the same report as Markdown), `*.svg` (charts), `latency.hlog` (each \
         point's merged latency histograms, HdrHistogram's interval-log format; absent for runs \
         stored before histograms were kept).\n\n\
         To reproduce: check out {} and run `{}` on a similar machine. Numbers from \
         different machines or settings are not comparable.\n",
        if run.partial {
            "**Partial run**: interrupted before it finished (`partial` in run.json).\n\n"
        } else {
            ""
        },
        run.command,
        run.profile.name(),
        run.points.len(),
        run.points.iter().filter(|p| !p.ok()).count(),
        run.elapsed_s,
        run.rounds,
        run.seed,
        m.cpu_model,
        m.cores,
        m.cores_available,
        m.memory_mib,
        m.kernel,
        m.host,
        m.tool_version,
        m.git_revision,
        m.rustc,
        run.pinning.describe(),
        m.time,
        m.git_revision,
        run.command
    )
}
