//! Runs made up for tests, written once for this crate's unit tests and echo-bench's (which
//! turns on the `fixtures` feature for its tests alone): a trial with chosen figures, rounds of
//! several models, the ablation's steps beside mio, and a stability check's run entry.

use echo_loadgen::procfs::ServerUsage;
use echo_loadgen::report::Report;
use echo_servers::Model;

use crate::point::Point;
use crate::run::{PointResult, SuiteRun};
use crate::server::Server;
use crate::stability::{Category, RunEntry};
use crate::status::Status;

/// A ping-pong trial of `model` at `connections` × 64 B in `round`: `rps` messages/s over one
/// second, the server using `cpu_s` of CPU and a little memory per connection, every
/// connection served alike.
pub fn trial(model: Model, connections: usize, round: usize, rps: f64, cpu_s: f64) -> PointResult {
    let mut report = Report {
        throughput_rps: rps,
        messages: rps as u64,
        server: Some(ServerUsage {
            cpu_s,
            cpu_cores: cpu_s,
            peak_rss_kib: 1000 + connections as u64 * 10,
            ..ServerUsage::default()
        }),
        ..Report::default()
    };
    report.fairness.jain = 1.0;
    PointResult {
        point: Point {
            model: model.into(),
            connections,
            round,
            ..Point::default()
        },
        status: Status::Ok,
        report: Some(report),
        attempts: 1,
        ..PointResult::default()
    }
}

/// `trial` with the client saturated.
pub fn saturated(mut trial: PointResult) -> PointResult {
    if let Some(report) = trial.report.as_mut() {
        report.client.saturated = true;
    }
    trial
}

/// Three rounds at 16 connections: each model's throughput per round, CPU fixed at 0.5 s.
pub fn run_of(models: &[(Model, [f64; 3])]) -> SuiteRun {
    let mut points = Vec::new();
    for round in 0..3 {
        for (model, rps) in models {
            points.push(trial(*model, 16, round, rps[round], 0.5));
        }
    }
    SuiteRun {
        rounds: 3,
        points,
        ..SuiteRun::default()
    }
}

/// The ablation's run: three rounds at one ping-pong point (256 × 64 B), mio at 4 µs per
/// message, the steps from 8 µs down by 1 µs each (the last, the model itself, at 3 µs), each
/// round a little noisy in the same direction for everyone.
pub fn ablation_run() -> SuiteRun {
    let servers: Vec<(Server, f64)> = std::iter::once((Server::Model(Model::Mio), 4.0))
        .chain(
            Server::uring_steps()
                .into_iter()
                .enumerate()
                .map(|(i, s)| (s, 8.0 - i as f64)),
        )
        .collect();
    let mut points = Vec::new();
    for round in 0..3 {
        for (server, us) in &servers {
            let cpu_s = us * (1.0 + 0.01 * round as f64) * 1e-6 * 1e5;
            let mut t = trial(Model::Mio, 256, round, 20_000.0, cpu_s);
            t.point.model = server.clone();
            if let Some(report) = t.report.as_mut() {
                report.messages = 100_000;
            }
            points.push(t);
        }
    }
    SuiteRun {
        rounds: 3,
        points,
        ..SuiteRun::default()
    }
}

/// A stability check's entry for one run: `(title, leading group, sole winner)` per category,
/// each at point `p` by throughput.
pub fn entry(categories: &[(&str, &[&str], Option<&str>)]) -> RunEntry {
    RunEntry {
        categories: categories
            .iter()
            .map(|(title, group, winner)| Category {
                title: (*title).into(),
                point: "p".into(),
                measure: "throughput".into(),
                group: group.iter().map(|m| (*m).into()).collect(),
                ranked: group.iter().map(|m| (*m).into()).collect(),
                winner: winner.map(Into::into),
            })
            .collect(),
        ..RunEntry::default()
    }
}
