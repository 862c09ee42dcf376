//! `async-std`: one task per connection on async-std's global executor (a thread per core, shared
//! by the whole process). async-std is discontinued upstream (its authors point to smol); it is
//! pinned to its last release so this model keeps building.
//!
//! The accept loop runs in `task::block_on` on a thread of the server's own; handlers are
//! `task::spawn`ed. Shutdown follows mini-redis: closing a channel tells every task to stop, and
//! each task holds a sender of a second channel that the accept loop waits on until all are gone.
//!
//! Cost per connection: one task and its read buffer. What blocks: nothing; a parked task costs
//! no thread. The executor's threads are global, so they outlive a server; they are reused by the
//! next one, not leaked.

use std::io;
use std::time::Instant;

use async_std::channel::{self, Receiver, Sender};
use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use futures_lite::future;

use crate::blocking_io::join_within;
use crate::net::{self, ACCEPT_BACKOFF, ACCEPT_LOG, AcceptError};
use crate::server::{
    EchoServer, Model, SHUTDOWN_GRACE, ServerConfig, ServerHandle, ServerId, Stop,
};

/// async-std, a task per connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdServer;

impl EchoServer for AsyncStdServer {
    fn model(&self) -> Model {
        Model::AsyncStd
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        let (std_listener, local_addr) = net::bind_nonblocking(config)?;
        let id = ServerId::next();
        let (notify_shutdown, shutdown) = channel::bounded::<()>(1);
        let buffer_size = config.buffer_size.max(1);
        let thread = id.thread("accept").spawn(move || {
            task::block_on(accept_loop(
                TcpListener::from(std_listener),
                shutdown,
                buffer_size,
            ));
        })?;
        Ok(ServerHandle::new(
            Model::AsyncStd,
            id,
            local_addr,
            Box::new(AsyncStdStop {
                notify_shutdown,
                thread,
            }),
        ))
    }
}

/// Resolves once shutdown has been signalled (the channel is closed, so `recv` fails).
async fn shutdown_signalled(shutdown: &Receiver<()>) {
    let _ = shutdown.recv().await;
}

async fn accept_loop(listener: TcpListener, shutdown: Receiver<()>, buffer_size: usize) {
    // Every handler holds a clone; when all are dropped, `recv` on `all_done` fails.
    let (handler_alive, all_done) = channel::bounded::<()>(1);
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            shutdown_signalled(&shutdown).await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        match accepted {
            Ok((socket, _)) => {
                let _ = socket.set_nodelay(true);
                let shutdown = shutdown.clone();
                let alive: Sender<()> = handler_alive.clone();
                task::spawn(async move {
                    future::or(
                        async {
                            let _ = echo(socket, buffer_size).await;
                        },
                        shutdown_signalled(&shutdown),
                    )
                    .await;
                    drop(alive);
                });
            }
            Err(err) => match AcceptError::classify(&err) {
                AcceptError::WouldBlock | AcceptError::Connection => {}
                AcceptError::Resource | AcceptError::Fatal => {
                    ACCEPT_LOG.accept_error(&err, ACCEPT_BACKOFF);
                    let stopped = future::or(
                        async {
                            task::sleep(ACCEPT_BACKOFF).await;
                            false
                        },
                        async {
                            shutdown_signalled(&shutdown).await;
                            true
                        },
                    )
                    .await;
                    if stopped {
                        break;
                    }
                }
            },
        }
    }
    drop(listener);
    drop(handler_alive);
    let _ = async_std::future::timeout(SHUTDOWN_GRACE, all_done.recv()).await;
}

/// Echoes until the peer half-closes; `write_all` completes partial writes and applies
/// backpressure to a peer that does not read.
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

struct AsyncStdStop {
    notify_shutdown: Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Stop for AsyncStdStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.notify_shutdown.close();
        join_within(
            self.thread,
            Instant::now() + SHUTDOWN_GRACE + SHUTDOWN_GRACE / 2,
        )
    }
}
