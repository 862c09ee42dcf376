//! `tokio-rayon`: the `tokio` model, except that each message's work runs on a rayon pool instead
//! of the runtime's worker, the way async servers keep CPU-bound request handling from stalling
//! the I/O of every other connection. The handler sends its buffer to the pool, awaits a oneshot
//! channel for it, and echoes; the worker meanwhile polls other connections.
//!
//! Threads: tokio's workers (one per core) for I/O, and a rayon pool (one per core,
//! `es<id>-rayon`) for the work. Cost per connection: one task and its buffer, as `tokio`. Per
//! message it adds two cross-thread hand-offs (to the pool and back through the runtime's
//! waker), which is pure overhead when there is no work (`--work-us 0`) and what buys fairness
//! when there is.
//!
//! Over TLS (`tls:`) the handshake's CPU goes to the pool too: the ClientHello is read on the
//! connection's task, and answering it (the key exchange and the certificate's signature, nearly
//! all of a full handshake's cost) runs on a rayon thread, so a storm of handshakes does not
//! hold the workers that serve established connections. The records' encryption stays on the
//! workers, as the socket I/O it is part of.
//!
//! Shutdown stops the runtime as `tokio` does, then drops the pool and joins its threads, which
//! rayon itself never joins.

use std::io;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use echo_cli::Transport;

use crate::blocking_io::join_all_within;
use crate::models::tokio::{OnMessage, Runtimes};
use crate::net;
use crate::server::{
    EchoServer, Model, SHUTDOWN_GRACE, ServerConfig, ServerHandle, ServerId, StopServer,
    available_cores,
};
use crate::work::EchoPath;

/// tokio for I/O, rayon for the per-message work.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioRayon;

impl EchoServer for TokioRayon {
    fn model(&self) -> Model {
        Model::TokioRayon
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
        let id = ServerId::next();
        let threads = config.threads_or(available_cores());
        // rayon detaches its threads; spawning them ourselves keeps their handles for shutdown.
        let pool_threads = Arc::new(Mutex::new(Vec::new()));
        let pool = {
            let pool_threads = Arc::clone(&pool_threads);
            let id = id.clone();
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .spawn_handler(move |thread| {
                    let handle = id.thread("rayon").spawn(move || thread.run())?;
                    lock(&pool_threads).push(handle);
                    Ok(())
                })
                .build()
                .map_err(io::Error::other)?
        };
        let pool = Arc::new(pool);
        let mut stop = TokioRayonStop {
            runtimes: Runtimes::new(),
            pool: Arc::clone(&pool),
            pool_threads,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(id.thread_name("tokio"))
            .enable_io()
            .enable_time()
            .build();
        let on_message = OnRayon {
            path: EchoPath::of(config),
            pool,
        };
        let started = runtime.and_then(|runtime| {
            stop.runtimes
                .serve(&id, runtime, std_listener, on_message, tls.as_ref())
        });
        if let Err(err) = started {
            let _ = Box::new(stop).stop();
            return Err(err);
        }
        Ok(ServerHandle::new(
            Model::TokioRayon,
            id,
            net::served(endpoint, &tls),
            Box::new(stop),
        ))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends each message's work to the pool and waits for it without holding the worker.
#[derive(Clone)]
struct OnRayon {
    path: EchoPath,
    pool: Arc<rayon::ThreadPool>,
}

impl OnMessage for OnRayon {
    fn path(&self) -> EchoPath {
        self.path
    }

    async fn offload<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> R {
        let (done, result) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            // The handler may be gone (shutdown); then the result is simply dropped.
            let _ = done.send(job());
        });
        // The pool outlives every handler (shutdown drops it only after the runtime), and a
        // panicking rayon job aborts the process, so the result always comes back.
        result.await.expect("the rayon pool answers every job")
    }
}

struct TokioRayonStop {
    runtimes: Runtimes,
    pool: Arc<rayon::ThreadPool>,
    pool_threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl StopServer for TokioRayonStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        let TokioRayonStop {
            runtimes,
            pool,
            pool_threads,
        } = *self;
        let result = Box::new(runtimes).stop();
        // The runtime is gone, and with it every handler's clone of the pool: dropping this last
        // one tells rayon's threads to exit.
        drop(pool);
        let threads = std::mem::take(&mut *lock(&pool_threads));
        let joined = join_all_within(threads, Instant::now() + SHUTDOWN_GRACE);
        result.and(joined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work::Work;

    #[test]
    fn offloaded_jobs_run_on_the_pool_and_their_results_come_back() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "test-rayon".into())
            .build()
            .unwrap();
        let on_rayon = OnRayon {
            path: EchoPath {
                buffer_size: 16,
                work: Work::default(),
            },
            pool: Arc::new(pool),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ran_on =
            runtime.block_on(on_rayon.offload(|| std::thread::current().name().map(str::to_owned)));
        assert_eq!(ran_on.as_deref(), Some("test-rayon"));
        let buf = runtime.block_on(on_rayon.on_message(vec![7; 16], 16));
        assert_eq!(buf, vec![7; 16]);
    }
}
