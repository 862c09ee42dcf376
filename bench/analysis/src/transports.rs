//! A run over several transports (`suite --transports tcp,unix,udp`): each transport's share of
//! the run ([`of`], [`split`]), so that it gets its own tables and advice, and the comparison of
//! TCP with Unix sockets ([`compare`]): each model's server CPU per message at the loads
//! measured on both, paired by round and judged with the same paired bootstrap as every other
//! comparison ([`Change`]).

use std::collections::BTreeMap;

use echo_loadgen::config::Workload;
use echo_servers::Transport;

use crate::aggregate::{Aggregate, Measure, TIE_PCT, at_base_work};
use crate::bootstrap::{Change, Verdict};
use crate::run::SuiteRun;
use crate::server::Server;

/// The seed of the comparisons' bootstrap (fixed, so a redraw gives the same intervals).
const SEED: u64 = 0x7c9_0a1e;

/// The transports measured in `run`, in the order reports list them.
pub fn present(run: &SuiteRun) -> Vec<Transport> {
    Transport::ALL
        .into_iter()
        .filter(|&t| run.points.iter().any(|p| p.point.transport == t))
        .collect()
}

/// `run` with only `transport`'s points. The C10K measurement and the capacity searches are TCP's.
pub fn of(run: &SuiteRun, transport: Transport) -> SuiteRun {
    let tcp = transport == Transport::Tcp;
    SuiteRun {
        points: run
            .points
            .iter()
            .filter(|p| p.point.transport == transport)
            .cloned()
            .collect(),
        capacity: if tcp {
            run.capacity.clone()
        } else {
            Vec::new()
        },
        c10k: if tcp { run.c10k.clone() } else { Vec::new() },
        ..run.clone()
    }
}

/// Each transport of a run measured over several (or over one other than TCP) with its share of
/// the run and its aggregates; empty for a TCP-only run, which reports as it always has.
pub fn split(run: &SuiteRun, all: &[Aggregate]) -> Vec<(Transport, SuiteRun, Vec<Aggregate>)> {
    let present = present(run);
    if present.len() <= 1 && present.iter().all(|&t| t == Transport::Tcp) {
        return Vec::new();
    }
    present
        .into_iter()
        .map(|t| {
            let aggregates = all
                .iter()
                .filter(|a| a.load.transport == t)
                .cloned()
                .collect();
            (t, of(run, t), aggregates)
        })
        .collect()
}

/// One part of a run's report: a transport's share (over several transports), or the whole
/// run (`transport: None`, a TCP-only run, which reports as it always has).
#[derive(Debug, Clone)]
pub struct Section<'a> {
    /// The transport, when the run was split by transport.
    pub transport: Option<Transport>,
    /// The part of the run.
    pub run: std::borrow::Cow<'a, SuiteRun>,
    /// Its aggregates.
    pub aggregates: std::borrow::Cow<'a, [Aggregate]>,
}

/// The parts a run's report shows one after another, each with its own tables and advice:
/// [`split`]'s, or the whole run as one part.
pub fn sections<'a>(run: &'a SuiteRun, all: &'a [Aggregate]) -> Vec<Section<'a>> {
    let split = split(run, all);
    if split.is_empty() {
        return vec![Section {
            transport: None,
            run: std::borrow::Cow::Borrowed(run),
            aggregates: std::borrow::Cow::Borrowed(all),
        }];
    }
    split
        .into_iter()
        .map(|(t, run, aggregates)| Section {
            transport: Some(t),
            run: std::borrow::Cow::Owned(run),
            aggregates: std::borrow::Cow::Owned(aggregates),
        })
        .collect()
}

/// One model at one load on both TCP and a Unix socket: server CPU per message.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The model.
    pub model: Server,
    /// Connections.
    pub connections: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Median µs per message over TCP.
    pub tcp_us: f64,
    /// Median µs per message over the Unix socket.
    pub unix_us: f64,
    /// The paired change from TCP (base) to Unix (head), over the rounds both measured.
    pub change: Option<Change>,
}

impl Comparison {
    /// Whether the interval puts Unix cheaper by more than [`TIE_PCT`].
    pub fn unix_cheaper(&self) -> bool {
        self.change
            .as_ref()
            .is_some_and(|c| c.verdict(TIE_PCT, false) == Verdict::Improved)
    }
}

/// Every model's ping-pong points (at base work) measured over both TCP and a Unix socket,
/// each with the paired change of server CPU per message, in load then registry order.
pub fn compare(all: &[Aggregate]) -> Vec<Comparison> {
    let base = at_base_work(all);
    let key = |a: &Aggregate| (a.model.clone(), a.load.connections, a.load.payload);
    let ping = |t: Transport| -> BTreeMap<_, &Aggregate> {
        base.iter()
            .filter(|a| {
                a.load.transport == t && a.load.workload == Workload::PingPong && a.served()
            })
            .map(|a| (key(a), a))
            .collect()
    };
    let (tcp, unix) = (ping(Transport::Tcp), ping(Transport::Unix));
    let mut out: Vec<Comparison> = tcp
        .iter()
        .filter_map(|(k, t)| {
            let u = unix.get(k)?;
            let (te, ue) = (
                t.estimate(Measure::CpuPerMessage)?,
                u.estimate(Measure::CpuPerMessage)?,
            );
            let pairs = u.paired_with(t, Measure::CpuPerMessage);
            Some(Comparison {
                model: k.0.clone(),
                connections: k.1,
                payload: k.2,
                tcp_us: te.median,
                unix_us: ue.median,
                change: Change::of(&pairs, SEED),
            })
        })
        .collect();
    out.sort_by_key(|c| (c.connections, c.payload, c.model.clone()));
    out
}

/// The loads compared, in order.
pub fn loads(comparisons: &[Comparison]) -> Vec<(usize, usize)> {
    let mut loads: Vec<(usize, usize)> = comparisons
        .iter()
        .map(|c| (c.connections, c.payload))
        .collect();
    loads.sort_unstable();
    loads.dedup();
    loads
}

/// What a Unix socket saves at one load, over the models compared there.
#[derive(Debug, Clone, PartialEq)]
pub struct Saving {
    /// Connections.
    pub connections: usize,
    /// Payload bytes.
    pub payload: usize,
    /// The median over the models of each one's paired change from TCP to Unix, %.
    pub median_pct: f64,
    /// The smallest change, %.
    pub lowest_pct: f64,
    /// The largest change, %.
    pub highest_pct: f64,
    /// The models with a paired change.
    pub models: usize,
    /// Those the data puts cheaper over Unix by more than [`TIE_PCT`].
    pub cheaper: usize,
    /// The model cheapest over Unix, and its median µs per message there.
    pub cheapest: Option<(Server, f64)>,
}

/// What a Unix socket saves, per load compared (those where no model has a paired change are
/// left out), in load order.
pub fn savings(comparisons: &[Comparison]) -> Vec<Saving> {
    loads(comparisons)
        .into_iter()
        .filter_map(|(connections, payload)| {
            let at: Vec<&Comparison> = comparisons
                .iter()
                .filter(|c| (c.connections, c.payload) == (connections, payload))
                .collect();
            let mut changes: Vec<f64> = at
                .iter()
                .filter_map(|c| c.change.as_ref().map(|ch| ch.change_pct))
                .collect();
            if changes.is_empty() {
                return None;
            }
            changes.sort_by(f64::total_cmp);
            Some(Saving {
                connections,
                payload,
                median_pct: crate::bootstrap::median(&changes).unwrap_or(0.0),
                lowest_pct: changes[0],
                highest_pct: changes[changes.len() - 1],
                models: changes.len(),
                cheaper: at.iter().filter(|c| c.unix_cheaper()).count(),
                cheapest: at
                    .iter()
                    .filter(|c| c.change.is_some())
                    .min_by(|a, b| a.unix_us.total_cmp(&b.unix_us))
                    .map(|c| (c.model.clone(), c.unix_us)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::Change;
    use echo_servers::Model;

    fn comparison(model: Model, connections: usize, tcp_us: f64, unix_us: f64) -> Comparison {
        let pairs: Vec<(f64, f64)> = (0..3)
            .map(|r| {
                (
                    tcp_us * (1.0 + 0.01 * r as f64),
                    unix_us * (1.0 + 0.01 * r as f64),
                )
            })
            .collect();
        Comparison {
            model: model.into(),
            connections,
            payload: 64,
            tcp_us,
            unix_us,
            change: Change::of(&pairs, 1),
        }
    }

    #[test]
    fn savings_give_each_loads_median_range_and_cheapest_model() {
        let comparisons = [
            comparison(Model::Mio, 1, 10.0, 5.0),
            comparison(Model::Tokio, 1, 10.0, 9.8),
            comparison(Model::Blocking, 1, 10.0, 6.0),
            comparison(Model::Mio, 16, 4.0, 2.0),
        ];
        let savings = savings(&comparisons);
        assert_eq!(savings.len(), 2);
        let one = &savings[0];
        assert_eq!((one.connections, one.payload, one.models), (1, 64, 3));
        assert!((one.median_pct + 40.0).abs() < 0.5, "{one:?}");
        assert!((one.lowest_pct + 50.0).abs() < 0.5, "{one:?}");
        assert!((one.highest_pct + 2.0).abs() < 0.5, "{one:?}");
        assert_eq!(one.cheaper, 2, "tokio's 2% is inside the tie threshold");
        assert_eq!(one.cheapest, Some((Model::Mio.into(), 5.0)));
        assert_eq!(savings[1].models, 1);
    }

    #[test]
    fn a_tcp_only_run_is_one_section() {
        let run = SuiteRun::default();
        let sections = sections(&run, &[]);
        assert_eq!(sections.len(), 1);
        assert_eq!(sections[0].transport, None);
    }
}
