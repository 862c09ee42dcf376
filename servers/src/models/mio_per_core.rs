//! `mio-per-core`: thread-per-core. One mio event loop per core (or `--threads`), each with its
//! own listener on the same port through `SO_REUSEPORT`, so the kernel spreads connections over
//! the loops and nothing is shared between them: the design behind most fast C servers, monoio
//! and glommio. The loop is the very `mio` model's ([`crate::models::mio::EventLoop`]).
//!
//! Cost per connection: as in `mio`. What blocks: nothing, as long as no handler computes; a
//! connection stays on the loop the kernel gave it, so an unlucky spread leaves a core idle
//! while another is busy (no work stealing).

use std::io;

use crate::models::mio::{EventLoop, LoopStop};
use crate::net;
use crate::server::{
    EchoServer, Model, ServerConfig, ServerHandle, ServerId, available_cores, start_each,
};
use crate::work::EchoPath;

/// One mio loop per core behind SO_REUSEPORT.
#[derive(Debug, Clone, Copy, Default)]
pub struct MioPerCore;

impl EchoServer for MioPerCore {
    fn model(&self) -> Model {
        Model::MioPerCore
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        let listeners = net::bind_reuse_port(config, config.threads_or(available_cores()))?;
        let local_addr = listeners[0].local_addr()?;
        let id = ServerId::next();
        let stop = LoopStop {
            wakers: Vec::new(),
            threads: Vec::new(),
        };
        let stop = start_each(stop, listeners, |stop, listener| {
            let (event_loop, waker) = EventLoop::new(listener, EchoPath::of(config))?;
            stop.wakers.push(waker);
            let thread = id.thread("mio").spawn(move || {
                if let Err(err) = event_loop.run() {
                    eprintln!("echo-server: mio-per-core: event loop failed: {err}");
                }
            })?;
            stop.threads.push(thread);
            Ok(())
        })?;
        Ok(ServerHandle::new(
            Model::MioPerCore,
            id,
            local_addr,
            Box::new(stop),
        ))
    }
}
