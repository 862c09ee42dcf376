//! `echo-bench stability`'s runner: several stored runs reduced to their ranked categories
//! (the advice's and the capacity ranking's), compared by [`echo_analysis::stability`], and the
//! report written into a folder of its own.

use std::path::{Path, PathBuf};

use super::SuiteRun;
use super::advice::verdicts;
pub use echo_analysis::stability::{Agreement, Category, Contradiction, RunEntry, Stability};

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

/// Writes `README.md` and `stability.json` into a new folder under `results_dir` (made here:
/// a folder that already exists is never written into).
pub fn write(stability: &Stability, results_dir: &Path, command: &str) -> std::io::Result<PathBuf> {
    let name = super::output::unique_name("stability", &echo_loadgen::meta::Meta::current());
    let dir = results_dir.join(name);
    std::fs::create_dir_all(results_dir)?;
    std::fs::create_dir(&dir)?;
    echo_loadgen::files::write(
        &dir.join("README.md"),
        crate::render::stability::markdown(stability, command),
    )?;
    let json = serde_json::to_string_pretty(stability).map_err(std::io::Error::other)?;
    echo_loadgen::files::write(&dir.join("stability.json"), json + "\n")?;
    Ok(dir)
}
