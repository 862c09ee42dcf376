//! The advice's sentences: each finding of [`echo_analysis::advice`] written as one bullet's
//! sentence, the leading model and the category in bold (Markdown's `**`, a terminal's bold, or
//! nothing: [`Style`]). The sentences are built from the findings alone, so what the advice
//! concludes is tested on the data and only its wording here.

use echo_analysis::advice::{
    Advice, Basis, C10k, Degraded, Finding, Memory, Offload, Starving, Title, WorkFinding,
};
use echo_analysis::aggregate::{Aggregate, Ineligible, TIE_PCT};
use echo_analysis::point::size_label;
use echo_analysis::rank::{Ranked, Ranking};
use echo_analysis::run::SuiteRun;
use echo_loadgen::config::Workload;
use echo_servers::Transport;

use super::Style;
use super::format::{change, estimate, figure, inverse_change, measure};

/// The connections of the C10K measurement's active load (said in its latency sentence).
pub use echo_analysis::c10k::ACTIVE_CONNECTIONS;

/// A category's title as the advice and the stability check write it.
pub fn title(title: Title) -> String {
    match title {
        Title::FewSmall { udp: false } => "Few connections, small messages".to_owned(),
        Title::FewSmall { udp: true } => "Few senders, small datagrams".to_owned(),
        Title::ManySmall { udp: false } => "Many connections, small messages".to_owned(),
        Title::ManySmall { udp: true } => "Many senders, small datagrams".to_owned(),
        Title::LargeMessages => "Large messages".to_owned(),
        Title::Churn { resumed: false } => "Connection churn".to_owned(),
        Title::Churn { resumed: true } => "Connection churn, resumed TLS sessions".to_owned(),
        Title::BulkTransfer => "Bulk transfer".to_owned(),
        Title::CostAtRate => "Cost at a fixed rate".to_owned(),
        Title::LatencyAtRate => "Latency at a fixed rate".to_owned(),
        Title::HandlerWork(work) => format!("Handler work, {work} µs of CPU per message"),
    }
}

/// What `basis` adds to a category's parenthesis (empty for the measure alone).
fn basis(basis: Basis) -> &'static str {
    match basis {
        Basis::Measure => "",
        Basis::EqualLoadCost => {
            "equal offered load: the cost of the same work, whatever the client"
        }
        Basis::EqualLoadLatency => "equal offered load, p99 from the intended send time",
    }
}

/// Why a model is not eligible, in the "Not eligible" list.
pub fn ineligible(why: Ineligible) -> String {
    match why {
        Ineligible::Failed => "failed".to_owned(),
        Ineligible::NoMeasurement => "no measurement".to_owned(),
        Ineligible::Starved { starved, of } => format!("starved {starved} of {of} connections"),
        Ineligible::Errors(n) => format!("{n} errors"),
        Ineligible::FellBehind => "fell behind the offered rate".to_owned(),
        Ineligible::NoFigure(m) => format!("no {}", m.name()),
    }
}

/// The point a model's figures were measured at: `256 connections × 64 B`, `churn, 4
/// concurrent loops`, `open loop, 20.0k msg/s offered over 64 connections × 64 B`.
pub fn describe_point(a: &Aggregate) -> String {
    let work = if a.load.work_us > 0 {
        format!(", {} µs work", a.load.work_us)
    } else {
        String::new()
    };
    match a.load.workload {
        Workload::Churn if a.load.tls_resume => format!(
            "churn, {} concurrent loops, resumed TLS sessions{work}",
            a.load.connections
        ),
        Workload::Churn => format!("churn, {} concurrent loops{work}", a.load.connections),
        Workload::Stream => format!(
            "stream, {} connections × {} writes{work}",
            a.load.connections,
            size_label(a.load.payload)
        ),
        Workload::Rate => format!(
            "open loop, {} msg/s offered over {} {} × {}{work}",
            figure(a.load.rate.unwrap_or(0) as f64),
            a.load.connections,
            peers(a, 2),
            size_label(a.load.payload)
        ),
        Workload::PingPong => format!(
            "{} {} × {}{work}",
            a.load.connections,
            peers(a, a.load.connections),
            size_label(a.load.payload)
        ),
    }
}

/// What `n` clients of a point are called: connections, or for UDP client sockets (a datagram
/// server holds no connection).
fn peers(a: &Aggregate, n: usize) -> &'static str {
    match (a.load.transport == Transport::Udp, n == 1) {
        (false, true) => "connection",
        (false, false) => "connections",
        (true, true) => "client socket",
        (true, false) => "client sockets",
    }
}

/// One ranked category's line: the winner when the data separates one, else the leading group
/// as a tie, then the next model and how far behind it is, and who was not eligible.
pub fn finding(f: &Finding<'_>, s: Style) -> String {
    let how = how_ranked(f);
    let mut line = format!(
        "{} ({how}): {}",
        s.bold(&title(f.title)),
        verdict_text(&f.ranking, f.rounds, s)
    );
    if !f.ranking.excluded.is_empty() {
        let excluded: Vec<String> = f
            .ranking
            .excluded
            .iter()
            .map(|(m, why)| format!("{m} ({})", ineligible(*why)))
            .collect();
        line.push_str(&format!(". Not eligible: {}", excluded.join(", ")));
    }
    line.push('.');
    line
}

/// The parenthesis of a category's line: the point, what it was ranked by and why, the rounds.
fn how_ranked(f: &Finding<'_>) -> String {
    let (saturated, of) = f.ranking.saturated_rounds;
    let mut how = describe_point(f.point);
    if f.fell_back() {
        how.push_str(&format!(
            "; the client was saturated in {saturated} of {of} trials, so throughput is only a \
             lower bound: ranked by {}, lower is better",
            f.ranking.measure.name()
        ));
    } else if !basis(f.basis).is_empty() {
        how.push_str(&format!("; {}", basis(f.basis)));
    }
    how.push_str(&format!(
        "; {} round{}",
        f.rounds,
        if f.rounds == 1 { "" } else { "s" }
    ));
    how
}

/// What the ranking says: the only model, the sole winner and its margin, or the tie and the
/// best-placed model the data separates from the leader.
fn verdict_text(ranking: &Ranking<'_>, rounds: usize, s: Style) -> String {
    let m = ranking.measure;
    let leader = &ranking.ranked[0];
    if ranking.ranked.len() == 1 {
        return format!(
            "{} is the only model that served the load, {}",
            s.bold(leader.aggregate.model.name()),
            estimate(m, &leader.estimate)
        );
    }
    if let Some(winner) = ranking.sole_winner() {
        let second = &ranking.ranked[1];
        return format!(
            "{} leads with {}; {} against the runner-up {} ({})",
            s.bold(winner.name()),
            estimate(m, &leader.estimate),
            second
                .leader_vs_this
                .as_ref()
                .map_or_else(String::new, change),
            second.aggregate.model,
            estimate(m, &second.estimate)
        );
    }
    let in_group: Vec<&Ranked> = ranking.ranked.iter().filter(|r| !r.separated).collect();
    let names: Vec<String> = in_group
        .iter()
        .map(|r| r.aggregate.model.to_string())
        .collect();
    let (lo, hi) = in_group.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| {
        (lo.min(r.estimate.median), hi.max(r.estimate.median))
    });
    let mut text = format!(
        "{} tied: the data cannot separate {} from the leader by more than ±{TIE_PCT:.0}% \
         (medians {}–{})",
        s.bold(&names.join(", ")),
        if names.len() == 2 {
            "them"
        } else {
            "any of them"
        },
        measure(m, lo.min(hi)),
        measure(m, hi)
    );
    if rounds < 2 {
        text.push_str("; one round cannot separate any two models");
    }
    if let Some(next) = ranking.ranked.iter().find(|r| r.separated) {
        text.push_str(&format!(
            "; the best-placed model the data separates from the leader: {}, {}{}",
            next.aggregate.model,
            estimate(m, &next.estimate),
            next.leader_vs_this
                .as_ref()
                .map(|c| format!(
                    " ({} against {})",
                    inverse_change(c),
                    leader.aggregate.model
                ))
                .unwrap_or_default()
        ));
    }
    text
}

/// The memory line.
fn memory_line(m: &Memory, s: Style) -> String {
    let (min_c, max_c) = (m.from, m.to);
    format!(
        "{} (peak RSS growth from {min_c} to {max_c} connections, \
         among models that served them all; the largest peak of the rounds): \
         {} needs the least, {:.1} KiB per connection ({:.1} MiB in all at {max_c}); \
         the most is {} with {:.1} KiB per connection.",
        s.bold("Memory per connection"),
        s.bold(m.least.0.name()),
        m.least.1,
        m.least.2 as f64 / 1024.0,
        m.most.0,
        m.most.1
    )
}

/// The starvation line.
fn starving_line(starving: &[Starving], s: Style) -> String {
    let listed: Vec<String> = starving
        .iter()
        .map(|s| {
            format!(
                "{} at {} connections ({} starved)",
                s.model, s.connections, s.starved
            )
        })
        .collect();
    format!(
        "{} (connections that got no echo in the window): {}. These models \
         serve a bounded number of connections at once; avoid them when connections are \
         held open.",
        s.bold("Starvation"),
        listed.join("; ")
    )
}

/// A work level's degradation line.
fn degradation_line(
    work: u64,
    base: u64,
    connections: usize,
    models: &[Degraded],
    s: Style,
) -> String {
    let degrade: Vec<String> = models
        .iter()
        .map(|d| {
            format!(
                "{} p99 {} → {} µs, fairness {:.2}{}",
                d.model,
                d.base_p99,
                d.p99,
                d.fairness,
                if d.starved > 0 {
                    format!(", {} starved", d.starved)
                } else {
                    String::new()
                }
            )
        })
        .collect();
    format!(
        "{} ({connections} connections, from {base} µs, medians): {}. A loop or worker that computes inline delays every connection queued behind it; p99 and fairness show which models let that happen.",
        s.bold(&format!("What {work} µs of work does to latency")),
        degrade.join("; ")
    )
}

/// A work level's offload line.
fn offload_line(work: u64, connections: usize, o: &Offload, s: Style) -> String {
    format!(
        "{} (tokio-rayon against tokio, {connections} connections): throughput {:.2}× (medians){}, p99 {} vs {} µs, fairness {:.2} vs {:.2}.",
        s.bold(&format!("Offloading {work} µs of work to a rayon pool")),
        o.ratio,
        match (&o.change, &o.separated) {
            (None, _) => " with no interval (one round)".to_owned(),
            (Some(c), Some((leader, second))) =>
                format!(", {} for {leader} over {second}", change(c)),
            (Some(_), None) => " (within noise)".to_owned(),
        },
        o.p99.0,
        o.p99.1,
        o.fairness.0,
        o.fairness.1
    )
}

/// The C10K lines: memory per idle connection, latency beside them, who was not measured, and
/// what an idle TLS session adds.
pub fn c10k_lines(c: &C10k, s: Style) -> Vec<String> {
    let mut lines = Vec::new();
    // The findings are TCP's; a run that held connections over TLS alone says so.
    let over = match c.transport {
        echo_servers::Transport::Tcp => String::new(),
        other => format!(" over {other}"),
    };
    if let Some(m) = &c.memory
        && let (Some(least), Some(most)) = (m.per_model.first(), m.per_model.last())
    {
        let list: Vec<String> = m
            .per_model
            .iter()
            .map(|(model, kib)| format!("{model} {kib:.2}"))
            .collect();
        let kept: Vec<String> = m
            .kept
            .iter()
            .map(|(model, kib)| format!("{model} ({:.0} MiB)", *kib as f64 / 1024.0))
            .collect();
        lines.push(format!(
            "{} ({} connections held{over}; resident memory growth, one \
             measurement per model, no interval): {} needs the least, {:.2} KiB per \
             connection; the most is {} with {:.2} KiB (KiB per connection: {}).{}",
            s.bold("Memory per idle connection"),
            m.target,
            s.bold(least.0.name()),
            least.1,
            most.0,
            most.1,
            list.join(", "),
            if kept.is_empty() {
                String::new()
            } else {
                format!(
                    " After every connection closed, these kept more than 16 MiB above their \
                     start: {}.",
                    kept.join(", ")
                )
            }
        ));
    }
    if let Some(l) = &c.latency {
        let hurt: Vec<String> = l
            .models
            .iter()
            .filter(|b| b.hurt)
            .map(|b| {
                format!(
                    "{} ({} → {} µs, {:.0} → {:.0} msg/s)",
                    b.model, b.base_p99, b.idle_p99, b.base_rps, b.idle_rps
                )
            })
            .collect();
        lines.push(format!(
            "{} (p99 of {ACTIVE_CONNECTIONS} active ping-pong \
             connections, without and with {} idle ones{over}; one sample each): {}",
            s.bold("Latency beside idle connections"),
            l.target,
            if hurt.is_empty() {
                format!(
                    "no model's p99 more than doubled nor its messages/s halved ({}); within \
                     this machine's run-to-run noise, holding idle connections did not slow the \
                     active ones.",
                    l.models
                        .iter()
                        .map(|b| format!("{} {} → {} µs", b.model, b.base_p99, b.idle_p99))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                format!(
                    "p99 more than doubled or messages/s halved for {}.",
                    hurt.join(", ")
                )
            }
        ));
    }
    if !c.not_measured.is_empty() {
        let na: Vec<String> = c
            .not_measured
            .iter()
            .map(|(model, note)| format!("{model} ({note})"))
            .collect();
        lines.push(format!(
            "Not measured holding idle connections{over}: {}.",
            na.join("; ")
        ));
    }
    if !c.tls_sessions.is_empty() {
        let each: Vec<String> = c
            .tls_sessions
            .iter()
            .map(|t| {
                format!(
                    "{} {:+.2} KiB ({:.2} → {:.2})",
                    t.model,
                    t.extra_kib(),
                    t.tcp_kib,
                    t.tls_kib
                )
            })
            .collect();
        lines.push(format!(
            "{} (server memory per idle connection over TLS, handshake done, less over TCP; \
             one holding each way, no interval): {}.",
            s.bold("What an idle TLS session costs"),
            each.join(", ")
        ));
    }
    lines
}

/// The "Which model to pick" section of `run` (or of one transport's part of it, with its
/// aggregates), one bullet's text per finding, in order.
pub fn lines_of(run: &SuiteRun, all: &[Aggregate], s: Style) -> Vec<String> {
    advice_lines(&echo_analysis::advice::advice(run, all), s)
}

/// The "Which model to pick" section, one bullet's text per finding, in order.
pub fn advice_lines(advice: &Advice<'_>, s: Style) -> Vec<String> {
    let mut lines: Vec<String> = advice.categories.iter().map(|f| finding(f, s)).collect();
    lines.extend(advice.memory.as_ref().map(|m| memory_line(m, s)));
    if !advice.starving.is_empty() {
        lines.push(starving_line(&advice.starving, s));
    }
    lines.extend(advice.work_categories.iter().map(|f| finding(f, s)));
    for w in &advice.work {
        lines.push(match w {
            WorkFinding::Degradation {
                work,
                base,
                connections,
                models,
            } => degradation_line(*work, *base, *connections, models, s),
            WorkFinding::Offload {
                work,
                connections,
                offload,
            } => offload_line(*work, *connections, offload, s),
        });
    }
    lines.extend(
        advice
            .capacity
            .as_ref()
            .map_or_else(Vec::new, |c| super::capacity::advice_lines(c, s)),
    );
    lines.extend(c10k_lines(&advice.c10k, s));
    if lines.is_empty() {
        lines.push(
            "No point of this run can rank the models (every candidate failed or starved).".into(),
        );
    }
    lines
}
