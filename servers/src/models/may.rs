//! `may`: stackful coroutines, one per connection, on the `may` runtime's scheduler (a worker
//! thread per core, process-wide like async-std's executor). The code is the blocking models'
//! own: the accept loop and the echo read and write as if they blocked, and `may`'s sockets
//! turn each would-block into a switch to another coroutine, resumed from its epoll loop. So the
//! echo is literally the blocking models' function (`blocking_io::echo`).
//!
//! Cost per connection: one coroutine with its own stack (`may`'s default, a few KiB touched of
//! a larger reservation) and its buffer; a switch between coroutines is a register swap in user
//! space, cheaper than a thread's context switch. What blocks: nothing, as long as code yields
//! only through `may`'s own I/O and sleep; per-message work runs on the worker that runs the
//! coroutine. `may` asks its users to promise that coroutines do not keep thread-local state
//! across a switch (a coroutine can resume on another worker); this model's code keeps none.
//!
//! The accept loop runs on a thread of the server's own (`es<id>-accept`): `may`'s accept blocks
//! a plain thread as it would a coroutine, and each accepted connection gets a coroutine.
//! Over `tls:` that coroutine runs the blocking models' TLS path too (`tls::echo_blocking`: the
//! handshake, then `rustls::StreamOwned`), its deadline the socket's read timeout.
//!
//! Shutdown: a listening socket shut down fails its pending `accept`, which ends the accept
//! loop; every registered connection is shut down, which ends its coroutine's read; shutdown
//! then joins the thread and waits for the coroutines. The workers are `may`'s, shared by the process and never stopped; their
//! number is set by the first `may` server of the process.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use echo_cli::{Endpoint, Transport};
use may::net::TcpListener;
use may::os::unix::net::UnixListener;
use slab::Slab;

use crate::blocking_io;
use crate::net::{self, AcceptAction, StreamListener};
use crate::server::{
    EchoServer, Health, Model, SHUTDOWN_GRACE, ServerConfig, ServerHandle, ServerId, StopServer,
    available_cores,
};
use crate::tls::TlsServer;
use crate::work::EchoPath;

/// Stackful coroutines on `may`, one per connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct MayServer;

impl EchoServer for MayServer {
    fn model(&self) -> Model {
        Model::May
    }

    fn driver(&self) -> crate::driver::Driver {
        crate::driver::Driver::Epoll
    }

    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Unix, Transport::Tls]
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        // `may` reads its worker count once, when its scheduler starts.
        static WORKERS: Once = Once::new();
        WORKERS.call_once(|| {
            may::config().set_workers(config.threads_or(available_cores()));
        });
        let (plain, tls) = net::split_tls(config)?;
        let std_listener = net::bind(&plain)?;
        let endpoint = net::served(std_listener.endpoint()?, &tls);
        // The accept loop is generic over `may`'s two listener types, one per stream transport.
        match std_listener {
            StreamListener::Tcp(l) => start_on(adopt::<TcpListener>(l), config, endpoint, tls),
            StreamListener::Unix(l) => start_on(adopt::<UnixListener>(l), config, endpoint, tls),
        }
    }
}

/// `may`'s listener over a bound std listener's descriptor.
fn adopt<L: FromRawFd>(listener: impl IntoRawFd) -> Arc<L> {
    // SAFETY: the descriptor comes from `into_raw_fd`, so this listener is its only owner. It
    // is shared by the accept loop and the stop, which shuts it down: it stays open until both
    // are done.
    Arc::new(unsafe { L::from_raw_fd(listener.into_raw_fd()) })
}

/// A `may` listener of either stream transport.
trait Accept: AsRawFd + Send + Sync + 'static {
    type Stream: io::Read + io::Write + AsRawFd + ReadTimeout + Send + 'static;

    /// Accepts one connection, Nagle off for TCP.
    fn accept_one(&self) -> io::Result<Self::Stream>;

    /// Wakes the accept loop once `stopping` is set. A TCP listener shut down fails the pending
    /// accept. A Unix one does not (`may`'s non-blocking accept keeps saying "again"), so the
    /// loop is woken by one last connection, which it closes unserved.
    fn wake(&self);
}

impl Accept for TcpListener {
    type Stream = may::net::TcpStream;

    fn accept_one(&self) -> io::Result<Self::Stream> {
        let (stream, _) = self.accept()?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    fn wake(&self) {
        shut_down(self.as_raw_fd());
    }
}

/// A Unix connection is served through `may`'s `TcpStream` type, not its `UnixStream`.
///
/// Why: `may`'s `UnixStream` (its generic `CoIo` wrapper) loses read wake-ups under CPU
/// contention: with two busy loops beside the server, the 64-client conformance check stalled
/// (an echo never came back) in 9 of 25 runs over a Unix socket, against 0 of 20 with this, and
/// 0 of 12 over TCP. `may`'s `TcpStream` reads and writes with the plain socket calls, which work
/// on any stream socket; nothing TCP-only (`set_nodelay`) is called on a Unix connection.
impl Accept for UnixListener {
    type Stream = may::net::TcpStream;

    fn accept_one(&self) -> io::Result<Self::Stream> {
        let (stream, _) = self.accept()?;
        // `into_raw_fd` takes the descriptor out of `may`'s selector (synchronously), and
        // `from_raw_fd` registers it again for the TcpStream.
        let fd = stream.into_raw_fd();
        // SAFETY: `fd` comes from `into_raw_fd`, so the new stream is its only owner.
        Ok(unsafe { may::net::TcpStream::from_raw_fd(fd) })
    }

    fn wake(&self) {
        if let Some(path) = self
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Into::into))
        {
            let _ = std::os::unix::net::UnixStream::connect::<std::path::PathBuf>(path);
        }
    }
}

/// Starts the accept loop on `listener` and returns the running server's handle.
fn start_on<L: Accept>(
    listener: Arc<L>,
    config: &ServerConfig,
    endpoint: Endpoint,
    tls: Option<TlsServer>,
) -> io::Result<ServerHandle> {
    {
        let id = ServerId::next();
        let shared = Arc::new(MayState {
            health: id.health().clone(),
            path: EchoPath::of(config),
            tls,
            stopping: AtomicBool::new(false),
            open: Mutex::new(Slab::new()),
            live: AtomicUsize::new(0),
        });
        // The accept loop runs on a thread of the server's own (`may`'s calls block a plain
        // thread as they would a coroutine); the connections run as coroutines.
        let acceptor = {
            let shared = Arc::clone(&shared);
            let listener = Arc::clone(&listener);
            id.thread("accept")
                .spawn(move || accept_loop(listener, shared))?
        };
        Ok(ServerHandle::new(
            Model::May,
            id,
            endpoint,
            Box::new(MayStop {
                listener,
                shared,
                acceptor,
            }),
        ))
    }
}

/// What the accept loop, the connections and shutdown share.
struct MayState {
    /// Told if the accept loop's listener fails while the server runs.
    health: Health,
    path: EchoPath,
    /// The TLS every connection is wrapped in, for a `tls:` listener.
    tls: Option<TlsServer>,
    stopping: AtomicBool,
    /// The descriptor of every open connection, so shutdown can end its coroutine's read. A
    /// descriptor is removed (under the lock) before its stream closes it ([`Connection`]), so
    /// one found here is never another file's.
    open: Mutex<Slab<RawFd>>,
    /// Connection coroutines still running.
    live: AtomicUsize,
}

impl MayState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slab<RawFd>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

fn accept_loop(listener: Arc<impl Accept>, shared: Arc<MayState>) {
    while !shared.stopping() {
        match listener.accept_one() {
            Ok(stream) => {
                let stack = shared.tls.as_ref().map(|_| TLS_STACK_WORDS);
                serve(stream, &shared, |job| spawn_coroutine(job, stack));
            }
            Err(err) => match net::after_accept_error(&err, shared.stopping(), &shared.health) {
                AcceptAction::WaitReady | AcceptAction::Next => {}
                AcceptAction::BackOff(pause) => std::thread::sleep(pause),
                AcceptAction::Stop => return,
            },
        }
    }
}

/// A registered connection: its descriptor is in the registry for as long as the stream is
/// open. Dropping it (when its coroutine ends, or when the coroutine could not be spawned and
/// the closure holding it is dropped unrun) removes the registration first and closes the
/// stream after, so `stop` never shuts down a descriptor number the kernel has already given
/// to another file.
struct Connection<S> {
    stream: Option<S>,
    key: usize,
    shared: Arc<MayState>,
}

impl<S> Drop for Connection<S> {
    fn drop(&mut self) {
        self.shared.lock().try_remove(self.key);
        drop(self.stream.take());
        self.shared.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long a finished connection's coroutine keeps its stream (shut down already) before
/// dropping it: far longer than the window of `may`'s race it works around (see `serve`).
const LINGER_BEFORE_DROP: Duration = Duration::from_millis(10);

/// A job for a connection's coroutine.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The stack of a TLS connection's coroutine, in words (256 KiB): `may`'s default of 32 KiB
/// overflows in rustls's handshake (the server said "coroutine has overflowed its stack" at the
/// first ClientHello). A stack is reserved, and only what is touched takes memory.
const TLS_STACK_WORDS: usize = 0x8000;

/// Runs `job` on a new `may` coroutine, with a stack of `stack_words` if given (`may`'s default
/// otherwise).
fn spawn_coroutine(job: Job, stack_words: Option<usize>) -> io::Result<()> {
    let mut builder = may::coroutine::Builder::new();
    if let Some(words) = stack_words {
        builder = builder.stack_size(words);
    }
    // SAFETY: `may` requires that a coroutine keep no thread-local state across a switch,
    // since it may resume on another worker; the echo keeps none.
    unsafe { builder.spawn(job) }.map(drop)
}

/// What the TLS handshake needs of a `may` stream: its deadline is the socket's read timeout,
/// which `may` keeps per socket and honours in the coroutine's wait.
trait ReadTimeout {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl ReadTimeout for may::net::TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        may::net::TcpStream::set_read_timeout(self, timeout)
    }
}

/// Registers `stream` and echoes it on a coroutine of its own, started by `spawn`, over TLS for a
/// `tls:` listener (the handshake on that coroutine).
fn serve<S>(stream: S, shared: &Arc<MayState>, spawn: impl FnOnce(Job) -> io::Result<()>)
where
    S: io::Read + io::Write + AsRawFd + ReadTimeout + Send + 'static,
{
    let key = {
        let mut open = shared.lock();
        // Checked under the lock: a connection is either shut down by `stop` or never served.
        if shared.stopping() {
            return;
        }
        let key = open.insert(stream.as_raw_fd());
        shared.live.fetch_add(1, Ordering::AcqRel);
        key
    };
    let mut connection = Connection {
        stream: Some(stream),
        key,
        shared: Arc::clone(shared),
    };
    // If spawning fails, the job is dropped unrun and with it the connection, registration
    // first; an error there ends this connection only.
    let _ = spawn(Box::new(move || {
        let path = connection.shared.path;
        let mut buf = vec![0; path.buffer_size];
        if let Some(stream) = connection.stream.as_mut() {
            let fd = stream.as_raw_fd();
            // An error ends this connection only.
            // The turn is a `yield_now`, which is all it can be here: may polls for I/O only when
            // its run queue is empty, so on one worker a coroutine that always has input is run
            // again at once and the others' readiness waits (what the busy one-thread fairness
            // test shows). Taking the turn with a 1 ns sleep instead lets the others in, but then
            // a read now and then fails at once and ends its connection (1 in 8 runs of the
            // 64-client check): a sleep leaves its timeout behind for the next I/O call.
            let _ = match &connection.shared.tls {
                None => blocking_io::echo(stream, &mut buf, path, may::coroutine::yield_now),
                Some(tls) => crate::tls::echo_blocking(
                    stream,
                    tls,
                    |s: &&mut S, t| s.set_read_timeout(t),
                    |stream| blocking_io::echo(stream, &mut buf, path, may::coroutine::yield_now),
                ),
            };
            // The peer sees the close now; the stream itself is dropped a little later. may
            // 0.3.51 has a race: a worker that parks this coroutine on a read publishes it and
            // then reads the socket's state, and another worker may in between run the
            // coroutine, which could finish and free that state first (CI's SIGSEGV in
            // `socket_read::subscribe`, reading address 0x20, twice in eight runs of
            // tests/workloads.rs). Lingering keeps the state alive past that window.
            shut_down(fd);
            may::coroutine::sleep(LINGER_BEFORE_DROP);
        }
    }));
}

struct MayStop<L> {
    listener: Arc<L>,
    shared: Arc<MayState>,
    acceptor: std::thread::JoinHandle<()>,
}

fn shut_down(fd: RawFd) {
    // SAFETY: the descriptor is open: the listener is held by the stop itself, a connection
    // while it is registered (checked under the registry's lock).
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Both);
}

impl<L: Accept> StopServer for MayStop<L> {
    fn stop(self: Box<Self>) -> io::Result<()> {
        {
            let open = self.shared.lock();
            self.shared.stopping.store(true, Ordering::Release);
            for (_, &fd) in open.iter() {
                shut_down(fd);
            }
        }
        self.listener.wake();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        blocking_io::join_within(self.acceptor, deadline)?;
        while self.shared.live.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return Err(io::Error::other(
                    "may coroutines did not stop within the shutdown grace period",
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<MayState> {
        Arc::new(MayState {
            health: Health::default(),
            path: EchoPath::of(&ServerConfig::default()),
            tls: None,
            stopping: AtomicBool::new(false),
            open: Mutex::new(Slab::new()),
            live: AtomicUsize::new(0),
        })
    }

    /// A connected loopback stream (its peer is returned too, to keep it open).
    fn stream() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (server, client)
    }

    /// A stream that, when it closes, records whether its descriptor was still registered:
    /// the moment a registered descriptor could be another file's.
    struct Probe {
        stream: std::net::TcpStream,
        shared: Arc<MayState>,
        registered_at_close: Arc<Mutex<Option<bool>>>,
    }

    impl io::Read for Probe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.stream.read(buf)
        }
    }

    impl io::Write for Probe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.stream.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.stream.flush()
        }
    }

    impl ReadTimeout for Probe {
        fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
            self.stream.set_read_timeout(timeout)
        }
    }

    impl AsRawFd for Probe {
        fn as_raw_fd(&self) -> RawFd {
            self.stream.as_raw_fd()
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            let fd = self.stream.as_raw_fd();
            let registered = self.shared.lock().iter().any(|(_, &f)| f == fd);
            *self.registered_at_close.lock().unwrap() = Some(registered);
        }
    }

    fn probe(shared: &Arc<MayState>) -> (Probe, Arc<Mutex<Option<bool>>>, std::net::TcpStream) {
        let (server, client) = stream();
        let seen = Arc::new(Mutex::new(None));
        let probe = Probe {
            stream: server,
            shared: Arc::clone(shared),
            registered_at_close: Arc::clone(&seen),
        };
        (probe, seen, client)
    }

    #[test]
    fn a_connection_whose_coroutine_cannot_start_is_deregistered_before_its_descriptor_closes() {
        let shared = shared();
        let (probe, seen, _client) = probe(&shared);
        // The spawn fails: the job, holding the stream, is dropped unrun.
        serve(probe, &shared, |job| {
            drop(job);
            Err(io::Error::other("no coroutine for you"))
        });
        assert_eq!(
            *seen.lock().unwrap(),
            Some(false),
            "the descriptor was still registered when it closed: stop could shut down another \
             file that reuses its number"
        );
        assert!(shared.lock().is_empty());
        assert_eq!(shared.live.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_served_connection_is_registered_until_its_coroutine_ends() {
        let shared = shared();
        let (server, seen, client) = probe(&shared);
        let fd = server.as_raw_fd();
        let mut job = None;
        serve(server, &shared, |j| {
            job = Some(j);
            Ok(())
        });
        assert_eq!(
            shared.lock().iter().map(|(_, &f)| f).collect::<Vec<_>>(),
            [fd]
        );
        assert_eq!(shared.live.load(Ordering::Acquire), 1);
        // The peer closes: the echo reads EOF and the job ends, deregistering the connection.
        drop(client);
        (job.expect("spawned"))();
        assert_eq!(
            *seen.lock().unwrap(),
            Some(false),
            "deregistered before it closed"
        );
        assert!(shared.lock().is_empty());
        assert_eq!(shared.live.load(Ordering::Acquire), 0);
    }
}
