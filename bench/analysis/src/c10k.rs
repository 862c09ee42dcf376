//! The C10K measurement's data: what holding many mostly idle connections cost one model.

use echo_loadgen::report::Latency;
use echo_servers::Model;
use serde::{Deserialize, Serialize};

use crate::status::Status;

/// Connections of the active load.
pub const ACTIVE_CONNECTIONS: usize = 16;

/// One level of held connections and what the server used there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// Idle connections held.
    pub connections: usize,
    /// The server's resident memory, KiB.
    pub rss_kib: u64,
    /// The server's threads.
    pub threads: u64,
}

/// One model's C10K result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Holding {
    /// The model.
    #[serde(with = "crate::point::model_name")]
    pub model: Model,
    /// [`Status::Ok`], [`Status::NotApplicable`] (a bounded model) or [`Status::Failed`].
    pub status: Status,
    /// Why not applicable, or why it failed.
    pub note: Option<String>,
    /// The idle connections asked for.
    pub target: usize,
    /// RSS and threads at each level, from 0 up to the target.
    pub levels: Vec<Level>,
    /// Seconds from the first connect until the server held every connection.
    pub accept_s: f64,
    /// The active load with no idle connection.
    pub baseline: Option<Latency>,
    /// The same load with the idle connections held.
    pub under_idle: Option<Latency>,
    /// Messages/s of the active load, without and with the idle connections.
    pub baseline_rps: f64,
    /// See `baseline_rps`.
    pub under_idle_rps: f64,
    /// Idle connections that failed to open, or to echo at the end.
    pub errors: u64,
    /// The server's RSS after every connection closed, KiB.
    pub rss_after_close_kib: u64,
}

impl Default for Holding {
    fn default() -> Self {
        Self {
            model: Model::ALL[0],
            status: Status::Failed,
            note: None,
            target: 0,
            levels: Vec::new(),
            accept_s: 0.0,
            baseline: None,
            under_idle: None,
            baseline_rps: 0.0,
            under_idle_rps: 0.0,
            errors: 0,
            rss_after_close_kib: 0,
        }
    }
}

impl Holding {
    /// Resident memory per held connection, KiB: the growth from no connection to the target.
    pub fn kib_per_connection(&self) -> Option<f64> {
        let first = self.levels.first()?;
        let last = self.levels.last()?;
        (last.connections > first.connections).then(|| {
            (last.rss_kib as f64 - first.rss_kib as f64)
                / (last.connections - first.connections) as f64
        })
    }

    /// Connections accepted per second.
    pub fn accept_rate(&self) -> f64 {
        self.target as f64 / self.accept_s.max(1e-9)
    }
}

/// The levels sampled on the way to `target`: 0, 100, 1,000, 3,000, 10,000 (those below it),
/// and the target.
pub fn levels(target: usize) -> Vec<usize> {
    let mut levels: Vec<usize> = [0, 100, 1_000, 3_000, 10_000]
        .into_iter()
        .filter(|&l| l < target)
        .collect();
    levels.push(target);
    levels
}
