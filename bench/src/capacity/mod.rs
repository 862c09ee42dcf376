//! Capacity under a latency objective: the highest open-loop rate at which a server keeps a
//! percentile under a limit (`p99=1ms`), as a median with an interval over rounds.
//!
//! [`search`] (`echo_analysis::capacity`) holds every decision (the ramp, the grid, when a step passes, where a round
//! crosses, the capacity over the rounds) as pure functions of measured steps; this module
//! runs the steps on the load generator's `rate` engine (open loop, latency from the intended
//! send time) and keeps everything measured, so `echo-bench capacity --json` and the suite
//! store every step beside the figure.

pub use echo_analysis::capacity as search;

use std::time::Duration;

use echo_cli::Endpoint;
use serde::{Deserialize, Serialize};

use crate::Report;
use echo_loadgen::config::{RunConfig, RunOptions, Stop, Workload};
use echo_loadgen::engine::{self, IntervalFigures};
pub use search::{Bracket, Capacity, Objective, Plan, RampNext, Step, StepSummary};

/// How each step loads the server: everything but its rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// The server.
    pub target: Endpoint,
    /// Connections the rate is spread over.
    pub connections: usize,
    /// Bytes per message.
    pub payload: usize,
    /// Traffic before each step's window, not measured.
    pub warmup: Duration,
    /// The shortest a step measures.
    pub shortest: Duration,
    /// The longest a step measures (a low rate with a high percentile would take long).
    pub longest: Duration,
    /// How long one message may take before it counts as a timeout.
    pub timeout: Duration,
    /// Client worker threads.
    pub threads: usize,
    /// The server's pid, for its CPU (each step's report).
    pub server_pid: Option<u32>,
    /// CPUs the client is pinned to.
    pub client_cpus: Option<Vec<usize>>,
}

impl Load {
    /// The load generator's configuration of one step at `rate` for `objective`, validated.
    pub fn config(&self, objective: &Objective, rate: f64) -> Result<RunConfig, String> {
        let duration = search::step_duration(
            rate,
            objective.messages_needed(),
            self.shortest,
            self.longest,
        );
        let options = RunOptions {
            target: self.target.clone(),
            workload: Workload::Rate,
            connections: self.connections,
            payload: self.payload,
            rate: Some(rate),
            stop: Stop::Duration(duration),
            warmup: self.warmup,
            timeout: self.timeout,
            threads: self.threads,
            server_pid: self.server_pid,
            client_cpus: self.client_cpus.clone(),
            ..RunOptions::default()
        };
        RunConfig::new(options).map_err(|e| e.to_string())
    }
}

/// Measures one step: `rate` msg/s for as long as `objective`'s percentile needs.
pub fn measure_step(load: &Load, objective: &Objective, rate: f64) -> Result<Step, String> {
    measure_step_over_time(load, objective, rate).map(|(step, _)| step)
}

/// [`measure_step`], with the step's figures per interval (the engine's default width).
pub fn measure_step_over_time(
    load: &Load,
    objective: &Objective,
    rate: f64,
) -> Result<(Step, Vec<IntervalFigures>), String> {
    let config = load.config(objective, rate)?;
    let outcome = engine::run(&config, &mut |_| {})
        .map_err(|e| format!("the load generator failed at {rate:.0} msg/s: {e}"))?;
    let report = Report::new(&config, &outcome);
    if report.messages == 0 {
        return Err(format!(
            "no message completed at {rate:.0} msg/s against {} ({} error(s))",
            load.target,
            report.errors.total()
        ));
    }
    let step = step_of(objective, &report, &outcome.stats.latency);
    Ok((step, outcome.intervals))
}

/// The step a report measured, with the objective's percentile from its histogram.
pub fn step_of(
    objective: &Objective,
    report: &Report,
    latency: &hdrhistogram::Histogram<u64>,
) -> Step {
    let l = &report.latency_us;
    Step {
        offered_rps: report.open_loop.map_or(0.0, |o| o.offered_rps),
        achieved_rps: report
            .open_loop
            .map_or(report.throughput_rps, |o| o.achieved_rps),
        latency_us: latency.value_at_quantile(objective.quantile) as f64,
        p50_us: l.p50 as f64,
        p99_us: l.p99 as f64,
        p999_us: l.p999 as f64,
        messages: report.messages,
        errors: report.errors.total(),
        client_saturated: report.client.saturated,
        duration_s: report.duration_s,
    }
}

/// Which part of the search a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The ramp that brackets the knee.
    Ramp,
    /// A round over the grid (0-based).
    Round(usize),
}

/// Everything a search measured, and what it found: what `capacity --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityRun {
    /// What wrote it: [`TOOL`] (how an existing file is recognised before it is replaced).
    pub tool: String,
    /// The capacity, its interval and the curve.
    #[serde(flatten)]
    pub capacity: Capacity,
    /// How each step loaded the server: the load generator's options of the ramp's first step
    /// (the others differ only in rate and duration).
    pub config: RunOptions,
    /// The search's bounds.
    pub plan: Plan,
    /// The ramp's steps, in order.
    pub ramp: Vec<Step>,
    /// The grid's rates.
    pub grid: Vec<f64>,
    /// Each round's steps in the order measured: its climb over the grid, then its bisection.
    pub rounds: Vec<Vec<Step>>,
    /// Seconds the search took.
    pub elapsed_s: f64,
}

/// The `tool` of a file `capacity --json` wrote.
pub const TOOL: &str = "echo-bench capacity";

/// The ramp of a search: steps up (or down) from `plan.start_rps` until the objective is
/// bracketed. `on_step` sees every step as it is measured.
pub fn ramp(
    measure: &mut dyn FnMut(f64) -> Result<Step, String>,
    objective: &Objective,
    plan: &Plan,
    on_step: &mut dyn FnMut(Phase, &Step),
) -> Result<(Vec<Step>, Bracket), String> {
    let mut tried = Vec::new();
    // The ramp ends by itself (rates are bounded and move by `factor`); the cap only guards
    // against a plan that never could.
    for _ in 0..256 {
        match plan.ramp_next(objective, &tried) {
            RampNext::Measure(rate) => {
                let step = measure(rate)?;
                on_step(Phase::Ramp, &step);
                tried.push(step);
            }
            RampNext::Done(bracket) => return Ok((tried, bracket)),
        }
    }
    Err("the ramp did not bracket the knee in 256 steps".into())
}

/// One round over the grid, from low to high, stopping once past the knee; beyond the grid
/// when the knee moved out of it ([`Plan::beyond_next`]); then bisecting between its crossing
/// and the miss above it ([`search::refine_next`]). A step that measured
/// nothing (every connection failed) counts as a miss with errors: the ramp already showed the
/// server answers, so one bad step costs the round that step, not the model its search.
pub fn round(
    measure: &mut dyn FnMut(f64) -> Result<Step, String>,
    objective: &Objective,
    plan: &Plan,
    grid: &[f64],
    index: usize,
    on_step: &mut dyn FnMut(Phase, &Step),
) -> Result<Vec<Step>, String> {
    let mut measure_or_miss = |rate: f64| -> Step {
        measure(rate).unwrap_or(Step {
            offered_rps: rate,
            errors: 1,
            ..Step::default()
        })
    };
    let mut steps = Vec::with_capacity(grid.len() + plan.refinements);
    for &rate in grid {
        let step = measure_or_miss(rate);
        on_step(Phase::Round(index), &step);
        steps.push(step);
        if search::round_is_past_knee(objective, &steps) {
            break;
        }
    }
    while let Some(rate) = plan.beyond_next(objective, grid, &steps) {
        let step = measure_or_miss(rate);
        on_step(Phase::Round(index), &step);
        steps.push(step);
    }
    for done in 0..plan.refinements {
        let Some(rate) =
            search::refine_next(objective, &steps, done, plan.refinements, plan.resolution)
        else {
            break;
        };
        let step = measure_or_miss(rate);
        on_step(Phase::Round(index), &step);
        steps.push(step);
    }
    Ok(steps)
}

/// The whole search against one server: the ramp, then `plan.rounds` rounds over the grid.
pub fn run(
    load: &Load,
    objective: &Objective,
    plan: &Plan,
    on_step: &mut dyn FnMut(Phase, &Step),
) -> Result<CapacityRun, String> {
    plan.validate()?;
    let began = std::time::Instant::now();
    let mut measure = |rate: f64| measure_step(load, objective, rate);
    let (ramp_steps, bracket) = ramp(&mut measure, objective, plan, on_step)?;
    let grid = plan.grid(bracket);
    let mut rounds = Vec::new();
    if !grid.is_empty() {
        for r in 0..plan.rounds {
            if echo_loadgen::child::interrupted() {
                break;
            }
            rounds.push(round(&mut measure, objective, plan, &grid, r, on_step)?);
        }
    }
    let capacity = search::summarise(objective, bracket, &grid, &rounds);
    Ok(CapacityRun {
        tool: TOOL.into(),
        capacity,
        config: load.config(objective, plan.start_rps)?.options().clone(),
        plan: *plan,
        ramp: ramp_steps,
        grid,
        rounds,
        elapsed_s: began.elapsed().as_secs_f64(),
    })
}

/// Whether an existing file at `path` may be replaced by a capacity report: it does not
/// exist, or it is one (its `tool` is [`TOOL`]). `Err` says why not, in one line.
pub fn check_replaceable(path: &std::path::Path) -> Result<(), String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let ours = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .is_some_and(|v| v.get("tool").and_then(|t| t.as_str()) == Some(TOOL));
    if ours {
        Ok(())
    } else {
        Err(format!(
            "{} exists and is not a capacity report echo-bench wrote: not replacing it",
            path.display()
        ))
    }
}
