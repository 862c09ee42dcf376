//! `io-uring`: completion-based I/O through tokio-uring, thread-per-core. One thread per core
//! (`es<id>-uring`), each with its own tokio-uring runtime (a current-thread tokio runtime whose
//! I/O goes through an io_uring ring instead of epoll) and its own `SO_REUSEPORT` listener; a
//! task per connection, never leaving its thread.
//!
//! Why tokio-uring: of the maintained io_uring runtimes it builds here with no system setup
//! (glommio needs a locked-memory limit far above the default; monoio brings a second runtime
//! ecosystem), and it runs on tokio, so the shutdown is the `tokio` model's: a
//! `CancellationToken` watched by the accept loop and every handler, and a `TaskTracker` that
//! shutdown waits on.
//!
//! What differs from readiness I/O: a read is submitted to the kernel with the buffer it will
//! fill, and the task is woken when the bytes are already in it (one completion instead of a
//! readiness event plus a `read` system call). The buffer therefore belongs to the kernel while
//! the operation is in flight: it moves into each call and comes back with the result. An
//! operation dropped in flight keeps its buffer and its socket alive until the kernel completes
//! it, so shutdown first shuts every socket down, which completes the pending operation at once,
//! and awaits it.
//!
//! Cost per connection: one task and its buffer, as `tokio-current-thread`. What blocks: nothing;
//! per-message work runs on the thread that owns the connection. Where the kernel refuses
//! io_uring (old kernels, seccomp profiles such as Docker's default), the model reports itself
//! unavailable ([`EchoServer::available`]) and the tools skip it.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Instant;

use tokio_uring::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blocking_io::join_all_within;
use crate::net;
use crate::server::{
    EchoServer, JOIN_AFTER_DRAIN, Model, SHUTDOWN_GRACE, ServerConfig, ServerHandle, ServerId, StopServer,
    available_cores, start_each,
};
use crate::models::tokio::after_accept_error;
use crate::work::EchoPath;

/// Testing aid: set to make this model report itself unavailable, as on a kernel that refuses
/// io_uring, so the tools' skipping can be checked on a machine that allows it.
pub const DISABLE_ENV: &str = "ECHO_SERVERS_DISABLE_IO_URING";

/// io_uring via tokio-uring, a runtime per core.
#[derive(Debug, Clone, Copy, Default)]
pub struct IoUringServer;

impl EchoServer for IoUringServer {
    fn model(&self) -> Model {
        Model::IoUring
    }

    fn available(&self) -> Result<(), String> {
        if std::env::var_os(DISABLE_ENV).is_some() {
            return Err(format!("io_uring disabled by {DISABLE_ENV}"));
        }
        // The kernel's answer does not change while the process runs.
        static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
        PROBE
            .get_or_init(|| {
                io_uring::IoUring::new(8)
                    .map(drop)
                    .map_err(|err| format!("the kernel refuses io_uring: {err}"))
            })
            .clone()
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        if let Err(why) = self.available() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, why));
        }
        let listeners = net::bind_reuse_port(config, config.threads_or(available_cores()))?;
        let local_addr = listeners[0].local_addr()?;
        let id = ServerId::next();
        let path = EchoPath::of(config);
        let stop = UringStop {
            shutdown: CancellationToken::new(),
            threads: Vec::new(),
        };
        let stop = start_each(stop, listeners, |stop, listener| {
            let shutdown = stop.shutdown.clone();
            // The runtime is built on its own thread (it cannot move between threads); the
            // thread reports whether that worked before `start` returns.
            let (started, outcome) = mpsc::channel();
            let thread = id.thread("uring").spawn(move || {
                let runtime = match tokio_uring::Runtime::new(&tokio_uring::builder()) {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = started.send(Err(err));
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                runtime.block_on(serve(listener, shutdown, path));
            })?;
            stop.threads.push(thread);
            outcome
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("the io_uring thread died")))
        })?;
        Ok(ServerHandle::new(
            Model::IoUring,
            id,
            local_addr,
            Box::new(stop),
        ))
    }
}

/// Accepts until shutdown, a task per connection, then waits (bounded) for every handler.
///
/// An operation dropped while the kernel still holds it keeps its socket open until it
/// completes, so nothing here is dropped in flight: at shutdown each socket is shut down first,
/// which makes the kernel complete its pending accept, read or write at once, and the operation
/// is then awaited to its end.
async fn serve(listener: std::net::TcpListener, shutdown: CancellationToken, path: EchoPath) {
    let listener = TcpListener::from_std(listener);
    let handlers = TaskTracker::new();
    loop {
        let accept = listener.accept();
        tokio::pin!(accept);
        let accepted = tokio::select! {
            accepted = &mut accept => accepted,
            () = shutdown.cancelled() => {
                // A listening socket shut down fails its pending accept (EINVAL).
                shut_down(listener.as_raw_fd());
                // A connection accepted in the meantime is dropped, that is closed.
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, accept).await;
                break;
            }
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let shutdown = shutdown.clone();
                handlers.spawn_local(async move {
                    let stream = Rc::new(stream);
                    let echo = echo(Rc::clone(&stream), path);
                    tokio::pin!(echo);
                    tokio::select! {
                        _ = &mut echo => {}
                        () = shutdown.cancelled() => {
                            let _ = stream.shutdown(Shutdown::Both);
                            let _ = tokio::time::timeout(SHUTDOWN_GRACE, echo).await;
                        }
                    }
                });
            }
            Err(err) => {
                if after_accept_error(&err, &shutdown).await {
                    break;
                }
            }
        }
    }
    drop(listener);
    handlers.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, handlers.wait()).await;
}

fn shut_down(fd: std::os::fd::RawFd) {
    // SAFETY: the caller's socket owns the descriptor and outlives this call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let _ = socket2::SockRef::from(&fd).shutdown(Shutdown::Both);
}

/// Echoes until the peer half-closes. The buffer moves into each operation and comes back with
/// its result; `write_all` completes partial writes, and while the peer does not read, the
/// pending write keeps the task from reading more (backpressure).
async fn echo(stream: Rc<TcpStream>, path: EchoPath) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(path.buffer_size);
    loop {
        // tokio-uring reads into the vector's spare capacity, after its length.
        buf.clear();
        let (read, filled) = stream.read(buf).await;
        buf = filled;
        if read? == 0 {
            return Ok(());
        }
        path.on_message(&buf);
        let (written, sent) = stream.write_all(buf).await;
        buf = sent;
        written?;
    }
}

/// Cancels every thread's accept loop and handlers, then joins the threads.
struct UringStop {
    shutdown: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl StopServer for UringStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.shutdown.cancel();
        let deadline = Instant::now() + JOIN_AFTER_DRAIN;
        join_all_within(self.threads, deadline)
    }
}
