//! Which points a suite run measures: the profiles and the selection flags.

use std::time::Duration;

use echo_servers::Model;
use serde::{Deserialize, Serialize};

use crate::config::Workload;

/// A named set of points and their timing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Every model × ping-pong at {1, 16, 256} connections × {64 B, 4 KiB}, plus churn and
    /// stream; 1.2 s per point. Under 3 minutes on 2 cores.
    #[default]
    Quick,
    /// Connections 1 to 10,000, payloads 64 B to 64 KiB, open-loop rate sweeps, capacity knees,
    /// a sweep of CPU work per message (0, 50, 500 µs), 3 repeats per point. Hours.
    Full,
    /// One short ping-pong point per model: for smoke tests and CI.
    Tiny,
}

impl Profile {
    /// Measured time per point.
    pub fn duration(self) -> Duration {
        match self {
            Profile::Quick => Duration::from_millis(1200),
            Profile::Full => Duration::from_secs(5),
            Profile::Tiny => Duration::from_millis(300),
        }
    }

    /// Warm-up per point.
    pub fn warmup(self) -> Duration {
        match self {
            Profile::Quick => Duration::from_millis(300),
            Profile::Full => Duration::from_secs(1),
            Profile::Tiny => Duration::from_millis(100),
        }
    }

    /// Repeats per point.
    pub fn repeat(self) -> usize {
        match self {
            Profile::Full => 3,
            _ => 1,
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Full => "full",
            Profile::Tiny => "tiny",
        }
    }
}

/// One measurement: a model under one load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Point {
    /// The server model.
    #[serde(with = "model_name")]
    pub model: Model,
    /// The workload.
    pub workload: Workload,
    /// Connections.
    pub connections: usize,
    /// Bytes per message.
    pub payload: usize,
    /// Open-loop rate (rate workload).
    pub rate: Option<f64>,
    /// CPU work per message in the server (`--work-us`), µs.
    pub work_us: u64,
    /// Which repeat (0-based).
    pub repeat: usize,
}

impl Default for Point {
    fn default() -> Self {
        Self {
            model: Model::ALL[0],
            workload: Workload::PingPong,
            connections: 1,
            payload: 64,
            rate: None,
            work_us: 0,
            repeat: 0,
        }
    }
}

impl Point {
    /// A short description for progress lines.
    pub fn label(&self) -> String {
        let mut label = format!(
            "{} {} c={} {}",
            self.model,
            self.workload,
            self.connections,
            size_label(self.payload)
        );
        if let Some(rate) = self.rate {
            label.push_str(&format!(" {rate:.0}/s"));
        }
        if self.work_us > 0 {
            label.push_str(&format!(" work={}µs", self.work_us));
        }
        if self.repeat > 0 {
            label.push_str(&format!(" #{}", self.repeat + 1));
        }
        label
    }

    /// The point's key without the repeat: repeats of one key are aggregated.
    pub fn key(&self) -> (Model, Workload, usize, usize, Option<u64>, u64) {
        (
            self.model,
            self.workload,
            self.connections,
            self.payload,
            self.rate.map(|r| r as u64),
            self.work_us,
        )
    }
}

/// `64 B`, `4 KiB`, `1 MiB`.
pub fn size_label(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// Narrowing of a profile by the selection flags; `None` keeps the profile's own choice.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Models to run.
    pub models: Option<Vec<Model>>,
    /// Workloads to run.
    pub workloads: Option<Vec<Workload>>,
    /// Connection counts for ping-pong (and stream, rate).
    pub connections: Option<Vec<usize>>,
    /// Payloads for ping-pong.
    pub payloads: Option<Vec<usize>>,
    /// Repeats per point.
    pub repeat: Option<usize>,
    /// CPU work per message to sweep, µs (the first for every point, the others for ping-pong
    /// with the smallest payload).
    pub work_us: Option<Vec<u64>>,
}

/// The work sweep of the full profile: none, a cheap handler, and one that costs more than the
/// echo itself (µs of CPU per message).
pub const FULL_WORK_US: [u64; 3] = [0, 50, 500];

/// The points of `profile` narrowed by `selection`, repeats adjacent.
pub fn points(profile: Profile, selection: &Selection) -> Vec<Point> {
    let models = selection
        .models
        .clone()
        .unwrap_or_else(|| Model::ALL.to_vec());
    let (connections, payloads, workloads): (Vec<usize>, Vec<usize>, Vec<Workload>) = match profile
    {
        Profile::Quick => (
            vec![1, 16, 256],
            vec![64, 4096],
            vec![Workload::PingPong, Workload::Churn, Workload::Stream],
        ),
        Profile::Full => (
            vec![1, 10, 100, 1000, 10_000],
            vec![64, 1024, 16 * 1024, 64 * 1024],
            vec![
                Workload::PingPong,
                Workload::Rate,
                Workload::Churn,
                Workload::Stream,
            ],
        ),
        Profile::Tiny => (vec![4], vec![64], vec![Workload::PingPong]),
    };
    let connections = selection.connections.clone().unwrap_or(connections);
    let payloads = selection.payloads.clone().unwrap_or(payloads);
    let workloads = selection.workloads.clone().unwrap_or(workloads);
    let repeat = selection.repeat.unwrap_or_else(|| profile.repeat()).max(1);
    let works = selection.work_us.clone().unwrap_or_else(|| match profile {
        Profile::Full => FULL_WORK_US.to_vec(),
        _ => vec![0],
    });
    let first_work = works.first().copied().unwrap_or(0);
    let mut points = Vec::new();
    for &model in &models {
        let mut push = |workload, connections, payload, rate, work_us| {
            for r in 0..repeat {
                points.push(Point {
                    model,
                    workload,
                    connections,
                    payload,
                    rate,
                    work_us,
                    repeat: r,
                });
            }
        };
        for &workload in &workloads {
            match workload {
                Workload::PingPong => {
                    for &payload in &payloads {
                        for &c in &connections {
                            push(workload, c, payload, None, first_work);
                        }
                    }
                    // The work sweep at the smallest payload, where the work dominates.
                    let payload = payloads.iter().copied().min().unwrap_or(64);
                    for &work in works.iter().skip(1) {
                        for &c in &connections {
                            push(workload, c, payload, None, work);
                        }
                    }
                }
                Workload::Churn => {
                    let concurrent = if profile == Profile::Full {
                        vec![1, 16]
                    } else {
                        vec![4]
                    };
                    for c in concurrent {
                        push(workload, c, 64, None, first_work);
                    }
                }
                Workload::Stream => {
                    let concurrent = if profile == Profile::Full {
                        vec![1, 16]
                    } else {
                        vec![4]
                    };
                    for c in concurrent {
                        push(workload, c, 16 * 1024, None, first_work);
                    }
                }
                Workload::Rate => {
                    for rate in [10_000.0, 25_000.0, 50_000.0, 100_000.0] {
                        push(workload, 100, 64, Some(rate), first_work);
                    }
                }
            }
        }
    }
    points
}

mod model_name {
    //! Models by their stable name in JSON.
    use echo_servers::Model;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Model, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Model, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_profile_shape() {
        let points = points(Profile::Quick, &Selection::default());
        // 6 ping-pong points + churn + stream, per model.
        assert_eq!(points.len(), Model::ALL.len() * 8);
        let narrowed = super::points(
            Profile::Quick,
            &Selection {
                models: Some(vec![Model::Mio]),
                workloads: Some(vec![Workload::PingPong]),
                connections: Some(vec![2]),
                payloads: Some(vec![10]),
                repeat: Some(2),
                work_us: None,
            },
        );
        assert_eq!(narrowed.len(), 2);
        assert_eq!(narrowed[1].repeat, 1);
        assert!(points.iter().all(|p| p.work_us == 0));
    }

    #[test]
    fn the_work_sweep_covers_ping_pong_at_the_smallest_payload() {
        let selection = Selection {
            models: Some(vec![Model::Tokio, Model::TokioRayon]),
            workloads: Some(vec![Workload::PingPong, Workload::Churn]),
            connections: Some(vec![1, 100]),
            payloads: Some(vec![64, 4096]),
            repeat: Some(1),
            work_us: None,
        };
        let points = points(Profile::Full, &selection);
        for work in FULL_WORK_US {
            let swept: Vec<&Point> = points.iter().filter(|p| p.work_us == work).collect();
            // Work 0: 2 payloads × 2 connection counts + 2 churn points, per model; the others
            // 2 connection counts at 64 B.
            let expected = if work == 0 { 2 * (4 + 2) } else { 2 * 2 };
            assert_eq!(swept.len(), expected, "work {work}");
            if work > 0 {
                assert!(
                    swept
                        .iter()
                        .all(|p| p.payload == 64 && p.workload == Workload::PingPong)
                );
                assert!(swept[0].label().contains(&format!("work={work}µs")));
            }
        }
    }
}
