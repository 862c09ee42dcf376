//! The naive engine, kept only as the yardstick for the event-loop engine: one blocking thread
//! per connection that writes a message, then reads until the whole echo is back, like the
//! common Rust echo clients (but still verifying every byte, and reassembling split echoes).

use std::io::{Read, Write};
use std::time::Instant;

use super::{RunState, WorkerOutcome, connection_seed};
use crate::pattern::ByteStream;
use crate::socket::Client;
use crate::stats::{self, ErrorKind, WorkerStats, thread_cpu_time};

/// Drives connection `slot` until the run ends.
pub(super) fn connection(shared: &RunState, slot: usize, quota: Option<u64>) -> WorkerOutcome {
    let config = &shared.config;
    let mut stats = WorkerStats::default();
    let stream = Client::connect(config.peer(), config.timeout);
    let Some(timeline) = shared.wait_for_start() else {
        return WorkerOutcome::called_off();
    };
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(err) => {
            stats.errors.count(stats::classify_connect(&err).0);
            stats.per_connection = vec![(slot, 0)];
            return WorkerOutcome {
                stats,
                finished_at: timeline.measure_start,
            };
        }
    };
    let _ = stream.set_timeouts(Some(config.timeout));
    let seed = connection_seed(config.seed, slot, 0);
    let (mut tx, mut rx) = (ByteStream::new(seed), ByteStream::new(seed));
    let mut message = vec![0; config.payload];
    let mut echo = vec![0; config.payload];
    let mut count = 0u64;
    let mut cpu_at_start = None;
    let mut interval = super::intervals::Local::new();
    let finished_at = loop {
        let now = Instant::now();
        if cpu_at_start.is_none() && now >= timeline.measure_start {
            cpu_at_start = Some(thread_cpu_time());
        }
        if timeline.end.is_some_and(|end| now >= end)
            || quota.is_some_and(|q| cpu_at_start.is_some() && count >= q)
        {
            break now;
        }
        tx.fill(&mut message);
        let sent = Instant::now();
        let result = stream
            .write_all(&message)
            .and_then(|()| stream.read_exact(&mut echo));
        if let Err(err) = result {
            stats.errors.count(stats::classify_io(&err));
            break Instant::now();
        }
        if rx.check(&echo).is_some() {
            stats.errors.count(ErrorKind::Mismatch);
            break Instant::now();
        }
        let done = Instant::now();
        if cpu_at_start.is_some() && timeline.end.is_none_or(|end| done < end) {
            let errors = stats.errors.total();
            interval.record(
                &shared.intervals,
                timeline.measure_start,
                done,
                done - sent,
                errors,
            );
            stats::record(&mut stats.latency, done - sent);
            stats::record(&mut stats.latency_uncorrected, done - sent);
            stats.messages += 1;
            stats.bytes += config.payload as u64;
            count += 1;
            shared.report_progress(count);
        }
        stats.sent += 1;
    };
    stats.cpu = cpu_at_start.map_or_else(Default::default, |c| thread_cpu_time().saturating_sub(c));
    interval.hand_over(&shared.intervals, stats.errors.total());
    stats.per_connection = vec![(slot, count)];
    WorkerOutcome { stats, finished_at }
}
