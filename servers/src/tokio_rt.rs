//! `tokio`: tokio's multi-thread, work-stealing runtime (one worker per core by default), one task
//! per connection. Shaped like mini-redis's server: a listener with a run loop, a handler task per
//! connection, accept retried with backoff, and a graceful shutdown that waits for every handler.
//!
//! Cost per connection: one task (a few hundred bytes) and its read buffer. What blocks: nothing;
//! a task parked on a socket costs no thread, and idle workers steal runnable tasks from busy
//! ones. Per message it pays a wake-up through the runtime's I/O driver and scheduler.

use std::io;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blocking_io::join_within;
use crate::net::{self, ACCEPT_BACKOFF, ACCEPT_LOG, AcceptError};
use crate::server::{
    EchoServer, Model, SHUTDOWN_GRACE, ServerConfig, ServerHandle, ServerId, Stop, available_cores,
};

/// tokio's multi-thread runtime, a task per connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioServer;

impl EchoServer for TokioServer {
    fn model(&self) -> Model {
        Model::Tokio
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        let (std_listener, local_addr) = net::bind_nonblocking(config)?;
        let id = ServerId::next();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads_or(available_cores()))
            .thread_name(id.thread_name("tokio"))
            .enable_io()
            .enable_time()
            .build()?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let shutdown = CancellationToken::new();
        let server = Listener::new(listener, shutdown.clone(), config.buffer_size);
        // The runtime is driven, and dropped (joining its workers), on a thread of our own, so
        // shutdown never has to block inside whatever context the caller is in.
        let thread = id.thread("rt").spawn(move || {
            runtime.block_on(server.run());
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
        })?;
        Ok(ServerHandle::new(
            Model::Tokio,
            id,
            local_addr,
            Box::new(TokioStop { shutdown, thread }),
        ))
    }
}

/// The accept loop's state; also the accept loop of each runtime of `tokio-current-thread`.
pub(crate) struct Listener {
    listener: TcpListener,
    /// Cancelled by [`ServerHandle::shutdown`]; the accept loop and every handler watch it.
    shutdown: CancellationToken,
    /// Every handler task, so shutdown can wait until each has closed its connection.
    handlers: TaskTracker,
    buffer_size: usize,
}

impl Listener {
    /// A listener over `listener` (already registered with the current runtime), stopped by
    /// `shutdown`.
    pub(crate) fn new(
        listener: TcpListener,
        shutdown: CancellationToken,
        buffer_size: usize,
    ) -> Self {
        Self {
            listener,
            shutdown,
            handlers: TaskTracker::new(),
            buffer_size: buffer_size.max(1),
        }
    }

    /// Accepts until shutdown, then waits (bounded) for every handler to finish.
    pub(crate) async fn run(self) {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = self.shutdown.cancelled() => break,
            };
            match accepted {
                Ok((socket, _)) => {
                    let _ = socket.set_nodelay(true);
                    let shutdown = self.shutdown.clone();
                    let buffer_size = self.buffer_size;
                    self.handlers.spawn(async move {
                        // The handler ends at EOF, on an error, or at shutdown; dropping the
                        // socket closes it.
                        tokio::select! {
                            _ = echo(socket, buffer_size) => {}
                            () = shutdown.cancelled() => {}
                        }
                    });
                }
                Err(err) => match AcceptError::classify(&err) {
                    AcceptError::WouldBlock | AcceptError::Connection => {}
                    AcceptError::Resource | AcceptError::Fatal => {
                        ACCEPT_LOG.accept_error(&err, ACCEPT_BACKOFF);
                        tokio::select! {
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                            () = self.shutdown.cancelled() => break,
                        }
                    }
                },
            }
        }
        drop(self.listener);
        self.handlers.close();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.handlers.wait()).await;
    }
}

/// Echoes until the peer half-closes; `write_all` completes partial writes and, while the peer
/// does not read, keeps the task from reading more (backpressure).
async fn echo(mut socket: TcpStream, buffer_size: usize) -> io::Result<()> {
    let mut buf = vec![0; buffer_size];
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        socket.write_all(&buf[..n]).await?;
    }
}

struct TokioStop {
    shutdown: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

impl Stop for TokioStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.shutdown.cancel();
        // The thread waits up to the grace period for handlers, then for the runtime.
        join_within(
            self.thread,
            Instant::now() + SHUTDOWN_GRACE * 2 + SHUTDOWN_GRACE / 2,
        )
    }
}
