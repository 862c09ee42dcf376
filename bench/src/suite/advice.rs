//! "Which model to pick" for a stored or finished run: the findings of
//! [`echo_analysis::advice`] written by [`crate::render::advice`], and the categories the
//! stability check compares. The aggregation, ranking and findings themselves are
//! echo-analysis's, re-exported here under the names they had.

pub use echo_analysis::aggregate::{
    Aggregate, Ineligible, Measure, Sample, TIE_PCT, aggregate, at_base_work, work_sweep,
};
pub use echo_analysis::rank::{Ranked, Ranking, measure_for, rank};

use echo_analysis::advice::{self as findings, Finding};

pub use echo_analysis::stability::Category;

use super::SuiteRun;
use crate::render::{Style, advice as prose};

/// The category a finding ranks, by name.
pub fn category(f: &Finding<'_>) -> Category {
    let names = |models: Vec<super::Server>| models.iter().map(ToString::to_string).collect();
    Category {
        title: prose::title(f.title),
        point: prose::describe_point(f.point),
        measure: f.ranking.measure.name().to_owned(),
        winner: f.ranking.sole_winner().map(|m| m.to_string()),
        ranked: names(
            f.ranking
                .ranked
                .iter()
                .map(|r| r.aggregate.model.clone())
                .collect(),
        ),
        group: names(f.ranking.group()),
    }
}

/// The ranked categories of a run: what `echo-bench stability` compares between runs. Over
/// several transports, the first's (TCP's when it was measured).
pub fn verdicts(run: &SuiteRun) -> Vec<Category> {
    let all = aggregate(run);
    let first = echo_analysis::transports::present(run).first().copied();
    let all: Vec<Aggregate> = all
        .into_iter()
        .filter(|a| first.is_none_or(|t| a.load.transport == t))
        .collect();
    findings::rankings(&all).iter().map(category).collect()
}

/// Every ranked category of `all` (a run's aggregates) with its ranking, for the charts.
pub fn rankings(all: &[Aggregate]) -> Vec<(Category, Ranking<'_>)> {
    findings::rankings(all)
        .into_iter()
        .map(|f| (category(&f), f.ranking))
        .collect()
}

/// The "Which model to pick" section, as markdown bullet lines.
pub fn advice(run: &SuiteRun) -> Vec<String> {
    advice_of(run, &aggregate(run))
}

/// [`advice`] from the run's aggregates, computed once by the caller.
pub fn advice_of(run: &SuiteRun, all: &[Aggregate]) -> Vec<String> {
    advice_styled(run, all, Style::Markdown)
}

/// [`advice_of`] with emphasis written in `style`.
pub fn advice_styled(run: &SuiteRun, all: &[Aggregate], style: Style) -> Vec<String> {
    prose::lines_of(run, all, style)
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_analysis::fixtures::{run_of, saturated, trial};
    use echo_servers::Model;

    #[test]
    fn a_model_separated_in_every_round_wins_alone() {
        // The rounds drift by 20% together; mio stays 15–20% ahead of tokio in each.
        let run = run_of(&[
            (Model::Tokio, [80_000.0, 100_000.0, 84_000.0]),
            (Model::Mio, [94_000.0, 118_000.0, 100_000.0]),
        ]);
        let categories = verdicts(&run);
        assert_eq!(
            categories[0].winner.as_deref(),
            Some("mio"),
            "{categories:?}"
        );
        assert_eq!(categories[0].group, ["mio"]);
        let line = &advice(&run)[0];
        assert!(line.contains("**mio** leads with 100k msg/s"), "{line}");
        assert!(line.contains("against the runner-up tokio"), "{line}");
        assert!(line.contains("3 rounds"), "{line}");
    }

    #[test]
    fn models_the_rounds_cannot_separate_are_named_as_a_tie_and_no_more() {
        // mio and tokio swap places between rounds; blocking is 40% behind in every round.
        let run = run_of(&[
            (Model::Mio, [100_000.0, 92_000.0, 104_000.0]),
            (Model::Tokio, [97_000.0, 99_000.0, 98_000.0]),
            (Model::Blocking, [60_000.0, 58_000.0, 61_000.0]),
        ]);
        let categories = verdicts(&run);
        assert_eq!(categories[0].winner, None, "{categories:?}");
        assert_eq!(categories[0].group, ["mio", "tokio"]);
        let line = &advice(&run)[0];
        assert!(line.contains("**mio, tokio** tied"), "{line}");
        assert!(
            line.contains("separates from the leader: blocking"),
            "{line}"
        );
        assert!(!line.contains("leads"), "{line}");
    }

    #[test]
    fn one_round_separates_nothing() {
        let mut run = run_of(&[
            (Model::Mio, [200_000.0, 0.0, 0.0]),
            (Model::Tokio, [100_000.0, 0.0, 0.0]),
        ]);
        run.points.retain(|p| p.point.round == 0);
        let categories = verdicts(&run);
        assert_eq!(categories[0].group, ["mio", "tokio"], "{categories:?}");
        assert!(advice(&run)[0].contains("one round cannot separate"));
    }

    #[test]
    fn where_the_client_saturates_models_are_ranked_by_server_cpu_per_message() {
        // Equal throughput (the client's limit), but tokio spends 30% more CPU per message.
        let mut run = SuiteRun::default();
        for round in 0..3 {
            run.points
                .push(saturated(trial(Model::Mio, 16, round, 100_000.0, 0.50)));
            run.points
                .push(saturated(trial(Model::Tokio, 16, round, 100_000.0, 0.65)));
        }
        let categories = verdicts(&run);
        assert_eq!(categories[0].measure, "server CPU per message");
        assert_eq!(
            categories[0].winner.as_deref(),
            Some("mio"),
            "{categories:?}"
        );
        let line = &advice(&run)[0];
        assert!(
            line.contains("client was saturated in 6 of 6 trials"),
            "{line}"
        );
        assert!(line.contains("5.00 µs CPU/msg"), "{line}");
    }

    #[test]
    fn a_model_that_starved_connections_cannot_rank() {
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
        let line = &advice(&run)[0];
        assert!(line.contains("**mio** is the only model"), "{line}");
        assert!(
            line.contains("blocking (starved 15 of 16 connections)"),
            "{line}"
        );
    }
}
