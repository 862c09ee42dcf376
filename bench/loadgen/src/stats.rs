//! What each client worker records while it runs, and how the workers' records are merged.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency the histograms hold, in µs (larger values are clamped): one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Records `latency` in µs (at least 1, at most the histogram's bound).
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let us = (latency.as_nanos() / 1000).clamp(1, MAX_LATENCY_US as u128) as u64;
    histogram.saturating_record(us);
}

/// A run's full latency histograms, each in HdrHistogram's V2 compressed encoding, base64
/// (the form HdrHistogram's own logs use, readable by its other implementations). Stored in
/// every report so that a percentile spectrum can be drawn, and runs merged, after the fact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHistograms {
    /// Latency per message, µs (for `rate`: from the intended send time).
    pub latency: String,
    /// For `rate`: latency from the actual send time ("uncorrected").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_uncorrected: Option<String>,
}

impl StoredHistograms {
    /// The decoded latency histogram.
    pub fn latency(&self) -> Result<Histogram<u64>, String> {
        decode_histogram(&self.latency)
    }

    /// The decoded uncorrected latency histogram, for open-loop runs.
    pub fn latency_uncorrected(&self) -> Option<Result<Histogram<u64>, String>> {
        self.latency_uncorrected.as_deref().map(decode_histogram)
    }
}

/// `histogram` in HdrHistogram's V2 compressed encoding, base64.
pub fn encode_histogram(histogram: &Histogram<u64>) -> String {
    use base64::Engine as _;
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serialising a histogram into memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A histogram from [`encode_histogram`]'s text.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("stored histogram is not base64: {e}"))?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("stored histogram does not decode: {e:?}"))
}

/// Errors by kind. Every field is a count; 0 when none happened (and when an older report does
/// not have it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Errors {
    /// A connect that failed other than by refusal (including ephemeral ports exhausted).
    pub connect: u64,
    /// A connect refused: nothing listening, or the backlog overflowed.
    pub refused: u64,
    /// The server reset the connection (or a write found it closed).
    pub reset: u64,
    /// The server closed the connection while echoes were outstanding.
    pub eof: u64,
    /// A message or connect took longer than `--timeout`.
    pub timeout: u64,
    /// An echoed byte differed from what was sent.
    pub mismatch: u64,
    /// A connection that made no progress for the whole measured window (or for `--timeout`,
    /// if that is shorter) while it waited for an echo: the server stopped serving it. Counted
    /// once per connection at the window's end, where a timeout longer than the window would
    /// never have fired. A model that serves a bounded number of connections at once shows its
    /// starved connections here too. (The event-loop engine counts it; the threads engine's
    /// blocking reads report the same server as timeouts.)
    pub stalled: u64,
}

impl Errors {
    /// All errors together.
    pub fn total(&self) -> u64 {
        [
            self.refused,
            self.reset,
            self.eof,
            self.timeout,
            self.mismatch,
            self.stalled,
        ]
        .iter()
        .fold(self.connect, |sum, n| sum.saturating_add(*n))
    }

    /// The kinds that occurred with their counts, as `stalled 1, reset 2` (empty without errors).
    pub fn describe(&self) -> String {
        [
            ("connect", self.connect),
            ("refused", self.refused),
            ("reset", self.reset),
            ("eof", self.eof),
            ("timeout", self.timeout),
            ("mismatch", self.mismatch),
            ("stalled", self.stalled),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// Adds `other` into `self` (saturating: a count read from a file may be anything).
    pub fn add(&mut self, other: &Errors) {
        self.connect = self.connect.saturating_add(other.connect);
        self.refused = self.refused.saturating_add(other.refused);
        self.reset = self.reset.saturating_add(other.reset);
        self.eof = self.eof.saturating_add(other.eof);
        self.timeout = self.timeout.saturating_add(other.timeout);
        self.mismatch = self.mismatch.saturating_add(other.mismatch);
        self.stalled = self.stalled.saturating_add(other.stalled);
    }
}

/// The kinds of [`Errors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// See [`Errors::connect`].
    Connect,
    /// See [`Errors::refused`].
    Refused,
    /// See [`Errors::reset`].
    Reset,
    /// See [`Errors::eof`].
    Eof,
    /// See [`Errors::timeout`].
    Timeout,
    /// See [`Errors::mismatch`].
    Mismatch,
    /// See [`Errors::stalled`].
    Stalled,
}

impl Errors {
    /// Counts one error of `kind`.
    pub fn count(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Connect => self.connect += 1,
            ErrorKind::Refused => self.refused += 1,
            ErrorKind::Reset => self.reset += 1,
            ErrorKind::Eof => self.eof += 1,
            ErrorKind::Timeout => self.timeout += 1,
            ErrorKind::Mismatch => self.mismatch += 1,
            ErrorKind::Stalled => self.stalled += 1,
        }
    }
}

/// Classifies an I/O error on an established connection.
pub fn classify_io(err: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::ConnectionRefused => ErrorKind::Refused,
        K::UnexpectedEof => ErrorKind::Eof,
        K::TimedOut | K::WouldBlock => ErrorKind::Timeout,
        _ => ErrorKind::Reset,
    }
}

/// Classifies a failed connect; `EADDRNOTAVAIL` means the ephemeral ports ran out.
pub fn classify_connect(err: &std::io::Error) -> (ErrorKind, bool) {
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) => (ErrorKind::Refused, false),
        Some(libc::EADDRNOTAVAIL) => (ErrorKind::Connect, true),
        Some(libc::ETIMEDOUT) => (ErrorKind::Timeout, false),
        _ => (ErrorKind::Connect, false),
    }
}

/// What happened to the datagrams of a UDP run, from each one's sequence number. Counted for the
/// datagrams sent in the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatagramCounts {
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams that came back intact (the latency figures are theirs).
    pub returned: u64,
    /// Datagrams not back within `--timeout`: lost (by the network, the kernel's full socket
    /// buffers, or the server).
    pub lost: u64,
    /// Of the lost, those that came back after their timeout (counted lost, not returned).
    pub late: u64,
    /// Datagrams that came back after one sent later had already come back.
    pub reordered: u64,
    /// Datagrams that came back twice (or more).
    pub duplicated: u64,
    /// Datagrams that came back changed (a byte, the length, or a sequence number never sent).
    pub corrupted: u64,
}

impl DatagramCounts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &DatagramCounts) {
        self.sent += other.sent;
        self.returned += other.returned;
        self.lost += other.lost;
        self.late += other.late;
        self.reordered += other.reordered;
        self.duplicated += other.duplicated;
        self.corrupted += other.corrupted;
    }

    /// The lost share of the datagrams whose fate is known, in percent.
    pub fn loss_percent(&self) -> f64 {
        let known = self.returned + self.lost;
        if known == 0 {
            0.0
        } else {
            100.0 * self.lost as f64 / known as f64
        }
    }
}

/// One worker's record of the measured window.
#[derive(Debug)]
pub struct WorkerStats {
    /// Latency per message, from the intended send time (corrected for coordinated omission).
    pub latency: Histogram<u64>,
    /// Latency per message from the actual send time (differs from `latency` for `rate` only).
    pub latency_uncorrected: Histogram<u64>,
    /// Time to establish a connection (churn): TCP's connect alone, also for `tls:`.
    pub connect_latency: Histogram<u64>,
    /// `tls:`: time from the end of TCP's connect to the end of the handshake.
    pub handshake_latency: Histogram<u64>,
    /// `tls:`: time from the start of a connect to the first byte of its first echo, what a
    /// user of a new connection waits for.
    pub first_byte_latency: Histogram<u64>,
    /// `tls:`: handshakes completed in the window.
    pub handshakes: u64,
    /// `tls:`: of those, the ones that resumed an earlier session.
    pub resumed: u64,
    /// Errors seen in the whole run, warm-up included (an error is an error whenever it
    /// happens).
    pub errors: Errors,
    /// Messages completed per connection slot, indexed by the slot's global number.
    pub per_connection: Vec<(usize, u64)>,
    /// Messages completed.
    pub messages: u64,
    /// Payload bytes echoed and verified.
    pub bytes: u64,
    /// Messages sent (rate: the offered load actually put on the wire).
    pub sent: u64,
    /// Connections completed (churn).
    pub connections_closed: u64,
    /// This worker thread's CPU time in the measured window (summed when merged).
    pub cpu: Duration,
    /// The most CPU time any one worker used in the window.
    pub busiest_cpu: Duration,
    /// Whether a connect failed with the ephemeral ports exhausted.
    pub ports_exhausted: bool,
    /// UDP runs: the datagrams' fates.
    pub datagrams: DatagramCounts,
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self {
            latency: new_histogram(),
            latency_uncorrected: new_histogram(),
            connect_latency: new_histogram(),
            handshake_latency: new_histogram(),
            first_byte_latency: new_histogram(),
            handshakes: 0,
            resumed: 0,
            errors: Errors::default(),
            per_connection: Vec::new(),
            messages: 0,
            bytes: 0,
            sent: 0,
            connections_closed: 0,
            cpu: Duration::ZERO,
            busiest_cpu: Duration::ZERO,
            ports_exhausted: false,
            datagrams: DatagramCounts::default(),
        }
    }
}

impl WorkerStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: WorkerStats) {
        self.latency.add(&other.latency).expect("same bounds");
        self.latency_uncorrected
            .add(&other.latency_uncorrected)
            .expect("same bounds");
        self.connect_latency
            .add(&other.connect_latency)
            .expect("same bounds");
        self.handshake_latency
            .add(&other.handshake_latency)
            .expect("same bounds");
        self.first_byte_latency
            .add(&other.first_byte_latency)
            .expect("same bounds");
        self.handshakes += other.handshakes;
        self.resumed += other.resumed;
        self.errors.add(&other.errors);
        self.per_connection.extend(other.per_connection);
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.sent += other.sent;
        self.connections_closed += other.connections_closed;
        self.cpu += other.cpu;
        self.busiest_cpu = self.busiest_cpu.max(other.cpu).max(other.busiest_cpu);
        self.ports_exhausted |= other.ports_exhausted;
        self.datagrams.add(&other.datagrams);
    }
}

/// The CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Jain's fairness index of `counts`: 1 when all are equal, 1/n when one has everything.
pub fn jain_index(counts: &[u64]) -> f64 {
    let n = counts.len() as f64;
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let squares: f64 = counts.iter().map(|&c| (c as f64) * (c as f64)).sum();
    if squares == 0.0 {
        return if counts.is_empty() { 1.0 } else { 0.0 };
    }
    sum * sum / (n * squares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain() {
        assert!((jain_index(&[5, 5, 5, 5]) - 1.0).abs() < 1e-12);
        assert!((jain_index(&[10, 0, 0, 0]) - 0.25).abs() < 1e-12);
        assert_eq!(jain_index(&[0, 0]), 0.0);
    }

    #[test]
    fn errors_are_described_by_the_kinds_that_occurred() {
        let mut errors = Errors::default();
        assert_eq!(errors.describe(), "");
        errors.count(ErrorKind::Stalled);
        errors.count(ErrorKind::Reset);
        errors.count(ErrorKind::Reset);
        assert_eq!(errors.describe(), "reset 2, stalled 1");
        assert_eq!(errors.total(), 3);
    }
}

#[cfg(test)]
mod histogram_tests {
    use super::*;

    #[test]
    fn stored_histograms_decode_to_what_was_recorded() {
        let mut h = new_histogram();
        for us in [1u64, 7, 90, 90, 1_500, 250_000] {
            record(&mut h, Duration::from_micros(us));
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), 6);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(back.max(), h.max());
        assert!(decode_histogram("not base64!").is_err());
    }
}
