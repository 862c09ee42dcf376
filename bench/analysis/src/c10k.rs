//! The C10K measurement's data: what holding many mostly idle connections cost one model on
//! one transport (TCP, or TLS: every idle connection a finished handshake), and what an idle
//! TLS session costs the server over an idle TCP connection ([`tls_sessions`]).

use echo_loadgen::report::Latency;
use echo_servers::{Model, Transport};
use serde::{Deserialize, Serialize};

use crate::status::Status;

/// Connections of the active load.
pub const ACTIVE_CONNECTIONS: usize = 16;

/// Idle connections opened per second: fast enough to reach 10,000 in 2 s, slow enough not to
/// overflow a 4096 backlog before the server accepts. (A constant of the measurement, not
/// stored in run.json: the report says it beside the accept times.)
pub const CONNECT_RATE: f64 = 5_000.0;

/// One level of held connections and what the server used there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// Idle connections held.
    pub connections: usize,
    /// The server's resident memory, KiB.
    pub rss_kib: u64,
    /// The server's threads.
    pub threads: u64,
}

/// One model's C10K result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Holding {
    /// The model.
    #[serde(with = "crate::point::model_name")]
    pub model: Model,
    /// The transport of the idle connections and the active load: TCP (and in runs stored
    /// before the C10K measurement was made over TLS), or TLS.
    #[serde(with = "crate::point::transport_name")]
    pub transport: Transport,
    /// [`Status::Ok`], [`Status::NotApplicable`] (a bounded model) or [`Status::Failed`].
    pub status: Status,
    /// Why not applicable, or why it failed.
    pub note: Option<String>,
    /// The idle connections asked for.
    pub target: usize,
    /// RSS and threads at each level, from 0 up to the target.
    pub levels: Vec<Level>,
    /// Seconds from the first connect until the server held every connection.
    pub accept_s: f64,
    /// The active load with no idle connection.
    pub baseline: Option<Latency>,
    /// The same load with the idle connections held.
    pub under_idle: Option<Latency>,
    /// Messages/s of the active load, without and with the idle connections.
    pub baseline_rps: f64,
    /// See `baseline_rps`.
    pub under_idle_rps: f64,
    /// Idle connections that failed to open, or to echo at the end.
    pub errors: u64,
    /// The server's RSS after every connection closed, KiB.
    pub rss_after_close_kib: u64,
}

impl Default for Holding {
    fn default() -> Self {
        Self {
            model: Model::ALL[0],
            transport: Transport::Tcp,
            status: Status::Failed,
            note: None,
            target: 0,
            levels: Vec::new(),
            accept_s: 0.0,
            baseline: None,
            under_idle: None,
            baseline_rps: 0.0,
            under_idle_rps: 0.0,
            errors: 0,
            rss_after_close_kib: 0,
        }
    }
}

impl Holding {
    /// Resident memory per held connection, KiB: the growth from no connection to the target.
    pub fn kib_per_connection(&self) -> Option<f64> {
        let first = self.levels.first()?;
        let last = self.levels.last()?;
        (last.connections > first.connections).then(|| {
            (last.rss_kib as f64 - first.rss_kib as f64)
                / (last.connections - first.connections) as f64
        })
    }

    /// What the C10K table shows of it: the memory and threads at no idle connection and at
    /// the target, or why it has none.
    pub fn figures(&self) -> Figures<'_> {
        let note = self.note.as_deref().unwrap_or_default();
        match self.status {
            Status::Ok => Figures::Held {
                first: self.levels.first().copied().unwrap_or_default(),
                last: self.levels.last().copied().unwrap_or_default(),
                kib_per_connection: self.kib_per_connection().unwrap_or(0.0),
            },
            Status::NotApplicable => Figures::NotApplicable(note),
            Status::Failed => Figures::Failed(note),
        }
    }

    /// Connections accepted per second.
    pub fn accept_rate(&self) -> f64 {
        self.target as f64 / self.accept_s.max(1e-9)
    }
}

/// One model's row of the C10K table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figures<'a> {
    /// It held every connection.
    Held {
        /// The level with no idle connection.
        first: Level,
        /// The level at the target.
        last: Level,
        /// Resident memory per held connection, KiB (0 with a single level).
        kib_per_connection: f64,
    },
    /// A bounded model, and why.
    NotApplicable(&'a str),
    /// It failed, and why.
    Failed(&'a str),
}

/// The idle connections the table is titled by: the most any model was asked to hold.
pub fn target(holdings: &[Holding]) -> usize {
    holdings.iter().map(|h| h.target).max().unwrap_or(0)
}

/// What an idle TLS session costs one model's server over an idle TCP connection: its memory
/// per idle connection measured both ways, in the same run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TlsSession {
    /// The model.
    pub model: Model,
    /// KiB per idle TCP connection.
    pub tcp_kib: f64,
    /// KiB per idle TLS connection (the handshake done).
    pub tls_kib: f64,
}

impl TlsSession {
    /// KiB the TLS session adds to an idle connection: `tls_kib - tcp_kib`.
    pub fn extra_kib(&self) -> f64 {
        self.tls_kib - self.tcp_kib
    }
}

/// Every model held over both TCP and TLS, in the order of its TCP holding, with its memory
/// per idle connection each way. The C10K measurement has no rounds (one holding per model and
/// transport), so the two are single measurements paired by model, with no interval; a model
/// not held over both (failed, not applicable, or measured over one transport) is left out.
pub fn tls_sessions(holdings: &[Holding]) -> Vec<TlsSession> {
    let held = |h: &&Holding| h.status == Status::Ok;
    holdings
        .iter()
        .filter(|h| h.transport == Transport::Tcp)
        .filter(held)
        .filter_map(|tcp| {
            let tls = holdings
                .iter()
                .filter(held)
                .find(|h| h.transport == Transport::Tls && h.model == tcp.model)?;
            Some(TlsSession {
                model: tcp.model,
                tcp_kib: tcp.kib_per_connection()?,
                tls_kib: tls.kib_per_connection()?,
            })
        })
        .collect()
}

/// The levels sampled on the way to `target`: 0, 100, 1,000, 3,000, 10,000 (those below it),
/// and the target.
pub fn levels(target: usize) -> Vec<usize> {
    let mut levels: Vec<usize> = [0, 100, 1_000, 3_000, 10_000]
        .into_iter()
        .filter(|&l| l < target)
        .collect();
    levels.push(target);
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(connections: usize, rss_kib: u64) -> Level {
        Level {
            connections,
            rss_kib,
            threads: 2,
        }
    }

    #[test]
    fn levels_climb_to_the_target() {
        assert_eq!(levels(10_000), [0, 100, 1_000, 3_000, 10_000]);
        assert_eq!(levels(2_000), [0, 100, 1_000, 2_000]);
        assert_eq!(levels(50), [0, 50]);
    }

    #[test]
    fn a_holding_shows_its_first_and_last_level_or_why_it_has_none() {
        let held = Holding {
            status: Status::Ok,
            target: 10_000,
            levels: vec![level(0, 4_000), level(100, 4_100), level(10_000, 54_000)],
            ..Holding::default()
        };
        assert_eq!(
            held.figures(),
            Figures::Held {
                first: level(0, 4_000),
                last: level(10_000, 54_000),
                kib_per_connection: 5.0
            }
        );
        let bounded = Holding {
            status: Status::NotApplicable,
            note: Some("serves at most 4".into()),
            ..Holding::default()
        };
        assert_eq!(
            bounded.figures(),
            Figures::NotApplicable("serves at most 4")
        );
        let failed = Holding::default();
        assert_eq!(failed.figures(), Figures::Failed(""));
        assert_eq!(target(&[held, bounded, failed]), 10_000);
        assert_eq!(target(&[]), 0);
    }

    /// mio: 2 KiB per TCP connection and 15 KiB per TLS one, so a TLS session costs 13; tokio
    /// is held over TCP only, glommio's TLS holding failed: neither has a TLS cost.
    #[test]
    fn an_idle_tls_session_costs_the_difference_of_the_two_holdings() {
        let holding = |model, transport, status, top: u64| Holding {
            model,
            transport,
            status,
            target: 1_000,
            levels: vec![level(0, 4_000), level(1_000, 4_000 + top)],
            ..Holding::default()
        };
        let holdings = [
            holding(Model::Tokio, Transport::Tcp, Status::Ok, 3_000),
            holding(Model::Mio, Transport::Tcp, Status::Ok, 2_000),
            holding(Model::Glommio, Transport::Tcp, Status::Ok, 2_500),
            holding(Model::Mio, Transport::Tls, Status::Ok, 15_000),
            holding(Model::Glommio, Transport::Tls, Status::Failed, 90_000),
        ];
        let sessions = tls_sessions(&holdings);
        assert_eq!(
            sessions,
            [TlsSession {
                model: Model::Mio,
                tcp_kib: 2.0,
                tls_kib: 15.0
            }]
        );
        assert_eq!(sessions[0].extra_kib(), 13.0);
        assert!(tls_sessions(&holdings[..3]).is_empty());
    }

    #[test]
    fn a_holding_stored_before_tls_reads_back_as_tcp() {
        let json = serde_json::json!({"model": "mio", "status": "ok", "target": 10});
        let holding: Holding = serde_json::from_value(json).unwrap();
        assert_eq!(holding.transport, Transport::Tcp);
        let mut tls = holding.clone();
        tls.transport = Transport::Tls;
        let back: Holding = serde_json::from_value(serde_json::to_value(&tls).unwrap()).unwrap();
        assert_eq!(back.transport, Transport::Tls);
    }

    #[test]
    fn memory_per_connection_is_the_growth_over_the_connections() {
        let holding = Holding {
            levels: vec![level(0, 4_000), level(10_000, 54_000)],
            target: 10_000,
            accept_s: 2.0,
            ..Holding::default()
        };
        assert_eq!(holding.kib_per_connection(), Some(5.0));
        assert_eq!(holding.accept_rate(), 5_000.0);
    }
}
