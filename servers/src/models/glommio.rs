//! `glommio`: DataDog's thread-per-core runtime on io_uring. One `LocalExecutor` per core (or
//! `--threads`), each built on its own thread (`es<id>-glommio`) with its own `SO_REUSEPORT`
//! listener; a task per connection, never leaving its executor. Nothing in glommio is `Send`:
//! executors share nothing, and shutdown reaches each through an `async-channel` it listens on.
//!
//! How glommio does socket I/O: a connection's reads and writes do not go through the ring.
//! Each is first tried as a non-blocking `recv`/`send` system call, and only when that would
//! block does glommio submit a poll for the socket to the ring and wait for its completion; an
//! accept, and a UDP receive, that would block are submitted to the ring as the operation itself
//! (`accept`, `recvmsg`). So a busy connection costs a system call per read and per write, as on
//! epoll, and the ring replaces `epoll_wait`: the executor waits on io_uring (`Driver::IoUring`),
//! with no epoll fallback. It does not spin before it parks (glommio's default).
//!
//! Cost per connection: one task and its buffer of `buffer_size` bytes (glommio's unbuffered
//! streams read straight into it). Per executor: three rings (main, latency, poll) of 128
//! entries, 64 KiB of registered I/O memory (the least glommio takes: it is for file I/O, which
//! an echo server does not do; the default is 10 MiB, pinned), and glommio's one blocking-pool
//! thread, which glommio starts itself unnamed, so it carries its executor thread's name, and
//! which ends when its executor is dropped (glommio keeps no handle to join it by: shutdown joins
//! the executors' threads, then waits for that name to be gone). What blocks:
//! nothing while tasks await; per-message work runs on the executor that owns the connection.
//!
//! Shutdown closes the channel; each executor's accept loop then ends, shuts its listener down
//! (an accept submitted to the ring holds the socket open until it completes: shutting the
//! socket down completes it and stops the listening at once), shuts down every connection it
//! accepted, which ends each task's wait as a peer's close would, and waits for those tasks,
//! within the grace, through a glommio `Gate`.
//!
//! glommio's cooperative scheduler polls its rings only between runs of its task queues, so a
//! connection whose reads never block would be read for a whole preemption period (100 ms). After
//! `READS_PER_TURN` reads a connection therefore waits on a timer, which lets the executor poll
//! its rings and run every connection that became ready before it reads again.
//!
//! The listeners are the project's (`net::bind_per_core`: backlog 4096, `SO_REUSEADDR`), adopted
//! with `TcpListener::from_raw_fd`; glommio's own `TcpListener::bind` would set `SO_REUSEPORT`
//! too but listen with a backlog of 1024. glommio 0.9's `UnixListener` cannot adopt a socket at
//! all (it only binds a path, with a backlog of 128, once, so the executors could not share it),
//! and its `UnixStream` is made only from a descriptor, which an accepted glommio `TcpStream`
//! does not give up. A Unix socket is therefore accepted through a `TcpListener` adopted the same
//! way, and each connection served as the glommio `TcpStream` it is accepted as: glommio's
//! accept, read and write are `accept`/`recv`/`send` on the descriptor (and a poll in the ring),
//! whatever the socket's family; only `set_nodelay`, TCP's own, is not called. (Handing each
//! connection to a `UnixStream` through a duplicate descriptor cost one more descriptor, so a
//! server out of descriptors dropped the connection it had just accepted.)
//!
//! Over `tls:` a connection's task wraps its stream in futures-rustls (glommio's streams are
//! futures-io streams, as async-std's and smol's are), runs the handshake on the executor that
//! accepted it under glommio's timer (the handshake timeout), flushes each echoed record, and
//! closes with `close_notify`. Shutdown reaches a TLS connection as a plain one: through its
//! descriptor, recorded before it is wrapped.
//!
//! glommio checks at start that the locked-memory limit (`RLIMIT_MEMLOCK`) is at least 512 KiB;
//! where the soft limit is lower and the hard limit allows it, `start` raises the soft limit
//! (any process may), and where the hard limit is lower the model is unavailable.
//!
//! No UDP: written as the stream path is (glommio's `UdpSocket` on each executor's own
//! `SO_REUSEPORT` socket, one receive-then-send task), it lost a datagram now and then on an
//! idle loopback (2 runs of about 20 of the datagram checks: an honest sender's datagram never
//! echoed, nothing on stderr), which no other model does; unexplained, so the model refuses
//! `udp:` rather than claim it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpListener;
use glommio::sync::Gate;
use glommio::{GlommioError, LocalExecutorBuilder, Placement};

use echo_cli::Transport;

use crate::blocking_io::join_all_within;
use crate::driver::{Driver, io_uring_refused};
use crate::net::{self, AcceptAction, StreamListener};
use crate::server::{
    EchoServer, Health, JOIN_AFTER_DRAIN, Model, READS_PER_TURN, SHUTDOWN_GRACE, ServerConfig,
    ServerHandle, ServerId, StopServer, available_cores, start_each,
};
use crate::work::EchoPath;

/// glommio's executors, one per core, each on its own thread and listener.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlommioServer;

impl EchoServer for GlommioServer {
    fn model(&self) -> Model {
        Model::Glommio
    }

    fn driver(&self) -> Driver {
        Driver::IoUring
    }

    fn available(&self) -> Result<(), String> {
        // glommio has no fallback: without io_uring, or without the locked memory its rings
        // need, there is no model.
        if let Some(why) = io_uring_refused() {
            return Err(why);
        }
        let (_, hard) = memlock_limit().map_err(|err| format!("getrlimit(MEMLOCK): {err}"))?;
        if hard < MIN_MEMLOCK {
            return Err(format!(
                "the locked-memory limit (ulimit -l) is {} KiB, glommio needs {} KiB",
                hard / 1024,
                MIN_MEMLOCK / 1024
            ));
        }
        Ok(())
    }

    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Unix, Transport::Tls]
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        if let Err(why) = self.available() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, why));
        }
        raise_memlock_soft_limit()?;
        let cores = config.threads_or(available_cores());
        // Refuses `udp:` (see the module doc).
        let (plain, tls) = net::split_tls(config)?;
        let listeners = net::bind_per_core(&plain, cores)?;
        let endpoint = net::served(listeners[0].endpoint()?, &tls);
        let tls = tls.map(|tls| {
            (
                futures_rustls::TlsAcceptor::from(tls.config()),
                tls.handshake_timeout(),
            )
        });
        let id = ServerId::next();
        let path = EchoPath::of(config);
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let executors = Executors {
            stop,
            go: Vec::new(),
            threads: Vec::new(),
            thread_name: id.thread_name(ROLE),
        };
        let mut executors = start_each(executors, listeners, |executors, listener| {
            let stopped = stopped.clone();
            let health = id.health().clone();
            let tls = tls.clone();
            // An executor is built on the thread it runs on (nothing of it may move between
            // threads); the thread says whether that worked before `start` goes on. It serves
            // only once every executor is built: one that accepted at once could take the
            // descriptors the next one's rings need, under a low descriptor limit.
            let (built, outcome) = mpsc::channel();
            let (go, all_built) = mpsc::channel::<()>();
            let thread = id.spawn_loop(ROLE, move || {
                let executor = match executor() {
                    Ok(executor) => executor,
                    Err(err) => {
                        let _ = built.send(Err(err));
                        return Ok(());
                    }
                };
                let _ = built.send(Ok(()));
                if all_built.recv().is_err() {
                    // Another executor could not be built: `start` failed.
                    return Ok(());
                }
                executor.run(serve(listener, stopped, path, health, tls))
            })?;
            executors.threads.push(thread);
            executors.go.push(go);
            outcome
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("the glommio thread died")))
        })?;
        for go in executors.go.drain(..) {
            let _ = go.send(());
        }
        Ok(ServerHandle::new(
            Model::Glommio,
            id,
            endpoint,
            Box::new(executors),
        ))
    }
}

/// The role in the executors' thread names: `es<id>-glommio`.
const ROLE: &str = "glommio";

/// The least `RLIMIT_MEMLOCK` glommio 0.9 starts an executor with.
const MIN_MEMLOCK: u64 = 512 * 1024;

/// The registered I/O memory of each executor: glommio's minimum (it rounds smaller values up to
/// 64 KiB). It serves file I/O only, and it is pinned memory.
const IO_MEMORY: usize = 64 * 1024;

/// How long a connection that has had its `READS_PER_TURN` reads waits, so that its executor
/// polls its rings before it reads again: any timer not already expired when polled does.
const TURN_PAUSE: Duration = Duration::from_micros(1);

/// An executor for the current thread: not pinned (the benchmark pins the whole process), with
/// the least registered memory.
fn executor() -> io::Result<glommio::LocalExecutor> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY)
        .make()
        .map_err(|err| io::Error::other(format!("cannot build a glommio executor: {err}")))
}

/// The soft and hard `RLIMIT_MEMLOCK`, in bytes (`u64::MAX` for unlimited).
fn memlock_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Raises the soft `RLIMIT_MEMLOCK` to glommio's minimum where it is lower and the hard limit
/// allows it: what any process may do for itself, no privilege or system setting involved.
fn raise_memlock_soft_limit() -> io::Result<()> {
    let (soft, hard) = memlock_limit()?;
    if soft >= MIN_MEMLOCK {
        return Ok(());
    }
    let limit = libc::rlimit {
        rlim_cur: MIN_MEMLOCK.min(hard),
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Accepts until shutdown, a task per connection (each in the gate, which shutdown closes and
/// waits on), then closes every connection and waits, bounded, for their tasks.
async fn serve(
    listener: StreamListener,
    stopped: async_channel::Receiver<()>,
    path: EchoPath,
    health: Health,
    tls: Option<TlsAccept>,
) -> io::Result<()> {
    let unix = matches!(listener, StreamListener::Unix(_));
    // glommio's accept first tries the system call at once, and makes the listener
    // non-blocking for it by setting O_NONBLOCK, accepting, and restoring the flags it read.
    // Those flags belong to the socket, which every executor's descriptor of a Unix listener
    // shares: one executor could restore "blocking" just before another's accept, which then
    // blocked its thread, and every connection it held, until the next client connected. A
    // listener that is non-blocking already is left non-blocking by that dance.
    let raw = match listener {
        StreamListener::Tcp(listener) => {
            listener.set_nonblocking(true)?;
            listener.into_raw_fd()
        }
        StreamListener::Unix(listener) => {
            listener.set_nonblocking(true)?;
            listener.into_raw_fd()
        }
    };
    // SAFETY: `raw` is a bound, listening stream socket whose ownership moves to the listener.
    let listener = unsafe { TcpListener::from_raw_fd(raw) };
    let open = Connections::default();
    let gate = Gate::new();
    // A listener flooded with connections never makes its accept wait, so the stop channel is
    // also checked before each one.
    while !stopped.is_closed() {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            let _ = stopped.recv().await;
            None
        })
        .await;
        let err = match accepted {
            None => break,
            Some(Ok(stream)) => {
                if !unix {
                    let _ = stream.set_nodelay(true);
                }
                let registered = open.register(stream.as_raw_fd());
                // The gate closes only once shutdown began.
                if let Ok(task) = gate.spawn(handle(stream, registered, path, tls.clone())) {
                    task.detach();
                }
                continue;
            }
            Some(Err(err)) => io_error(err),
        };
        match net::after_accept_error(&err, stopped.is_closed(), &health) {
            AcceptAction::WaitReady | AcceptAction::Next => {}
            AcceptAction::BackOff(pause) => {
                let interrupted = future::or(
                    async {
                        glommio::timer::sleep(pause).await;
                        false
                    },
                    async {
                        let _ = stopped.recv().await;
                        true
                    },
                )
                .await;
                if interrupted {
                    break;
                }
            }
            AcceptAction::Stop => {
                // The connections already accepted go on until shutdown.
                let _ = stopped.recv().await;
                break;
            }
        }
    }
    // An accept still submitted to the ring holds the socket open: shutting it down stops the
    // listening (a client's connect is refused from now on) and completes that accept.
    net::shut_down(fd(raw));
    drop(listener);
    open.shut_down_all();
    let _ = glommio::timer::timeout(SHUTDOWN_GRACE, gate.close()).await;
    Ok(())
}

/// glommio's error as the `io::Error` it wraps, so the accept policy sees the errno.
fn io_error(err: GlommioError<()>) -> io::Error {
    match err {
        GlommioError::IoError(err) => err,
        other => io::Error::from(other),
    }
}

fn fd<'a>(raw: RawFd) -> BorrowedFd<'a> {
    // SAFETY: only borrowed for a shutdown(2) while the socket is still open.
    unsafe { BorrowedFd::borrow_raw(raw) }
}

/// The descriptors of the executor's open connections, so that shutdown can shut each down: that
/// ends its task's pending read or write, and the task then ends as it would at a peer's close.
#[derive(Clone, Default)]
struct Connections {
    open: Rc<RefCell<HashMap<u64, RawFd>>>,
    next: Rc<std::cell::Cell<u64>>,
}

impl Connections {
    /// Records an open connection until the returned guard is dropped.
    fn register(&self, raw: RawFd) -> Registered {
        let key = self.next.get();
        self.next.set(key + 1);
        self.open.borrow_mut().insert(key, raw);
        Registered {
            connections: self.clone(),
            key,
        }
    }

    fn shut_down_all(&self) {
        for &raw in self.open.borrow().values() {
            net::shut_down(fd(raw));
        }
    }
}

/// A connection's entry in [`Connections`], removed when its task ends, before its socket
/// closes (so shutdown never shuts down a descriptor number reused by something else).
struct Registered {
    connections: Connections,
    key: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.open.borrow_mut().remove(&self.key);
    }
}

/// What accepts a `tls:` connection's handshake, and how long the handshake may take.
type TlsAccept = (futures_rustls::TlsAcceptor, Duration);

/// Echoes one connection until it ends or shutdown shuts it down, over TLS when `tls` is given;
/// its entry in the executor's [`Connections`] is dropped first, then the stream, which closes
/// it.
async fn handle(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    registered: Registered,
    path: EchoPath,
    tls: Option<TlsAccept>,
) {
    match tls {
        None => {
            let _ = echo(&mut stream, path, false).await;
        }
        Some((acceptor, timeout)) => {
            let handshake = async { Ok::<_, GlommioError<()>>(acceptor.accept(stream).await?) };
            if let Ok(mut stream) = glommio::timer::timeout(timeout, handshake).await
                && echo(&mut stream, path, true).await.is_ok()
            {
                // close_notify, after the client's.
                let _ = stream.close().await;
            }
        }
    }
    drop(registered);
}

/// Echoes until the peer half-closes. `write_all` completes partial writes, and while the peer
/// does not read it keeps the task from reading more (backpressure), so the connection holds one
/// buffer. After `READS_PER_TURN` reads the task pauses on a timer, so that the executor polls
/// its rings and runs the other connections before this one reads again. `flush` after each
/// echo is for a TLS stream, which may keep a record back; a plain stream's writes are sent.
async fn echo(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    path: EchoPath,
    flush: bool,
) -> io::Result<()> {
    let mut buf = vec![0; path.buffer_size];
    let mut reads = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        path.on_message(&buf[..n]);
        stream.write_all(&buf[..n]).await?;
        if flush {
            stream.flush().await?;
        }
        reads += 1;
        if reads == READS_PER_TURN {
            reads = 0;
            glommio::timer::sleep(TURN_PAUSE).await;
        }
    }
}

/// Closes the stop channel, which every executor's accept loop listens on, then joins the
/// executors' threads, and waits for glommio's own.
struct Executors {
    stop: async_channel::Sender<()>,
    /// While `start` runs, what lets each built executor begin serving; dropped unsent when
    /// `start` fails.
    go: Vec<mpsc::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The name of the executors' threads, which glommio's blocking-pool threads carry too.
    thread_name: String,
}

impl StopServer for Executors {
    fn stop(self: Box<Self>) -> io::Result<()> {
        drop(self.go);
        self.stop.close();
        let deadline = Instant::now() + JOIN_AFTER_DRAIN;
        join_all_within(self.threads, deadline)?;
        threads_gone(&self.thread_name, deadline)
    }
}

/// Waits until no thread of this process is named `name`, or `deadline`.
///
/// glommio starts each executor's blocking-pool thread itself, unnamed (so it carries the name
/// of the executor's thread, which created it), and keeps no handle to join it by; the thread
/// ends once its executor is dropped, which happens before the executor's own thread ends. Once
/// those are joined, waiting for the name to be gone is how `stop` knows that every thread the
/// server started has ended.
fn threads_gone(name: &str, deadline: Instant) -> io::Result<()> {
    // Linux keeps 15 bytes of a thread's name (the names here are ASCII).
    let name = &name[..name.len().min(15)];
    let named = || {
        std::fs::read_dir("/proc/self/task").map(|tasks| {
            tasks
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .any(|comm| comm.trim_end() == name)
        })
    };
    // Where /proc cannot be read there is nothing to wait with.
    while named().unwrap_or(false) {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "a glommio blocking-pool thread did not end within the shutdown grace period",
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}
