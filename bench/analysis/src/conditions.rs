//! How a run was measured, as data: how quiet the machine was ([`Quietness`]), which I/O
//! driver each model's servers ran on ([`drivers_of`]), and where the load generator, not the
//! server, was the limit ([`saturation`]).

use std::collections::BTreeMap;

use echo_loadgen::config::Workload;
use echo_servers::{Driver, Model};

use crate::aggregate::Aggregate;
use crate::run::{PointResult, SuiteRun};
use crate::server::Server;

/// What other tasks took during a run's measured windows, and which trials were re-run or kept
/// disturbed.
#[derive(Debug, Clone, PartialEq)]
pub struct Quietness<'a> {
    /// The median of every trial's CPU taken by other tasks (plus steal), cores.
    pub median_cores: f64,
    /// The most any trial saw, cores.
    pub most_cores: f64,
    /// Trials re-run for interference, in all.
    pub reruns: u32,
    /// Trials kept although they stayed above the limit after their re-runs.
    pub flagged: Vec<&'a PointResult>,
}

/// How quiet the machine was during `run`; `None` when no trial measured it (no /proc/stat).
pub fn quietness(run: &SuiteRun) -> Option<Quietness<'_>> {
    let mut other: Vec<f64> = run
        .points
        .iter()
        .filter_map(PointResult::interference_cores)
        .collect();
    if other.is_empty() {
        return None;
    }
    other.sort_by(f64::total_cmp);
    Some(Quietness {
        median_cores: other[other.len() / 2],
        most_cores: other[other.len() - 1],
        reruns: run
            .points
            .iter()
            .map(|p| p.attempts.saturating_sub(1))
            .sum(),
        flagged: run.points.iter().filter(|p| p.interfered).collect(),
    })
}

/// What one model's trials ran on: the drivers its servers reported, and whether any of them
/// was not the model's first choice (a fallback, such as monoio on epoll where io_uring is
/// refused).
#[derive(Debug, Clone, PartialEq)]
pub struct DriversOf {
    /// The model.
    pub model: Model,
    /// Every driver its trials reported, in [`Driver`]'s order.
    pub drivers: Vec<Driver>,
    /// Those of them that were not its first choice.
    pub fallbacks: Vec<Driver>,
}

/// The drivers each model's trials reported, models in registry order; models whose trials
/// reported none (outside servers, runs stored before schema 3) are left out.
pub fn drivers_of(run: &SuiteRun) -> Vec<DriversOf> {
    let mut found: BTreeMap<Model, Vec<Driver>> = BTreeMap::new();
    for trial in &run.points {
        if let (Some(model), Some(driver)) = (trial.point.model.model(), trial.driver) {
            let drivers = found.entry(model).or_default();
            if !drivers.contains(&driver) {
                drivers.push(driver);
                drivers.sort();
            }
        }
    }
    found
        .into_iter()
        .map(|(model, drivers)| DriversOf {
            model,
            fallbacks: drivers
                .iter()
                .copied()
                .filter(|&d| d != model.first_choice())
                .collect(),
            drivers,
        })
        .collect()
}

/// A point where the client was saturated, and the models it saturated for.
#[derive(Debug, Clone, PartialEq)]
pub struct Saturated {
    /// The workload.
    pub workload: Workload,
    /// Connections.
    pub connections: usize,
    /// Payload bytes.
    pub payload: usize,
    /// CPU work per message in the server, µs.
    pub work_us: u64,
    /// `(model, rounds saturated, rounds run)`, in the aggregates' order.
    pub models: Vec<(Server, usize, usize)>,
}

/// Where the client was saturated: one entry per point (workload, connections, payload and
/// work; the rate and transport not told apart), in the order of the aggregates.
pub fn saturation(aggregates: &[Aggregate]) -> Vec<Saturated> {
    let mut out: Vec<Saturated> = Vec::new();
    for a in aggregates.iter().filter(|a| a.client_saturated) {
        let l = &a.load;
        let entry = (a.model.clone(), a.client_saturated_rounds, a.runs);
        match out.iter_mut().find(|s| {
            (s.workload, s.connections, s.payload, s.work_us)
                == (l.workload, l.connections, l.payload, l.work_us)
        }) {
            Some(s) => s.models.push(entry),
            None => out.push(Saturated {
                workload: l.workload,
                connections: l.connections,
                payload: l.payload,
                work_us: l.work_us,
                models: vec![entry],
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{saturated, trial};
    use crate::point::Point;
    use crate::status::Status;

    /// A trial at `connections` in `round`, its client saturated or not.
    fn at(model: Model, connections: usize, saturate: bool, round: usize) -> PointResult {
        let t = trial(model, connections, round, 1000.0, 0.5);
        if saturate { saturated(t) } else { t }
    }

    #[test]
    fn saturation_lists_each_point_once_with_its_models_rounds() {
        let mut run = SuiteRun::default();
        for round in 0..3 {
            run.points.push(at(Model::Mio, 16, round < 2, round));
            run.points.push(at(Model::Tokio, 16, true, round));
            run.points.push(at(Model::Mio, 1, false, round));
        }
        let found = saturation(&crate::aggregate::aggregate(&run));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].connections, 16);
        assert_eq!(
            found[0].models,
            [(Model::Mio.into(), 2, 3), (Model::Tokio.into(), 3, 3)]
        );
    }

    #[test]
    fn a_trial_not_on_its_models_first_choice_is_a_fallback() {
        let trial = |model: Model, driver: Option<Driver>| PointResult {
            point: Point {
                model: model.into(),
                ..Point::default()
            },
            status: Status::Ok,
            driver,
            ..PointResult::default()
        };
        let run = SuiteRun {
            points: vec![
                trial(Model::Tokio, Some(Driver::Epoll)),
                trial(Model::Mio, Some(Driver::Epoll)),
                trial(Model::Mio, Some(Driver::IoUring)),
                trial(Model::Blocking, None),
            ],
            ..SuiteRun::default()
        };
        let drivers = drivers_of(&run);
        assert_eq!(
            drivers.len(),
            2,
            "a model that reported no driver is left out"
        );
        assert_eq!(drivers[0].model, Model::Mio, "in registry order");
        assert_eq!(drivers[0].drivers, [Driver::Epoll, Driver::IoUring]);
        assert_eq!(drivers[0].fallbacks, [Driver::IoUring]);
        assert_eq!(drivers[1].fallbacks, []);
    }

    #[test]
    fn quietness_takes_the_median_and_the_most_and_counts_reruns() {
        let mut run = SuiteRun::default();
        assert_eq!(quietness(&run), None, "no /proc/stat, no figure");
        for (i, other) in [0.1, 0.4, 0.2].into_iter().enumerate() {
            let mut t = at(Model::Mio, 1, false, i);
            t.report.as_mut().unwrap().machine = Some(echo_loadgen::procfs::MachineUsage {
                other_cores: other,
                ..Default::default()
            });
            t.attempts = if i == 1 { 3 } else { 1 };
            t.interfered = i == 1;
            run.points.push(t);
        }
        let q = quietness(&run).unwrap();
        assert_eq!((q.median_cores, q.most_cores, q.reruns), (0.2, 0.4, 2));
        assert_eq!(q.flagged.len(), 1);
        assert_eq!(q.flagged[0].point.round, 1);
    }
}
