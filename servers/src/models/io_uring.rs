//! `io-uring`: a completion loop written by hand on the `io-uring` crate, one ring per core
//! (`es<id>-uring`), each with its own `SO_REUSEPORT` listener; no runtime, no futures, no
//! readiness: the whole server is [`Loop::run`] and the handlers it calls, in the shape of the
//! crate's own `examples/tcp_echo.rs`.
//!
//! A turn of the loop is one `io_uring_enter` that submits everything the last turn queued and
//! waits for at least one completion (`submit_and_wait(1)`); then every completion is handled in
//! the order the kernel posted it, each queueing the operations it calls for. What each
//! technique does, and what the model does with its switch off ([`UringFeatures`],
//! `--uring-features`):
//!
//! - **multishot-accept**: one `AcceptMulti` per ring posts a completion per connection and is
//!   armed again only when a completion lacks the MORE flag. Off: a one-shot `Accept`, submitted
//!   again after each connection.
//! - **multishot-recv**: one `RecvMulti` per connection, which posts a completion per chunk
//!   received, each into a buffer the kernel picks from a provided buffer ring shared by the
//!   ring's connections (`IORING_REGISTER_PBUF_RING`; the loop maps the ring's entries and
//!   buffers itself and gives a buffer back, advancing the ring's tail as liburing's
//!   `io_uring_buf_ring_add`/`_advance` do, only once the send that echoes it has completed).
//!   An idle connection then holds no buffer at all. Off: a one-shot `Recv` into the
//!   connection's own buffer of `buffer_size` bytes (the kernel's fast poll waits for the data),
//!   submitted again once the echo is sent.
//! - **batch**: one `io_uring_enter` per turn for every operation queued. Off: an
//!   `io_uring_enter` right after each operation is queued, as a readiness loop makes a system
//!   call per operation.
//! - **defer-taskrun**: the ring is set up `IORING_SETUP_SINGLE_ISSUER |
//!   IORING_SETUP_DEFER_TASKRUN`, so the kernel completes operations only inside the loop's own
//!   `io_uring_enter` (no interrupting task work). Off, or where setup refuses it (EINVAL):
//!   `IORING_SETUP_COOP_TASKRUN`, or no flag at all where that is refused too.
//! - **fixed-files**: a sparse registered file table per ring; connections are accepted straight
//!   into it (a direct descriptor: no entry in the process's descriptor table, no `fget` per
//!   operation) and operations name them by slot (`types::Fixed`), closed with a `Close` on the
//!   ring. The table has as many slots as the descriptor limit allows (the kernel refuses more),
//!   at most 65,536. A direct accept into a full table takes the connection off the queue and
//!   then drops it (the kernel looks for a slot only after accepting), so a multishot accept
//!   runs only while the table has room for a whole listen queue (one multishot accept drains
//!   the queue in one go); with less room the ring accepts one connection at a time, and none
//!   while the table is full: clients then wait in the backlog until a close frees a slot, as
//!   they do for EMFILE with plain descriptors. Off: plain descriptors (`types::Fd`).
//!
//! Every feature but `defer-taskrun` changes only which operations the loop submits and when;
//! the echo, the bound and the shutdown below are the same code in all 32 combinations.
//!
//! **Echo and ordering.** Each received chunk gets the per-message work ([`EchoPath`]), then
//! waits in its connection's queue; a connection has at most one send in flight, so its bytes go
//! back in order, and a partial send is sent on from where it stopped. End-of-file (a receive
//! of 0) lets the queue drain, then the connection is closed.
//!
//! **Bounded memory.** A connection whose send is still in flight when a receive completes and
//! that holds more than `buffer_size` bytes has its multishot receive cancelled
//! (`AsyncCancel`; what arrives meanwhile is queued, never dropped); it is armed again once its
//! queue has drained. So a client that never reads stops being read, and holds at most
//! `buffer_size` plus what the kernel received for it before the cancel took effect out of the
//! shared ring: the kernel retries a multishot receive up to 32 times before it yields, and may
//! run it twice in one `io_uring_enter` (measured here with 6.18: a client writing 64 KiB chunks
//! and never reading held 61 of the 512 buffers, 976 KiB, and then was read no more). A few such
//! clients on one ring leave the others short of buffers (they wait, see below); the one-shot
//! receive has no such cost. A receive that finds the buffer ring empty ends with ENOBUFS and leaves its data in the
//! socket; the connection waits on a list and is armed again when buffers come back, as many
//! connections as buffers came back per turn. With the one-shot receive the bound is exact:
//! nothing is received while an echo is pending.
//!
//! **Fairness.** Completions are handled in the order the kernel posts them, and a multishot
//! receive yields after its retries, so one client writing as fast as it can takes its turn with
//! the rest; the bound above stops it once its echo backs up.
//!
//! **TCP_NODELAY** is set on each TCP listener: Linux copies it into every connection accepted
//! from it, so no connection (a direct descriptor has no descriptor for `setsockopt` anyway)
//! costs a system call of its own.
//!
//! **Shutdown.** Each ring watches an eventfd (a `PollAdd` on the ring) that
//! [`ServerHandle::shutdown`] writes; the ring then cancels everything in flight with one
//! `AsyncCancel` matching any operation, waits (at most half of [`SHUTDOWN_GRACE`]) until every
//! operation has completed, so no buffer is freed while the kernel may still write into it, and
//! returns, closing every connection (the ring's file table with it). A ring whose wait runs out
//! leaks its buffers rather than free memory the kernel may write.
//!
//! Cost per connection: a slab entry with its queue; with the buffer ring nothing more while it
//! is idle, with one-shot receives its own buffer. Per ring: 512 buffers of
//! `min(buffer_size, 16 KiB)` (8 MiB at the default, touched as they are used), the file table
//! and the ring itself. What blocks: nothing, as long as no handler computes; a connection stays
//! on the ring the kernel gave it. Where the kernel refuses io_uring the model reports itself
//! unavailable ([`EchoServer::available`]) and the tools skip it: there is no fallback.
//!
//! UDP is not served (`udp:` is refused; the front ends name the models that serve it).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use io_uring::types::{self, BufRingEntry, CancelBuilder, DestinationSlot};
use io_uring::{IoUring, cqueue, opcode, squeue};
use slab::Slab;

use crate::blocking_io::join_all_within;
use crate::driver::{Driver, io_uring_refused};
use crate::net::{self, AcceptAction, StreamListener};
use crate::server::{
    EchoServer, Health, Model, SHUTDOWN_GRACE, ServerConfig, ServerHandle, ServerId, StopServer,
    available_cores, start_each,
};
use crate::uring_features::{UringFeature, UringFeatures};
use crate::work::EchoPath;

/// A hand-written io_uring completion loop per core.
#[derive(Debug, Clone, Copy, Default)]
pub struct IoUringServer;

impl EchoServer for IoUringServer {
    fn model(&self) -> Model {
        Model::IoUring
    }

    fn driver(&self) -> Driver {
        Driver::IoUring
    }

    fn available(&self) -> Result<(), String> {
        // A loop on the ring itself: without io_uring there is no model.
        match io_uring_refused() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        if let Err(why) = self.available() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, why));
        }
        // A `udp:` address is refused here (`net::not_served`).
        let listeners = net::bind_per_core(config, config.threads_or(available_cores()))?;
        let endpoint = listeners[0].endpoint()?;
        let id = ServerId::next();
        let (path, features) = (EchoPath::of(config), config.uring);
        let backlog = listen_queue(config.backlog);
        let stop = RingStop {
            wakers: Vec::new(),
            go: Vec::new(),
            threads: Vec::new(),
        };
        let stop = start_each(stop, listeners, |stop, listener| {
            if let StreamListener::Tcp(tcp) = &listener {
                socket2::SockRef::from(tcp).set_tcp_nodelay(true)?;
            }
            let waker = Arc::new(eventfd()?);
            stop.wakers.push(Arc::clone(&waker));
            let (go, gone) = mpsc::channel::<()>();
            stop.go.push(go);
            let health = id.health().clone();
            // The ring is made on the thread that runs it: with SINGLE_ISSUER, only the thread
            // that made a ring may submit to it. The thread says whether that worked, then
            // waits until every ring is made, so no ring accepts (taking descriptors) while
            // another still needs its own.
            let (started, outcome) = mpsc::channel();
            let thread = id.spawn_loop("uring", move || {
                match Loop::new(listener, waker, path, features, backlog, health) {
                    Ok(ring) => {
                        let _ = started.send(Ok(()));
                        match gone.recv() {
                            Ok(()) => ring.run(),
                            // Another ring failed to start: this one never serves.
                            Err(_) => Ok(()),
                        }
                    }
                    Err(err) => {
                        let _ = started.send(Err(err));
                        Ok(())
                    }
                }
            })?;
            stop.threads.push(thread);
            outcome.recv().unwrap_or_else(|_| {
                Err(io::Error::other(
                    "a ring's thread ended before its ring was set up",
                ))
            })
        })?;
        for go in &stop.go {
            let _ = go.send(());
        }
        Ok(ServerHandle::new(
            Model::IoUring,
            id,
            endpoint,
            Box::new(stop),
        ))
    }
}

/// Wakes every ring through its eventfd, then joins the threads.
struct RingStop {
    wakers: Vec<Arc<OwnedFd>>,
    /// What lets each ring start serving once every ring is made; dropped unsent when a start
    /// fails, which ends the rings made so far.
    go: Vec<mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl StopServer for RingStop {
    fn stop(mut self: Box<Self>) -> io::Result<()> {
        self.go.clear();
        let mut woken = Ok(());
        for waker in &self.wakers {
            if let Err(err) = wake(waker) {
                woken = Err(err);
            }
        }
        let joined = join_all_within(self.threads, Instant::now() + SHUTDOWN_GRACE);
        woken.and(joined)
    }
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just made and belongs to nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn wake(eventfd: &OwnedFd) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of a local to a descriptor the server owns.
    let written = unsafe { libc::write(eventfd.as_raw_fd(), (&raw const one).cast(), 8) };
    if written == 8 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Submission queue entries per ring; a turn that queues more submits and goes on.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries per ring (the kernel keeps what overflows, and ends a multishot
/// operation that overflows, which the loop arms again).
const CQ_ENTRIES: u32 = 8192;
/// Buffers in each ring's provided buffer ring (a power of two).
const BUFFERS: u16 = 512;
/// The largest provided buffer: a receive completes at most this much.
const BUFFER_MAX: usize = 16 * 1024;
/// The buffer group of the provided buffer ring (one per io_uring instance).
const BUFFER_GROUP: u16 = 0;
/// The most slots of a ring's registered file table.
const FIXED_FILES_MAX: u64 = 65_536;
/// How long a stopping ring waits for its cancelled operations to complete.
const DRAIN: Duration = Duration::from_millis(SHUTDOWN_GRACE.as_millis() as u64 / 2);

/// What an operation was, kept in its user_data with the connection's key and, for a receive,
/// which arming of the receive it is (so a cancel names exactly one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Accept,
    /// The pause after a resource error while accepting.
    Backoff,
    /// The poll of the eventfd shutdown writes.
    Waker,
    /// A cancel of the loop's own operations: the accept's, or every one at shutdown.
    LoopCancel,
    Recv,
    Send,
    /// A cancel of one connection's operations.
    Cancel,
    /// A direct descriptor's close.
    Close,
}

const OPS: [Op; 8] = [
    Op::Accept,
    Op::Backoff,
    Op::Waker,
    Op::LoopCancel,
    Op::Recv,
    Op::Send,
    Op::Cancel,
    Op::Close,
];

fn user_data(op: Op, key: usize, arm: u8) -> u64 {
    (key as u64) << 16 | u64::from(arm) << 8 | op as u64
}

fn decode(user_data: u64) -> (Op, usize) {
    (OPS[(user_data & 7) as usize], (user_data >> 16) as usize)
}

/// A connection's socket: a descriptor of the process, or a slot of the ring's file table.
enum Sock {
    Plain(OwnedFd),
    Fixed(u32),
}

/// Builds the operation `$op` on `$sock`, with `$fd` the socket as the operation names it.
macro_rules! on_sock {
    ($sock:expr, |$fd:ident| $op:expr) => {
        match $sock {
            Sock::Plain(owned) => {
                let $fd = types::Fd(owned.as_raw_fd());
                $op
            }
            Sock::Fixed(slot) => {
                let $fd = types::Fixed(*slot);
                $op
            }
        }
    };
}

/// Bytes received and not yet echoed: `start..end` of a provided buffer (`bid`), or of the
/// connection's own buffer.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    bid: Option<u16>,
    start: u32,
    end: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recv {
    Idle,
    Armed,
    /// Armed, and a cancel of it submitted (the bound): its last completion is still to come.
    Cancelling,
}

struct Conn {
    sock: Sock,
    /// What waits to be echoed, in order; the front is what the send in flight reads.
    queue: VecDeque<Chunk>,
    /// Bytes in `queue`: what this connection holds in the server.
    held: usize,
    sending: bool,
    recv: Recv,
    /// Which arming of the receive is the current one (part of its user_data).
    arm: u8,
    /// The peer half-closed: echo what is queued, then close.
    eof: bool,
    /// An error ended the connection (a reset, a failed send): close it.
    failed: bool,
    /// Closing: its operations are cancelled, and it is closed once none is left.
    closing: bool,
    /// Waiting on the loop's list for buffers to come back to the ring.
    starved: bool,
    /// Its operations the kernel still holds; it is closed only at 0.
    ops: u32,
    /// Its own buffer, for one-shot receives (without multishot-recv).
    own: Option<Box<[u8]>>,
}

impl Conn {
    fn new(sock: Sock, own: Option<Box<[u8]>>) -> Self {
        Self {
            sock,
            queue: VecDeque::new(),
            held: 0,
            sending: false,
            recv: Recv::Idle,
            arm: 0,
            eof: false,
            failed: false,
            closing: false,
            starved: false,
            ops: 0,
            own,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    Idle,
    Armed {
        multishot: bool,
    },
    /// A multishot accept being cancelled (the file table is short of room for its burst).
    Cancelling,
    /// Waiting out the pause after a resource error.
    Paused,
    /// The listener failed: no more accepting.
    Failed,
}

/// One ring and everything it serves.
struct Loop {
    /// Declared first, so dropped first: the ring lets go of the buffer ring before that memory
    /// is unmapped.
    ring: IoUring,
    conns: Slab<Conn>,
    /// The provided buffer ring (multishot-recv only).
    bufs: Option<BufRing>,
    listener: StreamListener,
    waker: Arc<OwnedFd>,
    path: EchoPath,
    features: UringFeatures,
    health: Health,
    /// The pause of the accept backoff; the kernel reads it when the timeout is submitted.
    backoff: Box<types::Timespec>,
    /// Connections whose receive found the buffer ring empty, to arm again as buffers return.
    starved: VecDeque<usize>,
    /// The accept's state.
    accept: Accepting,
    /// With fixed-files: the file table's slots, and how many hold a connection.
    fixed: Option<(u32, u32)>,
    /// The most connections one multishot accept may take at once: the listen backlog (it
    /// drains the queue in one go).
    burst: u32,
    /// Operations submitted whose last completion has not come yet.
    in_flight: usize,
    /// Set by shutdown: until when the ring waits for its cancelled operations.
    stopping: Option<Instant>,
}

impl Loop {
    fn new(
        listener: StreamListener,
        waker: Arc<OwnedFd>,
        path: EchoPath,
        features: UringFeatures,
        backlog: u32,
        health: Health,
    ) -> io::Result<Self> {
        let ring = make_ring(features.has(UringFeature::DeferTaskrun))?;
        let bufs = if features.has(UringFeature::MultishotRecv) {
            let bufs = BufRing::new(BUFFERS, path.buffer_size.min(BUFFER_MAX) as u32)?;
            // SAFETY: the entries stay mapped while the ring lives: `Loop` drops `ring` before
            // `bufs`.
            unsafe {
                ring.submitter().register_buf_ring_with_flags(
                    bufs.entries.ptr.as_ptr() as u64,
                    BUFFERS,
                    BUFFER_GROUP,
                    0,
                )?;
            }
            Some(bufs)
        } else {
            None
        };
        let fixed = if features.has(UringFeature::FixedFiles) {
            let slots = fixed_slots();
            ring.submitter().register_files_sparse(slots)?;
            Some((slots, 0))
        } else {
            None
        };
        Ok(Self {
            ring,
            conns: Slab::new(),
            bufs,
            listener,
            waker,
            path,
            features,
            health,
            backoff: Box::new(types::Timespec::new()),
            starved: VecDeque::new(),
            accept: Accepting::Idle,
            fixed,
            burst: backlog,
            in_flight: 0,
            stopping: None,
        })
    }

    /// Runs until shutdown: a turn is one `io_uring_enter` (everything queued submitted, at
    /// least one completion awaited), then every completion handled in order.
    fn run(mut self) -> io::Result<()> {
        self.arm_accept()?;
        let waker = types::Fd(self.waker.as_raw_fd());
        self.push(
            opcode::PollAdd::new(waker, libc::POLLIN as u32)
                .build()
                .user_data(user_data(Op::Waker, 0, 0)),
        )?;
        let mut completions: Vec<cqueue::Entry> = Vec::with_capacity(CQ_ENTRIES as usize);
        loop {
            if let Some(bufs) = &mut self.bufs {
                bufs.publish();
            }
            let waited = match self.stopping {
                None => self.ring.submit_and_wait(1),
                Some(deadline) => {
                    // Returning drops the loop, which closes every connection.
                    let left = deadline.saturating_duration_since(Instant::now());
                    if self.in_flight == 0 || left.is_zero() {
                        return Ok(());
                    }
                    let left = types::Timespec::from(left);
                    let args = types::SubmitArgs::new().timespec(&left);
                    self.ring.submitter().submit_with_args(1, &args)
                }
            };
            if let Err(err) = waited
                && !matches!(
                    err.raw_os_error(),
                    Some(libc::EINTR | libc::EBUSY | libc::ETIME)
                )
            {
                return Err(err);
            }
            completions.extend(self.ring.completion());
            for cqe in completions.drain(..) {
                self.complete(&cqe)?;
            }
            self.feed_starved()?;
        }
    }

    /// Queues `entry`; submits at once when batching is off. A full submission queue is
    /// submitted, then the entry queued.
    ///
    /// Every entry the loop queues points only at memory and descriptors the loop owns and keeps
    /// until the operation's last completion: the provided buffers (given back only after their
    /// send completed), a connection's own buffer and descriptor (freed only once its `ops` is
    /// 0), the backoff's timespec, the eventfd.
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: see above; the entry itself is copied into the queue.
        while unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.submit(false)?;
        }
        self.in_flight += 1;
        if !self.features.has(UringFeature::Batch) {
            self.submit(true)?;
        }
        Ok(())
    }

    /// Submits what is queued without waiting (buffers given back are published first).
    /// `busy_ok`: the kernel may decline for now (EBUSY), and the entries go with the next
    /// turn's submission.
    fn submit(&mut self, busy_ok: bool) -> io::Result<()> {
        if let Some(bufs) = &mut self.bufs {
            bufs.publish();
        }
        match self.ring.submit() {
            Err(err) if err.raw_os_error() == Some(libc::EINTR) => Ok(()),
            Err(err) if busy_ok && err.raw_os_error() == Some(libc::EBUSY) => Ok(()),
            Err(err) => Err(err),
            Ok(_) => Ok(()),
        }
    }

    fn complete(&mut self, cqe: &cqueue::Entry) -> io::Result<()> {
        let (op, key) = decode(cqe.user_data());
        let (res, flags) = (cqe.result(), cqe.flags());
        let last = !cqueue::more(flags);
        if last {
            self.in_flight -= 1;
        }
        if self.stopping.is_some() {
            // Everything was cancelled; only a connection accepted meanwhile needs closing (a
            // direct one closes with the ring).
            if let (Some(bid), Some(bufs)) = (cqueue::buffer_select(flags), &mut self.bufs) {
                bufs.out += 1;
                bufs.give_back(bid);
            }
            if op == Op::Accept && res >= 0 && !self.features.has(UringFeature::FixedFiles) {
                // SAFETY: the accept's result is a new descriptor owned by nothing else.
                drop(unsafe { OwnedFd::from_raw_fd(res) });
            }
            return Ok(());
        }
        match op {
            Op::Accept => self.accepted(res, last),
            Op::Backoff => {
                self.accept = Accepting::Idle;
                self.arm_accept()
            }
            Op::Waker if res >= 0 => self.begin_stop(),
            Op::Waker => Err(io::Error::other(format!(
                "the shutdown eventfd's poll failed: {}",
                io::Error::from_raw_os_error(-res)
            ))),
            Op::LoopCancel => Ok(()),
            Op::Recv => self.received(key, res, flags, last),
            Op::Send => self.sent(key, res),
            Op::Cancel => {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.ops -= 1;
                }
                self.settle(key)
            }
            Op::Close => {
                self.conns.try_remove(key);
                if let Some((_, used)) = &mut self.fixed {
                    *used -= 1;
                }
                // A slot is free: a full table's accept goes on.
                self.arm_accept()
            }
        }
    }

    /// Arms the accept if it is idle and there is room for a connection: a multishot one
    /// (multishot-accept) unless the file table is short of room for a burst, else a one-shot
    /// one, which takes exactly one connection.
    fn arm_accept(&mut self) -> io::Result<()> {
        if self.accept != Accepting::Idle {
            return Ok(());
        }
        let free = self.free_slots();
        if free == Some(0) {
            // Armed again when a direct descriptor's close frees a slot.
            return Ok(());
        }
        let multishot = self.features.has(UringFeature::MultishotAccept)
            && free.is_none_or(|free| free > self.burst);
        let listener = types::Fd(self.listener.as_fd().as_raw_fd());
        let fixed = free.is_some();
        let entry = if multishot {
            let accept = opcode::AcceptMulti::new(listener).allocate_file_index(fixed);
            // A direct descriptor has no close-on-exec flag (the kernel refuses one).
            if fixed {
                accept
            } else {
                accept.flags(libc::SOCK_CLOEXEC)
            }
            .build()
        } else {
            let accept = opcode::Accept::new(listener, std::ptr::null_mut(), std::ptr::null_mut());
            if fixed {
                accept.file_index(Some(DestinationSlot::auto_target()))
            } else {
                accept.flags(libc::SOCK_CLOEXEC)
            }
            .build()
        };
        self.accept = Accepting::Armed { multishot };
        self.push(entry.user_data(user_data(Op::Accept, 0, 0)))
    }

    /// Free slots of the registered file table (`None` with plain descriptors: no table).
    fn free_slots(&self) -> Option<u32> {
        self.fixed.map(|(slots, used)| slots - used)
    }

    /// An accept's completion: a connection to serve, or an error for the shared policy. An
    /// accept that has ended (`last`) is armed again at once, or after the policy's pause (a
    /// timeout), or never once the listener failed.
    fn accepted(&mut self, res: i32, last: bool) -> io::Result<()> {
        if last {
            self.accept = Accepting::Idle;
        }
        if res >= 0 {
            let sock = match &mut self.fixed {
                Some((_, used)) => {
                    *used += 1;
                    Sock::Fixed(res as u32)
                }
                // SAFETY: the accept's result is a new descriptor owned by nothing else.
                None => Sock::Plain(unsafe { OwnedFd::from_raw_fd(res) }),
            };
            let own = self
                .bufs
                .is_none()
                .then(|| vec![0; self.path.buffer_size].into_boxed_slice());
            let key = self.conns.insert(Conn::new(sock, own));
            self.settle(key)?;
            // A direct accept into a full table would accept the connection and then drop it
            // (the kernel takes it from the queue before it looks for a slot), so a multishot
            // accept is cancelled while it could still take a whole backlog's burst, and one
            // connection at a time is accepted from then on.
            if self.accept == (Accepting::Armed { multishot: true })
                && self.free_slots().is_some_and(|free| free <= self.burst)
            {
                self.accept = Accepting::Cancelling;
                let cancel = opcode::AsyncCancel::new(user_data(Op::Accept, 0, 0)).build();
                self.push(cancel.user_data(user_data(Op::LoopCancel, 0, 0)))?;
            }
            return self.arm_accept();
        }
        let err = io::Error::from_raw_os_error(-res);
        if err.raw_os_error() == Some(libc::ECANCELED) && last {
            // Cancelled for the file table's sake (above): accept one at a time now.
            return self.arm_accept();
        }
        match net::after_accept_error(&err, false, &self.health) {
            AcceptAction::WaitReady | AcceptAction::Next => self.arm_accept()?,
            AcceptAction::BackOff(pause) if last => {
                self.accept = Accepting::Paused;
                *self.backoff = types::Timespec::from(pause);
                let timeout = opcode::Timeout::new(&*self.backoff).build();
                self.push(timeout.user_data(user_data(Op::Backoff, 0, 0)))?;
            }
            AcceptAction::BackOff(_) => {}
            // The listener failed (the policy told the server's health): the connections go on.
            AcceptAction::Stop => self.accept = Accepting::Failed,
        }
        Ok(())
    }

    /// A receive's completion: bytes to echo, end-of-file, an empty buffer ring, a cancel (the
    /// bound, or shutdown's) or a failed connection.
    fn received(&mut self, key: usize, res: i32, flags: u32, last: bool) -> io::Result<()> {
        let bid = cqueue::buffer_select(flags);
        if let (Some(_), Some(bufs)) = (bid, &mut self.bufs) {
            bufs.out += 1;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            if let (Some(bid), Some(bufs)) = (bid, &mut self.bufs) {
                bufs.give_back(bid);
            }
            return Ok(());
        };
        if last {
            conn.ops -= 1;
            conn.recv = Recv::Idle;
        }
        if res > 0 && (conn.failed || conn.closing) {
            // Bytes that came in before the cancel of a failed connection: never echoed.
            if let (Some(bid), Some(bufs)) = (bid, &mut self.bufs) {
                bufs.give_back(bid);
            }
        } else if res > 0 {
            let chunk = Chunk {
                bid,
                start: 0,
                end: res as u32,
            };
            let data = match (bid, &self.bufs, &conn.own) {
                (Some(bid), Some(bufs), _) => bufs.received(bid, chunk.end),
                (None, _, Some(own)) => &own[..chunk.end as usize],
                _ => return Err(io::Error::other("a receive completed with no buffer")),
            };
            self.path.on_message(data);
            conn.queue.push_back(chunk);
            conn.held += res as usize;
            if conn.recv == Recv::Armed && conn.sending && conn.held > self.path.buffer_size {
                // The bound: its echo backs up, so stop receiving until the queue drains.
                conn.recv = Recv::Cancelling;
                conn.ops += 1;
                let cancel = opcode::AsyncCancel::new(user_data(Op::Recv, key, conn.arm));
                self.push(cancel.build().user_data(user_data(Op::Cancel, key, 0)))?;
            }
        } else {
            if let (Some(bid), Some(bufs)) = (bid, &mut self.bufs) {
                bufs.give_back(bid);
            }
            match -res {
                0 => conn.eof = true,
                // The buffer ring is empty; the bytes wait in the socket. A connection that
                // holds none of its own waits for buffers to come back; one that does is armed
                // again when its queue drains.
                libc::ENOBUFS => {
                    if conn.held == 0 && !conn.starved {
                        conn.starved = true;
                        self.starved.push_back(key);
                    }
                }
                // The bound's cancel; or a receive to submit again.
                libc::ECANCELED | libc::EINTR | libc::EAGAIN => {}
                // A reset, or another error of this one connection.
                _ => conn.failed = true,
            }
        }
        self.settle(key)
    }

    /// A send's completion: the echo moves on (a partial send is sent on from where it
    /// stopped), and a chunk sent whole gives its buffer back.
    fn sent(&mut self, key: usize, res: i32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        conn.ops -= 1;
        conn.sending = false;
        match res {
            sent if sent > 0 => {
                let Some(front) = conn.queue.front_mut() else {
                    return Err(io::Error::other("a send completed with nothing queued"));
                };
                front.start += sent as u32;
                conn.held -= sent as usize;
                if front.start >= front.end {
                    let bid = front.bid;
                    conn.queue.pop_front();
                    if let (Some(bid), Some(bufs)) = (bid, &mut self.bufs) {
                        bufs.give_back(bid);
                    }
                }
            }
            // Sent again below.
            err if err == -libc::EINTR || err == -libc::EAGAIN => {}
            // Nothing sent, a reset, a peer gone, or a cancel: this connection is over.
            _ => conn.failed = true,
        }
        if conn.failed {
            // No send is in flight now: nothing queued will be sent.
            for chunk in conn.queue.drain(..) {
                if let (Some(bid), Some(bufs)) = (chunk.bid, &mut self.bufs) {
                    bufs.give_back(bid);
                }
            }
            conn.held = 0;
        }
        self.settle(key)
    }

    /// Submits what a connection needs next: its send, its receive, or its end.
    fn settle(&mut self, key: usize) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        if conn.closing || conn.failed || (conn.eof && conn.held == 0) {
            return self.finish(key);
        }
        if !conn.sending
            && let Some(chunk) = conn.queue.front().copied()
        {
            let data = match (chunk.bid, &self.bufs, &conn.own) {
                (Some(bid), Some(bufs), _) => bufs.address(bid),
                (None, _, Some(own)) => own.as_ptr(),
                _ => return Err(io::Error::other("a chunk with no buffer")),
            };
            // SAFETY: `start` is within the buffer the chunk is in.
            let data = unsafe { data.add(chunk.start as usize) };
            let len = chunk.end - chunk.start;
            let send = on_sock!(&conn.sock, |fd| opcode::Send::new(fd, data, len)
                .flags(libc::MSG_NOSIGNAL)
                .build());
            conn.sending = true;
            conn.ops += 1;
            self.push(send.user_data(user_data(Op::Send, key, 0)))?;
        }
        let conn = &mut self.conns[key];
        if conn.recv == Recv::Idle && conn.held == 0 && !conn.eof && !conn.starved {
            conn.arm = conn.arm.wrapping_add(1);
            let recv = match &mut conn.own {
                None => on_sock!(&conn.sock, |fd| opcode::RecvMulti::new(fd, BUFFER_GROUP)
                    .build()),
                Some(own) => {
                    let len = own.len() as u32;
                    on_sock!(&conn.sock, |fd| opcode::Recv::new(
                        fd,
                        own.as_mut_ptr(),
                        len
                    )
                    .build())
                }
            };
            conn.recv = Recv::Armed;
            conn.ops += 1;
            let arm = conn.arm;
            self.push(recv.user_data(user_data(Op::Recv, key, arm)))?;
        }
        Ok(())
    }

    /// Ends a connection: cancels what it has in flight (once), drops what it queued, and
    /// closes it when the kernel holds none of its operations any more.
    fn finish(&mut self, key: usize) -> io::Result<()> {
        let conn = &mut self.conns[key];
        if !conn.closing {
            conn.closing = true;
            // Whatever waits to be sent will not be; the front stays while a send reads it.
            for chunk in conn.queue.drain(usize::from(conn.sending)..) {
                if let (Some(bid), Some(bufs)) = (chunk.bid, &mut self.bufs) {
                    bufs.give_back(bid);
                }
            }
            if conn.ops > 0 {
                conn.ops += 1;
                let cancel = on_sock!(&conn.sock, |fd| opcode::AsyncCancel2::new(
                    CancelBuilder::fd(fd).all()
                )
                .build());
                return self.push(cancel.user_data(user_data(Op::Cancel, key, 0)));
            }
        }
        if conn.ops > 0 {
            return Ok(());
        }
        if conn.starved {
            self.starved.retain(|&k| k != key);
        }
        debug_assert!(
            conn.queue.is_empty(),
            "a connection closed with bytes queued"
        );
        if let Sock::Fixed(slot) = conn.sock {
            conn.ops += 1;
            let close = opcode::Close::new(types::Fixed(slot)).build();
            self.push(close.user_data(user_data(Op::Close, key, 0)))
        } else {
            // Dropping it closes the descriptor.
            drop(self.conns.remove(key));
            Ok(())
        }
    }

    /// Arms the receives of connections that found the buffer ring empty, as many as there are
    /// buffers back in it.
    fn feed_starved(&mut self) -> io::Result<()> {
        let Some(bufs) = &self.bufs else {
            return Ok(());
        };
        let mut free = usize::from(bufs.count) - bufs.out;
        while free > 0
            && let Some(key) = self.starved.pop_front()
        {
            if let Some(conn) = self.conns.get_mut(key)
                && conn.starved
            {
                conn.starved = false;
                free -= 1;
                self.settle(key)?;
            }
        }
        Ok(())
    }

    /// Shutdown: cancels every operation in flight; the loop then waits for their completions.
    fn begin_stop(&mut self) -> io::Result<()> {
        self.stopping = Some(Instant::now() + DRAIN);
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::any()).build();
        self.push(cancel.user_data(user_data(Op::LoopCancel, 0, 0)))
    }
}

impl Drop for Loop {
    /// Closes every connection now, the direct ones too: dropping the ring would leave those to
    /// the kernel's teardown of the ring, which runs later on a kernel worker, so a client could
    /// still find its connection open after shutdown returned.
    ///
    /// If operations are still in flight (the drain ran out of time, or the loop failed), the
    /// kernel may yet write into their buffers, so the buffers are leaked rather than freed.
    fn drop(&mut self) {
        if let (0, Some(bufs)) = (self.in_flight, &self.bufs) {
            // Every buffer out of the ring is in some connection's queue: none was lost.
            let queued = self.conns.iter().map(|(_, conn)| conn.queue.iter());
            let queued = queued.flatten().filter(|chunk| chunk.bid.is_some()).count();
            debug_assert_eq!(bufs.out, queued, "provided buffers lost");
        }
        if self.in_flight > 0 {
            std::mem::forget(self.bufs.take());
            for (_, conn) in self.conns.iter_mut() {
                if let Some(own) = conn.own.take() {
                    Box::leak(own);
                }
            }
        }
        if self.fixed.is_some() {
            let _ = self.ring.submitter().unregister_files();
        }
        self.conns.clear();
    }
}

/// A ring set up for the loop: `SINGLE_ISSUER | DEFER_TASKRUN` when asked for, else (or where the
/// kernel refuses that, EINVAL) `COOP_TASKRUN`, else no flag.
fn make_ring(defer_taskrun: bool) -> io::Result<IoUring> {
    let build = |flags: fn(&mut io_uring::Builder)| {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(CQ_ENTRIES);
        flags(&mut builder);
        builder.build(SQ_ENTRIES)
    };
    let refused = |ring: &io::Result<IoUring>| matches!(ring, Err(err) if err.raw_os_error() == Some(libc::EINVAL));
    if defer_taskrun {
        let ring = build(|b| {
            b.setup_submit_all()
                .setup_single_issuer()
                .setup_defer_taskrun();
        });
        if !refused(&ring) {
            return ring;
        }
    }
    let ring = build(|b| {
        b.setup_submit_all().setup_coop_taskrun();
    });
    if !refused(&ring) {
        return ring;
    }
    build(|_| {})
}

/// How many connections can wait in a listener's queue: the backlog asked for, which the kernel
/// caps at `net.core.somaxconn`.
fn listen_queue(backlog: u32) -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|max| max.trim().parse::<u32>().ok())
        .map_or(backlog, |max| backlog.min(max))
}

/// Slots for a ring's registered file table: the descriptor limit (the kernel refuses a table
/// larger than it), at most [`FIXED_FILES_MAX`].
fn fixed_slots() -> u32 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the local struct.
    let current = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    };
    current.clamp(1, FIXED_FILES_MAX) as u32
}

/// A provided buffer ring: `count` entries the kernel takes buffers from, and the `count`
/// buffers of `size` bytes, both mapped here. The loop gives a buffer back by writing its entry
/// at the tail and publishing the new tail (a release store the kernel reads with acquire).
struct BufRing {
    /// `count` `io_uring_buf` entries, page-aligned; entry 0's last field is the ring's tail.
    entries: Mapping,
    /// The buffers, `count × size` bytes.
    memory: Mapping,
    size: u32,
    count: u16,
    /// The tail as written; `published` is what the kernel has been shown.
    tail: u16,
    published: u16,
    /// Buffers the kernel has filled and the loop not given back.
    out: usize,
}

impl BufRing {
    fn new(count: u16, size: u32) -> io::Result<Self> {
        debug_assert!(count.is_power_of_two() && count <= 32_768);
        let entries = Mapping::new(usize::from(count) * std::mem::size_of::<BufRingEntry>())?;
        let memory = Mapping::new(usize::from(count) * size as usize)?;
        let mut ring = Self {
            entries,
            memory,
            size,
            count,
            tail: 0,
            published: 0,
            out: usize::from(count),
        };
        for bid in 0..count {
            ring.give_back(bid);
        }
        ring.publish();
        Ok(ring)
    }

    fn address(&self, bid: u16) -> *mut u8 {
        // SAFETY: bid < count, so the offset is within the mapping.
        unsafe {
            self.memory
                .ptr
                .as_ptr()
                .add(usize::from(bid) * self.size as usize)
        }
    }

    /// The `len` bytes a receive put into buffer `bid`.
    fn received(&self, bid: u16, len: u32) -> &[u8] {
        assert!(
            bid < self.count && len <= self.size,
            "a buffer the ring never had"
        );
        // SAFETY: the kernel wrote `len` bytes there and does not touch the buffer again until
        // it is given back.
        unsafe { std::slice::from_raw_parts(self.address(bid), len as usize) }
    }

    /// Puts buffer `bid` at the tail (liburing's `io_uring_buf_ring_add`); the kernel sees it
    /// once [`BufRing::publish`] runs.
    fn give_back(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        let entries = self.entries.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: slot < count, inside the mapping. The kernel reads entries only up to the
        // published tail, and this one is past it. Only the address, length and id are written,
        // never the last field, which in entry 0 is the tail.
        let entry = unsafe { &mut *entries.add(slot) };
        entry.set_addr(self.address(bid) as u64);
        entry.set_len(self.size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.out -= 1;
    }

    /// Shows the kernel every buffer given back (liburing's `io_uring_buf_ring_advance`).
    fn publish(&mut self) {
        if self.published == self.tail {
            return;
        }
        // SAFETY: the tail is entry 0's last field, inside the mapping and 2-byte aligned; the
        // kernel only reads it.
        let tail = unsafe { BufRingEntry::tail(self.entries.ptr.as_ptr().cast()) };
        unsafe { AtomicU16::from_ptr(tail.cast_mut()) }.store(self.tail, Ordering::Release);
        self.published = self.tail;
    }
}

/// Anonymous memory mapped read-write (page-aligned, zeroed, touched only as it is used).
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh private anonymous mapping, owned by the value returned.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length and is unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The model relies on Linux copying TCP_NODELAY from a listener into what it accepts.
    #[test]
    fn accepted_connections_inherit_nodelay_from_the_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&listener)
            .set_tcp_nodelay(true)
            .unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }

    #[test]
    fn user_data_keeps_the_operation_and_the_key() {
        for op in OPS {
            for key in [0, 1, 4095, u32::MAX as usize] {
                assert_eq!(decode(user_data(op, key, 200)), (op, key));
            }
        }
    }

    #[test]
    fn the_buffer_ring_gives_back_what_it_lent_in_order() {
        let mut ring = BufRing::new(8, 64).unwrap();
        assert_eq!((ring.tail, ring.published, ring.out), (8, 8, 0));
        ring.out = 2;
        ring.give_back(5);
        ring.give_back(2);
        assert_eq!((ring.tail, ring.published, ring.out), (10, 8, 0));
        ring.publish();
        let entries = ring.entries.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: both slots are inside the 8-entry mapping.
        let (first, second) = unsafe { (&*entries, &*entries.add(1)) };
        assert_eq!((first.bid(), second.bid()), (5, 2));
        assert_eq!(first.addr(), ring.address(5) as u64);
        // SAFETY: the tail field of the mapped ring.
        let tail = unsafe { *BufRingEntry::tail(entries) };
        assert_eq!(tail, 10);
    }

    /// Every ablation step serves an echo and a half-close, and shuts down, through the trait.
    #[test]
    fn every_feature_set_echoes_and_shuts_down() {
        if IoUringServer.available().is_err() {
            eprintln!("skipped: io_uring is refused here");
            return;
        }
        for bits in 0..32u8 {
            let features = UringFeature::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .fold(UringFeatures::NONE, |set, (_, f)| set.with(f));
            let config = ServerConfig {
                uring: features,
                threads: Some(2),
                ..ServerConfig::ephemeral()
            };
            let server = IoUringServer.start(&config).unwrap();
            let mut client = std::net::TcpStream::connect(server.local_addr()).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let message = vec![7u8; 100_000];
            client.write_all(&message).unwrap();
            client.shutdown(std::net::Shutdown::Write).unwrap();
            let mut echoed = Vec::new();
            client.read_to_end(&mut echoed).unwrap();
            assert!(echoed == message, "{features}: the echo differs");
            let _idle = std::net::TcpStream::connect(server.local_addr()).unwrap();
            server.shutdown().unwrap();
        }
    }
}
