//! The io_uring ablation (`suite --profile ablation`) as data: the `io-uring` model one
//! technique at a time, from plain one-shot operations to everything
//! ([`crate::server::VARIANTS`], then the model itself), beside the other servers measured at
//! the same loads. [`of`] gives each step's server CPU per message with its interval over the
//! rounds, and what the step changed against the step before and against `mio`, paired by
//! round and judged with the same paired bootstrap as every other comparison ([`Change`]).

use std::collections::BTreeMap;

use echo_servers::Model;

use crate::aggregate::{Aggregate, Measure, TIE_PCT};
use crate::bootstrap::{Change, Estimate, Verdict};
use crate::point::Load;
use crate::server::Server;

/// The seed of the comparisons' bootstrap (fixed, so a redraw gives the same intervals).
const SEED: u64 = 0xab1a7e;

/// The ablation of one run: the loads, the steps in order, and the other servers measured at
/// the same loads.
#[derive(Debug, Clone, PartialEq)]
pub struct Ablation {
    /// The loads every step was measured at, in plan order.
    pub loads: Vec<Load>,
    /// The steps, plain first and the `io-uring` model last.
    pub steps: Vec<Row>,
    /// The other servers measured at those loads (`mio` among them when it ran).
    pub others: Vec<Row>,
}

/// One server's figures at each load of the ablation.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The server.
    pub server: Server,
    /// What the step adds to the one before (steps only).
    pub adds: Option<&'static str>,
    /// Per load (as [`Ablation::loads`]): its figures, if it was measured there.
    pub cells: Vec<Option<Cell>>,
}

/// One server's server CPU per message at one load.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The median over the rounds and its 95% interval, µs.
    pub cpu: Estimate,
    /// Whether it served the load as asked (no failure, starved connection or error).
    pub served: bool,
    /// The change from the step before (steps after the first): `+` costs more.
    pub vs_previous: Option<Change>,
    /// The change from `mio` at the same load: `+` costs more than mio.
    pub vs_mio: Option<Change>,
}

impl Cell {
    /// What the change from `base` says, at the suite's tie threshold: costs less, costs
    /// more, or the rounds cannot separate them.
    pub fn verdict(change: &Change) -> Verdict {
        change.verdict(TIE_PCT, Measure::CpuPerMessage.higher_is_better())
    }
}

/// The ablation in `all`, or `None` when no step of it was measured.
pub fn of(all: &[Aggregate]) -> Option<Ablation> {
    let steps = Server::uring_steps();
    let variants_ran = all.iter().any(|a| matches!(a.model, Server::Variant(_)));
    if !variants_ran {
        return None;
    }
    let mut loads: Vec<Load> = Vec::new();
    for a in all.iter().filter(|a| steps.contains(&a.model)) {
        let load = a.load;
        if !loads.contains(&load) {
            loads.push(load);
        }
    }
    let at: BTreeMap<(Server, Load), &Aggregate> =
        all.iter().map(|a| ((a.model.clone(), a.load), a)).collect();
    let mio = Server::Model(Model::Mio);
    let row = |server: Server, previous: Option<Server>| Row {
        adds: server.step_adds(),
        cells: loads
            .iter()
            .map(|load| {
                let a = at.get(&(server.clone(), *load))?;
                Some(Cell {
                    cpu: a.estimate(Measure::CpuPerMessage)?,
                    served: a.served(),
                    vs_previous: previous
                        .clone()
                        .and_then(|p| at.get(&(p, *load)))
                        .and_then(|base| paired(base, a)),
                    vs_mio: at
                        .get(&(mio.clone(), *load))
                        .and_then(|base| paired(base, a)),
                })
            })
            .collect(),
        server,
    };
    let mut previous: Option<Server> = None;
    let step_rows = steps
        .iter()
        .map(|step| {
            let r = row(step.clone(), previous.clone());
            previous = Some(step.clone());
            r
        })
        .collect();
    let mut others: Vec<Server> = all
        .iter()
        .map(|a| a.model.clone())
        .filter(|s| !steps.contains(s) && loads.iter().any(|l| at.contains_key(&(s.clone(), *l))))
        .collect();
    others.sort();
    others.dedup();
    let others = others
        .into_iter()
        .map(|s| Row {
            adds: None,
            ..row(s, None)
        })
        .collect();
    Some(Ablation {
        loads,
        steps: step_rows,
        others,
    })
}

/// `head` against `base` in server CPU per message, paired by round.
fn paired(base: &Aggregate, head: &Aggregate) -> Option<Change> {
    Change::of(&head.paired_with(base, Measure::CpuPerMessage), SEED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::aggregate;
    use crate::fixtures::ablation_run as run;

    #[test]
    fn each_step_is_compared_with_the_one_before_and_with_mio() {
        let all = aggregate(&run());
        let ablation = of(&all).expect("steps were measured");
        assert_eq!(ablation.loads.len(), 1);
        assert_eq!(ablation.loads[0].connections, 256);
        assert_eq!(ablation.steps.len(), 6);
        assert_eq!(ablation.steps[0].server.name(), "io-uring.plain");
        assert_eq!(ablation.steps[1].adds, Some("multishot accept"));
        assert_eq!(ablation.steps[5].server, Server::Model(Model::IoUring));
        assert_eq!(ablation.others.len(), 1, "mio");
        assert_eq!(ablation.others[0].server, Server::Model(Model::Mio));
        assert!(
            ablation.others[0].cells[0]
                .as_ref()
                .unwrap()
                .vs_mio
                .is_some()
        );
        let first = ablation.steps[0].cells[0].as_ref().unwrap();
        assert!((first.cpu.median - 8.08).abs() < 0.01, "{first:?}");
        assert!(first.served);
        assert!(
            first.vs_previous.is_none(),
            "the first step has none before it"
        );
        // 8 → 7 µs: −12.5%, every round alike.
        let second = ablation.steps[1].cells[0].as_ref().unwrap();
        let change = second.vs_previous.as_ref().unwrap();
        assert!((change.change_pct + 12.5).abs() < 0.5, "{change:?}");
        assert_eq!(Cell::verdict(change), Verdict::Improved);
        // The model itself, 3 µs, against mio's 4: −25%, separated.
        let last = ablation.steps[5].cells[0].as_ref().unwrap();
        let vs_mio = last.vs_mio.as_ref().unwrap();
        assert!((vs_mio.change_pct + 25.0).abs() < 0.5, "{vs_mio:?}");
        assert_eq!(Cell::verdict(vs_mio), Verdict::Improved);
        // io-uring.accept (7 µs) against mio (4 µs): +75%, costs more.
        assert_eq!(
            Cell::verdict(second.vs_mio.as_ref().unwrap()),
            Verdict::Regressed
        );
    }

    #[test]
    fn a_step_not_measured_at_a_load_has_no_cell_there() {
        let mut run = run();
        run.points
            .retain(|p| p.point.model.name() != "io-uring.batch");
        let ablation = of(&aggregate(&run)).unwrap();
        let batch = ablation
            .steps
            .iter()
            .find(|r| r.server.name() == "io-uring.batch")
            .unwrap();
        assert_eq!(batch.cells, [None]);
        // The step after it has no step before it measured, so no change from it.
        let after = &ablation.steps[4];
        assert!(after.cells[0].as_ref().unwrap().vs_previous.is_none());
    }

    #[test]
    fn a_run_without_steps_has_no_ablation() {
        let mut run = run();
        run.points
            .retain(|p| p.point.model == Server::Model(Model::Mio));
        assert!(of(&aggregate(&run)).is_none());
    }
}
