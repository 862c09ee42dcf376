//! "Which model to pick", as data: every category the advice ranks ([`Finding`]), and the
//! findings that rank nothing (memory per connection, starvation, what handler work does,
//! capacity, C10K). Renderers turn an [`Advice`] into sentences; nothing here is text.
//!
//! It is long because the unit tests of every finding, on data, sit beside it.

use echo_loadgen::config::Workload;
use echo_servers::{Model, Transport};

use crate::aggregate::{Aggregate, Measure, work_sweep};
use crate::bootstrap::Change;
use crate::c10k::Holding;
use crate::rank::{Ranking, measure_for, rank};
use crate::run::SuiteRun;
use crate::server::Server;
use crate::status::Status;

/// What a category's ranking rests on besides its measure, said beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Nothing more than the measure.
    Measure,
    /// Equal offered load: the cost of the same work, whatever the client.
    EqualLoadCost,
    /// Equal offered load, p99 from the intended send time.
    EqualLoadLatency,
}

/// Which category: the advice's titles, as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Title {
    /// Small messages at the fewest connections (senders over UDP).
    FewSmall {
        /// Over UDP: senders and datagrams.
        udp: bool,
    },
    /// Small messages at the most connections (senders over UDP).
    ManySmall {
        /// Over UDP: senders and datagrams.
        udp: bool,
    },
    /// The largest payload at the middle connection count measured with it.
    LargeMessages,
    /// Churn at its most concurrent loops; over TLS, with full handshakes or (`resumed`) with
    /// resumed ones, ranked apart.
    Churn {
        /// Resumed TLS sessions.
        resumed: bool,
    },
    /// Stream.
    BulkTransfer,
    /// Server CPU per message at an offered rate.
    CostAtRate,
    /// p99 at an offered rate.
    LatencyAtRate,
    /// The work sweep: throughput with this many µs of CPU per message.
    HandlerWork(u64),
}

/// One ranked category: its point, what it preferred to rank by and why, and the ranking.
#[derive(Debug, Clone)]
pub struct Finding<'a> {
    /// Which category.
    pub title: Title,
    /// A model's figures at the point (the first candidate): what describes the point.
    pub point: &'a Aggregate,
    /// What the category ranks by when the client keeps up.
    pub preferred: Measure,
    /// What the ranking rests on.
    pub basis: Basis,
    /// The most rounds any ranked model had.
    pub rounds: usize,
    /// The ranking (its measure differs from `preferred` when the client was saturated).
    pub ranking: Ranking<'a>,
}

impl Finding<'_> {
    /// Whether the ranking fell back from the preferred measure (the client was saturated).
    pub fn fell_back(&self) -> bool {
        self.ranking.measure != self.preferred
    }
}

/// Ranks one category, `None` when no model can rank.
fn judge<'a>(
    title: Title,
    candidates: Vec<&'a Aggregate>,
    preferred: Measure,
    basis: Basis,
) -> Option<Finding<'a>> {
    let first = *candidates.first()?;
    let measure = measure_for(&candidates, preferred);
    let ranking = rank(&candidates, measure)?;
    let rounds = ranking
        .ranked
        .iter()
        .map(|r| r.aggregate.runs)
        .max()
        .unwrap_or(0);
    Some(Finding {
        title,
        point: first,
        preferred,
        basis,
        rounds,
        ranking,
    })
}

/// The ping-pong categories: small messages at the fewest and the most connections, and large
/// messages at the middle connection count measured with them.
fn ping_pong_categories<'a>(aggregates: &[&'a Aggregate]) -> Vec<Finding<'a>> {
    let ping: Vec<&'a Aggregate> = aggregates
        .iter()
        .copied()
        .filter(|a| a.load.workload == Workload::PingPong)
        .collect();
    let pick = |connections: usize, payload: usize| -> Vec<&'a Aggregate> {
        ping.iter()
            .copied()
            .filter(|a| a.load.connections == connections && a.load.payload == payload)
            .collect()
    };
    let mut judged = Vec::new();
    if ping.is_empty() {
        return judged;
    }
    let min_c = ping.iter().map(|a| a.load.connections).min().unwrap_or(1);
    let min_p = ping.iter().map(|a| a.load.payload).min().unwrap_or(64);
    let max_p = ping.iter().map(|a| a.load.payload).max().unwrap_or(64);
    let max_c = ping
        .iter()
        .filter(|a| a.load.payload == min_p)
        .map(|a| a.load.connections)
        .max()
        .unwrap_or(min_c);
    let udp = ping.iter().any(|a| a.load.transport == Transport::Udp);
    let plain = Basis::Measure;
    judged.extend(judge(
        Title::FewSmall { udp },
        pick(min_c, min_p),
        Measure::Throughput,
        plain,
    ));
    if max_c != min_c {
        judged.extend(judge(
            Title::ManySmall { udp },
            pick(max_c, min_p),
            Measure::Throughput,
            plain,
        ));
    }
    if max_p != min_p {
        let mut counts: Vec<usize> = ping
            .iter()
            .filter(|a| a.load.payload == max_p)
            .map(|a| a.load.connections)
            .collect();
        counts.sort_unstable();
        counts.dedup();
        judged.extend(judge(
            Title::LargeMessages,
            pick(counts[counts.len() / 2], max_p),
            Measure::Bandwidth,
            plain,
        ));
    }
    judged
}

/// The ranked categories of the run at its base work, in the advice's order (without the
/// findings that rank nothing).
pub fn categories<'a>(aggregates: &[&'a Aggregate]) -> Vec<Finding<'a>> {
    let mut judged = ping_pong_categories(aggregates);
    type Key = (usize, usize, Option<u64>, bool);
    let key = |a: &Aggregate| -> Key {
        (
            a.load.connections,
            a.load.payload,
            a.load.rate,
            a.load.tls_resume,
        )
    };
    let loads = |workload: Workload| -> Vec<Key> {
        let mut loads = Vec::new();
        for a in aggregates.iter().filter(|a| a.load.workload == workload) {
            if !loads.contains(&key(a)) {
                loads.push(key(a));
            }
        }
        loads
    };
    let at = |workload: Workload, load: Key| -> Vec<&'a Aggregate> {
        aggregates
            .iter()
            .copied()
            .filter(|a| a.load.workload == workload && key(a) == load)
            .collect()
    };
    for resumed in [false, true] {
        let churn = loads(Workload::Churn)
            .into_iter()
            .filter(|l| l.3 == resumed);
        if let Some(load) = churn.max_by_key(|l| l.0) {
            judged.extend(judge(
                Title::Churn { resumed },
                at(Workload::Churn, load),
                Measure::ConnectionRate,
                Basis::Measure,
            ));
        }
    }
    if let Some(&load) = loads(Workload::Stream).first() {
        judged.extend(judge(
            Title::BulkTransfer,
            at(Workload::Stream, load),
            Measure::Bandwidth,
            Basis::Measure,
        ));
    }
    for load in loads(Workload::Rate) {
        judged.extend(judge(
            Title::CostAtRate,
            at(Workload::Rate, load),
            Measure::CpuPerMessage,
            Basis::EqualLoadCost,
        ));
        judged.extend(judge(
            Title::LatencyAtRate,
            at(Workload::Rate, load),
            Measure::P99,
            Basis::EqualLoadLatency,
        ));
    }
    judged
}

/// The aggregates at the run's base work (the smallest `--work-us`), borrowed.
pub fn base_refs(all: &[Aggregate]) -> Vec<&Aggregate> {
    let base = all.iter().map(|a| a.load.work_us).min().unwrap_or(0);
    all.iter().filter(|a| a.load.work_us == base).collect()
}

/// Every ranked category of `all` (a run's aggregates): the base work's, then the work sweep's.
pub fn rankings(all: &[Aggregate]) -> Vec<Finding<'_>> {
    let mut judged = categories(&base_refs(all));
    judged.extend(work_categories(all));
    judged
}

/// The work sweep at its largest connection count: that count, its points, and the work levels
/// in increasing order (the base level first).
fn sweep_at_most_connections(
    aggregates: &[Aggregate],
) -> Option<(usize, Vec<&Aggregate>, Vec<u64>)> {
    let sweep = work_sweep(aggregates);
    let connections = sweep.iter().map(|a| a.load.connections).max()?;
    let at_c: Vec<&Aggregate> = sweep
        .into_iter()
        .filter(|a| a.load.connections == connections)
        .collect();
    let mut works: Vec<u64> = at_c.iter().map(|a| a.load.work_us).collect();
    works.sort_unstable();
    works.dedup();
    Some((connections, at_c, works))
}

/// The work sweep's categories: at the most connections swept, who keeps the most throughput
/// at each work level above the base.
pub fn work_categories(aggregates: &[Aggregate]) -> Vec<Finding<'_>> {
    let Some((_, at_c, works)) = sweep_at_most_connections(aggregates) else {
        return Vec::new();
    };
    works
        .iter()
        .skip(1)
        .filter_map(|&work| {
            let here: Vec<&Aggregate> = at_c
                .iter()
                .copied()
                .filter(|a| a.load.work_us == work)
                .collect();
            judge(
                Title::HandlerWork(work),
                here,
                Measure::Throughput,
                Basis::Measure,
            )
        })
        .collect()
}

/// One model's latency and fairness at a work level, against the base level.
#[derive(Debug, Clone, PartialEq)]
pub struct Degraded {
    /// The model.
    pub model: Server,
    /// Median p99 at the base work, µs.
    pub base_p99: u64,
    /// Median p99 at this work, µs.
    pub p99: u64,
    /// Median Jain index at this work.
    pub fairness: f64,
    /// Most starved connections at this work.
    pub starved: u64,
}

/// Tokio with the work inline against tokio-rayon offloading it to a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Offload {
    /// Median throughput of the offloading model over the inline one.
    pub ratio: f64,
    /// The paired change from the runner-up to the leader (`None`: one round).
    pub change: Option<Change>,
    /// The leader and the runner-up, when the data separates them.
    pub separated: Option<(Server, Server)>,
    /// p99 of the offloading and of the inline model, µs.
    pub p99: (u64, u64),
    /// Jain index of the offloading and of the inline model.
    pub fairness: (f64, f64),
}

/// What one work level of the sweep does, beside its ranking.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkFinding {
    /// How latency and fairness degrade from the base level.
    Degradation {
        /// µs of CPU per message.
        work: u64,
        /// The base level, µs.
        base: u64,
        /// The connections swept.
        connections: usize,
        /// Each model that ran at both levels.
        models: Vec<Degraded>,
    },
    /// What offloading the work to a rayon pool buys.
    Offload {
        /// µs of CPU per message.
        work: u64,
        /// The connections swept.
        connections: usize,
        /// The comparison.
        offload: Offload,
    },
}

/// The work sweep's findings that rank nothing, level by level.
pub fn work_findings(aggregates: &[Aggregate]) -> Vec<WorkFinding> {
    let Some((connections, at_c, works)) = sweep_at_most_connections(aggregates) else {
        return Vec::new();
    };
    let base = works[0];
    let mut found = Vec::new();
    for &work in works.iter().skip(1) {
        let here: Vec<&Aggregate> = at_c
            .iter()
            .copied()
            .filter(|a| a.load.work_us == work)
            .collect();
        let mut models = Vec::new();
        for a in &here {
            let Some(b) = at_c
                .iter()
                .find(|b| b.model == a.model && b.load.work_us == base)
            else {
                continue;
            };
            if a.failed || b.failed {
                continue;
            }
            models.push(Degraded {
                model: a.model.clone(),
                base_p99: b.p99,
                p99: a.p99,
                fairness: a.fairness,
                starved: a.starved,
            });
        }
        if !models.is_empty() {
            found.push(WorkFinding::Degradation {
                work,
                base,
                connections,
                models,
            });
        }
        let find = |m: Model| {
            here.iter()
                .copied()
                .find(|a| a.model == Server::from(m) && !a.failed)
        };
        if let (Some(inline), Some(offload)) = (find(Model::Tokio), find(Model::TokioRayon))
            && let Some(r) = rank(&[inline, offload], Measure::Throughput)
        {
            let change = r.ranked.get(1).and_then(|x| x.leader_vs_this.clone());
            let separated = r.sole_winner().map(|_| {
                (
                    r.ranked[0].aggregate.model.clone(),
                    r.ranked[1].aggregate.model.clone(),
                )
            });
            found.push(WorkFinding::Offload {
                work,
                connections,
                offload: Offload {
                    ratio: offload.rps / inline.rps.max(1e-9),
                    change,
                    separated,
                    p99: (offload.p99, inline.p99),
                    fairness: (offload.fairness, inline.fairness),
                },
            });
        }
    }
    found
}

/// Memory per connection: the growth of peak RSS from the fewest to the most connections with
/// small messages, among models that served them all.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    /// The fewest connections.
    pub from: usize,
    /// The most connections.
    pub to: usize,
    /// The model that needs the least, its KiB per connection and its peak RSS at `to`, KiB.
    pub least: (Server, f64, u64),
    /// The model that needs the most, and its KiB per connection.
    pub most: (Server, f64),
}

/// [`Memory`] of the ping-pong points, `None` with one connection count.
pub fn memory(ping: &[&Aggregate]) -> Option<Memory> {
    let min_p = ping.iter().map(|a| a.load.payload).min()?;
    let small: Vec<&Aggregate> = ping
        .iter()
        .copied()
        .filter(|a| a.load.payload == min_p)
        .collect();
    let min_c = small.iter().map(|a| a.load.connections).min()?;
    let max_c = small.iter().map(|a| a.load.connections).max()?;
    if max_c == min_c {
        return None;
    }
    let mut memory: Vec<(&Aggregate, f64)> = small
        .iter()
        .copied()
        .filter(|a| a.load.connections == max_c)
        .filter(|a| a.server_rss_kib > 0 && !a.failed && a.starved == 0)
        .filter_map(|most| {
            let few = small.iter().find(|a| {
                a.model == most.model && a.load.connections == min_c && a.server_rss_kib > 0
            })?;
            let growth = most.server_rss_kib.saturating_sub(few.server_rss_kib) as f64;
            Some((most, growth / (max_c - min_c) as f64))
        })
        .collect();
    memory.sort_by(|a, b| a.1.total_cmp(&b.1));
    let ((least, least_kib), (most, most_kib)) = (memory.first()?, memory.last()?);
    Some(Memory {
        from: min_c,
        to: max_c,
        least: (least.model.clone(), *least_kib, least.server_rss_kib),
        most: (most.model.clone(), *most_kib),
    })
}

/// A model that left connections without an echo at a connection count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Starving {
    /// The model.
    pub model: Server,
    /// The point's connections.
    pub connections: usize,
    /// The most starved in any round.
    pub starved: u64,
}

/// The C10K findings: memory per idle connection, latency beside them, and who was not
/// measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct C10k {
    /// Memory per held connection, when any model held them.
    pub memory: Option<IdleMemory>,
    /// The active load's p99 without and with the idle connections, when measured.
    pub latency: Option<IdleLatency>,
    /// Models not measured holding idle connections, with the note.
    pub not_measured: Vec<(Model, String)>,
    /// The transport the findings above are of: TCP, or the one transport of a run that held
    /// no connection over TCP.
    pub transport: echo_servers::Transport,
    /// What an idle TLS session adds over an idle TCP connection, per model held both ways.
    pub tls_sessions: Vec<crate::c10k::TlsSession>,
}

/// Memory per held idle connection.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleMemory {
    /// Connections held.
    pub target: usize,
    /// KiB per connection of every model that held them, least first.
    pub per_model: Vec<(Model, f64)>,
    /// Models whose RSS stayed more than 16 MiB above their start after every connection
    /// closed, with that RSS, KiB.
    pub kept: Vec<(Model, u64)>,
}

/// One model's active load beside the idle connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beside {
    /// The model.
    pub model: Model,
    /// p99 with no idle connection, µs.
    pub base_p99: u64,
    /// p99 with the idle connections held, µs.
    pub idle_p99: u64,
    /// Messages/s with no idle connection.
    pub base_rps: f64,
    /// Messages/s with them.
    pub idle_rps: f64,
    /// Whether holding them hurt: the p99 more than [`HURT_RATIO`] times, or the messages/s
    /// fell below its inverse.
    pub hurt: bool,
}

/// The active load beside idle connections.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleLatency {
    /// Idle connections held.
    pub target: usize,
    /// Every model measured both ways.
    pub models: Vec<Beside>,
}

/// The active load counts as hurt beside idle connections when its p99 is more than this many
/// times the baseline's, or its messages/s less than the baseline's divided by it: single
/// samples of a p99 move by up to 2× between runs on this kind of machine.
pub const HURT_RATIO: f64 = 2.0;

/// The C10K findings of `holdings`: of those over TCP, or when none is, of those over the one
/// transport they were held over (a model held over TCP and TLS would otherwise be ranked
/// against itself; what TLS adds is [`crate::c10k::tls_sessions`]'s).
pub fn c10k(holdings: &[Holding]) -> C10k {
    let tls_sessions = crate::c10k::tls_sessions(holdings);
    let transport = holdings
        .iter()
        .map(|h| h.transport)
        .min_by_key(|&t| t != echo_servers::Transport::Tcp)
        .unwrap_or_default();
    let holdings: Vec<Holding> = holdings
        .iter()
        .filter(|h| h.transport == transport)
        .cloned()
        .collect();
    let holdings = &holdings[..];
    let ok: Vec<&Holding> = holdings.iter().filter(|h| h.status == Status::Ok).collect();
    let mut per_model: Vec<(Model, f64, usize)> = ok
        .iter()
        .filter_map(|h| Some((h.model, h.kib_per_connection()?, h.target)))
        .collect();
    per_model.sort_by(|a, b| a.1.total_cmp(&b.1));
    let memory = per_model.first().map(|least| IdleMemory {
        target: least.2,
        per_model: per_model.iter().map(|(m, kib, _)| (*m, *kib)).collect(),
        kept: ok
            .iter()
            .filter(|h| {
                let first = h.levels.first().map_or(0, |l| l.rss_kib);
                h.rss_after_close_kib > first + 16 * 1024
            })
            .map(|h| (h.model, h.rss_after_close_kib))
            .collect(),
    });
    let models: Vec<(Beside, usize)> = ok
        .iter()
        .filter_map(|h| {
            let (base_p99, idle_p99) = (h.baseline?.p99, h.under_idle?.p99);
            // Hurt: the p99 more than doubled, or the messages/s fell to less than half (a loop
            // whose every wake-up walks the idle connections serves fewer, each slower).
            let hurt = idle_p99 as f64 > HURT_RATIO * base_p99.max(1) as f64
                || h.under_idle_rps * HURT_RATIO < h.baseline_rps;
            Some((
                Beside {
                    model: h.model,
                    base_p99,
                    idle_p99,
                    base_rps: h.baseline_rps,
                    idle_rps: h.under_idle_rps,
                    hurt,
                },
                h.target,
            ))
        })
        .collect();
    let latency = models.first().map(|(_, target)| IdleLatency {
        target: *target,
        models: models.iter().map(|(b, _)| *b).collect(),
    });
    C10k {
        memory,
        latency,
        not_measured: holdings
            .iter()
            .filter(|h| h.status != Status::Ok)
            .map(|h| (h.model, h.note.clone().unwrap_or_default()))
            .collect(),
        transport,
        tls_sessions,
    }
}

/// The capacity search of the capacity and full profiles: each model's search, for the
/// renderer's ranking (`crate::capacity::ranking`) and lines.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityFinding<'a> {
    /// The objective.
    pub objective: crate::capacity::Objective,
    /// Every model's search.
    pub searches: &'a [crate::capacity::ModelCapacity],
    /// The server's cores, when it was pinned.
    pub server_cores: Option<usize>,
}

/// The run's capacity finding, `None` when it searched none.
pub fn capacity(run: &SuiteRun) -> Option<CapacityFinding<'_>> {
    let objective = run.capacity_objective?;
    (!run.capacity.is_empty()).then(|| CapacityFinding {
        objective,
        searches: &run.capacity,
        server_cores: run.pinning.server_cpus.as_ref().map(Vec::len),
    })
}

/// Everything the advice says about one run (or one transport's share of it), in its order.
#[derive(Debug, Clone)]
pub struct Advice<'a> {
    /// The ranked categories at the base work.
    pub categories: Vec<Finding<'a>>,
    /// Memory per connection (stream transports only).
    pub memory: Option<Memory>,
    /// Models that starved connections, once per model and connection count.
    pub starving: Vec<Starving>,
    /// The work sweep's ranked categories.
    pub work_categories: Vec<Finding<'a>>,
    /// The work sweep's other findings.
    pub work: Vec<WorkFinding>,
    /// The capacity search.
    pub capacity: Option<CapacityFinding<'a>>,
    /// The C10K findings.
    pub c10k: C10k,
}

impl Advice<'_> {
    /// Whether it finds nothing at all (every candidate failed or starved).
    pub fn is_empty(&self) -> bool {
        let c10k = &self.c10k;
        self.categories.is_empty()
            && self.memory.is_none()
            && self.starving.is_empty()
            && self.work_categories.is_empty()
            && self.work.is_empty()
            && self.capacity.is_none()
            && c10k.memory.is_none()
            && c10k.latency.is_none()
            && c10k.not_measured.is_empty()
            && c10k.tls_sessions.is_empty()
    }
}

/// The advice of `run` from its aggregates `all` (computed once by the caller).
pub fn advice<'a>(run: &'a SuiteRun, all: &'a [Aggregate]) -> Advice<'a> {
    let aggregates = base_refs(all);
    let ping: Vec<&Aggregate> = aggregates
        .iter()
        .copied()
        .filter(|a| a.load.workload == Workload::PingPong)
        .collect();
    // A datagram server holds nothing per client, so memory per connection means nothing there.
    let streams = ping.iter().all(|a| a.load.transport != Transport::Udp);
    let memory = if streams && !ping.is_empty() {
        self::memory(&ping)
    } else {
        None
    };
    let mut starving: Vec<Starving> = Vec::new();
    for a in ping.iter().filter(|a| a.starved > 0) {
        let found = Starving {
            model: a.model.clone(),
            connections: a.load.connections,
            starved: a.starved,
        };
        if !starving.contains(&found) {
            starving.push(found);
        }
    }
    Advice {
        categories: categories(&aggregates),
        memory,
        starving,
        work_categories: work_categories(all),
        work: work_findings(all),
        capacity: capacity(run),
        c10k: c10k(&run.c10k),
    }
}

/// What one model's cell of the verdict matrix says about one category.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// In the leading group.
    Leading,
    /// The data separates it from the leader: this model's figure over the leader's (the
    /// geometric mean of the paired rounds).
    Behind(f64),
    /// It could not rank.
    Ineligible(crate::aggregate::Ineligible),
    /// Not measured at this category's point.
    Absent,
}

/// The verdict matrix: every ranked category down, every model across, what the data says of
/// each model in each category.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// The models, in the registry's order.
    pub models: Vec<Server>,
    /// One row per category, in the advice's order: its title, the point's figures, the measure
    /// it ranked by, and a verdict per model (as [`Matrix::models`]).
    pub rows: Vec<(Title, Measure, Vec<Verdict>)>,
}

/// The verdict matrix of `findings`.
pub fn matrix(findings: &[Finding<'_>]) -> Matrix {
    let mut models: Vec<Server> = Vec::new();
    for f in findings {
        let ranked = f.ranking.ranked.iter().map(|r| &r.aggregate.model);
        let excluded = f.ranking.excluded.iter().map(|(m, _)| m);
        for m in ranked.chain(excluded) {
            if !models.contains(m) {
                models.push(m.clone());
            }
        }
    }
    models.sort();
    let rows = findings
        .iter()
        .map(|f| {
            let verdicts = models
                .iter()
                .map(|m| {
                    if let Some(r) = f.ranking.ranked.iter().find(|r| r.aggregate.model == *m) {
                        match (&r.leader_vs_this, r.separated) {
                            // `leader_vs_this` is the leader over this model.
                            (Some(c), true) => Verdict::Behind(1.0 / c.ratio),
                            _ => Verdict::Leading,
                        }
                    } else if let Some((_, why)) = f.ranking.excluded.iter().find(|(x, _)| x == m) {
                        Verdict::Ineligible(*why)
                    } else {
                        Verdict::Absent
                    }
                })
                .collect();
            (f.title, f.ranking.measure, verdicts)
        })
        .collect();
    Matrix { models, rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{Ineligible, aggregate};
    use crate::fixtures::{run_of, trial};

    fn names(servers: &[Server]) -> Vec<&str> {
        servers.iter().map(Server::name).collect()
    }

    #[test]
    fn a_model_separated_in_every_round_is_the_sole_winner() {
        // The rounds drift by 20% together; mio stays 15–20% ahead of tokio in each.
        let run = run_of(&[
            (Model::Tokio, [80_000.0, 100_000.0, 84_000.0]),
            (Model::Mio, [94_000.0, 118_000.0, 100_000.0]),
        ]);
        let all = aggregate(&run);
        let advice = advice(&run, &all);
        let few = &advice.categories[0];
        assert_eq!(few.title, Title::FewSmall { udp: false });
        assert_eq!(few.ranking.measure, Measure::Throughput);
        assert_eq!(few.rounds, 3);
        assert_eq!(few.ranking.sole_winner(), Some(Model::Mio.into()));
        let second = &few.ranking.ranked[1];
        assert!(second.separated);
        let change = second.leader_vs_this.as_ref().unwrap();
        assert!(change.ci_low_pct > 5.0, "{change:?}");
    }

    #[test]
    fn models_the_rounds_cannot_separate_form_the_leading_group() {
        // mio and tokio swap places between rounds; blocking is 40% behind in every round.
        let run = run_of(&[
            (Model::Mio, [100_000.0, 92_000.0, 104_000.0]),
            (Model::Tokio, [97_000.0, 99_000.0, 98_000.0]),
            (Model::Blocking, [60_000.0, 58_000.0, 61_000.0]),
        ]);
        let all = aggregate(&run);
        let few = &advice(&run, &all).categories[0];
        assert_eq!(few.ranking.sole_winner(), None);
        assert_eq!(names(&few.ranking.group()), ["mio", "tokio"]);
        let separated: Vec<&str> = few
            .ranking
            .ranked
            .iter()
            .filter(|r| r.separated)
            .map(|r| r.aggregate.model.name())
            .collect();
        assert_eq!(separated, ["blocking"]);
    }

    #[test]
    fn one_round_separates_nothing() {
        let mut run = run_of(&[
            (Model::Mio, [200_000.0, 0.0, 0.0]),
            (Model::Tokio, [100_000.0, 0.0, 0.0]),
        ]);
        run.points.retain(|p| p.point.round == 0);
        let all = aggregate(&run);
        let few = &advice(&run, &all).categories[0];
        assert_eq!(few.rounds, 1);
        assert_eq!(names(&few.ranking.group()), ["mio", "tokio"]);
        assert!(few.ranking.ranked[1].leader_vs_this.is_none());
    }

    #[test]
    fn a_saturated_client_makes_the_category_rank_by_server_cpu_per_message() {
        // Equal throughput (the client's limit), but tokio spends 30% more CPU per message.
        let mut run = SuiteRun::default();
        for round in 0..3 {
            for (model, cpu) in [(Model::Mio, 0.50), (Model::Tokio, 0.65)] {
                let mut t = trial(model, 16, round, 100_000.0, cpu);
                t.report.as_mut().unwrap().client.saturated = true;
                run.points.push(t);
            }
        }
        let all = aggregate(&run);
        let few = &advice(&run, &all).categories[0];
        assert!(few.fell_back());
        assert_eq!(few.preferred, Measure::Throughput);
        assert_eq!(few.ranking.measure, Measure::CpuPerMessage);
        assert_eq!(few.ranking.saturated_rounds, (6, 6));
        assert_eq!(few.ranking.sole_winner(), Some(Model::Mio.into()));
        assert_eq!(few.ranking.ranked[0].estimate.median, 5.0);
    }

    #[test]
    fn a_model_that_starved_connections_is_not_eligible_and_is_listed_once() {
        let mut run = run_of(&[
            (Model::Mio, [100_000.0, 100_000.0, 100_000.0]),
            (Model::Blocking, [150_000.0, 150_000.0, 150_000.0]),
        ]);
        for p in run
            .points
            .iter_mut()
            .filter(|p| p.point.model == Model::Blocking.into())
        {
            p.report.as_mut().unwrap().fairness.starved = 15;
        }
        let all = aggregate(&run);
        let advice = advice(&run, &all);
        let few = &advice.categories[0];
        assert_eq!(names(&few.ranking.group()), ["mio"]);
        assert_eq!(few.ranking.ranked.len(), 1);
        assert_eq!(
            few.ranking.excluded,
            [(
                Model::Blocking.into(),
                Ineligible::Starved {
                    starved: 15,
                    of: 16
                }
            )]
        );
        assert_eq!(
            advice.starving,
            [Starving {
                model: Model::Blocking.into(),
                connections: 16,
                starved: 15
            }],
            "three rounds, one finding"
        );
    }

    #[test]
    fn memory_per_connection_compares_the_fewest_and_the_most_connections() {
        let mut run = SuiteRun::default();
        for round in 0..3 {
            for connections in [1, 101] {
                run.points
                    .push(trial(Model::Mio, connections, round, 50_000.0, 0.5));
                let mut tokio = trial(Model::Tokio, connections, round, 50_000.0, 0.5);
                tokio
                    .report
                    .as_mut()
                    .unwrap()
                    .server
                    .as_mut()
                    .unwrap()
                    .peak_rss_kib *= 2;
                run.points.push(tokio);
            }
        }
        let all = aggregate(&run);
        let advice = advice(&run, &all);
        assert_eq!(
            advice
                .categories
                .iter()
                .map(|f| f.title)
                .collect::<Vec<_>>(),
            [
                Title::FewSmall { udp: false },
                Title::ManySmall { udp: false }
            ]
        );
        let memory = advice.memory.unwrap();
        assert_eq!((memory.from, memory.to), (1, 101));
        // mio grows 10 KiB per connection, tokio twice that.
        assert_eq!(memory.least, (Model::Mio.into(), 10.0, 1000 + 101 * 10));
        assert_eq!(memory.most, (Model::Tokio.into(), 20.0));
    }

    #[test]
    fn idle_connections_hurt_a_model_whose_p99_more_than_doubles() {
        use echo_loadgen::report::Latency;
        let holding = |model: Model, idle_p99: u64| Holding {
            model,
            status: Status::Ok,
            target: 1000,
            baseline: Some(Latency {
                p99: 100,
                ..Latency::default()
            }),
            under_idle: Some(Latency {
                p99: idle_p99,
                ..Latency::default()
            }),
            baseline_rps: 1000.0,
            under_idle_rps: 1000.0,
            ..Holding::default()
        };
        let found = c10k(&[
            holding(Model::Mio, 150),
            holding(Model::Poll, 900),
            Holding {
                model: Model::Blocking,
                status: Status::NotApplicable,
                note: Some("bounded".into()),
                ..Holding::default()
            },
        ]);
        let latency = found.latency.unwrap();
        let hurt: Vec<Model> = latency
            .models
            .iter()
            .filter(|b| b.hurt)
            .map(|b| b.model)
            .collect();
        assert_eq!(hurt, [Model::Poll]);
        assert_eq!(
            found.not_measured,
            [(Model::Blocking, "bounded".to_owned())]
        );
        assert!(found.memory.is_none(), "no levels were sampled");
    }

    /// mio held over TCP (2 KiB each) and TLS (15 KiB each): the memory finding ranks the
    /// TCP holdings alone, and the TLS session's 13 KiB is its own finding; a run held over TLS
    /// alone ranks its TLS holdings and says so.
    #[test]
    fn c10k_over_tcp_and_tls_ranks_tcps_holdings_and_prices_the_tls_session() {
        use crate::c10k::Level;
        use echo_servers::Transport;
        let holding = |model, transport, top: u64| Holding {
            model,
            transport,
            status: Status::Ok,
            target: 1000,
            levels: vec![
                Level {
                    connections: 0,
                    rss_kib: 1_000,
                    threads: 1,
                },
                Level {
                    connections: 1_000,
                    rss_kib: 1_000 + top,
                    threads: 1,
                },
            ],
            ..Holding::default()
        };
        let both = [
            holding(Model::Mio, Transport::Tcp, 2_000),
            holding(Model::Mio, Transport::Tls, 15_000),
            holding(Model::Tokio, Transport::Tcp, 4_000),
        ];
        let found = c10k(&both);
        assert_eq!(found.transport, Transport::Tcp);
        assert_eq!(
            found.memory.unwrap().per_model,
            [(Model::Mio, 2.0), (Model::Tokio, 4.0)]
        );
        assert_eq!(found.tls_sessions.len(), 1);
        assert_eq!(found.tls_sessions[0].extra_kib(), 13.0);
        let tls_only = c10k(&both[1..2]);
        assert_eq!(tls_only.transport, Transport::Tls);
        assert_eq!(tls_only.memory.unwrap().per_model, [(Model::Mio, 15.0)]);
        assert!(tls_only.tls_sessions.is_empty());
    }

    #[test]
    fn a_run_with_nothing_to_rank_has_empty_advice() {
        let run = SuiteRun::default();
        let all = aggregate(&run);
        assert!(advice(&run, &all).is_empty());
    }

    #[test]
    fn the_verdict_matrix_marks_the_group_the_separated_and_the_ineligible() {
        let mut run = run_of(&[
            (Model::Mio, [100_000.0, 92_000.0, 104_000.0]),
            (Model::Tokio, [97_000.0, 99_000.0, 98_000.0]),
            (Model::Blocking, [60_000.0, 58_000.0, 61_000.0]),
            (Model::ThreadPool, [50_000.0, 50_000.0, 50_000.0]),
        ]);
        for p in run
            .points
            .iter_mut()
            .filter(|p| p.point.model == Model::ThreadPool.into())
        {
            p.report.as_mut().unwrap().fairness.starved = 8;
        }
        let all = aggregate(&run);
        let m = matrix(&rankings(&all));
        assert_eq!(
            names(&m.models),
            ["blocking", "thread-pool", "mio", "tokio"],
            "the registry's order"
        );
        let (title, measure, verdicts) = &m.rows[0];
        assert_eq!(*title, Title::FewSmall { udp: false });
        assert_eq!(*measure, Measure::Throughput);
        let Verdict::Behind(ratio) = verdicts[0] else {
            panic!("blocking is separated: {verdicts:?}");
        };
        assert!((0.55..0.65).contains(&ratio), "{ratio}");
        assert_eq!(
            verdicts[1],
            Verdict::Ineligible(Ineligible::Starved { starved: 8, of: 16 })
        );
        assert_eq!(verdicts[2..], [Verdict::Leading, Verdict::Leading]);
    }

    #[test]
    fn the_work_sweep_finds_each_models_degradation_and_what_offloading_buys() {
        // At 16 connections, 0 and 500 µs of work: tokio drops to 2k msg/s with its p99 up,
        // tokio-rayon keeps 6k in every round.
        let mut run = SuiteRun::default();
        for round in 0..3 {
            let drift = 1.0 + 0.05 * round as f64;
            for (model, work, rps, p99) in [
                (Model::Tokio, 0, 50_000.0, 400),
                (Model::TokioRayon, 0, 45_000.0, 450),
                (Model::Tokio, 500, 2_000.0, 9_000),
                (Model::TokioRayon, 500, 6_000.0, 3_000),
            ] {
                let mut t = trial(model, 16, round, rps * drift, 0.5);
                t.point.work_us = work;
                t.report.as_mut().unwrap().latency_us.p99 = p99;
                run.points.push(t);
            }
        }
        let found = work_findings(&aggregate(&run));
        assert_eq!(found.len(), 2, "{found:?}");
        let WorkFinding::Degradation {
            work,
            base,
            connections,
            models,
        } = &found[0]
        else {
            panic!("the degradation first: {found:?}");
        };
        assert_eq!((*work, *base, *connections), (500, 0, 16));
        let tokio = models
            .iter()
            .find(|d| d.model == Model::Tokio.into())
            .unwrap();
        assert_eq!((tokio.base_p99, tokio.p99), (400, 9_000));
        let WorkFinding::Offload { offload, .. } = &found[1] else {
            panic!("then the offload: {found:?}");
        };
        assert!((offload.ratio - 3.0).abs() < 0.01, "{offload:?}");
        assert_eq!(
            offload.separated,
            Some((Model::TokioRayon.into(), Model::Tokio.into()))
        );
        assert_eq!(offload.p99, (3_000, 9_000));
        assert!(work_findings(&aggregate(&run_of(&[(Model::Mio, [1.0; 3])]))).is_empty());
    }
}
