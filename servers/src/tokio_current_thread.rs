//! `tokio-current-thread`: thread-per-core with tokio. One current-thread runtime per core (or
//! `--threads`), each on its own thread with its own listener on the same port through
//! `SO_REUSEPORT`; the kernel spreads connections, and a task never leaves its runtime. The
//! accept loop and handlers are the `tokio` model's ([`crate::tokio_rt::Listener`]).
//!
//! Cost per connection: one task and its read buffer. What blocks: nothing on one runtime while
//! its tasks yield; but there is no work stealing, so a busy runtime cannot hand work to an idle
//! one. In exchange there are no cross-thread wake-ups.

use std::io;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::blocking_io::join_within;
use crate::net;
use crate::server::{
    EchoServer, Model, SHUTDOWN_GRACE, ServerConfig, ServerHandle, ServerId, Stop, available_cores,
};
use crate::tokio_rt::Listener;

/// A current-thread tokio runtime per core behind SO_REUSEPORT.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioCurrentThread;

impl EchoServer for TokioCurrentThread {
    fn model(&self) -> Model {
        Model::TokioCurrentThread
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        let listeners = net::bind_reuse_port(config, config.threads_or(available_cores()))?;
        let local_addr = listeners[0].local_addr()?;
        let id = ServerId::next();
        let shutdown = CancellationToken::new();
        let mut stop = RuntimesStop {
            shutdown: shutdown.clone(),
            threads: Vec::new(),
        };
        for std_listener in listeners {
            std_listener.set_nonblocking(true)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()?;
            let listener = {
                let _context = runtime.enter();
                TcpListener::from_std(std_listener)?
            };
            let server = Listener::new(listener, shutdown.clone(), config.buffer_size);
            let spawned = id.thread("rt").spawn(move || {
                runtime.block_on(server.run());
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            });
            match spawned {
                Ok(thread) => stop.threads.push(thread),
                Err(err) => {
                    // Stop the runtimes already running before reporting.
                    let _ = Box::new(stop).stop();
                    return Err(err);
                }
            }
        }
        Ok(ServerHandle::new(
            Model::TokioCurrentThread,
            id,
            local_addr,
            Box::new(stop),
        ))
    }
}

struct RuntimesStop {
    shutdown: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Stop for RuntimesStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.shutdown.cancel();
        // Each thread waits up to the grace period for its handlers, then for its runtime.
        let deadline = Instant::now() + SHUTDOWN_GRACE * 2 + SHUTDOWN_GRACE / 2;
        let mut result = Ok(());
        for thread in self.threads {
            if let Err(err) = join_within(thread, deadline) {
                result = Err(err);
            }
        }
        result
    }
}
