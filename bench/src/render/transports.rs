//! A run over several transports, shown: each transport's title, and the comparisons of TCP with
//! Unix sockets and with TLS (computed by [`echo_analysis::transports`]), each as a table and
//! an advice line.

use echo_analysis::aggregate::TIE_PCT;
use echo_analysis::point::size_label;
use echo_analysis::server::Server;
use echo_analysis::transports::{Comparison, Saving, loads};
use echo_loadgen::config::Workload;
use echo_servers::Transport;

use super::Style;
use super::format::signed_pct as signed;
use super::table::{Cell, Column, Grid, Row};

/// How reports title a transport's section.
pub fn title(transport: Transport) -> &'static str {
    match transport {
        Transport::Tcp => "TCP",
        Transport::Unix => "Unix domain sockets",
        Transport::Udp => "UDP datagrams",
        Transport::Tls => "TLS over TCP",
    }
}

/// `7.9 → 4.1 µs (−48% [−52, −44])`.
fn cell(c: &Comparison) -> String {
    let change = c.change.as_ref().map_or(String::new(), |c| {
        format!(" ({})", super::format::change(c))
    });
    format!("{:.1} → {:.1} µs{change}", c.tcp_us, c.other_us)
}

/// The short name of the transport compared with TCP.
fn short(other: Transport) -> &'static str {
    match other {
        Transport::Unix => "Unix",
        Transport::Tls => "TLS",
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    }
}

/// `ping-pong 1 conn × 64 B`, `churn 4 conn` (a churn message is a whole connection).
fn load_label(workload: Workload, resumed: bool, connections: usize, payload: usize) -> String {
    match workload {
        Workload::Churn if resumed => format!("churn {connections} conn, resumed"),
        Workload::Churn => format!("churn {connections} conn"),
        _ => format!("{connections} conn × {}", size_label(payload)),
    }
}

/// The comparisons with one transport (all of `comparisons` are with the same one) as a table:
/// one row per model, one column per load.
pub fn grid(comparisons: &[Comparison]) -> Grid {
    let loads = loads(comparisons);
    let mut models: Vec<Server> = comparisons.iter().map(|c| c.model.clone()).collect();
    models.sort();
    models.dedup();
    let other = comparisons.first().map_or(Transport::Unix, |c| c.other);
    let title = match other {
        Transport::Tls => {
            "### What TLS costs: server CPU per message (ping-pong) and per connection (churn: \
             connect, handshake, one echo, close)"
                .to_owned()
        }
        _ => format!(
            "### TCP vs {}: server CPU per message, ping-pong",
            title(other).replace("Unix domain sockets", "Unix sockets")
        ),
    };
    Grid {
        title,
        columns: loads
            .iter()
            .map(|load| {
                let c = comparisons
                    .iter()
                    .find(|c| c.load() == *load)
                    .expect("every load comes from a comparison");
                Column {
                    header: load_label(c.workload, c.resumed, c.connections, c.payload),
                    by_cpu: false,
                }
            })
            .collect(),
        rows: models
            .into_iter()
            .map(|model| Row {
                cells: loads
                    .iter()
                    .map(|load| {
                        comparisons
                            .iter()
                            .find(|c| c.model == model && c.load() == *load)
                            .map_or(Cell::Missing, |c| Cell::Value {
                                text: cell(c),
                                leading: false,
                                warnings: Vec::new(),
                            })
                    })
                    .collect(),
                server: model,
            })
            .collect(),
    }
}

/// The markdown table, under its title and what its cells hold.
pub fn table(comparisons: &[Comparison]) -> String {
    if comparisons.is_empty() {
        return String::new();
    }
    let grid = grid(comparisons);
    format!(
        "{}\n\nTCP → {} medians, and the paired change with its 95% interval over the \
         rounds.\n\n{}\n",
        grid.title,
        short(comparisons[0].other),
        grid.markdown()
    )
}

/// The advice line on what TLS costs, per load: the median change over the models, its range,
/// how many models the data puts dearer, and the cheapest model over TLS.
pub fn tls_advice(savings: &[Saving], style: Style) -> Option<String> {
    let parts: Vec<String> = savings
        .iter()
        .map(|s| {
            let what = match s.workload {
                Workload::Churn if s.resumed => "server CPU per connection (a resumed handshake)",
                Workload::Churn => "server CPU per connection (the handshake)",
                _ => "server CPU per message (the records' encryption)",
            };
            format!(
                "at {} {what} changes by a median {} over {} models (from {} to {}); the data \
                 puts TLS dearer by more than ±{TIE_PCT:.0}% for {} of them{}",
                load_label(s.workload, s.resumed, s.connections, s.payload),
                signed(s.median_pct),
                s.models,
                signed(s.lowest_pct),
                signed(s.highest_pct),
                s.dearer,
                s.cheapest
                    .as_ref()
                    .map_or(String::new(), |(model, us)| format!(
                        "; cheapest over TLS: {model} at {us:.1} µs"
                    ))
            )
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "{}: {}.",
            style.bold("What TLS costs over TCP"),
            parts.join("; ")
        )
    })
}

/// The advice line on what a Unix socket saves, per load: the median change over the models,
/// its range, and how many models the data separates.
pub fn advice(savings: &[Saving], style: Style) -> Option<String> {
    let parts: Vec<String> = savings
        .iter()
        .map(|s| {
            format!(
                "at {} server CPU per message changes by a median {} over {} \
                 models (from {} to {}); the data puts Unix cheaper by more than ±{TIE_PCT:.0}% for \
                 {} of them{}",
                load_label(s.workload, s.resumed, s.connections, s.payload),
                signed(s.median_pct),
                s.models,
                signed(s.lowest_pct),
                signed(s.highest_pct),
                s.cheaper,
                s.cheapest.as_ref().map_or(String::new(), |(model, us)| format!(
                    "; cheapest over Unix: {model} at {us:.1} µs"
                ))
            )
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "{} (same host: sidecars, local databases, proxies): {}. \
             Without the TCP stack, more of each message's cost is the model's own.",
            style.bold("Unix sockets instead of TCP"),
            parts.join("; ")
        )
    })
}
