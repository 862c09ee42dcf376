//! The models of one point ranked by one measure, and the leading group: the leader and every
//! model the paired comparison over the rounds cannot separate from it by more than
//! [`TIE_PCT`].
//!
//! A model wins only when the data separates it from the runner-up: the paired comparison over
//! the rounds (each round is a block that measured every model, compared with the bootstrap of
//! log-ratios) puts the whole interval of the ratio past [`TIE_PCT`]. Where the client was
//! saturated, throughput is only a lower bound, so [`measure_for`] ranks by the server's CPU
//! time per message instead.

use crate::aggregate::{Aggregate, Ineligible, Measure, SEED, TIE_PCT};
use crate::bootstrap::{Change, Estimate, Verdict};
use crate::server::Server;

/// One eligible model in a ranking.
#[derive(Debug, Clone)]
pub struct Ranked<'a> {
    /// Its figures.
    pub aggregate: &'a Aggregate,
    /// The ranking measure over its rounds.
    pub estimate: Estimate,
    /// The paired change from this model to the leader (`None` for the leader, or with fewer
    /// than two shared rounds).
    pub leader_vs_this: Option<Change>,
    /// Whether the leader is separated from it: the whole interval past [`TIE_PCT`].
    pub separated: bool,
}

/// The models of one point, ranked by one measure, best first, and the leading group.
#[derive(Debug, Clone)]
pub struct Ranking<'a> {
    /// What they were ranked by.
    pub measure: Measure,
    /// Eligible models, best median first.
    pub ranked: Vec<Ranked<'a>>,
    /// Models that did not serve the load, with the reason.
    pub excluded: Vec<(Server, Ineligible)>,
    /// Rounds in which any eligible model's client was saturated, of all their rounds.
    pub saturated_rounds: (usize, usize),
}

impl Ranking<'_> {
    /// The leading group: the leader and every model it cannot be separated from.
    pub fn group(&self) -> Vec<Server> {
        self.ranked
            .iter()
            .filter(|r| !r.separated)
            .map(|r| r.aggregate.model.clone())
            .collect()
    }

    /// The leader, when the data separates it from every other model.
    pub fn sole_winner(&self) -> Option<Server> {
        let group = self.group();
        (group.len() == 1 && self.ranked.len() > 1).then(|| group[0].clone())
    }
}

/// Ranks `candidates` (one point, every model) by `measure`. Models that did not serve the
/// load cannot rank. `None` when no model can.
pub fn rank<'a>(candidates: &[&'a Aggregate], measure: Measure) -> Option<Ranking<'a>> {
    let mut excluded = Vec::new();
    let mut ranked: Vec<Ranked<'a>> = Vec::new();
    for &a in candidates {
        match (a.why_not_served(), a.estimate(measure)) {
            (None, Some(estimate)) => ranked.push(Ranked {
                aggregate: a,
                estimate,
                leader_vs_this: None,
                separated: false,
            }),
            (None, None) => excluded.push((a.model.clone(), Ineligible::NoFigure(measure))),
            (Some(why), _) => excluded.push((a.model.clone(), why)),
        }
    }
    let better = |x: f64, y: f64| {
        if measure.higher_is_better() {
            y.total_cmp(&x)
        } else {
            x.total_cmp(&y)
        }
    };
    ranked.sort_by(|x, y| better(x.estimate.median, y.estimate.median));
    let leader = ranked.first()?.aggregate;
    for r in ranked.iter_mut().skip(1) {
        // Paired within rounds: this model as the base, the leader as the head.
        let pairs = leader.paired_with(r.aggregate, measure);
        r.leader_vs_this = Change::of(&pairs, SEED);
        r.separated = r
            .leader_vs_this
            .as_ref()
            .is_some_and(|c| c.verdict(TIE_PCT, measure.higher_is_better()) == Verdict::Improved);
    }
    let rounds = |f: fn(&Aggregate) -> usize| ranked.iter().map(|r| f(r.aggregate)).sum();
    Some(Ranking {
        measure,
        saturated_rounds: (rounds(|a| a.client_saturated_rounds), rounds(|a| a.runs)),
        ranked,
        excluded,
    })
}

/// What a category ranks by: `preferred`, unless the client was saturated in any round of a
/// model that served the load; then server CPU per message, since throughput there is only a
/// lower bound.
pub fn measure_for(candidates: &[&Aggregate], preferred: Measure) -> Measure {
    let saturated = candidates
        .iter()
        .any(|a| a.served() && a.client_saturated_rounds > 0);
    if saturated && preferred.higher_is_better() {
        Measure::CpuPerMessage
    } else {
        preferred
    }
}
