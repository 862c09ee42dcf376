//! The C10K measurement ([`echo_analysis::c10k`]) as a Markdown table: per model, memory and
//! threads at no idle connection and at the target, the accept time, the active load's latency
//! and messages/s alone and beside the idle connections, and the memory kept after close; and
//! over TCP and TLS, what an idle TLS session adds ([`tls_table`]).

use std::fmt::Write as _;

use echo_analysis::c10k::{
    ACTIVE_CONNECTIONS, CONNECT_RATE, Figures, Holding, TlsSession, target, tls_sessions,
};
use echo_loadgen::report::Latency;
use echo_servers::Transport;

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
        let model = name(h);
        let (first, last, kib_per_connection) = match h.figures() {
            Figures::Held {
                first,
                last,
                kib_per_connection,
            } => (first, last, kib_per_connection),
            Figures::NotApplicable(note) => {
                let _ = writeln!(out, "| {model} | not applicable: {note} ||||||||| ");
                continue;
            }
            Figures::Failed(note) => {
                let _ = writeln!(out, "| {model} | failed: {note} ||||||||| ");
                continue;
            }
        };
        let _ = writeln!(
            out,
            "| {model} | {} | {} | {:.2} | {} | {:.2} | {} | {} | {:.0} → {:.0} | {} |",
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
    if holdings.iter().any(|h| h.transport == Transport::Tls) {
        out.push_str(
            "Over TLS every idle connection finished a full handshake (the server's self-signed \
             certificate, a client that checks the signatures but not the chain, no resumption) \
             and the active load ran over TLS too; the handshakes are made one at a time, so \
             the time to hold all includes the client's share of each.\n\n",
        );
    }
    out.push_str(&tls_table(&tls_sessions(holdings)));
    out
}

/// A holding's row name: the model, and the transport when it is not TCP.
fn name(h: &Holding) -> String {
    match h.transport {
        Transport::Tcp => h.model.to_string(),
        other => format!("{} over {other}", h.model),
    }
}

/// What an idle TLS session costs each model's server over an idle TCP connection, Markdown;
/// empty when no model was held both ways.
pub fn tls_table(sessions: &[TlsSession]) -> String {
    if sessions.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "### What an idle TLS session costs over TCP

\
         Server memory per idle connection (resident memory growth from none to the target), \
         over TCP and over TLS with the handshake done, in the same run. The C10K measurement \
         has no rounds: one holding per model and transport, so these are single measurements \
         paired by model, with no interval.\n\n\
         | model | KiB per idle TCP connection | KiB per idle TLS connection | a TLS session adds, KiB |\n\
         |---|---:|---:|---:|\n",
    );
    for s in sessions {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} | {:+.2} |",
            s.model,
            s.tcp_kib,
            s.tls_kib,
            s.extra_kib()
        );
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_servers::Model;

    #[test]
    fn the_tls_table_renders_each_sessions_cost_and_nothing_without_one() {
        assert_eq!(tls_table(&[]), "");
        let table = tls_table(&[TlsSession {
            model: Model::Mio,
            tcp_kib: 2.0,
            tls_kib: 15.25,
        }]);
        assert!(
            table.contains("### What an idle TLS session costs over TCP"),
            "{table}"
        );
        assert!(table.contains("| mio | 2.00 | 15.25 | +13.25 |"), "{table}");
    }
}
