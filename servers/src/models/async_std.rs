//! `async-std`: one task per connection on async-std's global executor (a thread per core, shared
//! by the whole process). async-std is discontinued upstream (its authors point to smol); it is
//! pinned to its last release so this model keeps building.
//!
//! The accept loop (shared with `smol`, see `futures_io.rs`) runs in `task::block_on` on a thread
//! of the server's own; handlers are `task::spawn`ed onto the global executor.
//!
//! Cost per connection: one task and its read buffer. What blocks: nothing; a parked task costs
//! no thread, but per-message work runs on the executor thread that polls the task, delaying the
//! tasks queued behind it. The executor's threads are global, so they outlive a server; they are
//! reused by the next one, not leaked.
//!
//! Over `tls:` the handshake runs on the connection's task, through futures-rustls (the shared
//! `futures_io::serve`).

use std::io;
use std::time::{Duration, Instant};

use async_channel::Sender;
use async_std::net::{TcpListener, TcpStream};
use async_std::os::unix::net::{UnixListener, UnixStream};
use async_std::task;
use futures_lite::Future;

use crate::blocking_io::join_within;
use crate::futures_io::{Either, Listener, Runtime, accept_loop};
use crate::net::{self, StreamListener};
use crate::server::{
    EchoServer, JOIN_AFTER_DRAIN, Model, ServerConfig, ServerHandle, ServerId, StopServer,
};
use crate::work::EchoPath;
use echo_cli::Transport;

/// async-std, a task per connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdServer;

impl EchoServer for AsyncStdServer {
    fn model(&self) -> Model {
        Model::AsyncStd
    }

    fn driver(&self) -> crate::driver::Driver {
        crate::driver::Driver::Epoll
    }

    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Unix, Transport::Tls]
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        let (plain, tls) = net::split_tls(config)?;
        let (std_listener, endpoint) = net::bind_nonblocking(&plain)?;
        let endpoint = net::served(endpoint, &tls);
        let listener = AsyncStd::listener(std_listener)?;
        let id = ServerId::next();
        let (notify_shutdown, shutdown) = async_channel::bounded::<()>(1);
        let path = EchoPath::of(config);
        let health = id.health().clone();
        let thread = id.thread("accept").spawn(move || {
            task::block_on(accept_loop(AsyncStd, listener, shutdown, path, health, tls));
        })?;
        Ok(ServerHandle::new(
            Model::AsyncStd,
            id,
            endpoint,
            Box::new(AsyncStdStop {
                notify_shutdown,
                thread,
            }),
        ))
    }
}

/// async-std's global executor and reactor.
struct AsyncStd;

impl Runtime for AsyncStd {
    type TcpListener = TcpListener;
    type UnixListener = UnixListener;
    type Stream = Either<TcpStream, UnixStream>;

    fn listener(listener: StreamListener) -> io::Result<Listener<TcpListener, UnixListener>> {
        Ok(match listener {
            StreamListener::Tcp(l) => Listener::Tcp(TcpListener::from(l)),
            StreamListener::Unix(l) => Listener::Unix(UnixListener::from(l)),
        })
    }

    async fn accept(listener: &Listener<TcpListener, UnixListener>) -> io::Result<Self::Stream> {
        match listener {
            Listener::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok(Either::Left(stream))
            }
            Listener::Unix(listener) => Ok(Either::Right(listener.accept().await?.0)),
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        // Dropping async-std's JoinHandle detaches the task.
        drop(task::spawn(task));
    }

    async fn sleep(duration: Duration) {
        task::sleep(duration).await;
    }
}

struct AsyncStdStop {
    notify_shutdown: Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl StopServer for AsyncStdStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.notify_shutdown.close();
        join_within(self.thread, Instant::now() + JOIN_AFTER_DRAIN)
    }
}
