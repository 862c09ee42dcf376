//! The event-loop engine: each worker thread drives its share of the connections with one mio
//! readiness loop, so a thousand connections cost a thousand sockets, not a thousand threads.
//!
//! Every connection keeps a queue of messages in flight with their intended and actual send
//! times; received bytes are verified against the connection's [`ByteStream`] as they arrive,
//! whatever the segmentation, and a message completes when the cumulative byte count passes its
//! end. The workloads differ only in when a message is queued: ping-pong when one completes,
//! rate on the worker's timer, stream whenever the socket takes more, churn once per connection.
//!
//! It is long because the four workloads share one worker: one loop over one slab of connections,
//! each connection's state moved by readiness.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::socket::Connecting;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::{RunState, WorkerOutcome, connection_seed};
use crate::config::{Stop, Workload};
use crate::pattern::ByteStream;
use crate::stats::{self, ErrorKind, WorkerStats, thread_cpu_time};

/// The token of the worker's timerfd.
pub(super) const TIMER: Token = Token(usize::MAX - 1);

/// A timerfd in the worker's poll: epoll's own timeout has millisecond resolution, which would
/// send an open-loop schedule out in 1 ms bursts and charge the client's lateness to the server.
pub(super) struct PreciseTimer {
    fd: std::os::fd::OwnedFd,
}

impl PreciseTimer {
    pub(super) fn new(poll: &Poll) -> io::Result<Self> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: timerfd_create returns a new descriptor or -1.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we own from here on.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        poll.registry().register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            TIMER,
            Interest::READABLE,
        )?;
        Ok(Self { fd })
    }

    /// The epoll timeout of a loop that must wake at `wake`: with a timer, armed for `wake`,
    /// which wakes the loop on time, and epoll's own (millisecond) timeout 2 ms later as a
    /// fallback; without one, epoll's timeout alone.
    pub(super) fn poll_timeout(timer: Option<&Self>, wake: Instant) -> Duration {
        let timeout = wake.saturating_duration_since(Instant::now());
        match timer {
            Some(timer) if !timeout.is_zero() => {
                timer.arm(wake);
                timeout + Duration::from_millis(2)
            }
            _ => timeout,
        }
    }

    /// Arms the timer to fire at `when` (at once if that has passed), and clears a past expiry.
    pub(super) fn arm(&self, when: Instant) {
        use std::os::fd::AsRawFd;
        let mut expirations = [0u8; 8];
        // SAFETY: reading 8 bytes from our non-blocking timerfd into a local buffer.
        unsafe { libc::read(self.fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
        let wait = when
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: a valid itimerspec for our timerfd.
        unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }
}

/// When a worker's loop must wake next: its timeout scan, the window's end, the window's start
/// (while warming up) and the open loop's next tick, whichever comes first.
pub(super) fn next_wake(
    next_scan: Instant,
    end: Option<Instant>,
    start: Option<Instant>,
    tick: Option<Instant>,
) -> Instant {
    [end, start, tick]
        .into_iter()
        .flatten()
        .fold(next_scan, Instant::min)
}

/// How often in-flight messages are checked against the timeout.
pub(super) const TIMEOUT_SCAN: Duration = Duration::from_millis(20);
/// How long the start waits for the next TLS handshake to complete once every connection left
/// is past its TCP connect (see `connect_all`).
const HANDSHAKE_PATIENCE: Duration = Duration::from_millis(500);
/// Write-read rounds one connection gets before the loop moves on.
const PUMP_ROUNDS: usize = 16;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;

struct Message {
    /// Cumulative byte offset at which this message's echo is complete.
    end: u64,
    intended: Instant,
    sent: Instant,
}

enum Phase {
    Connecting(Instant),
    Open,
}

struct Conn {
    /// Index into the worker's slots (and so into the per-connection counts).
    local: usize,
    stream: Connecting,
    phase: Phase,
    /// When its connect began: what first-byte latency counts from.
    opened: Instant,
    out: Vec<u8>,
    out_pos: usize,
    tx: ByteStream,
    rx: ByteStream,
    inflight: VecDeque<Message>,
    enqueued: u64,
    received: u64,
    /// When the connection last made progress (opened, or completed a message before the
    /// window's end): what tells a stalled connection from a busy one.
    last_progress: Instant,
}

/// Why a connection ended.
enum End {
    /// Churn: the echo is done, close and start the next connection.
    Done,
    Failed(ErrorKind),
}

pub(super) struct Worker<'a> {
    shared: &'a RunState,
    slots: Vec<usize>,
    poll: Poll,
    conns: Slab<Conn>,
    /// Connections made per slot so far (seeds each churn connection's stream differently).
    generation: Vec<u64>,
    counts: Vec<u64>,
    stats: WorkerStats,
    scratch: Vec<u8>,
    /// Connections that yielded with work left; served before the loop sleeps again.
    ready: Vec<usize>,
    measure_start: Instant,
    /// The window's end, for timed runs: completions after it are not counted, since another
    /// worker closing its connections first may already have changed what the server does.
    measure_end: Option<Instant>,
    measuring: bool,
    stopping: bool,
    cpu_at_start: Duration,
    /// The share of `--requests` this worker completes, if the run stops by count.
    quota: Option<u64>,
    /// The interval it is in, handed over as it passes.
    interval: super::intervals::Local,
}

impl<'a> Worker<'a> {
    pub(super) fn new(
        shared: &'a RunState,
        slots: Vec<usize>,
        quota: Option<u64>,
    ) -> io::Result<Self> {
        let n = slots.len();
        Ok(Self {
            shared,
            slots,
            poll: Poll::new()?,
            conns: Slab::with_capacity(n),
            generation: vec![0; n],
            counts: vec![0; n],
            stats: WorkerStats::default(),
            scratch: vec![0; READ_CHUNK],
            ready: Vec::new(),
            measure_start: Instant::now(),
            measure_end: None,
            measuring: false,
            stopping: false,
            cpu_at_start: Duration::ZERO,
            quota,
            interval: super::intervals::Local::new(),
        })
    }

    /// The worker's readiness loop, whole, in the way mio's own examples keep theirs in view:
    /// timers, events, reconnects and the end of the run are decided in one place.
    pub(super) fn run(mut self) -> WorkerOutcome {
        let config = &self.shared.config;
        let mut events = Events::with_capacity(1024);
        if config.workload != Workload::Churn {
            self.connect_all(&mut events);
        }
        let Some(timeline) = self.shared.wait_for_start() else {
            return WorkerOutcome::called_off();
        };
        self.measure_start = timeline.measure_start;
        self.measure_end = timeline.end;
        let end = timeline.end;
        if config.workload == Workload::Churn {
            for local in 0..self.slots.len() {
                self.open(local);
            }
        } else {
            // A TLS handshake still pending (see `connect_all`) opens when it completes.
            let opened: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, c)| matches!(c.phase, Phase::Open))
                .map(|(key, _)| key)
                .collect();
            for key in opened {
                self.on_open(key);
            }
        }

        // Open loop: this worker's share of the rate, round-robin over its connections.
        let rate_interval = match (config.workload, config.rate) {
            (Workload::Rate, Some(rate)) => {
                let share = rate * self.slots.len() as f64 / config.connections as f64;
                Some(Duration::from_secs_f64(1.0 / share.max(1e-9)))
            }
            _ => None,
        };
        let timer = match rate_interval {
            Some(_) => PreciseTimer::new(&self.poll).ok(),
            None => None,
        };
        let mut next_tick = self.measure_start.min(Instant::now());
        let mut rr = 0usize;
        let mut next_scan = Instant::now() + TIMEOUT_SCAN;
        let mut finished_at = None;

        loop {
            let now = Instant::now();
            if !self.measuring && now >= self.measure_start {
                self.measuring = true;
                self.cpu_at_start = thread_cpu_time();
            }
            let done_by_time = end.is_some_and(|end| now >= end);
            let done_by_count = self
                .quota
                .is_some_and(|quota| self.measuring && self.stats.messages >= quota);
            let all_dead = config.workload != Workload::Churn && self.conns.is_empty();
            if done_by_time || done_by_count || all_dead {
                finished_at = Some(now);
                break;
            }
            if let Some(interval) = rate_interval {
                // Catch up on every tick that is due, so a stall shows as latency, not as a
                // silently lower rate.
                if next_tick <= now && !self.conns.is_empty() {
                    // Taken once per turn: a connection that fails meanwhile is skipped by
                    // `enqueue`, which ignores keys that are gone.
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    while next_tick <= now {
                        let key = keys[rr % keys.len()];
                        rr += 1;
                        self.enqueue(key, next_tick);
                        self.pump(key);
                        next_tick += interval;
                    }
                }
            }
            if now >= next_scan {
                self.expire(now);
                next_scan = now + TIMEOUT_SCAN;
            }
            let wake = next_wake(
                next_scan,
                end,
                (!self.measuring).then_some(self.measure_start),
                rate_interval.map(|_| next_tick),
            );
            let ready = std::mem::take(&mut self.ready);
            let timeout = if ready.is_empty() {
                PreciseTimer::poll_timeout(timer.as_ref(), wake)
            } else {
                Duration::ZERO
            };
            if let Err(err) = self.poll.poll(&mut events, Some(timeout)) {
                if err.kind() == io::ErrorKind::Interrupted {
                    self.ready = ready;
                    continue;
                }
                break;
            }
            for event in events.iter() {
                if event.token() != TIMER {
                    self.on_event(event.token().0);
                }
            }
            for key in ready {
                self.pump(key);
            }
            let done = self.stats.messages;
            self.shared.report_progress(done);
            if self.measuring {
                let errors = self.stats.errors.total();
                self.interval.tick(
                    &self.shared.intervals,
                    self.measure_start,
                    Instant::now(),
                    errors,
                );
            }
        }
        self.stopping = true;
        self.count_stalled();
        self.interval
            .hand_over(&self.shared.intervals, self.stats.errors.total());
        let cpu = if self.measuring {
            thread_cpu_time().saturating_sub(self.cpu_at_start)
        } else {
            Duration::ZERO
        };
        self.stats.cpu = cpu;
        self.stats.per_connection = self
            .slots
            .iter()
            .zip(&self.counts)
            .map(|(&slot, &count)| (slot, count))
            .collect();
        WorkerOutcome {
            stats: self.stats,
            finished_at: finished_at.unwrap_or_else(Instant::now),
        }
    }

    /// Opens every connection (paced by `--connect-rate`) and waits, up to the timeout, until
    /// each is established or has failed.
    fn connect_all(&mut self, events: &mut Events) {
        let config = &self.shared.config;
        let interval = config
            .connect_rate
            .map(|rate| Duration::from_secs_f64(self.shared.threads as f64 / rate));
        let began = Instant::now();
        for local in 0..self.slots.len() {
            if let Some(interval) = interval {
                let due = began + interval * local as u32;
                // Serve the connections already opening while waiting for the next one's turn.
                while Instant::now() < due {
                    let wait = due.saturating_duration_since(Instant::now());
                    if self.poll.poll(events, Some(wait)).is_ok() {
                        for event in events.iter() {
                            self.on_event(event.token().0);
                        }
                    }
                }
            }
            self.open(local);
        }
        let mut last_pending = usize::MAX;
        let mut progressed = Instant::now();
        loop {
            let now = Instant::now();
            self.expire(now);
            let pending = || {
                self.conns
                    .iter()
                    .filter(|(_, c)| matches!(c.phase, Phase::Connecting(_)))
            };
            let count = pending().count();
            if count == 0 {
                return;
            }
            if count < last_pending {
                (last_pending, progressed) = (count, now);
            }
            // A bounded server (one client at a time, a full pool) accepts a TCP connection in
            // its kernel and answers its ClientHello only when it gets to it, which may be never:
            // over TCP the first echo would show that connection starved. Over TLS the start
            // waits for handshakes only while they complete, so those left show as stalled in
            // the window, not as connect timeouts before it.
            let only_unanswered = pending().all(|(_, c)| c.stream.handshake_began().is_some());
            if only_unanswered && now.duration_since(progressed) >= HANDSHAKE_PATIENCE {
                return;
            }
            if self.poll.poll(events, Some(TIMEOUT_SCAN)).is_ok() {
                for event in events.iter() {
                    self.on_event(event.token().0);
                }
            }
        }
    }

    /// Starts a non-blocking connect for slot `local`.
    fn open(&mut self, local: usize) {
        let config = &self.shared.config;
        let started = Instant::now();
        match Connecting::start(config.peer()) {
            Ok(mut stream) => {
                let entry = self.conns.vacant_entry();
                let key = entry.key();
                if self
                    .poll
                    .registry()
                    .register(
                        &mut stream,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .is_err()
                {
                    self.stats.errors.count(ErrorKind::Connect);
                    return;
                }
                let seed = connection_seed(config.seed, self.slots[local], self.generation[local]);
                self.generation[local] += 1;
                entry.insert(Conn {
                    local,
                    stream,
                    phase: Phase::Connecting(started),
                    opened: started,
                    out: Vec::new(),
                    out_pos: 0,
                    tx: ByteStream::new(seed),
                    rx: ByteStream::new(seed),
                    inflight: VecDeque::new(),
                    enqueued: 0,
                    received: 0,
                    last_progress: started,
                });
            }
            Err(err) => self.connect_failed(&err),
        }
    }

    fn connect_failed(&mut self, err: &io::Error) {
        let (kind, ports_exhausted) = stats::classify_connect(err);
        self.stats.errors.count(kind);
        self.stats.ports_exhausted |= ports_exhausted;
        if ports_exhausted {
            // Give TIME_WAIT a moment rather than spinning on connect.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn on_event(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Phase::Connecting(started) = conn.phase {
            let local = conn.local;
            match conn.stream.established() {
                Ok(true) => {}
                Ok(false) => return,
                Err(err) => {
                    self.close(key, None);
                    self.connect_failed(&err);
                    self.reopen_if_churning(Some(local));
                    return;
                }
            }
            conn.phase = Phase::Open;
            let now = Instant::now();
            if self.measuring && now >= self.measure_start {
                // For tls:, the connect ended where the handshake began.
                let connected = conn.stream.handshake_began();
                stats::record(
                    &mut self.stats.connect_latency,
                    connected.unwrap_or(now) - started,
                );
                if let Some(began) = connected {
                    stats::record(&mut self.stats.handshake_latency, now - began);
                    self.stats.handshakes += 1;
                    self.stats.resumed += u64::from(conn.stream.resumed());
                }
            }
            if self.shared.started() {
                self.on_open(key);
                return;
            }
        }
        self.pump(key);
    }

    /// Queues the first messages of a connection that just opened.
    fn on_open(&mut self, key: usize) {
        let now = Instant::now();
        let first = match self.shared.config.workload {
            Workload::PingPong => self.shared.config.pipeline,
            Workload::Churn | Workload::Stream => 1,
            Workload::Rate => 0,
        };
        for _ in 0..first {
            self.enqueue(key, now);
        }
        self.pump(key);
    }

    /// Appends one message to the connection's output, stamped with its intended send time.
    fn enqueue(&mut self, key: usize, intended: Instant) {
        if self.stopping {
            return;
        }
        let payload = self.shared.config.payload;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.out_pos == conn.out.len() {
            conn.out.clear();
            conn.out_pos = 0;
        }
        let start = conn.out.len();
        conn.out.resize(start + payload, 0);
        conn.tx.fill(&mut conn.out[start..]);
        conn.enqueued += payload as u64;
        conn.inflight.push_back(Message {
            end: conn.enqueued,
            intended,
            sent: Instant::now(),
        });
        self.stats.sent += 1;
    }

    /// Writes what is queued and reads what has arrived, until both would block. A connection
    /// that could go on for ever (a stream the server drains as fast as it is written) yields
    /// after a few rounds and is picked up again on the next turn of the loop.
    fn pump(&mut self, key: usize) {
        for _ in 0..PUMP_ROUNDS {
            match self.pump_once(key) {
                Ok(true) => continue,
                Ok(false) => return,
                Err(End::Done) => {
                    let local = self.conns.get(key).map(|c| c.local);
                    self.close(key, None);
                    self.reopen_if_churning(local);
                    return;
                }
                Err(End::Failed(kind)) => {
                    let local = self.conns.get(key).map(|c| c.local);
                    self.close(key, Some(kind));
                    self.reopen_if_churning(local);
                    return;
                }
            }
        }
        // Edge-triggered: no new event will come for work left undone, so remember it.
        self.ready.push(key);
    }

    /// One round of writing then reading. `Ok(true)` when new output was queued, so the caller
    /// writes again. Long because each of the workloads' per-message steps (send, verify,
    /// record, reconnect) has to happen in this order for one connection.
    fn pump_once(&mut self, key: usize) -> Result<bool, End> {
        let workload = self.shared.config.workload;
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(false);
        };
        if !matches!(conn.phase, Phase::Open) {
            return Ok(false);
        }
        // Write.
        while conn.out_pos < conn.out.len() {
            match conn.stream.write(&conn.out[conn.out_pos..]) {
                Ok(0) => return Err(End::Failed(ErrorKind::Reset)),
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Failed(stats::classify_io(&e))),
            }
        }
        let mut queued_more = false;
        if workload == Workload::Stream && conn.out_pos == conn.out.len() && !self.stopping {
            // Keep the pipe full: queue another chunk as soon as the last one is written.
            queued_more = true;
        }
        // Read.
        let mut completed_now = 0u32;
        loop {
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => return Err(End::Failed(ErrorKind::Eof)),
                Ok(n) => {
                    if n as u64 > conn.enqueued - conn.received
                        || conn.rx.check(&self.scratch[..n]).is_some()
                    {
                        return Err(End::Failed(ErrorKind::Mismatch));
                    }
                    let now = Instant::now();
                    if conn.received == 0
                        && self.measuring
                        && now >= self.measure_start
                        && self.measure_end.is_none_or(|end| now < end)
                    {
                        stats::record(&mut self.stats.first_byte_latency, now - conn.opened);
                    }
                    conn.received += n as u64;
                    while conn
                        .inflight
                        .front()
                        .is_some_and(|m| m.end <= conn.received)
                    {
                        let message = conn.inflight.pop_front().expect("checked");
                        if self.measure_end.is_none_or(|end| now < end) {
                            conn.last_progress = now;
                        }
                        let in_window = self.measuring
                            && now >= self.measure_start
                            && self.measure_end.is_none_or(|end| now < end);
                        if in_window {
                            let errors = self.stats.errors.total();
                            self.interval.record(
                                &self.shared.intervals,
                                self.measure_start,
                                now,
                                now - message.intended,
                                errors,
                            );
                            stats::record(&mut self.stats.latency, now - message.intended);
                            stats::record(&mut self.stats.latency_uncorrected, now - message.sent);
                            self.stats.messages += 1;
                            self.stats.bytes += self.shared.config.payload as u64;
                            self.counts[conn.local] += 1;
                            if workload == Workload::Churn {
                                // The connection's one echo is done; it closes right after.
                                self.stats.connections_closed += 1;
                            }
                        }
                        completed_now += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Failed(stats::classify_io(&e))),
            }
        }
        if completed_now == 0 {
            if queued_more {
                self.enqueue(key, Instant::now());
            }
            return Ok(queued_more);
        }
        match workload {
            Workload::Churn => Err(End::Done),
            Workload::PingPong => {
                let now = Instant::now();
                for _ in 0..completed_now {
                    self.enqueue(key, now);
                }
                Ok(!self.stopping)
            }
            Workload::Stream => {
                if queued_more {
                    self.enqueue(key, Instant::now());
                }
                Ok(queued_more)
            }
            Workload::Rate => Ok(false),
        }
    }

    /// At a timed window's end, counts every connection that waits for an echo (or a connect)
    /// and made no progress for the whole window, or for `--timeout` if that is shorter: the
    /// server stopped serving it, which a timeout longer than the window would never report.
    /// Progress after the window's end does not count: another worker closing its connections
    /// first may just have freed a bounded server to serve this one.
    fn count_stalled(&mut self) {
        let Some(end) = self.measure_end else {
            return;
        };
        let window = end.saturating_duration_since(self.measure_start);
        let patience = window.min(self.shared.config.timeout);
        let Some(since) = end.checked_sub(patience) else {
            return;
        };
        let stalled = self
            .conns
            .iter()
            .filter(|(_, c)| {
                let waiting = match c.phase {
                    Phase::Connecting(_) => true,
                    Phase::Open => !c.inflight.is_empty(),
                };
                waiting && c.last_progress <= since
            })
            .count();
        self.stats.errors.stalled += stalled as u64;
    }

    /// Counts a timeout for every connect or message older than `--timeout`, closing it.
    fn expire(&mut self, now: Instant) {
        let timeout = self.shared.config.timeout;
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| match c.phase {
                Phase::Connecting(started) => now.duration_since(started) > timeout,
                Phase::Open => c
                    .inflight
                    .front()
                    .is_some_and(|m| now.saturating_duration_since(m.sent) > timeout),
            })
            .map(|(key, _)| key)
            .collect();
        for key in expired {
            let local = self.conns.get(key).map(|c| c.local);
            self.close(key, Some(ErrorKind::Timeout));
            self.reopen_if_churning(local);
        }
    }

    fn close(&mut self, key: usize, error: Option<ErrorKind>) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
        if let Some(kind) = error {
            self.stats.errors.count(kind);
        }
    }

    fn reopen_if_churning(&mut self, local: Option<usize>) {
        if let Some(local) = local
            && self.shared.config.workload == Workload::Churn
            && !self.stopping
            && self.shared.started()
        {
            self.open(local);
        }
    }
}

/// The quota of this worker when the run stops after `--requests`.
pub(super) fn quota(stop: Stop, worker: usize, workers: usize) -> Option<u64> {
    match stop {
        Stop::Requests(total) => {
            let workers = workers as u64;
            let worker = worker as u64;
            Some(total / workers + u64::from(worker < total % workers))
        }
        Stop::Duration(_) => None,
    }
}
