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
            let by_round: BTreeMap<usize, f64> =
                t.values(Measure::CpuPerMessage).into_iter().collect();
            let pairs: Vec<(f64, f64)> = u
                .values(Measure::CpuPerMessage)
                .into_iter()
                .filter_map(|(round, v)| Some((*by_round.get(&round)?, v)))
                .collect();
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
