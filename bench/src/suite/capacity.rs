//! The suite's capacity measurement (`--profile capacity`, and in the full profile): each
//! model's highest open-loop rate under a latency objective, searched as `echo-bench capacity`
//! does ([`crate::capacity`]), with the rounds interleaved across models; the ranking at
//! capacity through the paired ratios of `ab`'s statistics (a round is a block); the knee
//! table and the advice line as data.
//!
//! Every model gets its ramp first (one server each), then every round measures every model
//! over its grid, the models in an order shuffled per round from the run's seed, each on a
//! fresh server, so a disturbance of the machine lands on different models in different rounds.
//! Of each round, the latency over time of the steps on each side of its crossing is kept.

use echo_servers::Model;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use super::{SuiteOptions, SuiteRun};
use crate::capacity::{self, Bracket, Load, Objective, Phase, Plan, Step};
pub use echo_analysis::capacity::{
    ModelCapacity, Standing, StepTimeline, TIE_PCT, knee_sides, ranking,
};

/// What the suite's capacity search uses: the objective, the search's bounds and the load.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The objective.
    pub objective: Objective,
    /// The search's bounds; its rounds are the suite's.
    pub plan: Plan,
    /// Connections of every step.
    pub connections: usize,
    /// Bytes per message.
    pub payload: usize,
    /// Warm-up of every step.
    pub warmup: std::time::Duration,
    /// The shortest and longest a step measures.
    pub shortest: std::time::Duration,
    /// See `shortest`.
    pub longest: std::time::Duration,
}

impl Settings {
    /// The capacity profile's: p99 ≤ 1 ms at 256 connections × 64 B, a ramp from 20,000 msg/s
    /// (down to 5,000: a model below it is said to be, not searched further), a grid of five
    /// rates, steps from 0.3 s (and 10,000 messages) to 2 s.
    pub fn profile(objective: Objective, rounds: usize) -> Self {
        Settings {
            objective,
            plan: Plan {
                start_rps: 20_000.0,
                min_rps: 5_000.0,
                max_rps: 1_000_000.0,
                grid_steps: 5,
                rounds,
                ..Plan::default()
            },
            connections: CONNECTIONS,
            payload: PAYLOAD,
            warmup: std::time::Duration::from_millis(200),
            shortest: std::time::Duration::from_millis(300),
            longest: std::time::Duration::from_secs(2),
        }
    }
}

pub use echo_analysis::capacity::{SUITE_CONNECTIONS as CONNECTIONS, SUITE_PAYLOAD as PAYLOAD};

/// Runs `measure` against a fresh server of `model`, stopping it after.
fn on_server<T>(
    options: &SuiteOptions,
    settings: &Settings,
    model: Model,
    work: impl FnOnce(&Load) -> Result<T, String>,
) -> Result<T, String> {
    let server = options
        .launcher
        .start(model, options.pinning.server_cpus.as_deref())
        .map_err(|e| format!("server did not start: {e}"))?;
    let load = Load {
        target: server.endpoint().clone(),
        connections: settings.connections,
        payload: settings.payload,
        warmup: settings.warmup,
        shortest: settings.shortest,
        longest: settings.longest,
        timeout: options.timeout,
        threads: options
            .pinning
            .client_cpus
            .as_ref()
            .map_or_else(echo_loadgen::config::default_threads, Vec::len)
            .max(1),
        server_pid: Some(server.pid()),
        client_cpus: options.pinning.client_cpus.clone(),
    };
    let result = work(&load);
    let stopped = server.stop();
    let value = result?;
    stopped.map_err(|e| format!("server did not stop cleanly: {e}"))?;
    Ok(value)
}

/// Measures every model's capacity, rounds interleaved; `on_step(label)` before each server.
pub fn measure(
    options: &SuiteOptions,
    settings: &Settings,
    models: &[Model],
    on_step: &mut dyn FnMut(&str),
) -> Vec<ModelCapacity> {
    let objective = settings.objective;
    let plan = settings.plan;
    let mut searches: Vec<ModelCapacity> = Vec::with_capacity(models.len());
    let mut brackets: Vec<Option<Bracket>> = Vec::with_capacity(models.len());
    for &model in models {
        on_step(&format!("{model}: capacity ramp"));
        let ramp = on_server(options, settings, model, |load| {
            let mut measure = |rate: f64| capacity::measure_step(load, &objective, rate);
            capacity::ramp(
                &mut measure,
                &objective,
                &plan,
                &mut |_: Phase, _: &Step| {},
            )
        });
        let (steps, bracket, failure) = match ramp {
            Ok((steps, bracket)) => (steps, Some(bracket), None),
            Err(why) => (Vec::new(), None, Some(why)),
        };
        searches.push(ModelCapacity {
            model: model.name().to_owned(),
            capacity: None,
            ramp: steps,
            grid: bracket.map(|b| plan.grid(b)).unwrap_or_default(),
            rounds: Vec::new(),
            failure,
            timelines: Vec::new(),
        });
        brackets.push(bracket);
    }
    for round in 0..plan.rounds {
        let mut order: Vec<usize> = (0..models.len()).collect();
        order.shuffle(&mut SmallRng::seed_from_u64(
            options.seed ^ (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ));
        for i in order {
            if echo_loadgen::child::interrupted() {
                break;
            }
            let search = &mut searches[i];
            if search.failure.is_some() || search.grid.is_empty() {
                continue;
            }
            on_step(&format!(
                "{}: capacity round {}/{}",
                models[i],
                round + 1,
                plan.rounds
            ));
            let grid = search.grid.clone();
            let mut timelines: Vec<StepTimeline> = Vec::new();
            let steps = on_server(options, settings, models[i], |load| {
                let mut measure = |rate: f64| {
                    let (step, intervals) =
                        capacity::measure_step_over_time(load, &objective, rate)?;
                    timelines.push(StepTimeline {
                        round,
                        offered_rps: step.offered_rps,
                        met: objective.met_by(&step),
                        intervals,
                    });
                    Ok(step)
                };
                capacity::round(
                    &mut measure,
                    &objective,
                    &plan,
                    &grid,
                    round,
                    &mut |_, _| {},
                )
            });
            match steps {
                Ok(steps) => {
                    let sides = knee_sides(&objective, &steps);
                    timelines.retain(|t| sides.contains(&t.offered_rps));
                    search.timelines.extend(timelines);
                    search.rounds.push(steps);
                }
                Err(why) => search.failure = Some(why),
            }
        }
    }
    for (search, bracket) in searches.iter_mut().zip(brackets) {
        if let Some(bracket) = bracket {
            search.capacity = Some(capacity::search::summarise(
                &objective,
                bracket,
                &search.grid,
                &search.rounds,
            ));
        }
    }
    searches
}

/// The capacity ranking as an advice category, for `stability`: the leading group (the best
/// and every model its paired ratio does not separate from it), the winner when it is alone.
pub fn category(run: &SuiteRun) -> Option<super::advice::Category> {
    let objective = run.capacity_objective?;
    let ranked = ranking(&run.capacity);
    // The best first: the leader a category names is the one the others were compared with.
    let group: Vec<String> = ranked
        .iter()
        .filter(|s| s.best)
        .chain(ranked.iter().filter(|s| s.leading && !s.best))
        .map(|s| s.model.clone())
        .collect();
    if group.is_empty() {
        return None;
    }
    Some(super::advice::Category {
        title: format!("Capacity at {objective}"),
        point: format!("{CONNECTIONS} connections × {PAYLOAD} B, open loop"),
        measure: "capacity msg/s".to_owned(),
        winner: (group.len() == 1).then(|| group[0].clone()),
        group,
        ranked: ranked
            .iter()
            .filter(|s| s.capacity_rps.is_some())
            .map(|s| s.model.clone())
            .collect(),
    })
}
