//! `tokio-current-thread`: thread-per-core with tokio. One current-thread runtime per core (or
//! `--threads`), each on its own thread with its own listener on the same port through
//! `SO_REUSEPORT`; the kernel spreads connections, and a task never leaves its runtime. The
//! accept loop, handlers and shutdown are the `tokio` model's (`models::tokio::Runtimes`).
//!
//! Cost per connection: one task and its read buffer. What blocks: nothing on one runtime while
//! its tasks yield; but there is no work stealing, so a busy runtime cannot hand work to an idle
//! one. In exchange there are no cross-thread wake-ups.

use std::io;

use crate::net;
use crate::server::{
    EchoServer, Model, ServerConfig, ServerHandle, ServerId, available_cores, start_each,
};
use crate::models::tokio::{Inline, Runtimes};
use crate::work::EchoPath;

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
        let runtimes = start_each(Runtimes::new(), listeners, |runtimes, listener| {
            listener.set_nonblocking(true)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()?;
            runtimes.serve(id, runtime, listener, Inline(EchoPath::of(config)))
        })?;
        Ok(ServerHandle::new(
            Model::TokioCurrentThread,
            id,
            local_addr,
            Box::new(runtimes),
        ))
    }
}
