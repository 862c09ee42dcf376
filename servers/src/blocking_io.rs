//! What the three blocking-I/O models (`blocking`, `thread-per-connection`, `thread-pool`) share:
//! the one per-connection echo function, the accept loop with its error handling, and the
//! registry of open connections that shutdown closes, over either stream transport
//! ([`net::StreamListener`]). Only where a connection runs differs.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::net::{self, AcceptAction, Stream, StreamListener};
use crate::server::{
    Model, READS_PER_TURN, SHUTDOWN_GRACE, ServerConfig, ServerHandle, ServerId, StopServer,
};
use crate::tls::TlsServer;
use crate::work::EchoPath;

/// Echoes `stream` until the peer half-closes or the connection fails, completing every partial
/// write before reading again. Blocking in `write_all` while the peer does not read is the
/// backpressure: the server then holds at most `buf` for this client, and stops reading it.
/// Written for any blocking-style stream: `may`'s coroutine streams use it too, with
/// `take_turn` yielding the coroutine every [`READS_PER_TURN`] reads (a thread needs none: the
/// kernel preempts it).
pub(crate) fn echo(
    mut stream: impl Read + Write,
    buf: &mut [u8],
    path: EchoPath,
    take_turn: impl Fn(),
) -> io::Result<()> {
    for reads in 1usize.. {
        if reads % READS_PER_TURN == 0 {
            take_turn();
        }
        let n = match stream.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        path.on_message(&buf[..n]);
        stream.write_all(&buf[..n])?;
    }
    Ok(())
}

/// State shared by the acceptor, the connection threads and the shutdown path.
#[derive(Debug)]
pub(crate) struct BlockingState {
    id: ServerId,
    path: EchoPath,
    stopping: AtomicBool,
    /// The TLS every connection is wrapped in, for a `tls:` listener.
    tls: Option<TlsServer>,
    /// Every open connection, so shutdown can wake the threads blocked on them. Shared rather
    /// than `dup`ed: a connection must not cost two descriptors, or a server near its
    /// descriptor limit would have to drop connections it already accepted.
    open: Mutex<Slab<Arc<Stream>>>,
}

impl BlockingState {
    pub(crate) fn id(&self) -> &ServerId {
        &self.id
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Registers a just-accepted connection; `None` once shutdown has begun (the stream is
    /// then simply dropped, i.e. closed).
    fn register(self: &Arc<Self>, stream: &Arc<Stream>) -> Option<Registered> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock, so a connection is either closed by `close_all` or never served.
        if self.is_stopping() {
            return None;
        }
        Some(Registered {
            shared: Arc::clone(self),
            key: open.insert(Arc::clone(stream)),
        })
    }

    fn close_all(&self) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        self.stopping.store(true, Ordering::Release);
        for (_, stream) in open.iter() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Keeps a connection in the registry while it lives.
#[derive(Debug)]
struct Registered {
    shared: Arc<BlockingState>,
    key: usize,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
        open.try_remove(self.key);
    }
}

/// An accepted connection, registered for shutdown, ready to be served on any thread.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: Arc<Stream>,
    registered: Registered,
}

impl Conn {
    /// Echoes the connection to its end, unless shutdown began while it was queued.
    pub(crate) fn serve(self) {
        if self.registered.shared.is_stopping() {
            return;
        }
        let path = self.registered.shared.path;
        let mut buf = vec![0; path.buffer_size];
        // An error ends this connection only; there is no one to report it to.
        let _ = match &self.registered.shared.tls {
            None => echo(&*self.stream, &mut buf, path, || {}),
            Some(tls) => crate::tls::echo_blocking(
                &*self.stream,
                tls,
                |s: &&Stream, t| s.set_read_timeout(t),
                |stream| echo(stream, &mut buf, path, || {}),
            ),
        };
    }
}

/// The accept loop of a blocking model, run on the server's acceptor thread.
#[derive(Debug)]
pub(crate) struct Acceptor {
    listener: Arc<StreamListener>,
    shared: Arc<BlockingState>,
}

impl Acceptor {
    pub(crate) fn shared(&self) -> &Arc<BlockingState> {
        &self.shared
    }

    /// Accepts until shutdown (or until the listener fails), handing each connection to
    /// `on_conn`, after a failed accept doing what [`net::after_accept_error`] says.
    pub(crate) fn run(&self, mut on_conn: impl FnMut(Conn)) {
        while !self.shared.is_stopping() {
            match self.listener.accept() {
                Ok(stream) => {
                    let stream = Arc::new(stream);
                    if let Some(registered) = self.shared.register(&stream) {
                        on_conn(Conn { stream, registered });
                    }
                }
                Err(err) => match net::after_accept_error(
                    &err,
                    self.shared.is_stopping(),
                    self.shared.id.health(),
                ) {
                    AcceptAction::WaitReady | AcceptAction::Next => {}
                    AcceptAction::BackOff(pause) => std::thread::sleep(pause),
                    AcceptAction::Stop => return,
                },
            }
        }
    }
}

/// Binds the listener and runs `body` with its [`Acceptor`] on a thread named `es<id>-accept`.
/// The returned handle's shutdown closes every registered connection, wakes the acceptor and
/// joins its thread, which must itself join whatever threads `body` started.
pub(crate) fn start(
    model: Model,
    config: &ServerConfig,
    body: impl FnOnce(Acceptor) + Send + 'static,
) -> io::Result<ServerHandle> {
    start_prepared(model, config, |_| Ok(()), |acceptor, ()| body(acceptor))
}

/// As [`start`], with `prepare` run first, on the caller's thread: what the model needs
/// besides the acceptor (a pool of workers). If it fails, so does `start`, and nothing was
/// started: a server reports that it listens only once everything it serves with is running.
pub(crate) fn start_prepared<P: Send + 'static>(
    model: Model,
    config: &ServerConfig,
    prepare: impl FnOnce(&ServerId) -> io::Result<P>,
    body: impl FnOnce(Acceptor, P) + Send + 'static,
) -> io::Result<ServerHandle> {
    let (plain, tls) = net::split_tls(config)?;
    let listener = Arc::new(net::bind(&plain)?);
    let endpoint = net::served(listener.endpoint()?, &tls);
    let id = ServerId::next();
    let prepared = prepare(&id)?;
    let shared = Arc::new(BlockingState {
        id: id.clone(),
        path: EchoPath::of(config),
        stopping: AtomicBool::new(false),
        tls,
        open: Mutex::new(Slab::new()),
    });
    let acceptor = Acceptor {
        listener: Arc::clone(&listener),
        shared: Arc::clone(&shared),
    };
    let thread = id
        .thread("accept")
        .spawn(move || body(acceptor, prepared))?;
    let stop = BlockingStop {
        listener,
        shared,
        thread,
    };
    Ok(ServerHandle::new(model, id, endpoint, Box::new(stop)))
}

struct BlockingStop {
    listener: Arc<StreamListener>,
    shared: Arc<BlockingState>,
    thread: JoinHandle<()>,
}

impl StopServer for BlockingStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.shared.close_all();
        net::shut_down(&*self.listener);
        join_within(self.thread, Instant::now() + SHUTDOWN_GRACE)
    }
}

/// Joins every thread of `threads` that finishes before `deadline`; the error is the last
/// failure, if any (all are still waited for, so one stuck thread does not hide the others).
pub(crate) fn join_all_within(
    threads: impl IntoIterator<Item = JoinHandle<()>>,
    deadline: Instant,
) -> io::Result<()> {
    let mut result = Ok(());
    for thread in threads {
        if let Err(err) = join_within(thread, deadline) {
            result = Err(err);
        }
    }
    result
}

/// Joins `thread` if it finishes before `deadline`; otherwise leaves it and says so.
pub(crate) fn join_within(thread: JoinHandle<()>, deadline: Instant) -> io::Result<()> {
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "a server thread did not stop within the shutdown grace period",
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    thread
        .join()
        .map_err(|_| io::Error::other("a server thread panicked"))
}
