//! What a load-generator run does: [`RunOptions`], every option as given, and [`RunConfig`],
//! the same options once checked. A `RunConfig` is made only by [`RunConfig::new`], which runs
//! every check that can reject bad input, so the engine can trust its fields, no caller can
//! forget the check, and every front end (CLI, suite, benches) reports bad input the same way.
//!
//! The file is long because it holds each option's range twice over, on purpose in one place:
//! once as the command-line parser that states it (durations, sizes, counts, CPU lists) and once
//! as the check of [`RunConfig::new`], with their tests; split, a range could drift apart.

use std::net::SocketAddr;
use std::path::PathBuf;

use echo_cli::{Endpoint, TlsVersions, Transport};
use std::time::Duration;

use crate::socket::Peer;
use crate::tls::{TlsClient, Trust};

use serde::{Deserialize, Serialize};

/// The traffic pattern.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Closed loop: send a message, wait for its whole echo, repeat (`pipeline` in flight).
    #[default]
    PingPong,
    /// Open loop at a fixed total rate; latency measured from the intended send time.
    Rate,
    /// Connect, one echo, close, repeat.
    Churn,
    /// Write continuously while reading concurrently; bulk throughput.
    Stream,
}

impl Workload {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::PingPong => "ping-pong",
            Workload::Rate => "rate",
            Workload::Churn => "churn",
            Workload::Stream => "stream",
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the client is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// A few threads, each running a mio readiness loop over its share of the connections.
    EventLoop,
    /// The naive client: a blocking thread per connection, write then read. Kept only to measure
    /// how much the event-loop engine saves; ping-pong only.
    Threads,
}

/// When the run stops measuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// After this long (warm-up excluded).
    Duration(#[serde(with = "secs")] Duration),
    /// After this many completed messages (warm-up excluded).
    Requests(u64),
}

/// Every option of a run, as given (not yet checked): what a report stores. A run takes a
/// [`RunConfig`], made from these by [`RunConfig::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunOptions {
    /// The echo server to drive: TCP, a Unix socket or UDP ([`Endpoint`]'s syntax).
    #[serde(with = "endpoint_text")]
    pub target: Endpoint,
    /// The traffic pattern.
    pub workload: Workload,
    /// Concurrent connections (for churn: concurrent connect-echo-close loops).
    pub connections: usize,
    /// Bytes per message.
    pub payload: usize,
    /// Messages in flight per connection (ping-pong).
    pub pipeline: usize,
    /// Total messages per second (rate).
    pub rate: Option<f64>,
    /// When to stop.
    pub stop: Stop,
    /// Traffic before measuring, excluded from every figure.
    #[serde(with = "secs")]
    pub warmup: Duration,
    /// How long one message (or one connect) may take before it counts as a timeout.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Connections opened per second; `None` opens them all at once.
    pub connect_rate: Option<f64>,
    /// Client worker threads.
    pub threads: usize,
    /// The client engine.
    pub engine: Engine,
    /// Seed of the per-connection byte streams.
    pub seed: u64,
    /// The server's process id, to read its CPU, memory and threads from /proc.
    pub server_pid: Option<u32>,
    /// CPUs the client is pinned to, if any.
    pub client_cpus: Option<Vec<usize>>,
    /// How a `tls:` target is spoken.
    pub tls: TlsOptions,
}

/// How a `tls:` target is spoken; unused (and refused when set) for the other transports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsOptions {
    /// A PEM file of the certificates to trust (`--ca`), such as the one `echo-server` prints.
    pub ca: Option<PathBuf>,
    /// Trust any certificate (`--insecure`), still checking the handshake's signatures.
    pub insecure: bool,
    /// The versions offered (`--tls-versions`).
    #[serde(with = "versions_text")]
    pub versions: TlsVersions,
    /// Resume sessions with the tickets the server sends (`--tls-resume`): churn then measures
    /// resumed handshakes instead of full ones.
    pub resume: bool,
    /// The server name to ask for and verify (`--tls-server-name`); the target's IP address
    /// when absent, which `echo-server`'s self-signed certificate names.
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// Whether any TLS option was given.
    fn is_set(&self) -> bool {
        self.ca.is_some() || self.insecure || self.resume || self.server_name.is_some()
    }

    /// The client configuration for a target at `addr` (when not known yet, the server name
    /// must be given or is taken as 127.0.0.1, where a started server listens).
    pub fn client_for(&self, addr: Option<SocketAddr>) -> Result<TlsClient, String> {
        self.client(addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))))
    }

    /// The client configuration for a target at `addr`.
    fn client(&self, addr: SocketAddr) -> Result<TlsClient, String> {
        let trust = match (&self.ca, self.insecure) {
            (Some(_), true) => return Err("--ca and --insecure do not go together".into()),
            (Some(ca), false) => Trust::Ca(ca.clone()),
            (None, true) => Trust::Insecure,
            (None, false) => {
                return Err(
                    "a tls: target needs a certificate to trust (--ca PEM) or --insecure".into(),
                );
            }
        };
        let name = match &self.server_name {
            Some(name) => rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|_| format!("--tls-server-name '{name}' is not a DNS name or an IP"))?,
            None => TlsClient::name_for(addr.ip()),
        };
        TlsClient::new(&trust, self.versions, self.resume, name).map_err(|e| e.to_string())
    }
}

/// TLS versions stored as the text `--tls-versions` takes (`1.3`, `1.2,1.3`).
mod versions_text {
    use echo_cli::TlsVersions;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(versions: &TlsVersions, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(versions)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TlsVersions, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            target: Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], 7878))),
            workload: Workload::PingPong,
            connections: 16,
            payload: 64,
            pipeline: 1,
            rate: None,
            stop: Stop::Duration(Duration::from_secs(5)),
            warmup: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            connect_rate: None,
            threads: default_threads(),
            engine: Engine::EventLoop,
            seed: 0x5eed,
            server_pid: None,
            client_cpus: None,
            tls: TlsOptions::default(),
        }
    }
}

/// One client thread per core this process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The largest payload accepted: larger messages are a bulk transfer, which `stream` measures.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// The largest pipeline depth accepted.
pub const MAX_PIPELINE: usize = 4096;
/// The most connections a run may open (each takes a descriptor on both sides).
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// The most client threads.
pub const MAX_THREADS: usize = 1024;
/// The most messages `--requests` may ask for.
pub const MAX_REQUESTS: u64 = 1_000_000_000_000;
/// The highest `--rate` and `--connect-rate`, per second.
pub const MAX_RATE: f64 = 1e9;
/// The longest measured duration (also the longest a duration option parses to).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);
/// The longest warm-up, per-message timeout or other wait of a run.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Descriptors the client keeps for itself beyond one per connection.
const FD_SLACK: u64 = 64;

/// A run's options, checked: made only by [`RunConfig::new`], so a run never starts from options
/// no one checked. Its fields are read through [`RunOptions`] (`config.connections`).
#[derive(Debug, Clone)]
pub struct RunConfig {
    options: RunOptions,
    /// The target with its TLS client configuration, built once so that every connection of
    /// the run shares it (and, when resuming, its tickets).
    peer: Peer,
}

impl PartialEq for RunConfig {
    fn eq(&self, other: &Self) -> bool {
        self.options == other.options
    }
}

impl Serialize for RunConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.options.serialize(s)
    }
}

/// Why [`RunConfig::new`] refused a run's options; the message is one line, naming the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An option outside its range, or options that do not go together.
    #[error("{0}")]
    Invalid(String),
    /// More connections than this process may open descriptors for.
    #[error(
        "{connections} connections need about {needed} file descriptors but the limit is \
         {limit} (raise it with `ulimit -n`)"
    )]
    Descriptors {
        /// The connections asked for.
        connections: usize,
        /// The descriptors they need, with the client's own.
        needed: u64,
        /// The soft limit, already raised to the hard one.
        limit: u64,
    },
}

impl RunConfig {
    /// Checks every option, returning the first bad one's one-line reason. Raises the soft
    /// descriptor limit to the hard one if the connection count needs it.
    pub fn new(options: RunOptions) -> Result<Self, ConfigError> {
        options.check().map_err(ConfigError::Invalid)?;
        let needed = (options.connections as u64).saturating_add(FD_SLACK);
        let limit = raise_fd_limit();
        if needed > limit {
            return Err(ConfigError::Descriptors {
                connections: options.connections,
                needed,
                limit,
            });
        }
        let tls = match options.target {
            Endpoint::Tls(addr) => Some(options.tls.client(addr).map_err(ConfigError::Invalid)?),
            _ => None,
        };
        let peer = Peer {
            endpoint: options.target.clone(),
            tls,
        };
        Ok(Self { options, peer })
    }

    /// Where the run connects, with its TLS client configuration.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The options.
    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    /// The options, to change some and check them again with [`RunConfig::new`].
    pub fn into_options(self) -> RunOptions {
        self.options
    }
}

impl std::ops::Deref for RunConfig {
    type Target = RunOptions;

    fn deref(&self) -> &RunOptions {
        &self.options
    }
}

impl TryFrom<RunOptions> for RunConfig {
    type Error = ConfigError;

    fn try_from(options: RunOptions) -> Result<Self, ConfigError> {
        Self::new(options)
    }
}

impl RunOptions {
    /// The checks of [`RunConfig::new`] that need nothing but the options.
    fn check(&self) -> Result<(), String> {
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return Err(format!(
                "--connections must be between 1 and {MAX_CONNECTIONS} (got {})",
                self.connections
            ));
        }
        if self.payload == 0 || self.payload > MAX_PAYLOAD {
            return Err(format!(
                "--payload must be between 1 and {MAX_PAYLOAD} bytes (got {})",
                self.payload
            ));
        }
        if self.pipeline == 0 || self.pipeline > MAX_PIPELINE {
            return Err(format!("--pipeline must be between 1 and {MAX_PIPELINE}"));
        }
        if self.threads == 0 || self.threads > MAX_THREADS {
            return Err(format!("--threads must be between 1 and {MAX_THREADS}"));
        }
        match (self.workload, self.rate) {
            (Workload::Rate, None) => return Err("--workload rate needs --rate MSGS_PER_S".into()),
            (Workload::Rate, Some(r)) if !(r.is_finite() && r > 0.0 && r <= MAX_RATE) => {
                return Err("--rate must be a positive number of messages per second".into());
            }
            (w, Some(_)) if w != Workload::Rate => {
                return Err(format!("--rate applies to --workload rate only, not {w}"));
            }
            _ => {}
        }
        if self.pipeline > 1 && self.workload != Workload::PingPong {
            return Err("--pipeline applies to --workload ping-pong only".into());
        }
        if let Some(r) = self.connect_rate
            && !(r.is_finite() && r > 0.0 && r <= MAX_RATE)
        {
            return Err(format!(
                "--connect-rate must be a number of connections per second above 0 and at most \
                 {MAX_RATE:e}"
            ));
        }
        match self.stop {
            Stop::Duration(d) if d.is_zero() || d > MAX_DURATION => {
                return Err("--duration must be above zero and at most 7 days".into());
            }
            Stop::Requests(n) if n == 0 || n > MAX_REQUESTS => {
                return Err(format!("--requests must be between 1 and {MAX_REQUESTS}"));
            }
            _ => {}
        }
        if self.warmup > MAX_WAIT {
            return Err("--warmup must be at most 1h".into());
        }
        if self.timeout.is_zero() || self.timeout > MAX_WAIT {
            return Err("--timeout must be above zero and at most 1h".into());
        }
        if self.engine == Engine::Threads && self.workload != Workload::PingPong {
            return Err("--engine threads runs the ping-pong workload only".into());
        }
        if self.target.needs_port() {
            return Err("--target needs a port other than 0".into());
        }
        if self.target.transport() != Transport::Tls && self.tls.is_set() {
            return Err(
                "--ca, --insecure, --tls-resume and --tls-server-name apply to tls: targets only"
                    .into(),
            );
        }
        if let Endpoint::Udp(addr) = self.target {
            if !matches!(self.workload, Workload::PingPong | Workload::Rate) {
                return Err(format!(
                    "a udp: target runs the ping-pong and rate workloads only, not {}",
                    self.workload
                ));
            }
            if self.engine == Engine::Threads {
                return Err("--engine threads drives stream targets only, not udp:".into());
            }
            let limit = max_datagram(addr);
            if self.payload < DATAGRAM_HEADER || self.payload > limit {
                return Err(format!(
                    "a udp: --payload is one datagram: {DATAGRAM_HEADER} to {limit} bytes over \
                     {} (each carries a {DATAGRAM_HEADER}-byte sequence number)",
                    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
                ));
            }
        }
        Ok(())
    }

    /// The measured duration, where the run stops by time.
    pub fn duration(&self) -> Option<Duration> {
        match self.stop {
            Stop::Duration(d) => Some(d),
            Stop::Requests(_) => None,
        }
    }
}

/// Bytes at the start of every UDP datagram the load generator sends: its sequence number.
pub const DATAGRAM_HEADER: usize = 8;

/// The largest UDP payload to `addr`: 65,507 bytes over IPv4 (65,535 less the IP and UDP
/// headers), 65,527 over IPv6. Larger is not a datagram the path can carry.
pub fn max_datagram(addr: SocketAddr) -> usize {
    if addr.is_ipv4() { 65_507 } else { 65_527 }
}

impl RunOptions {
    /// Whether this run sends datagrams (a `udp:` target) rather than a byte stream.
    pub fn is_datagram(&self) -> bool {
        self.target.transport() == Transport::Udp
    }
}

/// An endpoint stored as the text it is written as (`127.0.0.1:7878`, `unix:/path`,
/// `udp:...`); the reports of earlier versions, which held a plain `IP:PORT`, read as TCP.
mod endpoint_text {
    use echo_cli::Endpoint;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(endpoint: &Endpoint, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(endpoint)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Endpoint, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        limit.rlim_cur
    }
}

/// Parses a duration: a plain number of seconds (`10`, `0.5`) or a number with a unit
/// (`10s`, `500ms`, `2m`, `1h`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("invalid duration '{text}' (examples: 10, 10s, 500ms, 2m)");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let seconds = value * scale;
    if !seconds.is_finite() || !(0.0..=7.0 * 86_400.0).contains(&seconds) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A command-line parser of a duration (as [`parse_duration`]) from `min` to `max`, both
/// included; the error names the range.
pub fn duration_within(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text| {
        let d = parse_duration(text)?;
        if d < min || d > max {
            return Err(format!(
                "{text} is not between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ));
        }
        Ok(d)
    }
}

/// A command-line parser of a byte size (as [`parse_bytes`]) from `min` to `max`, both included.
pub fn bytes_within(
    min: usize,
    max: usize,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |text| {
        let n = parse_bytes(text)?;
        if n < min || n > max {
            return Err(format!("{text} is not between {min} and {max} bytes"));
        }
        Ok(n)
    }
}

/// A command-line parser of a count from `min` to `max`, both included.
pub fn count_within(min: u64, max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(min..=max)
}

/// A command-line parser of a finite number above `0` and at most `max`.
pub fn positive_at_most(
    max: f64,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |text| match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= max => Ok(v),
        _ => Err(format!(
            "'{text}' is not a number above 0 and at most {max}"
        )),
    }
}

/// A command-line parser of a finite number from `min` to `max`, both included.
pub fn number_within(
    min: f64,
    max: f64,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |text| match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("'{text}' is not a number from {min} to {max}")),
    }
}

/// Parses a byte size: `64`, `4k`, `4KiB`, `1m`, `1MiB` (k and m are binary).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let bad = || format!("invalid size '{text}' (examples: 64, 4k, 4KiB, 1MiB)");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: usize = number.parse().map_err(|_| bad())?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(bad()),
    };
    value.checked_mul(scale).ok_or_else(bad)
}

/// A CPU list: `0`, `0,2`, `0-3`, `0-1,4`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("invalid CPU list '{text}' (examples: 0, 0-1, 0,2)");
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (usize, usize) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            if a > b || b >= 1024 {
                return Err(bad());
            }
            cpus.extend(a..=b);
        } else {
            let cpu: usize = part.parse().map_err(|_| bad())?;
            if cpu >= 1024 {
                return Err(bad());
            }
            cpus.push(cpu);
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

mod secs {
    //! Durations as floating-point seconds in JSON.
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["", "-1", "ten", "5 parsecs", "1e9"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_cpus() {
        assert_eq!(parse_bytes("64").unwrap(), 64);
        assert_eq!(parse_bytes("4k").unwrap(), 4096);
        assert_eq!(parse_bytes("1MiB").unwrap(), 1 << 20);
        assert!(parse_bytes("-5").is_err());
        assert!(parse_bytes("4q").is_err());
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpu_list("2-1").is_err());
    }

    #[test]
    fn validation_rejects_nonsense() {
        let ok = RunOptions::default();
        assert!(RunConfig::new(ok.clone()).is_ok());
        let cases = [
            RunOptions {
                connections: 0,
                ..ok.clone()
            },
            RunOptions {
                payload: 0,
                ..ok.clone()
            },
            RunOptions {
                payload: MAX_PAYLOAD + 1,
                ..ok.clone()
            },
            RunOptions {
                workload: Workload::Rate,
                ..ok.clone()
            },
            RunOptions {
                rate: Some(5.0),
                ..ok.clone()
            },
            RunOptions {
                stop: Stop::Requests(0),
                ..ok.clone()
            },
            RunOptions {
                engine: Engine::Threads,
                workload: Workload::Stream,
                ..ok.clone()
            },
        ];
        for case in cases {
            assert!(
                matches!(RunConfig::new(case.clone()), Err(ConfigError::Invalid(_))),
                "{case:?}"
            );
        }
        // Within the range of --connections, above any descriptor limit this machine has.
        let many = RunOptions {
            connections: MAX_CONNECTIONS,
            ..ok.clone()
        };
        let limit = raise_fd_limit();
        if limit < MAX_CONNECTIONS as u64 {
            assert!(matches!(
                RunConfig::new(many),
                Err(ConfigError::Descriptors {
                    connections: MAX_CONNECTIONS,
                    ..
                })
            ));
        }
        let config = RunConfig::new(ok.clone()).unwrap();
        assert_eq!(config.options(), &ok);
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            serde_json::to_value(&ok).unwrap(),
            "a config is stored as its options"
        );
    }
}
