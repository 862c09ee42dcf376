//! What one trial measures: a [`Point`] (a server under one [`Load`]), the [`Profile`] it came
//! from, and the names points carry in JSON.

use std::time::Duration;

use echo_loadgen::config::Workload;
use echo_servers::Transport;
use serde::{Deserialize, Serialize};

use crate::server::Server;

/// A named set of points and their timing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Every model, 3 interleaved rounds of four points: ping-pong 256 × 64 B and 16 × 4 KiB,
    /// churn, and an open-loop point at 20k msg/s; 0.45 s per trial. Under 3 minutes on 2
    /// cores.
    #[default]
    Quick,
    /// Connections 1 to 10,000, payloads 64 B to 64 KiB, open-loop rate sweeps, capacity,
    /// a sweep of CPU work per message (0, 50, 500 µs), 3 rounds. Hours.
    Full,
    /// One short ping-pong point per model, one round: for smoke tests and CI.
    Tiny,
    /// What holding 10,000 mostly idle connections costs each model: memory and threads per
    /// connection, accept rate, and the latency of a small active load beside them (also
    /// `suite --connections 10000`). About 15 s per model on 2 cores.
    C10k,
    /// The io_uring question: six TCP points (the quick profile's four, ping-pong at one
    /// connection and stream) for the `io-uring` model at each
    /// step of its ablation (plain, then multishot accept, multishot receive into a buffer
    /// ring, batched submission, DEFER_TASKRUN, registered descriptors), beside `poll`, `mio`,
    /// `tokio`, `tokio-uring`, `monoio`, `compio` and `glommio`. 3 rounds; about 3 minutes on 2
    /// cores.
    Ablation,
    /// Each model's capacity under a latency objective (`--objective`, p99=1ms by default) at
    /// 256 connections × 64 B, open loop: a ramp per model, then 3 rounds over a grid near its
    /// knee, interleaved across models; a median and an interval per model, and the ranking
    /// through paired ratios.
    Capacity,
}

/// The models the ablation profile measures beside the io-uring steps (those registered and,
/// as for every profile, runnable here).
pub const ABLATION_MODELS: [&str; 7] = [
    "poll",
    "mio",
    "tokio",
    "tokio-uring",
    "monoio",
    "compio",
    "glommio",
];

impl Profile {
    /// Measured time per point.
    pub fn duration(self) -> Duration {
        match self {
            Profile::Quick | Profile::Ablation => Duration::from_millis(450),
            Profile::Full => Duration::from_secs(5),
            Profile::Tiny => Duration::from_millis(300),
            Profile::C10k => Duration::from_secs(1),
            Profile::Capacity => Duration::from_millis(300),
        }
    }

    /// Warm-up per point.
    pub fn warmup(self) -> Duration {
        match self {
            Profile::Quick | Profile::Ablation => Duration::from_millis(150),
            Profile::Full => Duration::from_secs(1),
            Profile::Tiny => Duration::from_millis(100),
            Profile::C10k => Duration::from_millis(300),
            Profile::Capacity => Duration::from_millis(200),
        }
    }

    /// Rounds: how often each point is measured. Three is the fewest that give an interval and
    /// let a paired comparison separate two models (every round must agree).
    pub fn rounds(self) -> usize {
        match self {
            Profile::Quick | Profile::Full | Profile::Ablation | Profile::Capacity => 3,
            Profile::Tiny | Profile::C10k => 1,
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Full => "full",
            Profile::Tiny => "tiny",
            Profile::C10k => "c10k",
            Profile::Ablation => "ablation",
            Profile::Capacity => "capacity",
        }
    }

    /// Whether the profile measures the quick profile's six kinds of point (one ping-pong
    /// payload per connection count, one churn, one stream, one open-loop rate).
    pub fn quick_points(self) -> bool {
        matches!(self, Profile::Quick | Profile::Ablation)
    }
}

/// One measurement: a model under one load, on one transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Point {
    /// The server: a model, or an outside server.
    pub model: Server,
    /// The transport: TCP (and in runs stored before transports were measured), a Unix
    /// socket, or UDP.
    #[serde(with = "transport_name")]
    pub transport: Transport,
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
    /// Over TLS, whether the client resumes sessions with the server's tickets
    /// (`--tls-resume`), so that churn measures resumed handshakes, not full ones. Absent
    /// (false) in runs stored before the suite measured them.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_resume: bool,
    /// Which round (0-based); older runs called it the repeat.
    #[serde(alias = "repeat")]
    pub round: usize,
}

impl Default for Point {
    fn default() -> Self {
        Self {
            model: Server::default(),
            transport: Transport::Tcp,
            workload: Workload::PingPong,
            connections: 1,
            payload: 64,
            rate: None,
            work_us: 0,
            tls_resume: false,
            round: 0,
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
        if self.transport != Transport::Tcp {
            label = format!("{label} over {}", self.transport);
        }
        if let Some(rate) = self.rate {
            label.push_str(&format!(" {rate:.0}/s"));
        }
        if self.work_us > 0 {
            label.push_str(&format!(" work={}µs", self.work_us));
        }
        if self.tls_resume {
            label.push_str(" resumed");
        }
        if self.round > 0 {
            label.push_str(&format!(" round {}", self.round + 1));
        }
        label
    }

    /// The point's key without the round: the rounds of one key are aggregated.
    pub fn key(&self) -> (Server, Load) {
        (self.model.clone(), self.load())
    }

    /// The load without the model: the points that models are compared at.
    pub fn load(&self) -> Load {
        Load {
            transport: self.transport,
            workload: self.workload,
            connections: self.connections,
            payload: self.payload,
            rate: self.rate.map(|r| r as u64),
            work_us: self.work_us,
            tls_resume: self.tls_resume,
        }
    }
}

/// What models are compared at: a point without its server and round. Ordered field by field
/// in this order (transport first), as the tuple it replaced was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Load {
    /// The transport.
    pub transport: Transport,
    /// The workload.
    pub workload: Workload,
    /// Connections (client sockets over UDP).
    pub connections: usize,
    /// Bytes per message.
    pub payload: usize,
    /// Open-loop rate, messages/s, whole.
    pub rate: Option<u64>,
    /// CPU work per message in the server, µs.
    pub work_us: u64,
    /// Over TLS, resumed sessions (see [`Point::tls_resume`]).
    pub tls_resume: bool,
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

pub mod transport_name {
    //! A transport by its name in JSON (`tcp`, `unix`, `udp`).
    use echo_servers::Transport;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the transport's name.
    pub fn serialize<S: Serializer>(t: &Transport, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.name())
    }

    /// Reads a transport by name.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Transport, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

pub mod model_name {
    //! Models by their stable name in JSON.
    use echo_servers::Model;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the model's name.
    pub fn serialize<S: Serializer>(m: &Model, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.name())
    }

    /// Reads a model by name.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Model, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

pub mod driver_name {
    //! An optional I/O driver by its name in JSON (`epoll`, `io_uring`, ...).
    use echo_servers::Driver;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the driver's name, or null.
    pub fn serialize<S: Serializer>(d: &Option<Driver>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(driver) => s.serialize_str(driver.name()),
            None => s.serialize_none(),
        }
    }

    /// Reads an optional driver by name.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Driver>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|name| name.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}
