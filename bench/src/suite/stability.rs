//! Whether the advice survives a re-run: the categories of several runs of the same profile side
//! by side, and their contradictions.
//!
//! A contradiction is a sole winner in one run that another run leaves out of its leading group
//! for the same category. A tie in one run and a winner in another is not one: the winner is a
//! member of the tie. Only a run that separates a model from the one the other run crowned
//! contradicts it.
//!
//! Since ties cannot contradict, the report also shows what a sceptical reader asks next: the
//! models in every run's leading group (the stable core of a category), and the leaders (best
//! median) that another run's data separated from its own leader.

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

/// One category across the runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Agreement {
    /// The category (title and point).
    pub category: String,
    /// Models in the leading group of every run that ranked the category.
    pub always_leading: Vec<String>,
    /// Models in some runs' leading groups but not all.
    pub sometimes_leading: Vec<String>,
    /// `(run, leader)`: a run's best median that another run's data separated from its leader.
    pub leaders_left_out: Vec<(usize, String)>,
}

/// The stability report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stability {
    /// The runs compared, in the order given.
    pub runs: Vec<RunEntry>,
    /// Every contradiction.
    pub contradictions: Vec<Contradiction>,
    /// Each category's agreement across the runs.
    pub agreement: Vec<Agreement>,
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
            categories: verdicts(run)
                .into_iter()
                .chain(super::capacity::category(run))
                .collect(),
        })
        .collect();
    Stability::of(entries)
}

impl Stability {
    /// Judges runs already reduced to their categories.
    pub fn of(entries: Vec<RunEntry>) -> Stability {
        let contradictions = contradictions(&entries);
        let agreement = categories(&entries)
            .into_iter()
            .map(|k| agreement(&entries, &k))
            .collect();
        Stability {
            runs: entries,
            contradictions,
            agreement,
        }
    }
}

fn contradictions(entries: &[RunEntry]) -> Vec<Contradiction> {
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
    contradictions
}

/// Every category's key, in the order first seen.
fn categories(runs: &[RunEntry]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for r in runs {
        for c in &r.categories {
            if !keys.contains(&key(c)) {
                keys.push(key(c));
            }
        }
    }
    keys
}

fn agreement(runs: &[RunEntry], k: &str) -> Agreement {
    let ranked: Vec<(usize, &Category)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.categories.iter().find(|c| key(c) == k)?)))
        .collect();
    let mut seen: Vec<String> = Vec::new();
    for (_, c) in &ranked {
        for m in &c.group {
            if !seen.contains(m) {
                seen.push(m.clone());
            }
        }
    }
    let (always, sometimes) = seen
        .into_iter()
        .partition(|m| ranked.iter().all(|(_, c)| c.group.contains(m)));
    let leaders_left_out = ranked
        .iter()
        .filter_map(|(i, c)| {
            let leader = c.group.first()?;
            ranked
                .iter()
                .any(|(_, other)| !other.group.contains(leader))
                .then(|| (*i, leader.clone()))
        })
        .collect();
    Agreement {
        category: k.to_owned(),
        always_leading: always,
        sometimes_leading: sometimes,
        leaders_left_out,
    }
}

impl Stability {
    /// The report as markdown: the runs, one table of leading groups per category, the
    /// agreement, and the contradictions; the document top to bottom.
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
        let keys = categories(&self.runs);
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
        out.push_str(
            "\n## Agreement\n\nWhat every run agrees on: the models in each run's leading group, \
             those in only some, and any run whose leader (best median) another run separated \
             from its own leader.\n\n| category | in every run's group | in some | leaders left out by another run |\n|---|---|---|---|\n",
        );
        for a in &self.agreement {
            let left_out: Vec<String> = a
                .leaders_left_out
                .iter()
                .map(|(run, m)| format!("{m} (run {})", run + 1))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                a.category,
                list_or_dash(&a.always_leading),
                list_or_dash(&a.sometimes_leading),
                list_or_dash(&left_out)
            );
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
}

fn list_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "–".to_owned()
    } else {
        items.join(", ")
    }
}

impl Stability {
    /// Writes `README.md` and `stability.json` into a new folder under `results_dir` (made
    /// here: a folder that already exists is never written into).
    pub fn write(&self, results_dir: &Path, command: &str) -> std::io::Result<PathBuf> {
        let name = super::output::unique_name("stability", &crate::meta::Meta::current());
        let dir = results_dir.join(name);
        std::fs::create_dir_all(results_dir)?;
        std::fs::create_dir(&dir)?;
        crate::files::write(&dir.join("README.md"), self.markdown(command))?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::files::write(&dir.join("stability.json"), json + "\n")?;
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(categories: &[(&str, &[&str], Option<&str>)]) -> RunEntry {
        RunEntry {
            categories: categories
                .iter()
                .map(|(title, group, winner)| Category {
                    title: (*title).into(),
                    point: "p".into(),
                    measure: "throughput".into(),
                    group: group.iter().map(|m| (*m).into()).collect(),
                    ranked: group.iter().map(|m| (*m).into()).collect(),
                    winner: winner.map(Into::into),
                })
                .collect(),
            ..RunEntry::default()
        }
    }

    #[test]
    fn agreement_names_the_stable_core_and_leaders_another_run_separated() {
        let s = Stability::of(vec![
            entry(&[("few", &["mio", "tokio", "may"], None)]),
            entry(&[("few", &["tokio", "mio"], None)]),
            entry(&[("few", &["may", "mio"], None)]),
        ]);
        let a = &s.agreement[0];
        assert_eq!(a.always_leading, ["mio"]);
        assert_eq!(a.sometimes_leading, ["tokio", "may"]);
        // Run 2's leader tokio is outside run 3's group; run 3's leader may outside run 2's.
        assert_eq!(
            a.leaders_left_out,
            [(1, "tokio".to_owned()), (2, "may".to_owned())]
        );
        assert!(s.contradictions.is_empty(), "ties never contradict");
        let text = s.markdown("test");
        assert!(text.contains("| few (p) | mio | tokio, may |"), "{text}");
    }

    #[test]
    fn a_sole_winner_another_run_leaves_out_is_a_contradiction() {
        let s = Stability::of(vec![
            entry(&[
                ("few", &["mio"], Some("mio")),
                ("many", &["may"], Some("may")),
            ]),
            entry(&[
                ("few", &["tokio", "may"], None),
                ("many", &["tokio", "may"], None),
            ]),
        ]);
        assert_eq!(s.contradictions.len(), 1, "{:?}", s.contradictions);
        let c = &s.contradictions[0];
        assert_eq!(
            (c.winner.as_str(), c.winner_run, c.other_run),
            ("mio", 0, 1)
        );
        assert!(
            s.markdown("test")
                .contains("run 1 names **mio** alone; run 2 leads with tokio, may")
        );
    }
}
