//! Latency over time: the measured window cut into intervals (100 ms unless asked otherwise),
//! each with its throughput, percentiles, errors and the server's CPU and memory.
//!
//! Each worker records its completions into a histogram of its own for the interval it is in
//! ([`Local`]) and, once its clock passes into the next interval, adds it to the run's slot of
//! that interval ([`Shared`], a short lock per worker per interval) and starts a fresh one: the
//! client's memory stays bounded however long the run (the whole-run histograms are fixed
//! size too), which is what a soak needs. The coordinator closes an interval a grace period
//! after its end (every worker wakes at least every 20 ms, so by then each has handed it over),
//! samples the server there, and hands the figures to the caller as they come ([`Emitter`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::procfs::process_cpu_clock;
use crate::stats::{self, decode_histogram, encode_histogram, new_histogram};

/// The default interval.
pub const DEFAULT_WIDTH: Duration = Duration::from_millis(100);
/// The shortest interval allowed.
pub const MIN_WIDTH: Duration = Duration::from_millis(10);
/// The most intervals a run keeps (an hour of 100 ms ones): past it they are still passed to
/// the caller as they close (printed, served) but not kept, so a run of days keeps its memory
/// bounded; its minutes are kept whatever its length.
pub const MAX_KEPT: usize = 36_000;
/// How long after an interval's end the coordinator waits for every worker's share of it.
const GRACE: Duration = Duration::from_millis(60);

/// One interval's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntervalFigures {
    /// When the interval starts, seconds after the measured window opened.
    pub start_s: f64,
    /// Its length, seconds (the last may be shorter).
    pub duration_s: f64,
    /// Messages completed in it.
    pub messages: u64,
    /// `messages` over `duration_s`.
    pub throughput_rps: f64,
    /// Median latency, µs (0 when no message completed).
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Largest, µs.
    pub max_us: u64,
    /// Errors counted in it (the first interval also holds the warm-up's).
    pub errors: u64,
    /// The server's CPU in it, cores, when its pid is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_cores: Option<f64>,
    /// The server's resident memory at its end, KiB, when its pid is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_kib: Option<u64>,
    /// The interval's latency histogram in HdrHistogram's V2 compressed encoding, base64, when
    /// an interval log was asked for (not stored in reports).
    #[serde(skip)]
    pub histogram: Option<String>,
}

/// One minute of the window: the drift a soak shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MinuteFigures {
    /// Which minute of the window (0-based).
    pub minute: u64,
    /// Messages completed in it.
    pub messages: u64,
    /// Its p99 (from the merged histograms of its intervals), µs.
    pub p99_us: u64,
    /// Errors counted in it.
    pub errors: u64,
    /// The server's resident memory at its end, KiB, when its pid is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_kib: Option<u64>,
}

/// The minute being gathered.
struct Minute {
    index: u64,
    histogram: Histogram<u64>,
    messages: u64,
    errors: u64,
    rss_kib: Option<u64>,
}

/// What the coordinator reads of the server at each close: its CPU clock and its resident
/// memory (`/proc/PID/statm`), two cheap reads, unlike a whole [`crate::procfs::ProcSample`]
/// (every thread's status), which ten times a second would cost the client's core.
#[derive(Debug, Clone, Copy)]
struct ServerSample {
    cpu: Duration,
    rss_kib: u64,
}

impl ServerSample {
    fn read(pid: u32) -> Option<ServerSample> {
        let cpu = process_cpu_clock(pid)?;
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        Some(ServerSample {
            cpu,
            rss_kib: pages * page / 1024,
        })
    }
}

/// What the caller asks of the intervals.
pub struct Observe<'a> {
    /// The interval's length.
    pub width: Duration,
    /// Whether to keep each interval's histogram, for an interval log.
    pub histograms: bool,
    /// Called with each interval as it closes, from the coordinating thread.
    pub on_interval: &'a mut dyn FnMut(&IntervalFigures),
}

impl std::fmt::Debug for Observe<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observe")
            .field("width", &self.width)
            .field("histograms", &self.histograms)
            .finish_non_exhaustive()
    }
}

/// An interval's share from the workers.
struct Slot {
    histogram: Histogram<u64>,
    messages: u64,
    errors: u64,
}

/// The run's intervals that workers have handed over and the coordinator not yet closed.
pub(crate) struct Shared {
    width: Duration,
    slots: Mutex<BTreeMap<u64, Slot>>,
}

impl Shared {
    pub(crate) fn new(width: Duration) -> Self {
        Shared {
            width: width.max(MIN_WIDTH),
            slots: Mutex::new(BTreeMap::new()),
        }
    }

    /// The interval `at` falls in, counted from `origin` (0 before it).
    fn index(&self, origin: Instant, at: Instant) -> u64 {
        (at.saturating_duration_since(origin).as_nanos() / self.width.as_nanos()) as u64
    }

    fn add(&self, index: u64, histogram: &Histogram<u64>, messages: u64, errors: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(index).or_insert_with(|| Slot {
            histogram: new_histogram(),
            messages: 0,
            errors: 0,
        });
        slot.histogram.add(histogram).expect("same bounds");
        slot.messages += messages;
        slot.errors += errors;
    }

    fn take(&self, index: u64) -> Option<Slot> {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&index)
    }

    /// Takes every slot at or after `index`: the run is over, nothing more comes.
    fn take_rest(&self) -> Vec<(u64, Slot)> {
        std::mem::take(&mut *self.slots.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }
}

/// One worker's record of the interval it is in.
pub(crate) struct Local {
    index: u64,
    histogram: Histogram<u64>,
    messages: u64,
    /// The worker's error count when it last handed an interval over.
    errors_handed: u64,
}

impl Local {
    pub(crate) fn new() -> Self {
        Local {
            index: 0,
            histogram: new_histogram(),
            messages: 0,
            errors_handed: 0,
        }
    }

    /// Records one completion in the window at `now`.
    pub(crate) fn record(
        &mut self,
        shared: &Shared,
        origin: Instant,
        now: Instant,
        latency: Duration,
        errors: u64,
    ) {
        self.tick(shared, origin, now, errors);
        stats::record(&mut self.histogram, latency);
        self.messages += 1;
    }

    /// Hands the interval over once `now` is past it.
    pub(crate) fn tick(&mut self, shared: &Shared, origin: Instant, now: Instant, errors: u64) {
        let index = shared.index(origin, now);
        if index != self.index {
            self.hand_over(shared, errors);
            self.index = index;
        }
    }

    /// Adds what it holds to the run's slot of its interval and starts afresh.
    pub(crate) fn hand_over(&mut self, shared: &Shared, errors: u64) {
        let new_errors = errors.saturating_sub(self.errors_handed);
        if self.messages > 0 || new_errors > 0 {
            shared.add(self.index, &self.histogram, self.messages, new_errors);
        }
        self.histogram.reset();
        self.messages = 0;
        self.errors_handed = errors;
    }
}

/// The coordinator's side: closes intervals in order, samples the server at each close.
pub(crate) struct Emitter {
    next: u64,
    origin: Instant,
    end: Option<Instant>,
    server_pid: Option<u32>,
    server_before: Option<ServerSample>,
    /// When `server_before` was read.
    sampled_at: Instant,
    histograms: bool,
    /// Every interval closed so far, up to [`MAX_KEPT`].
    pub(crate) figures: Vec<IntervalFigures>,
    /// Intervals closed past [`MAX_KEPT`].
    pub(crate) not_kept: u64,
    minute: Minute,
    /// Every minute closed so far.
    pub(crate) minutes: Vec<MinuteFigures>,
}

impl Emitter {
    pub(crate) fn new(
        origin: Instant,
        end: Option<Instant>,
        server_pid: Option<u32>,
        histograms: bool,
    ) -> Self {
        Emitter {
            next: 0,
            origin,
            end,
            server_pid,
            server_before: server_pid.and_then(ServerSample::read),
            sampled_at: Instant::now(),
            histograms,
            figures: Vec::new(),
            not_kept: 0,
            minute: Minute {
                index: 0,
                histogram: new_histogram(),
                messages: 0,
                errors: 0,
                rss_kib: None,
            },
            minutes: Vec::new(),
        }
    }

    /// Adds a closed interval to its minute, closing the minute before it.
    fn gather_minute(&mut self, figures: &IntervalFigures, histogram: &Histogram<u64>) {
        let index = (figures.start_s / 60.0).floor() as u64;
        if index != self.minute.index {
            self.close_minute();
            self.minute.index = index;
        }
        let m = &mut self.minute;
        m.histogram.add(histogram).expect("same bounds");
        m.messages += figures.messages;
        m.errors += figures.errors;
        m.rss_kib = figures.server_rss_kib.or(m.rss_kib);
    }

    fn close_minute(&mut self) {
        let m = &mut self.minute;
        self.minutes.push(MinuteFigures {
            minute: m.index,
            messages: m.messages,
            p99_us: if m.histogram.is_empty() {
                0
            } else {
                m.histogram.value_at_quantile(0.99)
            },
            errors: m.errors,
            server_rss_kib: m.rss_kib,
        });
        m.histogram.reset();
        m.messages = 0;
        m.errors = 0;
    }

    /// Closes every interval whose end (and grace) has passed by `now`.
    pub(crate) fn close_due(
        &mut self,
        shared: &Shared,
        now: Instant,
        on_interval: &mut dyn FnMut(&IntervalFigures),
    ) {
        loop {
            let end = self.origin + shared.width * (self.next as u32 + 1);
            let last = self.end.is_some_and(|e| e <= end - shared.width);
            if last || now < end + GRACE {
                return;
            }
            let slot = shared.take(self.next);
            self.close(shared, self.next, slot, on_interval);
            self.next += 1;
        }
    }

    /// Closes what remains once every worker has ended: the intervals up to the window's end.
    pub(crate) fn close_rest(
        &mut self,
        shared: &Shared,
        window_end: Instant,
        on_interval: &mut dyn FnMut(&IntervalFigures),
    ) {
        let mut rest: BTreeMap<u64, Slot> = shared.take_rest().into_iter().collect();
        let last = shared.index(self.origin, window_end.max(self.origin));
        let exact = window_end
            .saturating_duration_since(self.origin)
            .as_nanos()
            .is_multiple_of(shared.width.as_nanos());
        let last = if exact { last.saturating_sub(1) } else { last };
        while self.next <= last {
            let slot = rest.remove(&self.next);
            self.close(shared, self.next, slot, on_interval);
            self.next += 1;
        }
        if !self.figures.is_empty() {
            self.close_minute();
        }
        // A late share of an interval already closed (a worker stalled past the grace): added
        // to that interval as stored (its percentiles too when its histogram was kept), though
        // it was printed and served without it.
        for (index, slot) in rest {
            let Some(figures) = usize::try_from(index)
                .ok()
                .and_then(|i| self.figures.get_mut(i))
            else {
                continue;
            };
            figures.messages += slot.messages;
            figures.errors += slot.errors;
            figures.throughput_rps = figures.messages as f64 / figures.duration_s.max(1e-9);
            if let Some(Ok(mut histogram)) = figures.histogram.as_deref().map(decode_histogram) {
                histogram.add(&slot.histogram).expect("same bounds");
                figures.p50_us = histogram.value_at_quantile(0.5);
                figures.p99_us = histogram.value_at_quantile(0.99);
                figures.max_us = histogram.max();
                figures.histogram = Some(encode_histogram(&histogram));
            }
        }
    }

    fn close(
        &mut self,
        shared: &Shared,
        index: u64,
        slot: Option<Slot>,
        on_interval: &mut dyn FnMut(&IntervalFigures),
    ) {
        let start = self.origin + shared.width * index as u32;
        let end = (start + shared.width).min(self.end.unwrap_or(start + shared.width));
        let duration = end
            .saturating_duration_since(start)
            .max(Duration::from_micros(1));
        // The server is read when the interval closes (a grace after its end), so its CPU is
        // over the time between two closes: about the interval, shifted by the grace.
        let server_after = self.server_pid.and_then(ServerSample::read);
        let now = Instant::now();
        let between = now.saturating_duration_since(self.sampled_at).as_secs_f64();
        let server_cpu_cores = match (&self.server_before, &server_after) {
            (Some(before), Some(after)) if between > 0.0 => {
                Some(after.cpu.saturating_sub(before.cpu).as_secs_f64() / between)
            }
            _ => None,
        };
        let server_rss_kib = server_after.map(|s| s.rss_kib);
        if server_after.is_some() {
            self.server_before = server_after;
            self.sampled_at = now;
        }
        let (histogram, messages, errors) = match slot {
            Some(slot) => (slot.histogram, slot.messages, slot.errors),
            None => (new_histogram(), 0, 0),
        };
        let at = |q: f64| {
            if histogram.is_empty() {
                0
            } else {
                histogram.value_at_quantile(q)
            }
        };
        let figures = IntervalFigures {
            start_s: shared.width.as_secs_f64() * index as f64,
            duration_s: duration.as_secs_f64(),
            messages,
            throughput_rps: messages as f64 / duration.as_secs_f64(),
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: if histogram.is_empty() {
                0
            } else {
                histogram.max()
            },
            errors,
            server_cpu_cores,
            server_rss_kib,
            histogram: self.histograms.then(|| encode_histogram(&histogram)),
        };
        on_interval(&figures);
        self.gather_minute(&figures, &histogram);
        if self.figures.len() < MAX_KEPT {
            self.figures.push(figures);
        } else {
            self.not_kept += 1;
        }
    }
}

/// The intervals as an HdrHistogram interval log (the text format of HdrHistogram's
/// `HistogramLogWriter`: a header, then one line per interval, `start,length,max,histogram`,
/// seconds and the max in ms), readable by HdrHistogram's log tools and plotters.
/// `start_unix_s` is the window's opening by the wall clock.
pub fn interval_log(figures: &[IntervalFigures], start_unix_s: f64) -> String {
    let mut out = String::from("#[Latency per interval, µs, written by echo-bench]\n");
    out.push_str(&format!(
        "#[StartTime: {start_unix_s:.3} (seconds since epoch)]\n"
    ));
    out.push_str("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n");
    let empty = encode_histogram(&new_histogram());
    for f in figures {
        out.push_str(&format!(
            "{:.3},{:.3},{:.3},{}\n",
            f.start_s,
            f.duration_s,
            f.max_us as f64 / 1000.0,
            f.histogram.as_deref().unwrap_or(&empty)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_hand_intervals_over_and_the_emitter_closes_them_in_order() {
        let width = Duration::from_millis(100);
        let shared = Shared::new(width);
        let origin = Instant::now();
        let at = |ms: u64| origin + Duration::from_millis(ms);
        let (mut a, mut b) = (Local::new(), Local::new());
        for ms in [5, 50, 99] {
            a.record(&shared, origin, at(ms), Duration::from_micros(100), 0);
        }
        b.record(&shared, origin, at(10), Duration::from_micros(900), 0);
        // Into the second interval: a hands the first over, with an error seen meanwhile.
        a.record(&shared, origin, at(150), Duration::from_micros(200), 1);
        b.tick(&shared, origin, at(160), 0);
        let mut emitter = Emitter::new(origin, Some(at(250)), None, true);
        let mut seen = Vec::new();
        emitter.close_due(&shared, at(120), &mut |f| seen.push(f.clone()));
        assert!(seen.is_empty(), "within the grace");
        emitter.close_due(&shared, at(170), &mut |f| seen.push(f.clone()));
        assert_eq!(seen.len(), 1);
        let first = &seen[0];
        assert_eq!((first.messages, first.errors), (4, 1));
        assert_eq!(first.p50_us, 100);
        assert!((first.throughput_rps - 40.0).abs() < 1e-6);
        assert!(first.max_us >= 899 && first.max_us <= 901);
        a.hand_over(&shared, 1);
        b.hand_over(&shared, 0);
        emitter.close_rest(&shared, at(250), &mut |f| seen.push(f.clone()));
        assert_eq!(seen.len(), 3, "[0,100) [100,200) [200,250)");
        assert_eq!(seen[1].messages, 1);
        assert_eq!(seen[2].messages, 0);
        assert!((seen[2].duration_s - 0.05).abs() < 1e-9);
        assert_eq!(emitter.minutes.len(), 1);
        assert_eq!(
            (emitter.minutes[0].messages, emitter.minutes[0].errors),
            (5, 1)
        );
        let log = interval_log(&emitter.figures, 1.0e9);
        assert_eq!(log.lines().count(), 3 + 3);
        let line = log.lines().nth(3).unwrap();
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(&fields[..2], ["0.000", "0.100"]);
        let back = crate::stats::decode_histogram(fields[3]).unwrap();
        assert_eq!(back.len(), 4);
    }
}
