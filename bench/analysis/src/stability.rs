//! Whether the advice survives a re-run, as data: the ranked categories of several runs of the
//! same profile side by side ([`Stability::of`]), their agreement and their contradictions.
//!
//! A contradiction is a sole winner in one run that another run leaves out of its leading group
//! for the same category. A tie in one run and a winner in another is not one: the winner is a
//! member of the tie. Only a run that separates a model from the one the other run crowned
//! contradicts it.
//!
//! Since ties cannot contradict, the report also shows what a sceptical reader asks next: the
//! models in every run's leading group (the stable core of a category), and the leaders (best
//! median) that another run's data separated from its own leader.

use serde::{Deserialize, Serialize};

/// One category of the advice, as a stability check reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    /// Its title.
    pub title: String,
    /// The point it looks at.
    pub point: String,
    /// What it ranked by.
    pub measure: String,
    /// The leading group, leader first.
    pub group: Vec<String>,
    /// Every eligible model, best median first.
    pub ranked: Vec<String>,
    /// The sole winner, when the data separates one.
    pub winner: Option<String>,
}

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

/// A category's name across runs: its title and point.
pub fn key(c: &Category) -> String {
    format!("{} ({})", c.title, c.point)
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
pub fn categories(runs: &[RunEntry]) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::entry;

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
        assert_eq!(categories(&s.runs), ["few (p)"]);
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
        assert_eq!(c.category, "few (p)");
        assert_eq!(c.other_group, ["tokio", "may"]);
    }
}
