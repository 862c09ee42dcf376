//! A run over several transports (`suite --transports tcp,unix,udp`): each transport's share of
//! the run ([`of`], [`split`]), so that it gets its own tables and advice, and the comparison of
//! TCP with another stream transport ([`compare`]): each model's server CPU per message at the
//! loads measured on both, paired by round and judged with the same paired bootstrap as every
//! other comparison ([`Change`]). Against a Unix socket the loads are ping-pong's (what leaving
//! out the TCP stack saves); against TLS they are ping-pong's and churn's, where a message is a
//! whole connection, so the comparison is what encryption costs per message and what a
//! handshake costs per connection.

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

/// `run` with only `transport`'s points. The capacity searches are TCP's, and so is the C10K
/// measurement: TCP's share carries all of it (whichever transports it held connections over),
/// and its advice is of the TCP holdings, with what TLS adds ([`crate::advice::c10k`]).
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

/// One model at one load on both TCP and another transport: server CPU per message.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The model.
    pub model: Server,
    /// The transport compared with TCP.
    pub other: Transport,
    /// Ping-pong (per message) or churn (per connection: one message each).
    pub workload: Workload,
    /// Connections.
    pub connections: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Over TLS, whether the handshakes were resumed ones (churn with session tickets).
    pub resumed: bool,
    /// Median µs per message over TCP.
    pub tcp_us: f64,
    /// Median µs per message over the other transport.
    pub other_us: f64,
    /// The paired change from TCP (base) to the other transport (head), over the rounds both
    /// measured.
    pub change: Option<Change>,
}

impl Comparison {
    /// Whether the interval puts the other transport cheaper by more than [`TIE_PCT`].
    pub fn other_cheaper(&self) -> bool {
        self.verdict() == Some(Verdict::Improved)
    }

    /// Whether the interval puts the other transport dearer by more than [`TIE_PCT`].
    pub fn other_dearer(&self) -> bool {
        self.verdict() == Some(Verdict::Regressed)
    }

    fn verdict(&self) -> Option<Verdict> {
        self.change.as_ref().map(|c| c.verdict(TIE_PCT, false))
    }
}

/// The workloads compared between TCP and `other`.
pub fn workloads_compared(other: Transport) -> &'static [Workload] {
    match other {
        Transport::Tls => &[Workload::PingPong, Workload::Churn],
        _ => &[Workload::PingPong],
    }
}

/// Every model's points (at base work) of [`workloads_compared`] measured over both TCP and
/// `other`, each with the paired change of server CPU per message, in load then registry order.
pub fn compare(all: &[Aggregate], other: Transport) -> Vec<Comparison> {
    let base = at_base_work(all);
    let workloads = workloads_compared(other);
    // Over TLS, churn is measured with full handshakes and with resumed ones; both are
    // compared with the same TCP churn (a TCP connection has no handshake to resume).
    let key = |a: &Aggregate, resumed: bool| {
        (
            a.load.workload,
            a.model.clone(),
            a.load.connections,
            a.load.payload,
            resumed,
        )
    };
    let on = |t: Transport| -> BTreeMap<_, &Aggregate> {
        base.iter()
            .filter(|a| a.load.transport == t && workloads.contains(&a.load.workload) && a.served())
            .map(|a| (key(a, a.load.tls_resume), a))
            .collect()
    };
    let (tcp, others) = (on(Transport::Tcp), on(other));
    let mut out: Vec<Comparison> = others
        .iter()
        .filter_map(|(k, u)| {
            let t = tcp.get(&(k.0, k.1.clone(), k.2, k.3, false))?;
            let (te, ue) = (
                t.estimate(Measure::CpuPerMessage)?,
                u.estimate(Measure::CpuPerMessage)?,
            );
            let pairs = u.paired_with(t, Measure::CpuPerMessage);
            Some(Comparison {
                model: k.1.clone(),
                other,
                workload: k.0,
                connections: k.2,
                payload: k.3,
                resumed: k.4,
                tcp_us: te.median,
                other_us: ue.median,
                change: Change::of(&pairs, SEED),
            })
        })
        .collect();
    out.sort_by_key(|c| (c.load(), c.model.clone()));
    out
}

impl Comparison {
    /// The load compared: workload order (ping-pong first; full handshakes before resumed
    /// ones), connections, payload.
    pub fn load(&self) -> Load {
        (
            workloads_compared(self.other)
                .iter()
                .position(|&w| w == self.workload)
                .unwrap_or(usize::MAX),
            self.resumed,
            self.connections,
            self.payload,
        )
    }
}

/// A load of a comparison: the workload's place in [`workloads_compared`], whether resumed,
/// connections and payload bytes.
pub type Load = (usize, bool, usize, usize);

/// The loads compared, in order.
pub fn loads(comparisons: &[Comparison]) -> Vec<Load> {
    let mut loads: Vec<Load> = comparisons.iter().map(Comparison::load).collect();
    loads.sort_unstable();
    loads.dedup();
    loads
}

/// What the other transport saves (a negative change) or costs at one load, over the models
/// compared there.
#[derive(Debug, Clone, PartialEq)]
pub struct Saving {
    /// Ping-pong or churn.
    pub workload: Workload,
    /// Over TLS, whether the handshakes were resumed ones.
    pub resumed: bool,
    /// Connections.
    pub connections: usize,
    /// Payload bytes.
    pub payload: usize,
    /// The median over the models of each one's paired change from TCP to the other, %.
    pub median_pct: f64,
    /// The smallest change, %.
    pub lowest_pct: f64,
    /// The largest change, %.
    pub highest_pct: f64,
    /// The models with a paired change.
    pub models: usize,
    /// Those the data puts cheaper over the other transport by more than [`TIE_PCT`].
    pub cheaper: usize,
    /// Those the data puts dearer over the other transport by more than [`TIE_PCT`].
    pub dearer: usize,
    /// The model cheapest over the other transport, and its median µs per message there.
    pub cheapest: Option<(Server, f64)>,
}

/// What the other transport saves or costs, per load compared (those where no model has a
/// paired change are left out), in load order.
pub fn savings(comparisons: &[Comparison]) -> Vec<Saving> {
    loads(comparisons)
        .into_iter()
        .filter_map(|load| {
            let at: Vec<&Comparison> = comparisons.iter().filter(|c| c.load() == load).collect();
            let first = at.first()?;
            let (workload, resumed, connections, payload) = (
                first.workload,
                first.resumed,
                first.connections,
                first.payload,
            );
            let mut changes: Vec<f64> = at
                .iter()
                .filter_map(|c| c.change.as_ref().map(|ch| ch.change_pct))
                .collect();
            if changes.is_empty() {
                return None;
            }
            changes.sort_by(f64::total_cmp);
            Some(Saving {
                workload,
                resumed,
                connections,
                payload,
                median_pct: crate::bootstrap::median(&changes).unwrap_or(0.0),
                lowest_pct: changes[0],
                highest_pct: changes[changes.len() - 1],
                models: changes.len(),
                cheaper: at.iter().filter(|c| c.other_cheaper()).count(),
                dearer: at.iter().filter(|c| c.other_dearer()).count(),
                cheapest: at
                    .iter()
                    .filter(|c| c.change.is_some())
                    .min_by(|a, b| a.other_us.total_cmp(&b.other_us))
                    .map(|c| (c.model.clone(), c.other_us)),
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
            other: Transport::Unix,
            workload: Workload::PingPong,
            connections,
            payload: 64,
            resumed: false,
            tcp_us,
            other_us: unix_us,
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

    /// Three rounds of tokio over TCP and TLS at ping-pong (µs per message: 10 over TCP, 13
    /// over TLS) and churn (100 µs per connection over TCP, 500 over TLS), each round a little
    /// noisy the same way on both, resumed TLS churn at 200 µs per connection, and a Unix point
    /// that the TLS comparison must leave out.
    #[test]
    fn tls_is_compared_with_tcp_per_message_and_per_connection() {
        use crate::fixtures::trial;
        let mut points = Vec::new();
        for round in 0..3 {
            let noise = 1.0 + 0.01 * round as f64;
            for (transport, workload, resumed, us) in [
                (Transport::Tcp, Workload::PingPong, false, 10.0),
                (Transport::Tls, Workload::PingPong, false, 13.0),
                (Transport::Unix, Workload::PingPong, false, 7.0),
                (Transport::Tcp, Workload::Churn, false, 100.0),
                (Transport::Tls, Workload::Churn, true, 200.0),
                (Transport::Tls, Workload::Churn, false, 500.0),
            ] {
                // 10,000 messages in the second: the server's CPU is µs per message × 10,000.
                let mut t = trial(Model::Tokio, 4, round, 10_000.0, us * noise / 100.0);
                t.point.transport = transport;
                t.point.workload = workload;
                t.point.tls_resume = resumed;
                points.push(t);
            }
        }
        let run = SuiteRun {
            rounds: 3,
            points,
            ..SuiteRun::default()
        };
        let all = crate::aggregate::aggregate(&run);
        let tls = compare(&all, Transport::Tls);
        assert_eq!(tls.len(), 3, "{tls:?}");
        let (ping, churn, resumed) = (&tls[0], &tls[1], &tls[2]);
        assert_eq!(
            (ping.workload, churn.workload, resumed.workload),
            (Workload::PingPong, Workload::Churn, Workload::Churn)
        );
        assert!(!churn.resumed && resumed.resumed, "full handshakes first");
        assert!(
            (resumed.other_us / resumed.tcp_us - 2.0).abs() < 0.01,
            "resumed churn is compared with TCP's churn: {resumed:?}"
        );
        assert!(
            (ping.tcp_us - 10.1).abs() < 0.2 && (ping.other_us - 13.1).abs() < 0.2,
            "{ping:?}"
        );
        assert!(
            (churn.other_us / churn.tcp_us - 5.0).abs() < 0.01,
            "{churn:?}"
        );
        assert!(ping.other_dearer() && churn.other_dearer() && !ping.other_cheaper());
        let costs = savings(&tls);
        assert_eq!(costs.len(), 3);
        assert!((costs[0].median_pct - 30.0).abs() < 0.5, "{costs:?}");
        assert!((costs[1].median_pct - 400.0).abs() < 1.0, "{costs:?}");
        assert!(
            costs[2].resumed && (costs[2].median_pct - 100.0).abs() < 1.0,
            "{costs:?}"
        );
        assert_eq!((costs[0].dearer, costs[0].cheaper), (1, 0));
        // Against Unix: ping-pong alone, and Unix cheaper.
        let unix = compare(&all, Transport::Unix);
        assert_eq!(unix.len(), 1);
        assert!(unix[0].other_cheaper());
    }

    #[test]
    fn a_tcp_only_run_is_one_section() {
        let run = SuiteRun::default();
        let sections = sections(&run, &[]);
        assert_eq!(sections.len(), 1);
        assert_eq!(sections[0].transport, None);
    }
}
