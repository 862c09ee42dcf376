//! The io_uring ablation ([`echo_analysis::ablation`]) as Markdown: every step's server CPU
//! per message with the change from the step before, the other servers, then each step
//! against `mio`.

use std::fmt::Write as _;

use echo_analysis::ablation::{Ablation, Cell};
use echo_analysis::bootstrap::{Estimate, Verdict};
use echo_analysis::point::{Load, size_label};
use echo_loadgen::config::Workload;

use super::format::change as change_text;

/// A load's short label: `256 × 64 B`, `churn`, `stream 16 KiB`, `20k msg/s`.
pub fn load_label(load: &Load) -> String {
    let connections = load.connections;
    match load.workload {
        Workload::PingPong => format!("{connections} × {}", size_label(load.payload)),
        Workload::Churn => "churn".to_owned(),
        Workload::Stream => format!("stream {}", size_label(load.payload)),
        Workload::Rate => format!(
            "{}k msg/s × {connections}",
            load.rate.unwrap_or_default() / 1000
        ),
    }
}

/// `4.20 µs ±3%`.
fn estimate_text(e: &Estimate) -> String {
    super::format::with_interval(e, |v| format!("{v:.2} µs"))
}

/// The ablation as Markdown: a table of every step's server CPU per message with the change
/// from the step before, then the other servers, then each step against `mio`.
pub fn table(ablation: &Ablation) -> String {
    let mut out = String::from(
        "### io_uring ablation: server CPU per message, one technique at a time\n\n\
         Each step adds one technique to the step before; in parentheses the change from the \
         step before, paired by round, with its 95% interval (`+`: costs more). Churn is per \
         connection, stream per write. `*` where a server did not serve every connection.\n\n| server | adds |",
    );
    for load in &ablation.loads {
        let _ = write!(out, " {} |", load_label(load));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---:|".repeat(ablation.loads.len()));
    out.push('\n');
    let cell_text = |cell: &Option<Cell>, with_previous: bool| match cell {
        None => "–".to_owned(),
        Some(c) => {
            let mut text = estimate_text(&c.cpu);
            if !c.served {
                text.push_str(" *");
            }
            if with_previous && let Some(change) = &c.vs_previous {
                let _ = write!(text, " ({})", change_text(change));
            }
            text
        }
    };
    for row in &ablation.steps {
        let _ = write!(out, "| {} | {} |", row.server, row.adds.unwrap_or(""));
        for cell in &row.cells {
            let _ = write!(out, " {} |", cell_text(cell, true));
        }
        out.push('\n');
    }
    for row in &ablation.others {
        let _ = write!(out, "| {} | (another model) |", row.server);
        for cell in &row.cells {
            let _ = write!(out, " {} |", cell_text(cell, false));
        }
        out.push('\n');
    }
    if ablation
        .steps
        .iter()
        .any(|r| r.cells.iter().flatten().any(|c| c.vs_mio.is_some()))
    {
        out.push_str("\nEach step against `mio` at the same point, paired by round (`+`: costs more than mio; in bold where the rounds cannot separate them by more than ±5%):\n\n| step |");
        for load in &ablation.loads {
            let _ = write!(out, " {} |", load_label(load));
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(ablation.loads.len()));
        out.push('\n');
        for row in &ablation.steps {
            let _ = write!(out, "| {} |", row.server);
            for cell in &row.cells {
                let text = match cell.as_ref().and_then(|c| c.vs_mio.as_ref()) {
                    None => "–".to_owned(),
                    Some(change) if Cell::verdict(change) == Verdict::NoChange => {
                        format!("**{}**", change_text(change))
                    }
                    Some(change) => change_text(change),
                };
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_analysis::fixtures::ablation_run as run;

    #[test]
    fn the_table_shows_each_step_with_its_change_and_the_other_models() {
        let all = echo_analysis::aggregate::aggregate(&run());
        let ablation = echo_analysis::ablation::of(&all).unwrap();
        assert_eq!(load_label(&ablation.loads[0]), "256 × 64 B");
        let text = table(&ablation);
        assert!(
            text.contains("| io-uring.accept | multishot accept | 7.07 µs"),
            "{text}"
        );
        assert!(
            text.contains("(−12% [−12%, −12%])") || text.contains("(−13% [−13%, −13%])"),
            "{text}"
        );
        assert!(text.contains("| mio | (another model) | 4.04 µs"), "{text}");
    }
}
