//! `echo-bench history`: a store of one record per commit, and the change points of every
//! series in it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use echo_bench::history::{self, edivisive::Settings};
use echo_cli::{EXIT_FAILURE, exit_code, usage_exit};

/// Options of `echo-bench history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(subcommand)]
    command: HistoryCommand,
}

#[derive(Debug, Subcommand)]
enum HistoryCommand {
    /// Add a commit's figures (an `ab --json` report or a suite run.json) to the store.
    Append {
        /// The result to add.
        #[arg(value_name = "RUN.json")]
        result: PathBuf,
        /// The store's folder (its history.jsonl is made if missing).
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// The commit, instead of the one the result's build recorded.
        #[arg(long, value_name = "SHA")]
        commit: Option<String>,
    },
    /// Find the change points of every series (E-Divisive means), draw a trend chart per
    /// series, and exit 1 when a series' newest change point is a regression past the threshold.
    Report {
        /// The store's folder.
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// Where the trend charts go [default: STORE/charts].
        #[arg(long, value_name = "DIR")]
        charts: Option<PathBuf>,
        /// A regression smaller than this, %, does not fail the report (0 to 1000).
        #[arg(long, value_name = "PCT", default_value_t = 3.0,
              value_parser = echo_loadgen::config::number_within(0.0, 1000.0))]
        threshold: f64,
        /// The permutation test's significance level, above 0 and below 1.
        #[arg(long, default_value_t = 0.01)]
        p: f64,
        /// Change points that move the level less than this, %, are not reported (0 to 1000).
        #[arg(long, value_name = "PCT", default_value_t = 1.0,
              value_parser = echo_loadgen::config::number_within(0.0, 1000.0))]
        min_change: f64,
        /// --threshold for the counted series (instructions per message, from `ab --metric
        /// instructions`), % (0 to 1000).
        #[arg(long, value_name = "PCT", default_value_t = 0.3,
              value_parser = echo_loadgen::config::number_within(0.0, 1000.0))]
        count_threshold: f64,
        /// --min-change for the counted series, % (0 to 1000).
        #[arg(long, value_name = "PCT", default_value_t = 0.1,
              value_parser = echo_loadgen::config::number_within(0.0, 1000.0))]
        count_min_change: f64,
        /// Write the change points as JSON here.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
}

/// Runs the command.
pub fn main(args: HistoryArgs) -> ExitCode {
    match args.command {
        HistoryCommand::Append {
            result,
            store,
            commit,
        } => {
            let mut record = history::record_of(&result)
                .unwrap_or_else(|e| usage_exit("echo-bench", &format!("error: {e}")));
            if let Some(commit) = commit {
                record.commit = commit;
            }
            let (commit, figures) = (record.commit.clone(), record.figures.len());
            match history::append(&store, record) {
                Ok(path) => {
                    println!("{}: commit {commit}, {figures} figures", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("echo-bench: {e}");
                    exit_code(EXIT_FAILURE)
                }
            }
        }
        HistoryCommand::Report {
            store,
            charts,
            threshold,
            p,
            min_change,
            count_threshold,
            count_min_change,
            json,
        } => {
            let limits = Limits {
                timed: (threshold, min_change),
                counted: (count_threshold, count_min_change),
            };
            report(&store, charts, limits, p, json)
        }
    }
}

/// The threshold and the smallest change reported, %, of the timed series and of the counted
/// ones (instruction counts, whose noise is a fraction of a timed figure's).
struct Limits {
    timed: (f64, f64),
    counted: (f64, f64),
}

impl Limits {
    /// `(threshold, min_change)` of `series`.
    fn of(&self, series: &str) -> (f64, f64) {
        if history::is_counted(series) {
            self.counted
        } else {
            self.timed
        }
    }
}

fn report(
    store: &std::path::Path,
    charts: Option<PathBuf>,
    limits: Limits,
    p: f64,
    json: Option<PathBuf>,
) -> ExitCode {
    if !(p > 0.0 && p < 1.0) {
        usage_exit("echo-bench", "error: --p must be between 0 and 1");
    }
    if let Some(path) = &json
        && let Err(why) = echo_loadgen::files::check_writable(path)
    {
        usage_exit("echo-bench", &format!("error: {why}"));
    }
    let loaded =
        history::read(store).unwrap_or_else(|e| usage_exit("echo-bench", &format!("error: {e}")));
    for line in &loaded.skipped {
        eprintln!("echo-bench: warning: {line}");
    }
    let records = loaded.records;
    if records.is_empty() {
        usage_exit(
            "echo-bench",
            &format!(
                "error: {} holds no history (echo-bench history append first)",
                store.display()
            ),
        );
    }
    let settings = Settings {
        p,
        ..Settings::default()
    };
    let found = history::change_points_by(&records, &settings, &|series| limits.of(series).1);
    let commits: Vec<String> = records.iter().map(|r| r.commit.clone()).collect();
    let charts = charts.unwrap_or_else(|| store.join("charts"));
    if let Err(e) = std::fs::create_dir_all(&charts) {
        eprintln!("echo-bench: {}: {e}", charts.display());
        return exit_code(EXIT_FAILURE);
    }
    println!(
        "{} commits, {} series; change points (E-Divisive means, p < {p}):",
        records.len(),
        history::series(&records).len()
    );
    let mut failing = Vec::new();
    let mut left_alone = 0;
    for (name, points) in history::series(&records) {
        let here: Vec<&history::ChangePoint> = found.iter().filter(|c| c.series == name).collect();
        for c in &here {
            println!(
                "  {name}: at {} (commit {}), {:.4} → {:.4} ({:+.1}%, {})",
                c.index,
                c.commit,
                c.before,
                c.after,
                c.change_pct,
                if c.regression {
                    "regression"
                } else {
                    "improvement"
                }
            );
        }
        if let Some(newest) = here.last()
            && newest.regression
            && newest.change_pct.abs() >= limits.of(&name).0
        {
            failing.push(format!(
                "{name} ({:+.1}% at {})",
                newest.change_pct, newest.commit
            ));
        }
        // No `:` (a counted series' prefix): artefact uploads refuse it in file names.
        let file = charts.join(format!("{}.svg", name.replace(['/', ' ', '@', ':'], "_")));
        // A file of that name that is not a chart echo-bench drew stays as it is.
        match echo_bench::render::charts::may_replace(&file) {
            Ok(true) => {}
            Ok(false) => {
                eprintln!(
                    "echo-bench: left {} alone: it is not a chart echo-bench drew",
                    file.display()
                );
                left_alone += 1;
                continue;
            }
            Err(e) => {
                eprintln!("echo-bench: {}: {e}", file.display());
                return exit_code(EXIT_FAILURE);
            }
        }
        let values: Vec<(f64, f64)> = points.iter().map(|&(i, v, _)| (i as f64, v)).collect();
        let cuts: Vec<usize> = here
            .iter()
            .filter_map(|c| points.iter().position(|p| p.0 == c.index))
            .collect();
        if let Err(e) =
            echo_bench::render::charts::draw_trend(&file, &name, "value", &values, &cuts, &commits)
        {
            eprintln!("echo-bench: {}: {e}", file.display());
            return exit_code(EXIT_FAILURE);
        }
    }
    if found.is_empty() {
        println!("  none");
    }
    println!("trend charts in {}", charts.display());
    if let Some(path) = json
        && let Err(e) = echo_loadgen::files::write(
            &path,
            serde_json::to_string_pretty(&found).unwrap_or_default() + "\n",
        )
    {
        eprintln!("echo-bench: {}: {e}", path.display());
        return exit_code(EXIT_FAILURE);
    }
    if left_alone > 0 {
        eprintln!("echo-bench: {left_alone} trend chart(s) not drawn; move those files away");
    }
    if failing.is_empty() && left_alone == 0 {
        ExitCode::SUCCESS
    } else if failing.is_empty() {
        exit_code(EXIT_FAILURE)
    } else {
        eprintln!(
            "echo-bench: the newest change point is a regression past {}% ({}% for counts) in: {}",
            limits.timed.0,
            limits.counted.0,
            failing.join(", ")
        );
        exit_code(EXIT_FAILURE)
    }
}
