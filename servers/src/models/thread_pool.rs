//! `thread-pool`: a fixed pool of worker threads (default: cores × 2) fed accepted connections
//! through a crossbeam channel; each worker echoes one connection to its end, then takes the
//! next. The pool is the Rust book's: workers, a job channel, and a `Drop` that joins them.
//!
//! Cost per connection: a read buffer; threads are paid once. What blocks: a connection holds
//! its worker until the client closes, so with more open connections than workers the extra
//! ones wait in the channel (then in the listen backlog) however idle the served ones are. This
//! head-of-line blocking is the model's defining weakness: one slow or idle client per worker
//! starves everyone queued behind them.
//!
//! Over UDP (`udp:`) the pool's threads share one socket, each in its own `recvfrom`/`sendto`
//! loop (`datagram::start_threads`): with no connections to hold, nothing starves.

use std::io;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use echo_cli::Transport;

use crate::blocking_io::{self, Conn, join_within};
use crate::datagram;
use crate::server::{
    EchoServer, Model, SHUTDOWN_GRACE, ServerConfig, ServerHandle, ServerId, available_cores,
};

/// A fixed pool of blocking workers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadPool;

/// The pool size under `config`: the configured threads, or twice the cores.
pub(crate) fn pool_size(config: &ServerConfig) -> usize {
    config.threads_or(available_cores() * 2)
}

impl EchoServer for ThreadPool {
    fn model(&self) -> Model {
        Model::ThreadPool
    }

    fn driver(&self) -> crate::driver::Driver {
        crate::driver::Driver::Blocking
    }

    fn concurrency_limit(&self, config: &ServerConfig) -> Option<usize> {
        Some(pool_size(config))
    }

    fn transports(&self) -> &'static [Transport] {
        &Transport::ALL
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        if config.listen.transport() == Transport::Udp {
            return datagram::start_threads(Model::ThreadPool, config, pool_size(config));
        }
        let size = pool_size(config);
        // Accepted connections waiting for a worker; past this the acceptor blocks and the
        // kernel's listen backlog holds the rest, so the queue never grows without bound.
        let queue = config.backlog.max(1) as usize;
        // The workers start before the server reports that it listens: a pool that cannot
        // start (too many threads for the memory or thread limit) fails `start` itself.
        blocking_io::start_prepared(
            Model::ThreadPool,
            config,
            |id| {
                Pool::new(id, size, queue).map_err(|err| {
                    io::Error::new(err.kind(), format!("cannot start {size} workers: {err}"))
                })
            },
            |acceptor, pool| {
                acceptor.run(|conn| pool.execute(conn));
                // Dropping the pool closes the channel and joins every worker.
            },
        )
    }
}

/// Workers and the channel that feeds them.
struct Pool {
    workers: Vec<Worker>,
    jobs: Option<Sender<Conn>>,
}

struct Worker {
    thread: Option<JoinHandle<()>>,
}

impl Pool {
    fn new(id: &ServerId, size: usize, queue: usize) -> io::Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded::<Conn>(queue);
        let mut pool = Pool {
            workers: Vec::with_capacity(size),
            jobs: Some(tx),
        };
        for _ in 0..size {
            let rx: Receiver<Conn> = rx.clone();
            // `serve` returns at once for connections queued when shutdown began, so the
            // workers drain the channel quickly and the acceptor never stays blocked on it.
            let thread = id.thread("worker").spawn(move || {
                for conn in rx {
                    conn.serve();
                }
            })?;
            pool.workers.push(Worker {
                thread: Some(thread),
            });
        }
        Ok(pool)
    }

    fn execute(&self, conn: Conn) {
        if let Some(jobs) = &self.jobs {
            // Fails only when every worker is gone, which cannot happen while the pool lives.
            let _ = jobs.send(conn);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        drop(self.jobs.take());
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                let _ = join_within(thread, deadline);
            }
        }
    }
}
