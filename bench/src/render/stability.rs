//! The stability report ([`echo_analysis::stability`]) as Markdown: the runs, one table of
//! leading groups per category, the agreement, and the contradictions.

use std::fmt::Write as _;

use echo_analysis::stability::{Stability, categories, key};

/// The report as markdown, the document top to bottom.
pub fn markdown(this: &Stability, command: &str) -> String {
    let mut out =
        String::from("# Advice stability\n\nWritten by `echo-bench stability`; do not edit.\n\n");
    let _ = writeln!(out, "- Command: `{command}`");
    let _ = writeln!(
        out,
        "- Contradictions: **{}** (a sole winner in one run that another run leaves out of \
             its leading group)\n",
        this.contradictions.len()
    );
    out.push_str("| run | folder | revision | rounds | seed | seconds | disturbed trials kept | failed trials |\n|---|---|---|---:|---:|---:|---:|---:|\n");
    for (i, r) in this.runs.iter().enumerate() {
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
    let keys = categories(&this.runs);
    out.push_str("| category |");
    for i in 0..this.runs.len() {
        let _ = write!(out, " run {} |", i + 1);
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(this.runs.len()));
    out.push('\n');
    for k in &keys {
        let _ = write!(out, "| {k} |");
        for r in &this.runs {
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
    for a in &this.agreement {
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
    if !this.contradictions.is_empty() {
        out.push_str("\n## Contradictions\n\n");
        for c in &this.contradictions {
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

fn list_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "–".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_analysis::fixtures::entry;

    #[test]
    fn the_report_shows_the_agreement_and_the_contradictions() {
        let ties = Stability::of(vec![
            entry(&[("few", &["mio", "tokio", "may"], None)]),
            entry(&[("few", &["tokio", "mio"], None)]),
            entry(&[("few", &["may", "mio"], None)]),
        ]);
        let text = markdown(&ties, "test");
        assert!(text.contains("| few (p) | mio | tokio, may |"), "{text}");
        let contradicted = Stability::of(vec![
            entry(&[("few", &["mio"], Some("mio"))]),
            entry(&[("few", &["tokio", "may"], None)]),
        ]);
        let text = markdown(&contradicted, "test");
        assert!(
            text.contains("run 1 names **mio** alone; run 2 leads with tokio, may"),
            "{text}"
        );
    }
}
