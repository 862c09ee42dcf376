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
//! Shutdown stops the runtime as `tokio` does, then drops the pool and joins its threads, which
//! rayon itself never joins.

use std::io;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

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

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        let (std_listener, endpoint) = net::bind_nonblocking(config)?;
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
                .serve(&id, runtime, std_listener, on_message, None)
        });
        if let Err(err) = started {
            let _ = Box::new(stop).stop();
            return Err(err);
        }
        Ok(ServerHandle::new(
            Model::TokioRayon,
            id,
            endpoint,
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

    async fn on_message(&self, buf: Vec<u8>, len: usize) -> Vec<u8> {
        let (done, result) = tokio::sync::oneshot::channel();
        let path = self.path;
        self.pool.spawn(move || {
            path.on_message(&buf[..len]);
            // The handler may be gone (shutdown); then the buffer is simply dropped.
            let _ = done.send(buf);
        });
        // The pool outlives every handler (shutdown drops it only after the runtime), and a
        // panicking rayon job aborts the process, so the buffer always comes back.
        result.await.expect("the rayon pool returns every buffer")
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
