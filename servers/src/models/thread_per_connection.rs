//! `thread-per-connection`: the acceptor spawns a new OS thread for every connection, which
//! echoes it with blocking I/O until the client closes.
//!
//! Cost per connection: one thread (its stack is reserved virtual memory, a few pages resident)
//! plus a read buffer, and a context switch per wake-up. Nothing blocks anyone else: an idle
//! client parks only its own thread. Spawning costs tens of microseconds, which shows in churn.

use std::io;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::blocking_io::{self, join_within};
use crate::net;
use crate::server::{EchoServer, Model, SHUTDOWN_GRACE, ServerConfig, ServerHandle};

/// A thread for every connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadPerConnection;

impl EchoServer for ThreadPerConnection {
    fn model(&self) -> Model {
        Model::ThreadPerConnection
    }

    fn driver(&self) -> crate::driver::Driver {
        crate::driver::Driver::Blocking
    }

    fn transports(&self) -> &'static [echo_cli::Transport] {
        use echo_cli::Transport;
        &[Transport::Tcp, Transport::Unix, Transport::Tls]
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        blocking_io::start(Model::ThreadPerConnection, config, |acceptor| {
            let id = acceptor.shared().id();
            let mut threads = Threads::default();
            acceptor.run(|conn| match id.thread("conn").spawn(move || conn.serve()) {
                Ok(handle) => threads.push(handle),
                Err(err) => {
                    // Out of threads or memory: the connection (moved into the failed spawn) is
                    // closed; back off as for any resource error.
                    std::thread::sleep(net::resource_pause(&err));
                }
            });
            threads.join_all();
        })
    }
}

/// The connection threads still to be joined. Finished ones are reaped when the list has doubled
/// since the last reap, so the bookkeeping costs amortised O(1) per connection.
#[derive(Debug, Default)]
struct Threads {
    running: Vec<JoinHandle<()>>,
    reap_at: usize,
}

impl Threads {
    fn push(&mut self, handle: JoinHandle<()>) {
        self.running.push(handle);
        if self.running.len() >= self.reap_at {
            self.running.retain(|t| !t.is_finished());
            self.reap_at = (self.running.len() * 2).max(64);
        }
    }

    fn join_all(self) {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        for thread in self.running {
            let _ = join_within(thread, deadline);
        }
    }
}
