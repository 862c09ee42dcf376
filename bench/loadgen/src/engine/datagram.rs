//! The datagram engine: what the event-loop engine is for streams, for a `udp:` target. Each
//! worker drives its share of the "connections", here UDP sockets, each bound to a port of its
//! own and connected to the target (so the kernel drops anything not from the server), with one
//! mio loop.
//!
//! Every datagram starts with its sequence number on that socket (8 bytes, little-endian); the
//! rest is a pattern derived from the socket's seed and the sequence number, so an echo can be
//! checked on its own, whatever order it comes back in. Each socket keeps the datagrams in
//! flight in sequence order with their intended send times:
//! - an echo of one in flight completes it (latency recorded), and is *reordered* if a later one
//!   had already come back;
//! - a datagram not back within `--timeout` is *lost* (ping-pong then sends the next: a timeout
//!   is a lost datagram, never a stuck connection); one that turns up later is *late*;
//! - an echo of one already back is *duplicated*; one whose bytes, length or sequence number
//!   were never sent is *corrupted*.
//!
//! Ping-pong keeps `pipeline` datagrams in flight per socket; rate sends on the worker's precise
//! timer, round-robin over its sockets, and measures latency from the intended send time.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::event_loop::{PreciseTimer, TIMEOUT_SCAN, TIMER, next_wake};
use super::{RunState, WorkerOutcome, connection_seed};
use crate::config::{DATAGRAM_HEADER, Workload};
use crate::stats::{self, ErrorKind, WorkerStats, thread_cpu_time};

/// How many sequence numbers declared lost a socket remembers, to tell a late echo from a
/// duplicated or corrupted one.
const REMEMBER_LOST: usize = 65_536;

/// One socket and what it has in flight.
struct Flow {
    socket: mio::net::UdpSocket,
    seed: u64,
    next_seq: u64,
    /// In flight, in sequence order: (sequence number, intended send time, actual send time).
    in_flight: VecDeque<(u64, Instant, Instant)>,
    /// The highest sequence number that has come back.
    highest_back: Option<u64>,
    /// Sequence numbers declared lost, so a late echo is recognised.
    lost: HashSet<u64>,
    /// Datagrams completed (for fairness).
    completed: u64,
}

pub(super) struct Worker<'a> {
    shared: &'a RunState,
    slots: Vec<usize>,
    poll: Poll,
    flows: Vec<Flow>,
    stats: WorkerStats,
    out: Vec<u8>,
    inbox: Vec<u8>,
    measure_start: Instant,
    measure_end: Option<Instant>,
    measuring: bool,
    quota: Option<u64>,
}

/// Fills `buf` with datagram `seq` of the flow seeded `seed`.
pub(crate) fn fill(buf: &mut [u8], seed: u64, seq: u64) {
    buf[..DATAGRAM_HEADER].copy_from_slice(&seq.to_le_bytes());
    let mut x = (seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    for chunk in buf[DATAGRAM_HEADER..].chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

/// The sequence number of `echo`, if it is exactly a datagram this flow could have sent
/// (length `len`, pattern intact, number below `next_seq`).
fn check(echo: &[u8], len: usize, seed: u64, next_seq: u64, scratch: &mut Vec<u8>) -> Option<u64> {
    if echo.len() != len {
        return None;
    }
    let seq = u64::from_le_bytes(echo[..DATAGRAM_HEADER].try_into().ok()?);
    if seq >= next_seq {
        return None;
    }
    scratch.resize(len, 0);
    fill(scratch, seed, seq);
    (echo == scratch.as_slice()).then_some(seq)
}

impl<'a> Worker<'a> {
    /// Binds and connects one socket per slot.
    pub(super) fn new(
        shared: &'a RunState,
        slots: Vec<usize>,
        quota: Option<u64>,
    ) -> io::Result<Self> {
        let config = &shared.config;
        let target = config
            .target
            .socket_addr()
            .ok_or_else(|| io::Error::other("a datagram run needs a udp: target"))?;
        let poll = Poll::new()?;
        let any: SocketAddr = if target.is_ipv4() {
            "0.0.0.0:0".parse().expect("an address")
        } else {
            "[::]:0".parse().expect("an address")
        };
        let mut flows = Vec::with_capacity(slots.len());
        for (i, &slot) in slots.iter().enumerate() {
            let socket = UdpSocket::bind(any)?;
            socket.connect(target)?;
            socket.set_nonblocking(true)?;
            let mut socket = mio::net::UdpSocket::from_std(socket);
            poll.registry()
                .register(&mut socket, Token(i), Interest::READABLE)?;
            flows.push(Flow {
                socket,
                seed: connection_seed(config.seed, slot, 0),
                next_seq: 0,
                in_flight: VecDeque::new(),
                highest_back: None,
                lost: HashSet::new(),
                completed: 0,
            });
        }
        Ok(Self {
            shared,
            slots,
            poll,
            flows,
            stats: WorkerStats::default(),
            out: vec![0; config.payload],
            inbox: vec![0; 65_536],
            measure_start: Instant::now(),
            measure_end: None,
            measuring: false,
            quota,
        })
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.measure_start && self.measure_end.is_none_or(|end| at < end)
    }

    /// Sends the flow's next datagram, intended at `intended`.
    fn send(&mut self, i: usize, intended: Instant) {
        let flow = &mut self.flows[i];
        let seq = flow.next_seq;
        flow.next_seq += 1;
        fill(&mut self.out, flow.seed, seq);
        let now = Instant::now();
        let counted =
            intended >= self.measure_start && self.measure_end.is_none_or(|e| intended < e);
        match flow.socket.send(&self.out) {
            Ok(_) => {
                flow.in_flight.push_back((seq, intended, now));
                // Every send, warm-up included, as the stream engine counts them.
                self.stats.sent += 1;
                if counted {
                    self.stats.datagrams.sent += 1;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                self.stats.errors.count(ErrorKind::Refused);
            }
            // A datagram the socket would not take (its buffer full) never left: lost here.
            Err(_) => {
                if counted {
                    self.stats.datagrams.sent += 1;
                    self.stats.datagrams.lost += 1;
                }
            }
        }
    }

    /// Reads every datagram waiting on flow `i`.
    fn receive(&mut self, i: usize) -> usize {
        let mut completed = 0;
        loop {
            let n = match self.flows[i].socket.recv(&mut self.inbox) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return completed,
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                    // An ICMP "port unreachable" for an earlier datagram: nothing listens.
                    self.stats.errors.count(ErrorKind::Refused);
                    continue;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return completed,
            };
            let now = Instant::now();
            let payload = self.shared.config.payload;
            let (start, end) = (self.measure_start, self.measure_end);
            let in_window = |at: Instant| at >= start && end.is_none_or(|end| at < end);
            let flow = &mut self.flows[i];
            let mut scratch = std::mem::take(&mut self.out);
            let seq = check(
                &self.inbox[..n],
                payload,
                flow.seed,
                flow.next_seq,
                &mut scratch,
            );
            self.out = scratch;
            let Some(seq) = seq else {
                self.stats.datagrams.corrupted += 1;
                self.stats.errors.count(ErrorKind::Mismatch);
                continue;
            };
            match flow.in_flight.binary_search_by_key(&seq, |&(s, _, _)| s) {
                Ok(at) => {
                    let (_, intended, sent) = flow.in_flight.remove(at).expect("found");
                    if flow.highest_back.is_some_and(|h| h > seq) {
                        if in_window(intended) {
                            self.stats.datagrams.reordered += 1;
                        }
                    } else {
                        flow.highest_back = Some(seq);
                    }
                    let counted = intended >= start && end.is_none_or(|e| now < e);
                    if counted {
                        stats::record(&mut self.stats.latency, now - intended);
                        stats::record(&mut self.stats.latency_uncorrected, now - sent);
                        self.stats.datagrams.returned += 1;
                        self.stats.messages += 1;
                        self.stats.bytes += payload as u64;
                        flow.completed += 1;
                    }
                    completed += 1;
                }
                Err(_) if flow.lost.remove(&seq) => self.stats.datagrams.late += 1,
                Err(_) => self.stats.datagrams.duplicated += 1,
            }
        }
    }

    /// Declares lost every datagram in flight longer than the timeout; returns how many.
    fn expire(&mut self, i: usize, now: Instant) -> usize {
        let timeout = self.shared.config.timeout;
        let mut expired = 0;
        while let Some(&(seq, intended, sent)) = self.flows[i].in_flight.front() {
            if now.saturating_duration_since(sent) < timeout {
                break;
            }
            self.flows[i].in_flight.pop_front();
            if self.in_window(intended) {
                self.stats.datagrams.lost += 1;
            }
            let flow = &mut self.flows[i];
            if flow.lost.len() >= REMEMBER_LOST {
                flow.lost.clear();
            }
            flow.lost.insert(seq);
            expired += 1;
        }
        expired
    }

    pub(super) fn run(mut self) -> WorkerOutcome {
        let config = self.shared.config.clone();
        let Some(timeline) = self.shared.wait_for_start() else {
            return WorkerOutcome::called_off();
        };
        self.measure_start = timeline.measure_start;
        self.measure_end = timeline.end;
        let end = timeline.end;
        let ping_pong = config.workload == Workload::PingPong;
        let start = Instant::now();
        if ping_pong {
            for i in 0..self.flows.len() {
                for _ in 0..config.pipeline {
                    self.send(i, start);
                }
            }
        }
        let rate_interval = match (config.workload, config.rate) {
            (Workload::Rate, Some(rate)) => {
                let share = rate * self.slots.len() as f64 / config.connections as f64;
                Some(Duration::from_secs_f64(1.0 / share.max(1e-9)))
            }
            _ => None,
        };
        let timer = rate_interval.and_then(|_| PreciseTimer::new(&self.poll).ok());
        let mut next_tick = self.measure_start.min(start);
        let mut rr = 0usize;
        let mut next_scan = start + TIMEOUT_SCAN;
        let mut events = Events::with_capacity(256);
        let mut cpu_at_start = Duration::ZERO;
        let finished_at = loop {
            let now = Instant::now();
            if !self.measuring && now >= self.measure_start {
                self.measuring = true;
                cpu_at_start = thread_cpu_time();
            }
            let done_by_count = self
                .quota
                .is_some_and(|quota| self.measuring && self.stats.messages >= quota);
            if end.is_some_and(|end| now >= end) || done_by_count || self.flows.is_empty() {
                break now;
            }
            if let Some(interval) = rate_interval {
                while next_tick <= now {
                    let i = rr % self.flows.len();
                    rr += 1;
                    self.send(i, next_tick);
                    next_tick += interval;
                }
            }
            if now >= next_scan {
                for i in 0..self.flows.len() {
                    let expired = self.expire(i, now);
                    if ping_pong {
                        // A lost datagram is replaced, so the flow keeps its pipeline full.
                        for _ in 0..expired {
                            self.send(i, now);
                        }
                    }
                }
                next_scan = now + TIMEOUT_SCAN;
            }
            let wake = next_wake(
                next_scan,
                end,
                (!self.measuring).then_some(self.measure_start),
                rate_interval.map(|_| next_tick),
            );
            let timeout = PreciseTimer::poll_timeout(timer.as_ref(), wake);
            if let Err(err) = self.poll.poll(&mut events, Some(timeout))
                && err.kind() != io::ErrorKind::Interrupted
            {
                break Instant::now();
            }
            for event in events.iter() {
                if event.token() == TIMER {
                    continue;
                }
                let i = event.token().0;
                let completed = self.receive(i);
                if ping_pong {
                    let now = Instant::now();
                    for _ in 0..completed {
                        self.send(i, now);
                    }
                }
            }
            self.shared.report_progress(self.stats.messages);
        };
        self.stats.cpu = if self.measuring {
            thread_cpu_time().saturating_sub(cpu_at_start)
        } else {
            Duration::ZERO
        };
        self.stats.per_connection = self
            .slots
            .iter()
            .zip(&self.flows)
            .map(|(&slot, flow)| (slot, flow.completed))
            .collect();
        WorkerOutcome {
            stats: self.stats,
            finished_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_checks_only_as_itself() {
        let mut buf = vec![0; 100];
        fill(&mut buf, 7, 42);
        let mut scratch = Vec::new();
        assert_eq!(check(&buf, 100, 7, 43, &mut scratch), Some(42));
        // Never sent yet, another flow's, another length, a changed byte.
        assert_eq!(check(&buf, 100, 7, 42, &mut scratch), None);
        assert_eq!(check(&buf, 100, 8, 43, &mut scratch), None);
        assert_eq!(check(&buf[..99], 100, 7, 43, &mut scratch), None);
        buf[50] ^= 1;
        assert_eq!(check(&buf, 100, 7, 43, &mut scratch), None);
    }
}
