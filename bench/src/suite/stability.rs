//! Whether the advice survives a re-run: the categories of several runs of the same profile side
//! by side, and their contradictions.
//!
//! A contradiction is a sole winner in one run that another run leaves out of its leading group
//! for the same category. A tie in one run and a winner in another is not one: the winner is a
//! member of the tie. Only a run that separates a model from the one the other run crowned
//! contradicts it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SuiteRun;
use super::advice::{Category, verdicts};

/// One run as the report lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunEntry {
    /// Its folder (or run.json).
    pub path: String,
    /// The command that made it.
    pub command: String,
    /// Git revision of the build.
    pub git_revision: String,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
    /// Rounds per point.
    pub rounds: usize,
    /// Seed of its order.
    pub seed: u64,
    /// Trials kept although disturbed.
    pub interfered: usize,
    /// Failed trials.
    pub failed: usize,
    /// Its ranked categories.
    pub categories: Vec<Category>,
}

/// A sole winner that another run left out of its leading group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contradiction {
    /// The category (title and point).
    pub category: String,
    /// The model one run crowned.
    pub winner: String,
    /// The run that crowned it (index into `runs`).
    pub winner_run: usize,
    /// The run that left it out.
    pub other_run: usize,
    /// That run's leading group.
    pub other_group: Vec<String>,
}

/// The stability report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stability {
    /// The runs compared, in the order given.
    pub runs: Vec<RunEntry>,
    /// Every contradiction.
    pub contradictions: Vec<Contradiction>,
}

fn key(c: &Category) -> String {
    format!("{} ({})", c.title, c.point)
}

/// Compares the runs' categories.
pub fn check(runs: &[(PathBuf, SuiteRun)]) -> Stability {
    let entries: Vec<RunEntry> = runs
        .iter()
        .map(|(path, run)| RunEntry {
            path: path.display().to_string(),
            command: run.command.clone(),
            git_revision: run.meta.git_revision.clone(),
            elapsed_s: run.elapsed_s,
            rounds: run.rounds,
            seed: run.seed,
            interfered: run.points.iter().filter(|p| p.interfered).count(),
            failed: run.points.iter().filter(|p| !p.ok()).count(),
            categories: verdicts(run),
        })
        .collect();
    let mut contradictions = Vec::new();
    for (i, a) in entries.iter().enumerate() {
        for category in &a.categories {
            let Some(winner) = &category.winner else {
                continue;
            };
            for (j, b) in entries.iter().enumerate() {
                let Some(other) = b.categories.iter().find(|c| key(c) == key(category)) else {
                    continue;
                };
                if j != i && !other.group.contains(winner) {
                    contradictions.push(Contradiction {
                        category: key(category),
                        winner: winner.clone(),
                        winner_run: i,
                        other_run: j,
                        other_group: other.group.clone(),
                    });
                }
            }
        }
    }
    Stability {
        runs: entries,
        contradictions,
    }
}

impl Stability {
    /// The report as markdown: the runs, one table of leading groups per category, and the
    /// contradictions.
    pub fn markdown(&self, command: &str) -> String {
        let mut out = String::from(
            "# Advice stability\n\nWritten by `echo-bench stability`; do not edit.\n\n",
        );
        let _ = writeln!(out, "- Command: `{command}`");
        let _ = writeln!(
            out,
            "- Contradictions: **{}** (a sole winner in one run that another run leaves out of \
             its leading group)\n",
            self.contradictions.len()
        );
        out.push_str("| run | folder | revision | rounds | seed | seconds | disturbed trials kept | failed trials |\n|---|---|---|---:|---:|---:|---:|---:|\n");
        for (i, r) in self.runs.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {:.0} | {} | {} |",
                i + 1,
                r.path,
                r.git_revision,
                r.rounds,
                r.seed,
                r.elapsed_s,
                r.interfered,
                r.failed
            );
        }
        out.push_str(
            "\nLeading group of each category per run: a **bold** model is a sole winner; \
             otherwise the models listed are tied (the data cannot separate them).\n\n",
        );
        let mut keys: Vec<String> = Vec::new();
        for r in &self.runs {
            for c in &r.categories {
                if !keys.contains(&key(c)) {
                    keys.push(key(c));
                }
            }
        }
        out.push_str("| category |");
        for i in 0..self.runs.len() {
            let _ = write!(out, " run {} |", i + 1);
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(self.runs.len()));
        out.push('\n');
        for k in &keys {
            let _ = write!(out, "| {k} |");
            for r in &self.runs {
                let cell = match r.categories.iter().find(|c| key(c) == *k) {
                    None => "–".to_owned(),
                    Some(c) => match &c.winner {
                        Some(w) => format!("**{w}** (by {})", c.measure),
                        None => format!("tied: {} (by {})", c.group.join(", "), c.measure),
                    },
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        if !self.contradictions.is_empty() {
            out.push_str("\n## Contradictions\n\n");
            for c in &self.contradictions {
                let _ = writeln!(
                    out,
                    "- {}: run {} names **{}** alone; run {} leads with {}",
                    c.category,
                    c.winner_run + 1,
                    c.winner,
                    c.other_run + 1,
                    c.other_group.join(", ")
                );
            }
        }
        out
    }

    /// Writes `README.md` and `stability.json` into a new folder under `results_dir`.
    pub fn write(&self, results_dir: &Path, command: &str) -> std::io::Result<PathBuf> {
        let name = super::output::unique_name("stability", &crate::meta::Meta::current());
        let dir = results_dir.join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("README.md"), self.markdown(command))?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("stability.json"), json + "\n")?;
        Ok(dir)
    }
}
