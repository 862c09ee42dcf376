//! The C10K measurement ([`echo_analysis::c10k`]) as a Markdown table: per model, memory and
//! threads at no idle connection and at the target, the accept time, the active load's latency
//! and messages/s alone and beside the idle connections, and the memory kept after close.

use std::fmt::Write as _;

use echo_analysis::c10k::{ACTIVE_CONNECTIONS, CONNECT_RATE, Figures, Holding, target};
use echo_loadgen::report::Latency;

/// The C10K table, Markdown; empty without a holding.
pub fn table(holdings: &[Holding]) -> String {
    if holdings.is_empty() {
        return String::new();
    }
    let target = target(holdings);
    let mut out = format!(
        "### Holding {target} idle connections: server memory, threads, accept rate, and the \
         latency of {ACTIVE_CONNECTIONS} active connections beside them\n\n\
         | model | RSS at 0 | RSS at {target} | KiB per connection | threads at {target} | \
         s to hold all (connects at {CONNECT_RATE:.0}/s) | active p50/p99 alone | active p50/p99 beside idle | \
         active msg/s alone → beside idle | RSS after close |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let lat =
        |l: Option<Latency>| l.map_or("–".to_owned(), |l| format!("{}/{} µs", l.p50, l.p99));
    for h in holdings {
        let (first, last, kib_per_connection) = match h.figures() {
            Figures::Held {
                first,
                last,
                kib_per_connection,
            } => (first, last, kib_per_connection),
            Figures::NotApplicable(note) => {
                let _ = writeln!(out, "| {} | not applicable: {note} ||||||||| ", h.model);
                continue;
            }
            Figures::Failed(note) => {
                let _ = writeln!(out, "| {} | failed: {note} ||||||||| ", h.model);
                continue;
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {} | {:.2} | {} | {} | {:.0} → {:.0} | {} |",
            h.model,
            mib(first.rss_kib),
            mib(last.rss_kib),
            kib_per_connection,
            last.threads,
            h.accept_s,
            lat(h.baseline),
            lat(h.under_idle),
            h.baseline_rps,
            h.under_idle_rps,
            mib(h.rss_after_close_kib)
        );
    }
    out.push('\n');
    out
}
